//! The `ganglion` command: one module per subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod bench_transport;
pub mod check;
pub mod demo;
pub mod eval;
pub mod inject;
pub mod policy;
pub mod replay;
pub mod run;
pub mod run_backend;
pub mod sim;
pub mod sim_serve;
pub mod top;

/// Onboard runtime for learned robot policies.
#[derive(Debug, Parser)]
#[command(name = "ganglion", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embedded default: simulated arm + reference policy on tract, real clock.
    Demo(demo::DemoArgs),
    /// The deployed main job: run the loop against a robot profile.
    Run(run::RunArgs),
    /// Closed-loop success of a bundle on the simulated arm.
    Eval(eval::EvalArgs),
    /// Measure loop overhead and jitter, policy inference, transports.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Policy bundles: inspect, verify, sign, keygen, bench, build-engine.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The simulated arm: record datasets, serve it as an external process.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Re-run a recording; --check for bit-exact decisions.
    Replay(replay::ReplayArgs),
    /// Real-time readiness of this machine.
    Check(check::CheckArgs),
    /// Live view of a running instance.
    Top(top::TopArgs),
}

/// Runs the chosen subcommand; the exit code says pass/fail where the
/// subcommand checks something.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Run(a) => run::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Policy(c) => policy::run(c),
        Command::Sim(c) => sim::run(c),
        Command::Replay(a) => replay::run(a),
        Command::Check(a) => check::run(a),
        Command::Top(a) => top::run(a),
    }
}

/// Logs go to stderr through `tracing`; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Writes `value` as pretty JSON to `path` (the `--report FILE` of every
/// measuring command), creating parent directories.
pub fn write_report(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating report directory {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing report {}", path.display()))
}

/// `{p50, p99, max}` in microseconds (3 decimals), the shape every report uses.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Percentiles of a histogram of nanoseconds, in microseconds.
pub fn us(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
    let f = |ns: u64| (ns as f64 / 1e3 * 1000.0).round() / 1000.0;
    Percentiles { p50: f(h.value_at_quantile(0.5)), p99: f(h.value_at_quantile(0.99)), max: f(h.max()) }
}
