//! End to end on the real control loop and a simulated clock: the loop's
//! telemetry rings feed the flight recorder; a nominal run and a run with
//! an inference stall are recorded to MCAP; replaying each file through a
//! freshly built loop reproduces every decision and command bit for bit;
//! and a replay with a different configuration reports the first
//! divergence (so the check can fail).

use std::sync::atomic::Ordering;

use ganglion::control::{ControlLoop, InferenceExecutor, InjectedDelay, LatencyModel, LoopConfig, SimLatencyExecutor};
use ganglion::recorder::loop_source::LoopSource;
use ganglion::recorder::read::{InputSample, Recording};
use ganglion::recorder::replay::{check, ReplayError};
use ganglion::recorder::{DirStorage, FlightRecorder, RecordingConfig, RecordingMeta};
use ganglion_core::{
    input_slots, ActionChunk, ActionKind, CameraSpec, Cause, Clock, Command, CommandSink, InputReaders, Instruction,
    JointLimit, Mode, Observation, PixelFormat, Policy, PolicyError, PolicySpec, SimClock, SinkError, Stamp,
};

const RATE_HZ: f64 = 100.0;
const N: usize = 3;

fn spec() -> PolicySpec {
    PolicySpec {
        name: "reach-test".into(),
        n_joints: N,
        chunk_len: 8,
        step_ns: 20_000_000,
        action_kind: ActionKind::AbsolutePosition,
        cameras: vec![CameraSpec { name: "front".into(), width: 8, height: 8, format: PixelFormat::Rgb8 }],
        expected_latency_ns: 30_000_000,
        surprise_threshold: None,
        history: 1,
        rolls_at_reply: false,
    }
}

/// Moves every joint a little toward 0.5 rad per action, from the observed state.
struct Reach(PolicySpec);

impl Policy for Reach {
    fn spec(&self) -> &PolicySpec {
        &self.0
    }
    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        out.set_steps(self.0.chunk_len);
        for i in 0..self.0.chunk_len {
            for (j, q) in obs.joints.position.iter().enumerate() {
                out.step_mut(i)[j] = q + (0.5 - q) * 0.02 * (i + 1) as f64;
            }
        }
        out.request_id = obs.request_id;
        out.obs_stamp = obs.stamp;
        out.step_ns = self.0.step_ns;
        out.kind = self.0.action_kind;
        Ok(())
    }
}

fn limits() -> Vec<JointLimit> {
    vec![JointLimit { position_min: -2.0, position_max: 2.0, velocity: 2.0, acceleration: 20.0, jerk: 500.0 }; N]
}

fn config() -> LoopConfig {
    let mut c = LoopConfig::with_limits(limits(), RATE_HZ);
    c.inference_timeout_ns = 100_000_000;
    c
}

/// The plant: joints follow the last command; the camera shows them.
struct Plant {
    q: [f64; N],
}

struct Last(std::sync::Arc<std::sync::Mutex<Option<Command>>>);

impl CommandSink for Last {
    fn send(&mut self, cmd: &Command) -> Result<(), SinkError> {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(*cmd);
        }
        Ok(())
    }
}

/// Runs `ticks` ticks with the recorder on; stalls inference from `stall_at`.
fn record(dir: &std::path::Path, ticks: u64, stall_at: Option<u64>, continuous: bool) -> Vec<std::path::PathBuf> {
    let (mut writers, readers) = input_slots(N, &[("front".into(), 8, 8)]);
    let delay = InjectedDelay::new();
    let exec = SimLatencyExecutor::new(Box::new(Reach(spec())), LatencyModel::Fixed { ns: 25_000_000 }, delay.clone());
    let last = std::sync::Arc::new(std::sync::Mutex::new(None));
    let mut lp = ControlLoop::new(&config(), readers, Box::new(exec), Box::new(Last(last.clone()))).expect("loop");
    let telemetry = lp.attach_telemetry(1024);
    let tap = lp.attach_input_tap(64);
    let cfg = RecordingConfig {
        dir: Some(dir.into()),
        continuous,
        on_trigger: !continuous,
        pre_trigger_s: 30.0,
        post_trigger_s: 0.5,
        ..RecordingConfig::default()
    };
    let meta = RecordingMeta {
        joint_names: vec!["a".into(), "b".into(), "c".into()],
        cameras: vec!["front".into()],
        ..Default::default()
    };
    let mut rec =
        FlightRecorder::new(&cfg, meta, Box::new(DirStorage::new(dir)), LoopSource::new(telemetry, Some(tap)));
    let stats = rec.stats();
    let clock = SimClock::new(Stamp(5_000_000_000));
    let period = lp.period_ns();
    let mut plant = Plant { q: [0.0; N] };
    let mut pixels = [0u8; 8 * 8 * 3];
    for k in 0..ticks {
        let now = clock.now();
        if stall_at == Some(k) {
            delay.set(InjectedDelay::STALL);
        }
        if let Some(cmd) = last.lock().ok().and_then(|g| *g) {
            for (q, p) in plant.q.iter_mut().zip(cmd.position.iter()) {
                *q = *p;
            }
        }
        writers.joints.write_with(|s| {
            s.capture = Stamp(now.0 - 1_000_000);
            s.receive = Stamp(now.0 - 500_000);
            s.seq = k + 1;
            s.value.position.copy_from_slice(&plant.q);
        });
        if k % 3 == 0 {
            for (i, p) in pixels.iter_mut().enumerate() {
                *p = ((plant.q[i % N] * 100.0) as i64 + i as i64 + k as i64) as u8;
            }
            writers.cameras[0].slot.write_with(|s| {
                s.capture = Stamp(now.0 - 2_000_000);
                s.receive = Stamp(now.0 - 1_000_000);
                s.seq = k / 3 + 1;
                let _ = s.value.set(8, 8, PixelFormat::Rgb8, &pixels);
            });
        }
        lp.tick(&clock, now);
        if k % 10 == 0 {
            rec.poll();
        }
        clock.sleep_until(now.add_nanos(period));
    }
    let report = rec.finish();
    assert_eq!(report.write_errors, 0);
    assert!(stats.ticks.load(Ordering::Relaxed) == ticks, "every tick recorded");
    if continuous {
        report.segments
    } else {
        report.trigger_files
    }
}

