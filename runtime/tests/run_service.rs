//! `ganglion run` as a service.
//!
//! Under a systemd-style supervisor it reports `READY=1`
//! once the control thread runs, pings `WATCHDOG=1` while the loop ticks
//! (the unit's `WatchdogSec` is honoured through `$WATCHDOG_USEC`), sends
//! `STATUS=` lines with the mode, and `STOPPING=1` on shutdown. The
//! notification socket is a real `AF_UNIX` datagram socket, as systemd's.
//!
//! No plant runs, so the loop sits in Fallback on stale inputs: still
//! healthy (ticking, not SafeStop), so the watchdog must keep being fed.
//!
//! `ganglion top --once --json` attaches to the running instance over zenoh
//! and reads its diagnostics: loop mode and causes, stage latencies, and
//! the transport's counters.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// The zenoh sim profile on a free loopback port (tests run in parallel);
/// returns the profile and its endpoint.
fn profile_at(dir: &Path) -> (std::path::PathBuf, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("launch/sim-zenoh.toml")).expect("sim-zenoh profile");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    assert!(text.contains("tcp/127.0.0.1:7447"), "the profile's endpoint changed; update this test");
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let text = text.replace("tcp/127.0.0.1:7447", &endpoint);
    let path = dir.join("sim-zenoh.toml");
    std::fs::write(&path, text).expect("write profile");
    (path, endpoint)
}

fn profile(dir: &Path) -> std::path::PathBuf {
    profile_at(dir).0
}

#[test]
fn run_notifies_ready_watchdog_status_and_stopping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["run", "--policy", "expert", "--seconds", "2", "--config"])
        .arg(profile(tmp.path()))
        .arg("--report")
        .arg(tmp.path().join("run.json"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ganglion run starts");
    let mut got: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => {
                if child.try_wait().expect("wait").is_some() {
                    // Drain what is still queued.
                    while let Ok(n) = sock.recv(&mut buf) {
                        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    break;
                }
            }
        }
    }
    let status = child.wait_with_output().expect("exit");
    assert!(status.status.success(), "ganglion run failed:\n{}", String::from_utf8_lossy(&status.stderr));
    let pos = |m: &str| got.iter().position(|g| g == m);
    let ready = pos("READY=1").unwrap_or_else(|| panic!("no READY=1 in {got:?}"));
    let stopping = pos("STOPPING=1").unwrap_or_else(|| panic!("no STOPPING=1 in {got:?}"));
    assert!(ready < stopping, "{got:?}");
    let pings = got[ready..stopping].iter().filter(|g| *g == "WATCHDOG=1").count();
    // 2 s of ticking at one ping per 100 ms (half the watchdog timeout);
    // allow for start-up and a loaded machine, but it must be fed repeatedly.
    assert!(pings >= 5, "only {pings} watchdog pings in 2 s: {got:?}");
    assert!(got.iter().any(|g| g.starts_with("STATUS=mode ")), "no STATUS line with the loop's mode: {got:?}");

    // The report says which ticks its counts leave out: the first second
    // (100 ticks at 100 Hz) is warm-up, and the whole-run totals are there too.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("run.json")).expect("report written"))
            .expect("report is JSON");
    let n = |k: &str| report[k].as_u64().unwrap_or_else(|| panic!("no {k} in {report}"));
    assert_eq!(n("warmup_ticks"), 100, "{report}");
    assert_eq!(n("ticks") + n("warmup_ticks"), n("total_ticks"), "{report}");
    assert!(n("total_fallback_ticks") >= n("fallback_ticks"), "{report}");
}

#[test]
fn top_attaches_to_a_running_instance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (profile, endpoint) = profile_at(tmp.path());
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["run", "--policy", "expert", "--seconds", "20", "--config"])
        .arg(&profile)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ganglion run starts");
    let top = std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["top", "--once", "--json", "--prefix", "ganglion/sim", "--timeout-s", "15", "--connect", &endpoint])
        .output()
        .expect("ganglion top runs");
    let _ = run.kill();
    let _ = run.wait();
    assert!(top.status.success(), "top failed:\n{}", String::from_utf8_lossy(&top.stderr));
    let v: serde_json::Value = serde_json::from_slice(&top.stdout).expect("top printed JSON");
    let status = |name: &str| v.get(name).unwrap_or_else(|| panic!("no status {name:?} in {v}"));
    let value = |name: &str, key: &str| -> String {
        status(name)["values"][key].as_str().unwrap_or_else(|| panic!("no {name}.{key} in {v}")).to_string()
    };
    // No plant: the inputs are stale, so the loop holds in Fallback and says why.
    assert_eq!(value("ganglion: loop", "mode"), "fallback", "{v}");
    assert!(value("ganglion: loop", "active_causes").contains("stale_joint_state"), "{v}");
    let p99: f64 = value("ganglion: latency", "total_us_p99").parse().expect("a number");
    assert!(p99 > 0.0, "{v}");
    assert_eq!(value("ganglion: transport", "commands_dropped"), "0", "{v}");
    // The sim-zenoh profile records nothing: the recorder status says so.
    assert_eq!(status("ganglion: recorder")["message"], "recording off", "{v}");
}
