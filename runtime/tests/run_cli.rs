//! What a new user of `ganglion run` hits first (issue 14, item 7): the
//! bundle on the command line, an error that says how to supply a missing
//! one, a taken zenoh port named by its profile key, and no spurious WARN
//! on every unix-socket connect.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod ports;
use ports::free_port;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// sim-zenoh.toml with `listen` replaced and `edit` applied, written to `dir`.
fn profile(dir: &Path, listen: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("launch/sim-zenoh.toml")).expect("sim-zenoh profile");
    assert!(text.contains("listen = [\"tcp/127.0.0.1:7447\"]"), "the profile's endpoint changed; update this test");
    let text = edit(
        text.replace("tcp/127.0.0.1:7447", listen)
            .replace("wait_for_subscriber_ms = 10000", "wait_for_subscriber_ms = 0"),
    );
    let path = dir.join("profile.toml");
    std::fs::write(&path, text).expect("write profile");
    path
}

fn ganglion(args: &[&str], profile: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(args)
        .arg("--config")
        .arg(profile)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .output()
        .expect("run ganglion")
}

fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure:\n{stderr}");
    stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{stderr}")).to_string()
}

#[test]
fn run_bundle_flag_supplies_the_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let profile = profile(dir.path(), &endpoint, |t| t);
    let report = dir.path().join("run.json");
    let bundle = root().join("policies/reference/reach-v1");
    let key = root().join("policies/reference/dev-key.pub");
    let out = Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["run", "--seconds", "1", "--bundle"])
        .arg(&bundle)
        .arg("--key")
        .arg(&key)
        .arg("--config")
        .arg(&profile)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::null())
        .output()
        .expect("run ganglion run");
    assert!(out.status.success(), "run --bundle failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    // Without --bundle (and no --policy) this profile runs the expert.
    assert_ne!(r["policy"], "expert", "{r}");
    assert!(r["policy"].as_str().is_some_and(|p| p.contains("reach")), "{r}");

    // --bundle with --policy expert contradicts itself.
    let e = error_line(&ganglion(&["run", "--policy", "expert", "--bundle", "x", "--seconds", "1"], &profile));
    assert!(e.contains("--bundle") && e.contains("--policy expert"), "{e}");
}

#[test]
fn a_missing_bundle_names_the_profile_key_and_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    // --policy bundle on a profile without [policy] bundle.
    let with_sim = profile(dir.path(), &endpoint, |t| t);
    let e = error_line(&ganglion(&["run", "--policy", "bundle", "--seconds", "1"], &with_sim));
    assert!(e.contains("[policy] bundle") && e.contains("--bundle"), "{e}");
    // No bundle and no [sim]: not "--policy expert needs a [sim] section".
    let no_sim = profile(dir.path(), &endpoint, |t| t.replace("\n[sim]\n", "\n"));
    let e = error_line(&ganglion(&["run", "--seconds", "1"], &no_sim));
    assert!(e.contains("[policy] bundle") && e.contains("--bundle"), "{e}");
}

#[test]
fn a_taken_listen_port_names_the_profile_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("tcp/{}", taken.local_addr().expect("addr"));
    let profile = profile(dir.path(), &endpoint, |t| t);
    let e = error_line(&ganglion(&["run", "--policy", "expert", "--seconds", "1"], &profile));
    assert!(e.contains("transport.zenoh.listen") && e.contains(&endpoint) && e.contains("already in use"), "{e}");
}

/// zenoh logged `WARN Can not create a new UnixSocketStream link bound to
/// "<path>"` on every successful connect over a unix socket.
#[test]
fn unix_socket_connect_logs_no_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("z.sock");
    let endpoint = format!("unixsock-stream/{}", sock.display());
    let profile = profile(dir.path(), &endpoint, |t| t);
    let exe = env!("CARGO_BIN_EXE_ganglion");
    let report = dir.path().join("run.json");
    let run = Command::new(exe)
        .args(["run", "--policy", "expert", "--seconds", "4", "--config"])
        .arg(&profile)
        .arg("--report")
        .arg(&report)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ganglion run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The plant connects to the profile's listen endpoint, and leaves first.
    let sim = Command::new(exe)
        .args(["sim", "serve", "--transport", "zenoh", "--seconds", "1.5", "--profile"])
        .arg(&profile)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .output()
        .expect("run sim serve");
    let run = run.wait_with_output().expect("run ends");
    let (sim_err, run_err) = (String::from_utf8_lossy(&sim.stderr), String::from_utf8_lossy(&run.stderr));
    assert!(sim.status.success() && run.status.success(), "sim serve:\n{sim_err}\nrun:\n{run_err}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert!(r["topics"]["joint_states"]["received"].as_u64().is_some_and(|n| n > 0), "the plant never connected: {r}");
    for (who, err) in [("sim serve", &sim_err), ("run", &run_err)] {
        assert!(!err.contains("UnixSocketStream"), "{who} logged:\n{err}");
        assert!(!err.contains("WARN"), "{who} logged a warning:\n{err}");
    }
}

/// No command subscriber within `wait_for_subscriber_ms` (zenoh, nobody
/// there): a warning naming the key, and with `--strict` a refusal to arm.
#[test]
fn no_command_subscriber_warns_and_strict_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let profile =
        profile(dir.path(), &endpoint, |t| t.replace("wait_for_subscriber_ms = 0", "wait_for_subscriber_ms = 300"));
    let report = dir.path().join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["run", "--policy", "expert", "--seconds", "0.5", "--config"])
        .arg(&profile)
        .arg("--report")
        .arg(&report)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .output()
        .expect("run ganglion run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("WARN")
            && l.contains("no command subscriber matched ganglion/sim/command")
            && l.contains("wait_for_subscriber_ms = 300")),
        "{stderr}"
    );
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(r["command_subscriber_matched"], false, "{r}");
    let e = error_line(&ganglion(&["run", "--strict", "--policy", "expert", "--seconds", "0.5"], &profile));
    assert!(e.contains("--strict: refusing to arm") && e.contains("wait_for_subscriber_ms = 300"), "{e}");
}
