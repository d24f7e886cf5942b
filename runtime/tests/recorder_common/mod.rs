//! Shared by the recorder tests: the production capture path on a
//! deterministic closed loop. A real [`ControlLoop`] (launch/sim.toml: the
//! simulated arm, the scripted expert, a [`SimClock`]) gets its recorder
//! through `recorder::attach`, exactly as `ganglion run` does: the loop
//! writes its telemetry ring and input tap, the recorder's `LoopSource`
//! drains them. A [`Ledger`] notes what each tick consumed and produced, so
//! tests can count what a file must hold; and the Python `mcap` reader.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ganglion::control::{ControlLoop, InjectedDelay, LatencyModel, SimLatencyExecutor, WorkerExecutor};
use ganglion::plant::CountingSink;
use ganglion::profile::Profile;
use ganglion::recorder::attach::{attach, flight_recorder, AttachedRecorder, RecordingIdentity};
use ganglion::recorder::loop_source::tick_row;
use ganglion::recorder::{FlightRecorder, RecordingConfig, TickRow};
use ganglion_core::{input_slots, Clock, ExternalHeartbeat, InputWriters, Instruction, SimClock, Stamp};
use ganglion_sim::{ExpertPolicy, SimArm};

/// launch/sim.toml runs at 100 Hz.
pub const PERIOD_NS: u64 = 10_000_000;
/// Ticks at which the test's operator sends an instruction.
pub const INSTRUCTIONS: [(u64, &str); 2] = [(0, "reach the red target"), (200, "reach the blue target")];

pub fn profile_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/sim.toml")
}

/// Names and replay metadata, as `ganglion run` builds them.
pub fn identity(p: &Profile) -> RecordingIdentity {
    RecordingIdentity {
        joint_names: p.robot.joints.iter().map(|j| j.name.clone()).collect(),
        cameras: p.robot.cameras.iter().map(|c| c.name.clone()).collect(),
        profile_toml: std::fs::read_to_string(profile_path()).expect("profile text"),
        profile_path: profile_path().display().to_string(),
        extra: vec![("command".into(), "recorder test".into())],
    }
}

/// What the loop consumed and produced, per tick, so tests can count what
/// a file must hold.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Tick scheduled stamps, in order.
    pub ticks: Vec<u64>,
    /// (topic, tick stamp) of every input and result the tick consumed.
    pub pushed: Vec<(&'static str, u64)>,
    /// The loop's tick records, as recorded.
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

    /// The first tick at which a cause appeared.
    pub fn first_trigger(&self) -> Option<u64> {
        let mut prev: Option<&TickRow> = None;
        for r in &self.rows {
            if !r.new_causes(prev).is_empty() {
                return Some(r.seq);
            }
            prev = Some(r);
        }
        None
    }
}

/// The control loop around the simulated arm, stepped by the test (one
/// call, one period), like `SimHarness` but keeping what the arm published
/// each tick for the ledger, with an operator sending instructions and a
/// heartbeat.
pub struct SimLoop {
    pub clock: SimClock,
    pub profile: Profile,
    pub control: ControlLoop,
    arm: SimArm,
    writers: InputWriters,
    delay: InjectedDelay,
    pub tick: u64,
    /// Tick from which inference stalls (`inference_late`); `None`: nominal.
    pub fault_at: Option<u64>,
    pub ledger: Ledger,
}

impl SimLoop {
    /// Inference on the simulated clock (15 ms fixed latency): the whole
    /// run is a function of the profile and the seed.
    pub fn new(fault_at: Option<u64>) -> Self {
        let p = Profile::load(profile_path()).expect("launch/sim.toml");
        let sim = p.sim.clone().unwrap_or_default();
        let delay = InjectedDelay::new();
        let policy = ExpertPolicy::new(&sim, 10, 20_000_000).expect("expert");
        let exec = SimLatencyExecutor::new(Box::new(policy), LatencyModel::Fixed { ns: 15_000_000 }, delay.clone());
        Self::build(p, SimClock::new(Stamp::ZERO), Box::new(exec), delay, fault_at)
    }

