//! The Dynamixel X-series control table (XL330, XL430, XM430, XC430, …;
//! protocol 2.0), for the registers LeRobot uses, with LeRobot's encodings
//! (two's complement over the register's size).
//!
//! Addresses 0..=63 are EEPROM (writable only with torque off), 64.. RAM.
//! Multi-byte registers are little-endian.

use crate::register::{reg, ro, twos_complement as tc, Register};

/// `Model_Number`.
pub const MODEL_NUMBER: Register = ro("Model_Number", 0, 2);
/// `Model_Information`.
pub const MODEL_INFORMATION: Register = ro("Model_Information", 2, 4);
/// `Firmware_Version`.
pub const FIRMWARE_VERSION: Register = ro("Firmware_Version", 6, 1);
/// `ID`.
pub const ID: Register = reg("ID", 7, 1);
/// `Baud_Rate` (index into [`BAUD_RATES`]).
pub const BAUD_RATE: Register = reg("Baud_Rate", 8, 1);
/// `Return_Delay_Time`, 2 µs units (factory 250: 500 µs).
pub const RETURN_DELAY_TIME: Register = reg("Return_Delay_Time", 9, 1);
/// `Drive_Mode`: bit 0 reverses the direction.
pub const DRIVE_MODE: Register = reg("Drive_Mode", 10, 1);
/// `Operating_Mode`: 0 current, 1 velocity, 3 position, 4 extended
/// position, 5 current-based position, 16 PWM.
pub const OPERATING_MODE: Register = reg("Operating_Mode", 11, 1);
/// `Homing_Offset`: `Present_Position = actual + Homing_Offset`.
pub const HOMING_OFFSET: Register = tc(reg("Homing_Offset", 20, 4));
/// `Moving_Threshold`.
pub const MOVING_THRESHOLD: Register = reg("Moving_Threshold", 24, 4);
/// `Temperature_Limit`, °C.
pub const TEMPERATURE_LIMIT: Register = reg("Temperature_Limit", 31, 1);
/// `Max_Voltage_Limit`, 0.1 V.
pub const MAX_VOLTAGE_LIMIT: Register = reg("Max_Voltage_Limit", 32, 2);
/// `Min_Voltage_Limit`, 0.1 V.
pub const MIN_VOLTAGE_LIMIT: Register = reg("Min_Voltage_Limit", 34, 2);
/// `PWM_Limit`: the most PWM the servo applies, 0..=[`FULL_PWM`]; bounds
/// `Goal_PWM`.
pub const PWM_LIMIT: Register = reg("PWM_Limit", 36, 2);
/// `Current_Limit`.
pub const CURRENT_LIMIT: Register = reg("Current_Limit", 38, 2);
/// `Velocity_Limit`, 0.229 rpm.
pub const VELOCITY_LIMIT: Register = reg("Velocity_Limit", 44, 4);
/// `Max_Position_Limit` (LeRobot's `range_max`).
pub const MAX_POSITION_LIMIT: Register = reg("Max_Position_Limit", 48, 4);
/// `Min_Position_Limit` (LeRobot's `range_min`).
pub const MIN_POSITION_LIMIT: Register = reg("Min_Position_Limit", 52, 4);
/// `Shutdown`: hardware-error bits that switch torque off.
pub const SHUTDOWN: Register = reg("Shutdown", 63, 1);
/// `Torque_Enable`.
pub const TORQUE_ENABLE: Register = reg("Torque_Enable", 64, 1);
/// `LED`.
pub const LED: Register = reg("LED", 65, 1);
/// `Status_Return_Level`: 0 answers PING only, 1 PING and READ, 2 all.
pub const STATUS_RETURN_LEVEL: Register = reg("Status_Return_Level", 68, 1);
/// `Hardware_Error_Status`: bit 0 input voltage, 2 overheating, 3 motor
/// encoder, 4 electrical shock, 5 overload.
pub const HARDWARE_ERROR_STATUS: Register = ro("Hardware_Error_Status", 70, 1);
/// `Bus_Watchdog` (RAM): 1..=127 stops the servo when no instruction
/// packet arrived for that many 20 ms units while torque is on; it then
/// reads -1 and refuses goal writes until 0 is written (ROBOTIS e-Manual,
/// X series, address 98).
pub const BUS_WATCHDOG: Register = tc(reg("Bus_Watchdog", 98, 1));
/// `Bus_Watchdog`'s unit.
pub const BUS_WATCHDOG_UNIT_MS: u64 = 20;
/// `Position_D_Gain`.
pub const POSITION_D_GAIN: Register = reg("Position_D_Gain", 80, 2);
/// `Position_I_Gain`.
pub const POSITION_I_GAIN: Register = reg("Position_I_Gain", 82, 2);
/// `Position_P_Gain`.
pub const POSITION_P_GAIN: Register = reg("Position_P_Gain", 84, 2);
/// `Goal_PWM`: in the position modes the PWM the servo applies is bounded
/// by it (ROBOTIS's way of limiting force), -`PWM_Limit`..=`PWM_Limit`;
/// its power-up value is `PWM_Limit`.
pub const GOAL_PWM: Register = tc(reg("Goal_PWM", 100, 2));
/// `Goal_Current`.
pub const GOAL_CURRENT: Register = tc(reg("Goal_Current", 102, 2));
/// `Goal_Velocity`.
pub const GOAL_VELOCITY: Register = tc(reg("Goal_Velocity", 104, 4));
/// `Profile_Velocity`, 0.229 rpm (0: as fast as it goes).
pub const PROFILE_VELOCITY: Register = reg("Profile_Velocity", 112, 4);
/// `Goal_Position`.
pub const GOAL_POSITION: Register = tc(reg("Goal_Position", 116, 4));
/// `Moving`.
pub const MOVING: Register = ro("Moving", 122, 1);
/// `Present_Current`.
pub const PRESENT_CURRENT: Register = tc(ro("Present_Current", 126, 2));
/// `Present_Velocity`, 0.229 rpm.
pub const PRESENT_VELOCITY: Register = tc(ro("Present_Velocity", 128, 4));
/// `Present_Position`.
pub const PRESENT_POSITION: Register = tc(ro("Present_Position", 132, 4));
/// `Present_Input_Voltage`, 0.1 V.
pub const PRESENT_INPUT_VOLTAGE: Register = ro("Present_Input_Voltage", 144, 2);
/// `Present_Temperature`, °C.
pub const PRESENT_TEMPERATURE: Register = ro("Present_Temperature", 146, 1);

