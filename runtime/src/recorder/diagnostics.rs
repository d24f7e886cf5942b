//! The periodic `diagnostic_msgs/DiagnosticArray` and the heartbeat
//! content, built from tick records off the real-time path, and the
//! summary `ganglion top` shows.
//!
//! A [`DiagnosticsBuilder`] is fed every drained [`TickRow`]; every period
//! the transport publishes [`DiagnosticsBuilder::build`] on
//! `<prefix>/diagnostics` (zenoh) or `/diagnostics` (ROS 2). The statuses
//! and keys are documented in docs/RECORDING.md; `ganglion top` reads them
//! back by name.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;

use ganglion_codec::msg::{DiagnosticArray, DiagnosticStatus, Header, Heartbeat, KeyValue, Time};
use ganglion_core::{Cause, Mode, Stamp};
use hdrhistogram::Histogram;

use super::flight::RecorderStats;
use super::row::{cause_names, TickRow, STAGES};

/// Status names, in the order they appear in the array.
pub const STATUS_LOOP: &str = "ganglion: loop";
/// Stage latencies.
pub const STATUS_LATENCY: &str = "ganglion: latency";
/// Trigger counts and recent triggers.
pub const STATUS_CAUSES: &str = "ganglion: causes";
/// Recorder and ring drops.
pub const STATUS_RECORDER: &str = "ganglion: recorder";

const RECENT: usize = 8;

fn histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 2 significant digits: a few KiB, no resizing. The
    // bounds are constants that satisfy hdrhistogram's rules.
    Histogram::new_with_bounds(1, 100_000_000_000, 2).expect("constant histogram bounds are valid")
}

/// Accumulates tick records into diagnostics. Runs on a non-RT thread.
pub struct DiagnosticsBuilder {
    hardware_id: String,
    stages: Vec<Histogram<u64>>,
    jitter: Histogram<u64>,
    inference: Histogram<u64>,
    window_ticks: u64,
    window_first: Option<Stamp>,
    window_last: Stamp,
    ticks: u64,
    mode_ticks: [u64; 5],
    triggers: [u64; Cause::COUNT],
    last: Option<TickRow>,
    recent: VecDeque<String>,
    timeline: VecDeque<String>,
}

impl DiagnosticsBuilder {
    /// A builder naming this instance `hardware_id` (e.g. the robot name).
    pub fn new(hardware_id: &str) -> Self {
        DiagnosticsBuilder {
            hardware_id: hardware_id.into(),
            stages: STAGES.iter().map(|_| histogram()).collect(),
            jitter: histogram(),
            inference: histogram(),
            window_ticks: 0,
            window_first: None,
            window_last: Stamp::ZERO,
            ticks: 0,
            mode_ticks: [0; 5],
            triggers: [0; Cause::COUNT],
            last: None,
            recent: VecDeque::new(),
            timeline: VecDeque::new(),
        }
    }

    /// Accounts one tick.
    pub fn observe(&mut self, row: &TickRow) {
        for (h, &v) in self.stages.iter_mut().zip(row.stage_ns.iter()) {
            h.saturating_record(u64::from(v).max(1));
        }
        self.jitter.saturating_record(row.start.saturating_since(row.scheduled).max(1));
        if row.result_id != 0 && row.inference_latency_ns > 0 {
            self.inference.saturating_record(row.inference_latency_ns);
        }
        self.window_ticks += 1;
        self.window_first.get_or_insert(row.scheduled);
        self.window_last = row.scheduled;
        self.ticks += 1;
        self.mode_ticks[row.mode as usize] += 1;
        let new = row.new_causes(self.last.as_ref());
        for c in new.iter() {
            self.triggers[c as usize] += 1;
        }
        if !new.is_empty() {
            push_bounded(
                &mut self.recent,
                format!("tick {} t={:.3}s {}", row.seq, row.scheduled.as_secs_f64(), cause_names(new)),
            );
        }
        if self.last.is_none_or(|l| l.mode != row.mode) {
            push_bounded(&mut self.timeline, format!("t={:.3}s {}", row.scheduled.as_secs_f64(), row.mode.name()));
        }
        self.last = Some(*row);
    }

