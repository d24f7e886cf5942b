//! `ganglion demo` (the library side): the embedded default. The simulated arm and the
//! reference policy reach-v1 on tract, on the real clock, with nothing to
//! install beyond cargo: no network, no Python.
//!
//! Three threads besides the inference worker:
//! - the **control thread** is the real-time runner
//!   ([`spawn_realtime`]): the real [`ControlLoop`] at the profile's rate
//!   with absolute-deadline sleeps on `CLOCK_MONOTONIC`;
//! - the **plant thread** ([`ganglion::plant`]) steps the simulated arm in
//!   real time (physics step), publishes its joint states and camera
//!   frames into the loop's latest-value slots, and applies the newest
//!   command (handed over through a bounded queue, so neither side ever
//!   blocks); [`Episodes`] starts the next episode (new scene, new
//!   instruction) when the tip has stayed on the instructed target for a
//!   moment, or after a timeout;
//! - the **caller** ([`Demo::status`], [`Demo::finish`]) drains the loop's
//!   tick records for a status line and the final [`DemoReport`].
//!
//! `--fault KIND@SECONDS[:ARG]` ([`ganglion::faults`], [`crate::faults::Consumer::Demo`]):
//! an arm fault goes on the arm's schedule, a policy fault wraps the policy
//! ([`FaultyPolicy`]); seconds count from the demo's start.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use ganglion_core::{input_slots, Cause, CauseSet, Clock, Mode, MonotonicClock, Policy, Stamp};
use ganglion_policies::BackendKind;
use ganglion_sim::SimArm;

use crate::control::control_loop::ControlLoop;
use crate::control::inference::WorkerExecutor;
use crate::control::runner::{spawn_realtime, RealtimeOptions};
use crate::eval::{load_bundle, lock, sim_profile, Probe, ProbeStats, SharedStats, Summary};
use crate::faults::{EventQueue, FaultAt, FaultyPolicy};
use crate::plant::episodes::{EpisodeCounters, Episodes};
use crate::plant::{local_link, Pacing, Plant};
use crate::recorder::attach::{attach, AttachedRecorder, RecordingIdentity};

use crate::control::{RealtimeStats, TelemetryReader};
use crate::plant::PlantThread;
use crate::stats::summary_us;

/// How to run the demo: the flags of `ganglion demo`.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// How long to run (s).
    pub seconds: f64,
    /// Instruction for every episode; `None`: the scene's own.
    pub instruction: Option<String>,
    /// An arm or policy fault ([`crate::faults::Consumer::Demo`]), seconds from the start.
    pub fault: Option<FaultAt>,
    /// Bundle directory; `None`: the shipped reach-v1.
    pub bundle: Option<PathBuf>,
    /// Robot profile of the simulated arm; `None`: the shipped sim.toml.
    pub config: Option<PathBuf>,
    /// Seed of the scenes.
    pub seed: u64,
    /// Trusted public key; `None`: the development key.
    pub key: Option<PathBuf>,
    /// Leave flight recordings (MCAP) here, the whole run in the window.
    pub record_dir: Option<PathBuf>,
}

/// The JSON report of `ganglion demo`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    /// Bundle directory.
    pub bundle: String,
    /// Backend used.
    pub backend: String,
    /// Seconds run.
    pub seconds: f64,
    /// Ticks run.
    pub ticks: u64,
    /// Measured tick rate (Hz).
    pub tick_rate_hz: f64,
    /// Episodes started.
    pub episodes: u64,
    /// Episodes in which the tip held on the instructed target.
    pub successes: u64,
    /// Wall-clock inference time (ms).
    pub inference_ms: Summary,
    /// Tick overruns.
    pub overruns: u64,
    /// Ticks the policy drove without an action.
    pub starved_ticks: u64,
    /// Ticks in Fallback or SafeStop.
    pub fallback_ticks: u64,
    /// The injected fault (`KIND@SECONDS`).
    pub fault: Option<String>,
    /// Time from the fault's start to the first fallback tick (ms).
    pub first_fallback_after_ms: Option<f64>,
    /// Causes seen: name → ticks active.
    pub causes: std::collections::BTreeMap<String, u64>,
    /// Cause codes seen (numeric, as recorded).
    pub cause_codes: Vec<u8>,
    /// Mode at the end.
    pub final_mode: String,
    /// Tick start lateness on the real clock (µs).
    pub jitter_us: Summary,
    /// Tick body time, inference excluded (µs).
    pub overhead_us: Summary,
    /// Instructions the policy could not encode.
    pub instruction_errors: u64,
    /// Flight recordings written (with `--record-dir`).
    pub recordings: Vec<String>,
}

