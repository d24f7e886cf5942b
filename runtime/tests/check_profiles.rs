//! Every robot profile shipped in launch/ (and installed to /etc/ganglion by
//! the .deb) loads and validates with the runtime's own loader, and its
//! `[realtime]` section is usable by `ganglion check`.

use std::path::{Path, PathBuf};

use ganglion::profile::{CheckSections, Profile};

fn launch_profiles() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("launch/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_launch_profile_loads() {
    let files = launch_profiles();
    assert!(files.iter().any(|p| p.ends_with("so101.toml")), "so101.toml is shipped: {files:?}");
    for path in &files {
        let profile = Profile::load(path).unwrap_or_else(|e| panic!("{e}"));
        let from_check = CheckSections::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_check.realtime, profile.realtime, "{}: check reads the same [realtime]", path.display());
        assert_eq!(from_check.transport, profile.transport, "{}: check reads the same [transport]", path.display());
        assert_eq!(from_check.robot.name, profile.robot.name, "{}", path.display());
    }
}

/// A LeRobot six-motor arm (SO-101, Koch): LeRobot's motor names, servo-class
/// limits, a six-joint arm model, control and inference on separate CPUs.
fn six_dof_lerobot_arm(file: &str) -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch").join(file);
    let p = Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = p.robot.joints.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"], "{file}");
    for j in &p.robot.joints {
        let l = j.limit;
        // Servo-class limits: within a turn each way, well below the
        // STS3215's ~6.5 rad/s (XL430's ~6 rad/s) no-load speed.
        assert!(l.position_min > -std::f64::consts::PI && l.position_max < std::f64::consts::PI, "{file}: {}", j.name);
        assert!(l.velocity <= 4.0 && l.acceleration <= 30.0 && l.jerk <= 500.0, "{file}: {}", j.name);
    }
    assert_eq!(p.robot.arm.as_ref().map(|a| a.dof()), Some(6), "{file}");
    assert!(p.realtime.control_priority > p.realtime.inference_priority, "{file}");
    assert!(p.realtime.control_cpus.iter().all(|c| !p.realtime.inference_cpus.contains(c)), "{file}");
    p
}

#[test]
fn so101_template_is_a_six_dof_arm_with_sane_limits() {
    six_dof_lerobot_arm("so101.toml");
    let servo = six_dof_lerobot_arm("so101-servo.toml");
    assert_eq!(servo.transport.servo.protocol, ganglion::transport::ServoProtocol::Feetech);
    // A template is copied for a new arm: its first runs are torque limited.
    assert_eq!(servo.transport.servo.torque_limit, 0.3);
    // Two USB cameras by stable udev names, one per robot camera.
    let names: Vec<&str> = servo.transport.cameras.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["front", "wrist"]);
    for c in &servo.transport.cameras {
        assert!(c.device.starts_with("/dev/v4l/by-id/") && c.device.to_string_lossy().ends_with("-video-index0"));
    }
}

/// launch/koch-dynamixel.toml: LeRobot's Koch follower (ids 1..6 in
/// LeRobot's motor order) on a Dynamixel bus at LeRobot's 1 Mbit/s, with a
/// bus watchdog long enough for a few control periods and short enough to
/// stop the arm within a fraction of a second.
#[test]
fn koch_template_is_lerobots_koch_follower_on_dynamixel() {
    let p = six_dof_lerobot_arm("koch-dynamixel.toml");
    let servo = &p.transport.servo;
    assert_eq!(p.transport.kind, ganglion::transport::TransportKind::Servo);
    assert_eq!(servo.protocol, ganglion::transport::ServoProtocol::Dynamixel);
    assert_eq!(servo.ids, [1, 2, 3, 4, 5, 6]);
    assert_eq!(servo.baud, 1_000_000);
    assert_eq!(servo.torque_limit, 0.3, "a new arm's first runs are torque limited");
    let period_ms = 1000.0 / p.control.rate_hz;
    let watchdog = servo.bus_watchdog_ms as f64;
    assert!(watchdog >= 3.0 * period_ms && watchdog <= 500.0, "bus_watchdog_ms {watchdog} at {period_ms} ms a tick");
}
