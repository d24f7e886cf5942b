//! `ganglion sim record --format lerobot`: writes a LeRobotDataset v3
//! directory (content checked in `drivers/sim/tests/lerobot.rs`), refuses an
//! existing `--out` without touching it, and `--format npz` stays the default.

use std::path::Path;
use std::process::{Command, Output};

fn ganglion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ganglion")).args(args).output().expect("running ganglion")
}

fn record(format: Option<&str>, out: &Path) -> Output {
    let mut args = vec!["sim", "record", "--episodes", "2", "--episode-seconds", "1", "--out"];
    let out = out.to_str().expect("utf-8 path");
    args.push(out);
    if let Some(f) = format {
        args.extend(["--format", f]);
    }
    ganglion(&args)
}

#[test]
fn lerobot_format_writes_a_v3_directory_and_refuses_an_existing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("reach");
    let run = record(Some("lerobot"), &out);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta/info.json")).expect("info.json")).expect("JSON");
    assert_eq!(info["codebase_version"], "v3.0");
    assert_eq!((info["total_episodes"].as_u64(), info["total_frames"].as_u64()), (Some(2), Some(20)));
    for f in ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    let before = std::fs::read(out.join("meta/info.json")).expect("info.json");
    let again = record(Some("lerobot"), &out);
    assert!(!again.status.success(), "an existing --out must be refused");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists") && err.contains("reach"), "{err}");
    assert_eq!(std::fs::read(out.join("meta/info.json")).expect("info.json"), before, "existing dataset changed");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("reach")], "a temporary directory was left behind");
}

#[test]
fn npz_stays_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("reach.npz");
    let run = record(None, &out);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let head = std::fs::read(&out).expect("npz written");
    assert_eq!(&head[..2], b"PK", "an .npz is a zip");
}
