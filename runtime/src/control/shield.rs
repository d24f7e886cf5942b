//! Safety shield.

use ganglion_core::{ArmModel, JointLimit, JointVec};

/// What the shield does with a command that breaks a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldMode {
    /// Clamp to the nearest allowed command.
    Saturate,
    /// Refuse the command and hold.
    Reject,
}

/// Axis-aligned box the tool point must stay in (base frame, m).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceBox {
    /// Lower corner.
    pub min: [f64; 3],
    /// Upper corner.
    pub max: [f64; 3],
}

/// `[shield]` section of the robot profile.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShieldConfig {
    /// Saturate or reject.
    pub mode: ShieldMode,
    /// rad: violation beyond this is a LimitViolation trigger.
    pub tolerance: f64,
    /// Optional workspace box.
    pub workspace: Option<WorkspaceBox>,
}

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig { mode: ShieldMode::Saturate, tolerance: 0.05, workspace: None }
    }
}

/// Clamps counted per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClampCounts {
    /// Position limit clamps.
    pub position: u64,
    /// Velocity limit clamps.
    pub velocity: u64,
    /// Acceleration limit clamps.
    pub acceleration: u64,
    /// Jerk limit clamps.
    pub jerk: u64,
    /// Workspace box clamps.
    pub workspace: u64,
    /// Non-finite commands.
    pub non_finite: u64,
}

/// Result of one [`Shield::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldOutcome {
    /// The output differs from the desired command.
    pub clamped: bool,
    /// A limit was broken by more than the tolerance.
    pub violation: bool,
    /// The command was refused.
    pub rejected: bool,
}

/// The safety shield.
#[derive(Debug, Clone)]
pub struct Shield {
    prev: JointVec,
    counts: ClampCounts,
}

impl Shield {
    /// A shield for `limits`.
    pub fn new(_cfg: &ShieldConfig, limits: &[JointLimit], _arm: Option<ArmModel>, _period_ns: u64) -> Self {
        Shield { prev: JointVec::zeros(limits.len()), counts: ClampCounts::default() }
    }
    /// Bumpless restart at `measured`.
    pub fn reset(&mut self, measured: &JointVec) {
        self.prev = *measured;
    }
    /// Filters `desired` into a command.
    pub fn apply(&mut self, _desired: &JointVec, pos: &mut JointVec, vel: &mut JointVec) -> ShieldOutcome {
        *pos = self.prev;
        *vel = JointVec::zeros(self.prev.len());
        ShieldOutcome::default()
    }
    /// Clamp counters.
    pub fn clamp_counts(&self) -> &ClampCounts {
        &self.counts
    }
}
