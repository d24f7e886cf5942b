//! Test support shared by the interop tests of several crates (included with
//! `#[path = ".../drivers/interop/python.rs"] mod python;`): finds the Python
//! interpreter that has the independent implementations installed and the
//! directory of the interop scripts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (two levels above any crate under `drivers/` or one
/// above `runtime/`): the directory holding `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() && !dir.join("requirements-ci.txt").exists() {
        if !dir.pop() {
            return PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        }
    }
    dir
}

/// `GANGLION_PYTHON`, else `<workspace>/.venv/bin/python`, else `python3`.
pub fn interpreter() -> PathBuf {
    if let Some(p) = std::env::var_os("GANGLION_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// `drivers/interop`, where the Python scripts live.
pub fn scripts_dir() -> PathBuf {
    workspace_root().join("drivers/interop")
}

/// A `python <script> args...` command run from the scripts directory (so
/// `import ros_msgs` works), unbuffered output.
pub fn script(name: &str) -> Command {
    let mut c = Command::new(interpreter());
    c.current_dir(scripts_dir()).env("PYTHONUNBUFFERED", "1").arg(Path::new(name));
    c
}

/// A TCP port that is free right now (bound to 127.0.0.1:0 and released),
/// so tests running in parallel do not collide.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}
