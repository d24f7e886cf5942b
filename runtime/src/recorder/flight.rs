//! The flight recorder: drains the loop's rings on a non-real-time thread, keeps a
//! bounded window of recent messages, freezes it into an MCAP file on every
//! supervisor trigger, and optionally records continuously with rollover.
//!
//! Nothing here runs on the control thread. A write error (a full disk) is
//! counted and logged, the partial file is removed, and recording stops for
//! good while draining goes on, so the loop's rings never back up.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ganglion_core::{ActionChunk, CauseSet, ExternalHeartbeat, Frame, Instruction, JointState, Stamp, Stamped};

use super::codec;
use super::row::{cause_names, ResultStatus, TickRow};
use super::schema::Topic;
use super::storage::{unix_now, utc_compact, Entry, McapFile, RecordingMeta, Storage, WriteError};
use super::RecordingConfig;

/// Counters of the recorder, shared with diagnostics. Monotonic.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Tick records drained.
    pub ticks: AtomicU64,
    /// Input samples (joint states, frames, instructions, heartbeats) drained.
    pub inputs: AtomicU64,
    /// Inference results drained.
    pub results: AtomicU64,
    /// Supervisor triggers seen (new causes).
    pub triggers: AtomicU64,
    /// Triggers that got no file (file limit reached, or recording stopped).
    pub triggers_unrecorded: AtomicU64,
    /// Files completed.
    pub files: AtomicU64,
    /// Bytes in completed files.
    pub bytes: AtomicU64,
    /// Continuous segments deleted by rollover.
    pub segments_deleted: AtomicU64,
    /// Messages evicted from the window by its byte bound.
    pub window_evicted: AtomicU64,
    /// Write errors (each stops recording).
    pub write_errors: AtomicU64,
    /// Set when a write failed because the disk is full.
    pub disk_full: AtomicBool,
    /// Set when recording stopped after an error.
    pub stopped: AtomicBool,
    /// Items the producer (the control loop's rings) dropped when full.
    pub source_dropped: AtomicU64,
}

/// What a finished recorder leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecorderReport {
    /// Trigger files, in the order written.
    pub trigger_files: Vec<PathBuf>,
    /// Continuous segments still on disk, oldest first.
    pub segments: Vec<PathBuf>,
    /// Write errors (0 when recording never failed).
    pub write_errors: u64,
    /// Whether a write failed because the disk was full.
    pub disk_full: bool,
}

struct Pending {
    at: u64,
    tick: u64,
    causes: CauseSet,
}

struct Segment {
    file: McapFile,
}

