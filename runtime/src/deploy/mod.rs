//! The deployed path (`ganglion run`) as a library: [`Runtime::start`]
//! brings up, from a robot profile, the transport it names (zenoh or ROS 2),
//! the policy, the inference worker, the flight recorder and the real-time
//! control thread; [`Runtime::run_until`] services it (diagnostics, the
//! systemd watchdog) until asked to stop or the run's length is reached;
//! [`Runtime::shutdown`] stops it cleanly and returns its [`RunReport`].
//!
//! Shutdown: the control thread stops, a hold command (fallback mode) at
//! the last commanded position goes out, the command queue drains, final
//! diagnostics are published, the recorder closes its files.
//!
//! Nothing of the HIL rig's fault injection is in this path unless asked
//! for: the policy and the command sink are wrapped ([`crate::faults`]) only
//! when [`RuntimeOptions::inject`] or [`RuntimeOptions::events`] is set.
//!
//! The picture of the threads: docs/ARCHITECTURE.md.

pub mod policy;
mod report;
mod status;
mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion_core::{hold_command, input_slots, Clock, CommandSink, Mode, MonotonicClock, Policy};

pub use self::report::{RealtimeApplied, RecorderSummary, RunReport, TopicReport};
use self::status::{diagnostics, observe_ticks};
use self::watchdog::Watchdog;
use crate::control::{
    spawn_realtime, ControlLoop, LoopProgress, RealtimeOptions, RealtimeStats, TelemetryReader, WorkerExecutor,
};
use crate::faults::RigEvents;
use crate::profile::Profile;
use crate::recorder::attach::{attach, AttachedRecorder, RecordingIdentity};
use crate::recorder::diagnostics::DiagnosticsBuilder;
use crate::rtcheck::{lock_memory, notify::SdNotify, start_hook, ThreadRole};
use crate::stats::us;
use crate::transport::{self, LinkSpec, RunningTransport};
use ganglion_codec::QueueSink as CommandSender;

/// Which policy drives the arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyChoice {
    /// The profile's `[policy] bundle` (or [`RuntimeOptions::bundle`]).
    Bundle,
    /// The simulated arm's scripted expert (needs a `[sim]` section).
    Expert,
    /// A policy server (`ganglion serve`), as `[policy.remote]` names it.
    Remote,
}

impl PolicyChoice {
    /// The name used on the command line and in recordings.
    pub fn name(self) -> &'static str {
        match self {
            PolicyChoice::Bundle => "bundle",
            PolicyChoice::Expert => "expert",
            PolicyChoice::Remote => "remote",
        }
    }
}

/// How to run: everything `ganglion run` takes besides the profile.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Stop after this many seconds (`None`: until [`Runtime::request_stop`]).
    pub seconds: Option<f64>,
    /// `None`: a bundle when one is named (here or in the profile), else
    /// the expert when the profile has `[sim]`.
    pub policy: Option<PolicyChoice>,
    /// Overrides `[policy] bundle` (and implies [`PolicyChoice::Bundle`]).
    pub bundle: Option<PathBuf>,
    /// Refuse to arm when a `[realtime] required` item fails, when the
    /// requested execution provider is unavailable, or when no command
    /// subscriber matched within `[transport] wait_for_subscriber_ms`.
    pub strict: bool,
    /// Overrides `[recording] dir`.
    pub record_dir: Option<PathBuf>,
    /// Policy-side faults for the HIL rig, `KIND@SECONDS[:ARG]`
    /// ([`crate::faults`]); empty in deployment.
    pub inject: Vec<String>,
    /// Write mode changes and inference timings (JSON lines) here at
    /// shutdown (the rig's event log; [`crate::faults::write_events`]).
    pub events: Option<PathBuf>,
    /// Trusted signer key (file or directory of `*.pub`); overrides
    /// `[policy] trusted_keys`.
    pub key: Option<PathBuf>,
}

