//! What the control thread tells the rest of the process, without blocking
//! or allocating: fixed-size [`TickRecord`]s in a bounded ring, and
//! optionally full [`InputSnapshot`]s (the recorder's replay hook) in a
//! second ring of pooled buffers. Both drop and count when the consumer
//! falls behind; neither ever blocks the producer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use ganglion_core::{
    ActionChunk, CauseSet, Command, ExternalHeartbeat, Frame, Instruction, JointState, Mode, PolicySpec, Stamp, Stamped,
};

use super::executor::ChunkRejected;
use super::inference::InferenceFailure;
use super::input::SampleReport;

/// The stages of a tick, in order (docs/ARCHITECTURE.md, "The tick").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Snapshot and validate inputs.
    Sample = 0,
    /// Take finished inference results.
    Collect = 1,
    /// Submit a new observation.
    Request = 2,
    /// Evaluate triggers, move the mode machine.
    Supervise = 3,
    /// Chunk executor or fallback.
    Act = 4,
    /// Clamp to limits.
    Shield = 5,
    /// Hand the command to the sink.
    Publish = 6,
}

impl Stage {
    /// Number of stages.
    pub const COUNT: usize = 7;
    /// All stages in order.
    pub const ALL: [Stage; Stage::COUNT] =
        [Stage::Sample, Stage::Collect, Stage::Request, Stage::Supervise, Stage::Act, Stage::Shield, Stage::Publish];

    /// Stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Sample => "sample",
            Stage::Collect => "collect",
            Stage::Request => "request",
            Stage::Supervise => "supervise",
            Stage::Act => "act",
            Stage::Shield => "shield",
            Stage::Publish => "publish",
        }
    }
}

/// What happened to an inference result collected in a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CollectOutcome {
    /// Nothing finished this tick.
    #[default]
    None,
    /// A chunk was accepted by the executor.
    Accepted,
    /// The loop found the chunk malformed (wrong request, stamp, shape,
    /// non-finite values) before the executor saw it.
    Invalid,
    /// The executor refused the chunk.
    Rejected(ChunkRejected),
    /// The policy failed.
    Failed(InferenceFailure),
}

/// [`TickRecord::action_index`] when no policy action drives the tick.
pub const ACTION_INDEX_NONE: u32 = u32::MAX;

/// Joints whose shielded command differs from the desired one (bitwise, so
/// a NaN desire counts as changed).
pub fn clamped_joints(desired: &ganglion_core::JointVec, shielded: &ganglion_core::JointVec) -> u32 {
    desired.iter().zip(shielded.iter()).filter(|(d, s)| d.to_bits() != s.to_bits()).count() as u32
}

/// One tick, as recorded on the control thread. `Copy`, fixed size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickRecord {
    /// Tick number, from 0.
    pub seq: u64,
    /// Scheduled start (the tick's time t_k).
    pub scheduled: Stamp,
    /// Actual start on the loop clock.
    pub start: Stamp,
    /// End of the tick body.
    pub end: Stamp,
    /// Mode that produced the command.
    pub mode: Mode,
    /// Triggers active this tick.
    pub causes: CauseSet,
    /// The command sent (or that would have been sent; see `published`).
    pub command: Command,
    /// Whether the command went to the sink (no command before the first
    /// joint state, or when the sink refused it).
    pub published: bool,
    /// Time spent in each [`Stage`], ns.
    pub stage_ns: [u32; Stage::COUNT],
    /// The tick body (or its start) ran past the budget.
    pub overrun: bool,
    /// The shield changed the command.
    pub clamped: bool,
    /// Joints whose command the shield changed.
    pub clamped_joints: u32,
    /// Step of the newest accepted chunk in force at the scheduled time
    /// (`(t_k − obs stamp) / step`), or [`ACTION_INDEX_NONE`] when no policy
    /// action drives this tick (fallback, startup, no plan).
    pub action_index: u32,
    /// The shield found a violation beyond tolerance.
    pub violation: bool,
    /// Request submitted this tick (0: none).
    pub submitted: u64,
    /// Request answered this tick (0: none).
    pub completed: u64,
    /// What became of the answer.
    pub collect: CollectOutcome,
    /// The answered chunk's age at collection (now − obs stamp), ns.
    pub chunk_age_ns: u64,
    /// Worker compute time of the answered chunk, ns.
    pub compute_ns: u64,
    /// Sequence number of the joint state in force.
    pub joint_seq: u64,
    /// Stamp of the observation in force.
    pub obs_stamp: Stamp,
    /// The policy was driving but had no action for t_k.
    pub starved: bool,
}

/// The producing end of the tick-record ring (held by the loop).
#[derive(Debug)]
pub struct TelemetryWriter {
    ring: Arc<ArrayQueue<TickRecord>>,
    dropped: Arc<AtomicU64>,
}

/// The consuming end of the tick-record ring (a non-RT thread drains it).
#[derive(Debug, Clone)]
pub struct TelemetryReader {
    ring: Arc<ArrayQueue<TickRecord>>,
    dropped: Arc<AtomicU64>,
}

/// A ring of `capacity` tick records (at least 1).
pub fn telemetry_ring(capacity: usize) -> (TelemetryWriter, TelemetryReader) {
    let ring = Arc::new(ArrayQueue::new(capacity.max(1)));
    let dropped = Arc::new(AtomicU64::new(0));
    (TelemetryWriter { ring: ring.clone(), dropped: dropped.clone() }, TelemetryReader { ring, dropped })
}

