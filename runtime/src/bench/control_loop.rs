//! `ganglion bench loop` (the library side) runs the real-clock control loop against the
//! simulated arm (on its own plant thread) with [`FixedLatencyStandIn`], a
//! trivial policy stand-in whose only job is to answer after a fixed
//! latency, and reports JSON:
//!
//! - `ticks`: measured ticks (after warm-up);
//! - `overhead_us` {p50, p99, max}: tick body time; inference runs on the
//!   worker thread, so this excludes it;
//! - `jitter_us` {p50, p99, max}: actual tick start − scheduled start;
//! - `timer_floor_us` {p50, p99, max}: wake-up lateness of a bare
//!   absolute-deadline sleep loop at the same rate, measured just before;
//! - `allocations_per_tick`: heap allocations on the control thread per
//!   measured tick (null when the counting allocator is not installed);
//! - `overruns`, `fallback_ticks`: measured ticks over budget / in fallback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ganglion_core::{
    input_slots, ActionChunk, ActionKind, CameraSpec, MonotonicClock, Observation, PixelFormat, Policy, PolicyError,
    PolicySpec,
};

use crate::control::telemetry::Stage;
use crate::control::{
    alloc_count, spawn_realtime, timer_floor, ControlLoop, LoopConfig, RealtimeOptions, TelemetryReader, WorkerExecutor,
};
use crate::profile::Profile;
use crate::stats::{us, Percentiles, SampledPercentiles};

/// What to measure: the flags of `ganglion bench loop`.
#[derive(Debug, Clone, Default)]
pub struct LoopBench {
    /// Measured duration, seconds (after 1 s of warm-up).
    pub seconds: f64,
    /// Control rate, Hz (30..=1000).
    pub rate_hz: f64,
    /// Latency of the policy stand-in, ms.
    pub policy_latency_ms: f64,
    /// Robot profile with a `[sim]` section (`None`: the built-in simulated
    /// 3-joint arm with default loop settings).
    pub config: Option<std::path::PathBuf>,
    /// Attach the flight recorder (trigger files into this directory).
    pub record_dir: Option<std::path::PathBuf>,
    /// The default scheduler instead of SCHED_FIFO.
    pub no_rt: bool,
}

/// A trivial policy stand-in for benchmarks, NOT a learned policy: it
/// sleeps for a fixed latency, then returns a chunk that sways every joint
/// ±0.05 rad around the observed position, so the executor, shield and
/// plant do real work.
pub struct FixedLatencyStandIn {
    spec: PolicySpec,
    latency: Duration,
}

impl FixedLatencyStandIn {
    /// A stand-in for `n_joints` joints and the given cameras, answering
    /// after `latency` with chunks of `chunk_len` steps of `step_ns`.
    pub fn new(n_joints: usize, cameras: Vec<CameraSpec>, chunk_len: usize, step_ns: u64, latency: Duration) -> Self {
        let spec = PolicySpec {
            name: "fixed-latency stand-in (benchmark only)".into(),
            n_joints,
            chunk_len,
            step_ns,
            action_kind: ActionKind::AbsolutePosition,
            cameras,
            expected_latency_ns: latency.as_nanos() as u64,
            surprise_threshold: None,
            history: 1,
            rolls_at_reply: false,
        };
        FixedLatencyStandIn { spec, latency }
    }
}

impl Policy for FixedLatencyStandIn {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        std::thread::sleep(self.latency);
        let steps = out.set_steps(self.spec.chunk_len);
        for i in 0..steps {
            let t = obs.stamp.as_secs_f64() + (i as f64) * self.spec.step_ns as f64 * 1e-9;
            let sway = 0.05 * (t * std::f64::consts::TAU * 0.5).sin();
            for (a, q) in out.step_mut(i).iter_mut().zip(obs.joints.position.iter()) {
                *a = q + sway;
            }
        }
        Ok(())
    }
}

