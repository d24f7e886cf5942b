//! `ganglion run`: the deployed main job.
//!
//! Reads the robot profile, starts the transport it names (zenoh or ROS 2),
//! the policy (the profile's bundle, or the simulated arm's scripted expert
//! with `--policy expert`), the inference worker and the real-time control
//! thread; runs until SIGINT/SIGTERM or `--seconds`. Shutdown: the control
//! thread stops, a hold command (fallback mode) at the last commanded
//! position goes out, the command queue is drained, final diagnostics are
//! published.
//!
//! Report (`--report FILE`, also printed): the `ganglion bench loop` fields
//! (`ticks`, `rate_hz`, `seconds`, `overhead_us`, `jitter_us`,
//! `allocations_per_tick`, `overruns`, `fallback_ticks`, `skipped_periods`,
//! `policy`, `inference_requests`, `chunks_accepted`, `starved_ticks`,
//! `build_profile`) plus `transport`, `topics` {name: {received, dropped,
//! decode_errors}}, `commands_published`, `commands_dropped`,
//! `command_subscriber_matched`, `qos_incompatible` (ROS 2 peers whose QoS
//! can never match), `final_mode`.
//! `ticks`, the latency histograms, `allocations_per_tick`, `overruns` and
//! `fallback_ticks` leave out the first `warmup_ticks` (one second of
//! ticks, at most half the run); `total_ticks` and `total_fallback_ticks`
//! count the whole run, as do `inference_requests`, `chunks_accepted` and
//! `starved_ticks`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion_codec::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use ganglion_core::{hold_command, input_slots, CommandSink, MonotonicClock, Policy};

use ganglion::control::{spawn_realtime, ControlLoop, InjectedDelay, LoopProgress, RealtimeOptions, WorkerExecutor};
use ganglion::profile::Profile;
use ganglion::recorder::attach::{attach, RecordingIdentity};
use ganglion::recorder::diagnostics::DiagnosticsBuilder;
use ganglion::recorder::loop_source::tick_row;
use ganglion::rtcheck::{lock_memory, notify::SdNotify, start_hook, ThreadRole};
use ganglion::transport::{self, LinkSpec, RunningTransport};

/// Arguments of `ganglion run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Robot profile (TOML).
    #[arg(long)]
    pub config: std::path::PathBuf,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// `bundle` (the profile's `[policy] bundle`, or `--bundle`) or
    /// `expert` (the simulated arm's scripted expert; needs `[sim]`).
    /// Default: bundle when the profile or `--bundle` names one, else
    /// expert.
    #[arg(long)]
    pub policy: Option<String>,
    /// Policy bundle directory; overrides `[policy] bundle` (and implies
    /// `--policy bundle`).
    #[arg(long)]
    pub bundle: Option<std::path::PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Refuse to arm when an item listed in `[realtime] required` fails
    /// (`ganglion check --profile P` shows the same report), when
    /// `[policy] execution_provider` (cuda, tensorrt) is unavailable instead
    /// of falling back to ONNX Runtime on CPU (see `cli/run_backend.rs`),
    /// or when no command subscriber matched within `[transport]
    /// wait_for_subscriber_ms` (without `--strict`: a warning).
    #[arg(long)]
    pub strict: bool,
    /// Write flight recordings (MCAP) here: a file per supervisor trigger,
    /// or continuous segments (`[recording]` of the profile says which and
    /// how much). Overrides `[recording] dir`.
    #[arg(long)]
    pub record_dir: Option<std::path::PathBuf>,
    /// Policy-side faults for the HIL rig, `KIND@SECONDS[:ARG]`, seconds
    /// after the first inference (repeatable; kinds in `cli/inject.rs`).
    #[arg(long = "inject")]
    pub inject: Vec<String>,
    /// Write mode changes and inference timings (JSON lines) here. Every
    /// stamp is ns on CLOCK_MONOTONIC (the loop clock): a mode change is
    /// stamped with its tick's scheduled start, an inference with the
    /// observation's capture stamp (the joint state's, mapped to this clock
    /// by the driver) and its start and end.
    #[arg(long)]
    pub events: Option<std::path::PathBuf>,
    /// Trusted public key of the bundle's signer (ed25519; a file as
    /// `ganglion policy keygen` writes, or a directory of `*.pub` files).
    /// Overrides `[policy] trusted_keys`. Without either a bundle loads only
    /// unsigned and only if `[policy] allow_unsigned` is set.
    #[arg(long)]
    pub key: Option<std::path::PathBuf>,
}

