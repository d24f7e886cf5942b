//! Wiring a flight recorder onto a real [`ControlLoop`]: the one place that
//! `ganglion run` and `ganglion demo` share, so both record the same
//! channels with the same replay metadata.
//!
//! The loop gets a tick-record ring and an input tap (both preallocated;
//! a full ring drops and counts, the control thread never waits); a
//! [`FlightRecorder`] on its own thread drains them into MCAP files under
//! the configured directory. Whoever also wants the tick records (the
//! demo's status line) gets a copy through a second ring that the recorder
//! thread fills, since a ring has exactly one reader.

use std::path::PathBuf;

use anyhow::Context;
use ganglion_core::PolicySpec;

use super::flight::{spawn, Item, RecorderThread, Source};
use super::loop_source::LoopSource;
use super::replay::replay_info;
use super::storage::{DirStorage, RecordingMeta};
use super::{FlightRecorder, RecordingConfig};
use crate::control::telemetry::{telemetry_ring, TelemetryWriter};
use crate::control::{ControlLoop, TelemetryReader};

/// What identifies a recording: names for the channels and what replay needs.
#[derive(Debug, Clone)]
pub struct RecordingIdentity {
    /// Joint names in command order.
    pub joint_names: Vec<String>,
    /// Camera names in the policy's order.
    pub cameras: Vec<String>,
    /// The robot profile's text, verbatim (`ganglion replay --check` rebuilds
    /// the loop from it).
    pub profile_toml: String,
    /// Where the profile came from (shown by tools).
    pub profile_path: String,
    /// Extra metadata (`bundle`, `backend`, `command`...).
    pub extra: Vec<(String, String)>,
}

/// A recorder attached to a loop. Stop it after the control thread has
/// stopped, so the last ticks are written.
pub struct AttachedRecorder {
    thread: RecorderThread,
    dir: PathBuf,
}

impl AttachedRecorder {
    /// The directory recordings go to.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The recorder's live counters.
    pub fn stats(&self) -> &std::sync::Arc<super::RecorderStats> {
        self.thread.stats()
    }

    /// Drains what is left, closes open files and returns what was written.
    pub fn stop(self) -> super::RecorderReport {
        self.thread.stop()
    }
}

/// A [`LoopSource`] that also copies each tick record into a second ring
/// (the loop's ring is drained once; each record goes to both).
struct Tee {
    inner: LoopSource,
    copy: TelemetryWriter,
}

impl Source for Tee {
    fn drain(&mut self, f: &mut dyn FnMut(Item<'_>)) {
        let copy = &self.copy;
        self.inner.drain_with(f, &mut |rec| {
            // A full copy ring drops (and counts) like the loop's own ring.
            let _ = copy.push(rec);
        });
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}

/// Attaches a flight recorder to `control` (which must not run yet) when
/// `cfg.dir` is set and starts its thread; returns `None` when recording is
/// off.
///
/// `copy_ticks`: also return a ring of that many tick records, filled by
/// the recorder thread, for another reader (a status line).
pub fn attach(
    control: &mut ControlLoop,
    cfg: &RecordingConfig,
    identity: RecordingIdentity,
    copy_ticks: Option<usize>,
) -> anyhow::Result<Option<(AttachedRecorder, Option<TelemetryReader>)>> {
    let Some((recorder, copy)) = flight_recorder(control, cfg, identity, copy_ticks)? else {
        return Ok(None);
    };
    let dir = cfg.dir.clone().unwrap_or_default();
    let thread = spawn(recorder).context("starting the recorder thread")?;
    Ok(Some((AttachedRecorder { thread, dir }, copy)))
}

/// [`attach`] without the thread: the rings attached to `control`, the
/// directory created, the recorder built and returned for the caller to
/// [`poll`](FlightRecorder::poll) (tests that need every drain at a known
/// tick) or [`spawn`].
pub fn flight_recorder(
    control: &mut ControlLoop,
    cfg: &RecordingConfig,
    identity: RecordingIdentity,
    copy_ticks: Option<usize>,
) -> anyhow::Result<Option<(FlightRecorder, Option<TelemetryReader>)>> {
    let Some(dir) = cfg.dir.clone() else {
        return Ok(None);
    };
    cfg.validate().context("[recording]")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating the recording directory {}", dir.display()))?;
    let spec: PolicySpec = control.spec().clone();
    let telemetry = control.attach_telemetry(cfg.tick_ring);
    let inputs = control.attach_input_tap(cfg.input_ring);
    let mut info: std::collections::BTreeMap<String, String> =
        replay_info(&identity.profile_toml, &spec).into_iter().collect();
    info.insert("profile".into(), identity.profile_path.clone());
    info.insert("policy".into(), spec.name.clone());
    info.insert("rate_hz".into(), format!("{}", 1e9 / control.period_ns().max(1) as f64));
    info.extend(identity.extra);
    let meta = RecordingMeta { joint_names: identity.joint_names, cameras: identity.cameras, info };
    let source = LoopSource::new(telemetry, Some(inputs));
    let storage = Box::new(DirStorage::new(dir));
    Ok(Some(match copy_ticks {
        Some(n) => {
            let (writer, reader) = telemetry_ring(n);
            let tee = Tee { inner: source, copy: writer };
            (FlightRecorder::new(cfg, meta, storage, tee), Some(reader))
        }
        None => (FlightRecorder::new(cfg, meta, storage, source), None),
    }))
}
