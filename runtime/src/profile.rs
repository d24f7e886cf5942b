//! The robot profile: one TOML file that says what robot this is, how fast
//! to run, what limits to keep, which policy and transport to use.
//!
//! Sections are owned by the module that uses them; this module parses the
//! file and validates everything up front. Every error names the file, the
//! key path (e.g. `robot.joints[2].limit.velocity`) and what was expected.
//!
//! ```toml
//! [robot]        # name, joints (name + limit), arm kinematics, home pose, cameras
//! [control]      # rate_hz (30..=1000), budget_us, inference_timeout_ms, ...
//! [staleness]    # input age limits, frozen-frame detection, heartbeat
//! [supervisor]   # recovery / re-arm tick counts, latching causes
//! [executor]     # chunk blending, request margin
//! [shield]       # saturate | reject, tolerance, workspace box
//! [fallback]     # hold | decelerate | home
//! [policy]       # bundle, backend, signatures, execution provider
//! [sim]          # optional: the simulated arm (ganglion_sim::SimConfig)
//! [transport] [recording] [realtime]
//! ```
//!
//! Every key, with type, unit, default and meaning: [`reference`], from
//! which `docs/PROFILE.md` is generated (its tests keep both in sync with
//! the structs).

use std::path::{Path, PathBuf};

use ganglion_core::{ArmModel, CameraSpec, JointLimit};
use ganglion_policies::{BackendKind, Provider};

use crate::control::executor::{ExecutorConfig, ExecutorConfigError};
use crate::control::fallback::{FallbackConfig, FallbackConfigError};
use crate::control::input::StalenessConfigError;
use crate::control::shield::{LimitsError, ShieldConfig, ShieldConfigError};
use crate::control::supervisor::SupervisorConfigError;
use crate::control::{LoopConfig, LoopError, StalenessConfig, SupervisorConfig};
use crate::recorder::{RecordingConfig, RecordingConfigError};
use crate::rtcheck::{RealtimeConfig, RealtimeConfigError};
use crate::transport::{TransportConfig, TransportConfigError};

pub mod reference;

/// A profile that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{}: cannot read the profile: {source}", file.display())]
    Io {
        /// The profile file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, a value of the wrong type,
    /// or an enumerated value that is not one of the accepted ones (the
    /// message lists them).
    #[error("{}: `{key}`: {message}", file.display())]
    Parse {
        /// The profile file.
        file: PathBuf,
        /// Key path of the offending entry (empty when the syntax itself is broken).
        key: String,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{}: `{key}`: expected {expected}", file.display())]
    Invalid {
        /// The profile file.
        file: PathBuf,
        /// Key path of the offending value.
        key: String,
        /// What would have been accepted.
        expected: String,
    },
}

impl ProfileError {
    /// The key path the error is about.
    pub fn key(&self) -> &str {
        match self {
            ProfileError::Io { .. } => "",
            ProfileError::Parse { key, .. } | ProfileError::Invalid { key, .. } => key,
        }
    }
}

/// One joint of the robot.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointConfig {
    /// Joint name (as in the robot's joint-state messages).
    pub name: String,
    /// Its limits.
    pub limit: JointLimit,
}

/// `[robot]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotConfig {
    /// Robot name, used in key expressions and reports.
    pub name: String,
    /// Joints in command order.
    pub joints: Vec<JointConfig>,
    /// Kinematics (for the shield's workspace box); optional.
    #[serde(default)]
    pub arm: Option<ArmModel>,
    /// A safe pose inside the limits (rad). Validated only: the `home`
    /// fallback moves to `[fallback] home`.
    pub home: Vec<f64>,
    /// Cameras, in the order the policy consumes them.
    #[serde(default)]
    pub cameras: Vec<CameraSpec>,
}

impl Default for RobotConfig {
    fn default() -> Self {
        RobotConfig { name: "robot".into(), joints: Vec::new(), arm: None, home: Vec::new(), cameras: Vec::new() }
    }
}

