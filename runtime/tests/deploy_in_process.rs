//! The deployed path tested in-process, the way dora tests its daemon:
//! [`Runtime`] started from a real profile over a real zenoh session
//! (loopback TCP, no multicast), serviced, stopped, its report read; a
//! separate zenoh session plays the arm's command subscriber.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ganglion::deploy::{PolicyChoice, Runtime, RuntimeOptions};
use ganglion_codec::{decode_command, CommandFormat, DecodeLimits};
use zenoh::Wait;

mod ports;
use ports::free_port;

/// launch/sim-zenoh.toml listening on `port`, with `edit` applied.
fn profile(dir: &Path, port: u16, edit: impl Fn(String) -> String) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("launch/sim-zenoh.toml")).expect("sim-zenoh profile");
    assert!(text.contains("tcp/127.0.0.1:7447"), "the profile's endpoint changed; update this test");
    let path = dir.join("profile.toml");
    std::fs::write(&path, edit(text.replace("tcp/127.0.0.1:7447", &format!("tcp/127.0.0.1:{port}")))).expect("write");
    path
}

fn no_wait(text: String) -> String {
    text.replace("wait_for_subscriber_ms = 10000", "wait_for_subscriber_ms = 0")
}

/// A zenoh session connected to `port` counting the commands that decode.
fn command_subscriber(port: u16) -> (zenoh::Session, Arc<AtomicU64>, impl Drop) {
    let mut config = zenoh::Config::default();
    config.insert_json5("mode", "\"peer\"").expect("mode");
    config.insert_json5("connect/endpoints", &format!("[\"tcp/127.0.0.1:{port}\"]")).expect("connect");
    config.insert_json5("scouting/multicast/enabled", "false").expect("scouting");
    let session = zenoh::open(config).wait().expect("zenoh session");
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    let sub = session
        .declare_subscriber("ganglion/sim/command")
        .callback(move |sample| {
            let bytes = sample.payload().to_bytes();
            if decode_command(&bytes, CommandFormat::JointTrajectory, &DecodeLimits::default()).is_ok() {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        })
        .wait()
        .expect("subscriber");
    (session, count, sub)
}

#[test]
fn a_run_of_fixed_length_reports_every_tick_and_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path = profile(dir.path(), port, no_wait);
    let options = RuntimeOptions { seconds: Some(1.0), policy: Some(PolicyChoice::Expert), ..Default::default() };
    let mut runtime = Runtime::start(&path, options).expect("start");
    // Connects once the runtime listens; the subscription propagates in ms.
    let (_session, received, _sub) = command_subscriber(port);
    runtime.run_until(|| false);
    let report = runtime.shutdown().expect("shutdown");

    assert_eq!(report.total_ticks, 100, "1 s at 100 Hz");
    assert_eq!(report.warmup_ticks, 50, "warm-up is at most half the run");
    assert_eq!(report.transport, "zenoh");
    assert!(report.policy.starts_with("scripted-expert"), "{report:?}");
    // Nothing publishes joint states: every tick is in fallback, and with
    // no measured position to hold there is no command until the final
    // hold at shutdown.
    assert_eq!(report.total_fallback_ticks, report.total_ticks, "{report:?}");
    assert_eq!(report.final_mode, "fallback");
    assert_eq!(report.topics["joint_states"].received, 0, "{report:?}");
    assert_eq!((report.commands_published, report.commands_dropped), (1, 0), "{report:?}");
    assert!(report.recorder.is_none(), "no [recording] dir in the profile");
    // The hold reached the separate session (connected while the loop ran).
    let deadline = Instant::now() + Duration::from_secs(2);
    while received.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(received.load(Ordering::Relaxed), 1, "the final hold arrives and decodes");
}

#[test]
fn an_open_ended_run_stops_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = profile(dir.path(), free_port(), no_wait);
    let options = RuntimeOptions { policy: Some(PolicyChoice::Expert), ..Default::default() };
    let mut runtime = Runtime::start(&path, options).expect("start");
    let t0 = Instant::now();
    runtime.run_until(|| t0.elapsed() > Duration::from_millis(400));
    assert!(runtime.is_finished());
    let report = runtime.shutdown().expect("shutdown");
    // About 40 ticks in 0.4 s; the bounds only say it ran and then stopped
    // (a slow machine or an emulator ticks less, never more).
    assert!((1..=100).contains(&report.total_ticks), "about 40 ticks in 0.4 s: {}", report.total_ticks);
}

