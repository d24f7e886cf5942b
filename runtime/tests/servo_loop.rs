//! `ganglion run` on an emulated SO-101 (`[transport] kind = "servo"`): the
//! STS3215 emulator of `ganglion-servo` on a pty in this process, a
//! LeRobot calibration file (tests/fixtures/servo/so101_follower.json), a
//! six-joint profile and a tiny signed bundle whose chunk is a fixed pose
//! (tests/fixtures/servo/make_bundle.py). [`Runtime`] runs in-process, as in
//! deploy_in_process.rs.
//!
//! Checked: the loop keeps its rate with the bus on its own thread; the
//! policy's goals reach the servos' `Goal_Position` registers and the arm
//! gets there; a servo made silent mid-run hands the arm to the fallback
//! at the first tick after the bus thread raised `bus_fault` naming it, a
//! status alarm bit at the first tick after `servo_fault` naming servo and
//! bit, and the policy drives again once they clear; torque is off after
//! shutdown (and after a drop without one); a wrong port, a missing servo,
//! a calibration of another robot or of another arm are refused before
//! anything is armed, naming the device and what was expected. A Koch arm
//! (Dynamixel X series) arms with LeRobot's set-up and its bus watchdog,
//! and an overload in `Hardware_Error_Status` becomes `servo_fault`.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ganglion::deploy::{PolicyChoice, Runtime, RuntimeOptions};
use ganglion_servo::dxl_emulator::{self, DxlEmulator, DxlEmulatorConfig};
use ganglion_servo::emulator::{load_calibration, Emulator, EmulatorConfig, Fault};
use ganglion_servo::{sts, xseries, CalibrationFile, NormMode, StatusBits};

const JOINTS: [&str; 6] = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"];
/// The bundle's pose (make_bundle.py's POSE).
const POSE: [f64; 6] = [0.30, -0.30, 0.30, -0.30, 0.30, 0.50];
const IDS: [u8; 6] = [1, 2, 3, 4, 5, 6];
const RATE_HZ: f64 = 100.0;
const MAX_AGE_MS: f64 = 30.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servo").join(name)
}

fn calibration() -> CalibrationFile {
    CalibrationFile::load(&fixture("so101_follower.json")).expect("calibration fixture")
}

/// A calibrated arm on a pty, at the wire pace of 1 Mbit/s.
fn emulated_arm(ids: &[u8]) -> Emulator {
    let cfg = EmulatorConfig { ids: ids.to_vec(), pace_baud: Some(1_000_000), ..EmulatorConfig::default() };
    let emulator = Emulator::start(cfg).expect("the emulator opens a pty");
    load_calibration(&emulator, &calibration());
    emulator
}

/// The fixture bundle, signed in `dir` with the test key.
fn signed_bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle dir");
    for f in ["policy.onnx", "policy.toml"] {
        std::fs::copy(fixture("bundle").join(f), bundle.join(f)).expect("copy the bundle");
    }
    let key = ganglion_policies::signing::read_signing_key(&root().join("policies/fixtures/TEST-ONLY-signing.key"))
        .expect("test key");
    ganglion_policies::sign_bundle(&bundle, &key).expect("sign");
    bundle
}

/// A six-joint SO-101 profile on `port` (limits of launch/so101.toml).
fn profile(dir: &Path, port: &Path, calibration: &Path) -> PathBuf {
    profile_on(dir, port, calibration, "feetech")
}

/// The same six-joint profile on a `protocol` bus (a Koch arm on `dynamixel`).
fn profile_on(dir: &Path, port: &Path, calibration: &Path, protocol: &str) -> PathBuf {
    let limits = [
        (-1.92, 1.92, 2.0, 10.0, 150.0),
        (-1.75, 1.75, 1.5, 8.0, 120.0),
        (-1.69, 1.69, 1.5, 8.0, 120.0),
        (-1.66, 1.66, 2.5, 15.0, 250.0),
        (-2.74, 2.84, 3.0, 15.0, 250.0),
        (-0.17, 1.75, 3.0, 20.0, 400.0),
    ];
    let mut text = String::from("[robot]\nname = \"so101\"\nhome = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]\n");
    for (name, (lo, hi, v, a, j)) in JOINTS.iter().zip(limits) {
        text.push_str(&format!(
            "[[robot.joints]]\nname = \"{name}\"\nlimit = {{ position_min = {lo}, position_max = {hi}, velocity = {v}, \
             acceleration = {a}, jerk = {j} }}\n"
        ));
    }
    text.push_str(&format!(
        r#"
[control]
rate_hz = {RATE_HZ}
budget_us = 0

[staleness]
joint_max_age_ms = {MAX_AGE_MS}

[supervisor]
recover_after_ticks = 10
escalate_after_ticks = 0

[executor]
# The bundle's chunk is flat (a fixed pose): join it at 0.5 rad/s, not the
# default seam floor's 0.05 rad/s.
min_seam_step = 0.05

[fallback]
kind = "decelerate"

[policy]
bundle = "{bundle}"
trusted_keys = "{key}"
backend = "tract"
execution_provider = "cpu"

[transport]
kind = "servo"

[transport.servo]
port = "{port}"
protocol = "{protocol}"
baud = 1000000
calibration = "{calibration}"
ids = [1, 2, 3, 4, 5, 6]
exit_hold_ms = 100
max_checksum_errors_per_s = 3

[realtime]
enabled = false
mlockall = false
"#,
        bundle = signed_bundle(dir).display(),
        key = root().join("policies/fixtures/TEST-ONLY-signing.pub").display(),
        port = port.display(),
        calibration = calibration.display(),
    ));
    let path = dir.join("so101.toml");
    std::fs::write(&path, text).expect("write the profile");
    path
}

