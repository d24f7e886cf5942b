//! A LeRobot `pretrained_model/` folder read and mapped onto a robot: the
//! policy's `config.json`, the pre/post-processor pipelines
//! (`policy_preprocessor.json`, `policy_postprocessor.json`) and the
//! normalization statistics their state files hold.
//!
//! Every LeRobot normalization mode is affine per element, so each becomes
//! the bundle's `mean`/`std` (`x_norm = (x − mean) / std`), computed in f32
//! as LeRobot computes it:
//!
//! | mode | normalize (inputs) | bundle mean, std |
//! |---|---|---|
//! | `MEAN_STD` | `(x − mean) / (std + eps)` | `mean`, `std + eps` (the action: `std`, LeRobot de-normalizes without eps) |
//! | `MIN_MAX` | `2 (x − min) / d − 1`, `d = max − min` (eps when 0) | `min + d/2`, `d/2` |
//! | `QUANTILES` | as `MIN_MAX` with `q01`, `q99` | |
//! | `QUANTILE10` | as `MIN_MAX` with `q10`, `q90` | |
//! | `IDENTITY` | `x` | 0, 1 |
//!
//! LeRobot silently skips a feature whose statistics are missing; the
//! importer refuses it instead (the policy was trained on normalized data).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ganglion_core::{CameraSpec, PixelFormat};
use serde_json::Value;

use super::safetensors::{self, Tensors};
use super::ImportError;
use crate::manifest::{ScheduleKind, ScheduleSpec};

/// The policy types `ganglion policy import` exports.
pub const SUPPORTED_TYPES: &[&str] = &["act", "diffusion"];

/// What the checkpoint's policy type makes of the bundle.
#[derive(Debug, Clone, PartialEq)]
pub enum Family {
    /// ACT: format 1, one `policy` graph, the chunk in one run.
    Act,
    /// Diffusion Policy: format 2, an encoder and a UNet step graph run
    /// under LeRobot's noise scheduler.
    Diffusion(DiffusionHead),
}

/// A Diffusion Policy checkpoint's sampling loop, from its `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionHead {
    /// `n_obs_steps`: observations of history on the state wires (1 with a
    /// camera: format 2 keeps no image history).
    pub n_obs_steps: usize,
    /// `horizon`: actions the UNet denoises; the chunk is `n_action_steps`
    /// of them from `n_obs_steps - 1` on.
    pub horizon: usize,
    /// `num_inference_steps` (`num_train_timesteps` when null, as LeRobot).
    pub steps: usize,
    /// The scheduler LeRobot builds from the config (`noise_scheduler_type`,
    /// `num_train_timesteps`, `beta_*`, `prediction_type`, `clip_sample*`;
    /// diffusers' defaults for the rest), checked buildable by Ganglion.
    pub schedule: ScheduleSpec,
}

/// The robot a checkpoint is mapped onto (from its profile).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Joint names in command order: `observation.state` and `action` are
    /// these joints, in this order.
    pub joints: Vec<String>,
    /// The cameras the robot has (`observation.images.<name>` ↔ `name`).
    pub cameras: Vec<CameraSpec>,
    /// The control loop's rate (`[control] rate_hz`), Hz: a policy faster
    /// than the loop is refused (its actions would fall between ticks).
    pub loop_rate_hz: Option<f64>,
    /// The unit of each joint in the checkpoint's data (LeRobot's SO-101:
    /// `deg` with `use_degrees`, else `range_m100_100`; its gripper
    /// `range_0_100`): the bundle's `[joints] units`. One per joint, or
    /// empty for radians.
    pub units: Vec<crate::manifest::JointUnit>,
    /// The arm's calibrated range per joint, which the range units need
    /// (the parity gate converts the reference's values to radians with
    /// it); empty: none.
    pub joint_ranges: Vec<crate::preprocess::JointRange>,
}

/// How a checkpoint is mapped (what is not in the checkpoint itself).
#[derive(Debug, Clone, PartialEq)]
pub struct MapOptions {
    /// The policy rate (the training dataset's fps); read from
    /// `train_config.json` (`env.fps`) when not given.
    pub fps: Option<f64>,
    /// Feed `observation.environment_state` from the joints: allowed only
    /// when it has the joint state's shape and normalization.
    pub environment_state_from_joints: bool,
}