#[test]
fn a_strict_refusal_leaves_nothing_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path =
        profile(dir.path(), port, |t| t.replace("wait_for_subscriber_ms = 10000", "wait_for_subscriber_ms = 300"));
    let strict = RuntimeOptions { strict: true, policy: Some(PolicyChoice::Expert), ..Default::default() };
    let err = Runtime::start(&path, strict).err().expect("no subscriber: strict refuses to arm");
    let msg = format!("{err:#}");
    assert!(msg.contains("refusing to arm") && msg.contains("wait_for_subscriber_ms = 300"), "{msg}");
    // The refused start released its listener: the same profile starts again.
    let options = RuntimeOptions { seconds: Some(0.2), policy: Some(PolicyChoice::Expert), ..Default::default() };
    let mut runtime = Runtime::start(&path, options).expect("the port is free again");
    runtime.run_until(|| false);
    assert_eq!(runtime.shutdown().expect("shutdown").total_ticks, 20);
}

#[test]
fn a_bad_option_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = profile(dir.path(), free_port(), no_wait);
    let both = RuntimeOptions {
        policy: Some(PolicyChoice::Expert),
        bundle: Some(dir.path().join("bundle")),
        ..Default::default()
    };
    let msg = format!("{:#}", Runtime::start(&path, both).err().expect("--bundle with --policy expert"));
    assert!(msg.contains("--bundle runs a bundle"), "{msg}");
    let negative = RuntimeOptions { seconds: Some(-1.0), policy: Some(PolicyChoice::Expert), ..Default::default() };
    let msg = format!("{:#}", Runtime::start(&path, negative).err().expect("negative length"));
    assert!(msg.contains("--seconds must be positive"), "{msg}");
}

#[test]
fn the_runtime_closes_the_loop_with_the_wire_plant_in_process() {
    use ganglion::plant::wire::{serve, ServeOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = profile(dir.path(), free_port(), |t| t);
    // The plant on the wire in a thread of this process (lockstep: the arm
    // advances one period per command, so the outcome depends only on them).
    let plant_opts = ServeOptions { lockstep: true, ..ServeOptions::zenoh(path.clone()) };
    let plant = std::thread::spawn(move || serve(&plant_opts));
    // The profile waits up to 10 s for the plant's command subscriber.
    let options = RuntimeOptions { seconds: Some(5.0), policy: Some(PolicyChoice::Expert), ..Default::default() };
    let mut runtime = Runtime::start(&path, options).expect("start");
    runtime.run_until(|| false);
    let report = runtime.shutdown().expect("shutdown");
    let arm = plant.join().expect("plant thread").expect("plant report");

    assert_eq!(report.command_subscriber_matched, Some(true), "{report:?}");
    assert!(arm.success && arm.tip_error_m <= 0.03, "the expert reaches its target: {arm:?}");
    assert_eq!(arm.commands_received, report.commands_published, "no command lost: {arm:?} {report:?}");
    assert_eq!(arm.decode_errors, 0);
    assert!(report.topics["joint_states"].received > 100, "{report:?}");
    assert!(report.chunks_accepted > 0 && report.final_mode == "nominal", "{report:?}");
    // The worker's inference time (the expert reports no stages of its own).
    assert!(report.inference_us.get("total").is_some_and(|t| t.p50 > 0.0), "{:?}", report.inference_us);
}

#[test]
fn dropping_a_runtime_without_shutdown_stops_its_control_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = profile(dir.path(), free_port(), no_wait);
    let options = RuntimeOptions { policy: Some(PolicyChoice::Expert), ..Default::default() };
    let runtime = Runtime::start(&path, options).expect("start");
    let progress = runtime.progress();
    let ticking = Instant::now() + Duration::from_secs(2);
    while progress.ticks() < 5 && Instant::now() < ticking {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(progress.ticks() >= 5, "the loop runs");
    // An early return (`?`) drops the runtime: the loop must not run on,
    // detached. It stops within a tick; give it a few.
    drop(runtime);
    std::thread::sleep(Duration::from_millis(100));
    let after_drop = progress.ticks();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(progress.ticks(), after_drop, "the control thread kept ticking after the drop");
}
