//! Dynamixel protocol 2.0: the X-series emulator against ROBOTIS's own Python
//! SDK (`dynamixel_sdk`, PyPI `dynamixel-sdk`, installed by `.ci/setup`;
//! in CI a missing SDK fails, elsewhere it skips with the reason), then the
//! Rust driver against the emulator: round trips with byte stuffing, bulk
//! read, the Koch set-up, calibration check and refusal, refusals by error
//! number, a silent servo, corruption, alerts, torque off on drop.

mod vendor_sdk;

use std::time::{Duration, Instant};

use ganglion_servo::dxl_emulator::{load_calibration, DxlEmulator, DxlEmulatorConfig};
use ganglion_servo::emulator::Fault;
use ganglion_servo::{
    xseries, BusError, CalibrationError, CalibrationFile, DynamixelBus, DynamixelConfig, KochSetup, NormMode, ServoBus,
    ServoState, StatusBits,
};

const IDS: [u8; 6] = [1, 2, 3, 4, 5, 6];

fn emulator() -> DxlEmulator {
    DxlEmulator::start(DxlEmulatorConfig { max_speed: 400_000.0, ..DxlEmulatorConfig::default() }).expect("emulator")
}

fn config() -> DynamixelConfig {
    // Generous for a loaded CI machine: timeouts here come from faults.
    DynamixelConfig { timeout_margin: Duration::from_millis(150), ..DynamixelConfig::default() }
}

fn open(e: &DxlEmulator) -> DynamixelBus {
    DynamixelBus::open(e.path(), &IDS, config()).expect("bus opens")
}

