//! `lerobot-calibrate` for a follower arm, step for step as LeRobot 0.6.1
//! runs it (`lerobot/scripts/lerobot_calibrate.py`: `connect(calibrate=False)`,
//! `calibrate()`, `disconnect()` of `SOFollower` / `KochFollower`), writing
//! the same calibration file at the same path. `ganglion calibrate` is a
//! thin command over [`calibrate`].
//!
//! The procedure ([`calibrate`]):
//!
//! 1. the calibration directory is created (LeRobot does it when the robot
//!    object is made); an existing file is read and must be this robot's
//!    (motor names and ids), before anything is sent to the arm;
//! 2. the port is opened and every servo pinged and its model checked
//!    (LeRobot's handshake), then LeRobot's set-up is written
//!    ([`FeetechBus::setup_so101`] / [`DynamixelBus::setup_koch`]);
//! 3. with a file: *"Press ENTER to use provided calibration file associated
//!    with the id …, or type 'c' and press ENTER to run calibration: "*;
//!    anything but `c` writes the file's `Homing_Offset` and
//!    `Min/Max_Position_Limit` to the servos and ends;
//! 4. torque off; `Operating_Mode` position (SO-10x: 0) or extended position
//!    (Koch: 4, the gripper too, as LeRobot writes it here);
//! 5. *"Move … to the middle of its range of motion and press ENTER...."*,
//!    then the half-turn homings (limits reset to 0..4095, `Homing_Offset`
//!    written so each servo reads 2047 where it stands);
//! 6. *"Move all joints except … sequentially through their entire ranges
//!    of motion. Recording positions. Press ENTER to stop..."*: a sync read
//!    every 20 ms feeds a [`RangeRecorder`] and the live MIN/POS/MAX table,
//!    until a line that is empty is entered (LeRobot's `enter_pressed`);
//!    the full-turn motors (SO-10x `wrist_roll`; Koch `shoulder_pan`,
//!    `wrist_roll`) are not recorded and get 0..4095; a recorded motor that
//!    never moved is refused;
//! 7. the calibration is written to the servos and to the file
//!    (`draccus.dump(..., indent=4)` byte for byte); *"Calibration saved to
//!    PATH"*; torque off, acknowledged (LeRobot's `disconnect`).
//!
//! Proven against LeRobot's own code: `tests/golden/make_calibration_golden.py`
//! runs LeRobot's `calibrate()` on fixed readings, and `tests/calibrate.rs`
//! runs this on the emulators with the same hands and compares file, path,
//! registers and prompts.
//!
//! One deliberate difference: LeRobot's `connect` re-enables torque after
//! its set-up, so the arm is stiff while the first question waits and a
//! reused file is written with torque on (a Feetech servo with `Lock` 1
//! does not keep that EEPROM write over a power cycle). Here torque stays
//! off from the set-up to the end: calibrating needs none, and enabling it
//! would drive each servo to whatever `Goal_Position` it last held.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bench::Protocol;
use crate::calibration::{CalibrationError, CalibrationFile, NormMode, RangeRecorder};
use crate::{
    sts, xseries, BusError, DynamixelBus, DynamixelConfig, FeetechBus, FeetechConfig, KochSetup, ServoBus, So101Setup,
};

/// A follower arm `lerobot-calibrate` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Robot {
    /// SO-100 / SO-101 follower (LeRobot's `SOFollower`, robot types
    /// `so101_follower` and `so100_follower`): six STS3215 on a Feetech bus.
    SoFollower,
    /// Koch follower (`KochFollower`, `koch_follower`): Dynamixel X series.
    KochFollower,
}

/// The SO-10x follower's motors (name, id), in LeRobot's order.
pub const SO_FOLLOWER_MOTORS: [(&str, u8); 6] = [
    ("shoulder_pan", 1),
    ("shoulder_lift", 2),
    ("elbow_flex", 3),
    ("wrist_flex", 4),
    ("wrist_roll", 5),
    ("gripper", 6),
];

impl Robot {
    /// The robot for a LeRobot robot type (`--robot.type`): `so101_follower`,
    /// `so100_follower` (or the class name `so_follower`), `koch_follower`.
    pub fn from_type(name: &str) -> Option<Robot> {
        match name {
            "so101_follower" | "so100_follower" | "so_follower" => Some(Robot::SoFollower),
            "koch_follower" => Some(Robot::KochFollower),
            _ => None,
        }
    }

