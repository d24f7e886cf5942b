//! `ganglion sim serve`: the simulated arm as an external process (the
//! library: [`ganglion::plant::wire`], which documents the plant log).
//!
//! Report (`--report FILE`, also printed): `transport`, `mode`,
//! `commands_received`, `commands_ignored`, `decode_errors`, `misses`,
//! `steps`, `joint_states_published`, `frames_published`,
//! `malformed_published`, `flood_published`, `inputs_sent` (every joint
//! state and image payload), `inputs_sent_between_commands` (those sent
//! between the first and the last command received, when the runtime was
//! certainly listening), `brakes`, `tip_error_m`, `success`.

use std::process::ExitCode;
use std::time::Duration;

use ganglion::plant::wire::{serve, ServeOptions};
use ganglion::transport::TransportKind;

/// Arguments of `ganglion sim serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// `zenoh` or `ros2` (overrides the profile's `transport.kind`).
    #[arg(long, value_enum)]
    pub transport: TransportKind,
    /// Robot profile with `[sim]` and `[transport]` sections.
    #[arg(long)]
    pub profile: std::path::PathBuf,
    /// Advance one control period per received command.
    #[arg(long)]
    pub lockstep: bool,
    /// Simulated seconds to run (lockstep: also ends 2 s after the commands stop).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Lockstep: how long to wait for a command before counting a miss, ms.
    #[arg(long, default_value_t = 200)]
    pub timeout_ms: u64,
    /// Real time: brake (hold the measured position) when no command arrived
    /// for this long, ms; 0 = never (the arm keeps its last targets).
    #[arg(long, default_value_t = 0)]
    pub command_timeout_ms: u64,
    /// Fault, `KIND@SECONDS[:DURATION]` (seconds after the first command);
    /// repeatable. Wire kinds: camera-dropout, frozen-frame, black-frame,
    /// joint-dropout, nan-joint, inf-joint, stamp-forward, stamp-backward,
    /// flood, malformed, partition; arm kinds: joint-delay, camera-delay,
    /// joint-noise, joint-offset.
    #[arg(long = "fault")]
    pub faults: Vec<String>,
    /// Sensor noise on the camera (the low bit of a few pixels changes every
    /// frame, as on a real sensor), so a frozen frame is detectable by content.
    #[arg(long)]
    pub camera_noise: bool,
    /// Write the plant log (JSON lines) here.
    #[arg(long)]
    pub log: Option<std::path::PathBuf>,
    /// Scene seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Episode of the seed's scene stream (scene, instruction, initial pose).
    #[arg(long, default_value_t = 0)]
    pub episode: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

/// Runs `ganglion sim serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let report = serve(&ServeOptions {
        transport: args.transport,
        profile: args.profile,
        lockstep: args.lockstep,
        seconds: args.seconds,
        timeout: Duration::from_millis(args.timeout_ms),
        command_timeout_ms: args.command_timeout_ms,
        faults: args.faults,
        camera_noise: args.camera_noise,
        log: args.log,
        seed: args.seed,
        episode: args.episode,
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(if report.success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