/// One thing a [`Source`] hands to the recorder; inputs carry the
/// scheduled start of the tick that sampled them.
#[derive(Debug)]
pub enum Item<'a> {
    /// A tick record.
    Tick(&'a TickRow),
    /// A joint state, new at this tick.
    Joints(Stamp, &'a Stamped<JointState>),
    /// A frame of camera `.1`, new at this tick.
    Frame(Stamp, usize, &'a Stamped<Frame>),
    /// The instruction, new at this tick.
    Instruction(Stamp, &'a Stamped<Instruction>),
    /// The external heartbeat, new at this tick.
    Heartbeat(Stamp, &'a Stamped<ExternalHeartbeat>),
    /// An inference outcome collected at this tick, and its chunk.
    Result(Stamp, ResultStatus, &'a ActionChunk),
}

/// Where the recorder's items come from: the control loop's telemetry ring
/// and input tap ([`super::loop_source::LoopSource`]; a trait so that the
/// recorder's own logic does not depend on the loop's types).
///
/// Invariants: `drain` hands over everything queued so far, in order per
/// kind, and returns without blocking; it runs on the recorder thread.
pub trait Source: Send {
    /// Hands every queued item to `f`.
    fn drain(&mut self, f: &mut dyn FnMut(Item<'_>));

    /// Items the producer side dropped because its rings were full. Monotonic.
    fn dropped(&self) -> u64 {
        0
    }
}

/// The flight recorder. Drive it with [`poll`](Self::poll) (or run it on
/// its own thread with [`spawn`]) and end it with [`finish`](Self::finish).
pub struct FlightRecorder {
    cfg: RecordingConfig,
    meta: RecordingMeta,
    storage: Box<dyn Storage>,
    source: Box<dyn Source>,
    window: VecDeque<Entry>,
    window_bytes: u64,
    pending: Option<Pending>,
    last_tick: Option<TickRow>,
    newest: u64,
    segment: Option<Segment>,
    segments: VecDeque<(String, u64)>,
    segment_counter: u64,
    report: RecorderReport,
    stats: Arc<RecorderStats>,
    failed: bool,
    batch: Vec<(Entry, Option<TickRow>)>,
}

impl FlightRecorder {
    /// A recorder writing into `storage`, fed by `drain`.
    pub fn new(
        cfg: &RecordingConfig,
        meta: RecordingMeta,
        storage: Box<dyn Storage>,
        source: impl Source + 'static,
    ) -> Self {
        FlightRecorder {
            cfg: cfg.clone(),
            meta,
            storage,
            source: Box::new(source),
            window: VecDeque::new(),
            window_bytes: 0,
            pending: None,
            last_tick: None,
            newest: 0,
            segment: None,
            segments: VecDeque::new(),
            segment_counter: 0,
            report: RecorderReport::default(),
            stats: Arc::new(RecorderStats::default()),
            failed: false,
            batch: Vec::new(),
        }
    }

    /// The shared counters.
    pub fn stats(&self) -> Arc<RecorderStats> {
        self.stats.clone()
    }

    /// Drains everything queued, updates the window, writes files that are
    /// due. Returns the number of messages drained.
    pub fn poll(&mut self) -> usize {
        self.drain_batch();
        self.stats.source_dropped.store(self.source.dropped(), Ordering::Relaxed);
        // Channels are drained one after another; ordering the batch by
        // loop time keeps each file in log-time order.
        let mut batch = std::mem::take(&mut self.batch);
        batch.sort_by_key(|(e, _)| e.log_time);
        let n = batch.len();
        for (e, row) in batch.drain(..) {
            if let Some(row) = row {
                self.on_tick(&row);
            }
            self.write_continuous(&e);
            self.remember(e);
        }
        self.batch = batch;
        self.evict();
        if let Some(p) = &self.pending {
            if self.newest >= p.at.saturating_add(secs_ns(self.cfg.post_trigger_s)) {
                self.write_trigger_file();
            }
        }
        n
    }

    fn drain_batch(&mut self) {
        let FlightRecorder { source, batch, meta, stats, .. } = self;
        let mut buf = Vec::new();
        source.drain(&mut |item| match item {
            Item::Tick(t) => {
                codec::encode_tick(&mut buf, t);
                let (time, seq) = (t.scheduled.0, t.seq as u32);
                let tick =
                    Entry { topic: Topic::Tick, log_time: time, publish_time: time, sequence: seq, data: buf.clone() };
                batch.push((tick, Some(*t)));
                codec::encode_command(&mut buf, t, &meta.joint_names);
                let cmd = Entry {
                    topic: Topic::Command,
                    log_time: time,
                    publish_time: time,
                    sequence: seq,
                    data: buf.clone(),
                };
                batch.push((cmd, None));
                stats.ticks.fetch_add(1, Ordering::Relaxed);
            }
            Item::Joints(tick, s) => {
                codec::encode_joints(&mut buf, s, &meta.joint_names);
                batch.push((input_entry(Topic::Joints, tick.0, s.receive.0, s.seq, &buf), None));
                stats.inputs.fetch_add(1, Ordering::Relaxed);
            }
            Item::Instruction(tick, s) => {
                codec::encode_instruction(&mut buf, &s.value);
                batch.push((input_entry(Topic::Instruction, tick.0, s.receive.0, s.seq, &buf), None));
                stats.inputs.fetch_add(1, Ordering::Relaxed);
            }
            Item::Heartbeat(tick, s) => {
                codec::encode_heartbeat(&mut buf, s);
                batch.push((input_entry(Topic::Heartbeat, tick.0, s.receive.0, s.seq, &buf), None));
                stats.inputs.fetch_add(1, Ordering::Relaxed);
            }
            Item::Frame(tick, cam, s) => {
                let frame_id = meta.cameras.get(cam).map(String::as_str).unwrap_or_default();
                codec::encode_frame(&mut buf, s, frame_id);
                batch.push((input_entry(Topic::Camera(cam.min(255) as u8), tick.0, s.receive.0, s.seq, &buf), None));
                stats.inputs.fetch_add(1, Ordering::Relaxed);
            }
            Item::Result(collected, status, chunk) => {
                codec::encode_inference(&mut buf, status, chunk);
                let t = collected.0;
                let e = Entry {
                    topic: Topic::Inference,
                    log_time: t,
                    publish_time: t,
                    sequence: chunk.request_id as u32,
                    data: buf.clone(),
                };
                batch.push((e, None));
                stats.results.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

impl FlightRecorder {
    fn on_tick(&mut self, row: &TickRow) {
        self.newest = self.newest.max(row.scheduled.0);
        let new = row.new_causes(self.last_tick.as_ref());
        self.last_tick = Some(*row);
        if new.is_empty() || !self.cfg.on_trigger {
            return;
        }
        self.stats.triggers.fetch_add(1, Ordering::Relaxed);
        match &mut self.pending {
            // Triggers inside an open window go into the same file.
            Some(p) => p.causes = p.causes.union(new),
            None if self.failed || self.report.trigger_files.len() >= self.cfg.max_trigger_files as usize => {
                self.stats.triggers_unrecorded.fetch_add(1, Ordering::Relaxed);
            }
            None => self.pending = Some(Pending { at: row.scheduled.0, tick: row.seq, causes: new }),
        }
    }

    fn remember(&mut self, e: Entry) {
        if !self.cfg.on_trigger {
            return;
        }
        self.window_bytes += e.data.len() as u64;
        self.window.push_back(e);
    }

    /// Drops what no trigger file can need any more: older than the
    /// pre-trigger span (from the newest tick, or from the pending trigger),
    /// and beyond the byte bound.
    fn evict(&mut self) {
        let pre = secs_ns(self.cfg.pre_trigger_s);
        let horizon = match &self.pending {
            Some(p) => p.at.saturating_sub(pre),
            None => self.newest.saturating_sub(pre),
        };
        while let Some(front) = self.window.front() {
            let too_old = front.log_time < horizon;
            let too_big = self.window_bytes > self.cfg.max_window_bytes;
            if !too_old && !too_big {
                break;
            }
            if too_big && !too_old {
                self.stats.window_evicted.fetch_add(1, Ordering::Relaxed);
            }
            self.window_bytes -= front.data.len() as u64;
            self.window.pop_front();
        }
    }

    fn write_trigger_file(&mut self) {
        let Some(p) = self.pending.take() else { return };
        if self.failed {
            return;
        }
        let name = format!("ganglion-{}-{}-tick{}.mcap", utc_compact(unix_now()), cause_names(p.causes), p.tick);
        let extra = [
            ("kind", "trigger".to_string()),
            ("trigger_causes", cause_names(p.causes)),
            ("trigger_tick", p.tick.to_string()),
            ("trigger_time_ns", p.at.to_string()),
            ("pre_trigger_s", self.cfg.pre_trigger_s.to_string()),
            ("post_trigger_s", self.cfg.post_trigger_s.to_string()),
            ("wall_time_unix_s", unix_now().to_string()),
        ];
        let from = p.at.saturating_sub(secs_ns(self.cfg.pre_trigger_s));
        let result = McapFile::create(self.storage.as_mut(), &name, &self.meta, &extra).and_then(|mut f| {
            for e in self.window.iter().filter(|e| e.log_time >= from) {
                f.write(e)?;
            }
            f.finish(self.storage.as_mut())
        });
        match result {
            Ok(bytes) => {
                tracing::info!(file = %self.storage.path(&name).display(), causes = %cause_names(p.causes), "flight recorder wrote trigger window");
                self.stats.files.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.report.trigger_files.push(self.storage.path(&name));
            }
            Err(e) => self.fail(&name, &e),
        }
    }

    fn write_continuous(&mut self, e: &Entry) {
        if !self.cfg.continuous || self.failed {
            return;
        }
        if self.segment.is_none() {
            self.segment_counter += 1;
            let name = format!("ganglion-{}-continuous-{:04}.mcap", utc_compact(unix_now()), self.segment_counter);
            let extra = [("kind", "continuous".to_string()), ("wall_time_unix_s", unix_now().to_string())];
            match McapFile::create(self.storage.as_mut(), &name, &self.meta, &extra) {
                Ok(file) => self.segment = Some(Segment { file }),
                Err(err) => return self.fail(&name, &err),
            }
        }
        let Some(seg) = self.segment.as_mut() else { return };
        let age = seg.file.first_log_time.map_or(0, |t| e.log_time.saturating_sub(t));
        if let Err(err) = seg.file.write(e) {
            let name = seg.file.name().to_string();
            return self.fail(&name, &err);
        }
        if seg.file.bytes() >= self.cfg.segment_max_bytes || age >= secs_ns(self.cfg.segment_max_s) {
            self.close_segment();
        }
    }

    fn close_segment(&mut self) {
        let Some(seg) = self.segment.take() else { return };
        let name = seg.file.name().to_string();
        match seg.file.finish(self.storage.as_mut()) {
            Ok(bytes) => {
                self.stats.files.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.segments.push_back((name, bytes));
            }
            Err(e) => return self.fail(&name, &e),
        }
        // Rollover: the oldest segments go first; the newest always stays.
        while self.segments.len() > 1 && self.segments.iter().map(|s| s.1).sum::<u64>() > self.cfg.max_total_bytes {
            let Some((old, _)) = self.segments.pop_front() else { break };
            if let Err(e) = self.storage.remove(&old) {
                tracing::warn!(file = %old, error = %e, "could not delete old recording segment");
            }
            self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fail(&mut self, name: &str, e: &WriteError) {
        self.storage.discard(name);
        self.failed = true;
        self.segment = None;
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.stopped.store(true, Ordering::Relaxed);
        if e.is_disk_full() {
            self.stats.disk_full.store(true, Ordering::Relaxed);
        }
        tracing::error!(file = %self.storage.path(name).display(), error = %e, disk_full = e.is_disk_full(),
            "recording failed; recording stops, the loop keeps running");
    }

    /// Drains what is left, writes the pending trigger window (with
    /// whatever part of its post-trigger span exists) and closes the
    /// continuous segment.
    pub fn finish(mut self) -> RecorderReport {
        self.poll();
        self.write_trigger_file();
        self.close_segment();
        let mut report = std::mem::take(&mut self.report);
        report.segments = self.segments.iter().map(|(n, _)| self.storage.path(n)).collect();
        report.write_errors = self.stats.write_errors.load(Ordering::Relaxed);
        report.disk_full = self.stats.disk_full.load(Ordering::Relaxed);
        report
    }
}

fn input_entry(topic: Topic, tick: u64, receive: u64, seq: u64, data: &[u8]) -> Entry {
    // The low 32 bits of the sequence: consecutive samples stay distinct and
    // the reader unwraps them.
    Entry { topic, log_time: tick, publish_time: receive, sequence: seq as u32, data: data.to_vec() }
}

fn secs_ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

/// A flight recorder on its own thread.
pub struct RecorderThread {
    stop: Arc<AtomicBool>,
    stats: Arc<RecorderStats>,
    handle: std::thread::JoinHandle<RecorderReport>,
}

/// Runs `recorder` on a new thread, polling every `cfg.poll_ms`.
pub fn spawn(recorder: FlightRecorder) -> std::io::Result<RecorderThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = recorder.stats();
    let period = Duration::from_millis(recorder.cfg.poll_ms.max(1));
    let flag = stop.clone();
    let handle = std::thread::Builder::new().name("ganglion-recorder".into()).spawn(move || {
        let mut recorder = recorder;
        while !flag.load(Ordering::Acquire) {
            recorder.poll();
            std::thread::sleep(period);
        }
        recorder.finish()
    })?;
    Ok(RecorderThread { stop, stats, handle })
}

impl RecorderThread {
    /// The recorder's counters.
    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.stats
    }

    /// Stops the thread after a final drain and flush; returns its report.
    pub fn stop(self) -> RecorderReport {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_else(|_| {
            tracing::error!("recorder thread panicked");
            RecorderReport::default()
        })
    }
}