    /// LeRobot's `Robot.name`, which names the calibration directory
    /// (`calibration/robots/<name>/`): `so_follower` for SO-100 and SO-101
    /// alike (LeRobot 0.6.1), `koch_follower`.
    pub fn name(self) -> &'static str {
        match self {
            Robot::SoFollower => "so_follower",
            Robot::KochFollower => "koch_follower",
        }
    }

    /// LeRobot's class name, as its prompts print the robot (`"<id> SOFollower"`).
    pub fn class_name(self) -> &'static str {
        match self {
            Robot::SoFollower => "SOFollower",
            Robot::KochFollower => "KochFollower",
        }
    }

    /// The bus the arm's servos speak.
    pub fn protocol(self) -> Protocol {
        match self {
            Robot::SoFollower => Protocol::Feetech,
            Robot::KochFollower => Protocol::Dynamixel,
        }
    }

    /// The default robot on a bus: SO-101 on Feetech, Koch on Dynamixel.
    pub fn for_protocol(p: Protocol) -> Robot {
        match p {
            Protocol::Feetech => Robot::SoFollower,
            Protocol::Dynamixel => Robot::KochFollower,
        }
    }

    /// Motors (name, id) in LeRobot's order (the file's order); both arms
    /// name them alike.
    pub fn motors(self) -> &'static [(&'static str, u8)] {
        &SO_FOLLOWER_MOTORS
    }

    /// The motors LeRobot does not record a range for (they turn fully) and
    /// gives 0..4095.
    pub fn full_turn(self) -> &'static [&'static str] {
        match self {
            Robot::SoFollower => &["wrist_roll"],
            Robot::KochFollower => &["shoulder_pan", "wrist_roll"],
        }
    }

    /// The motors with LeRobot's default units (`use_degrees = True`:
    /// degrees, the gripper 0..100); used to check a file belongs here.
    fn joint_modes(self) -> Vec<(&'static str, u8, NormMode)> {
        self.motors()
            .iter()
            .map(|&(n, id)| (n, id, if n == "gripper" { NormMode::Range0To100 } else { NormMode::Degrees }))
            .collect()
    }

    /// The sentence LeRobot prints before recording ranges (it formats one
    /// motor as `'wrist_roll'` and a list as Python prints it).
    fn sweep_instruction(self) -> String {
        let except = match self.full_turn() {
            [one] => format!("'{one}'"),
            many => format!("[{}]", many.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")),
        };
        format!("Move all joints except {except} sequentially through their entire ranges of motion.")
    }
}

/// LeRobot's calibration root, `HF_LEROBOT_CALIBRATION`, else
/// `$HF_LEROBOT_HOME/calibration`, else `$HF_HOME/lerobot/calibration`,
/// else `$XDG_CACHE_HOME/huggingface/lerobot/calibration`, else
/// `~/.cache/huggingface/lerobot/calibration` (`lerobot.utils.constants`
/// and `huggingface_hub.constants`; a leading `~` is expanded as Python's
/// `expanduser` does, `$VAR` inside a value is not). `env` reads a
/// variable (`|k| std::env::var_os(k)`); `None` when no variable is set
/// and the home directory is unknown.
pub fn calibration_root(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let home = env("HOME").map(PathBuf::from);
    let expand = |v: std::ffi::OsString| -> Option<PathBuf> {
        let s = v.to_string_lossy().into_owned();
        match s.strip_prefix('~') {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                Some(home.clone()?.join(rest.trim_start_matches('/')))
            }
            _ => Some(PathBuf::from(v)),
        }
    };
    if let Some(v) = env("HF_LEROBOT_CALIBRATION") {
        return expand(v);
    }
    let lerobot_home = match env("HF_LEROBOT_HOME") {
        Some(v) => expand(v)?,
        None => {
            let hf_home = match env("HF_HOME") {
                Some(v) => expand(v)?,
                None => {
                    let cache = match env("XDG_CACHE_HOME") {
                        Some(v) => PathBuf::from(v),
                        None => home.clone()?.join(".cache"),
                    };
                    expand(cache.join("huggingface").into_os_string())?
                }
            };
            hf_home.join("lerobot")
        }
    };
    Some(lerobot_home.join("calibration"))
}