use ganglion::stats::{us, Percentiles};

#[derive(serde::Serialize)]
struct TopicReport {
    received: u64,
    dropped: u64,
    decode_errors: u64,
}

/// A peer whose QoS can never match Ganglion's (ROS 2; `ganglion_ros2::QosMismatch`).
#[derive(serde::Serialize)]
struct QosMismatchReport {
    topic: String,
    ganglion_side: &'static str,
    policy: String,
    peer: String,
    ganglion_qos: String,
    peer_qos: String,
}

#[derive(serde::Serialize)]
struct RunReport {
    /// Ticks after the warm-up.
    ticks: u64,
    /// Ticks left out of `ticks`, the histograms, `overruns` and `fallback_ticks`.
    warmup_ticks: u64,
    /// Every tick, warm-up included.
    total_ticks: u64,
    rate_hz: f64,
    seconds: f64,
    overhead_us: Percentiles,
    jitter_us: Percentiles,
    allocations_per_tick: Option<f64>,
    overruns: u64,
    fallback_ticks: u64,
    /// Ticks in fallback or safe stop, warm-up included.
    total_fallback_ticks: u64,
    skipped_periods: u64,
    policy: String,
    inference_requests: u64,
    chunks_accepted: u64,
    starved_ticks: u64,
    build_profile: &'static str,
    transport: String,
    /// The zenoh session as opened (mode, listeners, TLS, connections).
    zenoh_session: Option<ganglion_zenoh::SessionFacts>,
    topics: BTreeMap<String, TopicReport>,
    commands_published: u64,
    commands_dropped: u64,
    /// Whether a command subscriber matched within `wait_for_subscriber_ms`
    /// (absent when that is 0).
    command_subscriber_matched: Option<bool>,
    /// ROS 2: peer endpoints that can never match (incompatible QoS).
    qos_incompatible: Vec<QosMismatchReport>,
    final_mode: String,
    realtime: RealtimeApplied,
    recorder: Option<RecorderSummary>,
}

/// What the real-time settings achieved (`[realtime]`; nothing is fatal
/// here: `--strict` refuses to arm beforehand when a required item fails).
#[derive(serde::Serialize)]
struct RealtimeApplied {
    mlockall: ganglion::rtcheck::Outcome,
    control: Option<ganglion::rtcheck::ThreadSettings>,
    inference: Option<ganglion::rtcheck::ThreadSettings>,
}

