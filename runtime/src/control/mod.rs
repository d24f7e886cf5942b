//! The control loop and its parts: supervisor, fallback controllers,
//! safety shield, chunk executor, inference worker.
//!
//! - [`control_loop`]: [`ControlLoop`], the tick (sample → collect →
//!   request → supervise → act → shield → publish → account).
//! - [`input`]: the sample stage: slot snapshots, freshness, frozen frames,
//!   timestamps, heartbeat.
//! - [`inference`]: the [`InferenceExecutor`] trait, the real worker thread
//!   ([`WorkerExecutor`]) and the simulated-latency executor for SimClock
//!   runs ([`SimLatencyExecutor`]).
//! - [`supervisor`]: the mode machine and per-cause counters.
//! - [`executor`], [`shield`], [`fallback`]: chunk executor, safety shield,
//!   fallback controllers.
//! - [`telemetry`]: tick records and the input tap.
//! - [`runner`]: the real-time control thread ([`spawn_realtime`]) and the
//!   timer-floor measurement.
//! - [`alloc_count`]: counting global allocator (zero-allocation proof; in `ganglion-core`).
//!
//! # Observing the loop (recorder, `ganglion top`, replay)
//!
//! The control thread never hands out references or takes locks. Two
//! bounded rings carry what it did, both drop-and-count when full:
//!
//! - [`ControlLoop::attach_telemetry`] returns a [`TelemetryReader`]: one
//!   `Copy` [`TickRecord`] per tick (mode, causes, command, stage timings,
//!   inference request/answer ids, overrun, clamp flags).
//! - [`ControlLoop::attach_input_tap`] returns an [`InputTapReader`]: one
//!   pooled [`InputSnapshot`] per tick with every input the tick consumed
//!   (joint state, new frames, instruction, heartbeat) and the inference
//!   answer it collected (chunk copy or failure). The reader must
//!   [`recycle`](InputTapReader::recycle) each snapshot; that is what keeps
//!   the tap allocation-free. Feeding the recorded inputs back into slots
//!   and the recorded answers through an [`InferenceExecutor`] on a
//!   `SimClock` reproduces the command stream.
//!
//! Attach both before the loop starts running: attaching allocates.

/// `Display` ("`` `key` ``: expected ...") and `Error` for a configuration
/// error with `key()` (the profile key path) and `expected()` methods, so
/// every section's error reads the same wherever it surfaces.
macro_rules! config_error {
    ($($t:ty),+ $(,)?) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "`{}`: expected {}", self.key(), self.expected())
            }
        }

        impl std::error::Error for $t {}
    )+};
}
pub(crate) use config_error;

/// The counting allocator lives in `ganglion-core` (every crate's
/// allocation tests share it); re-exported here where the loop uses it.
pub use ganglion_core::alloc_count;
pub mod control_loop;
pub mod executor;
pub mod fallback;
pub mod inference;
pub mod input;
pub mod runner;
pub mod shield;
pub mod supervisor;
pub mod telemetry;

pub use control_loop::{ControlLoop, LoopConfig, LoopCounters, LoopError, StopHandle};
pub use inference::{
    Completion, InferenceExecutor, InferenceFailure, InferenceStages, InjectedDelay, LatencyModel, NetworkLink,
    SharedStages, SimLatencyExecutor, SubmitError, WorkerExecutor,
};
pub use input::{SampleReport, StalenessConfig};
pub use runner::{spawn_realtime, timer_floor, LoopProgress, RealtimeOptions, RealtimeStats};
pub use supervisor::{CauseCounts, RearmError, Supervisor, SupervisorConfig};
pub use telemetry::{CollectOutcome, InputSnapshot, InputTapReader, Stage, TelemetryReader, TickRecord};
