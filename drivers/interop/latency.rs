//! Shared body of the `zenoh_latency` / `ros2_latency` examples of ganglion-zenoh and
//! ganglion-ros2 (included with `#[path]`): a plant publishes joint states
//! and camera frames stamped with the wall time just before encoding; the
//! loop side's ingest maps the header stamp onto its clock, so for each
//! sample `receive - capture` is the end-to-end latency from encode to
//! decoded-in-slot. Prints one JSON object.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ganglion_codec::msg::{Header, Image, JointState, Message, Time};
use ganglion_codec::{CaptureStamp, DecodeLimits, IngestConfig, JointMap};
use ganglion_core::{InputReaders, MonotonicClock};

/// Joint names used by the benchmark.
pub const JOINTS: [&str; 6] = ["j0", "j1", "j2", "j3", "j4", "j5"];

/// Ingest settings with header capture stamps on the monotonic clock.
pub fn ingest_config(max_side: u32) -> IngestConfig {
    IngestConfig {
        clock: Arc::new(MonotonicClock::new()),
        limits: DecodeLimits { max_width: max_side, max_height: max_side, ..DecodeLimits::default() },
        capture: CaptureStamp::Header,
        joints: JointMap::by_name(JOINTS.iter().map(|s| s.to_string()).collect()),
    }
}

/// Percentiles in µs.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// Samples received.
    pub samples: usize,
    /// Samples sent.
    pub sent: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Maximum, µs.
    pub max_us: f64,
}

fn summarize(mut v: Vec<u64>, sent: usize) -> Summary {
    v.sort_unstable();
    let q = |p: f64| if v.is_empty() { f64::NAN } else { v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e3 };
    Summary { samples: v.len(), sent, p50_us: q(0.5), p99_us: q(0.99), max_us: q(1.0) }
}

/// Sends `n` joint states (every `gap`) with `publish`, reading latencies
/// from `readers.joints` between sends.
pub fn joints(n: usize, gap: Duration, readers: &mut InputReaders, publish: &dyn Fn(&[u8])) -> Summary {
    let mut buf = Vec::new();
    let mut lat = Vec::with_capacity(n);
    let mut msg = JointState {
        name: JOINTS.iter().map(|s| s.to_string()).collect(),
        position: vec![0.1; JOINTS.len()],
        velocity: vec![0.0; JOINTS.len()],
        effort: vec![0.0; JOINTS.len()],
        ..JointState::default()
    };
    for _ in 0..n {
        msg.header.stamp = Time::now_wall();
        msg.encode_into(&mut buf);
        publish(&buf);
        wait_for(gap, || {
            if readers.joints.update() {
                let s = readers.joints.latest();
                lat.push(s.receive.saturating_since(s.capture));
            }
        });
    }
    summarize(lat, n)
}

/// Sends `n` rgb8 frames of `side × side` on camera 0.
pub fn frames(n: usize, side: u32, gap: Duration, readers: &mut InputReaders, publish: &dyn Fn(&[u8])) -> Summary {
    let mut buf = Vec::new();
    let mut lat = Vec::with_capacity(n);
    let mut img = Image {
        header: Header::default(),
        height: side,
        width: side,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: side * 3,
        data: (0..side * side * 3).map(|i| i as u8).collect(),
    };
    for k in 0..n {
        img.data[0] = k as u8;
        img.header.stamp = Time::now_wall();
        img.encode_into(&mut buf);
        publish(&buf);
        wait_for(gap, || {
            if readers.cameras[0].update() {
                let s = readers.cameras[0].latest();
                lat.push(s.receive.saturating_since(s.capture));
            }
        });
    }
    summarize(lat, n)
}

fn wait_for(gap: Duration, mut poll: impl FnMut()) {
    let end = std::time::Instant::now() + gap;
    while std::time::Instant::now() < end {
        poll();
        std::thread::sleep(Duration::from_micros(20));
    }
}