/// Adds `line` to the `[transport.servo]` table of the profile at `path`.
fn add_servo_key(path: &Path, line: &str) {
    let text = std::fs::read_to_string(path).expect("read the profile");
    let text = text.replace("exit_hold_ms = 100\n", &format!("exit_hold_ms = 100\n{line}\n"));
    std::fs::write(path, text).expect("write the profile");
}

/// Sets `[transport.servo] torque_limit` in the profile at `path`.
fn limit_torque(path: &Path, limit: f64) {
    add_servo_key(path, &format!("torque_limit = {limit}"));
}

/// Raises `[transport.servo] timeout_margin_ms` to 20 ms in the profile at
/// `path`, for tests that do not judge how fast a silent servo is noticed:
/// the emulated servos answer from a thread of this test process, which a
/// busy machine (CI, two cores, tests in parallel) can starve for longer
/// than a real servo takes, and arming fails if a servo misses 3 reads.
fn be_patient(path: &Path) -> PathBuf {
    add_servo_key(path, "timeout_margin_ms = 20");
    path.to_path_buf()
}

/// The pose's goal ticks per servo, as the runtime converts it.
fn pose_ticks() -> Vec<i32> {
    let robot: Vec<(&str, u8, NormMode)> = JOINTS.iter().zip(IDS).map(|(n, id)| (*n, id, NormMode::Degrees)).collect();
    let joints = calibration().joints(&robot).expect("joints");
    joints.iter().zip(POSE).map(|(j, rad)| j.raw_from_radians(rad).expect("ticks")).collect()
}

fn register(emulator: &Emulator, id: u8, r: ganglion_servo::register::Register) -> i32 {
    emulator.register(id, r).unwrap_or_else(|| panic!("servo {id} is emulated"))
}

fn torque(emulator: &Emulator, ids: &[u8]) -> Vec<i32> {
    ids.iter().map(|&id| register(emulator, id, sts::TORQUE_ENABLE)).collect()
}

