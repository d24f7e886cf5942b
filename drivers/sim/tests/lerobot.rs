//! `record` with `RecordFormat::LeRobot` writes a LeRobotDataset v3 whose
//! files, schemas, metadata and stats match the reference dataset LeRobot
//! 0.6.1 itself wrote (`drivers/sim/lerobot/reference`, made by
//! `make_reference.py`), read with pyarrow (`check_dataset.py`). The Python
//! must have pyarrow and numpy (requirements-ci.txt): the test fails, not
//! skips, without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use ganglion_sim::dataset::{record, RecordError, RecordFormat, RecordOptions};
use ganglion_sim::lerobot::LeRobotError;

/// Python per the project rule: GANGLION_PYTHON, else the workspace .venv,
/// else python3 on PATH.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("GANGLION_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn here(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn opts(out: PathBuf) -> RecordOptions {
    RecordOptions {
        format: RecordFormat::LeRobot,
        episodes: 3,
        out,
        seed: 7,
        episode_s: 2.0,
        ..RecordOptions::default()
    }
}

#[test]
fn lerobot_dataset_matches_the_reference_lerobot_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("reach");
    let summary = record(&opts(out.clone())).expect("records");
    assert_eq!((summary.episodes, summary.frames), (3, 60));
    assert!(summary.bytes > 0);
    let run = Command::new(python())
        .arg(here("lerobot/check_dataset.py"))
        .arg(&out)
        .arg(here("lerobot/reference"))
        .args(["3", "20"])
        .output()
        .expect("python runs (GANGLION_PYTHON or .venv: bash .ci/setup)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "check_dataset.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("ok:"), "{stdout}");

    // Same options, same bytes (the data file; the directory is new).
    let again = dir.path().join("again");
    record(&opts(again.clone())).expect("records again");
    for f in ["data/chunk-000/file-000.parquet", "meta/stats.json", "meta/info.json"] {
        assert_eq!(std::fs::read(out.join(f)).ok(), std::fs::read(again.join(f)).ok(), "{f} differs");
    }
}

#[test]
fn an_existing_directory_is_refused_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("taken");
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::write(out.join("keep.txt"), b"mine").expect("write");
    let err = record(&opts(out.clone())).expect_err("refused");
    assert!(matches!(err, RecordError::LeRobot(LeRobotError::Exists(_))), "{err}");
    assert!(err.to_string().contains("taken"), "{err}");
    assert_eq!(std::fs::read(out.join("keep.txt")).expect("kept"), b"mine");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("taken")], "a temporary directory was left behind");

    // A fractional rate has no LeRobot fps: refused before anything is written.
    let frac = RecordOptions { rate_hz: 12.5, control_hz: 100.0, ..opts(dir.path().join("frac")) };
    let err = record(&frac).expect_err("refused");
    assert!(err.to_string().contains("rate_hz"), "{err}");
    assert!(!dir.path().join("frac").exists());
}