impl RobotConfig {
    /// The joint limits in order.
    pub fn limits(&self) -> Vec<JointLimit> {
        self.joints.iter().map(|j| j.limit).collect()
    }
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Control rate, 30..=1000 Hz.
    pub rate_hz: f64,
    /// Tick body budget (µs); 0 means one full period.
    pub budget_us: f64,
    /// A request in flight longer than this is late (ms); 0 leaves
    /// lateness to the executor running out of actions.
    pub inference_timeout_ms: f64,
    /// Consecutive surprising chunks before `world_model_surprise` triggers.
    pub surprise_chunks: u32,
    /// Consecutive compared, calm chunks that release a triggered
    /// `world_model_surprise` (the recovery rule: policies/README.md).
    pub surprise_calm_chunks: u32,
    /// Tick records the telemetry ring holds.
    pub telemetry_capacity: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            rate_hz: 100.0,
            budget_us: 0.0,
            inference_timeout_ms: 0.0,
            surprise_chunks: 3,
            surprise_calm_chunks: 3,
            telemetry_capacity: 4096,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Bundle directory or archive; relative paths are resolved against the
    /// profile's directory by [`Profile::load`]. `None`: chosen by the command.
    pub bundle: Option<PathBuf>,
    /// Inference backend.
    pub backend: BackendKind,
    /// The signers this robot trusts: an ed25519 public key file (as
    /// `ganglion policy keygen` writes) or a directory of `*.pub` files.
    /// Relative paths are resolved against the profile's directory by
    /// [`Profile::load`]. `None`: only `ganglion run --key` names them, and
    /// without either a signed bundle is refused (unless `allow_unsigned`).
    pub trusted_keys: Option<PathBuf>,
    /// Run an unsigned bundle (development only).
    pub allow_unsigned: bool,
    /// ONNX Runtime execution provider (ignored by tract).
    pub execution_provider: Provider,
    /// Seed of an iterative head's noise (diffusion / flow matching). `None`:
    /// drawn from the OS at start. Either way it is logged and written into
    /// the recording's metadata, so `ganglion replay --reinfer` re-creates
    /// every chunk bit for bit.
    pub noise_seed: Option<u64>,
    /// `[policy.remote]`: the policy runs on a policy server.
    pub remote: Option<RemoteConfig>,
}

/// `[policy.remote]`: the policy runs on a server (`ganglion serve`) and
/// this robot sends it observations over zenoh ([`crate::remote`]).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The served policy's name (`ganglion serve --name`).
    pub name: String,
    /// Key prefix of the policy servers.
    #[serde(default = "default_remote_prefix")]
    pub prefix: String,
    /// Endpoints of the server or of a router, e.g. `tcp/10.0.0.2:7460`.
    #[serde(default)]
    pub connect: Vec<String>,
    /// A zenoh json5 config (mTLS, a router's unix socket) for the
    /// session to the server, instead of `connect`; relative to the
    /// profile's directory.
    pub config_file: Option<PathBuf>,
    /// How long one request may wait for its chunk before it is given up, ms.
    #[serde(default = "default_remote_timeout_ms")]
    pub timeout_ms: u64,
    /// How long `run` waits at start for the server to answer, ms.
    #[serde(default = "default_remote_connect_wait_ms")]
    pub connect_wait_ms: u64,
    /// How the frames travel: as they are, or JPEG-compressed on the
    /// robot (on the inference worker) and decoded by the server.
    #[serde(default)]
    pub frames: RemoteFrames,
    /// JPEG quality, 1..=100 (`frames = "jpeg"`).
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
    /// Split the world model: the server runs the bundle's encoder, this
    /// robot its dynamics and action head from `[policy] bundle` (the same
    /// bundle, verified with `[policy] trusted_keys`), rolling the latent
    /// over the actions committed during the round trip as it really was
    /// (docs/REMOTE.md, "Split world model").
    #[serde(default)]
    pub split: bool,
}

/// `[policy.remote] frames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteFrames {
    /// Raw pixels: no compression cost, the most bytes.
    #[default]
    Raw,
    /// Baseline JPEG (4:2:0): ~10-20x fewer bytes for camera images, a few
    /// ms to encode and decode, lossy.
    Jpeg,
}

fn default_jpeg_quality() -> u8 {
    90
}

fn default_remote_prefix() -> String {
    crate::remote::DEFAULT_PREFIX.to_string()
}

fn default_remote_timeout_ms() -> u64 {
    500
}

fn default_remote_connect_wait_ms() -> u64 {
    5000
}

impl RemoteConfig {
    /// The zenoh session to the server: the file, else a peer that
    /// connects to `connect` and listens nowhere.
    pub fn zenoh_config(&self) -> ganglion_zenoh::ZenohConfig {
        ganglion_zenoh::ZenohConfig {
            prefix: self.prefix.clone(),
            connect: self.connect.clone(),
            config_file: self.config_file.clone(),
            ..ganglion_zenoh::ZenohConfig::default()
        }
    }
}

