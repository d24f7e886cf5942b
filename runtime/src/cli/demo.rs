//! `ganglion demo`: the embedded default, the simulated arm and the
//! reference policy on tract on the real clock (the demo itself:
//! [`ganglion::demo`]). Prints a status line twice a second and a summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ganglion::demo::{Demo, DemoOptions};
use ganglion::faults::{Consumer, FaultAt};
use ganglion_core::Cause;

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

/// Runs `ganglion demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut demo = Demo::start(DemoOptions {
        seconds: args.seconds,
        instruction: args.instruction.clone(),
        fault: args.fault,
        bundle: args.bundle,
        config: args.config,
        seed: args.seed,
        key: args.key,
        record_dir: args.record_dir,
    })?;
    eprintln!(
        "ganglion demo: {} on {}, simulated 3-joint arm, {} Hz control, {} s{}{}",
        demo.policy_name(),
        demo.backend(),
        demo.rate_hz(),
        args.seconds,
        args.instruction.as_ref().map(|i| format!(", instruction {i:?}")).unwrap_or_default(),
        args.fault.map(|f| format!(", fault {f}")).unwrap_or_default(),
    );
    loop {
        let left = demo.remaining();
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.clamp(Duration::from_nanos(1), Duration::from_millis(500)));
        let s = demo.status();
        let causes: Vec<&str> = s.causes.iter().map(Cause::name).collect();
        eprint!(
            "\r\x1b[2Kt={:5.1}s  {:6.1} Hz  mode {:9}  inference p99 {:6.2} ms  successes {}/{}  {}",
            s.elapsed_s,
            s.rate_hz,
            s.mode.name(),
            s.inference_p99_ms,
            s.successes,
            s.episodes,
            if causes.is_empty() { String::new() } else { format!("causes: {}", causes.join(",")) },
        );
    }
    eprintln!();
    let report = demo.finish()?;
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
    if report.instruction_errors > 0 {
        eprintln!(
            "warning: {} instruction(s) could not be encoded (unknown words); the previous one stayed in force",
            report.instruction_errors
        );
    }
    for file in &report.recordings {
        eprintln!("recording: {file}  (inspect: ganglion replay {file} --check)");
    }
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}