/// Where LeRobot keeps the calibration of robot `id`: `DIR/<id>.json` with
/// `--robot.calibration_dir DIR`, else `<root>/robots/<robot name>/<id>.json`.
pub fn calibration_path(robot: Robot, id: &str, dir: Option<&Path>, root: &Path) -> PathBuf {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| root.join("robots").join(robot.name()));
    dir.join(format!("{id}.json"))
}

/// The user's side of the procedure: questions, messages, the live table.
pub trait Console {
    /// Prints `prompt` (no newline) and waits for a line (returned without
    /// its line ending), as Python's `input()`; an error at end of input.
    fn input(&mut self, prompt: &str) -> io::Result<String>;
    /// Prints one line.
    fn print(&mut self, line: &str);
    /// LeRobot's `enter_pressed`, without waiting: true when a line that is
    /// empty after trimming was entered, or input has ended; a line with
    /// text is consumed and is not ENTER.
    fn enter_pressed(&mut self) -> io::Result<bool>;
    /// Shows the MIN/POS/MAX table after a read ([`range_table`]); `last` on
    /// the final one. LeRobot redraws it in place after every read.
    fn show_ranges(&mut self, table: &str, last: bool);
    /// Waits between two reads of the ranges.
    fn pause(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// LeRobot's live table of `record_ranges_of_motion`, one row per motor.
pub fn range_table(rows: &[(&str, i32, i32, i32)]) -> String {
    let mut s = String::from("-------------------------------------------\n");
    s.push_str(&format!("{:<15} | {:>6} | {:>6} | {:>6}\n", "NAME", "MIN", "POS", "MAX"));
    for (name, min, pos, max) in rows {
        s.push_str(&format!("{name:<15} | {min:>6} | {pos:>6} | {max:>6}\n"));
    }
    s
}

/// What the procedure is run with.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrateConfig {
    /// The arm.
    pub robot: Robot,
    /// LeRobot's robot id (`--robot.id`): names the file and the prompts.
    pub id: String,
    /// The bus's serial port (or an emulator's pty).
    pub port: PathBuf,
    /// The calibration file, read when it exists and written at the end
    /// ([`calibration_path`]).
    pub file: PathBuf,
    /// Bits per second (LeRobot: 1 Mbit/s on both buses).
    pub baud: u32,
    /// Repeats of a failed exchange (LeRobot reads the ranges with
    /// `num_retry=5`).
    pub max_retries: u32,
    /// Added to each exchange's wire time for its timeout.
    pub timeout_margin: Duration,
    /// Between two reads while ranges are recorded (LeRobot: 20 ms).
    pub read_period: Duration,
}

impl Default for CalibrateConfig {
    fn default() -> Self {
        CalibrateConfig {
            robot: Robot::SoFollower,
            id: String::new(),
            port: PathBuf::new(),
            file: PathBuf::new(),
            baud: 1_000_000,
            max_retries: 5,
            timeout_margin: Duration::from_millis(10),
            read_period: Duration::from_millis(20),
        }
    }
}

/// How the procedure ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The existing file was written to the servos (the user pressed ENTER).
    Reused(CalibrationFile),
    /// A new calibration, written to the servos and to the file.
    Calibrated(CalibrationFile),
}

/// Why the procedure stopped. The servos' torque is off in every case (a
/// dropped bus broadcasts torque off).
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The bus failed (port, a servo that does not answer, a refusal).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The existing file is not this robot's, or a joint never moved.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    /// The calibration directory or file could not be made or written.
    #[error("calibration file {path}: {source}")]
    File {
        /// The path.
        path: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Input ended (or failed) while a question waited.
    #[error("no answer to {question:?}: {source}")]
    Input {
        /// The question.
        question: String,
        /// Why there was no answer.
        #[source]
        source: io::Error,
    },
}

/// Either bus, with what the procedure needs of it.
enum Arm {
    Feetech(FeetechBus),
    Dynamixel(DynamixelBus),
}

impl Arm {
    fn open(cfg: &CalibrateConfig, ids: &[u8]) -> Result<Arm, BusError> {
        Ok(match cfg.robot.protocol() {
            Protocol::Feetech => {
                let c = FeetechConfig {
                    baud: cfg.baud,
                    max_retries: cfg.max_retries,
                    timeout_margin: cfg.timeout_margin,
                    ..FeetechConfig::default()
                };
                Arm::Feetech(FeetechBus::open(&cfg.port, ids, c)?)
            }
            Protocol::Dynamixel => {
                let c = DynamixelConfig {
                    baud: cfg.baud,
                    max_retries: cfg.max_retries,
                    timeout_margin: cfg.timeout_margin,
                    ..DynamixelConfig::default()
                };
                Arm::Dynamixel(DynamixelBus::open(&cfg.port, ids, c)?)
            }
        })
    }

