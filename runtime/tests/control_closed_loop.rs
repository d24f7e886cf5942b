//! Closed-loop tests on the simulated clock: the control loop around the
//! simulated arm, driven by the scripted expert and by faulty policy
//! doubles. Every fault must produce its cause code and a fallback command
//! in the tick that detects it; no command may break the joint limits; the
//! same seed must give a bit-identical command stream.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use ganglion::control::{LatencyModel, LoopConfig, TickRecord};
use ganglion::plant::SimHarness;
use ganglion::profile::Profile;
use ganglion_core::{
    ActionChunk, Cause, Command, JointLimit, Mode, Observation, Policy, PolicyError, PolicySpec, SimClock,
};
use ganglion_sim::{ExpertPolicy, FaultKind, SimConfig};

fn profile() -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/sim.toml");
    Profile::load(&path).expect("launch/sim.toml loads and validates")
}

/// What the faulty double does once armed.
const OK: u8 = 0;
const NAN: u8 = 1;
const ERROR: u8 = 2;
const PANIC: u8 = 3;

/// The scripted expert, turned faulty on demand.
struct Faulty {
    inner: ExpertPolicy,
    mode: Arc<AtomicU8>,
}

impl Policy for Faulty {
    fn spec(&self) -> &PolicySpec {
        self.inner.spec()
    }
    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        self.inner.infer(obs, out)?;
        match self.mode.load(Ordering::Relaxed) {
            NAN => {
                out.step_mut(0)[0] = f64::NAN;
                Ok(())
            }
            ERROR => Err(PolicyError::Backend("injected test error".into())),
            PANIC => panic!("injected test panic"),
            _ => Ok(()),
        }
    }
}

struct Rig {
    h: SimHarness,
    mode: Arc<AtomicU8>,
    limits: Vec<JointLimit>,
    period_s: f64,
    prev: Option<Command>,
}

fn rig_with(seed: u64, latency: LatencyModel) -> Rig {
    let p = profile();
    let sim = p.sim.clone().unwrap_or_default();
    let cfg: LoopConfig = p.loop_config();
    let mode = Arc::new(AtomicU8::new(OK));
    let expert = ExpertPolicy::new(&sim, 10, 20_000_000).expect("expert");
    let policy = Box::new(Faulty { inner: expert, mode: mode.clone() });
    let h = SimHarness::new(&cfg, &sim, seed, policy, latency).expect("harness");
    Rig { h, mode, limits: cfg.limits.clone(), period_s: cfg.period_ns as f64 * 1e-9, prev: None }
}

fn rig(seed: u64) -> Rig {
    rig_with(seed, LatencyModel::Fixed { ns: 15_000_000 })
}

impl Rig {
    /// One tick; checks the command against the limits; returns the record.
    fn step(&mut self) -> TickRecord {
        let cmd = *self.h.step();
        let rec = *self.h.control().last_record();
        if rec.published {
            for (j, l) in self.limits.iter().enumerate() {
                let q = cmd.position[j];
                let v = cmd.velocity[j];
                assert!(q.is_finite() && v.is_finite(), "non-finite command at tick {}: {cmd:?}", cmd.seq);
                assert!(q >= l.position_min - 1e-9 && q <= l.position_max + 1e-9, "position limit, tick {}", cmd.seq);
                assert!(v.abs() <= l.velocity + 1e-9, "velocity limit, tick {}: {v}", cmd.seq);
                if let Some(prev) = &self.prev {
                    let step = (q - prev.position[j]).abs();
                    assert!(step <= l.velocity * self.period_s + 1e-9, "position step {step} at tick {}", cmd.seq);
                }
            }
            self.prev = Some(cmd);
        }
        rec
    }

    fn run_until_nominal(&mut self, max: u64) {
        for _ in 0..max {
            if self.step().mode == Mode::Nominal {
                return;
            }
        }
        panic!("never reached nominal; causes: {:?}", self.h.control().cause_counts());
    }

    /// Runs until `cause` shows up; asserts that very tick's command comes
    /// from the fallback (or safe stop) and carries the cause.
    fn expect_fallback_on(&mut self, cause: Cause, max: u64) -> TickRecord {
        for _ in 0..max {
            let rec = self.step();
            if rec.causes.contains(cause) {
                assert!(
                    matches!(rec.mode, Mode::Fallback | Mode::SafeStop),
                    "{cause:?} detected at tick {} but mode is {:?}",
                    rec.seq,
                    rec.mode
                );
                assert_eq!(rec.command.mode, rec.mode);
                assert!(rec.published, "the fallback command must go out in the detecting tick");
                return rec;
            }
        }
        panic!("{cause:?} never triggered; counts {:?}", self.h.control().cause_counts());
    }
}

#[test]
fn sim_profile_loads_and_expert_reaches_target_without_fallback() {
    let mut r = rig(3);
    let out = r.h.run_episode(0, 600, 20);
    assert!(out.success, "expert failed: {out:?}");
    let c = *r.h.control().counters();
    assert!(c.chunks_accepted > 5, "{c:?}");
    assert_eq!(c.chunks_rejected, 0);
    let mode_ticks = r.h.control().supervisor().mode_ticks();
    assert_eq!(
        mode_ticks[Mode::Fallback as usize],
        0,
        "fallback during a clean run: {:?}",
        r.h.control().cause_counts()
    );
}

