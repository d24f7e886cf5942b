//! Calibration compatible with LeRobot: its calibration JSON (one entry per
//! motor name: `id`, `drive_mode`, `homing_offset`, `range_min`,
//! `range_max`, as `draccus.dump(..., indent=4)` writes it under
//! `~/.cache/huggingface/lerobot/calibration/robots/<robot>/<id>.json`), and
//! the conversion of raw ticks to the units a LeRobot policy was trained in,
//! exactly as `MotorsBus._normalize` / `_unnormalize` compute them (same
//! formulas, same order of floating-point operations, same truncation
//! toward zero), so a policy sees the same numbers under Ganglion.
//!
//! - `range_m100_100`: `((clamp(raw) - min) / (max - min)) * 200 - 100`,
//!   negated when `drive_mode` is set;
//! - `range_0_100`: `((clamp(raw) - min) / (max - min)) * 100`, `100 - x`
//!   when `drive_mode` is set;
//! - `degrees`: `(raw - mid) * 360 / 4095` with `mid = (min + max) / 2`, not
//!   clamped and not inverted (as in LeRobot).
//!
//! Radians (for the shield) are LeRobot's degrees in radians:
//! `(raw - mid) * 360 / 4095 · π/180`, whatever the policy's mode.

use std::fmt;
use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// LeRobot's `max_res` for 4096-tick encoders (`MODEL_RESOLUTION - 1`).
pub const MAX_RES: f64 = (crate::sts::RESOLUTION - 1) as f64;

/// One motor's entry in a LeRobot calibration file (`MotorCalibration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MotorCalibration {
    /// Servo id on the bus.
    pub id: u8,
    /// 1 inverts the range modes (Feetech SO-10x arms write 0).
    pub drive_mode: u8,
    /// `Homing_Offset` register value.
    pub homing_offset: i32,
    /// `Min_Position_Limit` register value.
    pub range_min: i32,
    /// `Max_Position_Limit` register value.
    pub range_max: i32,
}

/// A LeRobot calibration file: motors in the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalibrationFile {
    /// `(motor name, calibration)`, in the file's order.
    pub motors: Vec<(String, MotorCalibration)>,
}

/// The units a joint is given to the policy in (LeRobot's `MotorNormMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormMode {
    /// `degrees`: degrees about the middle of the calibrated range.
    #[serde(rename = "degrees")]
    Degrees,
    /// `range_m100_100`: -100..100 over the calibrated range.
    #[serde(rename = "range_m100_100")]
    RangeM100To100,
    /// `range_0_100`: 0..100 over the calibrated range (grippers).
    #[serde(rename = "range_0_100")]
    Range0To100,
}

