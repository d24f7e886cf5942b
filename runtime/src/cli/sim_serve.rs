//! `ganglion sim serve`: the simulated arm as an external process.
//!
//! The arm publishes joint states, camera frames and its instruction over
//! the profile's transport (as a robot would) and applies the commands it
//! receives. Two modes:
//!
//! - real time: physics advances with the wall clock; commands are applied
//!   as they arrive;
//! - `--lockstep`: the arm advances one control period per received
//!   command, so its trajectory depends only on the commands (deterministic
//!   for CI); when no command arrives within `--timeout-ms` it counts a miss
//!   and advances holding the previous targets.
//!
//! Report (`--report FILE`, also printed): `transport`, `mode`,
//! `commands_received`, `decode_errors`, `misses`, `steps`,
//! `joint_states_published`, `frames_published`, `tip_error_m`, `success`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion_codec::msg::{Header, Image, JointState, Message, StringMsg, Time};
use ganglion_codec::{decode_command, DecodeLimits};
use ganglion_core::{input_slots, CauseSet, Command, InputReaders, Mode, Stamp};

use crate::profile::Profile;
use crate::transport::{PlantLink, TransportKind};

/// Arguments of `ganglion sim serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// `zenoh` or `ros2` (overrides the profile's `transport.kind`).
    #[arg(long)]
    pub transport: String,
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
    /// Scene seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

#[derive(Debug, serde::Serialize)]
struct ServeReport {
    transport: String,
    mode: &'static str,
    commands_received: u64,
    decode_errors: u64,
    misses: u64,
    steps: u64,
    joint_states_published: u64,
    frames_published: u64,
    tip_error_m: f64,
    success: bool,
}

/// Encodes and publishes whatever `publish_due` wrote into the local slots.
struct Publisher {
    link: PlantLink,
    readers: InputReaders,
    joint_names: Vec<String>,
    frame_id: String,
    joints_msg: JointState,
    image_msg: Image,
    buf: Vec<u8>,
    joints_published: u64,
    frames_published: u64,
}

impl Publisher {
    fn flush(&mut self) -> anyhow::Result<()> {
        let stamp = Time::now_wall();
        if self.readers.joints.update() {
            let s = &self.readers.joints.latest().value;
            let m = &mut self.joints_msg;
            m.header.stamp = stamp;
            m.name.clone_from(&self.joint_names);
            m.position.clear();
            m.position.extend_from_slice(&s.position);
            m.velocity.clear();
            m.velocity.extend_from_slice(&s.velocity);
            m.effort.clear();
            m.effort.extend_from_slice(&s.effort);
            m.encode_into(&mut self.buf);
            self.link.publish_joints(&self.buf)?;
            self.joints_published += 1;
        }
        if self.readers.cameras[0].update() {
            let f = &self.readers.cameras[0].latest().value;
            let m = &mut self.image_msg;
            m.header = Header { stamp, frame_id: self.frame_id.clone() };
            m.width = f.width;
            m.height = f.height;
            m.encoding = f.format.ros_encoding().into();
            m.step = f.width * f.format.bytes_per_pixel() as u32;
            m.data.clear();
            m.data.extend_from_slice(f.data());
            m.encode_into(&mut self.buf);
            self.link.publish_camera(0, &self.buf)?;
            self.frames_published += 1;
        }
        if self.readers.instruction.update() {
            self.publish_instruction()?;
        }
        Ok(())
    }

    fn publish_instruction(&mut self) -> anyhow::Result<()> {
        let text = self.readers.instruction.latest().value.text.to_string();
        if !text.is_empty() {
            StringMsg { data: text }.encode_into(&mut self.buf);
            self.link.publish_instruction(&self.buf)?;
        }
        Ok(())
    }
}

