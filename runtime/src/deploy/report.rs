//! What a deployed run reports when it stops ([`RunReport`]): the `ganglion
//! bench loop` fields plus the transport's counters, the real-time settings
//! achieved and what the flight recorder left behind.

use std::collections::BTreeMap;

use crate::stats::Percentiles;

/// The report of one run (`ganglion run --report FILE`, also printed).
///
/// `ticks`, the latency percentiles, `allocations_per_tick`, `overruns` and
/// `fallback_ticks` leave out the first `warmup_ticks` (one second of
/// ticks, at most half the run); `total_ticks` and `total_fallback_ticks`
/// count the whole run, as do `inference_requests`, `chunks_accepted` and
/// `starved_ticks`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Ticks after the warm-up.
    pub ticks: u64,
    /// Ticks left out of `ticks`, the histograms, `overruns` and `fallback_ticks`.
    pub warmup_ticks: u64,
    /// Every tick, warm-up included.
    pub total_ticks: u64,
    /// `[control] rate_hz`.
    pub rate_hz: f64,
    /// Wall time from the control thread's start to its stop.
    pub seconds: f64,
    /// Time the tick spent working, µs.
    pub overhead_us: Percentiles,
    /// Lateness of the tick's start against its schedule, µs.
    pub jitter_us: Percentiles,
    /// Heap allocations per measured tick (`None` without the counting allocator).
    pub allocations_per_tick: Option<f64>,
    /// Ticks that ran past their period.
    pub overruns: u64,
    /// Measured ticks in fallback or safe stop.
    pub fallback_ticks: u64,
    /// Ticks in fallback or safe stop, warm-up included.
    pub total_fallback_ticks: u64,
    /// Periods skipped to catch up after an overrun.
    pub skipped_periods: u64,
    /// The policy's name (its spec).
    pub policy: String,
    /// Observations handed to the inference worker.
    pub inference_requests: u64,
    /// The policy's time per chunk on the inference worker, µs, whole run:
    /// `total` (the whole inference) and each stage the policy reports
    /// (`tokenize`, `preprocess`, `graph <name>`, `step` per head step,
    /// `postprocess`; a remote policy's `server queue` and `server compute`).
    pub inference_us: BTreeMap<String, Percentiles>,
    /// Chunks the executor accepted.
    pub chunks_accepted: u64,
    /// Ticks with no action to execute.
    pub starved_ticks: u64,
    /// `dev` or `release` (debug assertions off).
    pub build_profile: &'static str,
    /// `zenoh`, `ros2` or `servo`.
    pub transport: String,
    /// The zenoh session as opened (mode, listeners, TLS, connections).
    pub zenoh_session: Option<ganglion_zenoh::SessionFacts>,
    /// Per input topic: what arrived, what was dropped and what did not decode.
    pub topics: BTreeMap<String, TopicReport>,
    /// Commands handed to the transport.
    pub commands_published: u64,
    /// Commands the transport's queue dropped.
    pub commands_dropped: u64,
    /// Whether a command subscriber matched within `wait_for_subscriber_ms`
    /// (absent when that is 0).
    pub command_subscriber_matched: Option<bool>,
    /// ROS 2: peer endpoints that can never match (incompatible QoS).
    pub qos_incompatible: Vec<ganglion_ros2::QosMismatch>,
    /// The mode when the control thread stopped.
    pub final_mode: String,
    /// Ticks each cause was active (the causes that were), by name.
    pub causes: BTreeMap<String, u64>,
    /// What the real-time settings achieved.
    pub realtime: RealtimeApplied,
    /// What the flight recorder left behind, when recording.
    pub recorder: Option<RecorderSummary>,
    /// The servo bus (`transport.kind = "servo"`): reads, writes, their
    /// times, failures and outages, the driver's retries and checksum
    /// errors, how torque went off.
    pub servo: Option<crate::transport::ServoReport>,
    /// The `[[transport.cameras]]` (empty without): per camera what it was
    /// (`facts`: name, device, card, capture format, rate), frames
    /// published, frames the driver dropped, decode errors, stalls, decode
    /// time and why its thread ended early, if it did.
    pub cameras: Vec<ganglion_camera::CameraReport>,
}

/// One input topic's counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicReport {
    /// Samples decoded and written to the loop's input slot.
    pub received: u64,
    /// Samples dropped (queue full, wrong shape).
    pub dropped: u64,
    /// Samples that did not decode.
    pub decode_errors: u64,
}

/// What the real-time settings achieved (`[realtime]`; nothing is fatal
/// here: `strict` refuses to arm beforehand when a required item fails).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RealtimeApplied {
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)`.
    pub mlockall: crate::rtcheck::Outcome,
    /// The control thread's scheduling and affinity.
    pub control: Option<crate::rtcheck::ThreadSettings>,
    /// The inference worker's scheduling and affinity.
    pub inference: Option<crate::rtcheck::ThreadSettings>,
}

/// What the flight recorder left behind.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecorderSummary {
    /// The recording directory.
    pub dir: String,
    /// One MCAP file per supervisor trigger.
    pub trigger_files: Vec<String>,
    /// Continuous segments.
    pub segments: Vec<String>,
    /// Supervisor triggers seen.
    pub triggers: u64,
    /// Triggers that could not be recorded (budget, disk).
    pub triggers_unrecorded: u64,
    /// Failed writes.
    pub write_errors: u64,
    /// Whether recording stopped on a full disk.
    pub disk_full: bool,
    /// Tick records the loop could not hand to the recorder (ring full).
    pub dropped_by_loop: u64,
}