/// One normalized vector feature as the bundle stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Affine {
    /// LeRobot's mode (`MEAN_STD`, …).
    pub mode: String,
    /// Bundle mean.
    pub mean: Vec<f32>,
    /// Bundle std (> 0).
    pub std: Vec<f32>,
}

/// A camera input of the checkpoint, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedCamera {
    /// `observation.images.<name>`.
    pub feature: String,
    /// The profile's camera.
    pub camera: CameraSpec,
    /// Channels, height, width of the policy input.
    pub shape: [usize; 3],
    /// Per channel, on pixel / 255.
    pub norm: Affine,
}

/// The checkpoint read and mapped onto the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The folder.
    pub dir: PathBuf,
    /// `act` or `diffusion`.
    pub policy_type: String,
    /// What the policy type makes of the bundle.
    pub family: Family,
    /// Joints (state and action dimension).
    pub joints: Vec<String>,
    /// Actions per chunk the bundle hands out: ACT's `chunk_size`,
    /// Diffusion's `n_action_steps`.
    pub chunk_size: usize,
    /// `n_action_steps` (what LeRobot executes of each chunk; informational).
    pub n_action_steps: usize,
    /// Policy rate, Hz.
    pub fps: f64,
    /// Image inputs in the checkpoint's order.
    pub cameras: Vec<MappedCamera>,
    /// `observation.state` normalization.
    pub state: Affine,
    /// `action` de-normalization.
    pub action: Affine,
    /// Whether `observation.environment_state` is fed from the joints.
    pub environment_state_from_joints: bool,
    /// SHA-256 of `model.safetensors`.
    pub weights_sha256: String,
    /// The joints' units ([`Target::units`]).
    pub units: Vec<crate::manifest::JointUnit>,
}

fn checkpoint_err(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> ImportError {
    ImportError::Checkpoint { file: file.to_path_buf(), key: key.into(), problem: problem.into() }
}

fn feature_err(file: &Path, feature: &str, problem: impl Into<String>) -> ImportError {
    ImportError::Feature { file: file.to_path_buf(), feature: feature.to_string(), problem: problem.into() }
}

fn read_json(file: &Path) -> Result<Value, ImportError> {
    let text = std::fs::read_to_string(file).map_err(|e| ImportError::io(file, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| checkpoint_err(file, "(document)", format!("not JSON: {e}")))
}

fn get<'a>(v: &'a Value, file: &Path, key: &str) -> Result<&'a Value, ImportError> {
    v.get(key).ok_or_else(|| checkpoint_err(file, key, "missing"))
}

fn get_usize(v: &Value, file: &Path, key: &str) -> Result<usize, ImportError> {
    get(v, file, key)?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| checkpoint_err(file, key, "expected a non-negative integer"))
}

/// A feature of `input_features` / `output_features`.
#[derive(Debug, Clone)]
struct Feature {
    kind: String,
    shape: Vec<usize>,
}

fn features(v: &Value, file: &Path, key: &str) -> Result<Vec<(String, Feature)>, ImportError> {
    let map = get(v, file, key)?.as_object().ok_or_else(|| checkpoint_err(file, key, "expected an object"))?;
    map.iter()
        .map(|(name, f)| {
            let k = format!("{key}.{name}");
            let kind = f
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| checkpoint_err(file, format!("{k}.type"), "expected a string"))?;
            let shape = f
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect())
                .ok_or_else(|| checkpoint_err(file, format!("{k}.shape"), "expected a list of sizes"))?;
            Ok((name.clone(), Feature { kind: kind.to_string(), shape }))
        })
        .collect()
}

/// A normalizer step of a processor pipeline.
struct Normalizer {
    file: PathBuf,
    eps: f32,
    features: BTreeMap<String, String>,
    norm_map: BTreeMap<String, String>,
    only_keys: Option<Vec<String>>,
    stats: Tensors,
}

