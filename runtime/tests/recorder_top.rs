//! `ganglion top --once --json` attaches to a publisher of diagnostics over
//! a real zenoh session (loopback TCP, no multicast) and prints what the
//! `DiagnosticsBuilder` put in the array.

use std::time::Duration;

use ganglion::recorder::diagnostics::DiagnosticsBuilder;
use ganglion::recorder::TickRow;
use ganglion_codec::msg::Message;
use ganglion_core::{hold_command, Cause, JointVec, Mode, Stamp};
use zenoh::Wait;

mod ports;
use ports::free_port;

#[test]
fn top_once_json_shows_the_published_diagnostics() {
    let port = free_port();
    let mut config = zenoh::Config::default();
    config.insert_json5("mode", "\"peer\"").expect("mode");
    config.insert_json5("listen/endpoints", &format!("[\"tcp/127.0.0.1:{port}\"]")).expect("listen");
    config.insert_json5("scouting/multicast/enabled", "false").expect("scouting");
    let session = zenoh::open(config).wait().expect("zenoh session");
    let publisher = session.declare_publisher("toptest/diagnostics").wait().expect("publisher");

    let mut b = DiagnosticsBuilder::new("test-arm");
    for i in 0..200u64 {
        let mode = if i < 120 { Mode::Nominal } else { Mode::Fallback };
        let mut row = TickRow::from_command(&hold_command(i, Stamp(i * 10_000_000), mode, JointVec::zeros(3)));
        row.stage_ns[7] = 7_000;
        if i >= 120 {
            row.causes.insert(Cause::StaleCamera);
        }
        b.observe(&row);
    }
    let payload = b.build(None).encode();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let pump = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = publisher.put(payload.clone()).wait();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["top", "--prefix", "toptest", "--connect", &format!("tcp/127.0.0.1:{port}"), "--once", "--json"])
        .args(["--timeout-s", "20"])
        .output()
        .expect("ganglion runs");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = pump.join();
    assert!(out.status.success(), "ganglion top failed: {}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let lp = &j["ganglion: loop"];
    assert_eq!(lp["level"], 2);
    assert_eq!(lp["hardware_id"], "test-arm");
    assert_eq!(lp["values"]["mode"], "fallback");
    assert_eq!(lp["values"]["rate_hz"], "100.00");
    assert_eq!(j["ganglion: causes"]["values"]["stale_camera"], "1");
    assert_eq!(j["ganglion: latency"]["values"]["total_us_p50"], "7.0");
}
