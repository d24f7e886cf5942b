//! `ganglion bench`: benchmarks.
//!
//! `ganglion bench loop` runs the real-clock control loop against the
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

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ganglion_core::{
    input_slots, ActionChunk, ActionKind, CameraSpec, MonotonicClock, Observation, PixelFormat, Policy, PolicyError,
    PolicySpec,
};

use ganglion::control::telemetry::Stage;
use ganglion::control::{
    alloc_count, spawn_realtime, timer_floor, ControlLoop, InjectedDelay, LoopConfig, RealtimeOptions, TelemetryReader,
    WorkerExecutor,
};
use ganglion::profile::Profile;

/// Subcommands of `ganglion bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Control-loop overhead, jitter and allocations on the real clock.
    Loop(LoopArgs),
    /// End-to-end latency of the zenoh / ROS 2 transport on loopback (see `bench_transport`).
    Transport(super::bench_transport::TransportArgs),
}

/// `ganglion bench loop` arguments.
#[derive(Debug, clap::Args)]
pub struct LoopArgs {
    /// Measured duration, seconds (after 1 s of warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Control rate, Hz (30..=1000).
    #[arg(long, default_value_t = 500.0)]
    pub rate_hz: f64,
    /// Latency of the policy stand-in, ms.
    #[arg(long, default_value_t = 5.0)]
    pub policy_latency_ms: f64,
    /// Robot profile with a `[sim]` section (default: the built-in
    /// simulated 3-joint arm with default loop settings).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Write the JSON report here (with every tick's jitter and overhead as
    /// `samples_us`), and PNG plots beside it.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Directory for the PNG plots (default: `<report>-plots/`).
    #[arg(long, requires = "report")]
    pub plots: Option<std::path::PathBuf>,
    /// Run with the flight recorder attached (trigger files into this
    /// directory), to measure what recording costs the tick.
    #[arg(long)]
    pub record_dir: Option<std::path::PathBuf>,
    /// Run the control thread and the inference worker with the default
    /// scheduler instead of SCHED_FIFO (as deployed: `[realtime]` defaults,
    /// control 80, inference 70). Without the privilege, SCHED_FIFO fails
    /// and the report says so.
    #[arg(long)]
    pub no_rt: bool,
}

/// Runs `ganglion bench`.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Loop(a) => bench_loop(a),
        BenchCommand::Transport(a) => super::bench_transport::run(a),
    }
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

use ganglion::stats::{us, Percentiles, SampledPercentiles};

#[derive(serde::Serialize)]
struct LoopReport {
    ticks: u64,
    rate_hz: f64,
    seconds: f64,
    overhead_us: SampledPercentiles,
    jitter_us: SampledPercentiles,
    timer_floor_us: Percentiles,
    allocations_per_tick: Option<f64>,
    overruns: u64,
    fallback_ticks: u64,
    skipped_periods: u64,
    policy: String,
    policy_latency_ms: f64,
    inference_requests: u64,
    chunks_accepted: u64,
    starved_ticks: u64,
    build_profile: &'static str,
    /// Per-stage tick body time (µs), from the loop's tick records.
    stages_us: std::collections::BTreeMap<&'static str, Percentiles>,
    /// With `--record-dir`: what the recorder did (its cost is in `overhead_us`).
    recording: Option<RecordingCost>,
    /// What the control thread's real-time settings achieved.
    control_thread: Option<String>,
    /// What the inference worker's real-time settings achieved.
    inference_thread: Option<String>,
}

#[derive(serde::Serialize)]
struct RecordingCost {
    files: usize,
    write_errors: u64,
    dropped_by_loop: u64,
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
            hist: Stage::ALL.iter().map(|_| ganglion::control::runner::duration_histogram()).collect(),
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

fn bench_loop(a: LoopArgs) -> anyhow::Result<ExitCode> {
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
    let rt = ganglion::rtcheck::RealtimeConfig { enabled: !a.no_rt, mlockall: false, ..Default::default() };
    let (inference_hook, inference_rt) = ganglion::rtcheck::start_hook(&rt, ganglion::rtcheck::ThreadRole::Inference);
    let (control_hook, control_rt) = ganglion::rtcheck::start_hook(&rt, ganglion::rtcheck::ThreadRole::Control);
    let inference =
        WorkerExecutor::spawn_with(Box::new(policy), Arc::new(clock), InjectedDelay::new(), Some(inference_hook))
            .context("starting the inference worker")?;
    let arm = ganglion_sim::SimArm::new(&sim, 1).context("building the simulated arm")?;
    let slot_cams: Vec<(String, u32, u32)> = vec![(sim.camera_name.clone(), sim.camera_width, sim.camera_height)];
    let (writers, readers) = input_slots(sim.limits.len(), &slot_cams);
    let (sink, port) = ganglion::plant::local_link();
    let pacing = ganglion::plant::Pacing::RealTime { step_ns: 1_000_000 };
    let plant = ganglion::plant::Plant::new(arm, writers, pacing).spawn(port)?;
    let mut control = ControlLoop::new(&cfg, readers, Box::new(inference), Box::new(sink))?;
    let (recorder, telemetry) = match &a.record_dir {
        None => (None, control.attach_telemetry(8192)),
        Some(dir) => {
            let rec = ganglion::recorder::RecordingConfig { dir: Some(dir.clone()), ..Default::default() };
            let identity = ganglion::recorder::attach::RecordingIdentity {
                joint_names: (0..sim.limits.len()).map(|j| format!("joint{j}")).collect(),
                cameras: vec![sim.camera_name.clone()],
                profile_toml: String::new(),
                profile_path: "bench loop".into(),
                extra: vec![("command".into(), "ganglion bench loop".into())],
            };
            match ganglion::recorder::attach::attach(&mut control, &rec, identity, Some(8192))? {
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
        build_profile: if cfg!(debug_assertions) { "dev" } else { "release" },
        stages_us: stages.report(),
        recording,
        control_thread: control_rt.get().map(|t| t.to_string()),
        inference_thread: inference_rt.get().map(|t| t.to_string()),
    };
    let summary = |p: &SampledPercentiles| {
        format!("p50 {} / p99 {} / max {} µs", p.percentiles.p50, p.percentiles.p99, p.percentiles.max)
    };
    println!(
        "bench loop: {} ticks at {} Hz ({} build): overhead {}; jitter {}; timer floor p50 {} / p99 {} µs; \
         allocations/tick {}; overruns {}",
        report.ticks,
        report.rate_hz,
        report.build_profile,
        summary(&report.overhead_us),
        summary(&report.jitter_us),
        report.timer_floor_us.p50,
        report.timer_floor_us.p99,
        report.allocations_per_tick.map_or("n/a".into(), |a| format!("{a}")),
        report.overruns
    );
    if let Some(path) = &a.report {
        let plots = ganglion::report::write_report_and_plots(path, &report, a.plots.as_deref())?;
        println!(
            "report: {}; plots: {}",
            path.display(),
            plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
