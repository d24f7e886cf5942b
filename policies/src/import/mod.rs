//! `ganglion policy import`: a LeRobot checkpoint (`pretrained_model/`)
//! into a signed bundle, behind a parity gate.
//!
//! 1. [`lerobot::read_checkpoint`] reads `config.json` and the processor
//!    files and maps the checkpoint onto the robot ([`Target`]): an
//!    unsupported policy type, a feature the robot has no source for, a
//!    normalized feature without statistics are refused by name.
//! 2. The export script of the policy type (`policies/lerobot/export_act.py`
//!    or `export_diffusion.py`, built into this crate) runs in a LeRobot
//!    environment (`--python`): it loads the checkpoint with LeRobot's
//!    classes and writes the graphs and the reference — ACT: `policy.onnx`
//!    and reference observations with PyTorch's actions (`parity.json`);
//!    Diffusion: `encoder.onnx`, `step.onnx`, a format-2 `policy.toml` and
//!    the golden (`golden.json`: observations, every noise tensor LeRobot's
//!    sampling loop drew, its actions).
//! 3. `policy.toml` is written — ACT: from the mapping ([`manifest_for`]);
//!    Diffusion: the export's, after checking it against the mapping (joints
//!    and their order, normalization, cameras and sizes, rate, chunk, history,
//!    steps and scheduler: [`check_diffusion_export`]), so the Python side
//!    cannot silently disagree — and the bundle is signed.
//! 4. The bundle runs on tract on the reference observations
//!    ([`parity::check_bundle`]; Diffusion: [`parity::run_golden`], with the
//!    golden's noise replayed); when any action differs from PyTorch's by
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

pub use lerobot::{read_checkpoint, Checkpoint, DiffusionHead, Family, MapOptions, Target};
pub use parity::{DiffusionGolden, ParityResult, Reference};

/// The ACT export script, as kept in the repository.
pub const EXPORT_ACT_PY: &str = include_str!("../../lerobot/export_act.py");
/// The Diffusion export script (it imports `export_act.py`'s INT8 weights).
pub const EXPORT_DIFFUSION_PY: &str = include_str!("../../lerobot/export_diffusion.py");
/// The Diffusion fixtures' script: `export_diffusion.py` imports its tiny
/// ResNet for the one checkpoint that uses it (the image-history fixture).
pub const MAKE_DIFFUSION_FIXTURE_PY: &str = include_str!("../../lerobot/make_diffusion_fixture.py");

/// The scripts written into the export's scratch folder: the family's
/// exporter and every module of `policies/lerobot/` it imports
/// (`export_diffusion.py` imports `export_act.py`, and for the fixture's
/// tiny backbone `make_diffusion_fixture.py`).
const EXPORT_SCRIPTS: &[(&str, &str)] = &[
    ("export_act.py", EXPORT_ACT_PY),
    ("export_diffusion.py", EXPORT_DIFFUSION_PY),
    ("make_diffusion_fixture.py", MAKE_DIFFUSION_FIXTURE_PY),
];
/// The graph file of an imported ACT bundle.
pub const GRAPH_FILE: &str = "policy.onnx";
/// The graph files of an imported Diffusion bundle.
pub const DIFFUSION_GRAPH_FILES: [&str; 2] = ["encoder.onnx", "step.onnx"];

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
    /// The export's `policy.toml` disagrees with the checkpoint's mapping.
    #[error("{}: key `{key}`: the export wrote {exported}, the checkpoint's mapping onto the robot says {expected}; nothing was written", file.display())]
    ExportMismatch {
        /// The exported policy.toml.
        file: PathBuf,
        /// Dotted manifest key.
        key: String,
        /// What the export wrote.
        exported: String,
        /// What the mapping says.
        expected: String,
    },
    /// The bundle's actions differ from PyTorch's beyond the tolerance.
    #[error("parity gate: the bundle's actions differ from the PyTorch policy's by up to {max_abs_error:e} (sample {}, step {}, joint {}) over {samples} observations, tolerance {tolerance:e}{hint}; nothing was written", worst.0, worst.1, worst.2)]
    Parity {
        /// What the export measured, when it helps (`--weights int8`).
        hint: String,
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
    /// Reference observations (Diffusion: chunks, over two episodes).
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
    /// Diffusion with a camera: the LeRobotDataset root whose frames are the
    /// golden's observations (default: `train_config.json`'s
    /// `dataset.root`).
    pub dataset: Option<PathBuf>,
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
        .map(|c| TensorSpec::fixed(c.feature.clone(), vec![1, c.shape[0], c.shape[1], c.shape[2]], DType::F32))
        .collect();
    inputs.push(TensorSpec::fixed("observation.state", vec![1, n], DType::F32));
    let graph = GraphSpec {
        file: GRAPH_FILE.into(),
        inputs,
        outputs: vec![TensorSpec::fixed("action", vec![1, ckpt.chunk_size, n], DType::F32)],
    };
    let reference = provenance.parity.reference.clone();
    Manifest {
        format: FORMAT_VERSION,
        name: name.to_string(),
        version: bundle_version(ckpt),
        precision: Precision::Fp32,
        expected_latency_ms: latency_ms,
        parity_tolerance: tolerance as f32,
        surprise_threshold: None,
        max_batch: None,
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
            units: ckpt.units.clone(),
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
            relative: false,
            relative_exclude: Vec::new(),
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
                antialias: false,
                absent: false,
            })
            .collect(),
        files: vec![
            FileEntry { path: GRAPH_FILE.into(), sha256: String::new() },
            FileEntry { path: reference, sha256: String::new() },
        ],
    }
}

