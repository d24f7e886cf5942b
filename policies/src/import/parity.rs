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
//!
//! A Diffusion Policy's chunk depends on the noise its sampling loop draws,
//! so its reference is the golden of `policies/lerobot/export_diffusion.py`
//! (`golden.json`, [`DiffusionGolden`]): episodes of observations, each
//! with every noise tensor LeRobot's loop drew (x_T, then each noisy step's)
//! and LeRobot's actions. [`run_golden`] replays that noise through the
//! pipeline's [`crate::noise::NoiseSource`], feeding the observations in
//! order with the history reset at each episode start, as LeRobot's
//! `policy.reset()`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;

use ganglion_core::{ActionChunk, Observation, PixelFormat, Policy};

use super::ImportError;
use crate::policy::{load_policy, BundlePolicy, LoadOptions};
use crate::preprocess::{JointRange, UnitMap};
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

/// The signed bundle at `bundle` on tract, trusting `key`, for an arm of
/// calibrated `ranges` (LeRobot's range units need them; else empty): what
/// the gate runs.
pub fn load_on_tract(bundle: &Path, key: &VerifyingKey, ranges: &[JointRange]) -> Result<BundlePolicy, ImportError> {
    let opts = LoadOptions {
        backend: BackendKind::Tract,
        trusted_keys: vec![*key],
        joint_ranges: ranges.to_vec(),
        ..LoadOptions::default()
    };
    Ok(load_policy(bundle, &opts)?)
}

/// Loads the signed bundle at `bundle` on tract (trusting `key`) and runs it
/// on the reference observations of its `[provenance.parity]` reference file
/// (or `reference` when given).
pub fn check_bundle(
    bundle: &Path,
    key: &VerifyingKey,
    ranges: &[JointRange],
    reference: Option<&Reference>,
) -> Result<ParityResult, ImportError> {
    let mut policy = load_on_tract(bundle, key, ranges)?;
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
    if p.policy_type == "diffusion" {
        let golden = DiffusionGolden::parse(&bytes, &file)?;
        return run_golden(policy, &golden, &file).map(Some);
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
    let (state_units, action_units) = manifest.reference_units(policy.joint_ranges())?;
    for (i, s) in reference.samples.iter().enumerate() {
        if s.joints.len() != spec.n_joints {
            return Err(bad(format!(
                "samples[{i}].joints: {} values, the bundle has {} joints",
                s.joints.len(),
                spec.n_joints
            )));
        }
        to_radians(&s.joints, &state_units, &mut obs);
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
        compare(&out, &s.actions, &action_units, i, &mut result)
            .map_err(|p| bad(format!("samples[{i}].actions{p}")))?;
    }
    Ok(result)
}

/// Name of a Diffusion bundle's reference file.
pub const GOLDEN_FILE: &str = "golden.json";

/// `golden.json` of `export_diffusion.py`: what the gate reads of it (its
/// diagnostic keys — schedule tables, trajectories, `global_cond` — are
/// for the tests and are ignored here).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiffusionGolden {
    /// `lerobot`.
    pub source: String,
    /// `diffusion`.
    pub policy_type: String,
    /// LeRobot version of the export.
    pub lerobot_version: String,
    /// PyTorch version of the export.
    pub torch_version: String,
    /// ONNX opset of the graphs.
    pub onnx_opset: u32,
    /// Seed of the recorded noise.
    pub seed: u64,
    /// The checkpoint's `n_obs_steps`.
    pub n_obs_steps: usize,
    /// Its `horizon`.
    pub horizon: usize,
    /// Its `n_action_steps` (the chunk).
    pub n_action_steps: usize,
    /// Denoising steps of LeRobot's loop.
    pub num_inference_steps: usize,
    /// The camera of an image checkpoint (`observation.images.<camera>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// With a camera: the exported graphs on ONNX Runtime, driven by
    /// LeRobot's scheduler with the recorded noise, against LeRobot's
    /// actions — what the graphs themselves cost (`--weights int8`: the
    /// rounding), measured by the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_max_abs: Option<f64>,
    /// Episodes: the history is reset at each start.
    pub episodes: Vec<GoldenEpisode>,
}

