//! What the recorder stores per tick and per inference result, and how two
//! ticks are compared bit for bit.

use ganglion_core::{ActionChunk, Cause, CauseSet, Command, JointVec, Mode, Stamp};

/// Names of the stage timings in [`TickRow::stage_ns`], in order.
pub const STAGES: [&str; 8] = ["sample", "collect", "request", "supervise", "act", "shield", "publish", "total"];

/// One control tick as recorded: fixed size, `Copy`, so the control thread
/// pushes it into a ring without allocating.
///
/// The decision fields (everything but `start`, `stage_ns` and
/// `inference_latency_ns`, which measure real time) must be reproduced
/// bit for bit by a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickRow {
    /// Tick number, from 0.
    pub seq: u64,
    /// Scheduled start on the loop clock.
    pub scheduled: Stamp,
    /// Actual start on the loop clock (jitter = `start - scheduled`).
    pub start: Stamp,
    /// Duration of each stage of [`STAGES`], ns (saturated at `u32::MAX`).
    pub stage_ns: [u32; STAGES.len()],
    /// Mode that produced the command.
    pub mode: Mode,
    /// Triggers active at this tick.
    pub causes: CauseSet,
    /// Inference request submitted this tick (0: none).
    pub request_id: u64,
    /// Inference result accepted this tick (0: none).
    pub result_id: u64,
    /// Step of the newest accepted chunk in force at the scheduled time;
    /// `u32::MAX` when no policy action drives the tick.
    pub action_index: u32,
    /// Joints whose command the shield changed this tick.
    pub clamps: u32,
    /// [`TickFlags`] bits.
    pub flags: u8,
    /// Latency of the newest accepted result (request to collection), ns.
    pub inference_latency_ns: u64,
    /// Commanded joint positions (after the shield).
    pub position: JointVec,
    /// Commanded joint velocities (after the shield).
    pub velocity: JointVec,
}

impl TickRow {
    /// A row for `cmd` with no timings or inference bookkeeping.
    pub fn from_command(cmd: &Command) -> Self {
        TickRow {
            seq: cmd.seq,
            scheduled: cmd.stamp,
            start: cmd.stamp,
            stage_ns: [0; STAGES.len()],
            mode: cmd.mode,
            causes: cmd.causes,
            request_id: 0,
            result_id: 0,
            action_index: 0,
            clamps: 0,
            flags: 0,
            inference_latency_ns: 0,
            position: cmd.position,
            velocity: cmd.velocity,
        }
    }

    /// The command this tick published.
    pub fn command(&self) -> Command {
        Command {
            seq: self.seq,
            stamp: self.scheduled,
            mode: self.mode,
            causes: self.causes,
            position: self.position,
            velocity: self.velocity,
        }
    }

    /// Causes active now that were not active in `previous` (a supervisor
    /// trigger edge).
    pub fn new_causes(&self, previous: Option<&TickRow>) -> CauseSet {
        CauseSet(self.causes.0 & !previous.map_or(0, |p| p.causes.0))
    }

