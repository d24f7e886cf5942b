//! `[transport] kind = "servo"`: the robot's serial servo bus
//! (`ganglion-servo`: Feetech STS/SMS or Dynamixel X-series, LeRobot
//! calibration) driven in-process, on a thread of its own.
//!
//! At start, before the control loop exists ([`ServoTransport::start`]):
//! the calibration file is read and checked against the profile's joints
//! and `[transport.servo] ids`; the port is opened and every id pinged
//! (a wrong port or a missing id is an error naming it); LeRobot's set-up
//! is written with torque off, and the `torque_limit` (Feetech
//! `Torque_Limit`, Dynamixel `Goal_PWM`); the calibration is checked
//! against the registers (refused naming motor and register); the goals
//! are set to the present positions; only then is torque switched on.
//!
//! The bus thread (never the control thread: the loop must not wait on
//! I/O) then, every control period, does one sync read of the present
//! positions, converts them to radians with the calibration and publishes
//! them to the loop's joint-state slot stamped with the time the read was
//! sent (loop clock); and each command the loop hands over (the newest one,
//! when several are queued) becomes one sync write of goal positions.
//!
//! Hardware faults become the supervisor's causes through a
//! [`DeviceCauses`] word the bus thread writes and the loop reads once a
//! tick (one atomic read): `servo_fault` while any servo reports alarm
//! bits (Feetech status bits; Dynamixel's alert bit, its
//! `Hardware_Error_Status` then read once to name it), `bus_fault` once
//! more than `max_failed_reads` sync reads in a row failed after the
//! driver's retries (a servo that stopped answering, or whose answers stay
//! corrupt) or more than `max_checksum_errors_per_s` checksum errors came
//! in one second. Each is raised the moment the bus thread knows it, so
//! the fallback engages at the next tick; each onset is a `faults` entry
//! of the report naming the servo, its motor and the bit or error. A read
//! that fails publishes nothing, so the slot also ages into
//! `stale_joint_state`; the fallback's commands still go out to the
//! servos that answer.
//!
//! Shutdown: the loop's final hold command is written, the servos hold it
//! with torque for `exit_hold_ms` (still read every period, which keeps a
//! Dynamixel bus watchdog fed), then torque is switched off, each servo
//! acknowledging (a silent one gets the broadcast the driver sends on
//! drop). Dropping the transport without a clean shutdown (an early
//! return, a panic unwinding) switches torque off at once. A killed
//! process writes nothing more: the servos hold the last goal written (the
//! loop's last command, never an older one: the bus thread writes only the
//! newest command); a Dynamixel bus additionally stops itself after
//! `bus_watchdog_ms` without an instruction packet (`Bus_Watchdog`, set at
//! arming).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ganglion_codec::{Outbox, TopicCounters};
use ganglion_core::{Cause, Clock, DeviceCauses, JointState, SlotWriter, Stamped};
use ganglion_policies::preprocess::JointRange;
use ganglion_servo::{
    xseries, BusCounters, BusError, CalibrationFile, DynamixelBus, DynamixelConfig, FeetechBus, FeetechConfig, Joint,
    KochSetup, NormMode, ServoBus, So101Setup, StatusBits,
};
use hdrhistogram::Histogram;

use crate::stats::{us, Percentiles};

/// The bus protocol (`[transport.servo] protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServoProtocol {
    /// Feetech STS/SMS, protocol 0 (SO-100 / SO-101 arms).
    #[default]
    Feetech,
    /// Dynamixel protocol 2.0, X series (Koch arms).
    Dynamixel,
}

/// `[transport.servo]`: the servo bus, for `kind = "servo"`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServoSection {
    /// Serial port, e.g. `/dev/ttyACM0` or a udev name `/dev/so101_follower`.
    pub port: PathBuf,
    /// `feetech` or `dynamixel`.
    pub protocol: ServoProtocol,
    /// Bits per second (the servos' `Baud_Rate`).
    pub baud: u32,
    /// LeRobot's calibration file of this arm; relative to the profile's
    /// directory.
    pub calibration: Option<PathBuf>,
    /// The servo id of each robot joint, in joint order; the joint names are
    /// the calibration file's motor names.
    pub ids: Vec<u8>,
    /// At shutdown, how long the servos hold the final command with torque
    /// before torque goes off, ms.
    pub exit_hold_ms: u64,
    /// Sync reads in a row that may fail (after the driver's retries)
    /// before `bus_fault`; 0: the first failed read raises it.
    pub max_failed_reads: u32,
    /// Checksum errors within one second beyond which `bus_fault` is
    /// raised (until a second passes within the budget).
    pub max_checksum_errors_per_s: u32,
    /// Added to each exchange's wire time to make its timeout, ms: the
    /// adapter's and the host's latency (twice an FTDI latency timer is
    /// added on top by the driver).
    pub timeout_margin_ms: u64,
    /// Dynamixel only: the servos' `Bus_Watchdog`, ms (rounded up to 20 ms
    /// units, at most 2540): a servo that hears no instruction packet this
    /// long stops by itself. 0: off. Feetech servos have none.
    pub bus_watchdog_ms: u64,
    /// Fraction of each servo's own torque limit it may use, in (0, 1]:
    /// Feetech `Torque_Limit` := this × `Max_Torque_Limit`, Dynamixel
    /// `Goal_PWM` := this × `PWM_Limit`, written at arming. 1.0: the
    /// servos' own limits (their power-up values).
    pub torque_limit: f64,
}