/// What the flight recorder left behind.
#[derive(serde::Serialize)]
struct RecorderSummary {
    dir: String,
    trigger_files: Vec<String>,
    segments: Vec<String>,
    triggers: u64,
    triggers_unrecorded: u64,
    write_errors: u64,
    disk_full: bool,
    dropped_by_loop: u64,
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe: one atomic store.
    SIGNALLED.store(true, Ordering::Release);
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

fn load_policy(
    profile_path: &std::path::Path,
    profile: &Profile,
    choice: &str,
    key: Option<&std::path::Path>,
    strict: bool,
) -> anyhow::Result<Box<dyn Policy>> {
    match choice {
        "expert" => {
            let sim = profile.sim.clone().with_context(|| {
                format!(
                    "--policy expert needs a [sim] section in {}; to run a policy bundle, set [policy] bundle there \
                     or pass --bundle DIR",
                    profile_path.display()
                )
            })?;
            let step_ns = 20_000_000;
            Ok(Box::new(ganglion_sim::ExpertPolicy::new(&sim, 16, step_ns).context("building the expert policy")?))
        }
        "bundle" => {
            let bundle = profile.policy.bundle.clone().with_context(|| {
                format!("no policy bundle: set [policy] bundle in {} or pass --bundle DIR", profile_path.display())
            })?;
            let trusted_keys = ganglion::deploy::policy::trusted_keys(profile_path, &profile.policy, key)?;
            let opts = ganglion_policies::LoadOptions {
                allow_unsigned: profile.policy.allow_unsigned,
                trusted_keys,
                ..ganglion_policies::LoadOptions::default()
            };
            // [policy] backend / execution_provider (and the CPU fallback) live in run_backend.
            Ok(Box::new(ganglion::deploy::policy::load_bundle(&bundle, &profile.policy, opts, strict)?))
        }
        other => anyhow::bail!("--policy: expected bundle or expert, got {other:?}"),
    }
}

/// `--policy` as given, else bundle when one is named (`--bundle` or
/// `[policy] bundle`), else expert when the profile has `[sim]`, else an
/// error that names both ways to supply a bundle.
fn policy_choice(args: &RunArgs, profile: &Profile) -> anyhow::Result<String> {
    if let Some(p) = &args.policy {
        return Ok(p.clone());
    }
    if profile.policy.bundle.is_some() {
        return Ok("bundle".into());
    }
    anyhow::ensure!(
        profile.sim.is_some(),
        "no policy to run: {} sets no [policy] bundle (and has no [sim] section for --policy expert): set \
         [policy] bundle in the profile or pass --bundle DIR",
        args.config.display()
    );
    Ok("expert".into())
}

/// The start-up wait for a command subscriber came back empty: a warning,
/// or with `--strict` an error. Names the wait, the topic and any
/// subscribers there whose QoS could not match.
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

/// Pings the systemd watchdog from the loop's health, not from a timer:
/// only while the control thread keeps ticking and has not latched SafeStop.
struct Watchdog {
    notify: Option<SdNotify>,
    interval: Option<Duration>,
    last_ping: Instant,
    last_ticks: u64,
}

impl Watchdog {
    fn from_env() -> Watchdog {
        let notify = SdNotify::from_env().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable: no sd_notify");
            None
        });
        let interval = ganglion::rtcheck::notify::watchdog_interval().map(|d| d / 2);
        Watchdog { notify, interval, last_ping: Instant::now(), last_ticks: 0 }
    }

    fn send(&self, what: &str, f: impl FnOnce(&SdNotify) -> Result<(), ganglion::rtcheck::notify::NotifyError>) {
        if let Some(n) = &self.notify {
            if let Err(e) = f(n) {
                tracing::warn!(error = %e, "sd_notify {what} failed");
            }
        }
    }

    fn poll(&mut self, progress: &LoopProgress) {
        let Some(interval) = self.interval else { return };
        if self.last_ping.elapsed() < interval {
            return;
        }
        let ticks = progress.ticks();
        if ticks > self.last_ticks && progress.mode() != ganglion_core::Mode::SafeStop {
            self.send("WATCHDOG", SdNotify::watchdog);
            self.last_ping = Instant::now();
        }
        self.last_ticks = ticks;
    }
}