impl Normalizer {
    /// The feature's mode as LeRobot applies it: its type's mode when the step
    /// lists the feature, else `IDENTITY`.
    fn mode(&self, feature: &str) -> String {
        let listed = self.features.get(feature);
        let selected = self.only_keys.as_ref().is_none_or(|k| k.iter().any(|k| k == feature));
        match listed {
            Some(kind) if selected || kind == "ACTION" => {
                self.norm_map.get(kind).cloned().unwrap_or_else(|| "IDENTITY".into())
            }
            _ => "IDENTITY".into(),
        }
    }

    /// The bundle's mean/std for `feature` of `len` values (`per` values of
    /// each statistic, broadcast: 3 channels for an image).
    fn affine(&self, feature: &str, per: usize, inverse: bool) -> Result<Affine, ImportError> {
        let mode = self.mode(feature);
        let stat = |name: &str| -> Result<Vec<f32>, ImportError> {
            let key = format!("{feature}.{name}");
            let found: Vec<&str> = self
                .stats
                .tensors
                .keys()
                .filter_map(|k| k.strip_prefix(feature).and_then(|s| s.strip_prefix('.')))
                .collect();
            let t = self.stats.tensors.get(&key).ok_or_else(|| {
                feature_err(
                    &self.stats.file,
                    feature,
                    format!(
                        "normalized with {mode} but the statistic `{key}` is missing (found: {}); \
                         LeRobot would silently feed it unnormalized",
                        if found.is_empty() { "none".to_string() } else { found.join(", ") }
                    ),
                )
            })?;
            if t.values.len() != per {
                return Err(feature_err(
                    &self.stats.file,
                    feature,
                    format!("statistic `{key}` has {} values (shape {:?}), expected {per}", t.values.len(), t.shape),
                ));
            }
            if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
                return Err(feature_err(&self.stats.file, feature, format!("statistic `{key}`[{i}] is not finite")));
            }
            Ok(t.values.clone())
        };
        let range = |lo: &str, hi: &str| -> Result<(Vec<f32>, Vec<f32>), ImportError> {
            let (lo, hi) = (stat(lo)?, stat(hi)?);
            let (mut mean, mut std) = (Vec::with_capacity(per), Vec::with_capacity(per));
            for (l, h) in lo.iter().zip(&hi) {
                let d = if h - l == 0.0 { self.eps } else { h - l };
                mean.push((f64::from(*l) + f64::from(d) / 2.0) as f32);
                std.push((f64::from(d) / 2.0) as f32);
            }
            Ok((mean, std))
        };
        let (mean, std) = match mode.as_str() {
            "IDENTITY" => (vec![0.0; per], vec![1.0; per]),
            "MEAN_STD" => {
                let (m, s) = (stat("mean")?, stat("std")?);
                let s = if inverse { s } else { s.iter().map(|s| s + self.eps).collect() };
                (m, s)
            }
            "MIN_MAX" => range("min", "max")?,
            "QUANTILES" => range("q01", "q99")?,
            "QUANTILE10" => range("q10", "q90")?,
            other => {
                return Err(feature_err(
                    &self.file,
                    feature,
                    format!(
                    "normalization mode {other} is not supported (MEAN_STD, MIN_MAX, QUANTILES, QUANTILE10, IDENTITY)"
                ),
                ))
            }
        };
        if let Some(i) = std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(feature_err(
                &self.stats.file,
                feature,
                format!("{mode}: the scale of element {i} is {} (expected > 0)", std[i]),
            ));
        }
        Ok(Affine { mode, mean, std })
    }
}

