//! Supervisor modes and the cause codes of its triggers, and
//! [`DeviceCauses`], the word through which a device thread (the servo
//! bus) raises causes the control loop reads without a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The supervisor's mode (docs/ARCHITECTURE.md, "The tick").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Mode {
    /// Waiting for the first valid inputs and the first policy action;
    /// commands hold the measured position.
    Startup = 0,
    /// The policy's actions drive the robot.
    Nominal = 1,
    /// The policy still drives, but a soft cause (`[supervisor]
    /// degrade_on`) is active; the tick's causes name it. Shield clamps alone
    /// never degrade: they are counted.
    Degraded = 2,
    /// The CPU fallback controller drives the robot.
    Fallback = 3,
    /// Latched stop; only an explicit re-arm with all triggers clear leaves it.
    SafeStop = 4,
}

impl Mode {
    /// All modes in order.
    pub const ALL: [Mode; 5] = [Mode::Startup, Mode::Nominal, Mode::Degraded, Mode::Fallback, Mode::SafeStop];

    /// From the `repr(u8)` value; `None` for unknown values.
    pub fn from_u8(v: u8) -> Option<Mode> {
        Mode::ALL.get(v as usize).copied()
    }

    /// Stable lower-case name for reports and diagnostics.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Startup => "startup",
            Mode::Nominal => "nominal",
            Mode::Degraded => "degraded",
            Mode::Fallback => "fallback",
            Mode::SafeStop => "safe_stop",
        }
    }
}

/// Why the supervisor acted. Each is counted and reported by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Cause {
    /// The newest joint state is older than the configured limit, or none arrived.
    StaleJointState = 0,
    /// A camera's newest frame is older than the configured limit, or none arrived.
    StaleCamera = 1,
    /// A camera repeats the same sequence number or identical pixels.
    FrozenCamera = 2,
    /// Non-finite or wrongly sized observation (joint count, frame geometry).
    InvalidObservation = 3,
    /// An input stamp lies in the future or went backwards.
    BadTimestamp = 4,
    /// No valid policy action exists for this tick.
    InferenceLate = 5,
    /// The policy reported an error or the worker died.
    InferenceError = 6,
    /// The policy returned non-finite or wrongly shaped actions.
    InvalidAction = 7,
    /// A commanded value broke a limit by more than the tolerance.
    LimitViolation = 8,
    /// The previous tick ran past its period.
    TickOverrun = 9,
    /// The world model's prediction and the observation disagree.
    WorldModelSurprise = 10,
    /// The external heartbeat (operator or safety layer) went silent.
    HeartbeatLost = 11,
    /// The operator asked for a stop.
    OperatorStop = 12,
    /// The measured joint state lies outside the envelope the shield
    /// enforces on commands: a joint beyond its position range by more than
    /// `[shield] tolerance`, or the tool point outside the workspace box by
    /// more than `workspace_tolerance`. A robot there, or a calibration
    /// error that makes it look so, must not be driven by the policy.
    OutOfEnvelope = 13,
    /// A camera's new frame is blank: over a subsample of its bytes the
    /// values spread by no more than `[staleness] blank_frame_spread`
    /// (black, white or flat: a covered lens, a failed sensor).
    BlankCamera = 14,
    /// The policy runs on a server (`ganglion serve`) and nothing answers
    /// there: no server on its key, or no route to it.
    PolicyUnreachable = 15,
    /// A servo reports a hardware alarm: Feetech status bits (overload,
    /// overheat, over-current, input voltage, angle sensor) or Dynamixel's
    /// alert bit with its `Hardware_Error_Status` (overload, electrical
    /// shock, encoder, overheating, input voltage). Which servo and bit: the
    /// run report's `servo.faults`.
    ServoFault = 16,
    /// The servo bus itself failed: a servo stopped answering (a sync read
    /// failed after its retries) or checksum errors went beyond
    /// `[transport.servo] max_checksum_errors_per_s`. Which servo: the run
    /// report's `servo.faults`.
    BusFault = 17,
}

impl Cause {
    /// Number of cause codes.
    pub const COUNT: usize = 18;

    /// All causes in code order.
    pub const ALL: [Cause; Cause::COUNT] = [
        Cause::StaleJointState,
        Cause::StaleCamera,
        Cause::FrozenCamera,
        Cause::InvalidObservation,
        Cause::BadTimestamp,
        Cause::InferenceLate,
        Cause::InferenceError,
        Cause::InvalidAction,
        Cause::LimitViolation,
        Cause::TickOverrun,
        Cause::WorldModelSurprise,
        Cause::HeartbeatLost,
        Cause::OperatorStop,
        Cause::OutOfEnvelope,
        Cause::BlankCamera,
        Cause::PolicyUnreachable,
        Cause::ServoFault,
        Cause::BusFault,
    ];

    /// From the numeric code; `None` for unknown codes.
    pub fn from_code(code: u8) -> Option<Cause> {
        Cause::ALL.get(code as usize).copied()
    }

