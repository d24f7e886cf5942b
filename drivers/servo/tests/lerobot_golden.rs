//! LeRobot's own `MotorsBus._normalize` / `_unnormalize` and its
//! sign-magnitude and two's complement helpers, run by `golden/make_lerobot_golden.py` on LeRobot's source, give
//! the numbers in `golden/lerobot_normalize.json`; ours must agree bit for bit.

use ganglion_servo::{sts, xseries};
use ganglion_servo::{Joint, MotorCalibration, NormMode};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    lerobot_commit: String,
    cases: Vec<Case>,
    sign_magnitude: Vec<Sign>,
    twos_complement: Vec<Twos>,
}

#[derive(Deserialize)]
struct Twos {
    value: i32,
    bytes: u8,
    encoded: u32,
    decoded: i32,
}

#[derive(Deserialize)]
struct Case {
    mode: NormMode,
    drive_mode: u8,
    apply_drive_mode: bool,
    range_min: i32,
    range_max: i32,
    normalize: Vec<Norm>,
    unnormalize: Vec<Unnorm>,
}

#[derive(Deserialize)]
struct Norm {
    raw: i32,
    bits: u64,
}

#[derive(Deserialize)]
struct Unnorm {
    value_bits: u64,
    raw: i32,
}

#[derive(Deserialize)]
struct Sign {
    value: i32,
    bit: u8,
    encoded: u32,
    decoded: i32,
}

fn golden() -> Golden {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/lerobot_normalize.json");
    let text = std::fs::read_to_string(path).expect("golden file");
    serde_json::from_str(&text).expect("golden parses")
}

#[test]
fn normalize_and_unnormalize_match_lerobot_bit_for_bit() {
    let g = golden();
    assert_eq!(g.lerobot_commit.len(), 40);
    let (mut checked, mut failures) = (0, Vec::new());
    for c in &g.cases {
        let cal = MotorCalibration {
            id: 1,
            drive_mode: c.drive_mode,
            homing_offset: 0,
            range_min: c.range_min,
            range_max: c.range_max,
        };
        let mut joint = Joint::new("m", &cal, c.mode).expect("valid calibration");
        joint.apply_drive_mode = c.apply_drive_mode;
        for n in &c.normalize {
            let ours = joint.normalize(n.raw);
            checked += 1;
            if ours.to_bits() != n.bits {
                failures.push(format!(
                    "{:?} dm{} [{}, {}] normalize({}) = {ours:?}, LeRobot {:?}",
                    c.mode,
                    c.drive_mode,
                    c.range_min,
                    c.range_max,
                    n.raw,
                    f64::from_bits(n.bits)
                ));
            }
        }
        for u in &c.unnormalize {
            let v = f64::from_bits(u.value_bits);
            let ours = joint.unnormalize(v);
            checked += 1;
            if ours != Some(u.raw) {
                failures.push(format!(
                    "{:?} dm{} [{}, {}] unnormalize({v:?}) = {ours:?}, LeRobot {}",
                    c.mode, c.drive_mode, c.range_min, c.range_max, u.raw
                ));
            }
        }
    }
    assert!(checked > 500, "only {checked} values");
    assert!(failures.is_empty(), "{} of {checked} differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn sign_magnitude_matches_lerobot() {
    for s in golden().sign_magnitude {
        assert_eq!(sts::encode_sign_magnitude(s.value, s.bit), Some(s.encoded), "encode {} bit {}", s.value, s.bit);
        assert_eq!(sts::decode_sign_magnitude(s.encoded, s.bit), s.decoded);
    }
}

#[test]
fn twos_complement_matches_lerobot() {
    for t in golden().twos_complement {
        // A register of that size with LeRobot's Dynamixel encoding.
        let r = if t.bytes == 4 { xseries::GOAL_POSITION } else { xseries::GOAL_CURRENT };
        assert_eq!(r.len, t.bytes);
        assert_eq!(ganglion_servo::register::encode(r, t.value), Some(t.encoded), "encode {} in {}", t.value, t.bytes);
        assert_eq!(ganglion_servo::register::decode(r, t.encoded), t.decoded);
    }
}

#[test]
fn radians_are_lerobot_degrees_in_radians() {
    // LeRobot's degrees: (raw - mid) * 360 / 4095; mid of [800, 3300] = 2050.
    let cal = MotorCalibration { id: 1, drive_mode: 0, homing_offset: 0, range_min: 800, range_max: 3300 };
    let joint = Joint::new("m", &cal, NormMode::RangeM100To100).expect("valid");
    let expected = ((3000.0f64 - 2050.0) * 360.0 / 4095.0).to_radians();
    assert_eq!(joint.radians(3000).to_bits(), expected.to_bits());
    assert_eq!(joint.radians(2050), 0.0);
    assert_eq!(joint.raw_from_radians(joint.radians(1234)), Some(1234));
}
