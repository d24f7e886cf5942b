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

#[test]
fn so101_template_is_a_six_dof_arm_with_sane_limits() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/so101.toml");
    let p = Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = p.robot.joints.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]);
    for j in &p.robot.joints {
        let l = j.limit;
        // Servo-class limits: within a turn each way, well below the
        // STS3215's ~6.5 rad/s no-load speed.
        assert!(l.position_min > -std::f64::consts::PI && l.position_max < std::f64::consts::PI, "{}", j.name);
        assert!(l.velocity <= 4.0 && l.acceleration <= 30.0 && l.jerk <= 500.0, "{}", j.name);
    }
    assert_eq!(p.robot.arm.as_ref().map(|a| a.dof()), Some(6));
    assert!(p.realtime.control_priority > p.realtime.inference_priority);
    assert!(p.realtime.control_cpus.iter().all(|c| !p.realtime.inference_cpus.contains(c)));
}
