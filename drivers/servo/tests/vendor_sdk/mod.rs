//! The vendors' Python SDKs as test peers: an interpreter that can import
//! the SDK (a failure in CI, a printed skip elsewhere) and a peer script run
//! against an emulator's pty.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../interop/python.rs"]
mod python;

/// One vendor SDK and its peer script in `tests/`.
pub struct Sdk {
    /// The Python module, e.g. `scservo_sdk`.
    pub module: &'static str,
    /// The PyPI package that provides it.
    pub package: &'static str,
    /// The peer script in `tests/`.
    pub script: &'static str,
}

/// Feetech's SDK.
#[allow(dead_code)] // each test binary talks to one of the two SDKs
pub const FEETECH: Sdk = Sdk { module: "scservo_sdk", package: "feetech-servo-sdk", script: "scservo_peer.py" };
/// ROBOTIS's SDK.
#[allow(dead_code)] // each test binary talks to one of the two SDKs
pub const DYNAMIXEL: Sdk = Sdk { module: "dynamixel_sdk", package: "dynamixel-sdk", script: "dynamixel_peer.py" };

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

impl Sdk {
    /// The interpreter when it has the SDK; `None` (skip) off CI, panic in CI.
    pub fn python(&self, test: &str) -> Option<PathBuf> {
        let py = python::interpreter();
        let ok = Command::new(&py)
            .args(["-c", &format!("import {}", self.module)])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
        let what = format!("{} cannot import {} ({})", py.display(), self.module, self.package);
        assert!(!in_ci(), "{test}: {what}; CI provides it (.ci/setup, source .ci/env): a failure there, not a skip");
        println!("SKIPPED (not in CI) {test}: {what}");
        None
    }

    /// Runs the peer script against the emulator on `pty`; its stdout, or
    /// a panic with its output when it fails.
    pub fn peer(&self, py: &Path, pty: &Path, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(self.script);
        let out = Command::new(py)
            .arg(&script)
            .arg(pty)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.script));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n{stdout}\n{}",
            self.script,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}
