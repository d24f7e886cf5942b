//! `ganglion bench`: benchmarks (the measurements: [`ganglion::bench`]).

use std::process::ExitCode;

use ganglion::bench::control_loop::{measure, LoopBench};
use ganglion::stats::SampledPercentiles;

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

fn bench_loop(a: LoopArgs) -> anyhow::Result<ExitCode> {
    let report = measure(&LoopBench {
        seconds: a.seconds,
        rate_hz: a.rate_hz,
        policy_latency_ms: a.policy_latency_ms,
        config: a.config,
        record_dir: a.record_dir,
        no_rt: a.no_rt,
    })?;
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
