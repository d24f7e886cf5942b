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

// ---- `ganglion_servo::calibrate` (the `ganglion calibrate` procedure)
// against LeRobot's own `calibrate()` on the same readings
// (tests/golden/calibration_golden.json, written by
// tests/golden/make_calibration_golden.py from LeRobot 0.6.1).

use ganglion_servo::calibrate::{
    calibrate, calibration_path, calibration_root, CalibrateConfig, Console, Outcome, Robot,
};
use ganglion_servo::register::Register;
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/calibration_golden.json");

/// Moves every joint to a reading (ids 1..).
type MoveTo<'a> = Box<dyn Fn(&[i32]) + 'a>;

/// The user, scripted: answers in order; while ranges are recorded, each
/// `enter_pressed` moves the joints to the next reading of `sweep` and says
/// ENTER once all were shown (min/max depend only on the readings seen).
struct Hands<'a> {
    answers: Vec<&'static str>,
    prompts: Vec<String>,
    lines: Vec<String>,
    sweep: Vec<Vec<i32>>,
    next: usize,
    tables: usize,
    move_to: MoveTo<'a>,
}

impl Console for Hands<'_> {
    fn input(&mut self, prompt: &str) -> std::io::Result<String> {
        self.prompts.push(prompt.to_string());
        if self.answers.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "script ended"));
        }
        Ok(self.answers.remove(0).to_string())
    }
    fn print(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }
    fn enter_pressed(&mut self) -> std::io::Result<bool> {
        if self.next < self.sweep.len() {
            (self.move_to)(&self.sweep[self.next]);
            self.next += 1;
            return Ok(false);
        }
        Ok(true)
    }
    fn show_ranges(&mut self, table: &str, _last: bool) {
        assert!(table.contains("NAME            |    MIN |    POS |    MAX"), "{table}");
        self.tables += 1;
    }
    fn pause(&mut self, _d: Duration) {}
}

fn ints(v: &Value) -> Vec<i32> {
    v.as_array().expect("array").iter().map(|x| x.as_i64().expect("int") as i32).collect()
}

fn golden(robot: &str) -> Value {
    let g: Value = serde_json::from_str(GOLDEN).expect("golden parses");
    assert_eq!(g["lerobot_version"], "0.6.1");
    g[robot].clone()
}

fn register_by_name(table: &[Register], name: &str) -> Register {
    *table.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no register {name}"))
}

/// Runs the procedure on an emulator prepared as the golden's servos were
/// (encoders at `middle`, an old calibration on them) and compares what
/// LeRobot produced: the file (bytes, path), the registers, the prompts.
fn against_golden(
    robot: Robot,
    g: &Value,
    registers: &[Register],
    set: &dyn Fn(u8, Register, i32),
    get: &dyn Fn(u8, Register) -> Option<i32>,
    move_by_hand: &dyn Fn(u8, i32),
    port: &std::path::Path,
) {
    let (homing, min, max) = (
        register_by_name(registers, "Homing_Offset"),
        register_by_name(registers, "Min_Position_Limit"),
        register_by_name(registers, "Max_Position_Limit"),
    );
    for (i, &p) in ints(&g["middle"]).iter().enumerate() {
        let id = i as u8 + 1;
        set(id, homing, 0);
        move_by_hand(id, p); // encoder at p
        for (r, key) in [(homing, "Homing_Offset"), (min, "Min_Position_Limit"), (max, "Max_Position_Limit")] {
            set(id, r, g["old"][key].as_i64().expect("old") as i32);
        }
    }
    let root = tempdir();
    let id = g["robot_id"].as_str().expect("id");
    let file = calibration_path(robot, id, None, &root);
    assert_eq!(file.strip_prefix(&root).expect("under root").to_str(), g["path"].as_str());
    let cfg = CalibrateConfig {
        robot,
        id: id.to_string(),
        port: port.to_path_buf(),
        file: file.clone(),
        timeout_margin: Duration::from_millis(150),
        ..CalibrateConfig::default()
    };
    let sweep: Vec<Vec<i32>> = g["sweep"].as_array().expect("sweep").iter().map(ints).collect();
    let mut hands = Hands {
        answers: vec![""],
        prompts: vec![],
        lines: vec![],
        sweep,
        next: 0,
        tables: 0,
        move_to: Box::new(|reading: &[i32]| {
            for (i, &p) in reading.iter().enumerate() {
                move_by_hand(i as u8 + 1, p);
            }
        }),
    };
    let outcome = calibrate(&cfg, &mut hands).expect("calibrates");
    let text = std::fs::read_to_string(&file).expect("file written");
    assert_eq!(text, g["calibration_json"].as_str().expect("json"), "the file LeRobot writes, byte for byte");
    assert!(matches!(outcome, Outcome::Calibrated(ref f) if f.to_json() == text));
    for (sid, regs) in g["registers"].as_object().expect("registers") {
        let sid: u8 = sid.parse().expect("id");
        for (name, want) in regs.as_object().expect("regs") {
            let got = get(sid, register_by_name(registers, name));
            assert_eq!(got, Some(want.as_i64().expect("int") as i32), "servo {sid} {name}");
        }
    }
    let prompts: Vec<&str> = g["prompts"].as_array().expect("prompts").iter().map(|p| p.as_str().expect("s")).collect();
    assert_eq!(hands.prompts, prompts);
    let path = file.display().to_string();
    for m in g["messages"].as_array().expect("messages") {
        let m = m.as_str().expect("s").replace("{path}", &path);
        assert!(hands.lines.contains(&m), "{m:?} not among {:?}", hands.lines);
    }
    assert!(hands.tables > hands.next, "the live table after every read");
    // Nothing recalibrates a file without asking: a second run offers it,
    // ENTER writes it back to the servos unchanged.
    set(1, homing, 0);
    hands.answers = vec![""];
    hands.prompts.clear();
    let again = calibrate(&cfg, &mut hands).expect("reuses");
    assert!(matches!(again, Outcome::Reused(_)));
    assert!(hands.prompts[0].starts_with(&format!(
        "Press ENTER to use provided calibration file associated with the id {id}, or type 'c'"
    )));
    assert_eq!(get(1, homing), Some(g["registers"]["1"]["Homing_Offset"].as_i64().expect("int") as i32));
    assert_eq!(std::fs::read_to_string(&file).expect("file"), text, "file untouched");
    let _ = std::fs::remove_dir_all(root);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ganglion-calibrate-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
    ));
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}

