//! `ganglion policy import`: a LeRobot checkpoint (`pretrained_model/`)
//! into a signed bundle, behind a parity gate.
//!
//! 1. [`lerobot::read_checkpoint`] reads `config.json` and the processor
//!    files and maps the checkpoint onto the robot ([`Target`]): an
//!    unsupported policy type, a feature the robot has no source for, a
//!    normalized feature without statistics are refused by name.
//! 2. The export script (`policies/lerobot/export_act.py`, built into this
//!    crate) runs in a LeRobot environment (`--python`): it loads the
//!    checkpoint with LeRobot's classes, writes `policy.onnx` and the
//!    reference observations and PyTorch actions (`parity.json`).
//! 3. `policy.toml` is written ([`manifest_for`]) and the bundle signed.
//! 4. The bundle runs on tract on the reference observations
//!    ([`parity::check_bundle`]); when any action differs from PyTorch's by
//!    more than the tolerance, the import fails. Otherwise the result goes
//!    into `[provenance.parity]`, the bundle is signed again and renamed into
//!    place. Everything before happens in a temporary folder beside the
//!    output, removed on any failure: nothing half-written is left.

pub mod lerobot;
pub mod parity;
pub mod safetensors;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::BundleError;
use crate::manifest::{
    ActionConfig, ActionKindConfig, CameraConfig, DType, FileEntry, GraphSpec, Graphs, JointsConfig, Manifest,
    NormMode, ParityReport, Precision, Provenance, TensorSpec, WeightStorage, FORMAT_VERSION,
};
use crate::signing::SigningKey;

pub use lerobot::{read_checkpoint, Checkpoint, MapOptions, Target};
pub use parity::{ParityResult, Reference};

/// The export script, as kept in the repository.
pub const EXPORT_ACT_PY: &str = include_str!("../../lerobot/export_act.py");
/// The graph file of an imported bundle.
pub const GRAPH_FILE: &str = "policy.onnx";

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A checkpoint file is missing, malformed or has a value the importer
    /// does not support.
    #[error("{}: key `{key}`: {problem}", file.display())]
    Checkpoint {
        /// The file.
        file: PathBuf,
        /// Dotted key in it.
        key: String,
        /// What was expected.
        problem: String,
    },
    /// The policy type is not one the importer exports.
    #[error("{}: policy type `{policy_type}` is not supported by `ganglion policy import` (supported: {})", file.display(), lerobot::SUPPORTED_TYPES.join(", "))]
    UnsupportedPolicy {
        /// config.json.
        file: PathBuf,
        /// Its `type`.
        policy_type: String,
    },
    /// A feature cannot be mapped onto the robot, or lacks statistics.
    #[error("{}: feature `{feature}`: {problem}", file.display())]
    Feature {
        /// The file that declares it (config.json or a statistics file).
        file: PathBuf,
        /// LeRobot's feature key.
        feature: String,
        /// Why.
        problem: String,
    },
    /// The output path exists.
    #[error("{}: already exists; the import writes a new bundle and never replaces one", out.display())]
    OutExists {
        /// The output path.
        out: PathBuf,
    },
    /// The export script could not be run or failed.
    #[error("export with {} failed: {reason}", python.display())]
    Export {
        /// The interpreter.
        python: PathBuf,
        /// Exit status and the end of its output.
        reason: String,
    },
    /// The reference file is malformed or does not fit the bundle.
    #[error("{}: {problem}", file.display())]
    Reference {
        /// parity.json.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The bundle's actions differ from PyTorch's beyond the tolerance.
    #[error("parity gate: the bundle's actions differ from the PyTorch policy's by up to {max_abs_error:e} (sample {}, step {}, joint {}) over {samples} observations, tolerance {tolerance:e}; nothing was written", worst.0, worst.1, worst.2)]
    Parity {
        /// Largest difference.
        max_abs_error: f64,
        /// Where.
        worst: (usize, usize, usize),
        /// Observations compared.
        samples: usize,
        /// The gate.
        tolerance: f64,
    },
    /// The bundle failed to run an observation.
    #[error("the imported bundle failed to run: {0}")]
    Inference(String),
    /// Writing or reading a file failed.
    #[error("{}: {reason}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// Signing, verifying or loading the bundle failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl ImportError {
    pub(crate) fn io(file: &Path, reason: impl Into<String>) -> Self {
        ImportError::Io { file: file.to_path_buf(), reason: reason.into() }
    }
}

