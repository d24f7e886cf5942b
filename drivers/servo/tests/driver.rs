//! The Feetech driver against the emulator on a pty: round trips for six
//! servos, LeRobot's set-up and calibration check, and the fault cases (a
//! servo that stops answering, corrupted bytes, timeouts, alarms, torque off
//! at shutdown and on drop, bad input).

use std::path::Path;
use std::time::{Duration, Instant};

use ganglion_servo::emulator::{load_calibration, Emulator, EmulatorConfig, Fault};
use ganglion_servo::{
    sts, BusError, CalibrationError, CalibrationFile, FeetechBus, FeetechConfig, NormMode, ServoBus, ServoState,
    So101Setup, StatusBits,
};

const IDS: [u8; 6] = [1, 2, 3, 4, 5, 6];

/// A margin generous enough for a loaded 2-core CI machine: timeouts here
/// come from faults, not from scheduling.
fn config() -> FeetechConfig {
    FeetechConfig { timeout_margin: Duration::from_millis(150), ..FeetechConfig::default() }
}

fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig { max_speed: 20_000.0, ..EmulatorConfig::default() }).expect("emulator")
}

fn open(e: &Emulator) -> FeetechBus {
    FeetechBus::open(e.path(), &IDS, config()).expect("bus opens")
}

/// Sync-reads until `done` or 3 s.
fn read_until(bus: &mut FeetechBus, done: impl Fn(&[i32]) -> bool) -> Vec<i32> {
    let mut pos = vec![0; IDS.len()];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        bus.sync_read_positions(&mut pos).expect("sync read");
        if done(&pos) || Instant::now() > deadline {
            return pos;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const SO101_CALIBRATION: &str = r#"{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1012,
        "range_min": 758,
        "range_max": 3292
    },
    "shoulder_lift": {
        "id": 2,
        "drive_mode": 0,
        "homing_offset": 1367,
        "range_min": 612,
        "range_max": 3401
    },
    "elbow_flex": {
        "id": 3,
        "drive_mode": 0,
        "homing_offset": -1498,
        "range_min": 1003,
        "range_max": 3100
    },
    "wrist_flex": {
        "id": 4,
        "drive_mode": 0,
        "homing_offset": 14,
        "range_min": 875,
        "range_max": 3210
    },
    "wrist_roll": {
        "id": 5,
        "drive_mode": 0,
        "homing_offset": -297,
        "range_min": 0,
        "range_max": 4095
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 1106,
        "range_min": 2023,
        "range_max": 3519
    }
}"#;

fn so101_robot() -> Vec<(&'static str, u8, NormMode)> {
    let body = NormMode::RangeM100To100;
    vec![
        ("shoulder_pan", 1, body),
        ("shoulder_lift", 2, body),
        ("elbow_flex", 3, body),
        ("wrist_flex", 4, body),
        ("wrist_roll", 5, body),
        ("gripper", 6, NormMode::Range0To100),
    ]
}

#[test]
fn six_servos_round_trip_goals_and_state() {
    let e = emulator();
    let mut bus = open(&e);
    assert_eq!(bus.ids(), &IDS);
    let start = read_until(&mut bus, |_| true);
    assert_eq!(start, vec![2048; 6]);
    bus.set_torque(true).expect("torque on");
    for id in IDS {
        assert_eq!(e.register(id, sts::TORQUE_ENABLE), Some(1));
        assert_eq!(e.register(id, sts::LOCK), Some(1));
    }
    let goals: Vec<i32> = (0..6).map(|i| 1000 + 400 * i).collect();
    bus.sync_write_goals(&goals).expect("sync write");
    let reached = read_until(&mut bus, |p| p == goals.as_slice());
    assert_eq!(reached, goals);
    let mut state = vec![ServoState::default(); 6];
    bus.sync_read_state(&mut state).expect("state");
    for (s, g) in state.iter().zip(&goals) {
        assert_eq!((s.position, s.voltage_dv, s.temperature_c, s.status), (*g, 120, 32, StatusBits(0)));
        assert_eq!(s.velocity, 0);
    }
    // A goal must fit Goal_Position (sign-magnitude, 15 bits); lengths must match.
    assert!(bus.sync_write_goals(&[-5, 0, 0, 0, 0, 40_000]).is_err(), "40000 does not fit 15 bits");
    assert!(matches!(bus.sync_write_goals(&[1, 2, 3]), Err(BusError::LengthMismatch { got: 3, expected: 6, .. })));
    let c = bus.counters();
    // A clean bus: nothing corrupt, nothing failed; a retry only ever from a
    // timeout (a stall of the loaded machine longer than the margin).
    assert_eq!((c.checksum_errors, c.failures, c.unexpected_packets), (0, 0, 0), "{c:?}");
    assert!(c.retries <= c.timeouts, "{c:?}");
    assert!(c.status_packets > 0 && c.packets_sent > 0);
    let s = e.stats();
    assert!(s.sync_writes >= 1 && s.sync_reads >= 2, "{s:?}");
}