/// The report of `ganglion bench loop` (fields: the module docs).
#[derive(Debug, serde::Serialize)]
pub struct LoopReport {
    /// Measured ticks (after warm-up).
    pub ticks: u64,
    /// Control rate, Hz.
    pub rate_hz: f64,
    /// Measured duration, s.
    pub seconds: f64,
    /// Tick body time, µs (inference runs on the worker: excluded).
    pub overhead_us: SampledPercentiles,
    /// Actual tick start − scheduled start, µs.
    pub jitter_us: SampledPercentiles,
    /// Wake-up lateness of a bare sleep loop at the same rate, µs.
    pub timer_floor_us: Percentiles,
    /// Heap allocations on the control thread per measured tick.
    pub allocations_per_tick: Option<f64>,
    /// Measured ticks over budget.
    pub overruns: u64,
    /// Measured ticks in fallback.
    pub fallback_ticks: u64,
    /// Periods skipped after overruns.
    pub skipped_periods: u64,
    /// The stand-in's name.
    pub policy: String,
    /// The stand-in's latency, ms.
    pub policy_latency_ms: f64,
    /// Requests to the worker.
    pub inference_requests: u64,
    /// Chunks the executor accepted.
    pub chunks_accepted: u64,
    /// Ticks with no action.
    pub starved_ticks: u64,
    /// `dev` or `release`.
    pub build_profile: &'static str,
    /// Per-stage tick body time (µs), from the loop's tick records.
    pub stages_us: std::collections::BTreeMap<&'static str, Percentiles>,
    /// With `--record-dir`: what the recorder did (its cost is in `overhead_us`).
    pub recording: Option<RecordingCost>,
    /// What the control thread's real-time settings achieved.
    pub control_thread: Option<String>,
    /// What the inference worker's real-time settings achieved.
    pub inference_thread: Option<String>,
}

/// What the recorder did during a bench run.
#[derive(Debug, serde::Serialize)]
pub struct RecordingCost {
    /// Trigger files written.
    pub files: usize,
    /// Failed writes.
    pub write_errors: u64,
    /// Tick records the recorder ring dropped.
    pub dropped_by_loop: u64,
}

/// Per-stage histograms of the tick records drained from the loop's ring
/// (on this thread, not the control thread).
struct StageHistograms {
    hist: Vec<hdrhistogram::Histogram<u64>>,
    warmup: u64,
}

impl StageHistograms {
    fn new(warmup: u64) -> Self {
        StageHistograms {
            hist: Stage::ALL.iter().map(|_| crate::control::runner::duration_histogram()).collect(),
            warmup,
        }
    }

    fn drain(&mut self, telemetry: &TelemetryReader) {
        telemetry.drain(|rec| {
            if rec.seq >= self.warmup {
                for (h, &ns) in self.hist.iter_mut().zip(rec.stage_ns.iter()) {
                    h.saturating_record(u64::from(ns).max(1));
                }
            }
        });
    }

    fn report(&self) -> std::collections::BTreeMap<&'static str, Percentiles> {
        Stage::ALL.iter().zip(&self.hist).map(|(s, h)| (s.name(), us(h))).collect()
    }
}

