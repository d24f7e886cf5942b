//! Serial servo buses for Ganglion: the [`ServoBus`] trait; the Feetech
//! STS/SMS protocol-0 driver ([`FeetechBus`]) with the STS3215 control table
//! ([`sts`]); the Dynamixel protocol-2.0 driver ([`DynamixelBus`]) with the
//! X-series table ([`xseries`]); calibration compatible with LeRobot
//! ([`calibration`]); and emulated buses of STS3215 ([`emulator`]) and
//! X-series ([`dxl_emulator`]) servos on pseudo-terminals.
//!
//! Each emulator is proven in the crate's tests against the vendor's own
//! Python SDK (`scservo_sdk` from PyPI `feetech-servo-sdk`; `dynamixel_sdk`
//! from PyPI `dynamixel-sdk`); the drivers then talk to the same emulators.
//! See the crate's README for the commands.
//!
//! # Per-tick contract
//!
//! A control loop calls, once per tick, one [`ServoBus::sync_read_positions`]
//! (or, at a lower rate, [`ServoBus::sync_read_state`]) and one
//! [`ServoBus::sync_write_goals`]: each is **one** bus transaction for all
//! servos, never one per servo. Both work in buffers sized when the bus was
//! opened, so neither allocates. A failed exchange is retried at most
//! `max_retries` times; every retry, timeout, checksum error and dropped byte
//! is counted in [`BusCounters`]; the worst case of one read is bounded and
//! known in advance ([`FeetechBus::worst_case_read`]).

#![warn(missing_docs)]

pub mod bench;
pub mod calibrate;
pub mod calibration;
pub mod dxl_emulator;
mod dynamixel;
pub mod emulator;
mod error;
mod feetech;
mod link;
pub mod protocol;
pub mod protocol2;
pub mod pty;
pub mod register;
pub mod serial;
pub mod sts;
pub mod xseries;

pub use calibration::{CalibrationError, CalibrationFile, Joint, MotorCalibration, NormMode, RangeRecorder};
pub use dynamixel::{DynamixelBus, DynamixelConfig, KochSetup};
pub use error::BusError;
pub use feetech::{FeetechBus, FeetechConfig, So101Setup};
pub use protocol::StatusBits;

/// The register value that limits a servo to `fraction` of its own limit
/// `full` (`Max_Torque_Limit` of a Feetech servo, `PWM_Limit` of a
/// Dynamixel): `fraction × full` rounded, at least 1 where `full` is not 0
/// (0 would leave the servo without torque, which is not a limit).
/// `fraction` must be in (0, 1]: a limit never raises a servo above its own.
pub fn scaled_limit(fraction: f64, full: i32) -> Result<i32, BusError> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(BusError::TorqueLimit { fraction });
    }
    let v = (fraction * f64::from(full)).round() as i32;
    Ok(if full > 0 { v.max(1) } else { v })
}

/// One servo's state from one sync read of the block `Present_Position`
/// (56) .. `Status` (65) of the STS control table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServoState {
    /// `Present_Position`, raw ticks (sign-magnitude decoded).
    pub position: i32,
    /// `Present_Velocity`, ticks per second (sign-magnitude decoded).
    pub velocity: i32,
    /// `Present_Load`, 0.1 % of the maximum torque, signed by direction.
    pub load: i32,
    /// `Present_Voltage`, 0.1 V.
    pub voltage_dv: u8,
    /// `Present_Temperature`, °C.
    pub temperature_c: u8,
    /// `Status` register: the same alarm bits as a status packet's error byte.
    pub status: StatusBits,
}

/// What a bus has seen since it was opened. Every field only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusCounters {
    /// Instruction packets written, retries included.
    pub packets_sent: u64,
    /// Well-formed status packets received from a servo waited for.
    pub status_packets: u64,
    /// Exchanges in which an expected status packet did not arrive in time.
    pub timeouts: u64,
    /// Status packets dropped for a bad checksum.
    pub checksum_errors: u64,
    /// Bytes discarded while finding the next packet header (noise, stale or
    /// truncated packets).
    pub dropped_bytes: u64,
    /// Well-formed packets nobody waited for (unknown id, wrong length,
    /// duplicate), dropped.
    pub unexpected_packets: u64,
    /// Exchanges repeated after a failure.
    pub retries: u64,
    /// Operations that failed after all their retries.
    pub failures: u64,
    /// Status packets whose error byte had alarm bits set.
    pub alarms: u64,
}

/// A bus of serial servos, driven once per control tick.
///
/// Invariants every implementation keeps:
///
/// - **One sync read and one sync write per tick.** [`sync_read_positions`]
///   and [`sync_read_state`] are each one transaction covering all of
///   [`ids`]; [`sync_write_goals`] is one broadcast packet. No method used in
///   the tick addresses servos one by one, and no servo count is capped
///   beyond what one packet can carry.
/// - **No allocation after open.** Buffers are sized for [`ids`] when the bus
///   is opened; the tick methods only fill them, retries included (an error
///   allocates its message, once, on the way out). `tests/no_alloc.rs`
///   proves it with a counting allocator.
/// - **Bounded, counted retries.** A failed exchange is repeated at most the
///   configured number of times, each attempt bounded by a timeout computed
///   from the bytes on the wire and the baud rate; every retry, timeout and
///   malformed packet is counted in [`counters`]. Malformed input is dropped
///   and counted, never a panic.
/// - **Errors name the servo.** A servo that does not answer, or whose
///   answers stay corrupt, is named by id in the error.
/// - **Goals are raw ticks** in the servo's own register frame (after its
///   `Homing_Offset`); unit conversion is [`calibration`]'s job.
///
/// [`sync_read_positions`]: ServoBus::sync_read_positions
/// [`sync_read_state`]: ServoBus::sync_read_state
/// [`sync_write_goals`]: ServoBus::sync_write_goals
/// [`ids`]: ServoBus::ids
/// [`counters`]: ServoBus::counters
pub trait ServoBus {
    /// The servo ids on this bus, in the order of every slice the other
    /// methods take or fill.
    fn ids(&self) -> &[u8];

    /// One sync read of `Present_Position` for every servo into `out`
    /// (`out.len() == ids().len()`).
    fn sync_read_positions(&mut self, out: &mut [i32]) -> Result<(), BusError>;

    /// One sync read of position, velocity, load, voltage, temperature and
    /// status for every servo into `out`.
    fn sync_read_state(&mut self, out: &mut [ServoState]) -> Result<(), BusError>;

    /// One sync write of `Goal_Position` (raw ticks) for every servo.
    fn sync_write_goals(&mut self, goals: &[i32]) -> Result<(), BusError>;

    /// Torque on (`Torque_Enable` 1 then `Lock` 1, servo by servo, each
    /// acknowledged) or off (`Torque_Enable` 0 then `Lock` 0).
    fn set_torque(&mut self, enable: bool) -> Result<(), BusError>;

    /// The alarm bits of each servo's latest status packet, in [`ids`] order.
    ///
    /// [`ids`]: ServoBus::ids
    fn alarms(&self) -> &[StatusBits];

    /// What the bus has counted so far.
    fn counters(&self) -> BusCounters;
}