impl Default for ServoSection {
    fn default() -> Self {
        ServoSection {
            port: PathBuf::new(),
            protocol: ServoProtocol::Feetech,
            baud: 1_000_000,
            calibration: None,
            ids: Vec::new(),
            exit_hold_ms: 500,
            max_failed_reads: 0,
            max_checksum_errors_per_s: 10,
            timeout_margin_ms: 3,
            bus_watchdog_ms: 100,
            torque_limit: 1.0,
        }
    }
}

/// The largest id either protocol addresses one servo with.
const MAX_ID: u8 = 252;

impl ServoSection {
    /// What `kind = "servo"` needs of this section alone: `(key, expected)`
    /// of the first problem.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.port.as_os_str().is_empty() {
            return Some(("port", "the servo bus's serial port, e.g. `/dev/ttyACM0` or `/dev/so101_follower`".into()));
        }
        if !(9_600..=4_500_000).contains(&self.baud) {
            return Some((
                "baud",
                "a baud rate in 9600..=4500000 (the servos' `Baud_Rate`; 1000000 as LeRobot)".into(),
            ));
        }
        if self.calibration.is_none() {
            return Some((
                "calibration",
                "the arm's LeRobot calibration file (LeRobot 0.6.1: \
                 `~/.cache/huggingface/lerobot/calibration/robots/so_follower/<id>.json`, Koch: `koch_follower`)"
                    .into(),
            ));
        }
        if self.ids.is_empty() {
            return Some(("ids", "the servo id of each robot joint, in joint order".into()));
        }
        for (i, id) in self.ids.iter().enumerate() {
            if *id > MAX_ID || self.ids[..i].contains(id) {
                return Some(("ids", format!("unique servo ids in 0..={MAX_ID} (id {id} at index {i})")));
            }
        }
        if self.exit_hold_ms > 60_000 {
            return Some(("exit_hold_ms", "0..=60000 ms".into()));
        }
        if self.timeout_margin_ms > 1_000 {
            return Some(("timeout_margin_ms", "0..=1000 ms".into()));
        }
        if self.bus_watchdog_ms > 2_540 {
            return Some(("bus_watchdog_ms", "0 (off) or up to 2540 ms (127 units of 20 ms)".into()));
        }
        if !(self.torque_limit > 0.0 && self.torque_limit <= 1.0) {
            return Some((
                "torque_limit",
                format!("a fraction in (0, 1] of the servos' own torque limit (got {})", self.torque_limit),
            ));
        }
        None
    }
}

/// Why the servo bus could not be armed. Each names the device (port,
/// servo id and motor, calibration file) and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ServoStartError {
    /// The calibration file cannot be read, or is not this robot's.
    #[error(
        "transport.servo.calibration: {file}: {source}; expected a LeRobot calibration of this robot's motors {motors:?} \
         (the robot.joints names) with ids {ids:?} (transport.servo.ids)"
    )]
    Calibration {
        /// The file.
        file: String,
        /// What is wrong.
        source: ganglion_servo::CalibrationError,
        /// The motors expected.
        motors: Vec<String>,
        /// Their ids.
        ids: Vec<u8>,
    },
    /// The port could not be opened or configured.
    #[error("transport.servo.port: {source}; expected the serial port of the servo bus (a USB adapter, /dev/ttyACM*)")]
    Port {
        /// The driver's error (names the path).
        source: BusError,
    },
    /// A servo did not answer its ping, or is another model.
    #[error(
        "transport.servo.ids: motor {motor:?}: {source}; expected servo ids {ids:?} on {port} (check the cable, the \
         power supply and each servo's id)"
    )]
    Servo {
        /// The motor (joint) name.
        motor: String,
        /// The driver's error (names the servo).
        source: BusError,
        /// The ids expected.
        ids: Vec<u8>,
        /// The port.
        port: String,
    },
    /// The registers disagree with the calibration file (refusal to arm).
    #[error(
        "refusing to arm: {source} (transport.servo.calibration = {file}); recalibrate the arm or name its own file"
    )]
    CalibrationMismatch {
        /// The driver's error (names motor, register, both values).
        source: BusError,
        /// The file.
        file: String,
    },
    /// A set-up or arming exchange failed.
    #[error("servo bus on {port}: {what}: {source}")]
    Bus {
        /// The port.
        port: String,
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        source: BusError,
    },
    /// The bus thread could not be started.
    #[error("starting the servo bus thread: {0}")]
    Thread(std::io::Error),
}

/// One stretch of failed reads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServoOutage {
    /// Capture stamp (loop clock, ns) of the last good read before it; 0
    /// when none.
    pub last_read_ns: u64,
    /// When the first failed read was sent (loop clock, ns).
    pub first_failure_ns: u64,
    /// Capture stamp of the first good read after it; `None` when the run
    /// ended first.
    pub recovered_ns: Option<u64>,
    /// Failed reads in it.
    pub failed_reads: u64,
    /// The first failure's error (names the servo).
    pub error: String,
}