fn read_until(bus: &mut DynamixelBus, done: impl Fn(&[i32]) -> bool) -> Vec<i32> {
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

#[test]
fn vendor_sdk_agrees_with_the_x_series_emulator() {
    let Some(py) = vendor_sdk::DYNAMIXEL.python("vendor_sdk_agrees_with_the_x_series_emulator") else { return };
    let e = emulator();
    let out = vendor_sdk::DYNAMIXEL.peer(&py, e.path(), &["--ids", "1,2,3,4,5,6", "--phase", "basic"]);
    assert!(out.contains("\"failures\": []"), "{out}");
    for id in IDS {
        assert_eq!(e.register(id, xseries::MIN_POSITION_LIMIT), Some(100 + i32::from(id)));
        assert_eq!(e.register(id, xseries::OPERATING_MODE), Some(4));
    }
    assert_eq!(e.register(1, xseries::HOMING_OFFSET), Some(-123));
    assert_eq!(e.register(6, xseries::GOAL_POSITION), Some(-131_073));
    assert_eq!(e.stats().bad_checksums, 0);
}

#[test]
fn vendor_sdk_reads_the_alert_and_hardware_error() {
    let Some(py) = vendor_sdk::DYNAMIXEL.python("vendor_sdk_reads_the_alert_and_hardware_error") else { return };
    let e = emulator();
    e.set_register(4, xseries::TORQUE_ENABLE, 1);
    e.inject(Fault::Alarm { id: 4, bits: StatusBits(xseries::hardware_error::OVERLOAD) });
    vendor_sdk::DYNAMIXEL.peer(&py, e.path(), &["--phase", "alarm", "--target", "4"]);
}

#[test]
fn vendor_sdk_times_out_on_a_silent_x_series_servo() {
    let Some(py) = vendor_sdk::DYNAMIXEL.python("vendor_sdk_times_out_on_a_silent_x_series_servo") else { return };
    let e = emulator();
    e.inject(Fault::Silent { id: 2 });
    vendor_sdk::DYNAMIXEL.peer(&py, e.path(), &["--phase", "silent", "--target", "2"]);
}

#[test]
fn six_servos_round_trip_with_stuffed_bytes_and_bulk_read() {
    let e = emulator();
    let mut bus = open(&e);
    assert_eq!(bus.models(), &[1200; 6]);
    bus.setup_koch(&KochSetup::default()).expect("set-up");
    bus.set_torque(true).expect("arm");
    // -131073 is FF FF FD FF on the wire: stuffed in the sync write and in
    // the answers that carry it back.
    let goals = [1000, 1500, -131_073, 2500, 3000, 3500];
    bus.sync_write_goals(&goals).expect("write");
    let reached = read_until(&mut bus, |p| p == goals.as_slice());
    assert_eq!(reached, goals);
    let mut state = [ServoState::default(); 6];
    bus.sync_read_state(&mut state).expect("state");
    for (s, g) in state.iter().zip(goals) {
        assert_eq!((s.position, s.voltage_dv, s.temperature_c, s.status), (g, 50, 30, StatusBits(0)));
    }
    let reads = [(2, xseries::PRESENT_POSITION), (3, xseries::GOAL_POSITION), (5, xseries::PRESENT_TEMPERATURE)];
    let mut out = [0; 3];
    bus.bulk_read(&reads, &mut out).expect("bulk read");
    assert_eq!(out, [1500, -131_073, 30]);
    let c = bus.counters();
    assert_eq!((c.checksum_errors, c.failures, c.unexpected_packets), (0, 0, 0), "{c:?}");
    assert!(c.retries <= c.timeouts, "retries only from a stall: {c:?}");
}

#[test]
fn koch_setup_writes_lerobots_values_and_eeprom_is_refused_with_torque_on() {
    let e = emulator();
    let mut bus = open(&e);
    bus.setup_koch(&KochSetup::default()).expect("set-up");
    for id in IDS {
        assert_eq!(e.register(id, xseries::RETURN_DELAY_TIME), Some(0));
        assert_eq!(e.register(id, xseries::OPERATING_MODE), Some(if id == 6 { 5 } else { 4 }));
        assert_eq!(e.register(id, xseries::TORQUE_ENABLE), Some(0));
    }
    let gains = |id| {
        (
            e.register(id, xseries::POSITION_P_GAIN),
            e.register(id, xseries::POSITION_I_GAIN),
            e.register(id, xseries::POSITION_D_GAIN),
        )
    };
    assert_eq!(gains(3), (Some(1500), Some(0), Some(600)));
    assert_eq!(gains(2), (Some(400), Some(0), Some(0)));
    bus.set_torque(true).expect("arm");
    let err = bus.write_register(2, xseries::HOMING_OFFSET, 10).expect_err("EEPROM with torque on");
    assert!(matches!(err, BusError::Refused { id: 2, code: 7, .. }), "{err}");
    assert!(err.to_string().contains("servo 2"), "{err}");
}

/// `set_torque_limit`: `Goal_PWM` := the fraction of each servo's
/// `PWM_Limit` (read from it), nothing written for a fraction outside
/// (0, 1]; the emulated servo refuses a `Goal_PWM` beyond `PWM_Limit` and
/// is slower under the limit.
#[test]
fn a_torque_limit_bounds_goal_pwm_by_each_servos_pwm_limit() {
    const SPEED: f64 = 2000.0;
    let e =
        DxlEmulator::start(DxlEmulatorConfig { max_speed: SPEED, ..DxlEmulatorConfig::default() }).expect("emulator");
    e.set_register(2, xseries::PWM_LIMIT, 500);
    let mut bus = open(&e);
    bus.setup_koch(&KochSetup::default()).expect("set-up");
    let pwm = |e: &DxlEmulator| IDS.map(|id| e.register(id, xseries::GOAL_PWM).expect("servo"));
    assert_eq!(e.register(1, xseries::PWM_LIMIT), Some(xseries::FULL_PWM));
    assert_eq!(pwm(&e), [885, 885, 885, 885, 885, 885], "power-up: PWM_Limit (servo 2's is written later)");
    assert_eq!(bus.set_torque_limit(0.3).expect("0.3"), [266, 150, 266, 266, 266, 266]);
    assert_eq!(pwm(&e), [266, 150, 266, 266, 266, 266], "0.3 x PWM_Limit");
    for bad in [0.0, 1.01, f64::INFINITY] {
        let err = bus.set_torque_limit(bad).expect_err("outside (0, 1]");
        assert!(matches!(err, BusError::TorqueLimit { .. }), "{err}");
    }
    assert_eq!(pwm(&e), [266, 150, 266, 266, 266, 266], "nothing written for a bad fraction");
    let err = bus.write_register(2, xseries::GOAL_PWM, 501).expect_err("beyond PWM_Limit");
    assert!(matches!(err, BusError::Refused { id: 2, code: 6, .. }), "{err}");

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
    let most = 266.0 / 885.0 * SPEED * elapsed + 2.0;
    assert!(moved <= most, "moved {moved} ticks in {elapsed:.3} s at Goal_PWM 266 of 885");
    assert_eq!(bus.set_torque_limit(1.0).expect("1.0"), [885, 500, 885, 885, 885, 885]);
}

const KOCH_CALIBRATION: &str = r#"{
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -2048, "range_min": 0, "range_max": 4095},
    "shoulder_lift": {"id": 2, "drive_mode": 1, "homing_offset": 1024, "range_min": 1300, "range_max": 3100},
    "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": -1024, "range_min": 900, "range_max": 3000},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": 5, "range_min": 800, "range_max": 3200},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 4095},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 300, "range_min": 2000, "range_max": 3000}
}"#;