    fn bus(&mut self) -> &mut dyn ServoBus {
        match self {
            Arm::Feetech(b) => b,
            Arm::Dynamixel(b) => b,
        }
    }

    /// LeRobot's `configure()` (torque stays off here, see the module docs).
    fn setup(&mut self) -> Result<(), BusError> {
        match self {
            Arm::Feetech(b) => b.setup_so101(&So101Setup::default()),
            Arm::Dynamixel(b) => b.setup_koch(&KochSetup::default()),
        }
    }

    /// `Operating_Mode` as `calibrate()` writes it for every motor.
    fn calibration_mode(&mut self, ids: &[u8]) -> Result<(), BusError> {
        for &id in ids {
            match self {
                Arm::Feetech(b) => b.write_register(id, sts::OPERATING_MODE, 0)?,
                Arm::Dynamixel(b) => {
                    b.write_register(id, xseries::OPERATING_MODE, xseries::mode::EXTENDED_POSITION.into())?
                }
            }
        }
        Ok(())
    }

    fn set_half_turn_homings(&mut self) -> Result<Vec<i32>, BusError> {
        match self {
            Arm::Feetech(b) => b.set_half_turn_homings(),
            Arm::Dynamixel(b) => b.set_half_turn_homings(),
        }
    }

    fn write_calibration(&mut self, file: &CalibrationFile, robot: Robot) -> Result<(), CalibrateError> {
        let modes = robot.joint_modes();
        match self {
            Arm::Feetech(b) => b.write_calibration(&file.joints(&modes)?)?,
            Arm::Dynamixel(b) => b.write_calibration(&file.dynamixel_joints(&modes)?)?,
        }
        Ok(())
    }

    /// LeRobot's `disconnect()`: torque off, each servo acknowledging.
    fn shutdown(self) -> Result<(), BusError> {
        match self {
            Arm::Feetech(b) => b.shutdown(),
            Arm::Dynamixel(b) => b.shutdown(),
        }
    }
}

fn ask(console: &mut dyn Console, question: &str) -> Result<String, CalibrateError> {
    console.input(question).map_err(|source| CalibrateError::Input { question: question.to_string(), source })
}

/// Runs `lerobot-calibrate`'s procedure (module docs) with `console` as the
/// user. Errors leave torque off.
pub fn calibrate(cfg: &CalibrateConfig, console: &mut dyn Console) -> Result<Outcome, CalibrateError> {
    let robot = cfg.robot;
    let shown = cfg.file.display().to_string();
    let file_error = |source| CalibrateError::File { path: shown.clone(), source };
    if let Some(dir) = cfg.file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(file_error)?;
    }
    // An existing file must be this robot's before the arm is touched.
    let existing = if cfg.file.is_file() {
        let f = CalibrationFile::load(&cfg.file)?;
        f.joints(&robot.joint_modes())?;
        Some(f)
    } else {
        None
    };
    let ids: Vec<u8> = robot.motors().iter().map(|&(_, id)| id).collect();
    let mut arm = Arm::open(cfg, &ids)?;
    arm.setup()?;
    let who = format!("{} {}", cfg.id, robot.class_name());

    if let Some(file) = existing {
        let answer = ask(
            console,
            &format!(
                "Press ENTER to use provided calibration file associated with the id {}, or type 'c' and press ENTER to run calibration: ",
                cfg.id
            ),
        )?;
        if answer.trim().to_lowercase() != "c" {
            console.print(&format!("Writing calibration file associated with the id {} to the motors", cfg.id));
            arm.write_calibration(&file, robot)?;
            arm.shutdown()?;
            return Ok(Outcome::Reused(file));
        }
    }

    console.print(&format!("Running calibration of {who}"));
    arm.bus().set_torque(false)?;
    arm.calibration_mode(&ids)?;
    ask(console, &format!("Move {who} to the middle of its range of motion and press ENTER...."))?;
    let homings = arm.set_half_turn_homings()?;

    console.print(&robot.sweep_instruction());
    console.print("Recording positions. Press ENTER to stop...");
    let recorded: Vec<usize> = (0..ids.len()).filter(|&i| !robot.full_turn().contains(&robot.motors()[i].0)).collect();
    let mut pos = vec![0; ids.len()];
    arm.bus().sync_read_positions(&mut pos)?;
    let mut rec = RangeRecorder::new(&pos);
    loop {
        arm.bus().sync_read_positions(&mut pos)?;
        rec.observe(&pos);
        let done = console
            .enter_pressed()
            .map_err(|source| CalibrateError::Input { question: "Press ENTER to stop".into(), source })?;
        let rows: Vec<(&str, i32, i32, i32)> =
            recorded.iter().map(|&i| (robot.motors()[i].0, rec.mins()[i], pos[i], rec.maxes()[i])).collect();
        console.show_ranges(&range_table(&rows), done);
        if done {
            break;
        }
        console.pause(cfg.read_period);
    }
    let file = rec.finish(robot.motors(), &homings, robot.full_turn())?;
    arm.write_calibration(&file, robot)?;
    write_file(&cfg.file, &file.to_json()).map_err(file_error)?;
    console.print(&format!("Calibration saved to {shown}"));
    arm.shutdown()?;
    Ok(Outcome::Calibrated(file))
}