/// `<policy type>-<first 12 hex digits of the weights' SHA-256>`.
fn bundle_version(ckpt: &Checkpoint) -> String {
    format!("{}-{}", ckpt.policy_type, &ckpt.weights_sha256[..12.min(ckpt.weights_sha256.len())])
}

/// Runs the export script of the checkpoint's family with `python` into the
/// empty folder `out`.
fn run_export(opts: &ImportOptions, ckpt: &Checkpoint, name: &str, out: &Path) -> Result<String, ImportError> {
    let python = &opts.python;
    let fail = |reason: String| ImportError::Export { python: python.clone(), reason };
    let scratch = tempfile::tempdir().map_err(|e| ImportError::io(Path::new("(temp dir)"), e.to_string()))?;
    for &(file, text) in EXPORT_SCRIPTS {
        let path = scratch.path().join(file);
        std::fs::write(&path, text).map_err(|e| ImportError::io(&path, e.to_string()))?;
    }
    let checkpoint = std::path::absolute(&ckpt.dir).map_err(|e| ImportError::io(&ckpt.dir, e.to_string()))?;
    let mut cmd = Command::new(python);
    match &ckpt.family {
        Family::Act => {
            cmd.arg(scratch.path().join("export_act.py"))
                .arg("--checkpoint")
                .arg(&checkpoint)
                .arg("--out")
                .arg(out)
                .arg("--samples")
                .arg(opts.samples.to_string());
            if ckpt.environment_state_from_joints {
                cmd.arg("--environment-state-from-joints");
            }
        }
        Family::Diffusion(_) => {
            // The golden's observations: two episodes (the second after a
            // history reset) unless one sample is asked for.
            let episodes = opts.samples.clamp(1, 2);
            let steps = opts.samples.div_ceil(episodes).max(1);
            cmd.arg(scratch.path().join("export_diffusion.py"))
                .arg("--checkpoint")
                .arg(&checkpoint)
                .arg("--out")
                .arg(out)
                .arg("--golden")
                .arg(out.join(parity::GOLDEN_FILE))
                .arg("--name")
                .arg(name)
                .arg("--joints")
                .arg(ckpt.joints.join(","))
                .arg("--fps")
                .arg(ckpt.fps.to_string())
                .arg("--episodes")
                .arg(episodes.to_string())
                .arg("--steps")
                .arg(steps.to_string());
            if let Some(d) = &opts.dataset {
                cmd.arg("--dataset").arg(std::path::absolute(d).map_err(|e| ImportError::io(d, e.to_string()))?);
            }
        }
    }
    cmd.arg("--seed")
        .arg(opts.seed.to_string())
        .arg("--opset")
        .arg(opts.opset.to_string())
        .arg("--weights")
        .arg(opts.weights.as_str())
        .env("HF_HUB_OFFLINE", "1");
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
    let name = opts.name.clone().unwrap_or_else(|| default_name(&ckpt.dir));
    let export_log = run_export(opts, &ckpt, &name, dir)?;
    let wrote = |files: &[&str]| -> Result<(), ImportError> {
        match files.iter().find(|f| !dir.join(f).is_file()) {
            Some(f) => Err(ImportError::Export {
                python: opts.python.clone(),
                reason: format!("it exited 0 but wrote no {f}"),
            }),
            None => Ok(()),
        }
    };
    let write_signed = |m: &Manifest| -> Result<Manifest, ImportError> {
        let path = dir.join(crate::MANIFEST_FILE);
        std::fs::write(&path, m.to_canonical_toml()).map_err(|e| ImportError::io(&path, e.to_string()))?;
        Ok(crate::sign_bundle(dir, &opts.key)?)
    };
    let key = opts.key.verifying_key();
    let (manifest, result, versions) = match &ckpt.family {
        Family::Act => {
            wrote(&[GRAPH_FILE, parity::REFERENCE_FILE])?;
            let ref_path = dir.join(parity::REFERENCE_FILE);
            let ref_bytes = std::fs::read(&ref_path).map_err(|e| ImportError::io(&ref_path, e.to_string()))?;
            let reference = Reference::parse(&ref_bytes, &ref_path)?;
            if reference.policy_type != ckpt.policy_type {
                return Err(ImportError::Reference {
                    file: ref_path,
                    problem: format!(
                        "policy type `{}`, the checkpoint's is `{}`",
                        reference.policy_type, ckpt.policy_type
                    ),
                });
            }
            let versions = Versions::of(&reference.source, &reference.lerobot_version, &reference.torch_version);
            let provenance = provenance(
                &ckpt,
                opts,
                &versions,
                reference.onnx_opset,
                parity::REFERENCE_FILE,
                reference.samples.len(),
            );
            let build = |p: Provenance, latency: f64| manifest_for(&ckpt, &name, opts.tolerance, p, latency);
            let check = || parity::check_bundle(dir, &key, &opts.target.joint_ranges, Some(&reference));
            let (m, r) = gate(opts, provenance, build, check, String::new(), &write_signed)?;
            (m, r, versions)
        }
        Family::Diffusion(head) => {
            let mut files = DIFFUSION_GRAPH_FILES.to_vec();
            files.extend([crate::MANIFEST_FILE, parity::GOLDEN_FILE]);
            wrote(&files)?;
            let read = |p: &Path| std::fs::read(p).map_err(|e| ImportError::io(p, e.to_string()));
            let toml_path = dir.join(crate::MANIFEST_FILE);
            let exported = Manifest::parse(&read(&toml_path)?, &toml_path)?;
            check_diffusion_export(&exported, &ckpt, head, &toml_path)?;
            let golden_path = dir.join(parity::GOLDEN_FILE);
            let golden = DiffusionGolden::parse(&read(&golden_path)?, &golden_path)?;
            check_golden(&golden, &ckpt, head, &golden_path)?;
            let versions = Versions::of(&golden.source, &golden.lerobot_version, &golden.torch_version);
            let chunks = golden.observations().count();
            let provenance = provenance(&ckpt, opts, &versions, golden.onnx_opset, parity::GOLDEN_FILE, chunks);
            let build =
                |p: Provenance, latency: f64| diffusion_manifest(&exported, &ckpt, &name, opts.tolerance, p, latency);
            let check = || {
                let mut policy = parity::load_on_tract(dir, &key, &opts.target.joint_ranges)?;
                parity::run_golden(&mut policy, &golden, &golden_path)
            };
            let hint = match golden.bundle_max_abs {
                Some(b) if b > opts.tolerance => format!(
                    " (the export measured {b:e} for these graphs on ONNX Runtime with LeRobot's scheduler{}: give --tolerance above it)",
                    if opts.weights == WeightStorage::Int8 { ", the int8 weights' rounding" } else { "" }
                ),
                _ => String::new(),
            };
            let (m, r) = gate(opts, provenance, build, check, hint, &write_signed)?;
            (m, r, versions)
        }
    };
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
        lerobot_version: versions.lerobot,
        torch_version: versions.torch,
        export_log,
        n_action_steps: ckpt.n_action_steps,
    })
}