    /// The first decision field in which `replayed` differs from `self`
    /// (the recording), comparing floating-point values by their bits.
    pub fn first_divergence(&self, replayed: &TickRow) -> Option<Divergence> {
        let ints: [(&'static str, u64, u64); 7] = [
            ("seq", self.seq, replayed.seq),
            ("scheduled_ns", self.scheduled.0, replayed.scheduled.0),
            ("mode", self.mode as u64, replayed.mode as u64),
            ("causes", u64::from(self.causes.0), u64::from(replayed.causes.0)),
            ("request_id", self.request_id, replayed.request_id),
            ("result_id", self.result_id, replayed.result_id),
            ("action_index", u64::from(self.action_index), u64::from(replayed.action_index)),
        ];
        for (field, a, b) in ints {
            if a != b {
                return Some(Divergence {
                    tick: self.seq,
                    field,
                    index: None,
                    recorded: a.to_string(),
                    replayed: b.to_string(),
                });
            }
        }
        // Overruns measure real time; every other flag is a decision.
        let (fa, fb) = (self.flags & !TickFlags::OVERRUN, replayed.flags & !TickFlags::OVERRUN);
        if fa != fb {
            return Some(Divergence {
                tick: self.seq,
                field: "flags",
                index: None,
                recorded: format!("{fa:#04x}"),
                replayed: format!("{fb:#04x}"),
            });
        }
        if self.clamps != replayed.clamps {
            return Some(Divergence {
                tick: self.seq,
                field: "clamps",
                index: None,
                recorded: self.clamps.to_string(),
                replayed: replayed.clamps.to_string(),
            });
        }
        for (field, a, b) in [
            ("command_position", &self.position, &replayed.position),
            ("command_velocity", &self.velocity, &replayed.velocity),
        ] {
            if a.len() != b.len() {
                return Some(Divergence {
                    tick: self.seq,
                    field,
                    index: None,
                    recorded: format!("{} joints", a.len()),
                    replayed: format!("{} joints", b.len()),
                });
            }
            if let Some(j) = a.iter().zip(b.iter()).position(|(x, y)| x.to_bits() != y.to_bits()) {
                return Some(Divergence {
                    tick: self.seq,
                    field,
                    index: Some(j),
                    recorded: format!("{:e}", a[j]),
                    replayed: format!("{:e}", b[j]),
                });
            }
        }
        None
    }
}

/// Bits of [`TickRow::flags`].
pub struct TickFlags;

impl TickFlags {
    /// The command went to the sink.
    pub const PUBLISHED: u8 = 1;
    /// The tick ran past its budget (real time: not compared by replay).
    pub const OVERRUN: u8 = 2;
    /// The shield changed the command.
    pub const CLAMPED: u8 = 4;
    /// The shield found a violation beyond tolerance.
    pub const VIOLATION: u8 = 8;
    /// The policy was driving but had no action for this tick.
    pub const STARVED: u8 = 16;
}

/// Where a replay first departed from its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Tick number.
    pub tick: u64,
    /// Field name as in `ganglion_msgs/msg/TickRecord`.
    pub field: &'static str,
    /// Joint index for vector fields.
    pub index: Option<usize>,
    /// The recorded value.
    pub recorded: String,
    /// The replayed value.
    pub replayed: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tick {}: {}", self.tick, self.field)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        write!(f, " recorded {} replayed {}", self.recorded, self.replayed)
    }
}

/// Outcome of one inference request, as a code (the error text is not
/// recorded: the control thread must not copy strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResultStatus {
    /// The chunk is valid as far as the policy knows.
    Ok = 0,
    /// [`PolicyError::BadObservation`](ganglion_core::PolicyError::BadObservation).
    BadObservation = 1,
    /// [`PolicyError::Backend`](ganglion_core::PolicyError::Backend).
    Backend = 2,
    /// [`PolicyError::InstructionRejected`](ganglion_core::PolicyError::InstructionRejected).
    InstructionRejected = 3,
    /// [`PolicyError::WorkerStopped`](ganglion_core::PolicyError::WorkerStopped).
    WorkerStopped = 4,
    /// The policy panicked (the worker answers with this from then on).
    Panicked = 5,
}

impl ResultStatus {
    /// From the recorded code.
    pub fn from_u8(v: u8) -> Option<Self> {
        [
            ResultStatus::Ok,
            ResultStatus::BadObservation,
            ResultStatus::Backend,
            ResultStatus::InstructionRejected,
            ResultStatus::WorkerStopped,
            ResultStatus::Panicked,
        ]
        .get(v as usize)
        .copied()
    }
}

/// One inference result as the loop collected it.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRow {
    /// Loop time at which the loop took the result (the tick's scheduled start).
    pub collected: Stamp,
    /// Outcome.
    pub status: ResultStatus,
    /// The chunk (meaningful when `status` is `Ok`; the request id always is).
    pub chunk: ActionChunk,
}

/// Names of the causes in `set`, comma-separated (for file names and logs).
pub fn cause_names(set: CauseSet) -> String {
    let names: Vec<&str> = set.iter().map(Cause::name).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_names_field_and_joint() {
        let cmd = ganglion_core::hold_command(7, Stamp(100), Mode::Nominal, JointVec::splat(3, 0.5));
        let a = TickRow::from_command(&cmd);
        let mut b = a;
        b.start = Stamp(999); // timing fields do not count
        assert_eq!(a.first_divergence(&b), None);
        b.position[2] = f64::from_bits(0.5f64.to_bits() + 1);
        let d = a.first_divergence(&b).expect("differs");
        assert_eq!((d.tick, d.field, d.index), (7, "command_position", Some(2)));
        b.causes.insert(Cause::TickOverrun);
        assert_eq!(a.first_divergence(&b).expect("differs").field, "causes");
        assert_eq!(b.new_causes(Some(&a)), CauseSet::from_iter([Cause::TickOverrun]));
        assert_eq!(cause_names(b.causes), "tick_overrun");
    }
}