/// A running deployment. Dropping it without [`shutdown`](Runtime::shutdown)
/// stops the control thread but sends no final hold and writes no report.
pub struct Runtime {
    profile: Profile,
    options: RuntimeOptions,
    policy_name: String,
    transport: RunningTransport,
    final_sink: CommandSender,
    command_subscriber_matched: Option<bool>,
    zenoh_session: Option<ganglion_zenoh::SessionFacts>,
    recorder: Option<AttachedRecorder>,
    telemetry: TelemetryReader,
    diag: DiagnosticsBuilder,
    rig_events: Option<RigEvents>,
    realtime: RealtimeApplied,
    control_applied: crate::rtcheck::AppliedSettings,
    inference_applied: crate::rtcheck::AppliedSettings,
    inference_stages: crate::control::SharedStages,
    progress: Arc<LoopProgress>,
    stop: StopOnDrop,
    handle: std::thread::JoinHandle<(ControlLoop, RealtimeStats)>,
    watchdog: Watchdog,
    started: Instant,
    last_diag: Instant,
}

/// The control thread's stop flag, raised when the [`Runtime`] is dropped
/// (a caller that returns early with `?` must not leave the loop running,
/// detached, driving the arm).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// How often [`Runtime::run_until`] services the run.
const SERVICE_PERIOD: Duration = Duration::from_millis(20);
/// How often diagnostics are published.
const DIAGNOSTICS_PERIOD: Duration = Duration::from_secs(1);

impl Runtime {
    /// Loads the profile at `profile_path` and starts it ([`Runtime::start_with`]).
    pub fn start(profile_path: &Path, options: RuntimeOptions) -> anyhow::Result<Runtime> {
        let profile = Profile::load(profile_path)?;
        Self::start_with(profile, profile_path, options)
    }

