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
    /// Remote inference: a policy server and N robots on loopback zenoh,
    /// next to the same bundle run locally.
    Remote(RemoteArgs),
}

/// `ganglion bench remote` arguments.
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Bundle (default: the reference bundle).
    #[arg(long)]
    pub bundle: Option<std::path::PathBuf>,
    /// Backend on the server and for the local run.
    #[arg(long, value_enum, default_value_t = ganglion_policies::BackendKind::Tract)]
    pub backend: ganglion_policies::BackendKind,
    /// Robot counts, one row each.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub robots: Vec<usize>,
    /// Requests per robot.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Serve a stand-in policy with N RGB cameras of S×S pixels instead of
    /// the bundle (`2x224`): what frames of that size cost on the wire.
    #[arg(long, value_parser = parse_stand_in, conflicts_with = "bundle")]
    pub stand_in: Option<(usize, u32)>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
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
        BenchCommand::Remote(a) => bench_remote(a),
    }
}

fn parse_stand_in(s: &str) -> Result<(usize, u32), String> {
    let (n, size) = s.split_once('x').ok_or("expected CAMERASxSIZE, e.g. 2x224")?;
    let n: usize = n.parse().map_err(|e| format!("cameras: {e}"))?;
    let size: u32 = size.parse().map_err(|e| format!("size: {e}"))?;
    if !(1..=8).contains(&n) || !(1..=1080).contains(&size) {
        return Err("1 to 8 cameras of 1 to 1080 pixels a side".into());
    }
    Ok((n, size))
}

fn bench_remote(a: RemoteArgs) -> anyhow::Result<ExitCode> {
    use ganglion::bench::remote::{measure, RemoteBench};
    let report = measure(&RemoteBench {
        bundle: a.bundle,
        backend: a.backend,
        robots: a.robots,
        requests: a.requests,
        stand_in: a.stand_in,
    })?;
    println!(
        "{}: request {} bytes; local infer p50 {:.3} ms p99 {:.3} ms",
        report.policy, report.request_bytes, report.local_infer_ms.p50, report.local_infer_ms.p99
    );
    println!("robots  req/s   round trip p50/p99 ms  server queue p50  compute p50  transport p50/p99 ms");
    for r in &report.rows {
        println!(
            "{:>6} {:>7.1}   {:>8.3} / {:<8.3}   {:>12.3}  {:>11.3}  {:>8.3} / {:.3}",
            r.robots,
            r.requests_per_s,
            r.round_trip_ms.p50,
            r.round_trip_ms.p99,
            r.server_queue_ms.p50,
            r.server_compute_ms.p50,
            r.transport_ms.p50,
            r.transport_ms.p99
        );
    }
    if let Some(path) = &a.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
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