#[test]
fn slow_inference_starves_and_falls_back_in_the_same_tick() {
    let mut r = rig(4);
    r.run_until_nominal(200);
    r.h.injected_delay().set(2_000_000_000);
    let rec = r.expect_fallback_on(Cause::InferenceLate, 300);
    assert!(rec.starved);
    // Back to normal latency: the loop recovers by itself.
    r.h.injected_delay().clear();
    r.run_until_nominal(2000);
}

#[test]
fn stalled_inference_is_detected_as_late() {
    let mut r = rig(5);
    r.run_until_nominal(200);
    r.h.injected_delay().stall();
    r.expect_fallback_on(Cause::InferenceLate, 300);
    for _ in 0..200 {
        assert_eq!(r.step().mode, Mode::Fallback);
    }
}

#[test]
fn nan_actions_are_invalid_and_fall_back() {
    let mut r = rig(6);
    r.run_until_nominal(200);
    r.mode.store(NAN, Ordering::Relaxed);
    r.expect_fallback_on(Cause::InvalidAction, 300);
    assert!(r.h.control().counters().chunks_rejected > 0);
    r.mode.store(OK, Ordering::Relaxed);
    r.run_until_nominal(2000);
}

#[test]
fn policy_errors_and_panics_are_inference_errors() {
    for (mode, seed) in [(ERROR, 7), (PANIC, 8)] {
        let mut r = rig(seed);
        r.run_until_nominal(200);
        r.mode.store(mode, Ordering::Relaxed);
        r.expect_fallback_on(Cause::InferenceError, 300);
        assert!(r.h.control().counters().inference_failures > 0);
        for _ in 0..100 {
            assert_ne!(r.step().mode, Mode::Nominal);
        }
    }
}

#[test]
fn input_faults_trigger_their_causes_and_fall_back() {
    let ms = 1_000_000u64;
    let cases = [
        (FaultKind::DropJoints, Cause::StaleJointState),
        (FaultKind::DropCamera, Cause::StaleCamera),
        (FaultKind::FreezeCameraSameSeq, Cause::FrozenCamera),
        (FaultKind::NanJoint, Cause::InvalidObservation),
        (FaultKind::DelayJoints { lag_ns: 100 * ms }, Cause::StaleJointState),
        (FaultKind::BlackFrame, Cause::BlankCamera),
        // Same pixels, new sequence numbers: found by content, since the
        // simulated camera has sensor noise and the sim profile checks it.
        (FaultKind::FreezeCamera, Cause::FrozenCamera),
        // A calibration error: the first joint reads 3 rad off, beyond its range.
        (FaultKind::JointOffset { rad: 3.0 }, Cause::OutOfEnvelope),
    ];
    for (i, (fault, cause)) in cases.into_iter().enumerate() {
        let mut r = rig(20 + i as u64);
        r.run_until_nominal(200);
        let now = r.h.now();
        r.h.arm_mut().faults_mut().add(fault, now, now.add_nanos(500 * ms));
        r.expect_fallback_on(cause, 200);
    }
}

#[test]
fn backwards_joint_stamp_is_a_bad_timestamp() {
    let mut r = rig(30);
    r.run_until_nominal(200);
    // Stamps suddenly 15 ms older than the sample before (a clock jump in
    // the driver): backwards, though still fresh enough.
    let now = r.h.now();
    r.h.arm_mut().faults_mut().add(FaultKind::DelayJoints { lag_ns: 15_000_000 }, now, now.add_nanos(1_000_000_000));
    let rec = r.expect_fallback_on(Cause::BadTimestamp, 5);
    assert!(!rec.causes.contains(Cause::StaleJointState));
}

#[test]
fn tick_overrun_falls_back_at_the_next_tick_boundary() {
    let mut r = rig(31);
    r.run_until_nominal(200);
    // A tick whose clock says it ended two periods late.
    let period = r.h.period_ns();
    let scheduled = r.h.now();
    let late = SimClock::new(scheduled.add_nanos(2 * period));
    r.h.control_mut().tick(&late, scheduled);
    assert!(r.h.control().last_record().overrun);
    r.h.clock().set(scheduled.add_nanos(3 * period));
    let rec = r.step();
    assert!(rec.causes.contains(Cause::TickOverrun));
    assert_eq!(rec.mode, Mode::Fallback);
}

#[test]
fn safe_stop_latches_until_rearm_after_clear_ticks() {
    let mut r = rig(9);
    r.run_until_nominal(200);
    let stop = r.h.control().stop_handle();
    stop.stop();
    let rec = r.expect_fallback_on(Cause::OperatorStop, 2);
    assert_eq!(rec.mode, Mode::SafeStop);
    stop.clear();
    // Still latched immediately after clearing: re-arm refused.
    assert!(r.h.control_mut().rearm().is_err());
    for _ in 0..500 {
        assert_eq!(r.step().mode, Mode::SafeStop);
    }
    r.h.control_mut().rearm().expect("re-arm after the clear ticks");
    r.run_until_nominal(500);
}