/// A hardware or bus fault the bus thread raised as a cause.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServoFault {
    /// `servo_fault` (alarm bits) or `bus_fault` (silent servo, corrupt
    /// answers, checksum errors beyond the budget).
    pub cause: String,
    /// The servo; `None` when the port itself failed.
    pub id: Option<u8>,
    /// Its motor (joint) name.
    pub motor: Option<String>,
    /// What: the alarm bits by name (`overload`, `overheat+voltage`;
    /// Dynamixel: its `Hardware_Error_Status` in ROBOTIS's words), or the
    /// bus error.
    pub what: String,
    /// When the bus thread raised it (loop clock, ns): the loop's next
    /// tick sees it.
    pub raised_ns: u64,
    /// When it cleared; `None` when still active at the end.
    pub cleared_ns: Option<u64>,
}

/// The servo bus's part of the run report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServoReport {
    /// The port.
    pub port: String,
    /// `feetech` or `dynamixel`.
    pub protocol: ServoProtocol,
    /// Bits per second.
    pub baud: u32,
    /// Servo ids, in joint order.
    pub ids: Vec<u8>,
    /// `[transport.servo] torque_limit`: the fraction of each servo's own
    /// torque limit it was armed with.
    pub torque_limit: f64,
    /// What was written for it at arming, per servo in `ids` order:
    /// Feetech `Torque_Limit` (0.1 %), Dynamixel `Goal_PWM` (of `PWM_Limit`).
    pub torque_limit_registers: Vec<i32>,
    /// Sync reads that succeeded (each published a joint state).
    pub reads: u64,
    /// Sync reads that failed after the driver's retries (nothing published).
    pub read_failures: u64,
    /// Sync writes of goals sent.
    pub writes: u64,
    /// Sync writes that failed (the port itself failed: nobody answers a
    /// sync write).
    pub write_failures: u64,
    /// Commands not written: a value with no tick count (non-finite).
    pub bad_commands: u64,
    /// Commands superseded by a newer one before the bus was free.
    pub superseded_commands: u64,
    /// Read periods skipped because the bus was still busy (a failing read
    /// takes all its retries).
    pub skipped_periods: u64,
    /// Reads whose status packets carried alarm bits (overload, overheat,
    /// voltage…).
    pub alarm_reads: u64,
    /// Time of one successful sync read, µs (a failing one takes up to
    /// `worst_case_read_us`).
    pub read_us: Percentiles,
    /// Time of one sync write, µs.
    pub write_us: Percentiles,
    /// Wire time of one period's read, answers and write at `baud`, µs.
    pub wire_us_per_period: f64,
    /// The longest a failing read can take (all retries timing out), µs.
    pub worst_case_read_us: f64,
    /// Stretches of failed reads (the first 32).
    pub outages: Vec<ServoOutage>,
    /// `servo_fault` onsets (a servo's alarm bits appearing or changing).
    pub servo_faults: u64,
    /// `bus_fault` onsets.
    pub bus_faults: u64,
    /// Each fault raised (the first 32), naming servo and bit or error.
    pub faults: Vec<ServoFault>,
    /// What the driver counted (retries, timeouts, checksum errors…).
    pub counters: BusCounters,
    /// How torque went off: `acknowledged`, or the error and `broadcast`.
    pub torque_off: String,
}

/// The bus, whichever protocol.
// One per process: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Bus {
    Feetech(FeetechBus),
    Dynamixel(DynamixelBus),
}

impl Bus {
    fn bus(&mut self) -> &mut dyn ServoBus {
        match self {
            Bus::Feetech(b) => b,
            Bus::Dynamixel(b) => b,
        }
    }

    fn counters(&self) -> BusCounters {
        match self {
            Bus::Feetech(b) => b.counters(),
            Bus::Dynamixel(b) => b.counters(),
        }
    }

    fn worst_case_read(&self) -> Duration {
        match self {
            Bus::Feetech(b) => b.worst_case_read(),
            Bus::Dynamixel(b) => b.worst_case_read(),
        }
    }

    fn tick_wire(&self) -> Duration {
        match self {
            Bus::Feetech(b) => b.tick_wire().1,
            Bus::Dynamixel(b) => b.tick_wire().1,
        }
    }

    fn check_calibration(&mut self, joints: &[Joint]) -> Result<(), BusError> {
        match self {
            Bus::Feetech(b) => b.check_calibration(joints),
            Bus::Dynamixel(b) => b.check_calibration(joints),
        }
    }

    /// Names the alarm `bits` servo `id` reported: Feetech's status bits;
    /// on Dynamixel the alert bit, named by one read of its
    /// `Hardware_Error_Status` (bus thread, once per onset).
    fn describe_alarm(&mut self, id: u8, bits: StatusBits) -> String {
        match self {
            Bus::Feetech(_) => bits.to_string(),
            Bus::Dynamixel(b) => match b.hardware_error(id) {
                Ok(raw) => format!("hardware error: {}", xseries::hardware_error_names(raw)),
                Err(e) => format!("{bits} (Hardware_Error_Status unread: {e})"),
            },
        }
    }

