//! `ganglion run`: the deployed main job. The path itself is the library's
//! [`ganglion::deploy::Runtime`]; this file parses, handles signals, prints.
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

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use ganglion::deploy::{PolicyChoice, Runtime, RuntimeOptions};

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
    #[arg(long, value_enum)]
    pub policy: Option<PolicyChoice>,
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
    /// of falling back to ONNX Runtime on CPU (see `ganglion::deploy::policy`),
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
    /// after the first inference (repeatable; kinds in `ganglion::faults`).
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

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe: one atomic store.
    SIGNALLED.store(true, Ordering::Release);
}

/// SIGINT / SIGTERM set a flag ([`signalled`]) instead of killing the process.
pub(crate) fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`install_signal_handlers`].
pub(crate) fn signalled() -> bool {
    SIGNALLED.load(Ordering::Acquire)
}

/// Runs `ganglion run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let options = RuntimeOptions {
        seconds: args.seconds,
        policy: args.policy,
        bundle: args.bundle,
        strict: args.strict,
        record_dir: args.record_dir,
        inject: args.inject,
        events: args.events,
        key: args.key,
    };
    let mut runtime = Runtime::start(&args.config, options)?;
    if let Some(facts) = runtime.zenoh_session().filter(|f| !f.non_loopback_listeners.is_empty()) {
        eprintln!(
            "ganglion run: zenoh: listening on non-loopback address(es) {}: reachable from other machines",
            facts.non_loopback_listeners.join(", ")
        );
    }
    install_signal_handlers();
    runtime.run_until(signalled);
    let report = runtime.shutdown()?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}
