//! Test support shared by the zenoh and DDS interop tests: runs
//! `robot.py` against a started Ganglion transport and checks both
//! directions. Included with `#[path]`, next to `python.rs`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ganglion_codec::ingest::{IngestConfig, QueueSink, TopicCounters};
use ganglion_codec::{CaptureStamp, DecodeLimits, JointMap};
use ganglion_core::{hold_command, CommandSink, InputReaders, JointVec, Mode, MonotonicClock, Stamp};

/// Joint names robot.py uses.
pub const JOINTS: [&str; 3] = ["j0", "j1", "j2"];
/// Camera name, width and height robot.py uses by default.
pub const CAMERA: (&str, u32, u32) = ("front", 8, 6);

/// Ingest settings for robot.py's joints on the real clock.
pub fn ingest_config() -> IngestConfig {
    IngestConfig {
        clock: Arc::new(MonotonicClock::new()),
        limits: DecodeLimits::default(),
        capture: CaptureStamp::Header,
        joints: JointMap::by_name(JOINTS.iter().map(|s| s.to_string()).collect()),
    }
}

/// What robot.py printed.
#[derive(Debug, serde::Deserialize)]
pub struct RobotReport {
    /// State/frame pairs it published.
    pub published: u64,
    /// Decoded command positions, in arrival order.
    pub commands: Vec<Vec<f64>>,
}

/// Waits until the loop side has seen a joint state and a frame from the
/// robot with the documented contents; then streams commands (positions
/// `[i, 2i, -i] * 0.001`, i = 0, 1, ...) every 10 ms until the robot exits;
/// checks the robot decoded consecutive commands (nothing lost, in order).
pub fn exchange(
    mut robot: std::process::Child,
    readers: &mut InputReaders,
    sink: &mut QueueSink,
    want_commands: usize,
) -> RobotReport {
    let start = Instant::now();
    let (mut joints_ok, mut frame_ok) = (false, false);
    while !(joints_ok && frame_ok) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no inputs from robot.py (joints {joints_ok}, frame {frame_ok})"
        );
        if let Ok(Some(status)) = robot.try_wait() {
            panic!("robot.py exited early: {status}");
        }
        if readers.joints.update() {
            let s = readers.joints.latest();
            let k = (s.value.position[0] / 0.01).round();
            assert!(k >= 1.0, "{:?}", s.value.position);
            assert!((s.value.position[1] + k * 0.01).abs() < 1e-12 && s.value.position[2] == 0.5, "{:?}", s.value);
            assert!(s.seq >= 1 && s.receive > Stamp::ZERO && s.capture <= s.receive.add_nanos(50_000_000));
            joints_ok = true;
        }
        if readers.cameras[0].update() {
            let f = &readers.cameras[0].latest().value;
            assert_eq!((f.width, f.height), (CAMERA.1, CAMERA.2));
            let k = f.data()[0] as usize;
            assert!(f.data().iter().enumerate().all(|(i, &b)| b as usize == (k + i) % 256), "frame pattern broken");
            frame_ok = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut i = 0u64;
    let out = loop {
        if let Ok(Some(_)) = robot.try_wait() {
            break robot.wait_with_output().expect("robot output");
        }
        assert!(start.elapsed() < Duration::from_secs(30), "robot.py did not get its commands");
        let x = i as f64 * 0.001;
        let cmd = hold_command(i, Stamp(i), Mode::Nominal, JointVec::from_slice(&[x, 2.0 * x, -x]).expect("fits"));
        sink.send(&cmd).expect("queue has room");
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(out.status.success(), "robot.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let report: RobotReport = serde_json::from_str(text.lines().last().unwrap_or("")).expect("robot.py JSON");
    assert!(report.commands.len() >= want_commands, "{report:?}");
    let first = (report.commands[0][0] / 0.001).round();
    for (j, c) in report.commands.iter().enumerate() {
        let x = (first + j as f64) * 0.001;
        assert_eq!(c.len(), 3);
        assert!(
            (c[0] - x).abs() < 1e-12 && (c[1] - 2.0 * x).abs() < 1e-12 && (c[2] + x).abs() < 1e-12,
            "command {j}: {c:?} (lost or reordered?)"
        );
    }
    report
}

/// Finds a topic's counters by name.
pub fn counter<'a>(all: &'a [(String, Arc<TopicCounters>)], name: &str) -> &'a TopicCounters {
    &all.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no topic {name}")).1
}
