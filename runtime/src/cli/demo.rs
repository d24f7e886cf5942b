//! `ganglion demo`: the embedded default. The simulated arm and the
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
//! - the **main thread** drains the loop's tick records, prints a one-line
//!   status twice a second, and writes the summary and report.
//!
//! `--fault KIND@SECONDS[:ARG]` ([`ganglion::faults`], [`Consumer::Demo`]):
//! an arm fault goes on the arm's schedule, a policy fault wraps the policy
//! ([`FaultyPolicy`]); seconds count from the demo's start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use ganglion_core::{input_slots, Cause, CauseSet, Clock, Mode, MonotonicClock, Policy};
use ganglion_policies::BackendKind;
use ganglion_sim::SimArm;

use ganglion::control::control_loop::ControlLoop;
use ganglion::control::inference::WorkerExecutor;
use ganglion::control::runner::{spawn_realtime, RealtimeOptions};
use ganglion::eval::{load_bundle, lock, sim_profile, Probe, ProbeStats, SharedStats, Summary};
use ganglion::faults::{Consumer, EventQueue, FaultAt, FaultyPolicy};
use ganglion::plant::episodes::{EpisodeCounters, Episodes};
use ganglion::plant::{local_link, Pacing, Plant};
use ganglion::recorder::attach::{attach, AttachedRecorder, RecordingIdentity};

/// Arguments of `ganglion demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long to run (s).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Instruction for every episode, e.g. "reach the blue target";
    /// default: the scene's own, a random target per episode.
    #[arg(long)]
    pub instruction: Option<String>,
    /// Inject a fault, `KIND@SECONDS[:ARG]`: any simulated-arm fault
    /// (black-frame@3, frozen-frame@3, nan-joint@3, ...) or policy fault
    /// (late-persistent@3:0.4, error@3, nan-action@3, ...).
    #[arg(long, value_parser = |s: &str| FaultAt::parse_for(s, Consumer::Demo))]
    pub fault: Option<FaultAt>,
    /// Bundle directory; default: policies/reference/reach-v1 of this
    /// workspace, else the installed /usr/share/ganglion/bundles/reach-v1.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Robot profile of the simulated arm; default: launch/sim.toml of this
    /// workspace, else the installed /etc/ganglion/sim.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seed of the scenes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Trusted public key; default: the development key (workspace, else installed).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Leave flight recordings (MCAP) here: one file per supervisor trigger.
    /// The demo keeps its whole run in the recorder's window, so each file
    /// starts at tick 0 and `ganglion replay FILE --check` can re-run it.
    #[arg(long)]
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

fn inference_summary(stats: &SharedStats) -> Summary {
    let ms: Vec<f64> = lock(stats).infer_ns.iter().map(|n| *n as f64 * 1e-6).collect();
    Summary::of(&ms)
}