/// `(seq, stamp_ns, mode, causes)` of every mode change in the event log.
fn mode_events(path: &Path) -> Vec<(u64, u64, String, Vec<String>)> {
    let text = std::fs::read_to_string(path).expect("the event log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["t"] == "mode")
        .map(|v| {
            let causes =
                v["causes"].as_array().map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect());
            (
                v["seq"].as_u64().unwrap_or_default(),
                v["stamp_ns"].as_u64().unwrap_or_default(),
                v["mode"].as_str().unwrap_or_default().to_string(),
                causes.unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn the_servo_bus_closes_the_loop_on_the_emulated_arm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = emulated_arm(&IDS);
    let path = profile(dir.path(), emulator.path(), &fixture("so101_follower.json"));
    let events = dir.path().join("events.jsonl");
    let seconds = 5.0;
    let options = RuntimeOptions {
        seconds: Some(seconds),
        policy: Some(PolicyChoice::Bundle),
        events: Some(events.clone()),
        ..Default::default()
    };
    let mut runtime = Runtime::start(&path, options).expect("start");
    assert_eq!(torque(&emulator, &IDS), [1; 6], "armed at start");

    // At 1.5 s the goals the policy drove are in the registers; at 2.0 s
    // the elbow's servo falls silent, at 2.5 s it answers again; at 3.0 s
    // the shoulder-lift servo raises its voltage alarm bit, cleared at 3.2 s;
    // at 3.6 s five answers come corrupt (bad checksums: more than the
    // profile's budget of 3 a second, though the retries keep every read).
    let t0 = Instant::now();
    let goals_at_1_5: RefCell<Option<Vec<i32>>> = RefCell::new(None);
    let silenced = Cell::new(false);
    let cleared = Cell::new(false);
    let alarmed = Cell::new(false);
    let alarm_cleared = Cell::new(false);
    let corrupted = Cell::new(false);
    runtime.run_until(|| {
        let t = t0.elapsed().as_secs_f64();
        if t >= 1.5 && goals_at_1_5.borrow().is_none() {
            *goals_at_1_5.borrow_mut() =
                Some(IDS.iter().map(|&id| register(&emulator, id, sts::GOAL_POSITION)).collect());
        }
        if t >= 2.0 && !silenced.get() {
            emulator.inject(Fault::Silent { id: 3 });
            silenced.set(true);
        }
        if t >= 2.5 && !cleared.get() {
            emulator.clear_faults();
            cleared.set(true);
        }
        if t >= 3.0 && !alarmed.get() {
            emulator.inject(Fault::Alarm { id: 2, bits: StatusBits(StatusBits::VOLTAGE) });
            alarmed.set(true);
        }
        if t >= 3.2 && !alarm_cleared.get() {
            emulator.clear_faults();
            alarm_cleared.set(true);
        }
        if t >= 3.6 && !corrupted.get() {
            emulator.inject(Fault::CorruptAnswers { count: 5 });
            corrupted.set(true);
        }
        false
    });
    let report = runtime.shutdown().expect("shutdown");
    let servo = report.servo.clone().expect("a servo report");
    println!("{}", serde_json::to_string_pretty(&servo).unwrap_or_default());
    println!(
        "ticks {} in {:.2} s, overruns {}, skipped {}, overhead {:?}, jitter {:?}, causes {:?}",
        report.total_ticks,
        report.seconds,
        report.overruns,
        report.skipped_periods,
        report.overhead_us,
        report.jitter_us,
        report.causes
    );

    // The loop kept its rate.
    assert_eq!(report.total_ticks, (seconds * RATE_HZ) as u64, "{report:?}");
    assert_eq!(report.transport, "servo");
    assert!(report.seconds < seconds + 0.5, "{} s for a {seconds} s run", report.seconds);
    assert!(report.overruns * 100 <= report.ticks, "overruns {} of {} ticks", report.overruns, report.ticks);
    // One read per period (the outage's failed reads take longer: periods skipped).
    let periods = (report.seconds * RATE_HZ) as u64;
    assert!(servo.reads + servo.read_failures + servo.skipped_periods + 10 >= periods, "{servo:?}");
    assert!(servo.reads + 10 >= periods - 60, "reads {} for {periods} periods", servo.reads);
    // The report's topic counters are read before the exit hold, whose
    // reads (one a period, 100 ms) keep a bus watchdog fed.
    let received = report.topics["joint_states"].received;
    assert!(received <= servo.reads && servo.reads <= received + 12, "{received} vs {}", servo.reads);
    assert_eq!(servo.write_failures, 0, "{servo:?}");
    assert_eq!(servo.bad_commands, 0, "{servo:?}");
    // Every command is written, or superseded by a newer one that waited
    // with it while a slow read held the bus (the newest goal wins).
    assert!(servo.writes + servo.superseded_commands + 10 >= report.total_ticks, "a write per command: {servo:?}");
    assert_eq!(report.commands_published, servo.writes);
    // A read that needed a retry (at the outage's edges, on a busy machine) takes one more timeout.
    assert!(servo.read_us.p50 > 0.0 && servo.read_us.p50 < 5_000.0, "{:?}", servo.read_us);

    // The policy's goals reached the servos, and the arm got there.
    let want = pose_ticks();
    let goals = goals_at_1_5.into_inner().expect("sampled at 1.5 s");
    for ((id, got), want) in IDS.iter().zip(&goals).zip(&want) {
        assert!((got - want).abs() <= 2, "servo {id}: Goal_Position {got}, the pose is {want} ({goals:?} vs {want:?})");
    }
    for (&id, want) in IDS.iter().zip(&want) {
        let present = register(&emulator, id, sts::PRESENT_POSITION);
        assert!((present - want).abs() <= 3, "servo {id} at {present}, the pose is {want}");
    }

    // The silent servo: one outage naming it; the bus thread raised
    // `bus_fault` naming servo 3 once its read had failed, and the fallback
    // took over at the first tick after that; the policy drove again once
    // the servo answered. (A loaded machine can starve the emulator's
    // thread past a read's timeouts now and then: such outages name another
    // servo and are short; only the injected one is judged.)
    let injected: Vec<_> =
        servo.outages.iter().filter(|o| o.error.contains("servo 3 ") && o.failed_reads >= 20).collect();
    assert_eq!(injected.len(), 1, "one outage of 0.5 s naming servo 3: {:?}", servo.outages);
    let outage = injected[0];
    assert!(outage.recovered_ns.is_some(), "{outage:?}");
    let modes = mode_events(&events);
    let period_ns = (1e9 / RATE_HZ) as u64;
    let bus_fault = servo
        .faults
        .iter()
        .find(|f| f.cause == "bus_fault" && f.id == Some(3) && f.raised_ns >= outage.first_failure_ns)
        .unwrap_or_else(|| panic!("no bus_fault naming servo 3: {:?}", servo.faults));
    assert_eq!(bus_fault.motor.as_deref(), Some("elbow_flex"));
    assert!(bus_fault.what.contains("servo 3 ") && bus_fault.what.contains("did not answer"), "{bus_fault:?}");
    assert!(bus_fault.raised_ns >= outage.first_failure_ns, "{bus_fault:?} {outage:?}");
    assert!(bus_fault.cleared_ns.is_some_and(|c| c >= outage.recovered_ns.unwrap_or(0)), "{bus_fault:?}");
    let handover = first_fallback_after(&modes, bus_fault.raised_ns, period_ns);
    println!(
        "bus_fault: raised {:.1} ms after the last good read, fallback {:.1} ms after it was raised",
        (bus_fault.raised_ns - outage.last_read_ns) as f64 / 1e6,
        handover.1 as f64 / 1e6 - bus_fault.raised_ns as f64 / 1e6
    );
    assert!(handover.3.iter().any(|c| c == "bus_fault"), "{handover:?}");
    assert!(
        report.causes.contains_key("bus_fault") && report.causes.contains_key("stale_joint_state"),
        "{:?}",
        report.causes
    );

    // The alarm bit: `servo_fault` naming servo 2 and the bit, the fallback
    // at the next tick, the policy again once it cleared.
    let servo_fault = servo
        .faults
        .iter()
        .find(|f| f.cause == "servo_fault")
        .unwrap_or_else(|| panic!("no servo_fault: {:?}", servo.faults));
    assert_eq!((servo_fault.id, servo_fault.motor.as_deref()), (Some(2), Some("shoulder_lift")), "{servo_fault:?}");
    assert_eq!(servo_fault.what, "voltage");
    assert!(servo_fault.cleared_ns.is_some(), "{servo_fault:?}");
    assert_eq!(servo.servo_faults, 1, "{:?}", servo.faults);
    let handover = first_fallback_after(&modes, servo_fault.raised_ns, period_ns);
    assert!(handover.3.iter().any(|c| c == "servo_fault"), "{handover:?}");
    assert!(report.causes.contains_key("servo_fault"), "{:?}", report.causes);
    assert!(servo.alarm_reads >= 10, "0.2 s of alarmed reads: {}", servo.alarm_reads);

    // Checksum errors beyond the budget: `bus_fault` naming the count and
    // the budget, the fallback at the next tick, cleared a second later.
    let checksum = servo
        .faults
        .iter()
        .find(|f| f.cause == "bus_fault" && f.what.contains("checksum errors"))
        .unwrap_or_else(|| panic!("no checksum bus_fault: {:?}", servo.faults));
    assert!(checksum.what.ends_with("within a second (budget 3 per second)"), "{checksum:?}");
    let cleared_after = checksum.cleared_ns.map(|c| c - checksum.raised_ns).unwrap_or(0);
    assert!((900_000_000..1_300_000_000).contains(&cleared_after), "cleared {cleared_after} ns later: {checksum:?}");
    let handover = first_fallback_after(&modes, checksum.raised_ns, period_ns);
    assert!(handover.3.iter().any(|c| c == "bus_fault"), "{handover:?}");
    assert!(servo.counters.checksum_errors >= 5, "{:?}", servo.counters);
    assert_eq!(report.final_mode, "nominal", "the policy drives again: {modes:?}");
    assert!(modes.iter().any(|(_, stamp, mode, _)| *stamp > handover.1 && mode == "nominal"), "{modes:?}");

    // Torque is off after shutdown, every servo acknowledging.
    assert_eq!(servo.torque_off, "acknowledged");
    assert_eq!(torque(&emulator, &IDS), [0; 6], "torque off after shutdown");
    assert!(servo.counters.timeouts > 0 && servo.counters.retries > 0, "the outage is counted: {:?}", servo.counters);
}

/// The first mode change to fallback a tick could make after a cause
/// published at `raised_ns`: a tick scheduled up to a period earlier may
/// start after it (jitter). It must come within one period of it.
fn first_fallback_after(
    modes: &[(u64, u64, String, Vec<String>)],
    raised_ns: u64,
    period_ns: u64,
) -> (u64, u64, String, Vec<String>) {
    let handover = modes
        .iter()
        .find(|(_, stamp, mode, _)| *stamp + period_ns > raised_ns && mode == "fallback")
        .unwrap_or_else(|| panic!("no fallback after {raised_ns}: {modes:?}"))
        .clone();
    assert!(
        handover.1 <= raised_ns + period_ns,
        "the fallback took over {} ns after the cause was raised: not the next tick ({modes:?})",
        handover.1 as i64 - raised_ns as i64
    );
    handover
}

/// A Koch follower (Dynamixel X series, LeRobot's ids and models) armed by
/// `ganglion run`: LeRobot's Koch set-up is in the registers, every servo's
/// `Bus_Watchdog` is set (100 ms: 5 units), an overload in a servo's
/// `Hardware_Error_Status` (its alert bit) hands the arm to the fallback at
/// the next tick as `servo_fault` naming servo and error in ROBOTIS's words;
/// at shutdown the watchdog and torque go off.
#[test]
fn a_koch_arm_arms_with_its_bus_watchdog_and_names_a_hardware_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = fixture("koch_follower.json");
    let cfg = DxlEmulatorConfig {
        models: vec![1060, 1060, 1200, 1200, 1200, 1200],
        pace_baud: Some(1_000_000),
        ..DxlEmulatorConfig::default()
    };
    let emulator = DxlEmulator::start(cfg).expect("the emulator opens a pty");
    dxl_emulator::load_calibration(&emulator, &CalibrationFile::load(&file).expect("fixture"));
    emulator.set_register(2, xseries::PWM_LIMIT, 600);
    let path = be_patient(&profile_on(dir.path(), emulator.path(), &file, "dynamixel"));
    limit_torque(&path, 0.3);
    let events = dir.path().join("events.jsonl");
    let options = RuntimeOptions {
        seconds: Some(1.5),
        policy: Some(PolicyChoice::Bundle),
        events: Some(events.clone()),
        ..Default::default()
    };
    let mut runtime = Runtime::start(&path, options).expect("start");
    let reg = |id: u8, r| emulator.register(id, r).unwrap_or_else(|| panic!("servo {id}"));
    for id in IDS {
        assert_eq!(reg(id, xseries::BUS_WATCHDOG), 5, "servo {id}: 100 ms");
        let pwm_limit = if id == 2 { 600 } else { xseries::FULL_PWM };
        assert_eq!(pwm_limit, reg(id, xseries::PWM_LIMIT));
        assert_eq!(reg(id, xseries::GOAL_PWM), (0.3 * f64::from(pwm_limit)).round() as i32, "servo {id}: torque_limit");
        assert_eq!(reg(id, xseries::TORQUE_ENABLE), 1, "servo {id} armed");
        assert_eq!(reg(id, xseries::RETURN_DELAY_TIME), 0, "servo {id}");
        let mode = if id == 6 { xseries::mode::CURRENT_POSITION } else { xseries::mode::EXTENDED_POSITION };
        assert_eq!(reg(id, xseries::OPERATING_MODE), i32::from(mode), "servo {id}");
    }
    let t0 = Instant::now();
    let injected = Cell::new(false);
    runtime.run_until(|| {
        if t0.elapsed() >= Duration::from_millis(700) && !injected.get() {
            emulator.inject(Fault::Alarm { id: 4, bits: StatusBits(xseries::hardware_error::OVERLOAD) });
            injected.set(true);
        }
        false
    });
    let report = runtime.shutdown().expect("shutdown");
    let servo = report.servo.clone().expect("a servo report");
    assert_eq!((servo.torque_limit, &servo.torque_limit_registers[..]), (0.3, &[266, 180, 266, 266, 266, 266][..]));
    let fault = servo.faults.iter().find(|f| f.cause == "servo_fault").unwrap_or_else(|| panic!("{servo:?}"));
    assert_eq!((fault.id, fault.motor.as_deref()), (Some(4), Some("wrist_flex")), "{fault:?}");
    assert_eq!(fault.what, "hardware error: overload");
    let modes = mode_events(&events);
    let handover = first_fallback_after(&modes, fault.raised_ns, (1e9 / RATE_HZ) as u64);
    assert!(handover.3.iter().any(|c| c == "servo_fault"), "{handover:?}");
    assert_eq!(report.final_mode, "fallback", "a hardware error stays until the servo reboots");
    assert_eq!(servo.torque_off, "acknowledged");
    for id in IDS {
        assert_eq!(
            (reg(id, xseries::TORQUE_ENABLE), reg(id, xseries::BUS_WATCHDOG)),
            (0, 0),
            "servo {id} after shutdown"
        );
    }
}

#[test]
fn dropping_the_runtime_switches_torque_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = emulated_arm(&IDS);
    let path = be_patient(&profile(dir.path(), emulator.path(), &fixture("so101_follower.json")));
    limit_torque(&path, 0.3);
    let options = RuntimeOptions { policy: Some(PolicyChoice::Bundle), ..Default::default() };
    let runtime = Runtime::start(&path, options).expect("start");
    // A first run at 30 %: Torque_Limit is 0.3 x each servo's Max_Torque_Limit
    // (LeRobot's set-up gives the gripper 500).
    let limits: Vec<i32> = IDS.iter().map(|&id| register(&emulator, id, sts::TORQUE_LIMIT)).collect();
    assert_eq!(limits, [300, 300, 300, 300, 300, 150], "Torque_Limit, 0.1 %");
    let progress = runtime.progress();
    let deadline = Instant::now() + Duration::from_secs(5);
    while progress.ticks() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(torque(&emulator, &IDS), [1; 6], "armed");
    // An early return (`?`) or a panic unwinding drops the runtime.
    drop(runtime);
    assert_eq!(torque(&emulator, &IDS), [0; 6], "torque off when the runtime is dropped");
}

/// A bundle in LeRobot's calibrated units (`range_m100_100` for the body
/// joints, `range_0_100` for the gripper: LeRobot's SO-101 without
/// `use_degrees`) on the emulated arm: its flat chunk of values `V` reaches
/// the servos as the ticks LeRobot's `_unnormalize` writes for `V` with
/// this arm's calibration (the servo driver's LeRobot-exact conversion),
/// through the policy's radians, the executor and the shield.
#[test]
fn a_bundle_in_lerobots_range_units_drives_the_servos_to_lerobots_ticks() {
    let values = [20.0, -20.0, 15.0, -10.0, 25.0, 60.0];
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = emulated_arm(&IDS);
    let path = be_patient(&profile(dir.path(), emulator.path(), &fixture("so101_follower.json")));
    // The fixture's chunk is the action mean: restate it in range units.
    let manifest = dir.path().join("bundle/policy.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let units = "units = [\"range_m100_100\", \"range_m100_100\", \"range_m100_100\", \"range_m100_100\", \
                 \"range_m100_100\", \"range_0_100\"]";
    let edited = text
        .replacen(
            "std = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n",
            &format!("std = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n{units}\n"),
            1,
        )
        .replacen("mean = [0.3, -0.3, 0.3, -0.3, 0.3, 0.5]", &format!("mean = {values:?}"), 1);
    assert_eq!(edited.matches("units = ").count(), 1, "the fixture changed; update this test");
    assert!(edited.contains(&format!("mean = {values:?}")), "the fixture changed; update this test");
    std::fs::write(&manifest, edited).expect("write");
    let key = ganglion_policies::signing::read_signing_key(&root().join("policies/fixtures/TEST-ONLY-signing.key"))
        .expect("test key");
    ganglion_policies::sign_bundle(&dir.path().join("bundle"), &key).expect("sign");

    let modes: Vec<(&str, u8, NormMode)> = JOINTS
        .iter()
        .zip(IDS)
        .map(|(n, id)| (*n, id, if *n == "gripper" { NormMode::Range0To100 } else { NormMode::RangeM100To100 }))
        .collect();
    let lerobot = calibration().joints(&modes).expect("joints");
    let want: Vec<i32> = lerobot.iter().zip(values).map(|(j, v)| j.unnormalize(v).expect("ticks")).collect();

    let options = RuntimeOptions { seconds: Some(2.5), policy: Some(PolicyChoice::Bundle), ..Default::default() };
    let mut runtime = Runtime::start(&path, options).expect("start");
    let t0 = Instant::now();
    let goals: RefCell<Vec<i32>> = RefCell::new(Vec::new());
    runtime.run_until(|| {
        if t0.elapsed() >= Duration::from_secs(2) && goals.borrow().is_empty() {
            *goals.borrow_mut() = IDS.iter().map(|&id| register(&emulator, id, sts::GOAL_POSITION)).collect();
        }
        false
    });
    runtime.shutdown().expect("shutdown");
    let goals = goals.into_inner();
    assert_eq!(goals.len(), 6, "sampled at 2 s");
    for ((id, got), want) in IDS.iter().zip(&goals).zip(&want) {
        assert!(
            (got - want).abs() <= 2,
            "servo {id}: Goal_Position {got}, LeRobot writes {want} ({goals:?} vs {want:?})"
        );
    }
}

fn refusal(path: &Path) -> String {
    let options = RuntimeOptions { seconds: Some(1.0), policy: Some(PolicyChoice::Bundle), ..Default::default() };
    format!("{:#}", Runtime::start(path, options).err().expect("refused"))
}

#[test]
fn refusals_name_the_device_and_what_was_expected_before_arming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = fixture("so101_follower.json");

    // A wrong port.
    let path = profile(dir.path(), Path::new("/dev/ganglion-no-such-port"), &good);
    let msg = refusal(&path);
    assert!(msg.contains("/dev/ganglion-no-such-port") && msg.contains("transport.servo.port"), "{msg}");

    // A servo missing from the bus: named by id and motor, nothing armed.
    let five = emulated_arm(&IDS[..5]);
    let path = be_patient(&profile(dir.path(), five.path(), &good));
    let msg = refusal(&path);
    assert!(msg.contains("servo 6") && msg.contains("\"gripper\"") && msg.contains("transport.servo.ids"), "{msg}");
    assert!(msg.contains("expected servo ids [1, 2, 3, 4, 5, 6]"), "{msg}");
    assert_eq!(torque(&five, &IDS[..5]), [0; 5], "nothing armed");

    // A calibration of another robot (LeKiwi's arm motors are `arm_*`).
    let arm = emulated_arm(&IDS);
    let other = dir.path().join("lekiwi.json");
    let mut file = calibration();
    for (name, _) in &mut file.motors {
        *name = format!("arm_{name}");
    }
    std::fs::write(&other, file.to_json()).expect("write");
    let path = be_patient(&profile(dir.path(), arm.path(), &other));
    let msg = refusal(&path);
    assert!(
        msg.contains("lekiwi.json")
            && msg.contains("transport.servo.calibration")
            && msg.contains("\"arm_shoulder_pan\""),
        "{msg}"
    );
    assert!(msg.contains("expected a LeRobot calibration of this robot's motors"), "{msg}");

    // A calibration of another SO-101: the registers disagree; refused
    // naming motor and register, torque still off.
    let mut file = calibration();
    if let Some((_, c)) = file.motors.iter_mut().find(|(n, _)| n == "elbow_flex") {
        c.homing_offset += 100;
    }
    let another = dir.path().join("another_so101.json");
    std::fs::write(&another, file.to_json()).expect("write");
    let path = be_patient(&profile(dir.path(), arm.path(), &another));
    let msg = refusal(&path);
    assert!(
        msg.contains("refusing to arm") && msg.contains("\"elbow_flex\"") && msg.contains("Homing_Offset"),
        "{msg}"
    );
    assert_eq!(torque(&arm, &IDS), [0; 6], "nothing armed");

    // The same arm with its own file arms (the refusals above were the file's).
    let path = be_patient(&profile(dir.path(), arm.path(), &good));
    let options = RuntimeOptions { seconds: Some(0.2), policy: Some(PolicyChoice::Bundle), ..Default::default() };
    let mut runtime = Runtime::start(&path, options).expect("the good file arms");
    runtime.run_until(|| false);
    runtime.shutdown().expect("shutdown");
    assert_eq!(torque(&arm, &IDS), [0; 6]);
}

/// `ganglion run --config` as a process on the emulated SO-101.
fn spawn_run(profile: &Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["run", "--config"])
        .arg(profile)
        .args(["--policy", "bundle"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ganglion run starts")
}

/// Waits until every servo has torque on (the process armed the arm).
fn wait_armed(emulator: &Emulator, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while torque(emulator, &IDS) != [1; 6] {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ganglion run exited before arming: {status}");
        }
        assert!(Instant::now() < deadline, "not armed within 20 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", child.id());
}

/// 30 s of `ganglion run` as a process, the policy driving the emulated
/// SO-101 at 100 Hz: every tick's command reaches the servos (one sync
/// write each, counted by the emulator), no read fails, no tick runs on a
/// stale joint state or a bus fault. SIGTERM ends it cleanly: the final
/// hold, then torque off acknowledged by every servo, the report written.
#[test]
fn ganglion_run_drives_the_emulated_arm_for_30_s_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = emulated_arm(&IDS);
    let path = be_patient(&profile(dir.path(), emulator.path(), &fixture("so101_follower.json")));
    assert!(std::fs::read_to_string(&path).expect("profile").contains("timeout_margin_ms = 20"));
    let report_path = dir.path().join("report.json");
    let mut child = spawn_run(&path, &["--report", report_path.to_str().expect("utf-8 path")]);
    wait_armed(&emulator, &mut child);
    let armed = Instant::now();
    let writes_at_arming = emulator.stats().sync_writes;
    std::thread::sleep(Duration::from_secs(30));
    let writes_in_30_s = emulator.stats().sync_writes - writes_at_arming;
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().expect("ganglion run exits");
    let ran = armed.elapsed().as_secs_f64();
    assert!(out.status.success(), "SIGTERM is a clean stop: {} {}", out.status, String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("the report")).expect("JSON");
    let servo = &report["servo"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("a count, got {v}"));
    println!(
        "30 s: {} ticks, overruns {}, sync writes {writes_in_30_s}, servo reads {} (p50 {} us), skipped bus periods \
         {}, causes {}",
        report["total_ticks"],
        report["overruns"],
        servo["reads"],
        servo["read_us"]["p50"],
        servo["skipped_periods"],
        report["causes"]
    );

    // The loop ran at its rate the whole time, and the commands reached
    // the servos at that rate.
    // No [[transport.cameras]] in this profile: an empty `cameras` section.
    assert_eq!(report["cameras"], serde_json::json!([]), "{report}");
    let ticks = n(&report["total_ticks"]);
    assert!(ticks as f64 >= 100.0 * (ran - 1.0) && ticks as f64 <= 100.0 * (ran + 0.5), "{ticks} ticks in {ran:.1} s");
    assert!((2_950..=3_010).contains(&writes_in_30_s), "{writes_in_30_s} sync writes reached the servos in 30 s");
    assert_eq!(n(&servo["write_failures"]), 0);
    assert!(n(&servo["writes"]) + n(&servo["superseded_commands"]) + 5 >= ticks, "{servo}");
    // No tick missed because of the bus: no read failed, so no tick ran on
    // a bus fault. (A busy machine can starve the emulator's thread: the
    // read takes longer and the bus thread skips its next period, counted
    // in `skipped_periods`; the loop's ticks do not wait for it.)
    assert_eq!(n(&servo["read_failures"]), 0, "{servo}");
    assert_eq!((n(&servo["bus_faults"]), n(&servo["servo_faults"])), (0, 0), "{servo}");
    for cause in ["bus_fault", "servo_fault"] {
        assert!(report["causes"].get(cause).is_none(), "{cause}: {}", report["causes"]);
    }
    // Every read succeeded; a joint state can still age past the limit when
    // the machine starves a process (seen at a load average of 5.5 on two
    // cores, with tick overruns at the same time; none when the test runs
    // alone, as under nextest): at most 1 % of the ticks.
    let stale = report["causes"].get("stale_joint_state").map_or(0, n);
    assert!(stale * 100 <= ticks, "stale_joint_state for {stale} of {ticks} ticks: {}", report["causes"]);
    assert!(n(&report["overruns"]) * 100 <= ticks, "overruns {} of {ticks}", report["overruns"]);
    assert_eq!(report["final_mode"], "nominal");
    // The goals are the policy's pose; torque went off after the hold.
    let want = pose_ticks();
    for (&id, want) in IDS.iter().zip(&want) {
        let goal = register(&emulator, id, sts::GOAL_POSITION);
        assert!((goal - want).abs() <= 2, "servo {id}: Goal_Position {goal}, the pose is {want}");
    }
    assert_eq!(servo["torque_off"], "acknowledged");
    assert_eq!(torque(&emulator, &IDS), [0; 6], "torque off after SIGTERM");
}

/// SIGKILL cannot be caught: nothing switches torque off. A Feetech servo
/// (no bus watchdog) then holds the last goal it was sent, which is the
/// loop's last command (the bus thread only writes the newest command),
/// and nothing is written after the kill: the arm stays where the loop
/// left it rather than driving anywhere.
#[test]
fn a_killed_ganglion_run_leaves_the_servos_holding_the_last_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = emulated_arm(&IDS);
    let path = be_patient(&profile(dir.path(), emulator.path(), &fixture("so101_follower.json")));
    let mut child = spawn_run(&path, &[]);
    wait_armed(&emulator, &mut child);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().expect("running").is_none(), "still running");
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reaped");
    assert!(!status.success(), "{status}");
    let writes = emulator.stats().sync_writes;
    let goals: Vec<i32> = IDS.iter().map(|&id| register(&emulator, id, sts::GOAL_POSITION)).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(emulator.stats().sync_writes, writes, "nothing is written after the kill");
    assert_eq!(torque(&emulator, &IDS), [1; 6], "torque stays on: SIGKILL runs no code");
    let want = pose_ticks();
    for ((&id, goal), want) in IDS.iter().zip(&goals).zip(&want) {
        assert_eq!(register(&emulator, id, sts::GOAL_POSITION), *goal, "servo {id} keeps its last goal");
        assert!((goal - want).abs() <= 2, "servo {id}: the last goal {goal} is the loop's last command {want}");
        let present = register(&emulator, id, sts::PRESENT_POSITION);
        assert!((present - goal).abs() <= 3, "servo {id} holds at {present}, its goal is {goal}");
    }
}