/// Every register above, for lookup by name.
pub const REGISTERS: &[Register] = &[
    MODEL_NUMBER,
    MODEL_INFORMATION,
    FIRMWARE_VERSION,
    ID,
    BAUD_RATE,
    RETURN_DELAY_TIME,
    DRIVE_MODE,
    OPERATING_MODE,
    HOMING_OFFSET,
    MOVING_THRESHOLD,
    TEMPERATURE_LIMIT,
    MAX_VOLTAGE_LIMIT,
    MIN_VOLTAGE_LIMIT,
    PWM_LIMIT,
    CURRENT_LIMIT,
    VELOCITY_LIMIT,
    MAX_POSITION_LIMIT,
    MIN_POSITION_LIMIT,
    SHUTDOWN,
    TORQUE_ENABLE,
    LED,
    STATUS_RETURN_LEVEL,
    HARDWARE_ERROR_STATUS,
    BUS_WATCHDOG,
    POSITION_D_GAIN,
    POSITION_I_GAIN,
    POSITION_P_GAIN,
    GOAL_PWM,
    GOAL_CURRENT,
    GOAL_VELOCITY,
    PROFILE_VELOCITY,
    GOAL_POSITION,
    MOVING,
    PRESENT_CURRENT,
    PRESENT_VELOCITY,
    PRESENT_POSITION,
    PRESENT_INPUT_VOLTAGE,
    PRESENT_TEMPERATURE,
];

/// The register named `name` (LeRobot's spelling).
pub fn register(name: &str) -> Option<Register> {
    REGISTERS.iter().copied().find(|r| r.name == name)
}

/// `PWM_Limit`'s factory value on the X series: 100 % duty cycle.
pub const FULL_PWM: i32 = 885;

/// First address after the EEPROM area.
pub const EEPROM_END: u16 = 64;
/// One past the last address the emulator models.
pub const TABLE_END: u16 = 147;