    /// Torque off, acknowledged by every servo (consumes the bus; on an
    /// error its drop still broadcasts torque off). A Dynamixel bus's
    /// watchdog is switched off first (and cleared, had it expired).
    fn shutdown(self) -> Result<(), BusError> {
        match self {
            Bus::Feetech(b) => b.shutdown(),
            Bus::Dynamixel(mut b) => {
                let watchdog = b.set_bus_watchdog(Duration::ZERO);
                b.shutdown()?;
                watchdog
            }
        }
    }
}

/// What the loop's side shares with the bus thread.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    reads: AtomicU64,
    read_failures: AtomicU64,
    /// `servo_fault` / `bus_fault` for the control loop.
    causes: DeviceCauses,
}

/// A running servo bus: the thread that reads and writes it.
pub struct ServoTransport {
    shared: Arc<Shared>,
    joints: Arc<TopicCounters>,
    thread: Option<JoinHandle<ServoReport>>,
    port: String,
}

impl std::fmt::Debug for ServoTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServoTransport").field("port", &self.port).finish()
    }
}

/// The calibration file's path as the profile means it.
/// The joints of the calibration file `cfg` names (relative to `base`), in
/// `joint_names`' order, each in radians (LeRobot's degrees).
#[allow(clippy::result_large_err)]
fn calibrated_joints(
    cfg: &ServoSection,
    joint_names: &[String],
    base: Option<&Path>,
) -> Result<Vec<ganglion_servo::Joint>, ServoStartError> {
    let ids = &cfg.ids;
    let calibration = cfg.calibration.clone().unwrap_or_default();
    let file = resolve(&calibration, base);
    let robot: Vec<(&str, u8, NormMode)> =
        joint_names.iter().zip(ids).map(|(n, &id)| (n.as_str(), id, NormMode::Degrees)).collect();
    let calibration_error = |source| ServoStartError::Calibration {
        file: file.display().to_string(),
        source,
        motors: joint_names.to_vec(),
        ids: ids.clone(),
    };
    let cal = CalibrationFile::load(&file).map_err(calibration_error)?;
    match cfg.protocol {
        ServoProtocol::Feetech => cal.joints(&robot),
        ServoProtocol::Dynamixel => cal.dynamixel_joints(&robot),
    }
    .map_err(calibration_error)
}

/// The arm's calibrated range per joint (`joint_names`' order) from the
/// calibration file `cfg` names, as a bundle in LeRobot's range units
/// (`range_m100_100`, `range_0_100`) needs it: `range_min` and `range_max`
/// in this driver's radians, and whether `drive_mode` mirrors them.
#[allow(clippy::result_large_err)]
pub fn joint_ranges(
    cfg: &ServoSection,
    joint_names: &[String],
    base: Option<&Path>,
) -> Result<Vec<JointRange>, ServoStartError> {
    Ok(calibrated_joints(cfg, joint_names, base)?.iter().map(joint_range).collect())
}

/// One joint's [`JointRange`].
pub fn joint_range(j: &ganglion_servo::Joint) -> JointRange {
    JointRange { min_rad: j.radians(j.range_min), max_rad: j.radians(j.range_max), inverted: j.inverted() }
}

fn resolve(path: &Path, base: Option<&Path>) -> PathBuf {
    match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_path_buf(),
    }
}

