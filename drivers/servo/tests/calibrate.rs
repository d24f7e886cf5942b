//! LeRobot's calibration procedure (`lerobot-calibrate`) run through the
//! library against both emulators: torque off, half-turn homings, ranges
//! recorded while joints are moved by hand, the file written and checked.

use std::time::Duration;

use ganglion_servo::dxl_emulator::{DxlEmulator, DxlEmulatorConfig};
use ganglion_servo::emulator::{Emulator, EmulatorConfig};
use ganglion_servo::{
    sts, xseries, CalibrationError, CalibrationFile, DynamixelBus, DynamixelConfig, FeetechBus, FeetechConfig,
    NormMode, RangeRecorder, ServoBus,
};

const MOTORS: [(&str, u8); 6] = [
    ("shoulder_pan", 1),
    ("shoulder_lift", 2),
    ("elbow_flex", 3),
    ("wrist_flex", 4),
    ("wrist_roll", 5),
    ("gripper", 6),
];
const IDS: [u8; 6] = [1, 2, 3, 4, 5, 6];

fn robot() -> Vec<(&'static str, u8, NormMode)> {
    MOTORS
        .iter()
        .map(|&(n, id)| (n, id, if n == "gripper" { NormMode::Range0To100 } else { NormMode::Degrees }))
        .collect()
}

/// Moves every joint but the full-turn ones down and up by hand, feeding
/// the recorder a sync read after each move.
fn sweep(
    bus: &mut impl ServoBus,
    move_by_hand: impl Fn(u8, i32),
    full_turn: &[&str],
) -> (RangeRecorder, Vec<(i32, i32)>) {
    let mut pos = [0; 6];
    bus.sync_read_positions(&mut pos).expect("read");
    let mut rec = RangeRecorder::new(&pos);
    let mut expected = Vec::new();
    for (i, &(name, id)) in MOTORS.iter().enumerate() {
        let (lo, hi) = (2047 - 500 - 50 * i as i32, 2047 + 400 + 30 * i as i32);
        expected.push((lo, hi));
        if full_turn.contains(&name) {
            continue;
        }
        for target in [lo, 2047, hi] {
            move_by_hand(id, target);
            bus.sync_read_positions(&mut pos).expect("read");
            rec.observe(&pos);
        }
    }
    (rec, expected)
}

#[test]
fn feetech_calibration_as_lerobot_calibrate_does_it() {
    let e = Emulator::start(EmulatorConfig::default()).expect("emulator");
    for (i, id) in IDS.iter().enumerate() {
        e.move_by_hand(*id, 1000 + 300 * i as i32);
    }
    let cfg = FeetechConfig { timeout_margin: Duration::from_millis(150), ..FeetechConfig::default() };
    let mut bus = FeetechBus::open(e.path(), &IDS, cfg).expect("open");
    bus.set_torque(false).expect("torque off");
    for id in IDS {
        bus.write_register(id, sts::OPERATING_MODE, 0).expect("position mode");
    }
    let homings = bus.set_half_turn_homings().expect("homings");
    assert_eq!(homings, [-1047, -747, -447, -147, 153, 453], "position - 2047");
    let mut pos = [0; 6];
    bus.sync_read_positions(&mut pos).expect("read");
    assert_eq!(pos, [2047; 6], "every joint reads the middle of its range");
    for (id, h) in IDS.iter().zip(&homings) {
        assert_eq!(e.register(*id, sts::HOMING_OFFSET), Some(*h));
    }

    let (rec, expected) = sweep(&mut bus, |id, p| e.move_by_hand(id, p), &["wrist_roll"]);
    let file = rec.finish(&MOTORS, &homings, &["wrist_roll"]).expect("all moved");
    for (i, (name, c)) in file.motors.iter().enumerate() {
        assert_eq!((name.as_str(), c.id, c.drive_mode, c.homing_offset), (MOTORS[i].0, MOTORS[i].1, 0, homings[i]));
        let want = if *name == "wrist_roll" { (0, 4095) } else { expected[i] };
        assert_eq!((c.range_min, c.range_max), want, "{name}");
    }
    // Written to the servos, checked, and the JSON reads back the same.
    let joints = file.joints(&robot()).expect("joints");
    bus.write_calibration(&joints).expect("write");
    bus.check_calibration(&joints).expect("matches");
    assert_eq!(CalibrationFile::parse(&file.to_json(), "written").expect("parses"), file);

    // A joint nobody moved is refused by name.
    let still = RangeRecorder::new(&[2047; 6]);
    let err = still.finish(&MOTORS, &homings, &["wrist_roll"]).expect_err("nothing moved");
    assert!(matches!(err, CalibrationError::NoMotion { ref motor, value: 2047 } if motor == "shoulder_pan"), "{err}");
}

#[test]
fn dynamixel_calibration_as_lerobot_calibrate_does_it() {
    let e = DxlEmulator::start(DxlEmulatorConfig::default()).expect("emulator");
    for (i, id) in IDS.iter().enumerate() {
        e.move_by_hand(*id, 1000 + 300 * i as i32);
    }
    let cfg = DynamixelConfig { timeout_margin: Duration::from_millis(150), ..DynamixelConfig::default() };
    let mut bus = DynamixelBus::open(e.path(), &IDS, cfg).expect("open");
    bus.set_torque(false).expect("torque off");
    for id in IDS {
        bus.write_register(id, xseries::OPERATING_MODE, xseries::mode::EXTENDED_POSITION.into()).expect("mode");
    }
    let homings = bus.set_half_turn_homings().expect("homings");
    assert_eq!(homings, [1047, 747, 447, 147, -153, -453], "2047 - position");
    let mut pos = [0; 6];
    bus.sync_read_positions(&mut pos).expect("read");
    assert_eq!(pos, [2047; 6]);

    let full_turn = ["shoulder_pan", "wrist_roll"];
    let (rec, expected) = sweep(&mut bus, |id, p| e.move_by_hand(id, p), &full_turn);
    let file = rec.finish(&MOTORS, &homings, &full_turn).expect("all moved");
    for (i, (name, c)) in file.motors.iter().enumerate() {
        let want = if full_turn.contains(&name.as_str()) { (0, 4095) } else { expected[i] };
        assert_eq!((c.range_min, c.range_max, c.homing_offset), (want.0, want.1, homings[i]), "{name}");
    }
    let joints = file.dynamixel_joints(&robot()).expect("joints");
    bus.write_calibration(&joints).expect("write (torque off)");
    bus.check_calibration(&joints).expect("matches");
}
