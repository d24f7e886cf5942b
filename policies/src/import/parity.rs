//! The parity gate: a bundle run on the reference observations the export
//! wrote (`parity.json`), its chunks compared with the PyTorch policy's.
//!
//! `parity.json` (written by `policies/lerobot/export_act.py`, kept in the
//! bundle and signed):
//!
//! ```json
//! { "format": 1, "source": "lerobot", "policy_type": "act",
//!   "lerobot_version": "0.6.1", "torch_version": "2.11.0", "onnx_opset": 17, "seed": 0,
//!   "samples": [ { "joints": [0.1, -0.9, 1.2],
//!                  "frames": { "observation.images.front": "<hex of rgb8 H×W×3 bytes>" },
//!                  "actions": [[...n...], ...chunk_size rows] } ] }
//! ```
//!
//! Joints and actions are in the robot's units (the profile's joint order);
//! frames are keyed by the checkpoint's image feature, which names the
//! manifest's camera (`observation.images.<camera>`).

use std::path::Path;
use std::time::Instant;

use ganglion_core::{ActionChunk, Observation, PixelFormat, Policy};

use super::ImportError;
use crate::policy::{load_policy, BundlePolicy, LoadOptions};
use crate::signing::VerifyingKey;
use crate::BackendKind;

/// The reference file's format version.
pub const REFERENCE_FORMAT: u32 = 1;
/// Name of the reference file in a bundle.
pub const REFERENCE_FILE: &str = "parity.json";

/// `parity.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// [`REFERENCE_FORMAT`].
    pub format: u32,
    /// `lerobot`.
    pub source: String,
    /// `act`.
    pub policy_type: String,
    /// LeRobot version of the export.
    pub lerobot_version: String,
    /// PyTorch version of the export.
    pub torch_version: String,
    /// ONNX opset of the graph.
    pub onnx_opset: u32,
    /// Seed the observations were drawn from.
    pub seed: u64,
    /// Observations and the PyTorch policy's actions.
    pub samples: Vec<Sample>,
}

/// One reference observation and its actions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Joint positions (robot units, profile order).
    pub joints: Vec<f64>,
    /// Image feature → hex of rgb8 bytes, rows of pixels.
    pub frames: std::collections::BTreeMap<String, String>,
    /// The chunk: `chunk_size` rows of one value per joint.
    pub actions: Vec<Vec<f64>>,
}

impl Reference {
    /// Parses `bytes` of `file`.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<Reference, ImportError> {
        let r: Reference = serde_json::from_slice(bytes).map_err(|e| ImportError::Reference {
            file: file.to_path_buf(),
            problem: format!("not a reference file: {e}"),
        })?;
        if r.format != REFERENCE_FORMAT {
            return Err(ImportError::Reference {
                file: file.to_path_buf(),
                problem: format!("format {}, expected {REFERENCE_FORMAT}", r.format),
            });
        }
        if r.samples.is_empty() {
            return Err(ImportError::Reference { file: file.to_path_buf(), problem: "no samples".into() });
        }
        Ok(r)
    }
}

/// What the gate measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParityResult {
    /// Observations compared.
    pub samples: usize,
    /// Largest |bundle − PyTorch| over every sample, step and joint.
    pub max_abs_error: f64,
    /// Where it was: (sample, step, joint).
    pub worst: (usize, usize, usize),
    /// Slowest inference of the run, ms.
    pub max_inference_ms: f64,
}

/// Loads the signed bundle at `bundle` on tract (trusting `key`) and runs it
/// on the reference observations of its `[provenance.parity]` reference file
/// (or `reference` when given).
pub fn check_bundle(
    bundle: &Path,
    key: &VerifyingKey,
    reference: Option<&Reference>,
) -> Result<ParityResult, ImportError> {
    let opts = LoadOptions { backend: BackendKind::Tract, trusted_keys: vec![*key], ..LoadOptions::default() };
    let mut policy = load_policy(bundle, &opts)?;
    match reference {
        Some(r) => run(&mut policy, r, &bundle.join(REFERENCE_FILE)),
        None => recheck(&mut policy, bundle)?.ok_or_else(|| ImportError::Reference {
            file: bundle.join(crate::MANIFEST_FILE),
            problem: "no [provenance.parity]: not an imported bundle".into(),
        }),
    }
}

