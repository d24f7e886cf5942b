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
    /// Per-tick servo-bus time (one sync read + one sync write) against the
    /// emulated servos on a pty, next to the wire time of those bytes.
    Bus(BusArgs),
}

/// The bus `ganglion bench bus` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BusChoice {
    /// Feetech STS, protocol 0 (SO-100/SO-101).
    Feetech,
    /// Dynamixel X series, protocol 2.0 (Koch).
    Dynamixel,
    /// Both, one after the other.
    Both,
}

/// `ganglion bench bus` arguments.
#[derive(Debug, clap::Args)]
pub struct BusArgs {
    /// Which bus.
    #[arg(long, value_enum, default_value_t = BusChoice::Both)]
    pub protocol: BusChoice,
    /// Servos on the bus (1..=200).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub servos: u64,
    /// Measured ticks (after 50 warm-up ticks).
    #[arg(long, default_value_t = 2000)]
    pub ticks: usize,
    /// Pause between ticks, ms (a tick's read and write go back to back).
    #[arg(long, default_value_t = 2.0)]
    pub interval_ms: f64,
    /// The control rate to judge the tick against, Hz.
    #[arg(long, default_value_t = 100.0)]
    pub rate_hz: f64,
    /// Only the software and pty cost: the emulator answers at once
    /// instead of after each exchange's wire time at 1 Mbit/s.
    #[arg(long)]
    pub unpaced: bool,
    /// Write the JSON report (one entry per bus) here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
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
    /// Robots send JPEG frames of this quality (1..=100), as `[policy.remote]
    /// frames = "jpeg"` does.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg: Option<u8>,
    /// The server batches up to this many robots' requests (as `ganglion
    /// serve --max-batch`; the bundle's `max_batch` allows it, ONNX Runtime).
    #[arg(long, default_value_t = 1)]
    pub max_batch: usize,
    /// How long the server waits for more requests after a batch's first, ms.
    #[arg(long, default_value_t = 2.0)]
    pub batch_window_ms: f64,
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
        BenchCommand::Bus(a) => bench_bus(a),
    }
}

/// `ganglion bench bus`: `ganglion_servo::bench::run` for each bus, a line
/// each (tick, read and write percentiles, wire time, share of a tick).
fn bench_bus(a: BusArgs) -> anyhow::Result<ExitCode> {
    use ganglion_servo::bench::{run, Protocol};
    anyhow::ensure!(a.interval_ms.is_finite() && a.interval_ms >= 0.0, "--interval-ms: a non-negative number");
    anyhow::ensure!(a.rate_hz.is_finite() && a.rate_hz > 0.0, "--rate-hz: a positive rate");
    anyhow::ensure!(a.ticks > 0, "--ticks: at least 1");
    let protocols: &[Protocol] = match a.protocol {
        BusChoice::Feetech => &[Protocol::Feetech],
        BusChoice::Dynamixel => &[Protocol::Dynamixel],
        BusChoice::Both => &[Protocol::Feetech, Protocol::Dynamixel],
    };
    let period_us = 1e6 / a.rate_hz;
    let interval = std::time::Duration::from_secs_f64(a.interval_ms / 1e3);
    println!(
        "bench bus: {} servos, sync read of Present_Position + sync write of Goal_Position per tick, 1 Mbit/s, emulator {}, {} ticks",
        a.servos,
        if a.unpaced { "unpaced (software + pty only)" } else { "paced at the wire time" },
        a.ticks
    );
    println!("bus        wire bytes  wire us   tick p50 / p99 / max us      read p50 / p99   write p50 / p99   p99 of a {:.0} Hz tick  retries  failed reads", a.rate_hz);
    let mut reports = Vec::new();
    for &p in protocols {
        let b = run(p, a.servos as usize, a.ticks, interval, !a.unpaced)
            .map_err(|e| anyhow::anyhow!("bench bus ({p:?}): {e}"))?;
        println!(
            "{:<10} {:>10} {:>8.0}   {:>8.0} / {:>6.0} / {:>7.0}   {:>8.0} / {:>6.0}   {:>7.0} / {:>5.0}   {:>20.1} %  {:>7}  {}",
            format!("{:?}", b.protocol).to_lowercase(),
            b.tick_bytes,
            b.wire_us,
            b.tick_us.p50,
            b.tick_us.p99,
            b.tick_us.max,
            b.read_us.p50,
            b.read_us.p99,
            b.write_us.p50,
            b.write_us.p99,
            100.0 * b.tick_us.p99 / period_us,
            b.counters.retries,
            b.failed_reads
        );
        reports.push(b);
    }
    if let Some(path) = &a.report {
        ganglion::report::write_report(path, &reports)?;
    }
    Ok(ExitCode::SUCCESS)
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
        jpeg: a.jpeg,
        max_batch: a.max_batch,
        batch_window: std::time::Duration::from_secs_f64(a.batch_window_ms.max(0.0) / 1e3),
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