/// Reads a processor pipeline and returns its one (un)normalizer step.
/// Steps that only move data (batching, device, an empty rename) are
/// accepted; any other step is refused by name.
fn normalizer(dir: &Path, file_name: &str, step_name: &str) -> Result<Normalizer, ImportError> {
    let file = dir.join(file_name);
    if !file.exists() {
        return Err(checkpoint_err(
            &file,
            "(file)",
            "missing: a LeRobot >= 0.4 checkpoint saves its processors (normalization statistics) next to config.json",
        ));
    }
    let v = read_json(&file)?;
    let steps = get(&v, &file, "steps")?.as_array().ok_or_else(|| checkpoint_err(&file, "steps", "expected a list"))?;
    let mut found = None;
    for (i, step) in steps.iter().enumerate() {
        let key = format!("steps[{i}]");
        let name = step
            .get("registry_name")
            .and_then(Value::as_str)
            .ok_or_else(|| checkpoint_err(&file, format!("{key}.registry_name"), "expected a string"))?;
        let config = step.get("config").cloned().unwrap_or(Value::Null);
        match name {
            "to_batch_processor" | "device_processor" => {}
            "rename_observations_processor" => {
                let empty = config.get("rename_map").and_then(Value::as_object).is_none_or(|m| m.is_empty());
                if !empty {
                    return Err(checkpoint_err(
                        &file,
                        format!("{key}.config.rename_map"),
                        "renaming observation keys is not supported: name the features as the robot's cameras",
                    ));
                }
            }
            n if n == step_name => {
                if found.is_some() {
                    return Err(checkpoint_err(&file, key, format!("a second `{step_name}` step")));
                }
                found = Some((key, config, step.get("state_file").and_then(Value::as_str).map(str::to_string)));
            }
            other => {
                return Err(checkpoint_err(
                    &file,
                    format!("{key}.registry_name"),
                    format!("processor step `{other}` is not supported by the importer (it would change what the policy sees or does)"),
                ))
            }
        }
    }
    let (key, config, state_file) =
        found.ok_or_else(|| checkpoint_err(&file, "steps", format!("no `{step_name}` step")))?;
    let eps = config.get("eps").and_then(Value::as_f64).unwrap_or(1e-8) as f32;
    let strings = |k: &str| -> BTreeMap<String, String> {
        config
            .get(k)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(name, v)| {
                        let s = v.as_str().or_else(|| v.get("type").and_then(Value::as_str))?;
                        Some((name.clone(), s.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let only_keys = config
        .get("normalize_observation_keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect());
    let state_file = state_file.ok_or_else(|| {
        checkpoint_err(&file, format!("{key}.state_file"), "missing: the step has no statistics file")
    })?;
    let stats_path = dir.join(&state_file);
    if !stats_path.exists() {
        return Err(checkpoint_err(
            &file,
            format!("{key}.state_file"),
            format!("names `{state_file}`, which is not in the checkpoint (no normalization statistics)"),
        ));
    }
    Ok(Normalizer {
        file: file.clone(),
        eps,
        features: strings("features"),
        norm_map: strings("norm_map"),
        only_keys,
        stats: safetensors::read(&stats_path)?,
    })
}

/// Reads `dir` (a `pretrained_model/` folder) and maps it onto `target`.
pub fn read_checkpoint(dir: &Path, target: &Target, opts: &MapOptions) -> Result<Checkpoint, ImportError> {
    let cfg_file = dir.join("config.json");
    if !cfg_file.exists() {
        return Err(checkpoint_err(
            &cfg_file,
            "(file)",
            "missing: expected a LeRobot `pretrained_model/` folder (config.json, model.safetensors, processor files)",
        ));
    }
    let cfg = read_json(&cfg_file)?;
    let policy_type = get(&cfg, &cfg_file, "type")?
        .as_str()
        .ok_or_else(|| checkpoint_err(&cfg_file, "type", "expected a string"))?
        .to_string();
    if !SUPPORTED_TYPES.contains(&policy_type.as_str()) {
        return Err(ImportError::UnsupportedPolicy { file: cfg_file, policy_type });
    }
    let n_obs_steps = get_usize(&cfg, &cfg_file, "n_obs_steps")?;
    let n_action_steps = get_usize(&cfg, &cfg_file, "n_action_steps")?;
    let (family, chunk_size) = if policy_type == "diffusion" {
        let head = diffusion_head(&cfg, &cfg_file, n_obs_steps, n_action_steps)?;
        (Family::Diffusion(head), n_action_steps)
    } else {
        if n_obs_steps != 1 {
            return Err(checkpoint_err(
                &cfg_file,
                "n_obs_steps",
                format!("{n_obs_steps}: observation history is not supported for ACT (expected 1)"),
            ));
        }
        (Family::Act, get_usize(&cfg, &cfg_file, "chunk_size")?)
    };
    if chunk_size == 0 {
        let key = if family == Family::Act { "chunk_size" } else { "n_action_steps" };
        return Err(checkpoint_err(&cfg_file, key, "expected >= 1"));
    }
    let weights_sha256 = sha256_file(&dir.join("model.safetensors"))?;

    let pre = normalizer(dir, "policy_preprocessor.json", "normalizer_processor")?;
    let post = normalizer(dir, "policy_postprocessor.json", "unnormalizer_processor")?;
    let n = target.joints.len();
    if !target.units.is_empty() && target.units.len() != n {
        return Err(ImportError::Checkpoint {
            file: dir.to_path_buf(),
            key: "--units".into(),
            problem: format!("{} units for the robot's {n} joints ({})", target.units.len(), target.joints.join(", ")),
        });
    }
    let inputs = features(&cfg, &cfg_file, "input_features")?;
    let outputs = features(&cfg, &cfg_file, "output_features")?;

    // Output: exactly `action`, one value per joint.
    let mut action_shape = None;
    for (name, f) in &outputs {
        if name != "action" || f.kind != "ACTION" {
            return Err(feature_err(
                &cfg_file,
                name,
                format!("output of type {} is not supported (only `action`)", f.kind),
            ));
        }
        action_shape = Some(f.shape.clone());
    }
    let action_shape = action_shape.ok_or_else(|| feature_err(&cfg_file, "action", "missing from output_features"))?;
    if action_shape != [n] {
        return Err(feature_err(
            &cfg_file,
            "action",
            format!("shape {action_shape:?}, but the robot commands {n} joints ({})", target.joints.join(", ")),
        ));
    }

    let mut state = None;
    let mut env = None;
    let mut cameras = Vec::new();
    for (name, f) in &inputs {
        match (name.as_str(), f.kind.as_str()) {
            ("observation.state", "STATE") => {
                if f.shape != [n] {
                    return Err(feature_err(
                        &cfg_file,
                        name,
                        format!("shape {:?}, but the robot has {n} joints ({}), which are the state in this order", f.shape, target.joints.join(", ")),
                    ));
                }
                state = Some(pre.affine(name, n, false)?);
            }
            ("observation.environment_state", "ENV") => env = Some(f.shape.clone()),
            (_, "VISUAL") => {
                let Some(cam_name) = name.strip_prefix("observation.images.") else {
                    return Err(feature_err(
                        &cfg_file,
                        name,
                        "image features must be named `observation.images.<camera>` after a camera of the robot profile",
                    ));
                };
                let camera = target.cameras.iter().find(|c| c.name == cam_name).ok_or_else(|| {
                    let names: Vec<&str> = target.cameras.iter().map(|c| c.name.as_str()).collect();
                    feature_err(&cfg_file, name, format!("the robot profile has no camera `{cam_name}` (cameras: {names:?})"))
                })?;
                let [c, h, w] = f.shape[..] else {
                    return Err(feature_err(&cfg_file, name, format!("shape {:?}, expected [channels, height, width]", f.shape)));
                };
                if c != 3 {
                    return Err(feature_err(&cfg_file, name, format!("{c} channels, expected 3 (RGB)")));
                }
                if camera.format == PixelFormat::Mono8 {
                    return Err(feature_err(&cfg_file, name, format!("camera `{cam_name}` delivers mono8, the policy takes RGB")));
                }
                if (camera.width as usize, camera.height as usize) != (w, h) {
                    return Err(feature_err(
                        &cfg_file,
                        name,
                        format!(
                            "the policy takes {w}x{h} images, camera `{cam_name}` delivers {}x{}: resizing is not part of LeRobot's policy, so the import cannot check it against PyTorch; deliver {w}x{h}",
                            camera.width, camera.height
                        ),
                    ));
                }
                cameras.push(MappedCamera {
                    feature: name.clone(),
                    camera: camera.clone(),
                    shape: [c, h, w],
                    norm: pre.affine(name, 3, false)?,
                });
            }
            _ => {
                return Err(feature_err(
                    &cfg_file,
                    name,
                    format!("input of type {} has no source on a Ganglion robot (joint state `observation.state`, cameras `observation.images.<camera>`)", f.kind),
                ))
            }
        }
    }
    let state = state.ok_or_else(|| {
        feature_err(&cfg_file, "observation.state", "missing: Ganglion policies take the joint state")
    })?;
    if let Some(shape) = &env {
        let feature = "observation.environment_state";
        if !opts.environment_state_from_joints {
            return Err(feature_err(
                &cfg_file,
                feature,
                "no source on a Ganglion robot (an environment state is not measured); if the checkpoint's environment state is the joint state, pass --environment-state-from-joints",
            ));
        }
        let e = pre.affine(feature, shape.iter().product(), false)?;
        if *shape != [n] || e.mean != state.mean || e.std != state.std {
            return Err(feature_err(
                &pre.stats.file,
                feature,
                "--environment-state-from-joints needs it to be the joint state: the same shape and the same normalization statistics as observation.state",
            ));
        }
    }
    if cameras.is_empty() && env.is_none() {
        let what = if family == Family::Act { "ACT" } else { "Diffusion Policy" };
        return Err(checkpoint_err(
            &cfg_file,
            "input_features",
            format!("{what} needs an image or an environment state"),
        ));
    }
    if matches!(family, Family::Diffusion(_)) {
        check_diffusion_cameras(&cfg, &cfg_file, &cameras)?;
    }
    let action = post.affine("action", n, true)?;
    let fps = match opts.fps {
        Some(f) => f,
        None => train_config_fps(dir)?.ok_or_else(|| {
            checkpoint_err(
                &dir.join("train_config.json"),
                "env.fps",
                "the checkpoint does not say its rate: pass --fps (the training dataset's fps)",
            )
        })?,
    };
    if !(fps.is_finite() && fps > 0.0) {
        return Err(checkpoint_err(&cfg_file, "fps", format!("{fps}: expected a rate > 0")));
    }
    if let Some(rate) = target.loop_rate_hz.filter(|r| fps > *r) {
        return Err(checkpoint_err(
            &cfg_file,
            "fps",
            format!("the policy runs at {fps} Hz, faster than the robot's control loop ({rate} Hz, [control] rate_hz): its actions would fall between ticks"),
        ));
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        policy_type,
        family,
        joints: target.joints.clone(),
        chunk_size,
        n_action_steps,
        fps,
        cameras,
        state,
        action,
        environment_state_from_joints: env.is_some(),
        weights_sha256,
        units: target.units.clone(),
    })
}

/// Diffusion's sampling loop from `config.json`: history, horizon and the
/// noise scheduler, each refused by its key where Ganglion's format 2 or
/// `schedule.rs` cannot reproduce LeRobot's.
fn diffusion_head(
    cfg: &Value,
    file: &Path,
    n_obs_steps: usize,
    n_action_steps: usize,
) -> Result<DiffusionHead, ImportError> {
    if n_obs_steps == 0 {
        return Err(checkpoint_err(file, "n_obs_steps", "expected >= 1"));
    }
    let horizon = get_usize(cfg, file, "horizon")?;
    if n_obs_steps - 1 + n_action_steps > horizon {
        return Err(checkpoint_err(
            file,
            "n_action_steps",
            format!("{n_action_steps} actions from action {} do not fit the horizon {horizon}", n_obs_steps - 1),
        ));
    }
    let kind = match get(cfg, file, "noise_scheduler_type")?.as_str() {
        Some("DDPM") => ScheduleKind::Ddpm,
        Some("DDIM") => ScheduleKind::Ddim,
        other => {
            return Err(checkpoint_err(
                file,
                "noise_scheduler_type",
                format!("{other:?}: Ganglion implements LeRobot's DDPM and DDIM schedulers"),
            ))
        }
    };
    // The keys LeRobot passes to diffusers' scheduler, spelled as the
    // manifest spells them; each is decoded alone so an error names it.
    let mut schedule = ScheduleSpec {
        kind,
        num_train_timesteps: None,
        beta_schedule: None,
        beta_start: None,
        beta_end: None,
        prediction_type: None,
        clip_sample: None,
        clip_sample_range: None,
        steps_offset: None,
        set_alpha_to_one: None,
        eta: None,
    };
    fn decode<T: serde::de::DeserializeOwned>(cfg: &Value, file: &Path, key: &str) -> Result<T, ImportError> {
        let v = get(cfg, file, key)?;
        serde_json::from_value(v.clone())
            .map_err(|e| checkpoint_err(file, key, format!("{v}: not supported by Ganglion's schedules ({e})")))
    }
    schedule.num_train_timesteps = Some(decode(cfg, file, "num_train_timesteps")?);
    schedule.beta_schedule = Some(decode(cfg, file, "beta_schedule")?);
    schedule.beta_start = Some(decode(cfg, file, "beta_start")?);
    schedule.beta_end = Some(decode(cfg, file, "beta_end")?);
    schedule.prediction_type = Some(decode(cfg, file, "prediction_type")?);
    schedule.clip_sample = Some(decode(cfg, file, "clip_sample")?);
    schedule.clip_sample_range = Some(decode(cfg, file, "clip_sample_range")?);
    let steps = match cfg.get("num_inference_steps") {
        None | Some(Value::Null) => schedule.num_train_timesteps.unwrap_or(0),
        Some(_) => get_usize(cfg, file, "num_inference_steps")?,
    };
    schedule.build(steps).map_err(|e| {
        checkpoint_err(file, "noise scheduler", format!("Ganglion cannot build LeRobot's scheduler: {e}"))
    })?;
    Ok(DiffusionHead { n_obs_steps, horizon, steps, schedule })
}

/// What Diffusion's export does with images: one camera (with the state's
/// `n_obs_steps` history), no resize (torchvision's antialiased resize is
/// not Ganglion's), a centre crop inside the frame (it becomes a slice in
/// the encoder graph).
fn check_diffusion_cameras(cfg: &Value, file: &Path, cameras: &[MappedCamera]) -> Result<(), ImportError> {
    if cameras.is_empty() {
        return Ok(());
    }
    if cameras.len() > 1 {
        let names: Vec<&str> = cameras.iter().map(|c| c.feature.as_str()).collect();
        return Err(checkpoint_err(
            file,
            "input_features",
            format!("{names:?}: the Diffusion export takes one camera"),
        ));
    }
    if cfg.get("resize_shape").is_some_and(|v| !v.is_null()) {
        return Err(checkpoint_err(
            file,
            "resize_shape",
            "resizing inside the policy is not supported (torchvision's antialiased resize is not Ganglion's); train without it",
        ));
    }
    if let Some(crop) = cfg.get("crop_shape").filter(|v| !v.is_null()) {
        let [_, h, w] = cameras[0].shape;
        let fits = crop
            .as_array()
            .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
            .is_some_and(|c| c.len() == 2 && c[0] >= 1 && c[1] >= 1 && c[0] as usize <= h && c[1] as usize <= w);
        if !fits {
            return Err(checkpoint_err(
                file,
                "crop_shape",
                format!("{crop}: expected [height, width] within the {w}x{h} image"),
            ));
        }
    }
    Ok(())
}

/// SHA-256 of a file, streamed (checkpoints reach gigabytes).
fn sha256_file(file: &Path) -> Result<String, ImportError> {
    use sha2::{Digest, Sha256};
    let err = |e: std::io::Error| ImportError::io(file, format!("cannot read the policy weights: {e}"));
    let mut f = std::fs::File::open(file).map_err(err)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher).map_err(err)?;
    Ok(hex::encode(hasher.finalize()))
}

/// `env.fps` of a `train_config.json` next to the checkpoint, when present.
fn train_config_fps(dir: &Path) -> Result<Option<f64>, ImportError> {
    let file = dir.join("train_config.json");
    if !file.exists() {
        return Ok(None);
    }
    let v = read_json(&file)?;
    Ok(v.get("env").and_then(|e| e.get("fps")).and_then(Value::as_f64))
}
