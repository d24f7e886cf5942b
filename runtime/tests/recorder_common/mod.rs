//! Shared by the recorder tests: a synthetic closed loop on a simulated
//! clock that drives the real tap exactly as the control loop does (inputs
//! through the real latest-value slots, one tick record per tick, inference
//! results on collection), and the Python `mcap` reader.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ganglion::recorder::{RecorderTap, TapShape, TickRow};
use ganglion_core::{
    hold_command, input_slots, ActionChunk, Cause, Clock, ExternalHeartbeat, Frame, InputReaders, InputWriters,
    Instruction, JointState, JointVec, Mode, PixelFormat, PolicyError, SimClock, Stamp, Stamped,
};

/// 100 Hz.
pub const PERIOD_NS: u64 = 10_000_000;
pub const JOINTS: usize = 3;
pub const CHUNK: usize = 4;

pub fn shape() -> TapShape {
    TapShape { n_joints: JOINTS, cameras: vec![(8, 8)], chunk_len: CHUNK }
}

pub fn meta() -> ganglion::recorder::RecordingMeta {
    ganglion::recorder::RecordingMeta {
        joint_names: vec!["yaw".into(), "shoulder".into(), "elbow".into()],
        cameras: vec!["front".into()],
        info: [("profile".to_string(), "synthetic".to_string())].into_iter().collect(),
    }
}

/// What the synthetic loop pushed, per tick, so tests can count what a
/// file must hold.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Tick scheduled stamps, in order.
    pub ticks: Vec<u64>,
    /// (topic, tick stamp) of every input and result pushed.
    pub pushed: Vec<(&'static str, u64)>,
    /// Rows pushed.
    pub rows: Vec<TickRow>,
}

impl Ledger {
    /// Messages on `topic` logged within `[from, to]`.
    pub fn count(&self, topic: &str, from: u64, to: u64) -> u64 {
        match topic {
            "/ganglion/tick" | "/command" => self.ticks.iter().filter(|&&t| t >= from && t <= to).count() as u64,
            _ => self.pushed.iter().filter(|(p, t)| *p == topic && *t >= from && *t <= to).count() as u64,
        }
    }
}

/// A deterministic stand-in for the loop's producer side: sensors write the
/// slots, the "loop" samples them, records, and produces a tick row.
pub struct SyntheticLoop {
    pub clock: SimClock,
    writers: InputWriters,
    readers: InputReaders,
    chunk: ActionChunk,
    pub tick: u64,
    /// Tick at which the fault (inference late) starts; `None` = nominal run.
    pub fault_at: Option<u64>,
    pub ledger: Ledger,
    frame_pixels: Vec<u8>,
}

impl SyntheticLoop {
    pub fn new(fault_at: Option<u64>) -> Self {
        let (writers, readers) = input_slots(JOINTS, &[("front".into(), 8, 8)]);
        SyntheticLoop {
            clock: SimClock::new(Stamp(1_000_000_000)),
            writers,
            readers,
            chunk: ActionChunk::with_capacity(CHUNK, JOINTS),
            tick: 0,
            fault_at,
            ledger: Ledger::default(),
            frame_pixels: vec![0; 8 * 8 * 3],
        }
    }

    /// Reserves the ledger for `ticks` more ticks so stepping allocates nothing.
    pub fn reserve(&mut self, ticks: usize) {
        self.ledger.ticks.reserve(ticks);
        self.ledger.rows.reserve(ticks);
        self.ledger.pushed.reserve(ticks * 4);
    }

    /// Sensors publish (allocation-free: writes into preallocated slot buffers).
    fn sensors(&mut self, now: Stamp) {
        let k = self.tick;
        self.writers.joints.write_with(|s| {
            s.capture = Stamp(now.0 - 1_000_000);
            s.receive = Stamp(now.0 - 500_000);
            s.seq = k + 1;
            s.value = JointState::zeros(JOINTS);
            for (j, p) in s.value.position.iter_mut().enumerate() {
                *p = (k as f64 * 0.01 + j as f64).sin();
            }
        });
        if k % 3 == 0 {
            let shade = (k % 251) as u8;
            for (i, px) in self.frame_pixels.iter_mut().enumerate() {
                *px = shade.wrapping_add(i as u8);
            }
            let pixels = &self.frame_pixels;
            self.writers.cameras[0].slot.write_with(|s| {
                s.capture = Stamp(now.0 - 2_000_000);
                s.receive = Stamp(now.0 - 1_000_000);
                s.seq = k / 3 + 1;
                let _ = s.value.set(8, 8, PixelFormat::Rgb8, pixels);
            });
        }
        if k == 0 || k == 200 {
            self.writers.instruction.write_with(|s| {
                s.capture = now;
                s.receive = now;
                s.seq = if k == 0 { 1 } else { 2 };
                s.value =
                    Instruction::new(s.seq, if k == 0 { "reach the red target" } else { "reach the blue target" });
            });
        }
        if k % 10 == 0 {
            self.writers.heartbeat.write_with(|s| {
                s.capture = now;
                s.receive = now;
                s.seq = k / 10 + 1;
                s.value = ExternalHeartbeat { stop: false };
            });
        }
    }

