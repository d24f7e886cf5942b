//! The loop's inputs (latest-value slots) and outputs (commands).

use crate::cause::{CauseSet, Mode};
use crate::frame::Frame;
use crate::joints::{JointState, JointVec};
use crate::slot::{latest_slot, SlotReader, SlotWriter, Stamped};
use crate::time::Stamp;

/// Longest instruction text, in bytes.
pub const MAX_INSTRUCTION_LEN: usize = 256;

/// The language instruction in force ("reach the red target").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Instruction {
    /// Increments whenever the text changes; 0 means no instruction yet.
    /// The policy re-encodes the text only when this changes.
    pub seq: u64,
    /// The text, at most [`MAX_INSTRUCTION_LEN`] bytes.
    pub text: heapless::String<MAX_INSTRUCTION_LEN>,
}

impl Instruction {
    /// An instruction with `text`, truncated at a character boundary to
    /// [`MAX_INSTRUCTION_LEN`] bytes.
    pub fn new(seq: u64, text: &str) -> Self {
        let mut s = heapless::String::new();
        for ch in text.chars() {
            if s.push(ch).is_err() {
                break;
            }
        }
        Instruction { seq, text: s }
    }
}

/// A signal from outside the runtime: the operator or the robot's safety
/// layer proving it is alive, optionally asking for a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExternalHeartbeat {
    /// The sender asks the runtime to stop (operator stop).
    pub stop: bool,
}

/// One command the loop publishes per tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Command {
    /// Tick number, from 0.
    pub seq: u64,
    /// The tick's scheduled start on the loop clock.
    pub stamp: Stamp,
    /// Mode that produced the command.
    pub mode: Mode,
    /// Triggers active at this tick.
    pub causes: CauseSet,
    /// Joint position targets (rad), after the shield.
    pub position: JointVec,
    /// Joint velocity feed-forward (rad/s), after the shield.
    pub velocity: JointVec,
}

/// Why a command was not handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The hand-off queue is full; the command was dropped and counted.
    #[error("command queue full")]
    Full,
    /// The transport behind the sink has shut down.
    #[error("command sink closed")]
    Closed,
}

/// Where commands go: a transport's publisher, the simulated plant, a test.
///
/// Invariants: `send` never blocks, never allocates, never panics; it is
/// called from the control thread once per tick. A transport hands the
/// command to its own publisher thread through a bounded queue and drops
/// (and counts) when that queue is full.
pub trait CommandSink: Send {
    /// Hands `cmd` on.
    fn send(&mut self, cmd: &Command) -> Result<(), SinkError>;
}

/// A camera input: its name and the slot the driver writes.
pub struct CameraWriter {
    /// Camera name from the profile.
    pub name: String,
    /// Where decoded frames go.
    pub slot: SlotWriter<Stamped<Frame>>,
}

/// The writing ends of every input slot; drivers own these.
pub struct InputWriters {
    /// Joint states.
    pub joints: SlotWriter<Stamped<JointState>>,
    /// Cameras, in profile order.
    pub cameras: Vec<CameraWriter>,
    /// Language instruction.
    pub instruction: SlotWriter<Stamped<Instruction>>,
    /// External heartbeat / operator stop.
    pub heartbeat: SlotWriter<Stamped<ExternalHeartbeat>>,
}

/// The reading ends of every input slot; the control loop owns these.
pub struct InputReaders {
    /// Joint states.
    pub joints: SlotReader<Stamped<JointState>>,
    /// Cameras, in profile order.
    pub cameras: Vec<SlotReader<Stamped<Frame>>>,
    /// Language instruction.
    pub instruction: SlotReader<Stamped<Instruction>>,
    /// External heartbeat / operator stop.
    pub heartbeat: SlotReader<Stamped<ExternalHeartbeat>>,
}

/// Makes the input slots for `n_joints` joints and cameras given as
/// `(name, max_width, max_height)`; every buffer is allocated here.
pub fn input_slots(n_joints: usize, cameras: &[(String, u32, u32)]) -> (InputWriters, InputReaders) {
    let (jw, jr) = latest_slot(Stamped::empty(JointState::zeros(n_joints)));
    let (iw, ir) = latest_slot(Stamped::empty(Instruction::default()));
    let (hw, hr) = latest_slot(Stamped::empty(ExternalHeartbeat::default()));
    let mut cam_writers = Vec::with_capacity(cameras.len());
    let mut cam_readers = Vec::with_capacity(cameras.len());
    for (name, w, h) in cameras {
        let (cw, cr) = latest_slot(Stamped::empty(Frame::with_capacity(*w, *h)));
        cam_writers.push(CameraWriter { name: name.clone(), slot: cw });
        cam_readers.push(cr);
    }
    (
        InputWriters { joints: jw, cameras: cam_writers, instruction: iw, heartbeat: hw },
        InputReaders { joints: jr, cameras: cam_readers, instruction: ir, heartbeat: hr },
    )
}

/// Zero-velocity command holding `position`, for start-up and tests.
pub fn hold_command(seq: u64, stamp: Stamp, mode: Mode, position: JointVec) -> Command {
    Command { seq, stamp, mode, causes: CauseSet::EMPTY, position, velocity: JointVec::zeros(position.len()) }
}
