//! Tick records, the flight recorder (MCAP), reading recordings back for
//! replay, diagnostics, and benchmark plots.
//!
//! Data flow (one path, the one `run`, `demo` and `bench loop` use): the
//! control loop pushes a [`TickRecord`](crate::control::TickRecord) per
//! tick into its telemetry ring and an
//! [`InputSnapshot`](crate::control::InputSnapshot) (the inputs the tick
//! sampled, the inference answer it collected) into its input tap, both
//! preallocated, never blocking, dropping and counting when full
//! (`control/telemetry.rs`). [`attach`](attach::attach) attaches both rings
//! and starts a [`FlightRecorder`] on its own thread; a
//! [`LoopSource`](loop_source::LoopSource) drains the rings into it, and it
//! keeps a window of recent messages and writes MCAP files
//! (docs/RECORDING.md documents channels, schemas and file names).
//!
//! - [`schema`]: channels and their `ros2msg` schemas.
//! - [`row`]: the tick record, the inference record, bit-exact comparison.
//! - [`codec`]: CDR payloads of every channel.
//! - [`storage`]: where files go, the MCAP file writer.
//! - [`loop_source`]: the control loop's telemetry rings as a recorder source.
//! - [`flight`]: trigger windows, continuous recording, rollover, disk full.
//! - [`read`]: a recording read back as a timeline (replay, tools).
//! - [`attach`]: a recorder on a real control loop (`run`, `demo`, `bench
//!   loop`, the recorder tests).
//! - [`replay`]: bit-exact re-run of the control loop on a recording.
//! - [`export`]: recordings as a LeRobotDataset (`replay export`).
//! - [`diagnostics`]: the periodic `DiagnosticArray` and its summary.
//! - [`plot`]: PNG latency histograms and jitter plots of a bench report.
//! - [`calibrate`]: a world model's surprise threshold from recorded
//!   nominal runs.

pub mod attach;
pub mod calibrate;
pub mod codec;
pub mod diagnostics;
pub mod export;
pub mod flight;
pub mod loop_source;
pub mod plot;
pub mod read;
pub mod replay;
pub mod row;
pub mod schema;
pub mod storage;

pub use flight::{spawn, FlightRecorder, Item, RecorderReport, RecorderStats, RecorderThread, Source};
pub use row::{cause_names, Divergence, InferenceRow, ResultStatus, TickFlags, TickRow, STAGES};
pub use storage::{DirStorage, RecordingMeta, Storage};

/// Default `[recording] tick_ring`: at 1 kHz and the default 10 ms drain
/// period (`poll_ms`), 4096 tick records leave the recorder thread 4 s of
/// slack (a slow disk, a preempted thread) before the loop drops one. A
/// record holds two 16-joint vectors (~400 bytes): the ring costs ~2 MiB.
pub const DEFAULT_TICK_RING: usize = 4096;

/// Default `[recording] input_ring`: snapshots are taken once per tick, so
/// 128 are 128 ms of slack at 1 kHz (1.28 s at 100 Hz), 12 drain periods.
/// Each snapshot preallocates a buffer per camera at the policy's geometry,
/// so memory is `input_ring` × the frames' bytes: two 224×224 cameras take
/// 38 MiB at 128 (1024 took 308 MiB, locked under mlockall on a Jetson
/// whose GPU shares that memory). The profile bounds it
/// (`profile::MAX_INPUT_TAP_BYTES`).
pub const DEFAULT_INPUT_RING: usize = 128;

/// Flight recorder settings (`[recording]` of the robot profile).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Directory for recordings; no directory means no recording.
    pub dir: Option<std::path::PathBuf>,
    /// Write a file on every supervisor trigger.
    pub on_trigger: bool,
    /// Seconds of history before a trigger that its file holds.
    pub pre_trigger_s: f64,
    /// Seconds after a trigger that its file holds.
    pub post_trigger_s: f64,
    /// Upper bound of the in-memory window, bytes (oldest dropped first).
    pub max_window_bytes: u64,
    /// Most trigger files per run (later triggers are counted, not written).
    pub max_trigger_files: u32,
    /// Record everything into rolling segment files.
    pub continuous: bool,
    /// A segment is closed at this size, bytes.
    pub segment_max_bytes: u64,
    /// A segment is closed when it spans this many seconds of loop time.
    pub segment_max_s: f64,
    /// Oldest segments are deleted while all of them exceed this, bytes
    /// (the newest segment always stays).
    pub max_total_bytes: u64,
    /// How often the recorder thread drains the rings, ms.
    pub poll_ms: u64,
    /// Tick records the ring holds.
    pub tick_ring: usize,
    /// Input snapshots (each tick's joint state, frames, instruction,
    /// heartbeat and inference answer) the loop's input tap holds.
    pub input_ring: usize,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: None,
            on_trigger: true,
            pre_trigger_s: 5.0,
            post_trigger_s: 2.0,
            max_window_bytes: 256 << 20,
            max_trigger_files: 32,
            continuous: false,
            segment_max_bytes: 64 << 20,
            segment_max_s: 60.0,
            max_total_bytes: 1 << 30,
            poll_ms: 10,
            tick_ring: DEFAULT_TICK_RING,
            input_ring: DEFAULT_INPUT_RING,
        }
    }
}

/// A `[recording]` value out of range: the key and what it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingConfigError {
    /// The offending key under `[recording]`.
    pub key: &'static str,
    /// What it must be.
    pub expected: &'static str,
}

impl RecordingConfigError {
    /// The profile key at fault.
    pub fn key(&self) -> String {
        format!("recording.{}", self.key)
    }

    /// What would have been accepted.
    pub fn expected(&self) -> &'static str {
        self.expected
    }
}

crate::control::config_error!(RecordingConfigError);

impl RecordingConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), RecordingConfigError> {
        let secs = [
            ("pre_trigger_s", self.pre_trigger_s),
            ("post_trigger_s", self.post_trigger_s),
            ("segment_max_s", self.segment_max_s),
        ];
        for (key, v) in secs {
            if !(0.0..=3600.0).contains(&v) {
                return Err(RecordingConfigError { key, expected: "seconds between 0 and 3600" });
            }
        }
        let positive = [
            ("max_window_bytes", self.max_window_bytes),
            ("segment_max_bytes", self.segment_max_bytes),
            ("max_total_bytes", self.max_total_bytes),
            ("poll_ms", self.poll_ms),
            ("tick_ring", self.tick_ring as u64),
            ("input_ring", self.input_ring as u64),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(RecordingConfigError { key, expected: "a positive number" });
            }
        }
        if self.max_total_bytes < self.segment_max_bytes {
            return Err(RecordingConfigError { key: "max_total_bytes", expected: "at least segment_max_bytes" });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_validation_names_the_key() {
        let c: RecordingConfig = toml::from_str("dir = \"rec\"\ncontinuous = true\npre_trigger_s = 3").expect("parses");
        assert_eq!(c.dir.as_deref(), Some(std::path::Path::new("rec")));
        assert!(c.continuous && c.pre_trigger_s == 3.0 && c.post_trigger_s == 2.0);
        assert_eq!(c.validate(), Ok(()));
        let bad = RecordingConfig { post_trigger_s: f64::NAN, ..c.clone() };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("post_trigger_s"));
        let bad = RecordingConfig { max_total_bytes: 1, ..c };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("max_total_bytes"));
        assert!(toml::from_str::<RecordingConfig>("bogus = 1").is_err());
    }
}