/// Runs `ganglion demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds: expected a positive duration, got {}", args.seconds);
    }
    let (dir, policy) = load_bundle(args.bundle.as_deref(), BackendKind::Tract, args.key.as_deref(), false)?;
    let bundle_dir = dir.clone();
    let backend = policy.load_report().backend.as_str().to_string();
    let spec = policy.spec().clone();
    let inner = Arc::new(Mutex::new(policy));
    let stats: SharedStats = Arc::new(Mutex::new(ProbeStats::default()));
    let probe = Probe::new(inner.clone(), stats.clone(), true, 0)?;

    let (profile_path, loop_cfg, sim_cfg) = sim_profile(args.config.as_deref())?;
    let rate_hz = 1e9 / loop_cfg.period_ns.max(1) as f64;
    let arm = SimArm::new(&sim_cfg, args.seed).context("building the simulated arm")?;
    let clock = MonotonicClock::new();
    let cams: Vec<(String, u32, u32)> = spec.cameras.iter().map(|c| (c.name.clone(), c.width, c.height)).collect();
    let (writers, readers) = input_slots(spec.n_joints, &cams);
    let (sink, port) = local_link();
    let mut plant = Plant::new(arm, writers, Pacing::RealTime { step_ns: sim_cfg.physics_dt_ns });
    let start = clock.now();
    let fault_at = args.fault.map(|f| start.add_nanos(f.start_ns()));
    // An arm fault goes on the arm's schedule; a policy fault wraps the
    // policy (on the worker, times from the demo's start).
    let mut policy: Box<dyn Policy> = Box::new(probe);
    if let Some(f) = args.fault {
        if !f.schedule(plant.arm_mut().faults_mut(), start) {
            let injection = f.injection().with_context(|| format!("fault {f}: neither an arm nor a policy fault"))?;
            // The demo reads no inference log: the smallest queue.
            let faulty = FaultyPolicy::new(policy, vec![injection], EventQueue::new(1));
            policy = Box::new(faulty.counting_from(start.as_nanos()));
        }
    }
    let worker = WorkerExecutor::spawn(policy, Arc::new(clock)).context("starting the inference worker")?;
    let mut control =
        ControlLoop::new(&loop_cfg, readers, Box::new(worker), Box::new(sink)).context("building the control loop")?;
    // Two seconds of tick records: the status line drains them twice a second.
    let status_ring = (2.0 * rate_hz) as usize + 64;
    let (recorder, telemetry) = match &args.record_dir {
        None => (None, control.attach_telemetry(status_ring)),
        Some(dir) => {
            let (recorder, copy) = attach_recorder(&mut control, dir, &profile_path, &bundle_dir, &args, status_ring)?;
            (Some(recorder), copy)
        }
    };

    let live = Arc::new(EpisodeCounters::default());
    let plant = plant.spawn(Episodes::new(port, args.instruction.clone(), live.clone()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RealtimeOptions { warmup_ticks: rate_hz as u64, ..RealtimeOptions::default() };
    let control = spawn_realtime(control, clock, opts, stop.clone()).context("starting the control thread")?;

    eprintln!(
        "ganglion demo: {} on {backend}, simulated 3-joint arm, {rate_hz} Hz control, {} s{}{}",
        spec.name,
        args.seconds,
        args.instruction.as_ref().map(|i| format!(", instruction {i:?}")).unwrap_or_default(),
        args.fault.map(|f| format!(", fault {f}")).unwrap_or_default(),
    );
    let end = start.add_nanos((args.seconds * 1e9) as u64);
    let mut first_fallback_ns: Option<u64> = None;
    let (mut mode, mut causes_now, mut ticks) = (Mode::Startup, CauseSet::EMPTY, 0u64);
    let mut last = (clock.now(), 0u64);
    loop {
        let now = clock.now();
        if now >= end {
            break;
        }
        std::thread::sleep(Duration::from_nanos(end.saturating_since(now).clamp(1, 500_000_000)));
        let now = clock.now();
        telemetry.drain(|rec| {
            ticks += 1;
            mode = rec.mode;
            causes_now = rec.causes;
            if let Some(at) = fault_at {
                if first_fallback_ns.is_none()
                    && rec.scheduled >= at
                    && matches!(rec.mode, Mode::Fallback | Mode::SafeStop)
                {
                    first_fallback_ns = Some(rec.scheduled.saturating_since(at));
                }
            }
        });
        let rate = (ticks - last.1) as f64 / (now.saturating_since(last.0) as f64 * 1e-9).max(1e-9);
        last = (now, ticks);
        let causes: Vec<&str> = causes_now.iter().map(Cause::name).collect();
        eprint!(
            "\r\x1b[2Kt={:5.1}s  {:6.1} Hz  mode {:9}  inference p99 {:6.2} ms  successes {}/{}  {}",
            now.saturating_since(start) as f64 * 1e-9,
            rate,
            mode.name(),
            inference_summary(&stats).p99,
            live.successes.load(Ordering::Relaxed),
            live.episodes.load(Ordering::Relaxed),
            if causes.is_empty() { String::new() } else { format!("causes: {}", causes.join(",")) },
        );
    }
    stop.store(true, Ordering::Release);
    eprintln!();
    let (control, rt) = control.join().map_err(|_| anyhow::anyhow!("control thread panicked"))?;
    plant.stop()?;
    let recordings: Vec<String> = recorder
        .map(|r| {
            let rep = r.stop();
            rep.trigger_files.iter().chain(rep.segments.iter()).map(|p| p.display().to_string()).collect()
        })
        .unwrap_or_default();
    telemetry.drain(|rec| {
        if let Some(at) = fault_at {
            if first_fallback_ns.is_none() && rec.scheduled >= at && matches!(rec.mode, Mode::Fallback | Mode::SafeStop)
            {
                first_fallback_ns = Some(rec.scheduled.saturating_since(at));
            }
        }
    });
    let us = |h: &hdrhistogram::Histogram<u64>| Summary {
        mean: h.mean() / 1e3,
        median: h.value_at_quantile(0.5) as f64 / 1e3,
        p50: h.value_at_quantile(0.5) as f64 / 1e3,
        p90: h.value_at_quantile(0.9) as f64 / 1e3,
        p99: h.value_at_quantile(0.99) as f64 / 1e3,
        max: h.max() as f64 / 1e3,
        count: h.len() as usize,
    };
    let counters = *control.counters();
    let mut causes = std::collections::BTreeMap::new();
    let mut cause_codes = Vec::new();
    for c in Cause::ALL {
        let n = control.cause_counts().ticks(c);
        if n > 0 {
            causes.insert(c.name().to_string(), n);
            cause_codes.push(c.code());
        }
    }
    let instruction_errors = inner.lock().map(|p| p.instruction_errors()).unwrap_or(0);
    let report = DemoReport {
        bundle: dir.display().to_string(),
        backend,
        seconds: args.seconds,
        ticks: counters.ticks,
        tick_rate_hz: rt.ticks as f64 / args.seconds,
        episodes: live.episodes.load(Ordering::Relaxed),
        successes: live.successes.load(Ordering::Relaxed),
        inference_ms: inference_summary(&stats),
        overruns: counters.overruns,
        starved_ticks: counters.starved_ticks,
        fallback_ticks: counters.fallback_ticks,
        fault: args.fault.map(|f| f.to_string()),
        first_fallback_after_ms: first_fallback_ns.map(|ns| ns as f64 * 1e-6),
        causes,
        cause_codes,
        final_mode: control.mode().name().to_string(),
        jitter_us: us(&rt.jitter_ns),
        overhead_us: us(&rt.overhead_ns),
        instruction_errors,
        recordings,
    };
    eprintln!(
        "summary: {} ticks ({:.1} Hz), {} successes in {} episodes, inference p50 {:.2} ms p99 {:.2} ms, \
         overruns {}, starved {}, fallback {} ticks{}{}",
        report.ticks,
        report.tick_rate_hz,
        report.successes,
        report.episodes,
        report.inference_ms.p50,
        report.inference_ms.p99,
        report.overruns,
        report.starved_ticks,
        report.fallback_ticks,
        report
            .first_fallback_after_ms
            .map(|ms| format!(", first fallback {ms:.1} ms after the fault"))
            .unwrap_or_default(),
        if report.causes.is_empty() { String::new() } else { format!(", causes {:?}", report.causes) },
    );
    if instruction_errors > 0 {
        eprintln!("warning: {instruction_errors} instruction(s) could not be encoded (unknown words); the previous one stayed in force");
    }
    for file in &report.recordings {
        eprintln!("recording: {file}  (inspect: ganglion replay {file} --check)");
    }
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Attaches the flight recorder for `--record-dir`; returns it and the copy
/// of the tick records the status line reads.
fn attach_recorder(
    control: &mut ControlLoop,
    dir: &std::path::Path,
    profile_path: &std::path::Path,
    bundle: &std::path::Path,
    args: &DemoArgs,
    status_ring: usize,
) -> anyhow::Result<(AttachedRecorder, ganglion::control::TelemetryReader)> {
    let profile = ganglion::profile::Profile::load(profile_path)?;
    let mut cfg = profile.recording.clone();
    cfg.dir = Some(dir.to_path_buf());
    cfg.on_trigger = true;
    // The whole run stays in the window: a bit-exact replay must start at
    // tick 0, and a demo is short enough to keep (frames are bounded by
    // max_window_bytes all the same).
    cfg.pre_trigger_s = cfg.pre_trigger_s.max((args.seconds + 1.0).min(3600.0));
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
            ("fault".into(), args.fault.map(|f| f.to_string()).unwrap_or_default()),
        ],
    };
    let (recorder, copy) = attach(control, &cfg, identity, Some(status_ring))?
        .context("the recorder did not start although --record-dir is set")?;
    let copy = copy.context("the recorder returned no copy of the tick records")?;
    Ok((recorder, copy))
}
