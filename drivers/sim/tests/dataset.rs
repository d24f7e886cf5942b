//! `record` writes an `.npz` that plain `numpy.load` reads with the
//! documented arrays, shapes and dtypes.

use std::path::PathBuf;
use std::process::Command;

use ganglion_sim::dataset::{record, RecordError, RecordOptions};

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

const CHECK: &str = r#"
import sys, numpy as np
d = np.load(sys.argv[1])
T = 3 * 20
expect = {
    "images": ((T, 64, 64, 3), np.uint8),
    "joint_pos": ((T, 3), np.float32),
    "joint_vel": ((T, 3), np.float32),
    "actions": ((T, 8, 3), np.float32),
    "episode": ((T,), np.int32),
    "step": ((T,), np.int32),
    "time_s": ((T,), np.float32),
    "target_index": ((T,), np.int32),
    "instruction": ((T,), np.int32),
    "target_pos": ((T, 3), np.float32),
    "dart": ((T,), np.uint8),
    "seed": ((1,), np.int64),
    "rate_hz": ((1,), np.float64),
}
for k, (shape, dtype) in expect.items():
    assert d[k].shape == shape and d[k].dtype == dtype, (k, d[k].shape, d[k].dtype)
vocab = d["instructions"].tobytes().decode("utf-8").split("\n")
assert vocab == ["reach the red target", "reach the green target", "reach the blue target"], vocab
assert d["seed"][0] == 1234
assert list(np.unique(d["episode"])) == [0, 1, 2]
assert (d["step"][:20] == np.arange(20)).all()
# Action 0 of a chunk is the expert's target for the frame's own time, and the
# last action of the last frame of an episode sits at the reached pose.
assert np.abs(d["actions"][:, 0] - d["joint_pos"]).max() < 0.5
assert d["images"].std() > 10, "images are not blank"
assert set(np.unique(d["dart"])) <= {0, 1}
# Frames of one episode change as the arm moves.
assert (d["images"][0] != d["images"][19]).any()
print("ok", d["images"].shape)
"#;

#[test]
fn recorded_npz_reads_back_with_numpy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sub/reach.npz");
    let opts = RecordOptions {
        episodes: 3,
        out: out.clone(),
        seed: 1234,
        dart_fraction: 0.5,
        episode_s: 2.0,
        ..RecordOptions::default()
    };
    let summary = record(&opts).expect("records");
    assert_eq!((summary.episodes, summary.frames), (3, 60));
    assert!(summary.bytes > 0);
    let again = record(&RecordOptions { out: dir.path().join("again.npz"), ..opts.clone() }).expect("records");
    assert_eq!(
        std::fs::read(&out).expect("written"),
        std::fs::read(dir.path().join("again.npz")).expect("written"),
        "same options, same bytes"
    );
    assert_eq!(summary.dart_episodes, again.dart_episodes);
    let py = python();
    match Command::new(&py).arg("-c").arg(CHECK).arg(&out).output() {
        Ok(o) => assert!(
            o.status.success(),
            "numpy check failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run {} (set GANGLION_PYTHON): {e}", py.display()),
    }
}

#[test]
fn clean_episodes_succeed_and_options_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = RecordOptions {
        episodes: 4,
        out: dir.path().join("clean.npz"),
        dart_fraction: 0.0,
        ..RecordOptions::default()
    };
    let s = record(&opts).expect("records");
    assert_eq!((s.dart_episodes, s.successes, s.clean_successes), (0, 4, 4));
    let bad = RecordOptions { dart_fraction: 1.5, ..opts.clone() };
    assert!(matches!(record(&bad), Err(RecordError::InvalidOption { key: "dart_fraction", .. })));
    let bad = RecordOptions { control_hz: 25.0, ..opts };
    assert!(matches!(record(&bad), Err(RecordError::InvalidOption { key: "control_hz", .. })));
}