    /// The heartbeat: wall-clock stamp, the mode's name as `frame_id`.
    pub fn heartbeat(&self) -> Heartbeat {
        Header { stamp: Time::now_wall(), frame_id: self.mode().name().into() }
    }

    /// The current mode (`startup` before the first tick).
    pub fn mode(&self) -> Mode {
        self.last.map_or(Mode::Startup, |l| l.mode)
    }

    /// The diagnostics for the period since the previous call (rates and
    /// percentiles), plus totals; resets the period.
    pub fn build(&mut self, recorder: Option<&RecorderStats>) -> DiagnosticArray {
        let kv = |key: &str, value: String| KeyValue { key: key.into(), value };
        let span_ns = self.window_first.map_or(0, |f| self.window_last.saturating_since(f));
        let rate = if span_ns > 0 && self.window_ticks > 1 {
            (self.window_ticks - 1) as f64 * 1e9 / span_ns as f64
        } else {
            0.0
        };
        let mode = self.mode();
        let level = match mode {
            Mode::Nominal => DiagnosticStatus::OK,
            Mode::Startup | Mode::Degraded => DiagnosticStatus::WARN,
            Mode::Fallback | Mode::SafeStop => DiagnosticStatus::ERROR,
        };
        let active = self.last.map_or_else(|| "none".into(), |l| cause_names(l.causes));
        let mut loop_values = vec![
            kv("mode", mode.name().into()),
            kv("active_causes", active.clone()),
            kv("ticks", self.ticks.to_string()),
            kv("rate_hz", format!("{rate:.2}")),
        ];
        for m in Mode::ALL {
            loop_values.push(kv(&format!("ticks_{}", m.name()), self.mode_ticks[m as usize].to_string()));
        }
        loop_values.extend(percentiles("jitter_us", &self.jitter));
        loop_values.push(kv("mode_timeline", self.timeline.iter().cloned().collect::<Vec<_>>().join("; ")));

        let mut latency = Vec::new();
        for (name, h) in STAGES.iter().zip(&self.stages) {
            latency.extend(percentiles(&format!("{name}_us"), h));
        }
        latency.extend(percentiles("inference_us", &self.inference));

        let mut causes: Vec<KeyValue> =
            Cause::ALL.iter().map(|c| kv(c.name(), self.triggers[*c as usize].to_string())).collect();
        causes.push(kv("recent_triggers", self.recent.iter().cloned().collect::<Vec<_>>().join("; ")));

        let mut rec = Vec::new();
        let mut rec_level = DiagnosticStatus::OK;
        if let Some(s) = recorder {
            for (k, v) in [
                ("files", &s.files),
                ("bytes", &s.bytes),
                ("triggers", &s.triggers),
                ("triggers_unrecorded", &s.triggers_unrecorded),
                ("write_errors", &s.write_errors),
                ("dropped_by_loop", &s.source_dropped),
            ] {
                rec.push(kv(k, v.load(Ordering::Relaxed).to_string()));
            }
            rec.push(kv("disk_full", s.disk_full.load(Ordering::Relaxed).to_string()));
            if s.source_dropped.load(Ordering::Relaxed) > 0 {
                rec_level = DiagnosticStatus::WARN;
            }
            if s.stopped.load(Ordering::Relaxed) {
                rec_level = DiagnosticStatus::ERROR;
            }
        }
        let rec_message = match rec_level {
            // No recorder: say so, not "ok".
            DiagnosticStatus::OK if recorder.is_none() => "recording off",
            DiagnosticStatus::OK => "recording ok",
            DiagnosticStatus::WARN => "the loop's rings dropped records",
            _ => "recording stopped after a write error",
        };

        let status = |level, name: &str, message: String, values| DiagnosticStatus {
            level,
            name: name.into(),
            message,
            hardware_id: self.hardware_id.clone(),
            values,
        };
        let array = DiagnosticArray {
            header: Header { stamp: Time::now_wall(), frame_id: String::new() },
            status: vec![
                status(level, STATUS_LOOP, format!("mode {} ({active})", mode.name()), loop_values),
                status(DiagnosticStatus::OK, STATUS_LATENCY, "stage latencies this period".into(), latency),
                status(DiagnosticStatus::OK, STATUS_CAUSES, "trigger counts since start".into(), causes),
                status(rec_level, STATUS_RECORDER, rec_message.into(), rec),
            ],
        };
        for h in self.stages.iter_mut().chain([&mut self.jitter, &mut self.inference]) {
            h.reset();
        }
        self.window_ticks = 0;
        self.window_first = None;
        array
    }
}