/// Why a calibration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The file could not be read.
    #[error("calibration file {path}: {source}")]
    Read {
        /// Its path.
        path: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a LeRobot calibration (JSON object of motor entries).
    #[error("calibration file {path}: not a LeRobot calibration: {source}")]
    Parse {
        /// Its path.
        path: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A motor the robot has is not in the file.
    #[error("calibration has no entry for motor {motor:?} (a file for another robot?)")]
    MissingMotor {
        /// The motor's name.
        motor: String,
    },
    /// The file has a motor the robot does not.
    #[error("calibration has motor {motor:?}, which this robot does not have (a file for another robot?)")]
    ExtraMotor {
        /// The motor's name.
        motor: String,
    },
    /// The file gives a motor another id than the robot's.
    #[error("calibration gives motor {motor:?} id {file}, the robot expects id {expected}")]
    IdMismatch {
        /// The motor's name.
        motor: String,
        /// The file's id.
        file: u8,
        /// The robot's id.
        expected: u8,
    },
    /// `range_min == range_max`: LeRobot refuses it too (division by zero).
    #[error("calibration of motor {motor:?}: range_min and range_max are both {value}")]
    EmptyRange {
        /// The motor's name.
        motor: String,
        /// Their value.
        value: i32,
    },
    /// A joint did not move while its range was recorded (LeRobot refuses
    /// equal min and max too).
    #[error("motor {motor:?} did not move while its range was recorded (min = max = {value})")]
    NoMotion {
        /// The motor's name.
        motor: String,
        /// Its only position.
        value: i32,
    },
    /// A register of the servo disagrees with the file: the arm was
    /// recalibrated, or this file belongs to another arm.
    #[error("motor {motor:?} (id {id}): register {register} is {servo}, the calibration file says {file}")]
    RegisterMismatch {
        /// The motor's name.
        motor: String,
        /// Its id.
        id: u8,
        /// The register.
        register: &'static str,
        /// The file's value.
        file: i32,
        /// The servo's value.
        servo: i32,
    },
}

impl CalibrationFile {
    /// Parses LeRobot calibration JSON; `path` only names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<CalibrationFile, CalibrationError> {
        serde_json::from_str(text).map_err(|source| CalibrationError::Parse { path: path.to_string(), source })
    }

    /// Reads and parses a LeRobot calibration file.
    pub fn load(path: &Path) -> Result<CalibrationFile, CalibrationError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| CalibrationError::Read { path: shown.clone(), source })?;
        CalibrationFile::parse(&text, &shown)
    }

    /// The JSON LeRobot writes for it (`json.dump(..., indent=4)`: four-space
    /// indent, `": "` after keys, no trailing newline).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serializing plain integers and strings into a Vec cannot fail.
        let _ = self.serialize(&mut ser);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The entry of motor `name`.
    pub fn get(&self, name: &str) -> Option<&MotorCalibration> {
        self.motors.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// The joints of a robot whose motors are `robot` (name, id, mode), in
    /// that order, checked against the file: every motor present with the
    /// same id, no other motor, no empty range.
    pub fn joints(&self, robot: &[(&str, u8, NormMode)]) -> Result<Vec<Joint>, CalibrationError> {
        if let Some((extra, _)) = self.motors.iter().find(|(n, _)| !robot.iter().any(|(r, _, _)| r == n)) {
            return Err(CalibrationError::ExtraMotor { motor: extra.clone() });
        }
        robot
            .iter()
            .map(|&(name, id, mode)| {
                let c = self.get(name).ok_or_else(|| CalibrationError::MissingMotor { motor: name.to_string() })?;
                if c.id != id {
                    return Err(CalibrationError::IdMismatch { motor: name.to_string(), file: c.id, expected: id });
                }
                Joint::new(name, c, mode)
            })
            .collect()
    }
}

impl CalibrationFile {
    /// [`CalibrationFile::joints`] for a Dynamixel arm: the servo applies
    /// `drive_mode` itself, so the conversion does not (LeRobot's
    /// `DynamixelMotorsBus.apply_drive_mode = False`).
    pub fn dynamixel_joints(&self, robot: &[(&str, u8, NormMode)]) -> Result<Vec<Joint>, CalibrationError> {
        let mut joints = self.joints(robot)?;
        joints.iter_mut().for_each(|j| j.apply_drive_mode = false);
        Ok(joints)
    }
}

impl Serialize for CalibrationFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.motors.len()))?;
        for (name, c) in &self.motors {
            m.serialize_entry(name, c)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for CalibrationFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = CalibrationFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of motor name -> {id, drive_mode, homing_offset, range_min, range_max}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CalibrationFile, A::Error> {
                let mut motors: Vec<(String, MotorCalibration)> = Vec::new();
                while let Some((name, c)) = map.next_entry::<String, MotorCalibration>()? {
                    if motors.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!("motor {name:?} appears twice")));
                    }
                    motors.push((name, c));
                }
                Ok(CalibrationFile { motors })
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// LeRobot's `record_ranges_of_motion`: the smallest and largest position
/// of each motor seen while the user moves the joints by hand (torque off).
/// Feed it every sync read until the user is done, then [`finish`].
///
/// [`finish`]: RangeRecorder::finish
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRecorder {
    mins: Vec<i32>,
    maxes: Vec<i32>,
}

impl RangeRecorder {
    /// Starts from the first positions read.
    pub fn new(start: &[i32]) -> RangeRecorder {
        RangeRecorder { mins: start.to_vec(), maxes: start.to_vec() }
    }

    /// Takes one more reading (same order and length as the first).
    pub fn observe(&mut self, positions: &[i32]) {
        for ((lo, hi), &p) in self.mins.iter_mut().zip(self.maxes.iter_mut()).zip(positions) {
            *lo = (*lo).min(p);
            *hi = (*hi).max(p);
        }
    }

    /// The smallest positions so far.
    pub fn mins(&self) -> &[i32] {
        &self.mins
    }

    /// The largest positions so far.
    pub fn maxes(&self) -> &[i32] {
        &self.maxes
    }