/// A parsed and validated robot profile.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `[robot]`
    #[serde(default)]
    pub robot: RobotConfig,
    /// `[control]`
    #[serde(default)]
    pub control: ControlConfig,
    /// `[staleness]`
    #[serde(default)]
    pub staleness: StalenessConfig,
    /// `[supervisor]`
    #[serde(default)]
    pub supervisor: SupervisorConfig,
    /// `[executor]`
    #[serde(default)]
    pub executor: ExecutorConfig,
    /// `[shield]`
    #[serde(default)]
    pub shield: ShieldConfig,
    /// `[fallback]`
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// `[policy]`
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[sim]`: the simulated arm, when this profile drives one.
    #[serde(default)]
    pub sim: Option<ganglion_sim::SimConfig>,
    /// `[transport]`
    #[serde(default)]
    pub transport: TransportConfig,
    /// `[recording]`
    #[serde(default)]
    pub recording: RecordingConfig,
    /// `[realtime]`
    #[serde(default)]
    pub realtime: RealtimeConfig,
}

impl Profile {
    /// Reads, parses and validates the profile at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
        let path = path.as_ref();
        let mut p = Profile::parse(&read(path)?, path)?;
        if let Some(dir) = path.parent() {
            let remote_file = p.policy.remote.as_mut().and_then(|r| r.config_file.as_mut());
            for file in [p.policy.bundle.as_mut(), p.policy.trusted_keys.as_mut(), remote_file].into_iter().flatten() {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(p)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile = from_toml(text, file)?;
        profile.validate().map_err(|e| e.at(file))?;
        Ok(profile)
    }

    /// Control period, ns.
    pub fn period_ns(&self) -> u64 {
        (1e9 / self.control.rate_hz) as u64
    }

    /// The loop's configuration.
    pub fn loop_config(&self) -> LoopConfig {
        let period_ns = self.period_ns();
        let budget_ns = if self.control.budget_us > 0.0 { (self.control.budget_us * 1e3) as u64 } else { period_ns };
        LoopConfig {
            period_ns,
            budget_ns,
            inference_timeout_ns: (self.control.inference_timeout_ms * 1e6) as u64,
            surprise_chunks: self.control.surprise_chunks,
            surprise_calm_chunks: self.control.surprise_calm_chunks,
            limits: self.robot.limits(),
            arm: self.robot.arm.clone(),
            staleness: self.staleness.clone(),
            supervisor: self.supervisor.clone(),
            executor: self.executor.clone(),
            shield: self.shield.clone(),
            fallback: self.fallback.clone(),
        }
    }

    /// Checks every value. The sections owned by other modules are checked
    /// by their own `validate` (the same checks their constructors make);
    /// this adds what only the whole profile can see.
    fn validate(&self) -> Result<(), Invalid> {
        let r = &self.robot;
        if r.name.trim().is_empty() {
            return bad("robot.name", "a non-empty name");
        }
        for (i, j) in r.joints.iter().enumerate() {
            if j.name.trim().is_empty() {
                return bad(format!("robot.joints[{i}].name"), "a non-empty joint name");
            }
            if r.joints[..i].iter().any(|o| o.name == j.name) {
                return bad(format!("robot.joints[{i}].name"), "a name no other joint uses");
            }
        }

        if let Some(remote) = &self.policy.remote {
            if remote.name.trim().is_empty() || remote.name.contains(['/', '*', '$', '?', '#']) {
                return bad("policy.remote.name", "the served policy's name: non-empty, no `/*$?#`");
            }
            if remote.prefix.trim_matches('/').is_empty() || remote.prefix.contains(['*', '$', '?', '#']) {
                return bad("policy.remote.prefix", "a zenoh key prefix: non-empty, no `*$?#`");
            }
            if remote.config_file.is_some() && !remote.connect.is_empty() {
                return bad(
                    "policy.remote.connect",
                    "no `connect` next to `config_file` (the file is the whole session config)",
                );
            }
            if remote.config_file.is_none() && remote.connect.is_empty() {
                return bad("policy.remote.connect", "the server's (or a router's) endpoints, or a `config_file`");
            }
            if remote.timeout_ms == 0 || remote.timeout_ms > 60_000 {
                return bad("policy.remote.timeout_ms", "a request timeout between 1 and 60000 ms");
            }
            if !(1..=100).contains(&remote.jpeg_quality) {
                return bad("policy.remote.jpeg_quality", "a JPEG quality between 1 and 100");
            }
            if remote.split && self.policy.bundle.is_none() {
                return bad(
                    "policy.remote.split",
                    "a `[policy] bundle` next to it: the robot's copy of the served bundle, whose dynamics and \
                     action head run here",
                );
            }
        }

        let c = &self.control;
        if !(c.rate_hz.is_finite() && (30.0..=1000.0).contains(&c.rate_hz)) {
            return bad("control.rate_hz", "a rate between 30 and 1000 Hz");
        }
        let period_us = 1e6 / c.rate_hz;
        if !(c.budget_us.is_finite() && c.budget_us >= 0.0 && c.budget_us <= period_us) {
            return bad("control.budget_us", "0 (one period) or a budget within one period (µs)");
        }
        if !(c.inference_timeout_ms.is_finite() && c.inference_timeout_ms >= 0.0) {
            return bad("control.inference_timeout_ms", "a non-negative number of ms");
        }
        if c.surprise_calm_chunks == 0 {
            return bad("control.surprise_calm_chunks", "at least 1");
        }
        if c.surprise_chunks == 0 {
            return bad("control.surprise_chunks", "at least 1");
        }
        if c.telemetry_capacity == 0 || c.telemetry_capacity > 1 << 20 {
            return bad("control.telemetry_capacity", "1..=1048576 records");
        }

        // Joint limits, arm against joints, and the loop's sections, exactly
        // as `ControlLoop::new` will check them.
        self.loop_config().validate().map_err(|e| self.loop_error(e))?;

        if r.home.len() != r.joints.len() {
            return bad("robot.home", "one position per joint");
        }
        for (i, (h, j)) in r.home.iter().zip(&r.joints).enumerate() {
            if !h.is_finite() || *h < j.limit.position_min || *h > j.limit.position_max {
                return bad(format!("robot.home[{i}]"), "a position inside that joint's limits");
            }
        }
        if let Some(arm) = &r.arm {
            for (i, aj) in arm.joints.iter().enumerate() {
                if !aj.offset.iter().all(|v| v.is_finite()) {
                    return bad(format!("robot.arm.joints[{i}].offset"), "finite coordinates (m)");
                }
            }
            if !arm.tool.iter().all(|v| v.is_finite()) {
                return bad("robot.arm.tool", "finite coordinates (m)");
            }
        }
        for (i, c) in r.cameras.iter().enumerate() {
            if c.name.trim().is_empty() || r.cameras[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("robot.cameras[{i}].name"), "a unique, non-empty camera name");
            }
            if !(1..=8192).contains(&c.width) {
                return bad(format!("robot.cameras[{i}].width"), "1..=8192 pixels");
            }
            if !(1..=8192).contains(&c.height) {
                return bad(format!("robot.cameras[{i}].height"), "1..=8192 pixels");
            }
        }

        self.transport.validate()?;
        if self.transport.kind == crate::transport::TransportKind::Servo
            && self.transport.servo.ids.len() != r.joints.len()
        {
            return bad(
                "transport.servo.ids",
                &format!(
                    "one servo id per robot joint, in joint order ({} joints, {} ids)",
                    r.joints.len(),
                    self.transport.servo.ids.len()
                ),
            );
        }
        if let Some((key, expected)) =
            crate::transport::camera::robot_problem(&self.transport.cameras, self.transport.kind, &r.cameras)
        {
            return bad(key, &expected);
        }
        self.recording.validate()?;
        // Every input snapshot of the recorder holds a full frame per camera,
        // allocated (and, under mlockall, locked) when recording starts:
        // bound it here, since `run --record-dir` can turn recording on
        // for any profile.
        let frame_bytes: u64 = r.cameras.iter().map(|c| u64::from(c.width) * u64::from(c.height) * 3).sum();
        if frame_bytes.saturating_mul(self.recording.input_ring as u64) > MAX_INPUT_TAP_BYTES {
            let most = MAX_INPUT_TAP_BYTES / frame_bytes.max(1);
            return bad(
                "recording.input_ring",
                &format!(
                    "at most {most} snapshots for these cameras ({frame_bytes} frame bytes each; the input tap is \
                     bounded to {} MiB)",
                    MAX_INPUT_TAP_BYTES >> 20
                ),
            );
        }
        self.realtime.validate()?;

        if let Some(sim) = &self.sim {
            if let Err(e) = sim.validate() {
                return match e {
                    ganglion_sim::SimError::InvalidConfig { key, expected } => bad(format!("sim.{key}"), expected),
                    other => bad("sim", &other.to_string()),
                };
            }
            if sim.limits.len() != r.joints.len() {
                return bad("sim.limits", "one limit per robot joint");
            }
        }
        Ok(())
    }

    /// A loop configuration error as the profile names it; a joint's
    /// limit also names the joint.
    fn loop_error(&self, e: LoopError) -> Invalid {
        let mut invalid = match e {
            LoopError::Shield(e) => Invalid::from(e),
            LoopError::Fallback(e) => e.into(),
            LoopError::Executor(e) => e.into(),
            LoopError::Staleness(e) => e.into(),
            LoopError::Supervisor(e) => e.into(),
            // Checked above with the profile's own keys; what remains
            // (policy and inputs) is not configuration.
            other => Invalid { key: "control".into(), expected: other.to_string() },
        };
        let limit = match e {
            LoopError::Shield(ShieldConfigError::Limits(l)) | LoopError::Fallback(FallbackConfigError::Limits(l)) => l,
            _ => return invalid,
        };
        if let LimitsError::JointLimit { joint, .. } = limit {
            if let Some(j) = self.robot.joints.get(joint) {
                invalid.expected.push_str(&format!(" for joint `{}`", j.name));
            }
        }
        invalid
    }
}

/// The sections `ganglion check` reads: `[realtime]`, `[transport]` and
/// `robot.name` (the default zenoh prefix), parsed and validated as
/// [`Profile::load`] does. Every other key is skipped unread: `check` must
/// work on a machine being set up, whose profile may name bundles or
/// devices not installed yet.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CheckSections {
    /// `[robot]`, of which only `name` is read.
    #[serde(default)]
    pub robot: RobotName,
    /// `[transport]`
    #[serde(default)]
    pub transport: TransportConfig,
    /// `[realtime]`
    #[serde(default)]
    pub realtime: RealtimeConfig,
}

/// `robot.name` alone (see [`CheckSections`]).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RobotName {
    /// Robot name; empty when the profile has none.
    #[serde(default)]
    pub name: String,
}

impl CheckSections {
    /// Reads, parses and validates the sections at `path`.
    pub fn load(path: &Path) -> Result<CheckSections, ProfileError> {
        let sections: CheckSections = from_toml(&read(path)?, path)?;
        let valid = || -> Result<(), Invalid> {
            sections.transport.validate()?;
            sections.realtime.validate()?;
            Ok(())
        };
        valid().map_err(|e| e.at(path))?;
        Ok(sections)
    }
}

/// The most memory the recorder's input tap may take (its snapshots'
/// frame buffers); `recording.input_ring` is refused beyond it.
pub const MAX_INPUT_TAP_BYTES: u64 = 256 << 20;

/// A value that parsed but is not acceptable: its key path and what would
/// have been; [`Invalid::at`] makes it a [`ProfileError`].
#[derive(Debug)]
struct Invalid {
    key: String,
    expected: String,
}

impl Invalid {
    fn at(self, file: &Path) -> ProfileError {
        ProfileError::Invalid { file: file.to_path_buf(), key: self.key, expected: self.expected }
    }
}

fn bad<T>(key: impl Into<String>, expected: &str) -> Result<T, Invalid> {
    Err(Invalid { key: key.into(), expected: expected.to_string() })
}

/// Each section's error type already knows its key path and expectation.
macro_rules! invalid_from {
    ($($t:ty),+) => {$(
        impl From<$t> for Invalid {
            fn from(e: $t) -> Invalid {
                Invalid { key: e.key(), expected: e.expected().to_string() }
            }
        }
    )+};
}
invalid_from!(
    ShieldConfigError,
    FallbackConfigError,
    ExecutorConfigError,
    StalenessConfigError,
    SupervisorConfigError,
    TransportConfigError,
    RecordingConfigError,
    RealtimeConfigError
);

fn read(path: &Path) -> Result<String, ProfileError> {
    std::fs::read_to_string(path).map_err(|source| ProfileError::Io { file: path.to_path_buf(), source })
}

/// Parses `text`: a syntax error, an unknown key, a value of the wrong type
/// or an enum value not among the accepted ones is a [`ProfileError::Parse`]
/// naming the key.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str, file: &Path) -> Result<T, ProfileError> {
    toml::from_str(text).map_err(|e| ProfileError::Parse {
        file: file.to_path_buf(),
        key: e.span().and_then(|s| key_path_at(text, s.start)).unwrap_or_default(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// The dotted key path (`a.b[2].c`) of the deepest key or value of `text`
/// whose span contains byte `offset`; `None` when nothing does.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    use toml::Spanned;

    fn in_table(t: &DeTable<'_>, offset: usize) -> Option<Vec<String>> {
        for (k, v) in t.iter() {
            if let Some(mut inner) = in_value(v, offset) {
                inner.insert(0, k.get_ref().to_string());
                return Some(inner);
            }
            if k.span().contains(&offset) || v.span().contains(&offset) {
                return Some(vec![k.get_ref().to_string()]);
            }
        }
        None
    }

    fn in_value(v: &Spanned<DeValue<'_>>, offset: usize) -> Option<Vec<String>> {
        match v.get_ref() {
            DeValue::Table(t) => in_table(t, offset),
            DeValue::Array(a) => a.iter().enumerate().find_map(|(i, item)| {
                let inner = in_value(item, offset).or_else(|| item.span().contains(&offset).then(Vec::new))?;
                let mut path = vec![format!("[{i}]")];
                path.extend(inner);
                Some(path)
            }),
            _ => None,
        }
    }

    let doc = DeTable::parse(text).ok()?;
    let parts = in_table(doc.get_ref(), offset)?;
    let mut out = String::new();
    for p in parts {
        if !out.is_empty() && !p.starts_with('[') {
            out.push('.');
        }
        out.push_str(&p);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[robot]
name = "t"
home = [0.0, 0.0]
[[robot.joints]]
name = "a"
limit = { position_min = -1.0, position_max = 1.0, velocity = 1.0, acceleration = 5.0, jerk = 50.0 }
[[robot.joints]]
name = "b"
limit = { position_min = -1.0, position_max = 1.0, velocity = 1.0, acceleration = 5.0, jerk = 50.0 }

[control]
rate_hz = 100
"#;

    fn err(text: &str) -> ProfileError {
        Profile::parse(text, Path::new("bad.toml")).expect_err("profile should be rejected")
    }

    #[test]
    fn good_profile_loads() {
        let p = Profile::parse(GOOD, Path::new("good.toml")).expect("valid");
        assert_eq!(p.robot.joints.len(), 2);
        assert_eq!(p.period_ns(), 10_000_000);
        let lc = p.loop_config();
        assert_eq!(lc.budget_ns, 10_000_000);
        assert_eq!(lc.limits.len(), 2);
    }

    #[test]
    fn each_bad_value_names_file_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("rate_hz = 100", "rate_hz = 5000", "control.rate_hz"),
            ("rate_hz = 100", "rate_hz = 100\nbudget_us = 20000", "control.budget_us"),
            (
                "velocity = 1.0, acceleration = 5.0, jerk = 50.0 }\n\n",
                "velocity = -1.0, acceleration = 5.0, jerk = 50.0 }\n\n",
                "robot.joints[1].limit.velocity",
            ),
            ("home = [0.0, 0.0]", "home = [0.0, 3.0]", "robot.home[1]"),
            ("home = [0.0, 0.0]", "home = [0.0]", "robot.home"),
            ("name = \"b\"", "name = \"a\"", "robot.joints[1].name"),
            ("rate_hz = 100", "rate_hz = 100\n[staleness]\njoint_max_age_ms = 0", "staleness.joint_max_age_ms"),
            ("rate_hz = 100", "rate_hz = 100\n[fallback]\nkind = \"home\"", "fallback.home"),
            ("rate_hz = 100", "rate_hz = 100\n[fallback]\nkind = \"home\"\nhome = [0.0, 9.0]", "fallback.home[1]"),
            ("rate_hz = 100", "rate_hz = 100\n[shield]\ntolerance = -1.0", "shield.tolerance"),
            ("rate_hz = 100", "rate_hz = 100\n[supervisor]\nrecover_after_ticks = 0", "supervisor.recover_after_ticks"),
            ("rate_hz = 100", "rate_hz = 100\n[sim]\ncamera_width = 2", "sim.camera_width"),
        ];
        for (from, to, key) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "fixture edit {from:?} did not apply");
            let e = err(&text);
            assert_eq!(e.key(), *key, "{e}");
            let msg = e.to_string();
            assert!(msg.starts_with("bad.toml: "), "{msg}");
            assert!(msg.contains(key), "{msg}");
        }
    }

    #[test]
    fn parse_errors_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("rate_hz = 100", "rate_hz = 100\nspeed = 3", "control.speed"),
            ("rate_hz = 100", "rate_hz = \"fast\"", "control.rate_hz"),
            ("jerk = 50.0 }\n\n", "jerk = 50.0, snap = 1.0 }\n\n", "robot.joints[1].limit.snap"),
            ("rate_hz = 100", "rate_hz = 100\n[policy]\nbackend = \"onnx\"", "policy.backend"),
            ("rate_hz = 100", "rate_hz = 100\n[supervisor]\nlatch = [\"tea_time\"]", "supervisor.latch[0]"),
        ];
        for (from, to, key) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "fixture edit {from:?} did not apply");
            let e = err(&text);
            assert!(matches!(e, ProfileError::Parse { .. }), "{e}");
            assert_eq!(e.key(), *key, "{e}");
            assert!(e.to_string().contains("line"), "{e}");
        }
    }

    /// Relative bundle and key paths mean "next to the profile", wherever
    /// the command runs from; absolute ones are kept.
    /// `[policy.remote]` needs its name and a way to the server; the rest
    /// has the defaults docs/PROFILE.md gives (its reference rows are notes:
    /// the table cannot be written without `name`).
    #[test]
    fn policy_remote_defaults_and_refusals() {
        let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/sim.toml"))
            .expect("launch/sim.toml");
        let with = |section: &str| base.replace("[policy]\n", &format!("{section}\n[policy]\n"));
        let file = Path::new("remote.toml");
        let p = Profile::parse(&with("[policy.remote]\nname = \"reach\"\nconnect = [\"tcp/10.0.0.2:7460\"]"), file)
            .expect("parses");
        let r = p.policy.remote.expect("remote");
        assert_eq!((r.prefix.as_str(), r.timeout_ms, r.connect_wait_ms), ("ganglion/policy", 500, 5000));
        assert_eq!((r.frames, r.jpeg_quality), (RemoteFrames::Raw, 90));
        for (section, key) in [
            ("[policy.remote]\nname = \"reach\"", "policy.remote.connect"),
            ("[policy.remote]\nname = \"a/b\"\nconnect = [\"tcp/x:1\"]", "policy.remote.name"),
            ("[policy.remote]\nname = \"reach\"\nconnect = [\"tcp/x:1\"]\ntimeout_ms = 0", "policy.remote.timeout_ms"),
            (
                "[policy.remote]\nname = \"reach\"\nconnect = [\"tcp/x:1\"]\njpeg_quality = 0",
                "policy.remote.jpeg_quality",
            ),
            ("[policy.remote]\nname = \"reach\"\nconnect = [\"tcp/x:1\"]\nframes = \"png\"", "policy.remote.frames"),
            ("[policy.remote]\nname = \"reach\"\nconnect = [\"tcp/x:1\"]\nsplit = true", "policy.remote.split"),
            (
                "[policy.remote]\nname = \"reach\"\nconnect = [\"tcp/x:1\"]\nconfig_file = \"z.json5\"",
                "policy.remote.connect",
            ),
        ] {
            let e = Profile::parse(&with(section), file).expect_err(section);
            assert!(e.to_string().contains(key), "{section}: {e}");
        }
    }

    #[test]
    fn policy_paths_resolve_against_the_profile_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("robot.toml");
        let policy = "[policy]\nbundle = \"bundles/arm\"\ntrusted_keys = \"keys\"\n";
        std::fs::write(&file, format!("{GOOD}{policy}")).expect("write profile");
        let p = Profile::load(&file).expect("valid");
        assert_eq!(p.policy.bundle, Some(dir.path().join("bundles/arm")));
        assert_eq!(p.policy.trusted_keys, Some(dir.path().join("keys")));

        let policy = "[policy]\ntrusted_keys = \"/etc/ganglion/keys\"\n";
        std::fs::write(&file, format!("{GOOD}{policy}")).expect("write profile");
        let p = Profile::load(&file).expect("valid");
        assert_eq!(p.policy.trusted_keys, Some(PathBuf::from("/etc/ganglion/keys")));
        assert_eq!(p.policy.bundle, None);
    }

    /// `kind = "servo"` needs its section's port, calibration and one id
    /// per joint, and a `[[transport.cameras]]` entry per robot camera;
    /// the keys are named.
    #[test]
    fn servo_transport_is_validated_naming_the_key() {
        let servo = "[transport]\nkind = \"servo\"\n[transport.servo]\n";
        let ok = format!("{GOOD}{servo}port = \"/dev/ttyACM0\"\ncalibration = \"arm.json\"\nids = [1, 2]\n");
        let p = Profile::parse(&ok, Path::new("good.toml")).expect("valid");
        assert_eq!(p.transport.servo.ids, [1, 2]);
        assert_eq!(p.transport.servo.exit_hold_ms, 500);
        assert_eq!(p.transport.servo.torque_limit, 1.0, "the servos' own limits");
        let limited = Profile::parse(&ok.replace("port =", "torque_limit = 0.3\nport ="), Path::new("good.toml"));
        assert_eq!(limited.expect("valid").transport.servo.torque_limit, 0.3);
        let camera = "[[robot.cameras]]\nname = \"front\"\nwidth = 8\nheight = 8\nformat = \"rgb8\"\n";
        let v4l2 = "[[transport.cameras]]\nname = \"front\"\ndevice = \"/dev/video0\"\nfps = 30\n";
        // A camera fed by a V4L2 device beside the bus.
        let with_camera = format!("{}{v4l2}", ok.replace("[control]", &format!("{camera}[control]")));
        let p = Profile::parse(&with_camera, Path::new("good.toml")).expect("valid");
        assert_eq!(p.transport.cameras[0].device, PathBuf::from("/dev/video0"));
        assert_eq!(p.transport.cameras[0].format, ganglion_camera::CaptureFormat::Mjpeg);
        for (text, key, expected) in [
            (format!("{GOOD}{servo}calibration = \"a.json\"\nids = [1, 2]\n"), "transport.servo.port", "serial port"),
            (format!("{GOOD}{servo}port = \"/dev/x\"\nids = [1, 2]\n"), "transport.servo.calibration", "LeRobot"),
            (ok.replace("ids = [1, 2]", "ids = [1]"), "transport.servo.ids", "one servo id per robot joint"),
            (ok.replace("ids = [1, 2]", "ids = [1, 1]"), "transport.servo.ids", "unique servo ids"),
            (ok.replace("ids = [1, 2]", "ids = [1, 253]"), "transport.servo.ids", "0..=252"),
            (ok.replace("port =", "baud = 300\nport ="), "transport.servo.baud", "9600..=4500000"),
            (ok.replace("port =", "torque_limit = 0.0\nport ="), "transport.servo.torque_limit", "(0, 1]"),
            (ok.replace("port =", "torque_limit = 1.5\nport ="), "transport.servo.torque_limit", "(0, 1]"),
            (ok.replace("port =", "torque_limit = -0.3\nport ="), "transport.servo.torque_limit", "(0, 1]"),
            (
                ok.replace("[control]", &format!("{camera}[control]")),
                "robot.cameras[0].name",
                "a [[transport.cameras]] entry named `front`",
            ),
            (
                format!(
                    "{}{v4l2}",
                    ok.replace("[control]", &format!("{camera}[control]")).replace("\"front\"", "\"side\"")
                ),
                "transport.cameras[0].name",
                "the name of a robot.cameras entry",
            ),
            (with_camera.replace("fps = 30", "fps = 0"), "transport.cameras[0].fps", "frame rate"),
            (format!("{GOOD}{v4l2}"), "transport.cameras", "unless transport.kind = \"servo\""),
        ] {
            let e = err(&text);
            assert_eq!(e.key(), key, "{e}");
            assert!(e.to_string().contains(expected), "{e}");
        }
        let e = err(&ok.replace("port =", "torque_limit = 1.5\nport ="));
        assert!(e.to_string().contains("bad.toml") && e.to_string().contains("got 1.5"), "{e}");
        let e = err(&ok.replace("\"servo\"\n[transport.servo]", "\"servo\"\n[transport.servo]\nprotocol = \"can\""));
        assert!(e.to_string().contains("feetech") && e.to_string().contains("dynamixel"), "{e}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let e = Profile::load("/nonexistent/robot.toml").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/robot.toml"), "{e}");
    }
}