impl TelemetryWriter {
    /// Pushes `rec`; drops and counts it when the ring is full.
    pub fn push(&self, rec: &TickRecord) -> bool {
        if self.ring.push(*rec).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl TelemetryReader {
    /// The oldest record not yet taken.
    pub fn pop(&self) -> Option<TickRecord> {
        self.ring.pop()
    }

    /// Takes every record available now, oldest first.
    pub fn drain(&self, mut f: impl FnMut(&TickRecord)) -> usize {
        let mut n = 0;
        while let Some(r) = self.ring.pop() {
            f(&r);
            n += 1;
        }
        n
    }

    /// Records dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Everything the loop consumed in one tick, for the flight recorder and
/// replay. Buffers are pooled: a field is only meaningful where the flags
/// say it is new this tick (`report.new_joints`, `report.new_frames` bit
/// `i` for `frames[i]`, `report.new_instruction`, `chunk_valid`); the other
/// fields hold whatever an earlier tick left in this buffer.
#[derive(Debug, Clone)]
pub struct InputSnapshot {
    /// Tick number.
    pub tick: u64,
    /// The tick's scheduled time.
    pub scheduled: Stamp,
    /// The tick's actual start (the `now` inputs were judged at).
    pub now: Stamp,
    /// What the sample stage found, including which inputs were new.
    pub report: SampleReport,
    /// The joint state sample in force (always copied).
    pub joints: Stamped<JointState>,
    /// Camera samples; `frames[i]` copied only when new this tick.
    pub frames: Vec<Stamped<Frame>>,
    /// The instruction; copied only when new this tick.
    pub instruction: Stamped<Instruction>,
    /// The external heartbeat sample in force (always copied).
    pub heartbeat: Stamped<ExternalHeartbeat>,
    /// Request submitted this tick (0: none).
    pub submitted: u64,
    /// What the collect stage took this tick.
    pub collect: CollectOutcome,
    /// Request answered this tick (0: none).
    pub completed: u64,
    /// Whether `chunk` holds the chunk answered this tick.
    pub chunk_valid: bool,
    /// The answered chunk, as the policy returned it.
    pub chunk: ActionChunk,
    /// The command the tick produced.
    pub command: Command,
}

impl InputSnapshot {
    fn for_spec(spec: &PolicySpec) -> Box<InputSnapshot> {
        Box::new(InputSnapshot {
            tick: 0,
            scheduled: Stamp::ZERO,
            now: Stamp::ZERO,
            report: SampleReport::default(),
            joints: Stamped::empty(JointState::zeros(spec.n_joints)),
            frames: spec.cameras.iter().map(|c| Stamped::empty(Frame::with_capacity(c.width, c.height))).collect(),
            instruction: Stamped::empty(Instruction::default()),
            heartbeat: Stamped::empty(ExternalHeartbeat::default()),
            submitted: 0,
            collect: CollectOutcome::None,
            completed: 0,
            chunk_valid: false,
            chunk: ActionChunk::for_spec(spec),
            command: ganglion_core::hold_command(0, Stamp::ZERO, Mode::Startup, Default::default()),
        })
    }
}

struct TapShared {
    full: ArrayQueue<Box<InputSnapshot>>,
    free: ArrayQueue<Box<InputSnapshot>>,
    dropped: AtomicU64,
}

/// The loop's end of the input tap.
pub struct InputTapWriter {
    shared: Arc<TapShared>,
    current: Option<Box<InputSnapshot>>,
}

/// The recorder's end of the input tap. Hand every snapshot back with
/// [`recycle`](Self::recycle), or the loop runs out of buffers and drops.
pub struct InputTapReader {
    shared: Arc<TapShared>,
}

/// An input tap with `capacity` pooled snapshot buffers for `spec`.
pub fn input_tap(spec: &PolicySpec, capacity: usize) -> (InputTapWriter, InputTapReader) {
    let capacity = capacity.max(2);
    let shared = Arc::new(TapShared {
        full: ArrayQueue::new(capacity),
        free: ArrayQueue::new(capacity),
        dropped: AtomicU64::new(0),
    });
    for _ in 0..capacity {
        // Exactly `capacity` buffers: cannot fail.
        let _ = shared.free.push(InputSnapshot::for_spec(spec));
    }
    (InputTapWriter { shared: shared.clone(), current: None }, InputTapReader { shared })
}

impl InputTapWriter {
    /// A buffer to fill for this tick, or `None` (counted as dropped) when
    /// the recorder holds every buffer.
    pub fn begin(&mut self) -> Option<&mut InputSnapshot> {
        if self.current.is_none() {
            match self.shared.free.pop() {
                Some(b) => self.current = Some(b),
                None => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        self.current.as_deref_mut()
    }

    /// Publishes the buffer filled since [`begin`](Self::begin).
    pub fn commit(&mut self) {
        if let Some(b) = self.current.take() {
            if let Err(b) = self.shared.full.push(b) {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.current = Some(b);
            }
        }
    }
}

impl InputTapReader {
    /// The oldest snapshot not yet taken.
    pub fn pop(&self) -> Option<Box<InputSnapshot>> {
        self.shared.full.pop()
    }

    /// Returns a snapshot buffer to the loop.
    pub fn recycle(&self, snap: Box<InputSnapshot>) {
        // The pool never holds more buffers than it was built with.
        let _ = self.shared.free.push(snap);
    }

    /// Snapshots dropped because no buffer was free.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}