/// Runs `ganglion sim serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let kind = match args.transport.as_str() {
        "zenoh" => TransportKind::Zenoh,
        "ros2" => TransportKind::Ros2,
        other => anyhow::bail!("--transport: expected zenoh or ros2, got {other:?}"),
    };
    anyhow::ensure!(args.seconds > 0.0 && args.seconds.is_finite(), "--seconds must be positive");
    let profile = Profile::load(&args.profile)?;
    let sim = profile.sim.clone().with_context(|| format!("{}: no [sim] section", args.profile.display()))?;
    let mut arm = ganglion_sim::SimArm::new(&sim, args.seed).context("building the simulated arm")?;
    let period_ns = profile.period_ns();
    let format = profile.transport.command_format()?;

    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded::<Command>();
    let decode_errors = Arc::new(AtomicU64::new(0));
    let errors = decode_errors.clone();
    let limits = DecodeLimits::default();
    let seq = AtomicU64::new(0);
    let on_command = move |bytes: &[u8]| match decode_command(bytes, format, &limits) {
        Ok(t) => {
            let cmd = Command {
                seq: seq.fetch_add(1, Ordering::Relaxed),
                stamp: Stamp::ZERO,
                mode: Mode::Nominal,
                causes: CauseSet::EMPTY,
                position: t.position,
                velocity: t.velocity,
            };
            let _ = cmd_tx.send(cmd);
        }
        Err(_) => {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    let cameras = vec![sim.camera_name.clone()];
    let link = PlantLink::start(&profile.transport, kind, &profile.robot.name, &cameras, on_command)?;
    let (mut writers, readers) =
        input_slots(sim.limits.len(), &[(sim.camera_name.clone(), sim.camera_width, sim.camera_height)]);
    let mut publisher = Publisher {
        link,
        readers,
        joint_names: profile.robot.joints.iter().map(|j| j.name.clone()).collect(),
        frame_id: sim.camera_name.clone(),
        joints_msg: JointState::default(),
        image_msg: Image::default(),
        buf: Vec::new(),
        joints_published: 0,
        frames_published: 0,
    };

    let total_ns = (args.seconds * 1e9) as u64;
    let (mut received, mut misses, mut steps) = (0u64, 0u64, 0u64);
    let wall_start = Instant::now();
    let mut last_instruction = Stamp::ZERO;
    let mut last_command_at = Instant::now();
    tracing::info!(transport = %args.transport, lockstep = args.lockstep, "sim serve started");
    while arm.time().as_nanos() < total_ns {
        let now = arm.time();
        arm.publish_due(now, &mut writers);
        publisher.flush()?;
        // Late joiners never saw the first instruction: repeat it.
        if now.saturating_since(last_instruction) >= 500_000_000 {
            publisher.publish_instruction()?;
            last_instruction = now;
        }
        if args.lockstep {
            match cmd_rx.recv_timeout(Duration::from_millis(args.timeout_ms)) {
                Ok(cmd) => {
                    arm.apply_command(&cmd);
                    received += 1;
                    last_command_at = Instant::now();
                }
                Err(_) if received == 0 => {
                    // The runtime is not up yet: the arm rests (its targets
                    // are its pose), time moves so states keep flowing.
                    if wall_start.elapsed() > Duration::from_secs(30) {
                        anyhow::bail!("no command arrived within 30 s");
                    }
                }
                Err(_) => {
                    if last_command_at.elapsed() > Duration::from_secs(2) {
                        tracing::info!("commands stopped; ending");
                        break;
                    }
                    misses += 1;
                }
            }
            arm.step(period_ns);
        } else {
            for cmd in cmd_rx.try_iter() {
                arm.apply_command(&cmd);
                received += 1;
            }
            let target = wall_start + Duration::from_nanos(now.as_nanos() + sim.physics_dt_ns);
            if let Some(d) = target.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            arm.step(sim.physics_dt_ns);
        }
        steps += 1;
    }
    // In lockstep, commands still in flight when the time ran out count too.
    std::thread::sleep(Duration::from_millis(300));
    received += cmd_rx.try_iter().count() as u64;

    let report = ServeReport {
        transport: args.transport.clone(),
        mode: if args.lockstep { "lockstep" } else { "realtime" },
        commands_received: received,
        decode_errors: decode_errors.load(Ordering::Relaxed),
        misses,
        steps,
        joint_states_published: publisher.joints_published,
        frames_published: publisher.frames_published,
        tip_error_m: arm.tip_error_m(),
        success: arm.success(),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.report {
        super::write_report(path, &report)?;
    }
    Ok(if report.success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