fn replay(file: &std::path::Path, cfg: LoopConfig) -> Result<ganglion::recorder::replay::ReplayOutcome, ReplayError> {
    let rec = Recording::open(file).expect("reads");
    let build = move |readers: InputReaders, exec: Box<dyn InferenceExecutor>, sink: Box<dyn CommandSink>| {
        ControlLoop::new(&cfg, readers, exec, sink)
    };
    check(&rec, &spec(), Box::new(build))
}

#[test]
fn nominal_run_replays_bit_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = record(dir.path(), 300, None, true);
    assert_eq!(files.len(), 1);
    let rec = Recording::open(&files[0]).expect("reads");
    assert!(rec.ticks.iter().any(|t| t.mode == Mode::Nominal), "the policy drove the arm");
    assert!(rec.results.len() > 10, "inference results recorded");
    let out = replay(&files[0], config()).expect("replays");
    assert_eq!(out.divergence, None);
    assert_eq!(out.ticks, 300);
}

#[test]
fn fault_run_replays_bit_exactly_and_a_changed_config_diverges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = record(dir.path(), 300, Some(150), false);
    // The stall's window (the last file) reaches back to tick 0: pre_trigger_s spans the run.
    let file = files.last().expect("the stall triggers a window file");
    let rec = Recording::open(file).expect("reads");
    assert!(rec.info.get("trigger_causes").is_some_and(|c| c.contains("inference_late")), "{:?}", rec.info);
    assert!(rec.ticks.iter().any(|t| t.causes.contains(Cause::InferenceLate)), "{:?}", rec.info);
    assert!(rec.ticks.iter().any(|t| t.mode == Mode::Fallback));
    let out = replay(file, config()).expect("replays");
    assert_eq!(out.divergence, None, "fault run replays bit-exactly");
    assert_eq!(out.ticks as usize, rec.ticks.len());

    // A different velocity limit changes the commands: the check must say where.
    let mut other = config();
    for l in &mut other.limits {
        l.velocity = 0.05;
    }
    let out = replay(file, other).expect("replays");
    let d = out.divergence.expect("a changed configuration diverges");
    assert!(d.field.starts_with("command_") || d.field == "flags" || d.field == "clamps", "{d}");
}

/// The `/instruction` channel as docs/RECORDING.md states it: one message
/// per receipt (every new sample in the slot, even with unchanged text),
/// MCAP `publish_time` = its receive stamp and `sequence` = its slot
/// sequence number, like every other input. (The loop's input snapshot
/// used to leave the stamps at 0 and put the text's change counter in the
/// sequence.)
#[test]
fn recorded_instructions_carry_their_receive_stamp_and_slot_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writers, readers) = input_slots(N, &[("front".into(), 8, 8)]);
    let exec =
        SimLatencyExecutor::new(Box::new(Reach(spec())), LatencyModel::Fixed { ns: 25_000_000 }, InjectedDelay::new());
    let sink = Box::new(Last(std::sync::Arc::new(std::sync::Mutex::new(None))));
    let mut lp = ControlLoop::new(&config(), readers, Box::new(exec), sink).expect("loop");
    let telemetry = lp.attach_telemetry(64);
    let tap = lp.attach_input_tap(64);
    let cfg =
        RecordingConfig { dir: Some(dir.path().into()), continuous: true, on_trigger: false, ..Default::default() };
    let meta = RecordingMeta { joint_names: vec!["a".into(), "b".into(), "c".into()], ..Default::default() };
    let rec =
        FlightRecorder::new(&cfg, meta, Box::new(DirStorage::new(dir.path())), LoopSource::new(telemetry, Some(tap)));
    let clock = SimClock::new(Stamp(5_000_000_000));
    let mut expected = Vec::new();
    for k in 0..6u64 {
        let now = clock.now();
        if k % 2 == 0 {
            // Three receipts: the same text twice (a sender repeating it), then a new one.
            let (text_seq, text) = if k < 4 { (1, "reach the red target") } else { (2, "reach the blue target") };
            let (seq, receive) = (k / 2 + 1, Stamp(now.0 - 200_000));
            writers.instruction.write_with(|s| {
                s.capture = receive;
                s.receive = receive;
                s.seq = seq;
                s.value = Instruction::new(text_seq, text);
            });
            expected.push((now.0, receive.0, seq, text.to_string()));
        }
        lp.tick(&clock, now);
        clock.sleep_until(now.add_nanos(lp.period_ns()));
    }
    let report = rec.finish();
    let r = Recording::open(&report.segments[0]).expect("reads");
    let got: Vec<(u64, u64, u64, String)> = r
        .inputs
        .iter()
        .filter_map(|i| match &i.sample {
            InputSample::Instruction(s) => Some((i.tick.0, s.receive.0, s.seq, s.value.text.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(got, expected);
}