    /// The calibration file LeRobot writes at the end of its procedure:
    /// `motors` (name, id) in order with their `homings` (from
    /// `set_half_turn_homings`), `drive_mode` 0, the recorded ranges, and
    /// 0..4095 for the `full_turn` motors (SO-101: `wrist_roll`; Koch:
    /// `shoulder_pan`, `wrist_roll`). A motor that never moved is an error.
    pub fn finish(
        &self,
        motors: &[(&str, u8)],
        homings: &[i32],
        full_turn: &[&str],
    ) -> Result<CalibrationFile, CalibrationError> {
        let mut file = CalibrationFile::default();
        for (i, &(name, id)) in motors.iter().enumerate() {
            let (mut lo, mut hi) = (self.mins.get(i).copied().unwrap_or(0), self.maxes.get(i).copied().unwrap_or(0));
            if full_turn.contains(&name) {
                (lo, hi) = (0, MAX_RES as i32);
            } else if lo == hi {
                return Err(CalibrationError::NoMotion { motor: name.to_string(), value: lo });
            }
            let homing_offset = homings.get(i).copied().unwrap_or(0);
            file.motors.push((
                name.to_string(),
                MotorCalibration { id, drive_mode: 0, homing_offset, range_min: lo, range_max: hi },
            ));
        }
        Ok(file)
    }
}

/// One calibrated joint: a motor's calibration and the units its policy uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Joint {
    /// Motor name (LeRobot's key, e.g. `shoulder_pan`).
    pub name: String,
    /// Servo id.
    pub id: u8,
    /// LeRobot's `drive_mode` (non-zero inverts the range modes).
    pub drive_mode: u8,
    /// `Homing_Offset`.
    pub homing_offset: i32,
    /// `Min_Position_Limit`.
    pub range_min: i32,
    /// `Max_Position_Limit`.
    pub range_max: i32,
    /// The policy's units for it.
    pub mode: NormMode,
    /// Whether `drive_mode` inverts the range modes here (LeRobot's
    /// `apply_drive_mode`: true for Feetech; false for Dynamixel, whose
    /// servo applies its `Drive_Mode` itself).
    pub apply_drive_mode: bool,
}

impl Joint {
    /// A joint from a file entry; an empty range is an error.
    pub fn new(name: &str, c: &MotorCalibration, mode: NormMode) -> Result<Joint, CalibrationError> {
        if c.range_min == c.range_max {
            return Err(CalibrationError::EmptyRange { motor: name.to_string(), value: c.range_min });
        }
        Ok(Joint {
            name: name.to_string(),
            id: c.id,
            drive_mode: c.drive_mode,
            homing_offset: c.homing_offset,
            range_min: c.range_min,
            range_max: c.range_max,
            mode,
            apply_drive_mode: true,
        })
    }

    fn mid(&self) -> f64 {
        (f64::from(self.range_min) + f64::from(self.range_max)) / 2.0
    }

    /// Whether LeRobot's range modes mirror this joint (`drive_mode` set,
    /// and applied).
    pub fn inverted(&self) -> bool {
        self.apply_drive_mode && self.drive_mode != 0
    }

    /// Raw ticks (`Present_Position`) to the policy's units, as LeRobot's
    /// `_normalize`.
    pub fn normalize(&self, raw: i32) -> f64 {
        let (min, max) = (self.range_min, self.range_max);
        let inverted = self.inverted();
        match self.mode {
            NormMode::RangeM100To100 => {
                let bounded = max.min(min.max(raw)); // min(max_, max(min_, val))
                let norm = ((f64::from(bounded - min) / f64::from(max - min)) * 200.0) - 100.0;
                if inverted {
                    -norm
                } else {
                    norm
                }
            }
            NormMode::Range0To100 => {
                let bounded = max.min(min.max(raw)); // min(max_, max(min_, val))
                let norm = (f64::from(bounded - min) / f64::from(max - min)) * 100.0;
                if inverted {
                    100.0 - norm
                } else {
                    norm
                }
            }
            NormMode::Degrees => (f64::from(raw) - self.mid()) * 360.0 / MAX_RES,
        }
    }

    /// The policy's units to raw ticks (`Goal_Position`), as LeRobot's
    /// `_unnormalize` (truncation toward zero); `None` for a non-finite
    /// value or one beyond any tick count.
    pub fn unnormalize(&self, value: f64) -> Option<i32> {
        if !value.is_finite() {
            return None;
        }
        let (min, max) = (f64::from(self.range_min), f64::from(self.range_max));
        let inverted = self.inverted();
        let raw = match self.mode {
            NormMode::RangeM100To100 => {
                let v = if inverted { -value } else { value };
                let bounded = 100f64.min((-100f64).max(v));
                ((bounded + 100.0) / 200.0) * (max - min) + min
            }
            NormMode::Range0To100 => {
                let v = if inverted { 100.0 - value } else { value };
                let bounded = 100f64.min(0f64.max(v));
                (bounded / 100.0) * (max - min) + min
            }
            NormMode::Degrees => (value * MAX_RES / 360.0) + self.mid(),
        };
        truncate(raw)
    }

