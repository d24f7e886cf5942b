//! Recording on keeps the control thread allocation-free: after warm-up,
//! pushing inputs, results and tick records into the tap performs zero heap
//! allocations on the pushing thread while the recorder thread drains
//! (and allocates) concurrently.

mod recorder_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use ganglion::recorder::{spawn, tap, DirStorage, FlightRecorder, RecordingConfig};
use recorder_common::*;

/// Counts allocations made by threads that opted in.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNT_HERE.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: defers every operation to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_while(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNT_HERE.with(|c| c.set(true));
    f();
    COUNT_HERE.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn recording_on_keeps_ticks_allocation_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg =
        RecordingConfig { dir: Some(dir.path().into()), continuous: true, poll_ms: 1, ..RecordingConfig::default() };
    let (mut tap, drain) = tap(&cfg.tap_config(), &shape());
    let recorder =
        spawn(FlightRecorder::new(&cfg, meta(), Box::new(DirStorage::new(dir.path())), drain)).expect("thread");
    let stats = recorder.stats().clone();
    let mut lp = SyntheticLoop::new(None);
    const TICKS: usize = 2_000;
    lp.reserve(TICKS + 100);
    for _ in 0..100 {
        lp.step(Some(&mut tap)); // warm-up
    }
    // The counter proves itself: an allocation on this thread is seen.
    assert!(allocations_while(|| drop(std::hint::black_box(vec![1u8; 16]))) >= 1);
    let mut with_recording = 0;
    for _ in 0..TICKS / 50 {
        with_recording += allocations_while(|| {
            for _ in 0..50 {
                lp.step(Some(&mut tap));
            }
        });
        // Let the recorder drain so the rings never fill.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let report = recorder.stop();
    assert_eq!(with_recording, 0, "allocations on the control thread with recording on");
    let dropped = tap.counters().ticks_dropped.load(Ordering::Relaxed);
    assert_eq!(stats.ticks.load(Ordering::Relaxed) + dropped, (TICKS + 100) as u64, "every tick recorded or counted");
    assert_eq!(report.write_errors, 0);
    assert_eq!(report.segments.len(), 1, "the continuous segment was written");
    let mut off = SyntheticLoop::new(None);
    off.reserve(TICKS + 100);
    for _ in 0..100 {
        off.step(None);
    }
    let without = allocations_while(|| {
        for _ in 0..TICKS {
            off.step(None);
        }
    });
    assert_eq!(without, 0, "allocations with recording off");
}
