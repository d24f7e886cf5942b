//! End to end across a real transport: `ganglion sim serve --lockstep` (the
//! simulated arm as its own process) and `ganglion run` (the loop with the
//! scripted expert behind the policy trait) over zenoh and over ROS 2. The
//! arm must reach its target (tip within 3 cm) and every command the loop
//! published must reach the arm.

use std::path::Path;
use std::process::{Command, Stdio};

mod ports;
use ports::free_port;

/// The shipped profile with its transport endpoint / domain made unique.
fn profile(dir: &Path, transport: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join(format!("launch/sim-{transport}.toml"))).expect("profile");
    let text = match transport {
        "zenoh" => text.replace("tcp/127.0.0.1:7447", &format!("tcp/127.0.0.1:{}", free_port())),
        // 160..=219: disjoint from the Cyclone interop tests (10..=159) and the bench (220..=231).
        _ => text.replace("domain_id = 42", &format!("domain_id = {}", 160 + std::process::id() % 60)),
    };
    let path = dir.join(format!("sim-{transport}.toml"));
    std::fs::write(&path, text).expect("write profile");
    path
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("report is JSON")
}

fn end_to_end(transport: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = profile(dir.path(), transport);
    let exe = env!("CARGO_BIN_EXE_ganglion");
    let sim_report = dir.path().join("sim.json");
    let run_report = dir.path().join("run.json");
    let sim = Command::new(exe)
        .args(["sim", "serve", "--transport", transport, "--lockstep", "--seconds", "60", "--profile"])
        .arg(&profile)
        .arg("--report")
        .arg(&sim_report)
        .stdout(Stdio::null())
        .spawn()
        .expect("start sim serve");
    let run = Command::new(exe)
        .args(["run", "--policy", "expert", "--seconds", "6", "--config"])
        .arg(&profile)
        .arg("--report")
        .arg(&run_report)
        .stdout(Stdio::null())
        .status()
        .expect("run ganglion run");
    let sim = sim.wait_with_output().expect("sim serve ends");
    assert!(run.success(), "ganglion run failed");
    let (s, r) = (json(&sim_report), json(&run_report));
    eprintln!("sim: {s}\nrun: {r}");
    assert!(sim.status.success(), "the arm did not reach its target: {s}");
    assert!(s["tip_error_m"].as_f64().expect("tip error") <= 0.03, "{s}");
    assert_eq!(s["decode_errors"], 0);
    let published = r["commands_published"].as_u64().expect("commands_published");
    assert!(published > 100, "{r}");
    assert_eq!(s["commands_received"].as_u64(), Some(published), "commands lost between run and sim");
    assert_eq!(r["commands_dropped"], 0);
    for (topic, stats) in r["topics"].as_object().expect("topics") {
        assert_eq!(stats["decode_errors"], 0, "{topic}");
    }
    assert!(r["topics"]["joint_states"]["received"].as_u64().expect("joint states") > 100, "{r}");
    assert!(r["topics"]["camera/front"]["received"].as_u64().expect("frames") > 10, "{r}");
}

#[test]
fn transport_e2e_sim_serve_and_run_over_zenoh() {
    end_to_end("zenoh");
}

#[test]
fn transport_e2e_sim_serve_and_run_over_ros2() {
    end_to_end("ros2");
}

/// `ganglion bench transport --malformed` (short run): the latency report
/// has samples for both streams, and the malformed corpus sent across the
/// real transport is counted as decode errors one for one, never reaches a
/// slot, and a valid message after it still lands. Checks counts, not
/// timings (those are the bench's job).
fn bench_transport_malformed(transport: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["bench", "transport", "--transport", transport, "--seconds", "0.5", "--malformed"])
        .args(["--width", "32", "--height", "24", "--report"])
        .arg(&report)
        .env("RUST_LOG", "warn,rustdds=off")
        .output()
        .expect("run ganglion bench transport");
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let r = json(&report);
    for stream in ["joint_state", "frame"] {
        let s = &r[stream];
        assert!(s["measured"].as_u64().expect("measured") > 0, "{stream}: {s}");
        assert_eq!(s["decode_errors"], 0, "{stream}");
        let samples = s["samples_us"].as_array().expect("samples_us");
        assert_eq!(samples.len() as u64, s["measured"].as_u64().expect("measured"));
        assert!(samples.iter().all(|v| v.as_f64().is_some_and(|x| x >= 0.0)));
    }
    let m = &r["malformed"];
    assert_eq!(m["landed_in_a_slot"].as_array().map(Vec::len), Some(0), "{m}");
    let mut total = 0;
    for topic in ["joint_states", "camera/bench", "instruction"] {
        let t = &m["topics"][topic];
        let sent = t["sent"].as_u64().expect("sent");
        assert!(sent >= 3, "{topic}: {t}");
        assert_eq!(t["decode_errors"].as_u64(), Some(sent), "{topic}: {t}");
        assert_eq!(t["valid_after_landed"], true, "{topic}");
        total += sent;
    }
    let skipped = m["skipped_over_dds"].as_array().expect("skipped").len() as u64;
    assert_eq!(total, m["cases"].as_array().expect("cases").len() as u64, "every case sent is on one topic");
    if transport == "zenoh" {
        assert_eq!(skipped, 0, "zenoh carries every corpus payload unchanged");
    }
}

#[test]
fn bench_transport_counts_the_malformed_corpus_over_zenoh() {
    bench_transport_malformed("zenoh");
}

#[test]
fn bench_transport_counts_the_malformed_corpus_over_ros2() {
    bench_transport_malformed("ros2");
}