/// `Operating_Mode` values LeRobot uses.
pub mod mode {
    /// Position (one turn, limited by `Min/Max_Position_Limit`).
    pub const POSITION: u8 = 3;
    /// Extended (multi-turn) position.
    pub const EXTENDED_POSITION: u8 = 4;
    /// Current-based position (grippers).
    pub const CURRENT_POSITION: u8 = 5;
}

/// `Model_Number` of the X-series models LeRobot knows (its
/// `MODEL_NUMBER_TABLE`).
pub const MODELS: [(&str, u16); 9] = [
    ("xl330-m077", 1190),
    ("xl330-m288", 1200),
    ("xl430-w250", 1060),
    ("xm430-w350", 1020),
    ("xm540-w270", 1120),
    ("xc430-w150", 1070),
    ("xh540-w150", 1110),
    ("xc330-t288", 1220),
    ("xc330-t181", 1210),
];

/// The model name of a `Model_Number`, when it is an X-series LeRobot knows.
pub fn model_name(number: u16) -> Option<&'static str> {
    MODELS.iter().find(|(_, n)| *n == number).map(|(name, _)| *name)
}

/// `Baud_Rate` register values: index → bits per second.
pub const BAUD_RATES: [u32; 7] = [9_600, 57_600, 115_200, 1_000_000, 2_000_000, 3_000_000, 4_000_000];

/// The block one state sync read covers: `Present_Current` (126) through
/// `Present_Temperature` (146).
pub const STATE_BLOCK: (u16, u16) = (126, 21);

/// `Hardware_Error_Status` bits.
pub mod hardware_error {
    /// Input voltage out of range.
    pub const INPUT_VOLTAGE: u8 = 0x01;
    /// Overheating.
    pub const OVERHEATING: u8 = 0x04;
    /// Motor encoder.
    pub const MOTOR_ENCODER: u8 = 0x08;
    /// Electrical shock.
    pub const ELECTRICAL_SHOCK: u8 = 0x10;
    /// Overload.
    pub const OVERLOAD: u8 = 0x20;
}

/// `Hardware_Error_Status` as the bus-independent [`crate::StatusBits`]
/// (voltage, overheat and overload share their bit with Feetech's; the
/// encoder maps to the angle sensor, electrical shock to over-current).
pub fn status_bits(hardware_error: u8) -> crate::StatusBits {
    use crate::StatusBits as S;
    let map = [
        (hardware_error::INPUT_VOLTAGE, S::VOLTAGE),
        (hardware_error::OVERHEATING, S::OVERHEAT),
        (hardware_error::MOTOR_ENCODER, S::ANGLE),
        (hardware_error::ELECTRICAL_SHOCK, S::OVERCURRENT),
        (hardware_error::OVERLOAD, S::OVERLOAD),
    ];
    S(map.iter().filter(|(d, _)| hardware_error & d != 0).fold(0, |a, (_, s)| a | s))
}

/// `Hardware_Error_Status` in ROBOTIS's words (`overload+electrical
/// shock`); `none` for 0.
pub fn hardware_error_names(hardware_error: u8) -> String {
    let names = [
        (hardware_error::INPUT_VOLTAGE, "input voltage"),
        (hardware_error::OVERHEATING, "overheating"),
        (hardware_error::MOTOR_ENCODER, "motor encoder"),
        (hardware_error::ELECTRICAL_SHOCK, "electrical shock"),
        (hardware_error::OVERLOAD, "overload"),
    ];
    let found: Vec<&str> = names.iter().filter(|(b, _)| hardware_error & b != 0).map(|(_, n)| *n).collect();
    match (found.is_empty(), hardware_error) {
        (true, 0) => "none".into(),
        (true, other) => format!("bits 0x{other:02x}"),
        _ => found.join("+"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_found_by_name_and_models_by_number() {
        for r in REGISTERS {
            assert_eq!(register(r.name), Some(*r));
        }
        assert_eq!(model_name(1200), Some("xl330-m288"));
        assert_eq!(model_name(777), None);
        assert_eq!(status_bits(0x24).0, crate::StatusBits::OVERHEAT | crate::StatusBits::OVERLOAD);
        assert_eq!(hardware_error_names(0x30), "electrical shock+overload");
        assert_eq!(hardware_error_names(0), "none");
    }
}