/// For an imported bundle (one with `[provenance.parity]`), runs the loaded
/// `policy` on its signed reference observations again (`ganglion policy
/// check`); `None` for other bundles. `bundle` is the directory or zip the
/// policy was loaded from.
pub fn recheck(policy: &mut BundlePolicy, bundle: &Path) -> Result<Option<ParityResult>, ImportError> {
    let Some(p) = policy.manifest().provenance.clone() else { return Ok(None) };
    let source = crate::bundle::BundleSource::open(bundle)?;
    let name = &p.parity.reference;
    let file = source.display_path(name);
    let bytes = source.read(name)?;
    // load_policy checked the listed digests; the file is read again here,
    // so check it is still the signed content.
    if policy.manifest().digest_of(name) != Some(crate::signing::sha256_hex(&bytes).as_str()) {
        return Err(ImportError::Bundle(crate::BundleError::Digest {
            file,
            expected: policy.manifest().digest_of(name).unwrap_or("(not listed)").to_string(),
            actual: crate::signing::sha256_hex(&bytes),
        }));
    }
    let reference = Reference::parse(&bytes, &file)?;
    run(policy, &reference, &file).map(Some)
}

/// Runs `policy` on every sample of `reference` and compares its chunks.
pub fn run(policy: &mut BundlePolicy, reference: &Reference, file: &Path) -> Result<ParityResult, ImportError> {
    let spec = policy.spec().clone();
    let manifest = policy.manifest().clone();
    let bad = |problem: String| ImportError::Reference { file: file.to_path_buf(), problem };
    let mut obs = Observation::for_spec(&spec);
    let mut out = ActionChunk::for_spec(&spec);
    let mut result = ParityResult { samples: 0, max_abs_error: 0.0, worst: (0, 0, 0), max_inference_ms: 0.0 };
    for (i, s) in reference.samples.iter().enumerate() {
        if s.joints.len() != spec.n_joints {
            return Err(bad(format!(
                "samples[{i}].joints: {} values, the bundle has {} joints",
                s.joints.len(),
                spec.n_joints
            )));
        }
        for (p, v) in obs.joints.position.iter_mut().zip(&s.joints) {
            *p = *v;
        }
        if s.frames.len() != spec.cameras.len() {
            return Err(bad(format!(
                "samples[{i}].frames: {} images, the bundle has {} cameras",
                s.frames.len(),
                spec.cameras.len()
            )));
        }
        for (frame, cam) in obs.frames.iter_mut().zip(&manifest.cameras) {
            let key = format!("observation.images.{}", cam.name);
            let hex_text = s
                .frames
                .get(&key)
                .ok_or_else(|| bad(format!("samples[{i}].frames: no `{key}` for camera `{}`", cam.name)))?;
            let bytes = hex::decode(hex_text).map_err(|e| bad(format!("samples[{i}].frames.{key}: not hex: {e}")))?;
            let want = cam.width as usize * cam.height as usize * 3;
            if bytes.len() != want {
                return Err(bad(format!(
                    "samples[{i}].frames.{key}: {} bytes, expected {want} ({}x{} rgb8)",
                    bytes.len(),
                    cam.width,
                    cam.height
                )));
            }
            frame
                .set_with(cam.width, cam.height, PixelFormat::Rgb8, |b| b.copy_from_slice(&bytes))
                .map_err(|e| bad(format!("samples[{i}].frames.{key}: {e}")))?;
        }
        obs.request_id = i as u64;
        policy.reset_history();
        let t = Instant::now();
        policy.infer(&obs, &mut out).map_err(|e| ImportError::Inference(format!("sample {i}: {e}")))?;
        result.max_inference_ms = result.max_inference_ms.max(t.elapsed().as_secs_f64() * 1e3);
        if s.actions.len() != out.steps() {
            return Err(bad(format!(
                "samples[{i}].actions: {} steps, the bundle's chunk has {}",
                s.actions.len(),
                out.steps()
            )));
        }
        for (step, row) in s.actions.iter().enumerate() {
            if row.len() != spec.n_joints {
                return Err(bad(format!(
                    "samples[{i}].actions[{step}]: {} values, expected {}",
                    row.len(),
                    spec.n_joints
                )));
            }
            for (j, (a, b)) in out.step(step).iter().zip(row).enumerate() {
                let err = (a - b).abs();
                // NaN never passes.
                if err.is_nan() || err > result.max_abs_error {
                    result.max_abs_error = if err.is_nan() { f64::INFINITY } else { err };
                    result.worst = (i, step, j);
                }
            }
        }
        result.samples += 1;
    }
    Ok(result)
}