#[test]
fn so101_setup_writes_lerobots_values_then_torque_arms() {
    let e = emulator();
    e.set_register(2, sts::PHASE, 0x1C); // bit 4 set: the set-up clears it
    e.set_register(1, sts::RETURN_DELAY_TIME, 250);
    let mut bus = open(&e);
    bus.setup_so101(&So101Setup::default()).expect("set-up");
    for id in IDS {
        let r = |reg| e.register(id, reg).expect("servo");
        assert_eq!(r(sts::RETURN_DELAY_TIME), 0);
        assert_eq!(r(sts::MAXIMUM_ACCELERATION), 254);
        assert_eq!(r(sts::ACCELERATION), 254);
        assert_eq!(r(sts::OPERATING_MODE), 0);
        assert_eq!((r(sts::P_COEFFICIENT), r(sts::I_COEFFICIENT), r(sts::D_COEFFICIENT)), (16, 0, 32));
        assert_eq!((r(sts::TORQUE_ENABLE), r(sts::LOCK)), (0, 0), "set-up leaves torque off");
        assert_eq!(r(sts::PHASE) & 0x10, 0);
        let gripper = (r(sts::MAX_TORQUE_LIMIT), r(sts::PROTECTION_CURRENT), r(sts::OVERLOAD_TORQUE));
        if id == 6 {
            assert_eq!(gripper, (500, 250, 25));
        } else {
            assert_eq!(gripper, (1000, 500, 80), "only the gripper is limited");
        }
    }
    assert_eq!(e.register(2, sts::PHASE), Some(0x0C));
    bus.set_torque(true).expect("arm");
    for id in IDS {
        assert_eq!((e.register(id, sts::TORQUE_ENABLE), e.register(id, sts::LOCK)), (Some(1), Some(1)));
    }
    bus.set_torque(false).expect("disarm");
    for id in IDS {
        assert_eq!((e.register(id, sts::TORQUE_ENABLE), e.register(id, sts::LOCK)), (Some(0), Some(0)));
    }
}

/// `set_torque_limit`: `Torque_Limit` := the fraction of each servo's own
/// `Max_Torque_Limit` (the gripper's is LeRobot's 500), nothing written for
/// a fraction outside (0, 1], 1.0 back to the power-up values; the emulated
/// servo is weaker under the limit (its top speed scales with it).
#[test]
fn a_torque_limit_is_a_fraction_of_each_servos_own_limit() {
    const SPEED: f64 = 2000.0;
    let e = Emulator::start(EmulatorConfig { max_speed: SPEED, ..EmulatorConfig::default() }).expect("emulator");
    let mut bus = open(&e);
    bus.setup_so101(&So101Setup::default()).expect("set-up");
    let limits = |e: &Emulator| IDS.map(|id| e.register(id, sts::TORQUE_LIMIT).expect("servo"));
    assert_eq!(bus.set_torque_limit(0.3).expect("0.3"), [300, 300, 300, 300, 300, 150]);
    assert_eq!(limits(&e), [300, 300, 300, 300, 300, 150], "Torque_Limit, 0.1 %");
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let err = bus.set_torque_limit(bad).expect_err("outside (0, 1]");
        assert!(matches!(err, BusError::TorqueLimit { .. }), "{err}");
        assert!(err.to_string().contains("(0, 1]"), "{err}");
    }
    assert_eq!(limits(&e), [300, 300, 300, 300, 300, 150], "nothing written for a bad fraction");

    // At 30 % torque the emulated servo reaches at most 30 % of its speed.
    bus.set_torque(true).expect("arm");
    let mut pos = vec![0; IDS.len()];
    bus.sync_read_positions(&mut pos).expect("read");
    let start = pos[0];
    let mut goals = pos.clone();
    goals[0] = start + 1000;
    let t0 = Instant::now();
    bus.sync_write_goals(&goals).expect("goal");
    std::thread::sleep(Duration::from_millis(150));
    bus.sync_read_positions(&mut pos).expect("read");
    let elapsed = t0.elapsed().as_secs_f64();
    let moved = f64::from(pos[0] - start);
    assert!(moved > 0.0, "it moves");
    assert!(moved <= 0.3 * SPEED * elapsed + 2.0, "moved {moved} ticks in {elapsed:.3} s at 30 % torque");

    assert_eq!(bus.set_torque_limit(1.0).expect("1.0"), [1000, 1000, 1000, 1000, 1000, 500]);
    bus.set_torque(false).expect("disarm");
    bus.set_torque_limit(0.5).expect("0.5");
    e.power_cycle(6);
    assert_eq!(e.register(6, sts::TORQUE_LIMIT), Some(500), "power-up: Max_Torque_Limit");
}