/// What the status line shows.
#[derive(Debug, Clone)]
pub struct DemoStatus {
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Ticks per second since the previous status.
    pub rate_hz: f64,
    /// The loop's mode at the newest tick.
    pub mode: Mode,
    /// Causes active at the newest tick.
    pub causes: CauseSet,
    /// 99th percentile of the wall-clock inference time so far, ms.
    pub inference_p99_ms: f64,
    /// Episodes in which the tip held on the instructed target.
    pub successes: u64,
    /// Episodes started.
    pub episodes: u64,
}

/// A running demo: the control thread, the plant thread and the inference
/// worker; the caller polls [`Demo::status`] and ends it with [`Demo::finish`].
pub struct Demo {
    options: DemoOptions,
    bundle: PathBuf,
    backend: String,
    policy_name: String,
    rate_hz: f64,
    clock: MonotonicClock,
    start: Stamp,
    inner: Arc<Mutex<ganglion_policies::BundlePolicy>>,
    stats: SharedStats,
    recorder: Option<AttachedRecorder>,
    telemetry: TelemetryReader,
    live: Arc<EpisodeCounters>,
    plant: PlantThread<Episodes>,
    stop: Arc<AtomicBool>,
    control: std::thread::JoinHandle<(ControlLoop, RealtimeStats)>,
    seen: Seen,
    last: (Stamp, u64),
}

/// What the tick records said so far: the status line's and the report's
/// view of the loop (folded off the control thread).
struct Seen {
    fault_at: Option<Stamp>,
    first_fallback_ns: Option<u64>,
    ticks: u64,
    mode: Mode,
    causes: CauseSet,
}

impl Seen {
    fn observe(&mut self, rec: &crate::control::TickRecord) {
        self.ticks += 1;
        self.mode = rec.mode;
        self.causes = rec.causes;
        if let Some(at) = self.fault_at {
            let fallback = matches!(rec.mode, Mode::Fallback | Mode::SafeStop);
            if self.first_fallback_ns.is_none() && rec.scheduled >= at && fallback {
                self.first_fallback_ns = Some(rec.scheduled.saturating_since(at));
            }
        }
    }
}

