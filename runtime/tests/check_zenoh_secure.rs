//! The mTLS + access-control example in launch/zenoh-secure, exercised with
//! real zenoh sessions: certificates from its gen-certs.sh, router and
//! clients from its committed configs, driven by its test_acl.py.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("runtime/ has a parent").to_path_buf()
}

fn python(root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("GANGLION_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root.join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

#[test]
fn only_the_runtime_may_publish_commands() {
    let root = workspace_root();
    let dir = root.join("launch/zenoh-secure");
    if Command::new("openssl").arg("version").output().is_err() {
        println!("skipped: openssl is not installed (needed to create the example's certificates)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let status = Command::new("bash").arg(dir.join("gen-certs.sh")).arg(&certs).status().unwrap();
    assert!(status.success(), "gen-certs.sh failed");

    let out = Command::new(python(&root))
        .arg(dir.join("test_acl.py"))
        .arg(&certs)
        .arg(tmp.path())
        .output()
        .expect("running python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "test_acl.py failed:\n{stdout}\n{stderr}");
    if stdout.starts_with("SKIP") {
        println!("skipped: {stdout}");
        return;
    }
    assert!(stdout.contains("zenoh-secure ACL ok"), "{stdout}");
}