/// One episode of a [`DiffusionGolden`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GoldenEpisode {
    /// The observations, in the order LeRobot's loop saw them.
    pub observations: Vec<GoldenObservation>,
}

/// One observation of a [`DiffusionGolden`] and LeRobot's chunk for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GoldenObservation {
    /// Joint positions (robot units, profile order).
    pub joints: Vec<f64>,
    /// Every noise tensor LeRobot's loop drew for this chunk, in order:
    /// x_T, then the scheduler's noise at every step with t > 0.
    pub noise: Vec<Vec<f32>>,
    /// LeRobot's chunk: `n_action_steps` rows of one value per joint.
    pub actions: Vec<Vec<f64>>,
    /// The camera's frame, base64 of HWC rgb8 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_rgb8_b64: Option<String>,
    /// Its `[height, width, 3]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_shape: Option<Vec<usize>>,
}

impl DiffusionGolden {
    /// Parses `bytes` of `file`.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<DiffusionGolden, ImportError> {
        let bad = |problem: String| ImportError::Reference { file: file.to_path_buf(), problem };
        let g: DiffusionGolden =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a Diffusion golden: {e}")))?;
        if g.policy_type != "diffusion" {
            return Err(bad(format!("policy type `{}`, expected `diffusion`", g.policy_type)));
        }
        if g.observations().next().is_none() {
            return Err(bad("no observations".into()));
        }
        Ok(g)
    }

    /// Every observation, episode after episode.
    pub fn observations(&self) -> impl Iterator<Item = &GoldenObservation> {
        self.episodes.iter().flat_map(|e| &e.observations)
    }
}

/// A [`RecordedNoise`](crate::noise::RecordedNoise) that counts the tensors
/// it handed out, so the gate can tell the bundle drew exactly what
/// LeRobot's loop drew.
struct CountedNoise {
    inner: crate::noise::RecordedNoise,
    used: Arc<AtomicUsize>,
}

