//! The real-time runner: a dedicated control thread that ticks the loop on
//! absolute deadlines (`clock_nanosleep(TIMER_ABSTIME)` on the monotonic
//! clock), so a late wake-up never shifts the schedule.
//!
//! Real-time settings (SCHED_FIFO priority, CPU affinity, memory locking)
//! are applied by [`RealtimeOptions::on_start`], which runs on the control
//! thread itself before the first tick: `ganglion run` passes the
//! `crate::rtcheck` hook there.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use ganglion_core::{Clock, Mode, Stamp};
use hdrhistogram::Histogram;

use super::alloc_count;
use super::control_loop::{ControlLoop, LoopCounters};

/// How to run the control thread.
pub struct RealtimeOptions {
    /// Stop after this many ticks; `None` runs until the stop flag.
    pub max_ticks: Option<u64>,
    /// Ticks excluded from the statistics (caches, first inferences, lazy
    /// buffers of drivers).
    pub warmup_ticks: u64,
    /// Thread name.
    pub thread_name: String,
    /// Runs on the control thread before the first tick (RT priority,
    /// affinity, mlockall).
    pub on_start: Option<Box<dyn FnOnce() + Send>>,
    /// Published after every tick, for a non-RT observer (the systemd
    /// watchdog, diagnostics).
    pub progress: Option<Arc<LoopProgress>>,
    /// Keep the jitter and overhead of up to this many measured ticks, in
    /// tick order, for plots over time (buffers reserved before the first
    /// tick; later ticks are only in the histograms).
    pub keep_samples: usize,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        RealtimeOptions {
            max_ticks: None,
            warmup_ticks: 0,
            thread_name: "ganglion-control".into(),
            on_start: None,
            progress: None,
            keep_samples: 0,
        }
    }
}

/// The control thread's heartbeat for non-RT observers: ticks run and the
/// current mode, stored after every tick (two relaxed atomic stores: no
/// lock, no allocation). The systemd watchdog is pinged only while `ticks`
/// advances, so a wedged loop lets it expire.
#[derive(Debug, Default)]
pub struct LoopProgress {
    ticks: AtomicU64,
    mode: AtomicU8,
}

impl LoopProgress {
    /// Ticks run so far. Monotonic.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// The mode of the last tick.
    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::Relaxed)).unwrap_or(Mode::Startup)
    }

    fn publish(&self, ticks: u64, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
        self.ticks.store(ticks, Ordering::Relaxed);
    }
}

/// What a real-time run measured (after warm-up).
#[derive(Debug, Clone)]
pub struct RealtimeStats {
    /// Ticks run, warm-up included.
    pub ticks: u64,
    /// Ticks measured (after warm-up).
    pub measured_ticks: u64,
    /// Actual tick start − scheduled start, ns.
    pub jitter_ns: Histogram<u64>,
    /// Tick body time (inference runs elsewhere, so this is the loop's own
    /// overhead), ns.
    pub overhead_ns: Histogram<u64>,
    /// Heap allocations made on the control thread during measured ticks
    /// (meaningful only when [`alloc_count::is_installed`]).
    pub allocations: u64,
    /// Measured ticks whose body or start ran past the budget.
    pub overruns: u64,
    /// Measured ticks in Fallback or SafeStop.
    pub fallback_ticks: u64,
    /// Whole periods skipped because the thread woke more than a period late.
    pub skipped_periods: u64,
    /// The loop's own counters at the end (whole run).
    pub counters: LoopCounters,
    /// Jitter of the first [`RealtimeOptions::keep_samples`] measured ticks, ns, in order.
    pub jitter_samples_ns: Vec<u32>,
    /// Tick body time of the same ticks, ns, in order.
    pub overhead_samples_ns: Vec<u32>,
}

/// A histogram for nanosecond durations up to 10 s, 3 significant digits;
/// its buffers are allocated here, so recording never allocates.
pub fn duration_histogram() -> Histogram<u64> {
    // Constant bounds within hdrhistogram's documented range: cannot fail.
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid constant histogram bounds")
}

