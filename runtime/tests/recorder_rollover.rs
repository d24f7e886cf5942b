//! Continuous recording rolls segments over by size and by age and keeps
//! the total on disk within its bound; every kept segment is a complete,
//! readable file. The real control loop on the simulated clock records
//! through the recorder `ganglion run` attaches.

mod recorder_common;

use ganglion::recorder::read::Recording;
use ganglion::recorder::RecordingConfig;
use recorder_common::*;

fn run(cfg: &RecordingConfig, ticks: u64) -> (ganglion::recorder::RecorderReport, u64) {
    let mut lp = SimLoop::new(None);
    let mut rec = lp.recorder(cfg);
    let stats = rec.stats();
    for k in 0..ticks {
        lp.step();
        if k % 5 == 0 {
            rec.poll();
        }
    }
    let report = rec.finish();
    (report, stats.segments_deleted.load(std::sync::atomic::Ordering::Relaxed))
}

#[test]
fn segments_roll_over_by_age_and_total_size_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RecordingConfig {
        dir: Some(dir.path().into()),
        on_trigger: false,
        continuous: true,
        segment_max_s: 0.5,
        segment_max_bytes: 1 << 30,
        max_total_bytes: 1 << 30,
        ..RecordingConfig::default()
    };
    let (report, deleted) = run(&cfg, 500);
    assert_eq!(deleted, 0);
    // 5 s of loop time in 0.5 s segments (a segment closes at the first
    // message 0.5 s after its first one).
    assert!((9..=11).contains(&report.segments.len()), "{} segments", report.segments.len());
    let mut next_tick = 0;
    for f in &report.segments {
        let r = Recording::open(f).expect("segment reads");
        let span = r.ticks.last().expect("ticks").scheduled.0 - r.ticks[0].scheduled.0;
        assert!(span <= 500_000_000, "{}: spans {span} ns", f.display());
        assert_eq!(r.ticks[0].seq, next_tick, "segments are contiguous");
        next_tick = r.ticks.last().expect("ticks").seq + 1;
    }
    assert_eq!(next_tick, 500, "every tick is in some segment");
}

#[test]
fn oldest_segments_are_deleted_to_honour_the_total_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RecordingConfig {
        dir: Some(dir.path().into()),
        on_trigger: false,
        continuous: true,
        segment_max_s: 60.0,
        // A 64x64 frame is 12 KiB: a segment holds about 16 of them.
        segment_max_bytes: 200_000,
        max_total_bytes: 600_000,
        ..RecordingConfig::default()
    };
    let (report, deleted) = run(&cfg, 600);
    assert!(deleted > 0, "rollover deleted old segments");
    let (on_disk, part) = files(dir.path());
    assert!(!part);
    assert_eq!(on_disk, report.segments, "the report lists exactly what is on disk");
    let sizes: Vec<u64> = on_disk.iter().map(|f| std::fs::metadata(f).expect("stat").len()).collect();
    let total: u64 = sizes.iter().sum();
    assert!(total <= cfg.max_total_bytes, "total {total} > bound {}", cfg.max_total_bytes);
    // A segment closes after the chunk that crosses the size bound: at most
    // one chunk (1 MiB target, here far less: a few messages) beyond it.
    for s in &sizes[..sizes.len() - 1] {
        assert!(*s >= cfg.segment_max_bytes && *s < cfg.segment_max_bytes * 2, "segment of {s} bytes");
    }
    // The newest data survives: the last segment ends at the last tick.
    let last = Recording::open(on_disk.last().expect("a segment")).expect("reads");
    assert_eq!(last.ticks.last().map(|t| t.seq), Some(599));
}