impl crate::noise::NoiseSource for CountedNoise {
    fn fill(&mut self, out: &mut [f32]) -> Result<(), crate::noise::NoiseError> {
        self.inner.fill(out)?;
        self.used.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Runs `policy` (a bundle with an iterative head) on every observation of
/// `golden` in order, the history reset at each episode start, with the
/// golden's noise replayed, and compares its chunks with LeRobot's
/// actions; `worst` is (observation, over all episodes; step; joint). The
/// policy is left with its seeded noise stream and a reset history.
/// Fails when the bundle draws another number of noise tensors than
/// LeRobot's loop did for an observation (another step count or schedule).
pub fn run_golden(
    policy: &mut BundlePolicy,
    golden: &DiffusionGolden,
    file: &Path,
) -> Result<ParityResult, ImportError> {
    let used = Arc::new(AtomicUsize::new(0));
    let tensors: Vec<Vec<f32>> = golden.observations().flat_map(|o| o.noise.iter().cloned()).collect();
    let source = CountedNoise { inner: crate::noise::RecordedNoise::new(tensors), used: used.clone() };
    policy.set_noise_source(Some(Box::new(source))).map_err(|e| ImportError::Inference(e.to_string()))?;
    let result = replay(policy, golden, file, &used);
    // Whatever happened, the policy draws from its own stream again.
    let restored = policy.set_noise_source(None).map_err(|e| ImportError::Inference(e.to_string()));
    policy.reset_history();
    let result = result?;
    restored?;
    Ok(result)
}

fn replay(
    policy: &mut BundlePolicy,
    golden: &DiffusionGolden,
    file: &Path,
    used: &AtomicUsize,
) -> Result<ParityResult, ImportError> {
    let spec = policy.spec().clone();
    let manifest = policy.manifest().clone();
    let bad = |problem: String| ImportError::Reference { file: file.to_path_buf(), problem };
    let mut obs = Observation::for_spec(&spec);
    let mut out = ActionChunk::for_spec(&spec);
    let mut result = ParityResult { samples: 0, max_abs_error: 0.0, worst: (0, 0, 0), max_inference_ms: 0.0 };
    if manifest.cameras.len() > 1 || golden.camera.as_deref() != manifest.cameras.first().map(|c| c.name.as_str()) {
        let names: Vec<&str> = manifest.cameras.iter().map(|c| c.name.as_str()).collect();
        return Err(bad(format!("camera {:?}, the bundle's cameras are {names:?}", golden.camera)));
    }
    let (state_units, action_units) = manifest.reference_units(policy.joint_ranges())?;
    let mut drawn = 0usize;
    for episode in &golden.episodes {
        policy.reset_history();
        for o in &episode.observations {
            let i = result.samples;
            if o.joints.len() != spec.n_joints {
                return Err(bad(format!(
                    "observation {i}: {} joints, the bundle has {}",
                    o.joints.len(),
                    spec.n_joints
                )));
            }
            to_radians(&o.joints, &state_units, &mut obs);
            if let (Some(cam), Some(frame)) = (manifest.cameras.first(), obs.frames.first_mut()) {
                let want = [cam.height as usize, cam.width as usize, 3];
                if o.image_shape.as_deref() != Some(&want[..]) {
                    return Err(bad(format!(
                        "observation {i}: image shape {:?}, camera `{}` delivers {want:?}",
                        o.image_shape, cam.name
                    )));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(o.image_rgb8_b64.as_deref().unwrap_or(""))
                    .map_err(|e| bad(format!("observation {i}: image_rgb8_b64: {e}")))?;
                if bytes.len() != want.iter().product::<usize>() {
                    return Err(bad(format!("observation {i}: {} image bytes, expected {want:?} rgb8", bytes.len())));
                }
                frame
                    .set_with(cam.width, cam.height, PixelFormat::Rgb8, |b| b.copy_from_slice(&bytes))
                    .map_err(|e| bad(format!("observation {i}: {e}")))?;
            }
            obs.request_id = i as u64;
            let t = Instant::now();
            policy.infer(&obs, &mut out).map_err(|e| ImportError::Inference(format!("observation {i}: {e}")))?;
            result.max_inference_ms = result.max_inference_ms.max(t.elapsed().as_secs_f64() * 1e3);
            drawn += o.noise.len();
            let took = used.load(Ordering::Relaxed);
            if took != drawn || !policy.last_noise().is_some_and(|r| r.injected) {
                return Err(bad(format!(
                    "observation {i}: the bundle took {} noise tensors so far, LeRobot's loop drew {drawn} (its steps or schedule differ)",
                    took
                )));
            }
            compare(&out, &o.actions, &action_units, i, &mut result)
                .map_err(|p| bad(format!("observation {i}: actions{p}")))?;
        }
    }
    Ok(result)
}

/// A reference's joint positions (the policy's units) into `obs`'s
/// (radians, what the robot hands the bundle).
fn to_radians(joints: &[f64], units: &[UnitMap], obs: &mut Observation) {
    for (k, (p, v)) in obs.joints.position.iter_mut().zip(joints).enumerate() {
        *p = units.get(k).map_or(*v, |u| u.to_rad(*v));
    }
}

/// Compares the chunk `out` of sample `i` with the reference `actions` into
/// `result` (NaN never passes) and counts the sample; on a shape mismatch,
/// the problem after the key (`: 3 steps, …` or `[2]: …`). The bundle's
/// radians are compared in the policy's units (`units`, per joint; empty:
/// radians), the reference's.
fn compare(
    out: &ActionChunk,
    actions: &[Vec<f64>],
    units: &[UnitMap],
    i: usize,
    result: &mut ParityResult,
) -> Result<(), String> {
    if actions.len() != out.steps() {
        return Err(format!(": {} steps, the bundle's chunk has {}", actions.len(), out.steps()));
    }
    for (step, row) in actions.iter().enumerate() {
        let got = out.step(step);
        if row.len() != got.len() {
            return Err(format!("[{step}]: {} values, expected {}", row.len(), got.len()));
        }
        for (j, (a, b)) in got.iter().zip(row).enumerate() {
            let a = units.get(j).map_or(*a, |u| u.from_rad(*a));
            let err = (a - b).abs();
            if err.is_nan() || err > result.max_abs_error {
                result.max_abs_error = if err.is_nan() { f64::INFINITY } else { err };
                result.worst = (i, step, j);
            }
        }
    }
    result.samples += 1;
    Ok(())
}
