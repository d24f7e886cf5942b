//! The STS/SMS-series control table (STS3215 and friends), for the registers
//! LeRobot uses, with the sign-magnitude encodings LeRobot applies.
//!
//! Addresses 0..=39 are EEPROM (kept across power cycles when `Lock` is 0),
//! 40..=70 RAM, 80.. factory settings. Two-byte registers are little-endian.

pub use crate::register::{decode, encode, Encoding, Register};
use crate::register::{reg, ro, sign_magnitude as signed};

/// `Firmware_Major_Version`.
pub const FIRMWARE_MAJOR: Register = ro("Firmware_Major_Version", 0, 1);
/// `Firmware_Minor_Version`.
pub const FIRMWARE_MINOR: Register = ro("Firmware_Minor_Version", 1, 1);
/// `Model_Number` (777 for the STS3215).
pub const MODEL_NUMBER: Register = ro("Model_Number", 3, 2);
/// `ID`.
pub const ID: Register = reg("ID", 5, 1);
/// `Baud_Rate` (index into [`BAUD_RATES`]).
pub const BAUD_RATE: Register = reg("Baud_Rate", 6, 1);
/// `Return_Delay_Time`, 2 µs units.
pub const RETURN_DELAY_TIME: Register = reg("Return_Delay_Time", 7, 1);
/// `Response_Status_Level`: 0 answers only PING and READ, 1 answers all.
pub const RESPONSE_STATUS_LEVEL: Register = reg("Response_Status_Level", 8, 1);
/// `Min_Position_Limit` (LeRobot's `range_min`).
pub const MIN_POSITION_LIMIT: Register = reg("Min_Position_Limit", 9, 2);
/// `Max_Position_Limit` (LeRobot's `range_max`).
pub const MAX_POSITION_LIMIT: Register = reg("Max_Position_Limit", 11, 2);
/// `Max_Temperature_Limit`, °C.
pub const MAX_TEMPERATURE_LIMIT: Register = reg("Max_Temperature_Limit", 13, 1);
/// `Max_Voltage_Limit`, 0.1 V.
pub const MAX_VOLTAGE_LIMIT: Register = reg("Max_Voltage_Limit", 14, 1);
/// `Min_Voltage_Limit`, 0.1 V.
pub const MIN_VOLTAGE_LIMIT: Register = reg("Min_Voltage_Limit", 15, 1);
/// `Max_Torque_Limit`, 0.1 %.
pub const MAX_TORQUE_LIMIT: Register = reg("Max_Torque_Limit", 16, 2);
/// `Phase` (bit 4 is cleared by LeRobot's set-up on the STS3215).
pub const PHASE: Register = reg("Phase", 18, 1);
/// `Unloading_Condition`: alarm bits that switch torque off.
pub const UNLOADING_CONDITION: Register = reg("Unloading_Condition", 19, 1);
/// `LED_Alarm_Condition`.
pub const LED_ALARM_CONDITION: Register = reg("LED_Alarm_Condition", 20, 1);
/// `P_Coefficient` (position loop).
pub const P_COEFFICIENT: Register = reg("P_Coefficient", 21, 1);
/// `D_Coefficient`.
pub const D_COEFFICIENT: Register = reg("D_Coefficient", 22, 1);
/// `I_Coefficient`.
pub const I_COEFFICIENT: Register = reg("I_Coefficient", 23, 1);
/// `Protection_Current`.
pub const PROTECTION_CURRENT: Register = reg("Protection_Current", 28, 2);
/// `Homing_Offset`: `Present_Position = actual - Homing_Offset`,
/// sign-magnitude on bit 11.
pub const HOMING_OFFSET: Register = signed(reg("Homing_Offset", 31, 2), 11);
/// `Operating_Mode`: 0 position, 1 velocity, 2 PWM, 3 step.
pub const OPERATING_MODE: Register = reg("Operating_Mode", 33, 1);
/// `Overload_Torque`, %.
pub const OVERLOAD_TORQUE: Register = reg("Overload_Torque", 36, 1);
/// `Torque_Enable`.
pub const TORQUE_ENABLE: Register = reg("Torque_Enable", 40, 1);
/// `Acceleration`.
pub const ACCELERATION: Register = reg("Acceleration", 41, 1);
/// `Goal_Position`, sign-magnitude on bit 15.
pub const GOAL_POSITION: Register = signed(reg("Goal_Position", 42, 2), 15);
/// `Goal_Time`.
pub const GOAL_TIME: Register = reg("Goal_Time", 44, 2);
/// `Goal_Velocity`, ticks/s, sign-magnitude on bit 15 (0: the servo's maximum).
pub const GOAL_VELOCITY: Register = signed(reg("Goal_Velocity", 46, 2), 15);
/// `Torque_Limit`, 0.1 %.
pub const TORQUE_LIMIT: Register = reg("Torque_Limit", 48, 2);
/// `Lock`: 1 keeps EEPROM writes from being saved.
pub const LOCK: Register = reg("Lock", 55, 1);
/// `Present_Position`, sign-magnitude on bit 15.
pub const PRESENT_POSITION: Register = signed(ro("Present_Position", 56, 2), 15);
/// `Present_Velocity`, ticks/s, sign-magnitude on bit 15.
pub const PRESENT_VELOCITY: Register = signed(ro("Present_Velocity", 58, 2), 15);
/// `Present_Load`, 0.1 %, sign-magnitude on bit 10.
pub const PRESENT_LOAD: Register = signed(ro("Present_Load", 60, 2), 10);
/// `Present_Voltage`, 0.1 V.
pub const PRESENT_VOLTAGE: Register = ro("Present_Voltage", 62, 1);
/// `Present_Temperature`, °C.
pub const PRESENT_TEMPERATURE: Register = ro("Present_Temperature", 63, 1);
/// `Status`: alarm bits.
pub const STATUS: Register = ro("Status", 65, 1);
/// `Moving`: 1 while moving toward the goal.
pub const MOVING: Register = ro("Moving", 66, 1);
/// `Present_Current`.
pub const PRESENT_CURRENT: Register = ro("Present_Current", 69, 2);
/// `Maximum_Acceleration`.
pub const MAXIMUM_ACCELERATION: Register = reg("Maximum_Acceleration", 85, 1);