fn record(h: &mut Histogram<u64>, ns: u64) {
    // Values beyond the bound saturate instead of growing the histogram.
    h.saturating_record(ns.max(1));
}

/// Starts the control thread. It ticks `control` every period from the
/// next whole period after start until `stop` is set or `max_ticks` have
/// run, then returns the loop and the statistics.
pub fn spawn_realtime<C: Clock + 'static>(
    mut control: ControlLoop,
    clock: C,
    mut opts: RealtimeOptions,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<(ControlLoop, RealtimeStats)>> {
    std::thread::Builder::new().name(opts.thread_name.clone()).spawn(move || {
        if let Some(hook) = opts.on_start.take() {
            hook();
        }
        let period = control.period_ns();
        let mut stats = RealtimeStats {
            ticks: 0,
            measured_ticks: 0,
            jitter_ns: duration_histogram(),
            overhead_ns: duration_histogram(),
            allocations: 0,
            overruns: 0,
            fallback_ticks: 0,
            skipped_periods: 0,
            counters: LoopCounters::default(),
            jitter_samples_ns: Vec::with_capacity(opts.keep_samples),
            overhead_samples_ns: Vec::with_capacity(opts.keep_samples),
        };
        let mut next = Stamp((clock.now().as_nanos() / period + 1) * period);
        let mut allocs_at_warmup = alloc_count::thread_allocations();
        loop {
            if stop.load(Ordering::Acquire) || opts.max_ticks.is_some_and(|m| stats.ticks >= m) {
                break;
            }
            if stats.ticks == opts.warmup_ticks {
                allocs_at_warmup = alloc_count::thread_allocations();
            }
            clock.sleep_until(next);
            control.tick(&clock, next);
            let rec = control.last_record();
            if stats.ticks >= opts.warmup_ticks {
                stats.measured_ticks += 1;
                let (jitter, overhead) =
                    (rec.start.saturating_since(rec.scheduled), rec.end.saturating_since(rec.start));
                record(&mut stats.jitter_ns, jitter);
                record(&mut stats.overhead_ns, overhead);
                // Within the reserved capacity only: never reallocates.
                if stats.jitter_samples_ns.len() < opts.keep_samples {
                    stats.jitter_samples_ns.push(u32::try_from(jitter).unwrap_or(u32::MAX));
                    stats.overhead_samples_ns.push(u32::try_from(overhead).unwrap_or(u32::MAX));
                }
                stats.overruns += u64::from(rec.overrun);
                stats.fallback_ticks += u64::from(matches!(rec.mode, Mode::Fallback | Mode::SafeStop));
            }
            stats.ticks += 1;
            if let Some(p) = &opts.progress {
                p.publish(stats.ticks, rec.mode);
            }
            next = next.add_nanos(period);
            let now = clock.now();
            if now.saturating_since(next) >= period {
                // Woke so late that whole periods passed: skip them rather
                // than burst (the overrun trigger already fired).
                let behind = now.saturating_since(next) / period;
                stats.skipped_periods += behind;
                next = next.add_nanos(behind * period);
            }
        }
        if stats.ticks > opts.warmup_ticks {
            stats.allocations = alloc_count::thread_allocations() - allocs_at_warmup;
        }
        stats.counters = *control.counters();
        (control, stats)
    })
}

/// The timer floor: a bare absolute-deadline sleep loop at `period_ns` for
/// `ticks` ticks, recording wake-up lateness (ns). What jitter the loop
/// shows beyond this is the loop's; this much is the machine's.
pub fn timer_floor<C: Clock>(clock: &C, period_ns: u64, ticks: u64) -> Histogram<u64> {
    let mut h = duration_histogram();
    let mut next = Stamp((clock.now().as_nanos() / period_ns + 1) * period_ns);
    for _ in 0..ticks {
        clock.sleep_until(next);
        record(&mut h, clock.now().saturating_since(next));
        next = next.add_nanos(period_ns);
    }
    h
}