/// Runs the control loop on the real clock against the simulated arm
/// with [`FixedLatencyStandIn`] and measures it.
pub fn measure(a: &LoopBench) -> anyhow::Result<LoopReport> {
    anyhow::ensure!((30.0..=1000.0).contains(&a.rate_hz), "--rate-hz must be between 30 and 1000, got {}", a.rate_hz);
    anyhow::ensure!(a.seconds > 0.0 && a.seconds.is_finite(), "--seconds must be positive, got {}", a.seconds);
    let counting = alloc_count::is_installed();
    if !counting {
        tracing::warn!("the counting allocator is not installed; allocations_per_tick will be null");
    }

    let (sim, mut cfg) = match &a.config {
        Some(path) => {
            let p = Profile::load(path)?;
            let sim = p.sim.clone().with_context(|| format!("{}: no [sim] section", path.display()))?;
            let mut cfg = p.loop_config();
            cfg.period_ns = (1e9 / a.rate_hz) as u64;
            cfg.budget_ns = cfg.period_ns;
            (sim, cfg)
        }
        None => {
            let sim = ganglion_sim::SimConfig::default();
            let mut cfg = LoopConfig::with_limits(sim.limits.clone(), a.rate_hz);
            // The rendered camera is noise-free: identical frames are normal.
            cfg.staleness.frozen_identical_frames = 0;
            (sim, cfg)
        }
    };
    cfg.inference_timeout_ns = 0;
    let period_ns = cfg.period_ns;
    let clock = MonotonicClock::new();

    // The machine's floor first, at the same rate.
    let floor_ticks = ((a.seconds.min(3.0)) * a.rate_hz).ceil() as u64;
    let floor = timer_floor(&clock, period_ns, floor_ticks.max(1));

    let cameras = vec![CameraSpec {
        name: sim.camera_name.clone(),
        width: sim.camera_width,
        height: sim.camera_height,
        format: PixelFormat::Rgb8,
    }];
    let latency = Duration::from_secs_f64(a.policy_latency_ms.max(0.0) / 1e3);
    let policy = FixedLatencyStandIn::new(sim.limits.len(), cameras, 16, 20_000_000, latency);
    let policy_name = policy.spec().name.clone();
    // Deployed threads run SCHED_FIFO; measuring them under SCHED_OTHER
    // measures this machine's other processes as much as the loop.
    let rt = crate::rtcheck::RealtimeConfig { enabled: !a.no_rt, mlockall: false, ..Default::default() };
    let (inference_hook, inference_rt) = crate::rtcheck::start_hook(&rt, crate::rtcheck::ThreadRole::Inference);
    let (control_hook, control_rt) = crate::rtcheck::start_hook(&rt, crate::rtcheck::ThreadRole::Control);
    let inference = WorkerExecutor::spawn_with(Box::new(policy), Arc::new(clock), Some(inference_hook))
        .context("starting the inference worker")?;
    let arm = ganglion_sim::SimArm::new(&sim, 1).context("building the simulated arm")?;
    let slot_cams: Vec<(String, u32, u32)> = vec![(sim.camera_name.clone(), sim.camera_width, sim.camera_height)];
    let (writers, readers) = input_slots(sim.limits.len(), &slot_cams);
    let (sink, port) = crate::plant::local_link();
    let pacing = crate::plant::Pacing::RealTime { step_ns: 1_000_000 };
    let plant = crate::plant::Plant::new(arm, writers, pacing).spawn(port)?;
    let mut control = ControlLoop::new(&cfg, readers, Box::new(inference), Box::new(sink))?;
    let (recorder, telemetry) = match &a.record_dir {
        None => (None, control.attach_telemetry(8192)),
        Some(dir) => {
            let rec = crate::recorder::RecordingConfig { dir: Some(dir.clone()), ..Default::default() };
            let identity = crate::recorder::attach::RecordingIdentity {
                joint_names: (0..sim.limits.len()).map(|j| format!("joint{j}")).collect(),
                cameras: vec![sim.camera_name.clone()],
                profile_toml: String::new(),
                profile_path: "bench loop".into(),
                extra: vec![("command".into(), "ganglion bench loop".into())],
            };
            match crate::recorder::attach::attach(&mut control, &rec, identity, Some(8192))? {
                Some((r, Some(copy))) => (Some(r), copy),
                _ => anyhow::bail!("the recorder did not start"),
            }
        }
    };

    let warmup = a.rate_hz.ceil() as u64;
    let measured = (a.seconds * a.rate_hz).ceil() as u64;
    let opts = RealtimeOptions {
        max_ticks: Some(warmup + measured),
        warmup_ticks: warmup,
        keep_samples: measured as usize,
        on_start: Some(control_hook),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn_realtime(control, clock, opts, stop.clone()).context("starting the control thread")?;
    let mut stages = StageHistograms::new(warmup);
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        stages.drain(&telemetry);
    }
    let (control, stats) = handle.join().map_err(|_| anyhow::anyhow!("control thread panicked"))?;
    let recording = recorder.map(|r| {
        let dropped = r.stats().source_dropped.load(Ordering::Relaxed);
        let rep = r.stop();
        RecordingCost { files: rep.trigger_files.len(), write_errors: rep.write_errors, dropped_by_loop: dropped }
    });
    stages.drain(&telemetry);
    stop.store(true, Ordering::Release);
    plant.stop()?;
    drop(control);

    let report = LoopReport {
        ticks: stats.measured_ticks,
        rate_hz: a.rate_hz,
        seconds: a.seconds,
        overhead_us: SampledPercentiles::new(&stats.overhead_ns, &stats.overhead_samples_ns),
        jitter_us: SampledPercentiles::new(&stats.jitter_ns, &stats.jitter_samples_ns),
        timer_floor_us: us(&floor),
        allocations_per_tick: counting.then(|| stats.allocations as f64 / stats.measured_ticks.max(1) as f64),
        overruns: stats.overruns,
        fallback_ticks: stats.fallback_ticks,
        skipped_periods: stats.skipped_periods,
        policy: policy_name,
        policy_latency_ms: a.policy_latency_ms,
        inference_requests: stats.counters.requests,
        chunks_accepted: stats.counters.chunks_accepted,
        starved_ticks: stats.counters.starved_ticks,
        build_profile: crate::report::BUILD_PROFILE,
        stages_us: stages.report(),
        recording,
        control_thread: control_rt.get().map(|t| t.to_string()),
        inference_thread: inference_rt.get().map(|t| t.to_string()),
    };
    Ok(report)
}
