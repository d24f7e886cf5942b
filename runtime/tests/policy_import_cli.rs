//! `ganglion policy import` as a user runs it, without torch: the export
//! step is played by a stand-in interpreter that copies the committed
//! export outputs (policies/fixtures/lerobot-act/bundle). The real export
//! (LeRobot, PyTorch) runs by hand: docs/POLICIES.md, "Importing a LeRobot
//! checkpoint". The library side is tested in
//! policies/tests/lerobot_import.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ganglion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ganglion")).args(args).output().expect("running ganglion")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A stand-in interpreter that copies the committed export outputs into the
/// folder it is given with `--out`.
fn fake_python(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let src = dir.join("export");
    std::fs::create_dir_all(&src).expect("mkdir");
    for f in ["policy.onnx", "parity.json"] {
        std::fs::copy(root().join("policies/fixtures/lerobot-act/bundle").join(f), src.join(f)).expect("copy");
    }
    let py = dir.join("python");
    let script = format!(
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --out ]; then out=\"$2\"; fi; shift; done\ncp '{}'/* \"$out\"/ && echo 'stand-in export'\n",
        src.display()
    );
    std::fs::write(&py, script).expect("write");
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    py
}

fn import_args<'a>(checkpoint: &'a str, out: &'a str, python: &'a str, extra: &[&'a str]) -> Vec<String> {
    let key = path(&root().join("policies/fixtures/TEST-ONLY-signing.key"));
    let profile = path(&root().join("launch/sim.toml"));
    let mut a: Vec<String> = ["policy", "import", checkpoint, "--out", out, "--key", &key, "--profile", &profile]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--python", python, "--fps", "10"].iter().map(|s| s.to_string()));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run(args: &[String]) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ganglion(&refs)
}

#[test]
fn import_inspect_and_check_an_act_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let py = fake_python(tmp.path());
    let out = tmp.path().join("act");
    let ckpt = path(&root().join("policies/fixtures/lerobot-act/pretrained_model"));
    let args = import_args(&ckpt, &path(&out), &path(&py), &["--environment-state-from-joints"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("parity: max abs error") && t.contains("stand-in export"), "{t}");

    let public = path(&root().join("policies/fixtures/TEST-ONLY-signing.pub"));
    let o = ganglion(&["policy", "inspect", &path(&out), "--key", &public]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("imported   lerobot act") && t.contains("parity     max abs error"), "{t}");
    let o = ganglion(&["policy", "check", &path(&out), "--key", &public]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("parity vs the PyTorch reference") && t.contains("OK, runs on tract"), "{t}");

    // Importing again over it is refused; the bundle is untouched.
    let before = std::fs::read(out.join("policy.toml")).expect("read");
    let o = run(&args);
    assert!(!o.status.success());
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    assert_eq!(std::fs::read(out.join("policy.toml")).expect("read"), before);
}

#[test]
fn refusals_name_what_is_wrong_and_write_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let py = path(&fake_python(tmp.path()));
    let out = tmp.path().join("out");
    let cases: [(&str, &[&str], &str); 2] = [
        ("policies/fixtures/lerobot-act/unsupported", &[], "policy type `vqbet` is not supported"),
        ("policies/fixtures/lerobot-act/pretrained_model", &[], "feature `observation.environment_state`"),
    ];
    for (ckpt, extra, want) in cases {
        let o = run(&import_args(&path(&root().join(ckpt)), &path(&out), &py, extra));
        assert!(!o.status.success(), "{ckpt}: {}", text(&o));
        assert!(text(&o).contains(want), "{ckpt}: {}", text(&o));
        assert!(!out.exists(), "{ckpt}: wrote {}", out.display());
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left.len(), 2, "only the stand-in's files: {left:?}");
}