impl ServoTransport {
    /// Arms the bus (see the module docs for the order of the checks) and
    /// starts its thread, which publishes into `slot` and drains `outbox`.
    /// `joint_names` are the robot's joints in order; `base` the profile's
    /// directory.
    // Once per run, before the loop exists: the error's size costs nothing
    // (the caller boxes it).
    #[allow(clippy::result_large_err)]
    pub fn start(
        cfg: &ServoSection,
        joint_names: &[String],
        base: Option<&Path>,
        period: Duration,
        slot: SlotWriter<Stamped<JointState>>,
        outbox: Outbox,
        clock: Arc<dyn Clock>,
    ) -> Result<ServoTransport, ServoStartError> {
        let ids = cfg.ids.clone();
        let joints = calibrated_joints(cfg, joint_names, base)?;
        let shown = resolve(&cfg.calibration.clone().unwrap_or_default(), base).display().to_string();

        let port = cfg.port.display().to_string();
        let motor_of = |id: u8| {
            joint_names.iter().zip(&ids).find(|(_, i)| **i == id).map_or_else(|| format!("id {id}"), |(n, _)| n.clone())
        };
        let open_error = |source: BusError| match source {
            BusError::Port { .. } | BusError::Io { .. } => ServoStartError::Port { source },
            BusError::NoResponse { id, .. } | BusError::Corrupt { id, .. } | BusError::WrongModel { id, .. } => {
                ServoStartError::Servo { motor: motor_of(id), source, ids: ids.clone(), port: port.clone() }
            }
            other => ServoStartError::Bus { port: port.clone(), what: "opening the bus", source: other },
        };
        let id_of = |name: &str| joint_names.iter().position(|n| n == name).and_then(|i| ids.get(i).copied());
        let bus_error = |what: &'static str| {
            let port = port.clone();
            move |source: BusError| ServoStartError::Bus { port: port.clone(), what, source }
        };
        let (mut bus, torque_limits) = match cfg.protocol {
            ServoProtocol::Feetech => {
                let timeout_margin = Duration::from_millis(cfg.timeout_margin_ms);
                let fc = FeetechConfig { baud: cfg.baud, timeout_margin, ..FeetechConfig::default() };
                let mut b = FeetechBus::open(&cfg.port, &ids, fc).map_err(open_error)?;
                let setup = So101Setup { gripper_id: id_of("gripper"), ..So101Setup::default() };
                b.setup_so101(&setup).map_err(bus_error("LeRobot's SO-101 set-up"))?;
                let limits = b.set_torque_limit(cfg.torque_limit).map_err(bus_error("writing Torque_Limit"))?;
                (Bus::Feetech(b), limits)
            }
            ServoProtocol::Dynamixel => {
                let timeout_margin = Duration::from_millis(cfg.timeout_margin_ms);
                let dc = DynamixelConfig { baud: cfg.baud, timeout_margin, ..DynamixelConfig::default() };
                let mut b = DynamixelBus::open(&cfg.port, &ids, dc).map_err(open_error)?;
                // A watchdog that expired under an earlier run refuses goals: clear it.
                b.set_bus_watchdog(Duration::ZERO).map_err(bus_error("clearing Bus_Watchdog"))?;
                let setup =
                    KochSetup { gripper_id: id_of("gripper"), elbow_id: id_of("elbow_flex"), ..KochSetup::default() };
                b.setup_koch(&setup).map_err(bus_error("LeRobot's Koch set-up"))?;
                let limits = b.set_torque_limit(cfg.torque_limit).map_err(bus_error("writing Goal_PWM"))?;
                (Bus::Dynamixel(b), limits)
            }
        };
        bus.check_calibration(&joints).map_err(|source| match source {
            BusError::Calibration(_) => ServoStartError::CalibrationMismatch { source, file: shown.clone() },
            other => ServoStartError::Bus { port: port.clone(), what: "checking the calibration", source: other },
        })?;
        // Hold where the arm stands, then arm.
        let mut raw = vec![0i32; ids.len()];
        bus.bus().sync_read_positions(&mut raw).map_err(bus_error("reading the present positions"))?;
        bus.bus().sync_write_goals(&raw).map_err(bus_error("writing the goals (present positions)"))?;
        bus.bus().set_torque(true).map_err(bus_error("switching torque on"))?;
        if let (Bus::Dynamixel(b), true) = (&mut bus, cfg.bus_watchdog_ms > 0) {
            b.set_bus_watchdog(Duration::from_millis(cfg.bus_watchdog_ms))
                .map_err(bus_error("setting Bus_Watchdog"))?;
        }

