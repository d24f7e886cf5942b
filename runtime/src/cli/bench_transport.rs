//! `ganglion bench transport`: end-to-end latency of the zenoh or ROS 2
//! transport on loopback (the measurement: [`ganglion::bench::transport`]).

use std::path::PathBuf;
use std::process::ExitCode;

use ganglion::bench::transport::{measure, TransportBench};
use ganglion::transport::TransportKind;

/// `ganglion bench transport` arguments.
#[derive(Debug, clap::Args)]
pub struct TransportArgs {
    /// The transport: zenoh (TCP on 127.0.0.1, or shared memory with
    /// --shared-memory) or ros2 (ros2-client / RustDDS, UDP on 127.0.0.1).
    #[arg(long, value_enum)]
    pub transport: TransportKind,
    /// Camera frame width, pixels (rgb8).
    #[arg(long, default_value_t = 64)]
    pub width: u32,
    /// Camera frame height, pixels.
    #[arg(long, default_value_t = 64)]
    pub height: u32,
    /// Measured duration, seconds (after discovery and 0.5 s of warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Joint-state publish rate, Hz (0: none).
    #[arg(long, default_value_t = 500.0)]
    pub joint_rate_hz: f64,
    /// Frame publish rate, Hz (0: none).
    #[arg(long, default_value_t = 30.0)]
    pub frame_rate_hz: f64,
    /// Joints in each joint state (1..=16).
    #[arg(long, default_value_t = 6)]
    pub joints: usize,
    /// ROS 2 only: DDS domain id (default 220 + pid % 12).
    #[arg(long)]
    pub domain: Option<u16>,
    /// zenoh only: enable shared memory on both ends.
    #[arg(long)]
    pub shared_memory: bool,
    /// Also send the malformed corpus and report the decode-error counts.
    #[arg(long)]
    pub malformed: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs `ganglion bench transport`.
pub fn run(a: TransportArgs) -> anyhow::Result<ExitCode> {
    let bench = TransportBench {
        transport: a.transport,
        width: a.width,
        height: a.height,
        seconds: a.seconds,
        joint_rate_hz: a.joint_rate_hz,
        frame_rate_hz: a.frame_rate_hz,
        joints: a.joints,
        domain: a.domain,
        shared_memory: a.shared_memory,
        malformed: a.malformed,
    };
    let report = measure(&bench)?;

    let mut summary = serde_json::to_value(&report)?;
    for k in ["joint_state", "frame"] {
        if let Some(o) = summary.get_mut(k).and_then(|v| v.as_object_mut()) {
            o.remove("samples_us");
        }
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &a.report {
        // Plots (latency histograms) when there are samples; a malformed-only
        // run has none, which is not an error.
        if report.joint_state.samples_us.is_empty() && report.frame.samples_us.is_empty() {
            ganglion::report::write_report(path, &report)?;
        } else {
            ganglion::report::write_report_and_plots(path, &report, None)?;
        }
    }
    if let Err(bad) = report.malformed_outcome() {
        tracing::error!(failed = ?bad, "malformed corpus not handled as expected");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