/// `ganglion bench bus`: a line per bus with the wire bytes and time of a
/// tick (88 bytes, 880 µs for 6 Feetech servos at 1 Mbit/s) next to the
/// measured tick, and the JSON report.
#[test]
fn bench_bus_reports_the_tick_next_to_the_wire_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("bus.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["bench", "bus", "--protocol", "feetech", "--ticks", "40", "--unpaced", "--report"])
        .arg(&report)
        .output()
        .expect("ganglion bench bus runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("feetech")).unwrap_or_else(|| panic!("{stdout}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((cols[1], cols[2]), ("88", "880"), "{line}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(json[0]["servos"], 6);
    assert_eq!(json[0]["ticks"], 40);
    assert_eq!(json[0]["tick_bytes"], 88);
    assert!(json[0]["tick_us"]["p50"].as_f64().is_some_and(|p| p > 0.0), "{json}");
}

/// Waits until `out` (a child's stdout, collected by a thread) contains
/// `text`; panics naming what was seen after 30 s.
fn wait_for_output(out: &std::sync::Mutex<String>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if out.lock().map(|o| o.contains(text)).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {text:?} in {:?}", out.lock().map(|o| o.clone()).unwrap_or_default());
}

/// `ganglion calibrate` on the emulated SO-101, a person's part scripted:
/// ENTER at the middle, every joint but `wrist_roll` moved to both ends of
/// its range while the command records, ENTER. The file lands where LeRobot
/// keeps it (`$HF_LEROBOT_CALIBRATION/robots/so_follower/<id>.json`) with
/// LeRobot's homings and ranges, the servos hold the same registers with
/// torque off; a second run offers the file and ENTER writes it back.
/// (LeRobot's own numbers for the same readings: drivers/servo/tests/calibrate.rs.)
#[test]
fn ganglion_calibrate_walks_through_lerobots_procedure() {
    use std::io::{Read, Write};
    let e = Emulator::start(EmulatorConfig::default()).expect("emulator");
    let middle = [1800, 2300, 1050, 3000, 2600, 2100];
    for (id, p) in IDS.iter().zip(middle) {
        e.move_by_hand(*id, p);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
            .args(["calibrate", "--robot", "so101_follower", "--robot-id", "arm1", "--port"])
            .arg(e.path())
            .env("HF_LEROBOT_CALIBRATION", dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ganglion calibrate starts");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut o) = sink.lock() {
                    o.push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }
        });
        (child, out)
    };
    let (mut child, out) = spawn();
    let mut stdin = child.stdin.take().expect("stdin");
    wait_for_output(&out, "Move arm1 SOFollower to the middle of its range of motion and press ENTER....");
    stdin.write_all(b"\n").expect("ENTER");
    wait_for_output(&out, "Recording positions. Press ENTER to stop...");
    let ranges: Vec<(i32, i32)> = (0..6).map(|i| (1000 - 40 * i, 3000 + 50 * i)).collect();
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        if JOINTS[i] == "wrist_roll" {
            continue;
        }
        for p in [lo, hi, 2047] {
            e.move_by_hand(IDS[i], p);
            std::thread::sleep(Duration::from_millis(150)); // reads every 20 ms
        }
    }
    stdin.write_all(b"\n").expect("ENTER");
    let status = child.wait().expect("exits");
    let file = dir.path().join("robots/so_follower/arm1.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}: {:?}", out.lock().map(|o| o.clone())));
    assert!(status.success(), "{:?}", out.lock().map(|o| o.clone()));
    assert!(out.lock().map(|o| o.contains(&format!("Calibration saved to {}", file.display()))).unwrap_or(false));
    let cal = CalibrationFile::parse(&text, "written").expect("LeRobot's format");
    for (i, (name, c)) in cal.motors.iter().enumerate() {
        assert_eq!(name, JOINTS[i]);
        assert_eq!((c.id, c.drive_mode, c.homing_offset), (IDS[i], 0, middle[i] - 2047), "{name}");
        let want = if name == "wrist_roll" { (0, 4095) } else { ranges[i] };
        assert_eq!((c.range_min, c.range_max), want, "{name}");
        assert_eq!(register(&e, IDS[i], sts::HOMING_OFFSET), c.homing_offset);
        assert_eq!(register(&e, IDS[i], sts::MIN_POSITION_LIMIT), c.range_min);
        assert_eq!(register(&e, IDS[i], sts::MAX_POSITION_LIMIT), c.range_max);
    }
    assert_eq!(torque(&e, &IDS), vec![0; 6], "torque off at the end");

    // Again: the file is offered; ENTER writes it back to servos that lost it.
    e.set_register(3, sts::MAX_POSITION_LIMIT, 4095);
    let (mut child, out) = spawn();
    let mut stdin = child.stdin.take().expect("stdin");
    wait_for_output(&out, "Press ENTER to use provided calibration file associated with the id arm1, or type 'c'");
    stdin.write_all(b"\n").expect("ENTER");
    assert!(child.wait().expect("exits").success(), "{:?}", out.lock().map(|o| o.clone()));
    assert_eq!(register(&e, 3, sts::MAX_POSITION_LIMIT), ranges[2].1);
    assert_eq!(std::fs::read_to_string(&file).expect("file"), text, "the file is kept");
}
