//! Scenario files (`hil-tests/scenarios/*.toml`): what the plant does, what
//! `ganglion run` does, what the profile changes, and what must hold.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or a key is unknown / of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (names the key).
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: `{key}`: expected {expected}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is accepted.
        expected: &'static str,
    },
}

/// One scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short unique name (file stem by convention), used for directories.
    pub name: String,
    /// One line for the report.
    pub description: String,
    /// Fault class (`nominal`, `camera`, `joints`, `timestamps`, `inference`,
    /// `action`, `flood`, `malformed`, `partition`, `bundle`, `kill`).
    pub class: String,
    /// Part of the short CI set.
    #[serde(default)]
    pub ci: bool,
    /// Run the Python baseline on it too.
    #[serde(default = "yes")]
    pub baseline: bool,
    /// The plant (`ganglion sim serve`).
    #[serde(default)]
    pub plant: PlantSpec,
    /// The controller (`ganglion run` / the baseline).
    pub runtime: RuntimeSpec,
    /// Tables merged over the base profile (`launch/sim-zenoh.toml`), e.g.
    /// `[profile.staleness] frozen_identical_frames = 5`.
    #[serde(default)]
    pub profile: toml::Table,
    /// What must hold.
    #[serde(default)]
    pub expect: Expect,
}

fn yes() -> bool {
    true
}

fn default_timeout() -> u64 {
    200
}

fn default_seed() -> u64 {
    1
}

/// `[plant]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantSpec {
    /// Advance one period per command (deterministic; timing meaningless).
    #[serde(default)]
    pub lockstep: bool,
    /// Real time: the plant brakes after this long without a command, ms.
    #[serde(default = "default_timeout")]
    pub command_timeout_ms: u64,
    /// `KIND@SECONDS[:DURATION]`, wire or arm kinds of the one fault grammar
    /// (`runtime/src/faults/mod.rs`; its tests parse every scenario's).
    #[serde(default)]
    pub faults: Vec<String>,
    /// Camera sensor noise (frozen frames detectable by content).
    #[serde(default)]
    pub camera_noise: bool,
    /// Scene seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Episodes (scenes) to run, one plant + controller run each, from episode 0.
    #[serde(default = "one")]
    pub episodes: u64,
}

fn one() -> u64 {
    1
}

impl Default for PlantSpec {
    fn default() -> Self {
        PlantSpec {
            lockstep: false,
            command_timeout_ms: default_timeout(),
            faults: Vec::new(),
            camera_noise: false,
            seed: default_seed(),
            episodes: 1,
        }
    }
}

/// `[runtime]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    /// `bundle` (policies/reference/reach-v1) or `expert`.
    #[serde(default = "bundle")]
    pub policy: String,
    /// Seconds `ganglion run` runs.
    pub seconds: f64,
    /// `ganglion run --inject` specs, policy kinds of the same grammar (the
    /// baseline applies the same ones).
    #[serde(default)]
    pub inject: Vec<String>,
    /// SIGKILL the controller this long after the plant saw its first command.
    pub kill_after_s: Option<f64>,
    /// Copy the bundle, flip one byte of a model file, run that.
    #[serde(default)]
    pub tamper_bundle: bool,
}

fn bundle() -> String {
    "bundle".into()
}

/// `[expect]`: every field is one check in the report.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// A fallback (mode fallback or safe_stop) must happen, with one of
    /// `causes_any` among the causes of its first tick.
    #[serde(default)]
    pub fallback: bool,
    /// Accepted cause codes (snake_case names) of the first fallback.
    #[serde(default)]
    pub causes_any: Vec<String>,
    /// No fallback at all after the loop went nominal.
    #[serde(default)]
    pub no_fallback: bool,
    /// Back to nominal after the faults end.
    #[serde(default)]
    pub recover: bool,
    /// Never back to nominal after the first fallback.
    #[serde(default)]
    pub latch: bool,
    /// The plant's simulated task succeeds (tip within 3 cm at the end).
    pub success: Option<bool>,
    /// `ganglion run` must refuse to start, its error containing this text.
    pub refuse_start: Option<String>,
    /// After the kill, the plant must be still (all joint speeds below
    /// 0.05 rad/s) within this many ms of the last command.
    pub plant_stops_within_ms: Option<u64>,
    /// Malformed payloads the plant sent must all be counted as decode
    /// errors by the runtime.
    #[serde(default)]
    pub malformed_counted: bool,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
        let s: Scenario =
            toml::from_str(&text).map_err(|e| ScenarioError::Parse { path: path.into(), message: e.to_string() })?;
        let bad = |key, expected| ScenarioError::Invalid { path: path.into(), key, expected };
        if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(bad("name", "a non-empty name of letters, digits, - and _"));
        }
        if !(s.runtime.seconds > 0.0 && s.runtime.seconds <= 600.0) {
            return Err(bad("runtime.seconds", "a duration in (0, 600] seconds"));
        }
        if !matches!(s.runtime.policy.as_str(), "bundle" | "expert") {
            return Err(bad("runtime.policy", "\"bundle\" or \"expert\""));
        }
        if s.runtime.kill_after_s.is_some_and(|k| !(k > 0.0 && k < s.runtime.seconds)) {
            return Err(bad("runtime.kill_after_s", "seconds in (0, runtime.seconds)"));
        }
        if s.plant.episodes == 0 || s.plant.episodes > 100 {
            return Err(bad("plant.episodes", "1..=100"));
        }
        if s.expect.fallback && s.expect.no_fallback {
            return Err(bad("expect.fallback", "not together with expect.no_fallback"));
        }
        Ok(s)
    }
}