        let shared = Arc::new(Shared::default());
        let counters = Arc::new(TopicCounters::default());
        let mut worker = Worker {
            report: ServoReport {
                port: port.clone(),
                protocol: cfg.protocol,
                baud: cfg.baud,
                ids: ids.clone(),
                torque_limit: cfg.torque_limit,
                torque_limit_registers: torque_limits,
                reads: 0,
                read_failures: 0,
                writes: 0,
                write_failures: 0,
                bad_commands: 0,
                superseded_commands: 0,
                skipped_periods: 0,
                alarm_reads: 0,
                read_us: Percentiles::default(),
                write_us: Percentiles::default(),
                wire_us_per_period: bus.tick_wire().as_secs_f64() * 1e6,
                worst_case_read_us: bus.worst_case_read().as_secs_f64() * 1e6,
                outages: Vec::with_capacity(MAX_OUTAGES),
                servo_faults: 0,
                bus_faults: 0,
                faults: Vec::with_capacity(MAX_OUTAGES),
                counters: BusCounters::default(),
                torque_off: String::new(),
            },
            bus: Some(bus),
            joints,
            raw,
            goals: vec![0; ids.len()],
            slot,
            outbox,
            clock,
            period,
            exit_hold: Duration::from_millis(cfg.exit_hold_ms),
            shared: shared.clone(),
            counters: counters.clone(),
            seq: 0,
            last_capture: 0,
            read_ns: crate::control::runner::duration_histogram(),
            write_ns: crate::control::runner::duration_histogram(),
            faults: FaultState {
                max_failed_reads: cfg.max_failed_reads,
                max_checksum_errors_per_s: u64::from(cfg.max_checksum_errors_per_s),
                alarms: vec![StatusBits::default(); ids.len()],
                open_alarms: vec![None; ids.len()],
                failed_in_row: 0,
                read_fault: None,
                window: ErrorWindow::new(),
                checksum_fault: None,
            },
        };
        // The first joint state before the loop starts.
        worker.read();
        let thread = std::thread::Builder::new()
            .name("ganglion-servo".into())
            .spawn(move || worker.run())
            .map_err(ServoStartError::Thread)?;
        Ok(ServoTransport { shared, joints: counters, thread: Some(thread), port })
    }

    /// The joint-state topic's counters (received = reads published).
    pub fn joint_counters(&self) -> Arc<TopicCounters> {
        self.joints.clone()
    }

    /// The port.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// Sync reads that failed so far.
    pub fn read_failures(&self) -> u64 {
        self.shared.read_failures.load(Ordering::Relaxed)
    }

    /// The causes the bus raises (`servo_fault`, `bus_fault`), for the
    /// control loop ([`crate::control::ControlLoop::attach_device_causes`]).
    pub fn device_causes(&self) -> DeviceCauses {
        self.shared.causes.clone()
    }

    /// Waits for the bus thread: it writes the queued commands (the loop's
    /// final hold), holds `exit_hold_ms`, switches torque off and reports.
    /// The command sink must be dropped first.
    pub fn shutdown(mut self) -> Option<ServoReport> {
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for ServoTransport {
    fn drop(&mut self) {
        // Not shut down cleanly: torque off now, no hold.
        if let Some(t) = self.thread.take() {
            self.shared.stop.store(true, Ordering::Release);
            let _ = t.join();
        }
    }
}

const MAX_OUTAGES: usize = 32;

/// The servo a failed exchange names, if any.
fn failed_id(e: &BusError) -> Option<u8> {
    match e {
        BusError::NoResponse { id, .. } | BusError::Corrupt { id, .. } | BusError::Alarm { id, .. } => Some(*id),
        _ => None,
    }
}

/// What the bus thread tracks to raise and clear the device causes.
struct FaultState {
    max_failed_reads: u32,
    max_checksum_errors_per_s: u64,
    /// Each servo's alarm bits at the last read.
    alarms: Vec<StatusBits>,
    /// Each servo's open `servo_fault` entry (index into `report.faults`).
    open_alarms: Vec<Option<usize>>,
    failed_in_row: u32,
    /// The open `bus_fault` entry of failed reads (index, or `usize::MAX`
    /// past the report's cap).
    read_fault: Option<usize>,
    /// Recent samples of the checksum-error count.
    window: ErrorWindow,
    /// The open `bus_fault` entry of the checksum budget.
    checksum_fault: Option<usize>,
}

/// Samples of a growing error count, one per read, enough for a second at
/// up to 1 kHz (allocated once; older samples are overwritten).
struct ErrorWindow {
    samples: Vec<(Instant, u64)>,
    next: usize,
    filled: usize,
}

impl ErrorWindow {
    const CAPACITY: usize = 1024;

    fn new() -> ErrorWindow {
        ErrorWindow { samples: vec![(Instant::now(), 0); Self::CAPACITY], next: 0, filled: 0 }
    }

    /// Records `count` at `now`; how much it grew over the last second
    /// (since the oldest sample within it, or the oldest kept).
    fn errors_in_last_second(&mut self, now: Instant, count: u64) -> u64 {
        self.samples[self.next] = (now, count);
        self.next = (self.next + 1) % Self::CAPACITY;
        self.filled = (self.filled + 1).min(Self::CAPACITY);
        // Back from the newest sample to the oldest one within the second.
        let newest = (self.next + Self::CAPACITY - 1) % Self::CAPACITY;
        let mut base = count;
        for k in 1..self.filled {
            let (t, c) = self.samples[(newest + Self::CAPACITY - k) % Self::CAPACITY];
            if now.saturating_duration_since(t) > Duration::from_secs(1) {
                break;
            }
            base = c;
        }
        count.saturating_sub(base)
    }
}

/// The bus thread's state.
struct Worker {
    report: ServoReport,
    bus: Option<Bus>,
    joints: Vec<Joint>,
    raw: Vec<i32>,
    goals: Vec<i32>,
    slot: SlotWriter<Stamped<JointState>>,
    outbox: Outbox,
    clock: Arc<dyn Clock>,
    period: Duration,
    exit_hold: Duration,
    shared: Arc<Shared>,
    counters: Arc<TopicCounters>,
    seq: u64,
    last_capture: u64,
    read_ns: Histogram<u64>,
    write_ns: Histogram<u64>,
    faults: FaultState,
}

impl Worker {
    fn run(mut self) -> ServoReport {
        let mut next_read = Instant::now() + self.period;
        let clean = loop {
            if self.shared.stop.load(Ordering::Acquire) {
                break false;
            }
            let now = Instant::now();
            if now >= next_read {
                self.read();
                next_read += self.period;
                let after = Instant::now();
                while next_read <= after {
                    next_read += self.period;
                    self.report.skipped_periods += 1;
                }
            }
            let wait = next_read.saturating_duration_since(Instant::now());
            match self.outbox.recv_timeout(wait) {
                Some(cmd) => {
                    let mut newest = cmd;
                    while let Some(c) = self.outbox.recv_timeout(Duration::ZERO) {
                        self.report.superseded_commands += 1;
                        newest = c;
                    }
                    self.write(&newest.position);
                }
                None if self.outbox.is_closed() => break true,
                None => {}
            }
        };
        if clean {
            // Hold with torque, still reading every period: a Dynamixel
            // bus watchdog stays fed and faults stay counted.
            let end = Instant::now() + self.exit_hold;
            while Instant::now() < end {
                self.read();
                std::thread::sleep(self.period.min(end.saturating_duration_since(Instant::now())));
            }
        }
        let bus = self.bus.take();
        if let Some(bus) = bus {
            self.report.counters = bus.counters();
            self.report.torque_off = match bus.shutdown() {
                Ok(()) => "acknowledged".into(),
                Err(e) => format!("{e}; torque off broadcast"),
            };
        }
        self.report.read_us = us(&self.read_ns);
        self.report.write_us = us(&self.write_ns);
        self.report
    }

    /// One sync read; publishes the joint state on success.
    fn read(&mut self) {
        let Some(bus) = self.bus.as_mut() else { return };
        let sent = self.clock.now();
        let t0 = Instant::now();
        let result = bus.bus().sync_read_positions(&mut self.raw);
        let took = (t0.elapsed().as_nanos() as u64).max(1);
        let alarmed = bus.bus().alarms().iter().any(|a| !a.is_ok());
        let failure = result.as_ref().err().map(|e| (failed_id(e), e.to_string()));
        match result {
            Ok(()) => {
                self.read_ns.saturating_record(took);
                if alarmed {
                    self.report.alarm_reads += 1;
                }
                let received = self.clock.now();
                self.seq += 1;
                let s = self.slot.buffer_mut();
                for ((p, j), &raw) in s.value.position.iter_mut().zip(&self.joints).zip(&self.raw) {
                    *p = j.radians(raw);
                }
                s.value.velocity.fill(0.0);
                s.value.effort.fill(0.0);
                s.capture = sent;
                s.receive = received;
                s.seq = self.seq;
                self.slot.publish();
                self.report.reads += 1;
                self.shared.reads.fetch_add(1, Ordering::Relaxed);
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                if let Some(o) = self.report.outages.last_mut() {
                    if o.recovered_ns.is_none() {
                        o.recovered_ns = Some(sent.as_nanos());
                    }
                }
                self.last_capture = sent.as_nanos();
            }
            Err(e) => {
                self.report.read_failures += 1;
                self.shared.read_failures.fetch_add(1, Ordering::Relaxed);
                let ongoing = self.report.outages.last().is_some_and(|o| o.recovered_ns.is_none());
                if let (true, Some(o)) = (ongoing, self.report.outages.last_mut()) {
                    o.failed_reads += 1;
                } else if self.report.outages.len() < MAX_OUTAGES {
                    tracing::warn!(error = %e, "servo bus: a sync read failed; the joint state goes stale");
                    self.report.outages.push(ServoOutage {
                        last_read_ns: self.last_capture,
                        first_failure_ns: sent.as_nanos(),
                        recovered_ns: None,
                        failed_reads: 1,
                        error: e.to_string(),
                    });
                }
            }
        }
        self.judge_faults(failure);
    }

    /// The motor name of servo `id`.
    fn motor(&self, id: u8) -> Option<String> {
        self.joints.iter().find(|j| j.id == id).map(|j| j.name.clone())
    }

    /// Opens a fault entry (the first 32 are kept; the count is exact) and
    /// returns its index (`usize::MAX` past the cap).
    fn open_fault(&mut self, cause: Cause, id: Option<u8>, what: String, at_ns: u64) -> usize {
        match cause {
            Cause::ServoFault => self.report.servo_faults += 1,
            _ => self.report.bus_faults += 1,
        }
        tracing::warn!(cause = cause.name(), servo = ?id, what = %what, "servo bus fault");
        if self.report.faults.len() >= MAX_OUTAGES {
            return usize::MAX;
        }
        let motor = id.and_then(|id| self.motor(id));
        self.report.faults.push(ServoFault {
            cause: cause.name().to_string(),
            id,
            motor,
            what,
            raised_ns: at_ns,
            cleared_ns: None,
        });
        self.report.faults.len() - 1
    }

    fn close_fault(&mut self, index: usize, at_ns: u64) {
        if let Some(f) = self.report.faults.get_mut(index) {
            f.cleared_ns = Some(at_ns);
        }
    }

    /// After each read: raises or clears `servo_fault` (alarm bits) and
    /// `bus_fault` (failed reads in a row, checksum errors per second) in
    /// the loop's [`DeviceCauses`]. `failure`: the failed read's servo and
    /// error. Entries are stamped with the time the cause is published
    /// (loop clock): the loop's next tick sees it.
    fn judge_faults(&mut self, failure: Option<(Option<u8>, String)>) {
        let at_ns = self.clock.now().as_nanos();
        // Alarm bits: an entry per servo whose bits appear or change
        // (indexed, not collected: nothing allocates unless a fault opens).
        for i in 0..self.faults.alarms.len() {
            let Some((bits, id)) = self.bus.as_mut().and_then(|b| {
                let bus = b.bus();
                Some((*bus.alarms().get(i)?, *bus.ids().get(i)?))
            }) else {
                return;
            };
            if bits == self.faults.alarms[i] {
                continue;
            }
            self.faults.alarms[i] = bits;
            if let Some(open) = self.faults.open_alarms[i].take() {
                self.close_fault(open, at_ns);
            }
            if !bits.is_ok() {
                let what = self.bus.as_mut().map_or_else(|| bits.to_string(), |b| b.describe_alarm(id, bits));
                self.faults.open_alarms[i] = Some(self.open_fault(Cause::ServoFault, Some(id), what, at_ns));
            }
        }
        if self.faults.alarms.iter().any(|a| !a.is_ok()) {
            self.shared.causes.raise(Cause::ServoFault);
        } else {
            self.shared.causes.clear(Cause::ServoFault);
        }

        // Failed reads in a row.
        match failure {
            Some((id, error)) => {
                self.faults.failed_in_row += 1;
                if self.faults.failed_in_row > self.faults.max_failed_reads && self.faults.read_fault.is_none() {
                    let what = format!("{} sync read(s) in a row failed: {error}", self.faults.failed_in_row);
                    self.faults.read_fault = Some(self.open_fault(Cause::BusFault, id, what, at_ns));
                }
            }
            None => {
                self.faults.failed_in_row = 0;
                if let Some(open) = self.faults.read_fault.take() {
                    self.close_fault(open, at_ns);
                }
            }
        }

        // Checksum errors within the last second (a sliding window over
        // the reads' samples of the driver's count).
        let checksum_errors = self.bus.as_ref().map_or(0, |b| b.counters().checksum_errors);
        let now = Instant::now();
        let in_window = self.faults.window.errors_in_last_second(now, checksum_errors);
        let over = in_window > self.faults.max_checksum_errors_per_s;
        if over && self.faults.checksum_fault.is_none() {
            let what = format!(
                "{in_window} checksum errors within a second (budget {} per second)",
                self.faults.max_checksum_errors_per_s
            );
            self.faults.checksum_fault = Some(self.open_fault(Cause::BusFault, None, what, at_ns));
        } else if !over {
            if let Some(open) = self.faults.checksum_fault.take() {
                self.close_fault(open, at_ns);
            }
        }
        if self.faults.read_fault.is_some() || self.faults.checksum_fault.is_some() {
            self.shared.causes.raise(Cause::BusFault);
        } else {
            self.shared.causes.clear(Cause::BusFault);
        }
    }

    /// One sync write of the goals for `position` (rad, joint order).
    fn write(&mut self, position: &[f64]) {
        let Some(bus) = self.bus.as_mut() else { return };
        for ((g, j), &rad) in self.goals.iter_mut().zip(&self.joints).zip(position) {
            match j.raw_from_radians(rad) {
                Some(raw) => *g = raw,
                None => {
                    self.report.bad_commands += 1;
                    return;
                }
            }
        }
        let t0 = Instant::now();
        let result = bus.bus().sync_write_goals(&self.goals);
        self.write_ns.saturating_record((t0.elapsed().as_nanos() as u64).max(1));
        match result {
            Ok(()) => {
                self.report.writes += 1;
                self.outbox.record(true);
            }
            Err(e) => {
                if self.report.write_failures == 0 {
                    tracing::warn!(error = %e, "servo bus: a sync write failed");
                }
                self.report.write_failures += 1;
                self.outbox.record(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy in LeRobot's range units sees, from this driver's radians
    /// through its manifest's unit conversion ([`JointRange`]), exactly
    /// what LeRobot's `MotorsBus._normalize` gives for the raw ticks (the
    /// driver's own LeRobot-exact `normalize`), clamping beyond the range
    /// and mirroring with `drive_mode` included; and its values go back to
    /// the ticks `_unnormalize` writes, within the one tick its truncation
    /// drops.
    #[test]
    fn range_units_through_radians_are_lerobots_normalization() {
        use ganglion_policies::manifest::JointUnit;
        use ganglion_policies::preprocess::UnitMap;
        use ganglion_servo::MotorCalibration;
        for (mode, unit) in
            [(NormMode::RangeM100To100, JointUnit::RangeM100To100), (NormMode::Range0To100, JointUnit::Range0To100)]
        {
            for drive_mode in [0, 1] {
                for apply in [true, false] {
                    let c =
                        MotorCalibration { id: 1, drive_mode, homing_offset: -1024, range_min: 1013, range_max: 3210 };
                    let mut j = ganglion_servo::Joint::new("gripper", &c, mode).expect("joint");
                    j.apply_drive_mode = apply;
                    let map = UnitMap::new(unit, Some(joint_range(&j)), false).expect("map");
                    for raw in (900..3300).step_by(7) {
                        let (want, got) = (j.normalize(raw), map.from_rad(j.radians(raw)));
                        assert!(
                            (want - got).abs() < 1e-9,
                            "{mode:?} drive {drive_mode} apply {apply} raw {raw}: {want} vs {got}"
                        );
                    }
                    for value in [-120.0, -100.0, -37.5, 0.0, 12.25, 50.0, 99.9, 100.0, 130.0] {
                        let want = j.unnormalize(value).expect("finite");
                        let back = j.raw_from_radians(map.to_rad(value)).expect("finite");
                        assert!(
                            (want - back).abs() <= 1,
                            "{mode:?} drive {drive_mode} value {value}: {want} vs {back}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_error_window_counts_the_last_second_only() {
        let mut w = ErrorWindow::new();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(w.errors_in_last_second(ms(0), 0), 0);
        assert_eq!(w.errors_in_last_second(ms(10), 0), 0);
        assert_eq!(w.errors_in_last_second(ms(20), 5), 5, "a burst within one read");
        for k in 3..100 {
            assert_eq!(w.errors_in_last_second(ms(10 * k), 5), 5, "still within the second at {} ms", 10 * k);
        }
        assert_eq!(w.errors_in_last_second(ms(1_025), 5), 0, "the burst's read left the window");
        // More samples than the ring holds: still bounded and right.
        for k in 0..3_000u64 {
            w.errors_in_last_second(ms(2_000 + k), 5 + k / 100);
        }
        assert_eq!(w.errors_in_last_second(ms(5_000), 35), 10, "10 errors in the last 1000 ms");
    }
}