    /// The numeric code (stable; recorded in files).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Stable snake_case name for reports and diagnostics.
    pub const fn name(self) -> &'static str {
        match self {
            Cause::StaleJointState => "stale_joint_state",
            Cause::StaleCamera => "stale_camera",
            Cause::FrozenCamera => "frozen_camera",
            Cause::InvalidObservation => "invalid_observation",
            Cause::BadTimestamp => "bad_timestamp",
            Cause::InferenceLate => "inference_late",
            Cause::InferenceError => "inference_error",
            Cause::InvalidAction => "invalid_action",
            Cause::LimitViolation => "limit_violation",
            Cause::TickOverrun => "tick_overrun",
            Cause::WorldModelSurprise => "world_model_surprise",
            Cause::HeartbeatLost => "heartbeat_lost",
            Cause::OperatorStop => "operator_stop",
            Cause::OutOfEnvelope => "out_of_envelope",
            Cause::BlankCamera => "blank_camera",
            Cause::PolicyUnreachable => "policy_unreachable",
            Cause::ServoFault => "servo_fault",
            Cause::BusFault => "bus_fault",
        }
    }
}

/// A set of causes, one bit per [`Cause`] code. `Copy`, allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CauseSet(pub u32);

impl CauseSet {
    /// No cause.
    pub const EMPTY: CauseSet = CauseSet(0);

    /// Adds `cause`.
    pub fn insert(&mut self, cause: Cause) {
        self.0 |= 1 << cause.code();
    }

    /// Whether `cause` is in the set.
    pub fn contains(self, cause: Cause) -> bool {
        self.0 & (1 << cause.code()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Union.
    pub fn union(self, other: CauseSet) -> CauseSet {
        CauseSet(self.0 | other.0)
    }

    /// The causes in code order.
    pub fn iter(self) -> impl Iterator<Item = Cause> {
        Cause::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Cause> for CauseSet {
    fn from_iter<I: IntoIterator<Item = Cause>>(iter: I) -> Self {
        let mut s = CauseSet::EMPTY;
        for c in iter {
            s.insert(c);
        }
        s
    }
}

/// Causes a device thread raises for the control loop: one atomic word, so
/// the loop reads it once per tick without a lock, a wait or an allocation.
///
/// The low 32 bits are the causes active now ([`raise`](Self::raise) /
/// [`clear`](Self::clear)); the high 32 bits remember every cause raised
/// since the loop last looked, so a fault that is raised and cleared
/// between two ticks still reaches one tick ([`take`](Self::take)).
/// Clones share the word.
#[derive(Debug, Clone, Default)]
pub struct DeviceCauses(Arc<AtomicU64>);

impl DeviceCauses {
    /// Marks `cause` active (and seen).
    pub fn raise(&self, cause: Cause) {
        let bit = 1u64 << cause.code();
        self.0.fetch_or(bit | (bit << 32), Ordering::AcqRel);
    }

    /// Marks `cause` no longer active (a tick that has not looked yet
    /// still sees it once).
    pub fn clear(&self, cause: Cause) {
        self.0.fetch_and(!(1u64 << cause.code()), Ordering::AcqRel);
    }

    /// The causes active now or raised since the last `take` (the loop's
    /// read, once per tick); forgets the raised-since record.
    pub fn take(&self) -> CauseSet {
        let w = self.0.fetch_and(u64::from(u32::MAX), Ordering::AcqRel);
        CauseSet((w | (w >> 32)) as u32)
    }

    /// The causes active now (no side effect; for reports and tests).
    pub fn active(&self) -> CauseSet {
        CauseSet(self.0.load(Ordering::Acquire) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for (i, c) in Cause::ALL.iter().enumerate() {
            assert_eq!(c.code() as usize, i);
            assert_eq!(Cause::from_code(c.code()), Some(*c));
            assert!(names.insert(c.name()));
        }
        assert_eq!(Cause::from_code(Cause::COUNT as u8), None);
        for m in Mode::ALL {
            assert_eq!(Mode::from_u8(m as u8), Some(m));
        }
    }

    #[test]
    fn cause_set_holds_each_cause() {
        let s: CauseSet = [Cause::OperatorStop, Cause::StaleCamera].into_iter().collect();
        assert!(s.contains(Cause::OperatorStop) && s.contains(Cause::StaleCamera));
        assert!(!s.contains(Cause::TickOverrun));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Cause::StaleCamera, Cause::OperatorStop]);
    }

    #[test]
    fn device_causes_reach_one_take_even_when_cleared_before_it() {
        let d = DeviceCauses::default();
        let loop_side = d.clone();
        assert!(loop_side.take().is_empty());
        d.raise(Cause::BusFault);
        d.clear(Cause::BusFault);
        assert_eq!(loop_side.take(), [Cause::BusFault].into_iter().collect());
        assert!(loop_side.take().is_empty(), "seen once, then forgotten");
        d.raise(Cause::ServoFault);
        assert!(loop_side.take().contains(Cause::ServoFault));
        assert!(loop_side.take().contains(Cause::ServoFault), "still active");
        assert_eq!(loop_side.active(), [Cause::ServoFault].into_iter().collect());
        d.clear(Cause::ServoFault);
        assert!(loop_side.take().is_empty());
    }
}