#[test]
fn so_follower_procedure_matches_lerobot_calibrate() {
    let g = golden("so_follower");
    let e = Emulator::start(EmulatorConfig::default()).expect("emulator");
    against_golden(
        Robot::SoFollower,
        &g,
        sts::REGISTERS,
        &|id, r, v| e.set_register(id, r, v),
        &|id, r| e.register(id, r),
        &|id, p| e.move_by_hand(id, p),
        e.path(),
    );
}

#[test]
fn koch_follower_procedure_matches_lerobot_calibrate() {
    let g = golden("koch_follower");
    let e = DxlEmulator::start(DxlEmulatorConfig::default()).expect("emulator");
    against_golden(
        Robot::KochFollower,
        &g,
        xseries::REGISTERS,
        &|id, r, v| e.set_register(id, r, v),
        &|id, r| e.register(id, r),
        &|id, p| e.move_by_hand(id, p),
        e.path(),
    );
}

#[test]
fn calibration_root_is_lerobots() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| std::ffi::OsString::from(v))
    };
    assert_eq!(
        calibration_root(env(&[("HOME", "/home/u")])),
        Some("/home/u/.cache/huggingface/lerobot/calibration".into())
    );
    assert_eq!(
        calibration_root(env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")])),
        Some("/c/huggingface/lerobot/calibration".into())
    );
    assert_eq!(
        calibration_root(env(&[("HOME", "/home/u"), ("HF_HOME", "~/hf")])),
        Some("/home/u/hf/lerobot/calibration".into())
    );
    assert_eq!(
        calibration_root(env(&[("HF_HOME", "/hf"), ("HF_LEROBOT_HOME", "/lr")])),
        Some("/lr/calibration".into())
    );
    assert_eq!(
        calibration_root(env(&[("HF_LEROBOT_HOME", "/lr"), ("HF_LEROBOT_CALIBRATION", "/cal")])),
        Some("/cal".into())
    );
    assert_eq!(calibration_root(env(&[])), None);
    let root = std::path::Path::new("/cal");
    assert_eq!(
        calibration_path(Robot::SoFollower, "a", None, root),
        std::path::Path::new("/cal/robots/so_follower/a.json")
    );
    assert_eq!(
        calibration_path(Robot::KochFollower, "k", None, root),
        std::path::Path::new("/cal/robots/koch_follower/k.json")
    );
    assert_eq!(
        calibration_path(Robot::SoFollower, "a", Some(std::path::Path::new("/d")), root),
        std::path::Path::new("/d/a.json")
    );
    assert_eq!(Robot::from_type("so101_follower"), Some(Robot::SoFollower));
    assert_eq!(Robot::from_type("so100_follower"), Some(Robot::SoFollower));
    assert_eq!(Robot::from_type("koch_follower"), Some(Robot::KochFollower));
    assert_eq!(Robot::from_type("so101_leader"), None);
}

#[test]
fn another_robots_file_is_refused_before_the_arm_is_touched() {
    let root = tempdir();
    let file = root.join("x.json");
    std::fs::write(
        &file,
        r#"{"arm_pan": {"id": 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 10}}"#,
    )
    .expect("write");
    let cfg = CalibrateConfig { id: "x".into(), port: "/nonexistent/port".into(), file, ..CalibrateConfig::default() };
    let mut hands = Hands {
        answers: vec![],
        prompts: vec![],
        lines: vec![],
        sweep: vec![],
        next: 0,
        tables: 0,
        move_to: Box::new(|_| {}),
    };
    let e = calibrate(&cfg, &mut hands).expect_err("another robot's file");
    assert!(e.to_string().contains("\"arm_pan\""), "{e}");
    assert!(hands.prompts.is_empty());
    let _ = std::fs::remove_dir_all(root);
}