    /// One tick; `tap` is `None` for a run with recording off.
    pub fn step(&mut self, mut tap: Option<&mut RecorderTap>) {
        let now = self.clock.now();
        self.sensors(now);
        // sample
        self.readers.joints.update();
        self.readers.instruction.update();
        self.readers.heartbeat.update();
        for c in &mut self.readers.cameras {
            c.update();
        }
        if let Some(t) = tap.as_deref_mut() {
            t.inputs(now, &self.readers);
        }
        self.note_inputs(now);
        // collect: a result every 5 ticks, an error during the fault
        let faulted = self.fault_at.is_some_and(|f| self.tick >= f);
        let mut result_id = 0;
        if self.tick % 5 == 4 {
            self.chunk.set_steps(CHUNK);
            for (i, v) in self.chunk.as_mut_slice().iter_mut().enumerate() {
                *v = (self.tick as f64 + i as f64) * 1e-3;
            }
            self.chunk.request_id = self.tick / 5 + 1;
            self.chunk.obs_stamp = Stamp(now.0 - 40_000_000);
            self.chunk.step_ns = 50_000_000;
            let r: Result<(), PolicyError> =
                if faulted { Err(PolicyError::Backend("synthetic".into())) } else { Ok(()) };
            if let Some(t) = tap.as_deref_mut() {
                t.result(now, &r, &self.chunk);
            }
            self.ledger.pushed.push(("/ganglion/inference", now.0));
            result_id = self.chunk.request_id;
        }
        // act + account
        let mode = if faulted { Mode::Fallback } else { Mode::Nominal };
        let pos = JointVec::from_slice(&self.readers.joints.latest().value.position).unwrap_or(JointVec::zeros(JOINTS));
        let mut row = TickRow::from_command(&hold_command(self.tick, now, mode, pos));
        if faulted {
            row.causes.insert(Cause::InferenceLate);
        }
        row.result_id = result_id;
        row.start = now.add_nanos(15_000);
        row.stage_ns = [1_000, 2_000, 500, 300, 800, 400, 600, 6_000];
        if let Some(t) = tap {
            t.tick(&row);
        }
        self.ledger.ticks.push(now.0);
        self.ledger.rows.push(row);
        self.tick += 1;
        self.clock.sleep_until(now.add_nanos(PERIOD_NS));
    }

    fn note_inputs(&mut self, now: Stamp) {
        // Mirrors the tap's once-per-sequence rule.
        let k = self.tick;
        self.ledger.pushed.push(("/joint_states", now.0));
        if k % 3 == 0 {
            self.ledger.pushed.push(("/camera/front/image_raw", now.0));
        }
        if k == 0 || k == 200 {
            self.ledger.pushed.push(("/instruction", now.0));
        }
        if k % 10 == 0 {
            self.ledger.pushed.push(("/heartbeat_in", now.0));
        }
    }
}

/// The Python the tests use (GANGLION_PYTHON, the workspace .venv, python3).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("GANGLION_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

/// Opens `file` with the Python `mcap` reader and decodes every message
/// with `mcap-ros2-support`; returns {topic: (schema, count)} for every
/// declared channel, plus the `ganglion` metadata.
pub fn python_read(file: &Path) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
with open(sys.argv[1], "rb") as f:
    reader = make_reader(f, decoder_factories=[DecoderFactory()])
    summary = reader.get_summary()
    out = {"channels": {}, "metadata": {}}
    for cid, ch in summary.channels.items():
        out["channels"][ch.topic] = {"schema": summary.schemas[ch.schema_id].name, "count": 0}
    first = {}
    for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
        out["channels"][channel.topic]["count"] += 1
        first.setdefault(channel.topic, decoded)
    for m in reader.iter_metadata():
        out["metadata"][m.name] = dict(m.metadata)
    t = first.get("/ganglion/tick")
    if t is not None:
        out["first_tick"] = {"seq": t.seq, "mode": t.mode, "stage_ns": list(t.stage_ns), "command_position": list(t.command_position)}
    j = first.get("/joint_states")
    if j is not None:
        out["first_joints"] = {"name": list(j.name), "position": list(j.position)}
    i = first.get("/camera/front/image_raw")
    if i is not None:
        out["first_image"] = {"width": i.width, "height": i.height, "encoding": i.encoding, "bytes": len(i.data)}
    print(json.dumps(out))
"#;
    let out = std::process::Command::new(python()).arg("-c").arg(SCRIPT).arg(file).output().expect("python runs");
    assert!(
        out.status.success(),
        "python mcap reader failed on {}:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// `.mcap` files in `dir`, sorted by name, and whether any `.part` is left.
pub fn files(dir: &Path) -> (Vec<PathBuf>, bool) {
    let mut v = Vec::new();
    let mut part = false;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "mcap") {
            v.push(p);
        } else if p.extension().is_some_and(|x| x == "part") {
            part = true;
        }
    }
    v.sort();
    (v, part)
}

/// A frame for tests that need one outside the loop.
pub fn frame() -> Stamped<Frame> {
    let mut f = Frame::with_capacity(8, 8);
    let _ = f.set(8, 8, PixelFormat::Rgb8, &[1; 192]);
    Stamped { capture: Stamp(1), receive: Stamp(2), seq: 1, value: f }
}