/// The loop's diagnostics (mode, causes, rates, stage latencies, recorder;
/// `recorder::diagnostics`) plus a `ganglion: transport` status: per-topic
/// received / dropped / decode errors and commands published / dropped, so
/// nothing the transport drops goes uncounted.
fn diagnostics(
    builder: &mut DiagnosticsBuilder,
    transport: &RunningTransport,
    recorder: Option<&ganglion::recorder::RecorderStats>,
) -> DiagnosticArray {
    let mut array = builder.build(None, recorder);
    let mut values = vec![
        KeyValue { key: "commands_published".into(), value: transport.commands_published().to_string() },
        KeyValue { key: "commands_dropped".into(), value: transport.commands_dropped().to_string() },
    ];
    let mut lost = transport.commands_dropped();
    for (name, s) in transport.topics() {
        values.push(KeyValue { key: format!("{name}.received"), value: s.received.to_string() });
        values.push(KeyValue { key: format!("{name}.dropped"), value: s.dropped.to_string() });
        values.push(KeyValue { key: format!("{name}.decode_errors"), value: s.decode_errors.to_string() });
        lost += s.dropped + s.decode_errors;
    }
    // Peers that can never match are not drops, and must not read as "no drops".
    let mismatches = transport.qos_mismatches();
    values.push(KeyValue { key: "qos_incompatible".into(), value: mismatches.len().to_string() });
    for m in &mismatches {
        values.push(KeyValue {
            key: format!("qos_incompatible.{}", m.topic),
            value: format!(
                "{} {{{}}} vs peer {} {{{}}}: {}",
                m.ganglion_side, m.ganglion_qos, m.peer, m.peer_qos, m.policy
            ),
        });
    }
    let mut message = if lost == 0 { "no drops".to_string() } else { format!("{lost} messages dropped or malformed") };
    if !mismatches.is_empty() {
        message.push_str(&format!("; {} peer(s) with incompatible QoS never match", mismatches.len()));
    }
    // ROS 2: commands published with nobody subscribed are not "no drops" either.
    let unheard = transport.command_subscribers() == Some(0);
    if let Some(n) = transport.command_subscribers() {
        values.push(KeyValue { key: "command_subscribers".into(), value: n.to_string() });
    }
    if unheard {
        message.push_str("; no command subscriber");
    }
    array.status.push(DiagnosticStatus {
        level: if lost == 0 && mismatches.is_empty() && !unheard {
            DiagnosticStatus::OK
        } else {
            DiagnosticStatus::WARN
        },
        name: "ganglion: transport".into(),
        message,
        hardware_id: array.status.first().map(|s| s.hardware_id.clone()).unwrap_or_default(),
        values,
    });
    array
}

/// Drains the tick records into the diagnostics builder (off the RT path).
fn observe_ticks(telemetry: &ganglion::control::TelemetryReader, builder: &mut DiagnosticsBuilder) {
    telemetry.drain(|rec| builder.observe(&tick_row(rec)));
}

