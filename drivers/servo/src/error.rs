//! The bus's errors.

use crate::calibration::CalibrationError;
use crate::protocol::StatusBits;

/// Why a bus operation failed. Every variant about one servo names it.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The serial port could not be opened or configured (wrong path, no
    /// permission, baud rate refused).
    #[error("serial port {port}: {what}: {source}")]
    Port {
        /// The port's path.
        port: String,
        /// What was being done.
        what: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the open port failed.
    #[error("serial port {port}: I/O error: {source}")]
    Io {
        /// The port's path.
        port: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Servo `id` sent no status packet within the timeout, on every attempt.
    #[error("servo {id} on {port} did not answer ({attempts} attempts of {timeout_us} us)")]
    NoResponse {
        /// The silent servo.
        id: u8,
        /// The port's path.
        port: String,
        /// Attempts made (1 + retries).
        attempts: u32,
        /// The timeout of each attempt, microseconds.
        timeout_us: u64,
    },
    /// Servo `id`'s status packets were corrupt (bad checksum, wrong length)
    /// on every attempt.
    #[error("servo {id} on {port}: corrupt status packets on all {attempts} attempts")]
    Corrupt {
        /// The servo whose answer was missing or corrupt.
        id: u8,
        /// The port's path.
        port: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A set-up read or write was answered with alarm bits set.
    #[error("servo {id} reports an alarm: {bits}")]
    Alarm {
        /// The servo.
        id: u8,
        /// Its error byte.
        bits: StatusBits,
    },
    /// A Dynamixel servo refused an instruction (its status packet's error
    /// number: range, limit, access — e.g. an EEPROM write with torque on).
    #[error("servo {id} refused {what}: {}", crate::protocol2::error::describe(*code))]
    Refused {
        /// The servo.
        id: u8,
        /// The error number.
        code: u8,
        /// What was asked.
        what: &'static str,
    },
    /// The servo at `id` is not the expected model.
    #[error("servo {id}: model number {found}, expected {expected} ({model})")]
    WrongModel {
        /// The servo.
        id: u8,
        /// Its `Model_Number`.
        found: u16,
        /// The expected `Model_Number`.
        expected: u16,
        /// The expected model's name (or family).
        model: &'static str,
    },
    /// A packet would carry more parameters than the length byte allows
    /// (too many servos for one sync packet).
    #[error("packet too long: {params} parameter bytes, at most {}", crate::protocol::MAX_PARAMS)]
    PacketTooLong {
        /// Parameter bytes asked for.
        params: usize,
    },
    /// A slice's length does not match the number of servos.
    #[error("{what}: {got} values for {expected} servos")]
    LengthMismatch {
        /// Which argument.
        what: &'static str,
        /// Its length.
        got: usize,
        /// `ids().len()`.
        expected: usize,
    },
    /// An id is not valid (0..=252) or appears twice, or is not on this bus.
    #[error("servo id {id}: {why}")]
    BadId {
        /// The id.
        id: u8,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A value does not fit its register's encoding.
    #[error("value {value} does not fit register {register}")]
    ValueOutOfRange {
        /// The register's name.
        register: &'static str,
        /// The value.
        value: i64,
    },
    /// A torque limit that is not a fraction in (0, 1] of the servos' own
    /// limit.
    #[error("torque limit {fraction}: expected a fraction in (0, 1] of the servos' own limit")]
    TorqueLimit {
        /// The fraction asked for.
        fraction: f64,
    },
    /// The calibration does not match the servos or is not valid.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
}