    /// Starts the deployed path of `profile` (loaded from `profile_path`,
    /// which relative paths resolve against and recordings name). Returns
    /// once the control thread runs; refuses to arm (an error, nothing left
    /// running) on any failed precondition.
    pub fn start_with(mut profile: Profile, profile_path: &Path, options: RuntimeOptions) -> anyhow::Result<Runtime> {
        // `Profile::load` validated every section; what is left to check
        // is what depends on this machine and these options.
        let at = || profile_path.display().to_string();
        if options.strict {
            let readiness = crate::rtcheck::check(&profile.realtime);
            if !readiness.strict_ok() {
                let failed: Vec<String> =
                    readiness.required_failures().map(|i| format!("{:?}: {}", i.item, i.reason)).collect();
                anyhow::bail!("--strict: refusing to arm, required real-time items failed: {}", failed.join("; "));
            }
        }
        if let Some(s) = options.seconds {
            anyhow::ensure!(s > 0.0 && s.is_finite(), "--seconds must be positive, got {s}");
        }
        if let Some(b) = &options.bundle {
            anyhow::ensure!(
                options.policy.is_none_or(|p| p == PolicyChoice::Bundle),
                "--bundle runs a bundle: it cannot go with --policy expert"
            );
            profile.policy.bundle = Some(b.clone());
        }
        let choice = policy_choice(options.policy, &profile, profile_path)?;
        let (policy, noise_seed) = load_policy(profile_path, &profile, choice, options.key.as_deref(), options.strict)?;
        // The rig's wrappers exist only when asked for.
        let rig = !options.inject.is_empty() || options.events.is_some();
        let (policy, rig_events) = if rig {
            let (p, events) = crate::faults::wrap_policy(policy, &options.inject)?;
            (p, Some(events))
        } else {
            (policy, None)
        };
        let policy_name = policy.spec().name.clone();

        let clock = MonotonicClock::new();
        let joint_names: Vec<String> = profile.robot.joints.iter().map(|j| j.name.clone()).collect();
        let cams: Vec<(String, u32, u32)> =
            profile.robot.cameras.iter().map(|c| (c.name.clone(), c.width, c.height)).collect();
        let (writers, readers) = input_slots(joint_names.len(), &cams);
        let spec = LinkSpec {
            robot: profile.robot.name.clone(),
            joint_names: joint_names.clone(),
            period_ns: profile.period_ns(),
            max_width: cams.iter().map(|c| c.1).max().unwrap_or(1),
            max_height: cams.iter().map(|c| c.2).max().unwrap_or(1),
            base_dir: profile_path.parent().map(Path::to_path_buf),
            cameras: cams.clone(),
        };
        // TLS asked for by the zenoh config but impossible for this session:
        // refuse before anything listens or connects (checked again once open).
        if profile.transport.kind == transport::TransportKind::Zenoh {
            let z = profile.transport.zenoh_config(&spec.robot, spec.base_dir.as_deref()).with_context(at)?;
            let facts = z.facts().with_context(|| format!("{}: the zenoh config", at()))?;
            if let Some(why) = facts.tls_missing() {
                anyhow::bail!("{}: refusing to arm: {why}", at());
            }
        }
        let (sink, running) = transport::start(&profile.transport, &spec, writers, Arc::new(clock))
            .with_context(|| format!("starting the transport of {}", at()))?;
        let final_sink = sink.clone_sender();
        let refuse = |sink: CommandSender, final_sink: CommandSender, running: RunningTransport, msg: String| {
            drop(sink);
            drop(final_sink);
            running.shutdown();
            Err(anyhow::anyhow!(msg))
        };
        let command_subscriber_matched =
            (profile.transport.wait_for_subscriber_ms > 0).then(|| running.command_matched_at_start());
        if command_subscriber_matched == Some(false) {
            let msg = no_subscriber_message(&profile, &running);
            if options.strict {
                return refuse(sink, final_sink, running, format!("--strict: refusing to arm: {msg}"));
            }
            tracing::warn!("{msg}");
        }
        let zenoh_session = running.zenoh_facts().cloned();
        if let Some(facts) = &zenoh_session {
            for line in facts.lines() {
                tracing::info!("zenoh session: {line}");
            }
            if !facts.non_loopback_listeners.is_empty() {
                tracing::warn!(
                    "zenoh: listening on non-loopback address(es) {}: reachable from other machines",
                    facts.non_loopback_listeners.join(", ")
                );
            }
            if let Some(why) = facts.tls_missing() {
                return refuse(sink, final_sink, running, format!("{}: refusing to arm: {why}", at()));
            }
        }

        // Before the real-time threads exist, so their stacks and pools are locked too.
        let mlockall = lock_memory(&profile.realtime);
        if !mlockall.ok() {
            tracing::warn!("mlockall {mlockall}: pages of this process may be swapped or faulted in during a tick");
        }
        let (inference_hook, inference_applied) = start_hook(&profile.realtime, ThreadRole::Inference);
        let inference = WorkerExecutor::spawn_with(policy, Arc::new(clock), Some(inference_hook))
            .context("starting the inference worker")?;
        let inference_stages = inference.stages();
        let cfg = profile.loop_config();
        let sink: Box<dyn CommandSink> = match &rig_events {
            Some(events) => Box::new(crate::faults::EventSink::new(sink, events.modes.clone())),
            None => Box::new(sink),
        };
        let mut control = ControlLoop::new(&cfg, readers, Box::new(inference), sink)?;
        if let Some(causes) = running.device_causes() {
            control.attach_device_causes(causes);
        }

        let mut recording_cfg = profile.recording.clone();
        if let Some(dir) = &options.record_dir {
            recording_cfg.dir = Some(dir.clone());
        }
        let bundle = match choice {
            PolicyChoice::Bundle => profile.policy.bundle.as_ref().map(|b| b.display().to_string()).unwrap_or_default(),
            PolicyChoice::Expert => String::new(),
            PolicyChoice::Remote => {
                profile.policy.remote.as_ref().map(|r| crate::remote::infer_key(&r.prefix, &r.name)).unwrap_or_default()
            }
        };
        let identity = RecordingIdentity {
            joint_names,
            cameras: cams.iter().map(|c| c.0.clone()).collect(),
            profile_toml: std::fs::read_to_string(profile_path)
                .with_context(|| format!("reading {} for the recording metadata", at()))?,
            profile_path: at(),
            extra: vec![
                ("command".into(), "ganglion run".into()),
                ("policy_choice".into(), choice.name().into()),
                ("bundle".into(), bundle),
                ("noise_seed".into(), noise_seed.map(|s| s.to_string()).unwrap_or_default()),
            ],
        };
        // Diagnostics read the tick records too: through the recorder's copy
        // when recording (a ring has one reader), else straight from the loop.
        let diag_ring = (2.0 * profile.control.rate_hz) as usize + 64;
        let (recorder, telemetry) = match attach(&mut control, &recording_cfg, identity, Some(diag_ring))
            .with_context(|| format!("starting the flight recorder of {}", at()))?
        {
            Some((r, Some(copy))) => (Some(r), copy),
            Some((r, None)) => (Some(r), control.attach_telemetry(diag_ring)),
            None => (None, control.attach_telemetry(diag_ring)),
        };
        let diag = DiagnosticsBuilder::new(&profile.robot.name);

        let rate_hz = profile.control.rate_hz;
        let max_ticks = options.seconds.map(|s| (s * rate_hz).ceil() as u64);
        let warmup = (rate_hz.ceil() as u64).min(max_ticks.unwrap_or(u64::MAX) / 2);
        let (control_hook, control_applied) = start_hook(&profile.realtime, ThreadRole::Control);
        let progress = Arc::new(LoopProgress::default());
        let opts = RealtimeOptions {
            max_ticks,
            warmup_ticks: warmup,
            on_start: Some(control_hook),
            progress: Some(progress.clone()),
            ..Default::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let handle = spawn_realtime(control, clock, opts, stop.clone()).context("starting the control thread")?;
        let watchdog = Watchdog::from_env();
        watchdog.send("READY", SdNotify::ready);
        let now = Instant::now();
        Ok(Runtime {
            profile,
            options,
            policy_name,
            transport: running,
            final_sink,
            command_subscriber_matched,
            zenoh_session,
            recorder,
            telemetry,
            diag,
            rig_events,
            realtime: RealtimeApplied { mlockall, control: None, inference: None },
            control_applied,
            inference_applied,
            inference_stages,
            progress,
            stop: StopOnDrop(stop),
            handle,
            watchdog,
            started: now,
            last_diag: now,
        })
    }

    /// Asks the control thread to stop after its current tick.
    pub fn request_stop(&self) {
        self.stop.0.store(true, Ordering::Release);
    }

    /// Whether the control thread has stopped (its run length reached, a
    /// stop requested, or a panic).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// The loop's live tick count and mode (shared: it outlives the runtime).
    pub fn progress(&self) -> Arc<LoopProgress> {
        self.progress.clone()
    }

    /// The transport's zenoh session, when the transport is zenoh.
    pub fn zenoh_session(&self) -> Option<&ganglion_zenoh::SessionFacts> {
        self.zenoh_session.as_ref()
    }

    /// One round of housekeeping off the real-time path: feeds the systemd
    /// watchdog, folds tick records into the diagnostics and publishes them
    /// once a second.
    pub fn service(&mut self) {
        self.watchdog.poll(&self.progress);
        observe_ticks(&self.telemetry, &mut self.diag);
        if self.last_diag.elapsed() >= DIAGNOSTICS_PERIOD {
            let d = diagnostics(&mut self.diag, &self.transport, self.recorder.as_ref().map(|r| &**r.stats()));
            if let Err(e) = self.transport.publish_diagnostics(&d) {
                tracing::warn!(error = %e, "publishing diagnostics failed");
            }
            let (mode, ticks) = (self.progress.mode().name(), self.progress.ticks());
            self.watchdog.send("STATUS", |n| n.status(&format!("mode {mode}, {ticks} ticks")));
            self.last_diag = Instant::now();
        }
    }

    /// Services the run until the control thread stops; `interrupted` is
    /// polled every 20 ms and, once true, stops the loop (a signal handler's
    /// flag, a test's deadline).
    pub fn run_until(&mut self, interrupted: impl Fn() -> bool) {
        while !self.is_finished() {
            if interrupted() && !self.stop.0.load(Ordering::Acquire) {
                tracing::info!("stop requested");
                self.request_stop();
            }
            self.service();
            std::thread::sleep(SERVICE_PERIOD);
        }
    }

    /// Stops the run (if it still runs) and returns its report: the
    /// control thread stops, a hold at the last commanded position goes
    /// out in fallback mode, the final diagnostics are published, the
    /// recorder closes its files and the transport shuts down.
    pub fn shutdown(self) -> anyhow::Result<RunReport> {
        let Runtime {
            profile,
            options,
            policy_name,
            transport: mut running,
            mut final_sink,
            command_subscriber_matched,
            zenoh_session,
            recorder,
            telemetry,
            mut diag,
            rig_events,
            mut realtime,
            control_applied,
            inference_applied,
            inference_stages,
            progress: _,
            stop,
            handle,
            watchdog,
            started,
            last_diag: _,
        } = self;
        stop.0.store(true, Ordering::Release);
        watchdog.send("STOPPING", SdNotify::stopping);
        let (control, stats) = handle.join().map_err(|_| anyhow::anyhow!("control thread panicked"))?;
        let seconds = started.elapsed().as_secs_f64();
        let recorder_stats = recorder.as_ref().map(|r| r.stats().clone());
        let recorder = recorder.map(|r| {
            let (dir, stats) = (r.dir().display().to_string(), r.stats().clone());
            let rep = r.stop();
            let paths = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
            RecorderSummary {
                dir,
                trigger_files: paths(&rep.trigger_files),
                segments: paths(&rep.segments),
                triggers: stats.triggers.load(Ordering::Relaxed),
                triggers_unrecorded: stats.triggers_unrecorded.load(Ordering::Relaxed),
                write_errors: rep.write_errors,
                disk_full: rep.disk_full,
                dropped_by_loop: stats.source_dropped.load(Ordering::Relaxed),
            }
        });

        // Clean shutdown: hold the last commanded position in fallback mode.
        let last = *control.last_command();
        let hold = hold_command(last.seq + 1, MonotonicClock::new().now(), Mode::Fallback, last.position);
        if final_sink.send(&hold).is_err() {
            tracing::warn!("the final hold command could not be queued");
        }
        let final_mode = control.mode().name().to_string();
        let causes = control.cause_counts().ticks_by_name();
        drop(control);
        drop(final_sink);
        observe_ticks(&telemetry, &mut diag);
        let d = diagnostics(&mut diag, &running, recorder_stats.as_deref());
        let _ = running.publish_diagnostics(&d);
        // Let the publisher drain the queue before reading the counters.
        std::thread::sleep(Duration::from_millis(100));
        let topics = running
            .topics()
            .into_iter()
            .map(|(n, s)| (n, TopicReport { received: s.received, dropped: s.dropped, decode_errors: s.decode_errors }))
            .collect();
        let (commands_published, commands_dropped) = (running.commands_published(), running.commands_dropped());
        let qos_incompatible = running.qos_mismatches();
        // The camera threads first (the loop no longer reads their slots),
        // then the bus with its final hold and torque off.
        let cameras = running.stop_cameras();
        let servo = running.shutdown_with_report();
        realtime.control = control_applied.get().copied();
        realtime.inference = inference_applied.get().copied();

        if let (Some(path), Some(events)) = (&options.events, &rig_events) {
            crate::faults::write_events(path, &events.modes, &events.infers)?;
        }
        let inference_us = inference_stages.lock().map(|s| s.summary_us().into_iter().collect()).unwrap_or_default();
        Ok(RunReport {
            inference_us,
            ticks: stats.measured_ticks,
            warmup_ticks: stats.ticks - stats.measured_ticks,
            total_ticks: stats.ticks,
            rate_hz: profile.control.rate_hz,
            seconds,
            overhead_us: us(&stats.overhead_ns),
            jitter_us: us(&stats.jitter_ns),
            allocations_per_tick: crate::control::alloc_count::is_installed()
                .then(|| stats.allocations as f64 / stats.measured_ticks.max(1) as f64),
            overruns: stats.overruns,
            fallback_ticks: stats.fallback_ticks,
            total_fallback_ticks: stats.counters.fallback_ticks,
            skipped_periods: stats.skipped_periods,
            policy: policy_name,
            inference_requests: stats.counters.requests,
            chunks_accepted: stats.counters.chunks_accepted,
            starved_ticks: stats.counters.starved_ticks,
            build_profile: crate::report::BUILD_PROFILE,
            transport: format!("{:?}", profile.transport.kind).to_lowercase(),
            zenoh_session,
            topics,
            commands_published,
            commands_dropped,
            command_subscriber_matched,
            qos_incompatible,
            final_mode,
            causes,
            realtime,
            recorder,
            servo,
            cameras,
        })
    }
}

/// The policy to run: as asked, else a bundle when one is named, else the
/// expert when the profile has `[sim]`, else an error that names both ways
/// to supply a bundle.
fn policy_choice(asked: Option<PolicyChoice>, profile: &Profile, path: &Path) -> anyhow::Result<PolicyChoice> {
    if let Some(p) = asked {
        return Ok(p);
    }
    // A split names the bundle too (its dynamics and head run here).
    if profile.policy.remote.as_ref().is_some_and(|r| r.split) {
        return Ok(PolicyChoice::Remote);
    }
    if profile.policy.bundle.is_some() {
        return Ok(PolicyChoice::Bundle);
    }
    if profile.policy.remote.is_some() {
        return Ok(PolicyChoice::Remote);
    }
    anyhow::ensure!(
        profile.sim.is_some(),
        "no policy to run: {} sets no [policy] bundle (and has no [sim] section for --policy expert): set \
         [policy] bundle in the profile or pass --bundle DIR",
        path.display()
    );
    Ok(PolicyChoice::Expert)
}

fn load_policy(
    profile_path: &Path,
    profile: &Profile,
    choice: PolicyChoice,
    key: Option<&Path>,
    strict: bool,
) -> anyhow::Result<(Box<dyn Policy>, Option<u64>)> {
    match choice {
        PolicyChoice::Expert => {
            let sim = profile.sim.clone().with_context(|| {
                format!(
                    "--policy expert needs a [sim] section in {}; to run a policy bundle, set [policy] bundle there \
                     or pass --bundle DIR",
                    profile_path.display()
                )
            })?;
            // The expert plans a 16-step chunk at 50 Hz.
            let step_ns = 20_000_000;
            Ok((
                Box::new(ganglion_sim::ExpertPolicy::new(&sim, 16, step_ns).context("building the expert policy")?),
                None,
            ))
        }
        PolicyChoice::Bundle => {
            let bundle = profile.policy.bundle.clone().with_context(|| {
                format!("no policy bundle: set [policy] bundle in {} or pass --bundle DIR", profile_path.display())
            })?;
            let trusted_keys = policy::trusted_keys(profile_path, &profile.policy, key)?;
            let opts = ganglion_policies::LoadOptions {
                allow_unsigned: profile.policy.allow_unsigned,
                trusted_keys,
                joint_ranges: arm_joint_ranges(profile_path, profile),
                ..ganglion_policies::LoadOptions::default()
            };
            // [policy] backend / execution_provider (and the CPU fallback) live in `policy`.
            let mut bundle = policy::load_bundle(&bundle, &profile.policy, opts, strict)?;
            let seed = policy::seed_noise(&mut bundle, profile.policy.noise_seed);
            Ok((Box::new(bundle), Some(seed)))
        }
        PolicyChoice::Remote => {
            let r = profile.policy.remote.as_ref().with_context(|| {
                format!("--policy remote needs a [policy.remote] section in {}", profile_path.display())
            })?;
            let remote = crate::remote::RemotePolicy::connect(
                &r.zenoh_config(),
                &r.prefix,
                &r.name,
                &profile.robot.name,
                std::time::Duration::from_millis(r.timeout_ms),
                std::time::Duration::from_millis(r.connect_wait_ms),
            )
            .with_context(|| format!("{}: [policy.remote]", profile_path.display()))?
            .with_jpeg((r.frames == crate::profile::RemoteFrames::Jpeg).then_some(r.jpeg_quality))
            .with_joint_ranges(arm_joint_ranges(profile_path, profile));
            if !r.split {
                // The server's noise seed, from its spec reply: the
                // recording keeps it, so a replay re-creates its chunks.
                let seed = remote.noise_seed();
                return Ok((Box::new(remote), seed));
            }
            let bundle = profile.policy.bundle.clone().with_context(|| {
                format!(
                    "{}: [policy.remote] split = true runs the bundle's dynamics and action head here: set [policy] \
                     bundle to this robot's copy of the served bundle",
                    profile_path.display()
                )
            })?;
            let opts = ganglion_policies::LoadOptions {
                allow_unsigned: profile.policy.allow_unsigned,
                trusted_keys: policy::trusted_keys(profile_path, &profile.policy, key)?,
                joint_ranges: arm_joint_ranges(profile_path, profile),
                ..ganglion_policies::LoadOptions::default()
            };
            let tail = ganglion_policies::load_tail(&bundle, &opts)
                .with_context(|| format!("{}: [policy] bundle {}", profile_path.display(), bundle.display()))?;
            let split = ganglion_policies::SplitPolicy::new(Box::new(remote), tail, Arc::new(MonotonicClock::new()))
                .with_context(|| format!("{}: [policy.remote] split", profile_path.display()))?;
            Ok((Box::new(split), None))
        }
    }
}

/// The arm's calibrated joint ranges, which a bundle in LeRobot's range
/// units needs: from the servo transport's calibration file (the driver
/// that defines this robot's radians from it); none for other transports.
/// A calibration that does not load gives none here (the transport's
/// start reports it in full); such a bundle is then refused, naming
/// `joints.units`.
pub fn arm_joint_ranges(profile_path: &Path, profile: &Profile) -> Vec<ganglion_policies::preprocess::JointRange> {
    if profile.transport.kind != crate::transport::TransportKind::Servo {
        return Vec::new();
    }
    let names: Vec<String> = profile.robot.joints.iter().map(|j| j.name.clone()).collect();
    match crate::transport::servo::joint_ranges(&profile.transport.servo, &names, profile_path.parent()) {
        Ok(ranges) => ranges,
        Err(e) => {
            tracing::warn!(error = %e, "the arm's calibration did not load: no joint ranges for the policy");
            Vec::new()
        }
    }
}

/// The start-up wait for a command subscriber came back empty: a warning,
/// or with `strict` an error. Names the wait, the topic and any subscribers
/// there whose QoS could not match.
fn no_subscriber_message(profile: &Profile, running: &RunningTransport) -> String {
    let topic = running.command_topic();
    let mismatched: Vec<String> = running
        .qos_mismatches()
        .into_iter()
        .filter(|m| m.topic == topic)
        .map(|m| format!("{} (wants {{{}}}, incompatible {})", m.peer, m.peer_qos, m.policy))
        .collect();
    let mut msg = format!(
        "no command subscriber matched {topic} within [transport] wait_for_subscriber_ms = {} ms: commands go \
         nowhere until one does",
        profile.transport.wait_for_subscriber_ms
    );
    if !mismatched.is_empty() {
        msg.push_str(&format!("; subscribers with incompatible QoS there: {}", mismatched.join(", ")));
    }
    msg
}