/// Runs `ganglion run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let profile = Profile::load(&args.config)?;
    profile.transport.validate().with_context(|| format!("{}", args.config.display()))?;
    profile.realtime.validate().with_context(|| format!("{}", args.config.display()))?;
    if args.strict {
        let readiness = ganglion::rtcheck::check(&profile.realtime);
        if !readiness.strict_ok() {
            let failed: Vec<String> =
                readiness.required_failures().map(|i| format!("{:?}: {}", i.item, i.reason)).collect();
            anyhow::bail!("--strict: refusing to arm, required real-time items failed: {}", failed.join("; "));
        }
    }
    if let Some(s) = args.seconds {
        anyhow::ensure!(s > 0.0 && s.is_finite(), "--seconds must be positive, got {s}");
    }
    let mut profile = profile;
    if let Some(b) = &args.bundle {
        anyhow::ensure!(
            args.policy.as_deref().is_none_or(|p| p == "bundle"),
            "--bundle runs a bundle: it cannot go with --policy {}",
            args.policy.as_deref().unwrap_or_default()
        );
        profile.policy.bundle = Some(b.clone());
    }
    let profile = profile;
    let choice = policy_choice(&args, &profile)?;
    let policy = load_policy(&args.config, &profile, &choice, args.key.as_deref(), args.strict)?;
    let (policy, rig_events) = ganglion::faults::wrap_policy(policy, &args.inject)?;
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
        base_dir: args.config.parent().map(|p| p.to_path_buf()),
    };
    // TLS asked for by the zenoh config but impossible for this session:
    // refuse before anything listens or connects (checked again once open).
    if profile.transport.kind == transport::TransportKind::Zenoh {
        let z = profile
            .transport
            .zenoh_config(&spec.robot, spec.base_dir.as_deref())
            .with_context(|| format!("{}", args.config.display()))?;
        let facts = z.facts().with_context(|| format!("{}: the zenoh config", args.config.display()))?;
        if let Some(why) = facts.tls_missing() {
            anyhow::bail!("{}: refusing to arm: {why}", args.config.display());
        }
    }
    let (sink, mut running) = transport::start(&profile.transport, &spec, writers, Arc::new(clock))
        .with_context(|| format!("starting the transport of {}", args.config.display()))?;
    let mut final_sink = sink.clone_sender();
    let command_subscriber_matched =
        (profile.transport.wait_for_subscriber_ms > 0).then(|| running.command_matched_at_start());
    if command_subscriber_matched == Some(false) {
        let msg = no_subscriber_message(&profile, &running);
        if args.strict {
            drop(sink);
            drop(final_sink);
            running.shutdown();
            anyhow::bail!("--strict: refusing to arm: {msg}");
        }
        tracing::warn!("{msg}");
    }
    let zenoh_session = running.zenoh_facts().cloned();
    if let Some(facts) = &zenoh_session {
        for line in facts.lines() {
            tracing::info!("zenoh session: {line}");
        }
        if !facts.non_loopback_listeners.is_empty() {
            let msg = format!(
                "zenoh: listening on non-loopback address(es) {}: reachable from other machines",
                facts.non_loopback_listeners.join(", ")
            );
            tracing::warn!("{msg}");
            eprintln!("ganglion run: {msg}");
        }
        if let Some(why) = facts.tls_missing() {
            drop(sink);
            drop(final_sink);
            running.shutdown();
            anyhow::bail!("{}: refusing to arm: {why}", args.config.display());
        }
    }

    // Before the real-time threads exist, so their stacks and pools are locked too.
    let mlockall = lock_memory(&profile.realtime);
    if !mlockall.ok() {
        tracing::warn!("mlockall {mlockall}: pages of this process may be swapped or faulted in during a tick");
    }
    let (inference_hook, inference_applied) = start_hook(&profile.realtime, ThreadRole::Inference);
    let inference = WorkerExecutor::spawn_with(policy, Arc::new(clock), InjectedDelay::new(), Some(inference_hook))
        .context("starting the inference worker")?;
    let cfg = profile.loop_config();
    let sink = ganglion::faults::EventSink::new(sink, rig_events.modes.clone());
    let mut control = ControlLoop::new(&cfg, readers, Box::new(inference), Box::new(sink))?;

    let mut recording_cfg = profile.recording.clone();
    if let Some(dir) = &args.record_dir {
        recording_cfg.dir = Some(dir.clone());
    }
    let identity = RecordingIdentity {
        joint_names: joint_names.clone(),
        cameras: cams.iter().map(|c| c.0.clone()).collect(),
        profile_toml: std::fs::read_to_string(&args.config)
            .with_context(|| format!("reading {} for the recording metadata", args.config.display()))?,
        profile_path: args.config.display().to_string(),
        extra: vec![
            ("command".into(), "ganglion run".into()),
            ("policy_choice".into(), choice.clone()),
            (
                "bundle".into(),
                profile
                    .policy
                    .bundle
                    .as_ref()
                    .filter(|_| choice == "bundle")
                    .map(|b| b.display().to_string())
                    .unwrap_or_default(),
            ),
        ],
    };
    // Diagnostics read the tick records too: through the recorder's copy
    // when recording (a ring has one reader), else straight from the loop.
    let diag_ring = (2.0 * profile.control.rate_hz) as usize + 64;
    let (recorder, telemetry) = match attach(&mut control, &recording_cfg, identity, Some(diag_ring))
        .with_context(|| format!("starting the flight recorder of {}", args.config.display()))?
    {
        Some((r, Some(copy))) => (Some(r), copy),
        Some((r, None)) => (Some(r), control.attach_telemetry(diag_ring)),
        None => (None, control.attach_telemetry(diag_ring)),
    };
    let mut diag = DiagnosticsBuilder::new(&profile.robot.name);

    install_signal_handlers();
    let rate_hz = profile.control.rate_hz;
    let max_ticks = args.seconds.map(|s| (s * rate_hz).ceil() as u64);
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
    let mut watchdog = Watchdog::from_env();
    watchdog.send("READY", SdNotify::ready);
    let started = Instant::now();
    let mut last_diag = Instant::now();
    while !handle.is_finished() {
        if SIGNALLED.load(Ordering::Acquire) {
            tracing::info!("signal received: stopping");
            stop.store(true, Ordering::Release);
        }
        watchdog.poll(&progress);
        observe_ticks(&telemetry, &mut diag);
        if last_diag.elapsed() >= Duration::from_secs(1) {
            let mode = progress.mode().name();
            let d = diagnostics(&mut diag, &running, recorder.as_ref().map(|r| &**r.stats()));
            if let Err(e) = running.publish_diagnostics(&d) {
                tracing::warn!(error = %e, "publishing diagnostics failed");
            }
            watchdog.send("STATUS", |n| n.status(&format!("mode {mode}, {} ticks", progress.ticks())));
            last_diag = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    watchdog.send("STOPPING", SdNotify::stopping);
    let (control, stats) = handle.join().map_err(|_| anyhow::anyhow!("control thread panicked"))?;
    let recorder_stats = recorder.as_ref().map(|r| r.stats().clone());
    let recorder = recorder.map(|r| {
        let (dir, stats) = (r.dir().display().to_string(), r.stats().clone());
        let rep = r.stop();
        let paths = |v: &[std::path::PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
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
    let hold = hold_command(last.seq + 1, clock_now(), ganglion_core::Mode::Fallback, last.position);
    if final_sink.send(&hold).is_err() {
        tracing::warn!("the final hold command could not be queued");
    }
    let final_mode = control.mode().name().to_string();
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
    let qos_incompatible = running
        .qos_mismatches()
        .into_iter()
        .map(|m| QosMismatchReport {
            topic: m.topic,
            ganglion_side: m.ganglion_side,
            policy: m.policy,
            peer: m.peer,
            ganglion_qos: m.ganglion_qos,
            peer_qos: m.peer_qos,
        })
        .collect();
    running.shutdown();

    let report = RunReport {
        ticks: stats.measured_ticks,
        warmup_ticks: stats.ticks - stats.measured_ticks,
        total_ticks: stats.ticks,
        rate_hz,
        seconds: started.elapsed().as_secs_f64(),
        overhead_us: us(&stats.overhead_ns),
        jitter_us: us(&stats.jitter_ns),
        allocations_per_tick: ganglion::control::alloc_count::is_installed()
            .then(|| stats.allocations as f64 / stats.measured_ticks.max(1) as f64),
        overruns: stats.overruns,
        fallback_ticks: stats.fallback_ticks,
        total_fallback_ticks: stats.counters.fallback_ticks,
        skipped_periods: stats.skipped_periods,
        policy: policy_name,
        inference_requests: stats.counters.requests,
        chunks_accepted: stats.counters.chunks_accepted,
        starved_ticks: stats.counters.starved_ticks,
        build_profile: if cfg!(debug_assertions) { "dev" } else { "release" },
        transport: format!("{:?}", profile.transport.kind).to_lowercase(),
        zenoh_session,
        topics,
        commands_published,
        commands_dropped,
        command_subscriber_matched,
        qos_incompatible,
        final_mode,
        realtime: RealtimeApplied {
            mlockall,
            control: control_applied.get().copied(),
            inference: inference_applied.get().copied(),
        },
        recorder,
    };
    if let Some(path) = &args.events {
        ganglion::faults::write_events(path, &rig_events.modes, &rig_events.infers)?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn clock_now() -> ganglion_core::Stamp {
    use ganglion_core::Clock;
    MonotonicClock::new().now()
}