    /// Inference on the real worker thread, as deployed (answers in real
    /// time: pace the steps).
    pub fn with_worker() -> Self {
        let p = Profile::load(profile_path()).expect("launch/sim.toml");
        let sim = p.sim.clone().unwrap_or_default();
        let clock = SimClock::new(Stamp::ZERO);
        let policy = ExpertPolicy::new(&sim, 10, 20_000_000).expect("expert");
        let worker = WorkerExecutor::spawn(Box::new(policy), Arc::new(clock.clone())).expect("worker");
        Self::build(p, clock, Box::new(worker), InjectedDelay::new(), None)
    }

    fn build(
        profile: Profile,
        clock: SimClock,
        inference: Box<dyn ganglion::control::InferenceExecutor>,
        delay: InjectedDelay,
        fault_at: Option<u64>,
    ) -> Self {
        let sim = profile.sim.clone().unwrap_or_default();
        let cfg = profile.loop_config();
        assert_eq!(cfg.period_ns, PERIOD_NS);
        let arm = SimArm::new(&sim, 1).expect("arm");
        let cameras: Vec<(String, u32, u32)> =
            inference.spec().cameras.iter().map(|c| (c.name.clone(), c.width, c.height)).collect();
        let (writers, readers) = input_slots(cfg.limits.len(), &cameras);
        let control = ControlLoop::new(&cfg, readers, inference, Box::new(CountingSink::default())).expect("loop");
        SimLoop { clock, profile, control, arm, writers, delay, tick: 0, fault_at, ledger: Ledger::default() }
    }

    /// The recorder attached as `ganglion run` attaches it, on its thread.
    pub fn attach(&mut self, cfg: &RecordingConfig) -> AttachedRecorder {
        let id = identity(&self.profile);
        let (rec, _) = attach(&mut self.control, cfg, id, None).expect("attach").expect("recording on");
        rec
    }

    /// The same recorder without its thread: the test polls it, so every
    /// drain happens at a known tick.
    pub fn recorder(&mut self, cfg: &RecordingConfig) -> FlightRecorder {
        let id = identity(&self.profile);
        flight_recorder(&mut self.control, cfg, id, None).expect("attach").expect("recording on").0
    }

    /// Reserves the ledger for `ticks` more ticks so stepping allocates nothing.
    pub fn reserve(&mut self, ticks: usize) {
        self.ledger.ticks.reserve(ticks);
        self.ledger.rows.reserve(ticks);
        self.ledger.pushed.reserve(ticks * 4);
    }

    /// The operator's inputs (allocation-free: preallocated slot buffers).
    fn operator(&mut self, now: Stamp) -> (bool, bool) {
        let k = self.tick;
        let heartbeat = k % 10 == 0;
        if heartbeat {
            self.writers.heartbeat.write_with(|s| {
                s.capture = now;
                s.receive = now;
                s.seq = k / 10 + 1;
                s.value = ExternalHeartbeat { stop: false };
            });
        }
        // Written after the arm's own instruction of tick 0, so the loop sees ours.
        let instruction = INSTRUCTIONS.iter().position(|(at, _)| *at == k);
        if let Some(i) = instruction {
            self.writers.instruction.write_with(|s| {
                s.capture = now;
                s.receive = now;
                s.seq = i as u64 + 1;
                s.value = Instruction::new(i as u64 + 1, INSTRUCTIONS[i].1);
            });
        }
        (heartbeat, instruction.is_some())
    }

    /// One control period: the arm and the operator publish, the loop
    /// ticks (writing its rings), the arm moves.
    pub fn step(&mut self) {
        let now = self.clock.now();
        if self.fault_at == Some(self.tick) {
            self.delay.stall();
        }
        let published = self.arm.publish_due(now, &mut self.writers);
        let (heartbeat, instruction) = self.operator(now);
        let cmd = *self.control.tick(&self.clock, now);
        let rec = self.control.last_record();
        // What the loop's input tap holds for this tick: every sample new
        // to the loop, and the answer it collected.
        let consumed = [
            ("/joint_states", published.joints),
            ("/camera/front/image_raw", published.camera),
            ("/instruction", instruction),
            ("/heartbeat_in", heartbeat),
            ("/ganglion/inference", rec.completed != 0),
        ];
        for (topic, new) in consumed {
            if new {
                self.ledger.pushed.push((topic, now.0));
            }
        }
        self.ledger.ticks.push(now.0);
        self.ledger.rows.push(tick_row(rec));
        self.arm.apply_command(&cmd);
        self.arm.step(PERIOD_NS);
        self.clock.advance(PERIOD_NS);
        self.tick += 1;
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