/// Everything `import` needs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The `pretrained_model/` folder.
    pub checkpoint: PathBuf,
    /// The bundle folder to create (must not exist).
    pub out: PathBuf,
    /// Signs the bundle.
    pub key: SigningKey,
    /// The robot.
    pub target: Target,
    /// Rate and feature mapping.
    pub map: MapOptions,
    /// Python interpreter of a LeRobot environment.
    pub python: PathBuf,
    /// Largest |bundle − PyTorch| accepted, in action units.
    pub tolerance: f64,
    /// Reference observations.
    pub samples: usize,
    /// Their seed.
    pub seed: u64,
    /// ONNX opset of the export.
    pub opset: u32,
    /// How the graph stores its weights (`Int8`: a quarter of the size, for
    /// image policies whose ResNet backbone alone is ~45 MB in fp32).
    pub weights: WeightStorage,
    /// Bundle name (default: the checkpoint's folder name).
    pub name: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportReport {
    /// The bundle written.
    pub out: PathBuf,
    /// `name version` of the bundle.
    pub policy: String,
    /// The parity gate's measurement.
    pub parity: ParityResult,
    /// The gate.
    pub tolerance: f64,
    /// Versions of the export.
    pub lerobot_version: String,
    /// PyTorch version.
    pub torch_version: String,
    /// The export script's own output (last line).
    pub export_log: String,
    /// `n_action_steps` of the checkpoint: LeRobot executes that many actions
    /// of each chunk; Ganglion's executor replans as the profile says.
    pub n_action_steps: usize,
}

/// The bundle name for a checkpoint folder: `.../<run>/pretrained_model` →
/// `<run>`.
fn default_name(dir: &Path) -> String {
    let last = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = match last(dir) {
        Some(n) if n == "pretrained_model" => dir.parent().and_then(last).unwrap_or(n),
        Some(n) => n,
        None => "lerobot-policy".into(),
    };
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    if clean.is_empty() {
        "lerobot-policy".into()
    } else {
        clean
    }
}

