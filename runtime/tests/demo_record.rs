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