impl Demo {
    /// Loads the bundle (tract) and the simulated arm's profile and starts
    /// the threads.
    pub fn start(options: DemoOptions) -> anyhow::Result<Demo> {
        if !(options.seconds.is_finite() && options.seconds > 0.0) {
            bail!("--seconds: expected a positive duration, got {}", options.seconds);
        }
        let (dir, mut policy) =
            load_bundle(options.bundle.as_deref(), BackendKind::Tract, options.key.as_deref(), false)?;
        let (profile_path, loop_cfg, sim_cfg) = sim_profile(options.config.as_deref())?;
        let configured = crate::profile::Profile::load(&profile_path)?.policy.noise_seed;
        let noise_seed = crate::deploy::policy::seed_noise(&mut policy, configured);
        let backend = policy.load_report().backend.as_str().to_string();
        let spec = policy.spec().clone();
        let inner = Arc::new(Mutex::new(policy));
        let stats: SharedStats = Arc::new(Mutex::new(ProbeStats::default()));
        let probe = Probe::new(inner.clone(), stats.clone(), true, 0)?;

        let rate_hz = 1e9 / loop_cfg.period_ns.max(1) as f64;
        let arm = SimArm::new(&sim_cfg, options.seed).context("building the simulated arm")?;
        let clock = MonotonicClock::new();
        let cams: Vec<(String, u32, u32)> = spec.cameras.iter().map(|c| (c.name.clone(), c.width, c.height)).collect();
        let (writers, readers) = input_slots(spec.n_joints, &cams);
        let (sink, port) = local_link();
        let mut plant = Plant::new(arm, writers, Pacing::RealTime { step_ns: sim_cfg.physics_dt_ns });
        let start = clock.now();
        let fault_at = options.fault.map(|f| start.add_nanos(f.start_ns()));
        // An arm fault goes on the arm's schedule; a policy fault wraps the
        // policy (on the worker, times from the demo's start).
        let mut policy: Box<dyn Policy> = Box::new(probe);
        if let Some(f) = options.fault {
            if !f.schedule(plant.arm_mut().faults_mut(), start) {
                let injection =
                    f.injection().with_context(|| format!("fault {f}: neither an arm nor a policy fault"))?;
                // The demo reads no inference log: the smallest queue.
                let faulty = FaultyPolicy::new(policy, vec![injection], EventQueue::new(1));
                policy = Box::new(faulty.counting_from(start.as_nanos()));
            }
        }
        let worker = WorkerExecutor::spawn(policy, Arc::new(clock)).context("starting the inference worker")?;
        let mut control = ControlLoop::new(&loop_cfg, readers, Box::new(worker), Box::new(sink))
            .context("building the control loop")?;
        // Two seconds of tick records: the status line drains them twice a second.
        let status_ring = (2.0 * rate_hz) as usize + 64;
        let (recorder, telemetry) = match &options.record_dir {
            None => (None, control.attach_telemetry(status_ring)),
            Some(rec_dir) => {
                let (recorder, copy) =
                    attach_recorder(&mut control, rec_dir, &profile_path, (&dir, noise_seed), &options, status_ring)?;
                (Some(recorder), copy)
            }
        };

        let live = Arc::new(EpisodeCounters::default());
        let plant = plant.spawn(Episodes::new(port, options.instruction.clone(), live.clone()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let opts = RealtimeOptions { warmup_ticks: rate_hz as u64, ..RealtimeOptions::default() };
        let control = spawn_realtime(control, clock, opts, stop.clone()).context("starting the control thread")?;
        Ok(Demo {
            options,
            bundle: dir,
            backend,
            policy_name: spec.name,
            rate_hz,
            clock,
            start,
            inner,
            stats,
            recorder,
            telemetry,
            live,
            plant,
            stop,
            control,
            seen: Seen { fault_at, first_fallback_ns: None, ticks: 0, mode: Mode::Startup, causes: CauseSet::EMPTY },
            last: (start, 0),
        })
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }

    /// The backend running it.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The control rate, Hz.
    pub fn rate_hz(&self) -> f64 {
        self.rate_hz
    }

    /// Time left of the run (zero once it is over).
    pub fn remaining(&self) -> std::time::Duration {
        let end = self.start.add_nanos((self.options.seconds * 1e9) as u64);
        std::time::Duration::from_nanos(end.saturating_since(self.clock.now()))
    }

    /// Folds the tick records since the last call and returns the status.
    pub fn status(&mut self) -> DemoStatus {
        let now = self.clock.now();
        self.drain();
        let (ticks, since) = (self.seen.ticks - self.last.1, now.saturating_since(self.last.0));
        self.last = (now, self.seen.ticks);
        DemoStatus {
            elapsed_s: now.saturating_since(self.start) as f64 * 1e-9,
            rate_hz: ticks as f64 / (since as f64 * 1e-9).max(1e-9),
            mode: self.seen.mode,
            causes: self.seen.causes,
            inference_p99_ms: inference_summary(&self.stats).p99,
            successes: self.live.successes.load(Ordering::Relaxed),
            episodes: self.live.episodes.load(Ordering::Relaxed),
        }
    }

    fn drain(&mut self) {
        let seen = &mut self.seen;
        self.telemetry.drain(|rec| seen.observe(rec));
    }

    /// Stops the threads and returns the report.
    pub fn finish(mut self) -> anyhow::Result<DemoReport> {
        self.stop.store(true, Ordering::Release);
        let (control, rt) = self.control.join().map_err(|_| anyhow::anyhow!("control thread panicked"))?;
        self.plant.stop()?;
        let recordings: Vec<String> = self
            .recorder
            .take()
            .map(|r| {
                let rep = r.stop();
                rep.trigger_files.iter().chain(rep.segments.iter()).map(|p| p.display().to_string()).collect()
            })
            .unwrap_or_default();
        // The last ticks, written before the control thread stopped.
        let seen = &mut self.seen;
        self.telemetry.drain(|rec| seen.observe(rec));
        let counters = *control.counters();
        let causes = control.cause_counts().ticks_by_name();
        let cause_codes: Vec<u8> =
            Cause::ALL.iter().filter(|c| control.cause_counts().seen(**c)).map(|c| c.code()).collect();
        let instruction_errors = self.inner.lock().map(|p| p.instruction_errors()).unwrap_or(0);
        Ok(DemoReport {
            bundle: self.bundle.display().to_string(),
            backend: self.backend,
            seconds: self.options.seconds,
            ticks: counters.ticks,
            tick_rate_hz: rt.ticks as f64 / self.options.seconds,
            episodes: self.live.episodes.load(Ordering::Relaxed),
            successes: self.live.successes.load(Ordering::Relaxed),
            inference_ms: inference_summary(&self.stats),
            overruns: counters.overruns,
            starved_ticks: counters.starved_ticks,
            fallback_ticks: counters.fallback_ticks,
            fault: self.options.fault.map(|f| f.to_string()),
            first_fallback_after_ms: self.seen.first_fallback_ns.map(|ns| ns as f64 * 1e-6),
            causes,
            cause_codes,
            final_mode: control.mode().name().to_string(),
            jitter_us: summary_us(&rt.jitter_ns),
            overhead_us: summary_us(&rt.overhead_ns),
            instruction_errors,
            recordings,
        })
    }
}

fn inference_summary(stats: &SharedStats) -> Summary {
    let ms: Vec<f64> = lock(stats).infer_ns.iter().map(|n| *n as f64 * 1e-6).collect();
    Summary::of(&ms)
}

/// Attaches the flight recorder for `--record-dir`; returns it and the copy
/// of the tick records the status line reads.
fn attach_recorder(
    control: &mut ControlLoop,
    dir: &std::path::Path,
    profile_path: &std::path::Path,
    (bundle, noise_seed): (&std::path::Path, u64),
    options: &DemoOptions,
    status_ring: usize,
) -> anyhow::Result<(AttachedRecorder, crate::control::TelemetryReader)> {
    let profile = crate::profile::Profile::load(profile_path)?;
    let mut cfg = profile.recording.clone();
    cfg.dir = Some(dir.to_path_buf());
    cfg.on_trigger = true;
    // The whole run stays in the window: a bit-exact replay must start at
    // tick 0, and a demo is short enough to keep (frames are bounded by
    // max_window_bytes all the same).
    cfg.pre_trigger_s = cfg.pre_trigger_s.max((options.seconds + 1.0).min(3600.0));
    let spec = control.spec().clone();
    let identity = RecordingIdentity {
        joint_names: profile.robot.joints.iter().map(|j| j.name.clone()).collect(),
        cameras: spec.cameras.iter().map(|c| c.name.clone()).collect(),
        profile_toml: std::fs::read_to_string(profile_path)
            .with_context(|| format!("reading {} for the recording metadata", profile_path.display()))?,
        profile_path: profile_path.display().to_string(),
        extra: vec![
            ("command".into(), "ganglion demo".into()),
            ("bundle".into(), bundle.display().to_string()),
            ("noise_seed".into(), noise_seed.to_string()),
            ("fault".into(), options.fault.map(|f| f.to_string()).unwrap_or_default()),
        ],
    };
    let (recorder, copy) = attach(control, &cfg, identity, Some(status_ring))?
        .context("the recorder did not start although --record-dir is set")?;
    let copy = copy.context("the recorder returned no copy of the tick records")?;
    Ok((recorder, copy))
}