fn koch_robot() -> Vec<(&'static str, u8, NormMode)> {
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
fn koch_calibration_is_checked_including_drive_mode() {
    let e = emulator();
    let file = CalibrationFile::parse(KOCH_CALIBRATION, "koch.json").expect("parses");
    load_calibration(&e, &file);
    let joints = file.dynamixel_joints(&koch_robot()).expect("joints");
    // The servo applies drive_mode: the conversion does not invert (LeRobot).
    assert!(!joints[1].apply_drive_mode);
    assert_eq!(joints[1].normalize(3100), 100.0);
    let mut bus = open(&e);
    bus.check_calibration(&joints).expect("matches");
    assert_eq!(bus.read_register(1, xseries::HOMING_OFFSET).expect("read"), -2048);
    e.set_register(2, xseries::DRIVE_MODE, 0);
    let err = bus.check_calibration(&joints).expect_err("drive mode differs");
    match err {
        BusError::Calibration(CalibrationError::RegisterMismatch { motor, register, file, servo, .. }) => {
            assert_eq!((motor.as_str(), register, file, servo), ("shoulder_lift", "Drive_Mode", 1, 0));
        }
        other => panic!("{other}"),
    }
    e.set_register(2, xseries::DRIVE_MODE, 1);
    e.set_register(4, xseries::MIN_POSITION_LIMIT, 0);
    let err = bus.check_calibration(&joints).expect_err("limit differs");
    assert!(err.to_string().contains("wrist_flex") && err.to_string().contains("Min_Position_Limit"), "{err}");
    bus.write_calibration(&joints).expect("torque off: EEPROM writable");
    bus.check_calibration(&joints).expect("matches again");
}

#[test]
fn faults_are_named_counted_and_bounded() {
    let e = emulator();
    let mut bus = open(&e);
    let mut pos = [0; 6];
    bus.sync_read_positions(&mut pos).expect("healthy");
    // One corrupt answer: CRC error counted, retried once.
    e.inject(Fault::CorruptAnswers { count: 1 });
    bus.sync_read_positions(&mut pos).expect("retried");
    let c = bus.counters();
    assert!(c.checksum_errors <= 1 && c.retries >= 1 && c.failures == 0, "{c:?}");
    // Noise that looks like a header: skipped, no retry.
    e.inject(Fault::NoiseBeforeAnswers { count: 6 });
    bus.sync_read_positions(&mut pos).expect("resynchronised");
    assert_eq!(pos, [2048; 6]);
    let c2 = bus.counters();
    assert!(c2.retries - c.retries <= c2.timeouts - c.timeouts, "no retry for noise: {c2:?}");
    // All corrupt: bounded.
    e.inject(Fault::CorruptAnswers { count: 1_000 });
    assert!(matches!(bus.sync_read_positions(&mut pos), Err(BusError::Corrupt { attempts: 3, .. })));
    e.clear_faults();
    // A silent servo mid-run, named, within the bound.
    e.inject(Fault::Silent { id: 5 });
    let bound = bus.worst_case_read();
    let t = Instant::now();
    let err = bus.sync_read_positions(&mut pos).expect_err("silent");
    assert!(matches!(err, BusError::NoResponse { id: 5, attempts: 3, .. }), "{err}");
    assert!(t.elapsed() < bound + Duration::from_millis(500));
    e.clear_faults();
    // A hardware error: the alert reaches alarms() in the tick; which one is
    // read outside it.
    bus.set_torque(true).expect("arm");
    e.inject(Fault::Alarm { id: 3, bits: StatusBits(xseries::hardware_error::OVERHEATING) });
    bus.sync_read_positions(&mut pos).expect("the read works");
    assert!(bus.alarms()[2].contains(StatusBits::ALERT) && bus.alarms()[0].is_ok());
    let mut hw = [StatusBits::default(); 6];
    bus.hardware_errors(&mut hw).expect("read errors");
    assert_eq!(hw[2], StatusBits(StatusBits::OVERHEAT));
    assert_eq!(e.register(3, xseries::TORQUE_ENABLE), Some(0), "Shutdown switched it off");
    let err = bus.write_register(3, xseries::TORQUE_ENABLE, 1).expect_err("refused");
    assert!(matches!(err, BusError::Refused { id: 3, code: 1, .. }), "{err}");
}

#[test]
fn torque_goes_off_at_shutdown_and_on_drop() {
    let e = emulator();
    let mut bus = open(&e);
    bus.set_torque(true).expect("arm");
    bus.shutdown().expect("acknowledged");
    assert!(IDS.iter().all(|&id| e.register(id, xseries::TORQUE_ENABLE) == Some(0)));
    let mut bus = open(&e);
    bus.set_torque(true).expect("arm");
    e.inject(Fault::Silent { id: 1 });
    drop(bus);
    let deadline = Instant::now() + Duration::from_secs(2);
    while e.register(6, xseries::TORQUE_ENABLE) != Some(0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for id in 2..=6 {
        assert_eq!(e.register(id, xseries::TORQUE_ENABLE), Some(0), "servo {id}");
    }
}

#[test]
fn bad_input_is_named() {
    let e = emulator();
    let cfg = DynamixelConfig { max_retries: 0, ..config() };
    let err = DynamixelBus::open(e.path(), &[1, 2, 7], cfg).expect_err("no servo 7");
    assert!(matches!(err, BusError::NoResponse { id: 7, .. }), "{err}");
    e.set_register(2, xseries::MODEL_NUMBER, 777);
    let err = DynamixelBus::open(e.path(), &IDS, config()).expect_err("not an X series");
    assert!(matches!(err, BusError::WrongModel { id: 2, found: 777, .. }), "{err}");
    let err = DynamixelBus::open(std::path::Path::new("/dev/ttyNOPE"), &IDS, config()).expect_err("no port");
    assert!(err.to_string().contains("/dev/ttyNOPE"));
}

/// `Bus_Watchdog` (98) as the e-Manual describes it: with torque on, a servo
/// that hears no instruction packet for the set time (20 ms units) stops
/// where it is, reads -1 and refuses goals until 0 is written; while
/// packets keep coming, or with the watchdog off, it follows its goal.
#[test]
fn the_bus_watchdog_stops_a_servo_whose_host_went_silent() {
    let speed = 1000.0; // ticks/s: 3000 ticks of travel take 3 s
    let e =
        DxlEmulator::start(DxlEmulatorConfig { max_speed: speed, ..DxlEmulatorConfig::default() }).expect("emulator");
    let mut bus = open(&e);
    bus.setup_koch(&KochSetup::default()).expect("set-up");
    bus.set_torque(true).expect("arm");
    bus.set_bus_watchdog(Duration::from_millis(90)).expect("watchdog");
    assert_eq!(e.register(1, xseries::BUS_WATCHDOG), Some(5), "90 ms rounds up to 5 units of 20 ms");
    let mut pos = [0; 6];
    bus.sync_read_positions(&mut pos).expect("read");
    let goals: Vec<i32> = pos.iter().map(|p| p + 3000).collect();
    bus.sync_write_goals(&goals).expect("goals");

    // Talking every 10 ms: the servos move and the watchdog holds off.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(300) {
        bus.sync_read_positions(&mut pos).expect("read");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(e.register(1, xseries::BUS_WATCHDOG), Some(5), "fed: not expired");
    assert!(pos[0] > goals[0] - 3000 + 150, "moving while fed: {pos:?}");

    // The host falls silent (a killed process): the servos stop 100 ms
    // after the last packet, torque still on, and stay there.
    let p0 = e.register(1, xseries::PRESENT_POSITION).expect("servo 1");
    std::thread::sleep(Duration::from_millis(400));
    let stopped = e.register(1, xseries::PRESENT_POSITION).expect("servo 1");
    assert_eq!(e.register(1, xseries::BUS_WATCHDOG), Some(-1), "expired");
    assert!(
        (50..=101).contains(&(stopped - p0)),
        "moved {} ticks after the last packet (100 ms at {speed}/s)",
        stopped - p0
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(e.register(1, xseries::PRESENT_POSITION), Some(stopped), "stays stopped");
    assert_eq!(e.register(1, xseries::TORQUE_ENABLE), Some(1), "holding with torque");
    assert!(stopped < goals[0], "short of the old goal {}", goals[0]);

    // Goals are refused (error 4, data range), a sync write ignored.
    let err = bus.write_register(1, xseries::GOAL_POSITION, goals[0]).expect_err("goal refused");
    assert!(matches!(err, BusError::Refused { id: 1, code: 4, .. }), "{err}");
    bus.sync_write_goals(&goals).expect("nobody answers a sync write");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(e.register(1, xseries::PRESENT_POSITION), Some(stopped), "a sync-written goal does not move it");

    // 0 clears it; goals are taken again. With the watchdog off, silence
    // does not stop a servo.
    bus.set_bus_watchdog(Duration::ZERO).expect("clear");
    assert_eq!(e.register(1, xseries::BUS_WATCHDOG), Some(0));
    bus.sync_write_goals(&goals).expect("goals");
    let p1 = e.register(1, xseries::PRESENT_POSITION).expect("servo 1");
    std::thread::sleep(Duration::from_millis(300));
    let p2 = e.register(1, xseries::PRESENT_POSITION).expect("servo 1");
    assert!(p2 - p1 > 200, "off: it keeps going ({p1} -> {p2})");
    assert!(matches!(
        bus.set_bus_watchdog(Duration::from_millis(3000)),
        Err(BusError::ValueOutOfRange { register: "Bus_Watchdog", .. })
    ));
}