/// Every register above, for lookup by name.
pub const REGISTERS: &[Register] = &[
    FIRMWARE_MAJOR,
    FIRMWARE_MINOR,
    MODEL_NUMBER,
    ID,
    BAUD_RATE,
    RETURN_DELAY_TIME,
    RESPONSE_STATUS_LEVEL,
    MIN_POSITION_LIMIT,
    MAX_POSITION_LIMIT,
    MAX_TEMPERATURE_LIMIT,
    MAX_VOLTAGE_LIMIT,
    MIN_VOLTAGE_LIMIT,
    MAX_TORQUE_LIMIT,
    PHASE,
    UNLOADING_CONDITION,
    LED_ALARM_CONDITION,
    P_COEFFICIENT,
    D_COEFFICIENT,
    I_COEFFICIENT,
    PROTECTION_CURRENT,
    HOMING_OFFSET,
    OPERATING_MODE,
    OVERLOAD_TORQUE,
    TORQUE_ENABLE,
    ACCELERATION,
    GOAL_POSITION,
    GOAL_TIME,
    GOAL_VELOCITY,
    TORQUE_LIMIT,
    LOCK,
    PRESENT_POSITION,
    PRESENT_VELOCITY,
    PRESENT_LOAD,
    PRESENT_VOLTAGE,
    PRESENT_TEMPERATURE,
    STATUS,
    MOVING,
    PRESENT_CURRENT,
    MAXIMUM_ACCELERATION,
];

/// The register named `name` (LeRobot's spelling).
pub fn register(name: &str) -> Option<Register> {
    REGISTERS.iter().copied().find(|r| r.name == name)
}

/// First address after the EEPROM area.
pub const EEPROM_END: u8 = 40;
/// `Model_Number` of the STS3215.
pub const STS3215_MODEL: u16 = 777;
/// Encoder ticks per turn of the STS3215 (LeRobot's `MODEL_RESOLUTION`).
pub const RESOLUTION: u32 = 4096;
/// `Baud_Rate` register values: index → bits per second.
pub const BAUD_RATES: [u32; 8] = [1_000_000, 500_000, 250_000, 128_000, 115_200, 57_600, 38_400, 19_200];

/// The block one state sync read covers: `Present_Position` (56) through
/// `Status` (65).
pub const STATE_BLOCK: (u8, u8) = (56, 10);

pub use crate::register::{decode_sign_magnitude, encode_sign_magnitude};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_magnitude_matches_lerobot() {
        // encode_sign_magnitude(-1234, 11) == 0x800 | 1234 in LeRobot.
        assert_eq!(encode_sign_magnitude(-1234, 11), Some(0x800 | 1234));
        assert_eq!(encode_sign_magnitude(2047, 11), Some(2047));
        assert_eq!(encode_sign_magnitude(2048, 11), None);
        assert_eq!(decode_sign_magnitude(0x800 | 1234, 11), -1234);
        assert_eq!(decode_sign_magnitude(0x8000 | 100, 15), -100);
        assert_eq!(decode(HOMING_OFFSET, 0x0805), -5);
        assert_eq!(encode(MIN_POSITION_LIMIT, 70000), None);
        assert_eq!(encode(ID, 256), None);
    }

    #[test]
    fn registers_are_unique_and_found_by_name() {
        for r in REGISTERS {
            assert_eq!(register(r.name), Some(*r));
        }
        assert_eq!(register("Homing_Offset").map(|r| r.addr), Some(31));
    }
}
