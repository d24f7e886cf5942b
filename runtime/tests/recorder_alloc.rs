//! Recording on keeps the control thread allocation-free: after warm-up, a
//! whole closed-loop step (the arm publishing, the tick writing its
//! telemetry ring and input tap, the arm moving) performs zero heap
//! allocations on the control thread while the recorder `ganglion run`
//! attaches drains (and allocates, and writes MCAP) on its own thread, with
//! the policy on the real inference worker.

mod recorder_common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use ganglion::control::alloc_count::{self, CountingAlloc};
use ganglion::recorder::RecordingConfig;
use recorder_common::*;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const WARM_UP: u64 = 100;
const TICKS: u64 = 2_000;

/// Warms `lp` up, then steps it `TICKS` times; returns the control thread's
/// allocations while measuring.
fn measure(lp: &mut SimLoop) -> u64 {
    lp.reserve((WARM_UP + TICKS) as usize);
    // The worker answers in real time while the simulated clock jumps a
    // period per step: pace the steps so answers arrive within a period or two.
    let pace = Duration::from_micros(700);
    for _ in 0..WARM_UP {
        lp.step();
        std::thread::sleep(pace);
    }
    let mut allocations = 0;
    for _ in 0..TICKS {
        let before = alloc_count::thread_allocations();
        lp.step();
        allocations += alloc_count::thread_allocations() - before;
        std::thread::sleep(pace);
    }
    allocations
}

#[test]
fn recording_on_keeps_ticks_allocation_free() {
    // The counter proves itself: an allocation on this thread is seen.
    assert!(alloc_count::is_installed());
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg =
        RecordingConfig { dir: Some(dir.path().into()), continuous: true, poll_ms: 1, ..RecordingConfig::default() };
    // The tick ring holds the whole run: every tick must reach the file.
    assert!(cfg.tick_ring as u64 > WARM_UP + TICKS);
    let mut lp = SimLoop::with_worker();
    let recorder = lp.attach(&cfg);
    let stats = recorder.stats().clone();
    let with_recording = measure(&mut lp);
    let report = recorder.stop();
    assert_eq!(with_recording, 0, "allocations on the control thread with recording on");
    let accepted = lp.control.counters().chunks_accepted;
    assert!(accepted > 20, "too few chunks ({accepted}): the inference path was not exercised");
    assert_eq!(stats.ticks.load(Ordering::Relaxed), WARM_UP + TICKS, "every tick recorded");
    assert_eq!(stats.source_dropped.load(Ordering::Relaxed), 0, "the loop's rings dropped records");
    assert_eq!(report.write_errors, 0);
    assert_eq!(report.segments.len(), 1, "the continuous segment was written");
    // The segment holds everything the loop consumed, on every channel.
    let py = python_read(&report.segments[0]);
    let channels = py["channels"].as_object().expect("channels");
    assert_eq!(channels.len(), 7, "{channels:?}");
    for (topic, ch) in channels {
        assert_eq!(ch["count"].as_u64(), Some(lp.ledger.count(topic, 0, u64::MAX)), "{topic}");
    }

    let mut off = SimLoop::with_worker();
    let without = measure(&mut off);
    assert_eq!(without, 0, "allocations with recording off");
}
