//! Silent QoS mismatches on ROS 2 are reported (issue 14, item 2), against
//! an independent peer: Cyclone DDS (`drivers/interop/qos_mismatch_peer.py`)
//! subscribes to the command topic with transient-local durability and
//! publishes the instruction best effort; neither can ever match Ganglion's
//! QoS (docs/INTERFACES.md). `ganglion run` must log both mismatches with
//! both sides' QoS, count them in its diagnostics and its run report, warn
//! that no command subscriber matched within `wait_for_subscriber_ms`, and
//! with `--strict` refuse to arm. The same run checks that a clean ROS 2
//! shutdown logs no ERROR and that no `ROS_DISTRO` warning is printed.

#[path = "../../drivers/interop/python.rs"]
mod python;

use std::path::Path;
use std::process::{Command, Stdio};

const COMMAND_TOPIC: &str = "joint_trajectory_controller/joint_trajectory";

/// sim-ros2.toml in a DDS domain of its own: 1..=9, which no other test
/// uses (Cyclone interop 10..=159, transport_e2e 160..=219, the transport
/// bench 220..=231).
fn profile(dir: &Path, domain: u32) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("launch/sim-ros2.toml")).expect("profile");
    assert!(text.contains("domain_id = 42") && text.contains("wait_for_subscriber_ms = 10000"), "update this test");
    assert!(text.contains(&format!("command_topic = \"{COMMAND_TOPIC}\"")), "update this test");
    let text = text
        .replace("domain_id = 42", &format!("domain_id = {domain}"))
        .replace("wait_for_subscriber_ms = 10000", "wait_for_subscriber_ms = 3000");
    let path = dir.join("sim-ros2.toml");
    std::fs::write(&path, text).expect("write profile");
    path
}

fn run(profile: &Path, report: &Path, strict: bool) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ganglion"));
    c.args(["run", "--policy", "expert", "--seconds", "3", "--config"]).arg(profile).arg("--report").arg(report);
    if strict {
        c.arg("--strict");
    }
    c.env_remove("RUST_LOG").env_remove("ROS_DISTRO").stdout(Stdio::null()).output().expect("run ganglion run")
}

#[test]
fn ros2_incompatible_qos_is_logged_counted_and_strict_refuses_to_arm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let domain = 1 + std::process::id() % 9;
    let profile = profile(dir.path(), domain);
    let peer = python::script("qos_mismatch_peer.py")
        .args(["--domain", &domain.to_string(), "--command-topic", COMMAND_TOPIC, "--seconds", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qos_mismatch_peer.py");
    std::thread::sleep(std::time::Duration::from_millis(1500));

    // Without --strict: runs, but says what is wrong.
    let report_path = dir.path().join("run.json");
    let out = run(&profile, &report_path, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("ganglion run:\n{stderr}");
    assert!(out.status.success(), "ganglion run failed");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report")).expect("JSON");
    assert_eq!(r["command_subscriber_matched"], false, "{r}");
    let mismatches = r["qos_incompatible"].as_array().expect("qos_incompatible");
    let find = |topic: &str| {
        mismatches.iter().find(|m| m["topic"] == topic).unwrap_or_else(|| panic!("no mismatch on {topic}: {r}"))
    };
    let cmd = find(&format!("rt/{COMMAND_TOPIC}"));
    assert_eq!(cmd["ganglion_side"], "writer", "{cmd}");
    assert_eq!(cmd["policy"], "Durability", "{cmd}");
    assert!(cmd["ganglion_qos"].as_str().expect("qos").contains("volatile"), "{cmd}");
    assert!(cmd["peer_qos"].as_str().expect("qos").contains("transient local"), "{cmd}");
    let instr = find("rt/instruction");
    assert_eq!(instr["ganglion_side"], "reader", "{instr}");
    assert_eq!(instr["policy"], "Reliability", "{instr}");
    assert!(instr["ganglion_qos"].as_str().expect("qos").starts_with("reliable"), "{instr}");
    assert!(instr["peer_qos"].as_str().expect("qos").starts_with("best effort"), "{instr}");
    assert_eq!(mismatches.len(), 2, "{r}");
    assert_eq!(r["topics"]["instruction"]["received"], 0, "{r}");
    // Logged, with both sides' QoS.
    for topic in [format!("rt/{COMMAND_TOPIC}"), "rt/instruction".to_string()] {
        let line = stderr
            .lines()
            .find(|l| l.contains("WARN") && l.contains(&format!("QoS mismatch on {topic}:")))
            .unwrap_or_else(|| panic!("no WARN line for the mismatch on {topic}"));
        assert!(line.contains("Ganglion's") && line.contains("the peer's"), "{line}");
    }
    assert!(
        stderr.lines().any(|l| l.contains("WARN")
            && l.contains("no command subscriber matched")
            && l.contains("wait_for_subscriber_ms = 3000")),
        "no warning about the missing subscriber"
    );
    // A clean ROS 2 shutdown, and no ROS installation needed.
    assert!(!stderr.contains("ERROR"), "ERROR logged on a clean run");
    assert!(!stderr.contains("ROS_DISTRO"), "ROS_DISTRO warning");

    // With --strict: refuses to arm, naming the wait and the mismatch.
    let out = run(&profile, &dir.path().join("strict.json"), true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("ganglion run --strict:\n{stderr}");
    assert!(!out.status.success(), "--strict armed without a command subscriber");
    let err = stderr.lines().find(|l| l.starts_with("error:")).expect("an error line");
    assert!(err.contains("--strict: refusing to arm"), "{err}");
    assert!(err.contains("wait_for_subscriber_ms = 3000"), "{err}");
    assert!(err.contains("transient local") && err.contains("Durability"), "{err}");
    assert!(!dir.path().join("strict.json").exists(), "--strict wrote a run report");

    // The peer (it stops when its stdin closes): no command reached it;
    // Ganglion's diagnostics counted both mismatches.
    let mut peer = peer;
    drop(peer.stdin.take());
    let peer = peer.wait_with_output().expect("peer ends");
    let peer_out = String::from_utf8_lossy(&peer.stdout);
    eprintln!("peer: {peer_out}\n{}", String::from_utf8_lossy(&peer.stderr));
    let p: serde_json::Value = serde_json::from_str(peer_out.trim()).expect("peer JSON");
    assert_eq!(p["commands"], 0, "{p}");
    assert!(p["instructions_sent"].as_u64().expect("sent") > 10, "{p}");
    let status = &p["transport_status"];
    assert_eq!(status["level"], 1, "ganglion: transport is not WARN: {status}");
    assert_eq!(status["values"]["qos_incompatible"], "2", "{status}");
    assert_eq!(status["values"]["command_subscribers"], "0", "{status}");
    assert!(status["message"].as_str().expect("message").contains("no command subscriber"), "{status}");
    assert!(status["message"].as_str().expect("message").contains("incompatible QoS"), "{status}");
    let v = &status["values"][format!("qos_incompatible.rt/{COMMAND_TOPIC}").as_str()];
    assert!(v.as_str().is_some_and(|v| v.contains("transient local")), "{status}");
}