/// Where the export says it came from.
struct Versions {
    source: String,
    lerobot: String,
    torch: String,
}

impl Versions {
    fn of(source: &str, lerobot: &str, torch: &str) -> Self {
        Versions { source: source.into(), lerobot: lerobot.into(), torch: torch.into() }
    }
}

/// `[provenance]` before the gate (its error still 0).
fn provenance(
    ckpt: &Checkpoint,
    opts: &ImportOptions,
    v: &Versions,
    onnx_opset: u32,
    reference: &str,
    samples: usize,
) -> Provenance {
    Provenance {
        source: v.source.clone(),
        policy_type: ckpt.policy_type.clone(),
        lerobot_version: v.lerobot.clone(),
        torch_version: v.torch.clone(),
        onnx_opset,
        checkpoint_sha256: ckpt.weights_sha256.clone(),
        weights: opts.weights,
        parity: ParityReport {
            reference: reference.into(),
            samples,
            max_abs_error: 0.0,
            tolerance: opts.tolerance,
            backend: "tract".into(),
        },
    }
}

/// The parity gate: writes and signs `build(provenance, 1 ms)`, runs
/// `check` on the signed bundle, refuses an error beyond the tolerance
/// (with `hint`), then writes and signs the manifest with the measured
/// error and latency.
fn gate(
    opts: &ImportOptions,
    mut provenance: Provenance,
    build: impl Fn(Provenance, f64) -> Manifest,
    check: impl FnOnce() -> Result<ParityResult, ImportError>,
    hint: String,
    write_signed: &dyn Fn(&Manifest) -> Result<Manifest, ImportError>,
) -> Result<(Manifest, ParityResult), ImportError> {
    write_signed(&build(provenance.clone(), 1.0))?;
    let result = check()?;
    if result.max_abs_error.is_nan() || result.max_abs_error > opts.tolerance {
        return Err(ImportError::Parity {
            hint,
            max_abs_error: result.max_abs_error,
            worst: result.worst,
            samples: result.samples,
            tolerance: opts.tolerance,
        });
    }
    provenance.parity.max_abs_error = result.max_abs_error;
    // The executor starts from this; measured here on tract, rounded up.
    let latency = (result.max_inference_ms * 1.5).ceil().max(1.0);
    let manifest = write_signed(&build(provenance, latency))?;
    Ok((manifest, result))
}