#[test]
fn same_seed_gives_a_bit_identical_command_stream() {
    let latency = LatencyModel::Uniform { min_ns: 5_000_000, max_ns: 40_000_000, seed: 99 };
    let stream = |seed: u64| {
        let mut r = rig_with(seed, latency);
        let mut bits: Vec<u64> = Vec::new();
        for _ in 0..400 {
            let rec = r.step();
            bits.push(rec.mode as u64);
            bits.push(u64::from(rec.causes.0));
            bits.extend(rec.command.position.iter().chain(rec.command.velocity.iter()).map(|x| x.to_bits()));
        }
        bits
    };
    let a = stream(11);
    assert_eq!(a, stream(11), "same seed, same clock: the command stream must match bit for bit");
    assert_ne!(a, stream(12), "a different seed must change the scene and so the commands");
}

#[test]
fn telemetry_ring_carries_every_tick_and_counts_drops() {
    let mut r = rig(10);
    let reader = r.h.control_mut().attach_telemetry(64);
    let tap = r.h.control_mut().attach_input_tap(8);
    for _ in 0..50 {
        r.step();
        while let Some(s) = tap.pop() {
            assert!(s.joints.seq > 0);
            tap.recycle(s);
        }
    }
    let mut seqs = Vec::new();
    reader.drain(|rec| seqs.push(rec.seq));
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
    for _ in 0..100 {
        r.step();
    }
    assert_eq!(reader.drain(|_| {}), 64);
    assert_eq!(reader.dropped(), 36);
    assert!(tap.dropped() > 0, "the tap drops when the reader does not recycle");
}

#[test]
fn default_sim_config_matches_the_profile_limits() {
    let p = profile();
    let sim = p.sim.clone().unwrap_or_default();
    assert_eq!(sim.limits, p.robot.limits());
    assert_eq!(SimConfig::default().limits, sim.limits);
}

/// What a policy with a history was handed: per inference, its stamp, the
/// stamps of the earlier observations, and whether their joints and frames
/// were filled (the arm moves: a copy of the newest would equal it).
type Handed = Vec<(u64, Vec<u64>, bool)>;

/// The expert declaring a history of three, recording what it is handed.
struct Historian {
    inner: ExpertPolicy,
    seen: Arc<std::sync::Mutex<Handed>>,
}

impl Policy for Historian {
    fn spec(&self) -> &PolicySpec {
        self.inner.spec()
    }
    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        let filled = obs.past.iter().all(|p| p.frames.iter().all(|f| f.width > 0) && p.joints.position.len() == 3);
        let stamps = obs.past.iter().map(|p| p.stamp.0).collect();
        self.seen.lock().expect("lock").push((obs.stamp.0, stamps, filled));
        self.inner.infer(obs, out)
    }
}

/// Diffusion Policy reads its last `n_obs_steps` observations one policy
/// step apart (LeRobot's queues take one per `select_action`): the loop
/// keeps one per policy step and hands the two before the newest over with
/// every request, a step and two steps back within a control period,
/// whatever the inferences' own cadence; before two steps have passed, the
/// oldest it has stands in (the queue's fill at an episode start).
#[test]
fn a_policy_with_a_history_gets_its_observations_one_policy_step_apart() {
    let p = profile();
    let sim = p.sim.clone().unwrap_or_default();
    let cfg: LoopConfig = p.loop_config();
    let step_ns = 50_000_000; // 5 control periods at 100 Hz
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let inner = ExpertPolicy::new(&sim, 10, step_ns).expect("expert").with_history(3);
    let policy = Box::new(Historian { inner, seen: seen.clone() });
    let mut h = SimHarness::new(&cfg, &sim, 3, policy, LatencyModel::Fixed { ns: 15_000_000 }).expect("harness");
    for _ in 0..400 {
        h.step();
    }
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.len() >= 5, "{} inferences", seen.len());
    let period = cfg.period_ns;
    for (i, (stamp, past, filled)) in seen.iter().enumerate() {
        assert_eq!(past.len(), 2, "inference {i}: {past:?}");
        assert!(filled, "inference {i}: an earlier observation was not filled");
        assert!(past[0] < *stamp || i == 0, "inference {i}: {stamp} after {past:?}");
        assert!(past[1] <= past[0], "inference {i}: oldest last: {past:?}");
        if *stamp >= seen[0].0 + 2 * step_ns + period {
            for (k, &p) in past.iter().enumerate() {
                let back = (k as u64 + 1) * step_ns;
                let off = (stamp - p).abs_diff(back);
                assert!(off <= period, "inference {i}: past[{k}] {} ns back, expected {back} ± {period}", stamp - p);
            }
        }
    }
    // The inferences follow one another as the worker finishes (here every
    // 30 ms, less than a step): the history is not the last inferences'.
    let gaps: Vec<u64> = seen.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.iter().all(|&g| g != step_ns), "inference gaps {gaps:?}");
    assert!(seen.windows(2).skip(5).all(|w| w[1].1[0] != w[0].0), "a past observation was the last inference's");
}
