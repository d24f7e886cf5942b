//! Shared vocabulary of Ganglion.
//!
//! This crate is what `drivers/`, `policies/` and `runtime/` agree on, and it
//! depends on nothing of ours. Everything here but [`stats`] is allocation-free once
//! constructed, so any of it may be touched from the real-time control thread.
//!
//! - [`time`]: monotonic [`Stamp`]s and the [`Clock`] trait (real and simulated).
//! - [`slot`]: latest-value slots (triple buffers) between I/O threads and the loop.
//! - [`joints`]: fixed-capacity joint vectors, joint states and limits.
//! - [`frame`]: camera frames in preallocated buffers.
//! - [`image`]: pixel conversion (BT.601 YUYV) and the bilinear resampling
//!   the policies' preprocessing and the camera driver share.
//! - [`policy`]: observations, action chunks and the [`Policy`] trait the
//!   inference worker drives.
//! - [`cause`]: supervisor modes, trigger cause codes, and [`DeviceCauses`]
//!   (causes a device thread raises for the loop, lock-free).
//! - [`arm`]: forward kinematics of a serial arm (shield workspace box, sim, expert).
//! - [`io`]: the command type and the non-blocking [`CommandSink`] trait.
//! - [`stats`]: percentiles and summaries of every report (off the RT path:
//!   these sort and allocate).

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod alloc_count;
pub mod arm;
pub mod cause;
pub mod frame;
pub mod image;
pub mod io;
pub mod joints;
pub mod policy;
pub mod slot;
pub mod stats;
pub mod time;

pub use arm::{ArmJoint, ArmModel, Axis};
pub use cause::{Cause, CauseSet, DeviceCauses, Mode};
pub use frame::{Frame, FrameError, PixelFormat};
pub use io::{
    hold_command, input_slots, CameraWriter, Command, CommandSink, ExternalHeartbeat, InputReaders, InputWriters,
    Instruction, SinkError, MAX_INSTRUCTION_LEN,
};
pub use joints::{JointLimit, JointRange, JointState, JointVec, MAX_JOINTS};
pub use policy::{
    steps_nearest, ActionChunk, ActionKind, CameraSpec, Latent, Observation, PastObservation, Policy, PolicyError,
    PolicySpec, StepHistory, MAX_COMMITTED_STEPS, MAX_HISTORY_FPS,
};
pub use slot::{latest_slot, SlotReader, SlotWriter, Stamped};
pub use time::{Clock, MonotonicClock, SimClock, Stamp};