/// The manifest of an imported Diffusion checkpoint: the export's
/// `policy.toml` (checked by [`check_diffusion_export`]) with the bundle's
/// name and version, the measured latency, the gate's tolerance,
/// `[provenance]` and the files (digests empty until signing).
pub fn diffusion_manifest(
    exported: &Manifest,
    ckpt: &Checkpoint,
    name: &str,
    tolerance: f64,
    provenance: Provenance,
    latency_ms: f64,
) -> Manifest {
    let reference = provenance.parity.reference.clone();
    let mut m = exported.clone();
    m.name = name.to_string();
    m.version = bundle_version(ckpt);
    m.precision = Precision::Fp32;
    m.expected_latency_ms = latency_ms;
    m.parity_tolerance = tolerance as f32;
    m.provenance = Some(provenance);
    m.joints.units = ckpt.units.clone();
    m.files = DIFFUSION_GRAPH_FILES
        .iter()
        .map(|f| f.to_string())
        .chain([reference])
        .map(|path| FileEntry { path, sha256: String::new() })
        .collect();
    m
}

/// Whether exported normalization values are the mapping's (the export
/// computes them in f64 from the same f32 statistics; the mapping in f32).
fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1.0))
}

/// Checks the `policy.toml` the Diffusion export wrote (`file`) against the
/// checkpoint's mapping onto the robot: format 2 with an iterative head,
/// joints (names, order, normalization), action (rate, chunk,
/// de-normalization), cameras (names, sizes, normalization), `obs.state`
/// history, denoising steps, chunk offset and scheduler.
pub fn check_diffusion_export(
    m: &Manifest,
    ckpt: &Checkpoint,
    head: &DiffusionHead,
    file: &Path,
) -> Result<(), ImportError> {
    let mismatch = |key: &str, exported: String, expected: String| {
        Err(ImportError::ExportMismatch { file: file.to_path_buf(), key: key.into(), exported, expected })
    };
    if m.format != 2 {
        return mismatch("format", m.format.to_string(), "2".into());
    }
    let Some(df) = &m.dataflow else { return mismatch("dataflow", "none".into(), "a dataflow".into()) };
    let Some(h) = &df.head else { return mismatch("dataflow.head", "none".into(), "an iterative head".into()) };
    if m.joints.names != ckpt.joints {
        return mismatch("joints.names", format!("{:?}", m.joints.names), format!("{:?}", ckpt.joints));
    }
    for (key, got, want) in [
        ("joints.mean", &m.joints.mean, &ckpt.state.mean),
        ("joints.std", &m.joints.std, &ckpt.state.std),
        ("action.mean", &m.action.mean, &ckpt.action.mean),
        ("action.std", &m.action.std, &ckpt.action.std),
    ] {
        if !close(got, want) {
            return mismatch(key, format!("{got:?}"), format!("{want:?}"));
        }
    }
    if m.joints.normalization != NormMode::MeanStd || m.action.normalization != NormMode::MeanStd {
        return mismatch("joints/action.normalization", "not mean_std".into(), "mean_std".into());
    }
    if m.action.rate_hz != ckpt.fps {
        return mismatch("action.rate_hz", m.action.rate_hz.to_string(), format!("{} (--fps)", ckpt.fps));
    }
    if m.action.kind != ActionKindConfig::Absolute {
        return mismatch("action.kind", format!("{:?}", m.action.kind), "absolute".into());
    }
    if m.action.chunk_len != ckpt.chunk_size {
        return mismatch(
            "action.chunk_len",
            m.action.chunk_len.to_string(),
            format!("{} (n_action_steps)", ckpt.chunk_size),
        );
    }
    let names =
        |c: &mut dyn Iterator<Item = (String, u32, u32)>| c.map(|(n, w, h)| format!("{n} {w}x{h}")).collect::<Vec<_>>();
    let got = names(&mut m.cameras.iter().map(|c| (c.name.clone(), c.width, c.height)));
    let want = names(&mut ckpt.cameras.iter().map(|c| (c.camera.name.clone(), c.camera.width, c.camera.height)));
    if got != want {
        return mismatch("cameras", format!("{got:?}"), format!("{want:?}"));
    }
    for (i, (c, w)) in m.cameras.iter().zip(&ckpt.cameras).enumerate() {
        if c.resize != [w.shape[2] as u32, w.shape[1] as u32] || c.crop.is_some() || c.letterbox.is_some() {
            return mismatch(
                &format!("cameras[{i}]"),
                "a resize, crop or letterbox".into(),
                "the whole frame as delivered".into(),
            );
        }
        if c.format != w.camera.format {
            return mismatch(
                &format!("cameras[{i}].format"),
                format!("{:?}", c.format),
                format!("{:?}", w.camera.format),
            );
        }
        if !close(&c.mean, &w.norm.mean) || !close(&c.std, &w.norm.std) {
            return mismatch(
                &format!("cameras[{i}].mean/std"),
                format!("{:?} / {:?}", c.mean, c.std),
                format!("{:?} / {:?}", w.norm.mean, w.norm.std),
            );
        }
    }
    for (i, w) in df.wires.iter().enumerate().filter(|(_, w)| w.from == "obs.state") {
        if w.history.unwrap_or(1) != head.n_obs_steps {
            return mismatch(
                &format!("dataflow.wires[{i}].history"),
                format!("{:?}", w.history),
                format!("{} (n_obs_steps)", head.n_obs_steps),
            );
        }
    }
    if h.steps != head.steps {
        return mismatch("dataflow.head.steps", h.steps.to_string(), format!("{} (num_inference_steps)", head.steps));
    }
    if h.chunk_offset.unwrap_or(0) != head.n_obs_steps - 1 {
        return mismatch(
            "dataflow.head.chunk_offset",
            format!("{:?}", h.chunk_offset),
            format!("{} (n_obs_steps - 1)", head.n_obs_steps - 1),
        );
    }
    // The resolved schedules (diffusers' defaults filled in) must be equal.
    let resolved = |s: &crate::manifest::ScheduleSpec| match s.build(head.steps) {
        Ok(crate::schedule::Scheduler::Diffusion(d)) => Some(d.config().clone()),
        _ => None,
    };
    let (got, want) = (resolved(&h.schedule), resolved(&head.schedule));
    if got.is_none() || got != want {
        return mismatch("dataflow.head.schedule", format!("{got:?}"), format!("{want:?}"));
    }
    Ok(())
}

