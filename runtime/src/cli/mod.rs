//! The `ganglion` command: one module per subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod bench_transport;
pub mod check;
pub mod demo;
pub mod eval;
pub mod inject;
pub mod log_noise;
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

/// Logs go to stderr through `tracing`; `RUST_LOG` filters (default
/// `info`, with RustDDS at `error`: at `info` it warns ~80 times a second
/// about its own participant's loopback locators and every large sample,
/// burying everything else; drivers/ros2/README.md; ros2-client at `warn`:
/// at `info` it announces every topic it creates).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustdds=error,ros2_client=warn"));
    // Known harmless lines of dependencies are dropped by message (log_noise).
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(log_noise::DropKnownNoise)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
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

/// [`Percentiles`] plus the raw samples (µs, in order), the shape the
/// plotter reads (`recorder::plot`: every `samples_us` array is a series).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampledPercentiles {
    /// The percentiles of the whole run.
    #[serde(flatten)]
    pub percentiles: Percentiles,
    /// Samples, µs, in tick order.
    pub samples_us: Vec<f64>,
}

impl SampledPercentiles {
    /// `h`'s percentiles with `samples_ns` as the series.
    pub fn new(h: &hdrhistogram::Histogram<u64>, samples_ns: &[u32]) -> Self {
        SampledPercentiles { percentiles: us(h), samples_us: samples_ns.iter().map(|&n| f64::from(n) / 1e3).collect() }
    }
}

/// Writes `report` as JSON to `path` and its plots (a histogram per
/// `samples_us` series, jitter over time) into `plots`, or into
/// `<path without extension>-plots/` when `plots` is `None`. Returns the
/// plot files.
pub fn write_report_and_plots(
    path: &std::path::Path,
    report: &impl serde::Serialize,
    plots: Option<&std::path::Path>,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    write_report(path, report)?;
    let dir = match plots {
        Some(d) => d.to_path_buf(),
        None => {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
            path.with_file_name(format!("{stem}-plots"))
        }
    };
    let value = serde_json::to_value(report).context("report to JSON")?;
    crate::recorder::plot::plot_bench(&value, &dir).with_context(|| format!("plotting into {}", dir.display()))
}

/// Percentiles of a histogram of nanoseconds, in microseconds.
pub fn us(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
    let f = |ns: u64| (ns as f64 / 1e3 * 1000.0).round() / 1000.0;
    Percentiles { p50: f(h.value_at_quantile(0.5)), p99: f(h.value_at_quantile(0.99)), max: f(h.max()) }
}
