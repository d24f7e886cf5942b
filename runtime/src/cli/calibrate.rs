//! `ganglion calibrate`: LeRobot's `lerobot-calibrate` for a follower arm
//! (`ganglion_servo::calibrate`), on the terminal, writing the calibration
//! file where LeRobot keeps it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ganglion_servo::bench::Protocol;
use ganglion_servo::calibrate::{
    calibrate, calibration_path, calibration_root, CalibrateConfig, Outcome, Robot, TerminalConsole,
};

/// The bus protocol (`--protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolChoice {
    /// Feetech STS, protocol 0 (SO-100/SO-101).
    Feetech,
    /// Dynamixel X series, protocol 2.0 (Koch).
    Dynamixel,
}

/// `ganglion calibrate` arguments (LeRobot's `--robot.port`, `--robot.id`,
/// `--robot.type`, `--robot.calibration_dir`).
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// The arm's serial port (a udev name, /dev/ttyACM0, or an emulator's pty).
    #[arg(long)]
    pub port: PathBuf,
    /// LeRobot's robot id: the file is `<id>.json`.
    #[arg(long)]
    pub robot_id: String,
    /// The bus; by default the robot's (SO-10x: feetech, Koch: dynamixel).
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolChoice>,
    /// LeRobot's robot type: so101_follower, so100_follower, koch_follower
    /// (default: so101_follower on feetech, koch_follower on dynamixel).
    #[arg(long)]
    pub robot: Option<String>,
    /// The directory of the file, as LeRobot's --robot.calibration_dir;
    /// default `<HF_LEROBOT_CALIBRATION>/robots/<so_follower|koch_follower>/`
    /// (HF_LEROBOT_CALIBRATION defaults to ~/.cache/huggingface/lerobot/calibration).
    #[arg(long)]
    pub calibration_dir: Option<PathBuf>,
    /// Bits per second (LeRobot's buses run at 1 Mbit/s).
    #[arg(long, default_value_t = 1_000_000)]
    pub baud: u32,
}

/// Runs the procedure; the file's path is printed at the end.
pub fn run(a: CalibrateArgs) -> anyhow::Result<ExitCode> {
    let protocol = a.protocol.map(|p| match p {
        ProtocolChoice::Feetech => Protocol::Feetech,
        ProtocolChoice::Dynamixel => Protocol::Dynamixel,
    });
    let robot = match (&a.robot, protocol) {
        (Some(name), _) => Robot::from_type(name)
            .with_context(|| format!("--robot {name}: expected so101_follower, so100_follower or koch_follower"))?,
        (None, Some(p)) => Robot::for_protocol(p),
        (None, None) => Robot::SoFollower,
    };
    if let Some(p) = protocol.filter(|p| *p != robot.protocol()) {
        anyhow::bail!("--robot {} has {:?} servos, not --protocol {p:?}", robot.name(), robot.protocol());
    }
    let root = match &a.calibration_dir {
        Some(_) => PathBuf::new(),
        None => calibration_root(|k| std::env::var_os(k))
            .context("no calibration directory: set HOME, HF_LEROBOT_CALIBRATION or --calibration-dir")?,
    };
    let cfg = CalibrateConfig {
        robot,
        id: a.robot_id.clone(),
        port: a.port.clone(),
        file: calibration_path(robot, &a.robot_id, a.calibration_dir.as_deref(), &root),
        baud: a.baud,
        ..CalibrateConfig::default()
    };
    match calibrate(&cfg, &mut TerminalConsole::new()).with_context(|| format!("calibrate {}", a.port.display()))? {
        Outcome::Reused(_) => {
            println!("Calibration {} written to the servos on {}", cfg.file.display(), a.port.display())
        }
        Outcome::Calibrated(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}