fn push_bounded(q: &mut VecDeque<String>, s: String) {
    if q.len() == RECENT {
        q.pop_front();
    }
    q.push_back(s);
}

fn percentiles(name: &str, h: &Histogram<u64>) -> [KeyValue; 3] {
    let p = crate::stats::us(h);
    [
        KeyValue { key: format!("{name}_p50"), value: format!("{:.1}", p.p50) },
        KeyValue { key: format!("{name}_p99"), value: format!("{:.1}", p.p99) },
        KeyValue { key: format!("{name}_max"), value: format!("{:.1}", p.max) },
    ]
}

/// A diagnostics array as nested maps: status name → {`level`, `message`,
/// `hardware_id`, `values` (key → value)}; what `ganglion top --json` prints.
pub fn to_json(array: &DiagnosticArray) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for s in &array.status {
        let values: BTreeMap<&str, &str> = s.values.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
        out.insert(
            s.name.clone(),
            serde_json::json!({
                "level": s.level,
                "message": s.message,
                "hardware_id": s.hardware_id,
                "values": values,
            }),
        );
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganglion_core::{hold_command, JointVec};

    #[test]
    fn counts_triggers_rates_and_percentiles() {
        let mut b = DiagnosticsBuilder::new("arm");
        for i in 0..100u64 {
            let mode = if i < 50 { Mode::Nominal } else { Mode::Fallback };
            let mut row = TickRow::from_command(&hold_command(i, Stamp(i * 10_000_000), mode, JointVec::zeros(2)));
            row.start = row.scheduled.add_nanos(20_000);
            row.stage_ns[7] = 5_000;
            if i >= 50 {
                row.causes.insert(Cause::InferenceLate);
            }
            b.observe(&row);
        }
        let j = to_json(&b.build(None));
        let lp = &j[STATUS_LOOP]["values"];
        assert_eq!(lp["mode"], "fallback");
        assert_eq!(lp["rate_hz"], "100.00");
        assert_eq!(lp["ticks_fallback"], "50");
        assert!(lp["mode_timeline"].as_str().is_some_and(|s| s.contains("t=0.500s fallback")));
        assert_eq!(j[STATUS_CAUSES]["values"]["inference_late"], "1");
        assert_eq!(j[STATUS_LATENCY]["values"]["total_us_p99"], "5.0");
        assert_eq!(j[STATUS_LOOP]["level"], 2);
        assert_eq!(b.heartbeat().frame_id, "fallback");
    }

    /// Without a recorder (no `[recording] dir`, no `--record-dir`) the
    /// recorder status says recording is off, not "recording ok".
    #[test]
    fn recorder_status_says_off_when_nothing_records() {
        let mut b = DiagnosticsBuilder::new("arm");
        let j = to_json(&b.build(None));
        assert_eq!(j[STATUS_RECORDER]["message"], "recording off", "{j}");
        assert_eq!(j[STATUS_RECORDER]["level"], 0, "{j}");
        let stats = RecorderStats::default();
        let j = to_json(&b.build(Some(&stats)));
        assert_eq!(j[STATUS_RECORDER]["message"], "recording ok", "{j}");
        stats.source_dropped.store(3, Ordering::Relaxed);
        let j = to_json(&b.build(Some(&stats)));
        assert_eq!(
            (&j[STATUS_RECORDER]["level"], &j[STATUS_RECORDER]["values"]["dropped_by_loop"]),
            (&1.into(), &"3".into()),
            "{j}"
        );
        stats.stopped.store(true, Ordering::Relaxed);
        let j = to_json(&b.build(Some(&stats)));
        assert_eq!(j[STATUS_RECORDER]["message"], "recording stopped after a write error", "{j}");
    }
}
