//! `ganglion demo --fault KIND@S --record-dir DIR` leaves the frozen window
//! as MCAP files; the Python `mcap` reader (an implementation we did not
//! write) opens every one of them and finds the declared channels and the
//! replay metadata; `ganglion replay FILE --check` re-runs each one and
//! exits 0 because every decision and command matches bit for bit.
//!
//! The demo runs on the real clock with the committed reach-v1 bundle, so
//! the test takes a few seconds; the fault is slow inference (400 ms), which
//! the loop must catch as `inference_late` whatever the policy does.

mod prereq;
mod recorder_common;
mod smolvla_sim;

use std::path::Path;
use std::process::Command;

use recorder_common::{files, python_read};

fn ganglion() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ganglion"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

#[test]
fn demo_fault_leaves_recordings_that_replay_bit_exact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rec");
    let report = tmp.path().join("demo.json");
    let out = ganglion()
        .args(["demo", "--seconds", "3", "--fault", "late-persistent@1:0.4"])
        .arg("--record-dir")
        .arg(&dir)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("ganglion demo runs");
    assert!(out.status.success(), "demo failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("demo report")).expect("demo report is JSON");
    assert!(rep["fallback_ticks"].as_u64().unwrap_or(0) > 0, "slow inference engaged no fallback: {rep}");
    assert!(rep["causes"].get("inference_late").is_some(), "inference_late not reported: {rep}");

    let (mcaps, part_left) = files(&dir);
    assert!(!part_left, "a .part file was left in {}", dir.display());
    assert!(!mcaps.is_empty(), "no recording in {}", dir.display());
    let listed: Vec<String> = rep["recordings"]
        .as_array()
        .expect("report lists recordings")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    assert_eq!(listed.len(), mcaps.len(), "report {listed:?} vs directory {mcaps:?}");
    assert!(
        mcaps.iter().any(|p| p.to_string_lossy().contains("inference_late")),
        "no trigger file for inference_late among {mcaps:?}"
    );

    for file in &mcaps {
        let py = python_read(file);
        let channels = py["channels"].as_object().expect("channels");
        for topic in ["/ganglion/tick", "/command", "/joint_states", "/camera/front/image_raw", "/ganglion/inference"] {
            let count = channels.get(topic).and_then(|c| c["count"].as_u64()).unwrap_or(0);
            assert!(count > 0, "{}: channel {topic} empty or missing: {channels:?}", file.display());
        }
        let meta = &py["metadata"]["ganglion"];
        assert!(meta["profile_toml"].as_str().is_some_and(|t| t.contains("[robot]")), "{meta}");
        assert_eq!(meta["command"], "ganglion demo", "{meta}");
        assert_eq!(py["first_tick"]["seq"], 0, "a demo recording starts at tick 0: {}", py["first_tick"]);

        let out = ganglion().arg("replay").arg(file).arg("--check").output().expect("ganglion replay runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("matches bit for bit"),
            "replay --check failed on {}:\n{stdout}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // --reinfer: the same bundle on the same backend reproduces every chunk
    // exactly (tract is deterministic on one machine); ONNX Runtime, another
    // engine, agrees to float rounding.
    let file = mcaps.last().expect("a recording");
    for (backend, max_drift) in [("tract", 0.0), ("ort", 1e-4)] {
        if backend == "ort" {
            // The binary finds ONNX Runtime the way this probe does.
            if let Err(e) = ganglion_policies::backend::ort_available() {
                prereq::missing(
                    "demo_fault_leaves_recordings_that_replay_bit_exact (--reinfer on ort)",
                    &format!("ONNX Runtime unusable: {e}"),
                );
                continue;
            }
        }
        let out_json = tmp.path().join(format!("reinfer-{backend}.json"));
        let out = ganglion()
            .arg("replay")
            .arg(file)
            .args(["--reinfer", "--backend", backend, "--max-drift", &max_drift.to_string(), "--report"])
            .arg(&out_json)
            .output()
            .expect("ganglion replay --reinfer runs");
        assert!(
            out.status.success(),
            "--reinfer on {backend} failed or drifted:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out_json).expect("reinfer report")).expect("JSON");
        assert!(r["drift"]["compared"].as_u64().unwrap_or(0) > 0, "nothing compared on {backend}: {r}");
        assert_eq!(r["drift"]["shadow_errors"], 0, "{r}");
        assert!(r["divergence"].is_null(), "the replayed loop diverged: {r}");
    }
}

/// `replay export --format lerobot`: the demo's recordings (inference late,
/// so fallback ticks among policy ticks) become one LeRobotDataset, read
/// back with pyarrow (the parquet reader LeRobot uses): one episode per
/// file, `action` equal to the recorded commands, the fallback ticks marked
/// in `ganglion.policy` / `ganglion.mode`, the camera as PNG images.
#[test]
fn demo_recordings_export_as_a_lerobot_dataset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rec");
    let out = ganglion()
        .args(["demo", "--seconds", "3", "--fault", "late-persistent@1:0.4", "--record-dir"])
        .arg(&dir)
        .output()
        .expect("ganglion demo runs");
    assert!(out.status.success(), "demo failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let (mcaps, _) = files(&dir);
    assert!(!mcaps.is_empty(), "no recording in {}", dir.display());

    let dataset = tmp.path().join("dataset");
    let export = |out_dir: &Path| {
        ganglion()
            .args(["replay", "export", "--format", "lerobot", "--task", "reach the target", "--out"])
            .arg(out_dir)
            .args(&mcaps)
            .output()
            .expect("ganglion replay export runs")
    };
    let out = export(&dataset);
    assert!(out.status.success(), "export failed:\n{}", String::from_utf8_lossy(&out.stderr));
    // An existing directory is refused, naming it; nothing is changed.
    let again = export(&dataset);
    assert!(!again.status.success(), "a second export into {} succeeded", dataset.display());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"), "{}", String::from_utf8_lossy(&again.stderr));

    // What the recordings hold, read by our reader: the exported ticks'
    // commands and modes, per file.
    let mut expected_actions = Vec::new();
    let mut expected_policy = Vec::new();
    for file in &mcaps {
        let rec = ganglion::recorder::read::Recording::open(file).expect("recording reads");
        let opts = ganglion::recorder::export::ExportOptions { task: "t".into(), robot_type: None };
        let one = ganglion::recorder::export::dataset(&[(file.display().to_string(), rec)], &opts).expect("exports");
        expected_actions.extend(one.action.iter().map(|&v| f64::from(v)));
        expected_policy.extend(one.extra[0].values.iter().copied());
    }

    let script = r#"
import io, json, sys
import numpy as np, pyarrow.parquet as pq
root = sys.argv[1]
info = json.load(open(f"{root}/meta/info.json"))
t = pq.read_table(f"{root}/data/chunk-000/file-000.parquet")
eps = pq.read_table(f"{root}/meta/episodes/chunk-000/file-000.parquet")
img = t.column("observation.images.front")[0].as_py()
print(json.dumps({
    "features": {k: v["dtype"] for k, v in info["features"].items()},
    "fps": info["fps"], "robot_type": info["robot_type"],
    "episodes": eps.num_rows, "frames": t.num_rows,
    "action": np.asarray(t.column("action").to_pylist(), dtype=np.float64).ravel().tolist(),
    "policy": t.column("ganglion.policy").to_pylist(),
    "modes": sorted(set(t.column("ganglion.mode").to_pylist())),
    "tasks": sorted(set(pq.read_table(f"{root}/meta/tasks.parquet").column("task").to_pylist())),
    "png": img["bytes"][:8] == b"\x89PNG\r\n\x1a\n",
}))
"#;
    let py = std::process::Command::new(recorder_common::python())
        .args(["-c", script])
        .arg(&dataset)
        .output()
        .expect("python runs");
    assert!(py.status.success(), "pyarrow check failed:\n{}", String::from_utf8_lossy(&py.stderr));
    let v: serde_json::Value = serde_json::from_slice(&py.stdout).expect("JSON");
    for (key, dtype) in [
        ("observation.state", "float32"),
        ("observation.images.front", "image"),
        ("action", "float32"),
        ("ganglion.policy", "int64"),
        ("ganglion.mode", "int64"),
        ("ganglion.causes", "int64"),
    ] {
        assert_eq!(v["features"][key], dtype, "feature {key}: {}", v["features"]);
    }
    assert_eq!(v["fps"], 100, "the demo loop runs at 100 Hz");
    assert_eq!(v["episodes"].as_u64(), Some(mcaps.len() as u64), "one episode per recording");
    assert_eq!(v["frames"].as_u64(), Some(expected_policy.len() as u64));
    assert_eq!(v["png"], true, "camera frames are stored as PNG");
    // The demo's operator sends instructions; they, not `--task`, are the tasks.
    let tasks = v["tasks"].as_array().expect("tasks");
    assert!(
        !tasks.is_empty()
            && tasks.iter().all(|t| t.as_str().is_some_and(|t| t.starts_with("reach the") && t != "reach the target")),
        "tasks {tasks:?}"
    );
    let actions: Vec<f64> = serde_json::from_value(v["action"].clone()).expect("actions");
    assert_eq!(actions.len(), expected_actions.len());
    for (i, (a, b)) in actions.iter().zip(&expected_actions).enumerate() {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "action value {i}: {a} in the parquet, {b} recorded");
    }
    let policy: Vec<i64> = serde_json::from_value(v["policy"].clone()).expect("policy flags");
    assert_eq!(policy, expected_policy);
    assert!(policy.contains(&1) && policy.contains(&0), "both policy and fallback ticks must be marked: {policy:?}");
    let fallback = ganglion_core::Mode::Fallback as i64;
    assert!(v["modes"].as_array().is_some_and(|m| m.contains(&fallback.into())), "modes {}", v["modes"]);
}

/// An iterative head's noise is drawn from a seed the run picks (from the
/// OS unless `[policy] noise_seed` sets it) and records: two demo runs of
/// LeRobot's SmolVLA (flow matching, fresh noise per chunk) get different
/// seeds, and `replay --reinfer` re-creates every chunk of each bit for bit
/// on tract. Were the recorded seed not applied, the replay would draw
/// seed 0's noise and drift.
#[test]
fn flow_matching_noise_is_seeded_recorded_and_replayed_bit_exact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = smolvla_sim::bundle(tmp.path());
    let mut seeds = Vec::new();
    for run in 0..2 {
        let dir = tmp.path().join(format!("rec{run}"));
        let out = ganglion()
            .args(["demo", "--seconds", "2", "--fault", "late-persistent@1:0.4", "--bundle"])
            .arg(&bundle)
            .arg("--key")
            .arg(smolvla_sim::public_key())
            .arg("--record-dir")
            .arg(&dir)
            .output()
            .expect("ganglion demo runs");
        assert!(out.status.success(), "demo failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let (mcaps, _) = files(&dir);
        let file = mcaps.last().unwrap_or_else(|| panic!("no recording in {}", dir.display()));
        let meta = &python_read(file)["metadata"]["ganglion"];
        let seed: u64 = meta["noise_seed"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{meta}"));
        assert_ne!(seed, 0, "a drawn seed");
        seeds.push(seed);
        let out = ganglion()
            .arg("replay")
            .arg(file)
            .args(["--reinfer", "--backend", "tract", "--max-drift", "0", "--bundle"])
            .arg(&bundle)
            .arg("--key")
            .arg(smolvla_sim::public_key())
            .output()
            .expect("ganglion replay --reinfer runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("max |Δ| 0.000e0"),
            "run {run} (seed {seed}) did not replay bit for bit:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_ne!(seeds[0], seeds[1], "each run draws its own seed");
}
