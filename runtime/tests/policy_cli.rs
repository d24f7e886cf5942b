//! `ganglion policy check` and `verify` as a user runs them: a bundle that
//! runs passes, one whose manifest disagrees with its graph or that names
//! unsigned external data fails, naming what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ganglion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ganglion")).args(args).output().expect("running ganglion")
}

fn key() -> String {
    root().join("policies/fixtures/TEST-ONLY-signing.pub").display().to_string()
}

/// A signed copy of the fixture bundle `name` with `edit` applied to its
/// manifest text before signing.
fn signed_copy(name: &str, edit: impl Fn(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for e in std::fs::read_dir(root().join("policies/fixtures").join(name)).expect("fixture") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy");
    }
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("manifest");
    std::fs::write(dir.join("policy.toml"), edit(text)).expect("write");
    let secret = root().join("policies/fixtures/TEST-ONLY-signing.key").display().to_string();
    let out = ganglion(&["policy", "sign", &dir.display().to_string(), "--key", &secret]);
    assert!(out.status.success(), "sign: {}", String::from_utf8_lossy(&out.stderr));
    (tmp, dir)
}

#[test]
fn policy_check_passes_a_bundle_that_runs() {
    let bundle = root().join("policies/fixtures/servo-wm").display().to_string();
    let out = ganglion(&["policy", "check", &bundle, "--key", &key()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OK, runs on tract"), "{stdout}");
}

#[test]
fn policy_check_refuses_a_manifest_that_disagrees_with_its_graph() {
    // The encoder's image input is called `image`; the manifest says `rgb`.
    // verify (signature and digests) passes, check (the graph on a backend)
    // does not, and names both.
    let (_t, dir) = signed_copy("servo-wm", |t| {
        let edited = t.replacen(r#"name = "image""#, r#"name = "rgb""#, 1);
        assert_ne!(edited, t, "fixture manifest changed; update the test");
        edited
    });
    let bundle = dir.display().to_string();
    let verify = ganglion(&["policy", "verify", &bundle, "--key", &key()]);
    assert!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stderr));
    let out = ganglion(&["policy", "check", &bundle, "--key", &key()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check passed a bundle that cannot run");
    assert!(err.contains("rgb") && err.contains("image") && err.contains("encoder.onnx"), "{err}");
}

/// `policy check --profile`: a bundle in LeRobot's range units (here its
/// SO-101 gripper in `range_0_100`) runs with the arm's calibration, which
/// the profile's servo transport names (launch/so101-servo.toml pointed at
/// the servo tests' calibration), and without it is refused, naming
/// `joints.units`.
#[test]
fn policy_check_takes_the_arms_calibration_from_the_profile() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bundle");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fixture = root().join("runtime/tests/fixtures/servo");
    for f in ["policy.onnx", "policy.toml"] {
        std::fs::copy(fixture.join("bundle").join(f), dir.join(f)).expect("copy");
    }
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("manifest");
    let units = r#"units = ["rad", "rad", "rad", "rad", "rad", "range_0_100"]"#;
    let edited = text.replacen(
        "std = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n",
        &format!("std = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n{units}\n"),
        1,
    );
    assert_ne!(edited, text, "fixture manifest changed; update the test");
    std::fs::write(dir.join("policy.toml"), edited).expect("write");
    let secret = root().join("policies/fixtures/TEST-ONLY-signing.key").display().to_string();
    let bundle = dir.display().to_string();
    let out = ganglion(&["policy", "sign", &bundle, "--key", &secret]);
    assert!(out.status.success(), "sign: {}", String::from_utf8_lossy(&out.stderr));

    let profile_text = std::fs::read_to_string(root().join("launch/so101-servo.toml")).expect("so101-servo profile");
    let calibration = fixture.join("so101_follower.json").display().to_string();
    let profile_text = profile_text.replace("/etc/ganglion/so101_follower.json", &calibration);
    assert!(profile_text.contains(&calibration), "the profile changed; update the test");
    let profile = tmp.path().join("so101-servo.toml");
    std::fs::write(&profile, profile_text).expect("write profile");

    let out = ganglion(&["policy", "check", &bundle, "--key", &key()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("joints.units"), "{stderr}");
    let out = ganglion(&["policy", "check", &bundle, "--key", &key(), "--profile", &profile.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OK, runs on tract"), "{stdout}");
}