    /// Raw ticks to radians: LeRobot's degrees of `raw`, in radians.
    pub fn radians(&self, raw: i32) -> f64 {
        ((f64::from(raw) - self.mid()) * 360.0 / MAX_RES).to_radians()
    }

    /// Radians to raw ticks (truncated toward zero, like `unnormalize`).
    pub fn raw_from_radians(&self, rad: f64) -> Option<i32> {
        if !rad.is_finite() {
            return None;
        }
        truncate((rad.to_degrees() * MAX_RES / 360.0) + self.mid())
    }

    /// Converts a policy value to radians (through ticks, as the servo will
    /// see it).
    pub fn value_to_radians(&self, value: f64) -> Option<f64> {
        self.unnormalize(value).map(|raw| self.radians(raw))
    }
}

/// Python's `int(x)` for finite `x` within `i32`.
fn truncate(x: f64) -> Option<i32> {
    let t = x.trunc();
    (t >= f64::from(i32::MIN) && t <= f64::from(i32::MAX)).then_some(t as i32)
}

/// Compares each `(register, value the file implies)` of `checks` with what
/// `read` returns from `joint`'s servo; the first disagreement is a
/// [`CalibrationError::RegisterMismatch`] naming the motor and register
/// (both buses' `check_calibration`).
pub(crate) fn check_registers(
    joint: &Joint,
    checks: &[(crate::register::Register, i32)],
    mut read: impl FnMut(u8, crate::register::Register) -> Result<i32, crate::BusError>,
) -> Result<(), crate::BusError> {
    for &(r, want) in checks {
        let got = read(joint.id, r)?;
        if got != want {
            return Err(CalibrationError::RegisterMismatch {
                motor: joint.name.clone(),
                id: joint.id,
                register: r.name,
                file: want,
                servo: got,
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1234,
        "range_min": 800,
        "range_max": 3300
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 17,
        "range_min": 2020,
        "range_max": 3500
    }
}"#;

    #[test]
    fn parses_and_writes_back_byte_for_byte_in_order() {
        let f = CalibrationFile::parse(SAMPLE, "sample").unwrap();
        assert_eq!(f.motors[0].0, "shoulder_pan");
        assert_eq!(f.get("gripper").map(|c| c.range_max), Some(3500));
        assert_eq!(f.to_json(), SAMPLE);
    }

    #[test]
    fn another_robots_file_is_refused_by_name() {
        let f = CalibrationFile::parse(SAMPLE, "sample").unwrap();
        let e = f.joints(&[("shoulder_pan", 1, NormMode::Degrees)]).unwrap_err();
        assert!(matches!(e, CalibrationError::ExtraMotor { ref motor } if motor == "gripper"), "{e}");
        let e = f.joints(&[("shoulder_pan", 2, NormMode::Degrees), ("gripper", 6, NormMode::Range0To100)]).unwrap_err();
        assert!(e.to_string().contains("\"shoulder_pan\" id 1"), "{e}");
        let e = f.joints(&[("shoulder_pan", 1, NormMode::Degrees), ("elbow", 3, NormMode::Degrees)]).unwrap_err();
        assert!(matches!(e, CalibrationError::ExtraMotor { .. } | CalibrationError::MissingMotor { .. }));
        assert!(CalibrationFile::parse("{\"a\": {\"id\": 1}}", "x").is_err());
        assert!(CalibrationFile::parse("[1, 2]", "x").is_err());
    }

    #[test]
    fn non_finite_values_have_no_ticks() {
        let j = Joint::new(
            "j",
            &MotorCalibration { id: 1, drive_mode: 0, homing_offset: 0, range_min: 0, range_max: 4095 },
            NormMode::Degrees,
        )
        .unwrap();
        assert_eq!(j.unnormalize(f64::NAN), None);
        assert_eq!(j.unnormalize(f64::INFINITY), None);
        assert_eq!(j.unnormalize(1e300), None);
        assert_eq!(j.raw_from_radians(f64::NAN), None);
        // Round trip through radians lands on the same tick.
        assert_eq!(j.raw_from_radians(j.radians(3000)), Some(3000));
    }
}