/// Writes through a temporary file and a rename, so an interrupted write
/// never leaves half a calibration where LeRobot and `ganglion run` look.
fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// A [`Console`] on the process's stdin and stdout, as LeRobot's
/// `input()` / `enter_pressed()` / live table use the terminal. Stdin is
/// read unbuffered by the standard library (its own line buffer here), so
/// `enter_pressed` can poll the descriptor without losing lines a script
/// sent ahead. On a terminal the table is redrawn in place after every
/// read; otherwise (a pipe, a log) it is printed at most once a second and
/// once at the end.
#[derive(Debug)]
pub struct TerminalConsole {
    buf: Vec<u8>,
    eof: bool,
    tty: bool,
    drawn_lines: usize,
    last_table: Option<std::time::Instant>,
}

impl Default for TerminalConsole {
    fn default() -> Self {
        TerminalConsole {
            buf: Vec::new(),
            eof: false,
            tty: rustix::termios::isatty(std::io::stdout()),
            drawn_lines: 0,
            last_table: None,
        }
    }
}

impl TerminalConsole {
    /// A console on stdin/stdout.
    pub fn new() -> TerminalConsole {
        TerminalConsole::default()
    }

    /// One complete line from the buffer, if there is one.
    fn take_line(&mut self) -> Option<String> {
        let nl = self.buf.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.buf.drain(..=nl).collect();
        let text = String::from_utf8_lossy(&line[..nl]);
        Some(text.trim_end_matches('\r').to_string())
    }

    /// Reads what stdin has (blocking when `wait`); false at end of input.
    fn fill(&mut self, wait: bool) -> io::Result<()> {
        use rustix::event::{poll, PollFd, PollFlags};
        let stdin = std::io::stdin();
        if !wait {
            let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
            let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
            if poll(&mut fds, Some(&zero)).map_err(io::Error::from)? == 0 {
                return Ok(());
            }
        }
        let mut chunk = [0u8; 256];
        loop {
            match rustix::io::read(&stdin, &mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn flush() {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

impl Console for TerminalConsole {
    fn input(&mut self, prompt: &str) -> io::Result<String> {
        print!("{prompt}");
        Self::flush();
        loop {
            if let Some(line) = self.take_line() {
                return Ok(line);
            }
            if self.eof {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of input"));
            }
            self.fill(true)?;
        }
    }

    fn print(&mut self, line: &str) {
        println!("{line}");
        self.drawn_lines = 0;
        Self::flush();
    }

    fn enter_pressed(&mut self) -> io::Result<bool> {
        if self.buf.iter().all(|&b| b != b'\n') && !self.eof {
            self.fill(false)?;
        }
        match self.take_line() {
            Some(line) => Ok(line.trim().is_empty()),
            None => Ok(self.eof),
        }
    }

    fn show_ranges(&mut self, table: &str, last: bool) {
        if self.tty {
            if self.drawn_lines > 0 {
                print!("\x1b[{}A", self.drawn_lines);
            }
            print!("{table}");
            self.drawn_lines = table.lines().count();
        } else {
            let due = self.last_table.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if !(due || last) {
                return;
            }
            print!("{table}");
            self.last_table = Some(std::time::Instant::now());
        }
        Self::flush();
    }
}