/// The manifest of an imported checkpoint (digests empty until signing);
/// `provenance` carries the export's versions and the parity result.
pub fn manifest_for(
    ckpt: &Checkpoint,
    name: &str,
    tolerance: f64,
    provenance: Provenance,
    latency_ms: f64,
) -> Manifest {
    let n = ckpt.joints.len();
    let mut inputs: Vec<TensorSpec> = ckpt
        .cameras
        .iter()
        .map(|c| TensorSpec {
            name: c.feature.clone(),
            shape: vec![1, c.shape[0], c.shape[1], c.shape[2]],
            dtype: DType::F32,
        })
        .collect();
    inputs.push(TensorSpec { name: "observation.state".into(), shape: vec![1, n], dtype: DType::F32 });
    let graph = GraphSpec {
        file: GRAPH_FILE.into(),
        inputs,
        outputs: vec![TensorSpec { name: "action".into(), shape: vec![1, ckpt.chunk_size, n], dtype: DType::F32 }],
    };
    let reference = provenance.parity.reference.clone();
    Manifest {
        format: FORMAT_VERSION,
        name: name.to_string(),
        version: format!("{}-{}", ckpt.policy_type, &ckpt.weights_sha256[..12.min(ckpt.weights_sha256.len())]),
        precision: Precision::Fp32,
        expected_latency_ms: latency_ms,
        parity_tolerance: tolerance as f32,
        surprise_threshold: None,
        vocab: None,
        text: None,
        graphs: Graphs { policy: Some(graph), ..Graphs::default() },
        dataflow: None,
        provenance: Some(provenance),
        joints: JointsConfig {
            names: ckpt.joints.clone(),
            mean: ckpt.state.mean.clone(),
            std: ckpt.state.std.clone(),
            normalization: NormMode::MeanStd,
            min: Vec::new(),
            max: Vec::new(),
            q01: Vec::new(),
            q99: Vec::new(),
            units: Vec::new(),
        },
        action: ActionConfig {
            kind: ActionKindConfig::Absolute,
            chunk_len: ckpt.chunk_size,
            rate_hz: ckpt.fps,
            mean: ckpt.action.mean.clone(),
            std: ckpt.action.std.clone(),
            normalization: NormMode::MeanStd,
            min: Vec::new(),
            max: Vec::new(),
            q01: Vec::new(),
            q99: Vec::new(),
        },
        cameras: ckpt
            .cameras
            .iter()
            .map(|c| CameraConfig {
                name: c.camera.name.clone(),
                width: c.camera.width,
                height: c.camera.height,
                format: c.camera.format,
                resize: [c.shape[2] as u32, c.shape[1] as u32],
                mean: c.norm.mean.clone(),
                std: c.norm.std.clone(),
                crop: None,
                letterbox: None,
            })
            .collect(),
        files: vec![
            FileEntry { path: GRAPH_FILE.into(), sha256: String::new() },
            FileEntry { path: reference, sha256: String::new() },
        ],
    }
}

/// Runs the export script with `python` into the empty folder `out`.
fn run_export(opts: &ImportOptions, ckpt: &Checkpoint, out: &Path) -> Result<String, ImportError> {
    let python = &opts.python;
    let fail = |reason: String| ImportError::Export { python: python.clone(), reason };
    let scratch = tempfile::tempdir().map_err(|e| ImportError::io(Path::new("(temp dir)"), e.to_string()))?;
    let script = scratch.path().join("export_act.py");
    std::fs::write(&script, EXPORT_ACT_PY).map_err(|e| ImportError::io(&script, e.to_string()))?;
    let checkpoint = std::path::absolute(&ckpt.dir).map_err(|e| ImportError::io(&ckpt.dir, e.to_string()))?;
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg("--checkpoint")
        .arg(&checkpoint)
        .arg("--out")
        .arg(out)
        .arg("--samples")
        .arg(opts.samples.to_string())
        .arg("--seed")
        .arg(opts.seed.to_string())
        .arg("--opset")
        .arg(opts.opset.to_string())
        .arg("--weights")
        .arg(opts.weights.as_str())
        .env("HF_HUB_OFFLINE", "1");
    if ckpt.environment_state_from_joints {
        cmd.arg("--environment-state-from-joints");
    }
    let output = cmd.output().map_err(|e| {
        fail(format!("cannot run it: {e} (give --python the interpreter of a LeRobot environment: docs/POLICIES.md)"))
    })?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    if !output.status.success() {
        // 127: the interpreter was not found after all (a wrapper or an
        // emulator such as qemu-user execs it in a child and reports so).
        if output.status.code() == Some(127) {
            return Err(fail(format!(
                "cannot run it: {} (give --python the interpreter of a LeRobot environment: docs/POLICIES.md)",
                output.status
            )));
        }
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(12)..].join("\n");
        return Err(fail(format!("{}:\n{tail}", output.status)));
    }
    Ok(stdout.lines().last().unwrap_or("").to_string())
}