/// The golden must describe the checkpoint's loop and the bundle's chunk.
fn check_golden(g: &DiffusionGolden, ckpt: &Checkpoint, head: &DiffusionHead, file: &Path) -> Result<(), ImportError> {
    let got = (g.n_obs_steps, g.horizon, g.n_action_steps, g.num_inference_steps);
    let want = (head.n_obs_steps, head.horizon, ckpt.chunk_size, head.steps);
    if got != want {
        return Err(ImportError::Reference {
            file: file.to_path_buf(),
            problem: format!(
                "(n_obs_steps, horizon, n_action_steps, num_inference_steps) {got:?}, the checkpoint's are {want:?}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The export runs in a scratch folder holding only [`super::EXPORT_SCRIPTS`]:
    /// a script importing another of `policies/lerobot/` that is not among
    /// them fails on every real checkpoint (`ModuleNotFoundError`), which the
    /// tests' stand-in interpreter would not notice.
    #[test]
    fn every_local_module_the_export_scripts_import_is_written_beside_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lerobot");
        let written: Vec<&str> = super::EXPORT_SCRIPTS.iter().map(|(f, _)| f.trim_end_matches(".py")).collect();
        for (file, text) in super::EXPORT_SCRIPTS {
            for line in text.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("from ").or_else(|| line.strip_prefix("import ")) else { continue };
                let module = rest.split([' ', '.', ',']).next().unwrap_or("");
                if dir.join(format!("{module}.py")).exists() {
                    assert!(written.contains(&module), "{file} imports {module}.py, which the export does not write");
                }
            }
        }
    }
}
