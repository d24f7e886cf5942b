//! The rig's CI set (`ci = true` in `hil-tests/scenarios/`: every scenario
//! but the 5-scene `00-nominal`, all fault classes), each with `ganglion sim serve`
//! and `ganglion run` as separate processes over zenoh on loopback, then
//! the nominal scenario against the Python baseline. Every Ganglion
//! expectation must hold; the reports must carry measured values. Timing is
//! checked, so `.config/nextest.toml` runs this test alone.
//!
//! Needs the `ganglion` binary next to `ganglion-rig` (cargo builds both
//! for `cargo nextest run --workspace`) and, for the baseline, the test venv
//! (`bash .ci/setup`; `GANGLION_PYTHON`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rig() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ganglion-rig"))
}

/// `None` (with the reason printed) when the `ganglion` binary was not built.
fn ganglion() -> Option<PathBuf> {
    let dir = rig().parent().map(Path::to_path_buf)?;
    let g = dir.join("ganglion");
    if g.is_file() {
        Some(g)
    } else if std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false")) {
        // CI builds it (`cargo nextest run --workspace`): missing is a failure there.
        panic!("{} missing in CI", g.display())
    } else {
        eprintln!("SKIP: {} missing (build it: cargo build -p ganglion)", g.display());
        None
    }
}

fn report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json is JSON")
}

fn run_rig(args: &[&str], out: &Path, ganglion: &Path) -> serde_json::Value {
    let status = Command::new(rig())
        .arg("run")
        .args(args)
        .arg("--report")
        .arg(out)
        .arg("--ganglion")
        .arg(ganglion)
        .arg("--root")
        .arg(root())
        .status()
        .expect("ganglion-rig runs");
    let r = report(out);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    assert!(status.success(), "rig failed: {:?}\n{md}", r["failed"]);
    r
}

/// One test for both rig runs, so nextest never runs two rigs at once
/// (their timing checks share two cores).
#[test]
fn ci_scenarios_pass_then_nominal_runs_against_the_python_baseline() {
    let Some(ganglion) = ganglion() else { return };
    ci_scenarios_pass_with_measured_values(&ganglion);
    nominal_scenario_runs_against_the_python_baseline(&ganglion);
}

fn ci_scenarios_pass_with_measured_values(ganglion: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenarios: Vec<String> = std::fs::read_dir(root().join("hil-tests/scenarios"))
        .expect("scenarios dir")
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    let mut args: Vec<&str> = scenarios.iter().map(String::as_str).collect();
    args.extend(["--ci", "--no-baseline"]);
    let r = run_rig(&args, &dir.path().join("ci"), ganglion);
    let list = r["scenarios"].as_array().expect("scenarios");
    // One per fault class at least: nominal, camera, joints, timestamps,
    // inference, action, flood, malformed, partition, bundle, kill.
    let mut classes: Vec<&str> = list.iter().filter_map(|s| s["class"].as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    assert_eq!(classes.len(), 11, "fault classes covered: {classes:?}");
    for s in list {
        let checks = s["ganglion"]["episodes"][0]["checks"].as_array().expect("checks");
        assert!(checks.len() >= 3, "{}: too few checks: {checks:?}", s["name"]);
        assert!(checks.iter().all(|c| !c["measured"].as_str().unwrap_or("").is_empty()), "{}", s["name"]);
        assert_eq!(s["passed"], true, "{}: {checks:?}", s["name"]);
        if s["class"] != "bundle" {
            assert!(s["ganglion"]["episodes"][0]["metrics"]["commands"].as_u64().unwrap_or(0) > 50, "{}", s["name"]);
        }
    }
    // A fault scenario measured the fallback on the plant side.
    let cam = list.iter().find(|s| s["class"] == "camera").expect("camera scenario");
    let within = cam["ganglion"]["episodes"][0]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "first fallback command within one period"))
        .expect("fallback timing check");
    assert!(within["measured"].as_str().unwrap_or("").ends_with(" ms"), "{within}");
    assert!(dir.path().join("ci/report.md").is_file());
    assert!(dir.path().join("ci/plots/01-camera-dropout-modes.png").is_file());
}

fn nominal_scenario_runs_against_the_python_baseline(ganglion: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let nominal = root().join("hil-tests/scenarios/00-nominal-ci.toml").display().to_string();
    let r = run_rig(&[&nominal], &dir.path().join("base"), ganglion);
    let s = &r["scenarios"][0];
    let b = &s["baseline"]["summary"];
    assert_eq!(b["episodes"], 1, "{s}");
    // Both controllers drove the same plant: commands arrived, tick jitter measured.
    for who in [&s["ganglion"]["episodes"][0]["metrics"], &s["baseline"]["episodes"][0]["metrics"]] {
        assert!(who["commands"].as_u64().unwrap_or(0) > 100, "{who}");
        assert!(who["loop_jitter_us"]["p99"].as_f64().is_some(), "{who}");
        assert!(who["latency_ms"]["p50"].as_f64().unwrap_or(0.0) > 0.0, "{who}");
    }
}

#[test]
fn a_bad_scenario_names_the_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ndescription = \"d\"\nclass = \"c\"\n[runtime]\nseconds = -1\n").expect("write");
    let out = Command::new(rig()).arg("run").arg(&bad).arg("--report").arg(dir.path()).output().expect("rig runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.toml") && err.contains("runtime.seconds"), "{err}");
    std::fs::write(&bad, "name = \"x\"\ndescription = \"d\"\nclass = \"c\"\nbogus = 1\n[runtime]\nseconds = 1\n")
        .expect("write");
    let out = Command::new(rig()).arg("run").arg(&bad).arg("--report").arg(dir.path()).output().expect("rig runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("bogus"), "{err}");
}