/// Imports a checkpoint (see the module docs for the steps).
pub fn import_lerobot(opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    if opts.out.exists() || opts.out.is_symlink() {
        return Err(ImportError::OutExists { out: opts.out.clone() });
    }
    if !(opts.tolerance.is_finite() && opts.tolerance >= 0.0) {
        return Err(ImportError::Checkpoint {
            file: opts.checkpoint.clone(),
            key: "(--tolerance)".into(),
            problem: format!("{}: expected a finite number >= 0", opts.tolerance),
        });
    }
    let ckpt = read_checkpoint(&opts.checkpoint, &opts.target, &opts.map)?;
    let parent = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(ImportError::io(&parent, "the output's parent folder does not exist"));
    }
    // Beside the output, so the final rename stays on one file system; removed
    // when dropped (any error below).
    let tmp = tempfile::Builder::new()
        .prefix(".ganglion-import-")
        .tempdir_in(&parent)
        .map_err(|e| ImportError::io(&parent, format!("cannot create a temporary folder: {e}")))?;
    let dir = tmp.path();
    let export_log = run_export(opts, &ckpt, dir)?;
    for f in [GRAPH_FILE, parity::REFERENCE_FILE] {
        if !dir.join(f).is_file() {
            return Err(ImportError::Export {
                python: opts.python.clone(),
                reason: format!("it exited 0 but wrote no {f}"),
            });
        }
    }
    let ref_path = dir.join(parity::REFERENCE_FILE);
    let ref_bytes = std::fs::read(&ref_path).map_err(|e| ImportError::io(&ref_path, e.to_string()))?;
    let reference = Reference::parse(&ref_bytes, &ref_path)?;
    if reference.policy_type != ckpt.policy_type {
        return Err(ImportError::Reference {
            file: ref_path,
            problem: format!("policy type `{}`, the checkpoint's is `{}`", reference.policy_type, ckpt.policy_type),
        });
    }
    let name = opts.name.clone().unwrap_or_else(|| default_name(&ckpt.dir));
    let mut provenance = Provenance {
        source: reference.source.clone(),
        policy_type: ckpt.policy_type.clone(),
        lerobot_version: reference.lerobot_version.clone(),
        torch_version: reference.torch_version.clone(),
        onnx_opset: reference.onnx_opset,
        checkpoint_sha256: ckpt.weights_sha256.clone(),
        weights: opts.weights,
        parity: ParityReport {
            reference: parity::REFERENCE_FILE.into(),
            samples: reference.samples.len(),
            max_abs_error: 0.0,
            tolerance: opts.tolerance,
            backend: "tract".into(),
        },
    };
    let write_signed = |m: &Manifest| -> Result<Manifest, ImportError> {
        let path = dir.join(crate::MANIFEST_FILE);
        std::fs::write(&path, m.to_canonical_toml()).map_err(|e| ImportError::io(&path, e.to_string()))?;
        Ok(crate::sign_bundle(dir, &opts.key)?)
    };
    write_signed(&manifest_for(&ckpt, &name, opts.tolerance, provenance.clone(), 1.0))?;
    let result = parity::check_bundle(dir, &opts.key.verifying_key(), Some(&reference))?;
    if result.max_abs_error.is_nan() || result.max_abs_error > opts.tolerance {
        return Err(ImportError::Parity {
            max_abs_error: result.max_abs_error,
            worst: result.worst,
            samples: result.samples,
            tolerance: opts.tolerance,
        });
    }
    provenance.parity.max_abs_error = result.max_abs_error;
    // The executor starts from this; measured here on tract, rounded up.
    let latency = (result.max_inference_ms * 1.5).ceil().max(1.0);
    let manifest = write_signed(&manifest_for(&ckpt, &name, opts.tolerance, provenance, latency))?;
    if opts.out.exists() || opts.out.is_symlink() {
        return Err(ImportError::OutExists { out: opts.out.clone() });
    }
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, &opts.out) {
        let _ = std::fs::remove_dir_all(&kept);
        return Err(ImportError::io(&opts.out, format!("cannot move the bundle into place: {e}")));
    }
    Ok(ImportReport {
        out: opts.out.clone(),
        policy: format!("{} {}", manifest.name, manifest.version),
        parity: result,
        tolerance: opts.tolerance,
        lerobot_version: reference.lerobot_version,
        torch_version: reference.torch_version,
        export_log,
        n_action_steps: ckpt.n_action_steps,
    })
}