#[test]
fn lerobot_calibration_is_checked_against_the_registers_and_a_mismatch_refused_by_name() {
    let e = emulator();
    let file = CalibrationFile::parse(SO101_CALIBRATION, "so101.json").expect("parses");
    load_calibration(&e, &file);
    let joints = file.joints(&so101_robot()).expect("joints");
    let mut bus = open(&e);
    bus.check_calibration(&joints).expect("matches");
    // Negative offsets travel sign-magnitude on bit 11.
    assert_eq!(bus.read_register(3, sts::HOMING_OFFSET).expect("read"), -1498);

    // Another arm's limit on the elbow: refused, naming motor and register.
    e.set_register(3, sts::MAX_POSITION_LIMIT, 3000);
    let err = bus.check_calibration(&joints).expect_err("mismatch");
    match &err {
        BusError::Calibration(CalibrationError::RegisterMismatch { motor, id, register, file, servo }) => {
            assert_eq!(
                (motor.as_str(), *id, *register, *file, *servo),
                ("elbow_flex", 3, "Max_Position_Limit", 3100, 3000)
            );
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("elbow_flex") && err.to_string().contains("Max_Position_Limit"), "{err}");
    e.set_register(3, sts::MAX_POSITION_LIMIT, 3100);
    // A homing offset of the other sign.
    e.set_register(5, sts::HOMING_OFFSET, 297);
    let err = bus.check_calibration(&joints).expect_err("mismatch");
    assert!(err.to_string().contains("wrist_roll") && err.to_string().contains("Homing_Offset"), "{err}");
    e.set_register(5, sts::HOMING_OFFSET, -297);

    // Writing the calibration (torque off) is what LeRobot does; check passes again.
    e.set_register(4, sts::MIN_POSITION_LIMIT, 0);
    bus.write_calibration(&joints).expect("write calibration");
    bus.check_calibration(&joints).expect("matches again");

    // The file of another robot is refused before the bus is touched.
    let mut other = file.clone();
    other.motors[0].1.id = 7;
    let err = other.joints(&so101_robot()).expect_err("another robot");
    assert!(err.to_string().contains("shoulder_pan"), "{err}");
}

#[test]
fn calibrated_units_round_trip_through_the_servos() {
    let e = emulator();
    let file = CalibrationFile::parse(SO101_CALIBRATION, "so101.json").expect("parses");
    load_calibration(&e, &file);
    let joints = file.joints(&so101_robot()).expect("joints");
    let mut bus = open(&e);
    bus.set_torque(true).expect("arm");
    // The policy asks for the middle of every body joint and a half-open gripper.
    let targets = [0.0, 0.0, 0.0, 0.0, 0.0, 50.0];
    let goals: Vec<i32> = joints.iter().zip(targets).map(|(j, v)| j.unnormalize(v).expect("finite")).collect();
    assert_eq!(goals[0], (758 + 3292) / 2); // int(((0 + 100) / 200) * 2534 + 758) = 2025
    bus.sync_write_goals(&goals).expect("write");
    let reached = read_until(&mut bus, |p| p == goals.as_slice());
    let seen: Vec<f64> = joints.iter().zip(&reached).map(|(j, &raw)| j.normalize(raw)).collect();
    for (s, t) in seen.iter().zip(targets) {
        assert!((s - t).abs() < 0.1, "{seen:?}");
    }
    // Radians for the shield: the middle of the range is 0.
    assert!(joints[0].radians(reached[0]).abs() < 0.01);
}

#[test]
fn a_servo_that_stops_answering_mid_run_is_named_within_the_bound() {
    let e = emulator();
    let mut bus = open(&e);
    let mut pos = [0i32; 6];
    for _ in 0..20 {
        bus.sync_read_positions(&mut pos).expect("healthy");
    }
    e.inject(Fault::Silent { id: 4 });
    let before = bus.counters();
    let bound = bus.worst_case_read();
    let t = Instant::now();
    let err = bus.sync_read_positions(&mut pos).expect_err("servo 4 is gone");
    let took = t.elapsed();
    match &err {
        BusError::NoResponse { id, attempts, .. } => assert_eq!((*id, *attempts), (4, 3)),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("servo 4"), "{err}");
    assert!(took >= bound - Duration::from_millis(5), "took {took:?}, bound {bound:?}");
    assert!(took < bound + Duration::from_millis(500), "took {took:?}, bound {bound:?}");
    let c = bus.counters();
    let d = (c.retries - before.retries, c.timeouts - before.timeouts, c.failures - before.failures);
    assert_eq!(d, (2, 3, 1), "{c:?}");
    // The others' answers arrived and were not blamed.
    assert_eq!(c.checksum_errors, 0);
    // A ping names it too; the bus recovers when it answers again.
    assert!(matches!(bus.ping(4), Err(BusError::NoResponse { id: 4, .. })));
    e.clear_faults();
    bus.sync_read_positions(&mut pos).expect("back");
}

#[test]
fn corrupted_bytes_are_counted_retried_and_bounded() {
    let e = emulator();
    let mut bus = open(&e);
    let mut pos = [0i32; 6];
    // One corrupt answer: dropped, counted, the exchange retried once.
    e.inject(Fault::CorruptAnswers { count: 1 });
    bus.sync_read_positions(&mut pos).expect("retried");
    assert_eq!(pos, [2048; 6]);
    let c = bus.counters();
    // (Exactly one checksum error and one retry, unless a stall of the
    // machine made the corrupt answer arrive after its attempt timed out.)
    assert!(c.checksum_errors <= 1 && c.retries >= 1 && c.failures == 0, "{c:?}");
    // Noise before every answer: skipped without a retry.
    e.inject(Fault::NoiseBeforeAnswers { count: 6 });
    bus.sync_read_positions(&mut pos).expect("resynchronised");
    assert_eq!(pos, [2048; 6]);
    let c2 = bus.counters();
    assert!(c2.retries - c.retries <= c2.timeouts - c.timeouts, "no retry for noise: {c2:?}");
    assert!(c2.dropped_bytes >= c.dropped_bytes + 6 * 3, "{c2:?}");
    // Every answer corrupt: a bounded failure after 1 + max_retries attempts.
    e.inject(Fault::CorruptAnswers { count: 1_000 });
    let err = bus.sync_read_positions(&mut pos).expect_err("all corrupt");
    assert!(matches!(err, BusError::Corrupt { attempts: 3, .. }), "{err}");
    let c3 = bus.counters();
    assert_eq!(c3.retries - c2.retries, 2);
    assert!(c3.checksum_errors >= c2.checksum_errors + 3);
    e.clear_faults();
    bus.sync_read_positions(&mut pos).expect("clean again");
}

#[test]
fn timeouts_follow_the_bytes_and_the_baud_rate() {
    let e = emulator();
    // No pings at open: a 5 ms margin is for the arithmetic, not for a
    // loaded machine.
    let cfg = FeetechConfig {
        max_retries: 0,
        timeout_margin: Duration::from_millis(5),
        check_model: false,
        ..FeetechConfig::default()
    };
    let mut bus = FeetechBus::open(e.path(), &IDS, cfg).expect("open");
    // State read: 14 request bytes + 6 x 16 answer bytes at 10 us a byte, + 5 ms.
    assert_eq!(bus.read_timeout(), Duration::from_micros(110 * 10) + Duration::from_millis(5));
    assert_eq!(bus.worst_case_read(), bus.read_timeout());
    let (bytes, wire) = bus.tick_wire();
    assert_eq!(bytes, (8 + 6) + 6 * 8 + (8 + 18));
    assert_eq!(wire, Duration::from_micros(10 * bytes as u64));
    e.inject(Fault::Silent { id: 2 });
    let t = Instant::now();
    let err = bus.ping(2).expect_err("silent");
    let took = t.elapsed();
    // Ping: 6 bytes out, 6 back: 120 us + 5 ms.
    match err {
        BusError::NoResponse { id: 2, timeout_us, attempts: 1, .. } => assert_eq!(timeout_us, 5_120),
        other => panic!("{other}"),
    }
    assert!(took >= Duration::from_micros(5_120) && took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn alarm_bits_reach_the_caller_without_failing_the_tick() {
    let e = emulator();
    let mut bus = open(&e);
    bus.set_torque(true).expect("arm");
    e.inject(Fault::Alarm { id: 2, bits: StatusBits(StatusBits::OVERLOAD) });
    let mut state = [ServoState::default(); 6];
    bus.sync_read_state(&mut state).expect("the read itself works");
    assert!(bus.alarms()[1].contains(StatusBits::OVERLOAD));
    assert!(state[1].status.contains(StatusBits::OVERLOAD));
    assert!(bus.alarms()[0].is_ok());
    assert!(bus.counters().alarms >= 1);
    // The overload unloaded servo 2 (Unloading_Condition); set-up writes refuse.
    assert_eq!(e.register(2, sts::TORQUE_ENABLE), Some(0));
    let err = bus.write_register(2, sts::TORQUE_ENABLE, 1).expect_err("alarm");
    assert!(err.to_string().contains("servo 2") && err.to_string().contains("overload"), "{err}");
}

#[test]
fn torque_goes_off_at_shutdown_and_on_drop() {
    let e = emulator();
    let mut bus = open(&e);
    bus.set_torque(true).expect("arm");
    bus.shutdown().expect("acknowledged torque off");
    for id in IDS {
        assert_eq!((e.register(id, sts::TORQUE_ENABLE), e.register(id, sts::LOCK)), (Some(0), Some(0)));
    }
    // Dropped without shutdown (an early return, a panic): a broadcast
    // torque off, even with a silent servo on the bus.
    let mut bus = open(&e);
    bus.set_torque(true).expect("arm");
    bus.sync_write_goals(&[100, 200, 300, 400, 500, 600]).expect("goals");
    e.inject(Fault::Silent { id: 6 });
    drop(bus);
    let deadline = Instant::now() + Duration::from_secs(2);
    while e.register(5, sts::LOCK) != Some(0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for id in 1..=5 {
        assert_eq!((e.register(id, sts::TORQUE_ENABLE), e.register(id, sts::LOCK)), (Some(0), Some(0)), "servo {id}");
    }
}

#[test]
fn bad_input_is_named_before_arming() {
    let e = emulator();
    // A wrong port.
    let err = FeetechBus::open(Path::new("/dev/ttyNOPE"), &IDS, config()).expect_err("no port");
    assert!(matches!(err, BusError::Port { .. }) && err.to_string().contains("/dev/ttyNOPE"), "{err}");
    // A missing servo id.
    let cfg = FeetechConfig { max_retries: 0, ..config() };
    let err = FeetechBus::open(e.path(), &[1, 2, 3, 4, 5, 6, 9], cfg).expect_err("no servo 9");
    assert!(matches!(err, BusError::NoResponse { id: 9, .. }), "{err}");
    // Another model at an id.
    e.set_register(3, sts::MODEL_NUMBER, 1284);
    let err = FeetechBus::open(e.path(), &IDS, config()).expect_err("wrong model");
    assert!(matches!(err, BusError::WrongModel { id: 3, found: 1284, .. }), "{err}");
    e.set_register(3, sts::MODEL_NUMBER, i32::from(sts::STS3215_MODEL));
    // Ids listed twice or out of range.
    assert!(matches!(FeetechBus::open(e.path(), &[1, 1], config()), Err(BusError::BadId { id: 1, .. })));
    assert!(matches!(FeetechBus::open(e.path(), &[253], config()), Err(BusError::BadId { id: 253, .. })));
    // A calibration file that is not one.
    assert!(CalibrationFile::parse("{\"gripper\": {\"id\": \"six\"}}", "bad.json").is_err());
}

#[test]
fn the_emulator_binary_prints_its_pty_and_serves_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_servo-emulator"))
        .args(["--ids", "1,2,3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn servo-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("path line");
    let path = line.trim().to_string();
    assert!(path.starts_with("/dev/pts/"), "{path}");
    let mut bus = FeetechBus::open(Path::new(&path), &[1, 2, 3], config()).expect("open the binary's pty");
    let mut pos = [0; 3];
    bus.sync_read_positions(&mut pos).expect("read");
    assert_eq!(pos, [2048; 3]);
    drop(bus);
    drop(child.stdin.take()); // stdin closes: it exits
    let status = child.wait().expect("exit");
    assert!(status.success());
}
