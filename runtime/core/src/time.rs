//! Monotonic time for the control loop.
//!
//! Nothing in the loop reads wall time. A [`Stamp`] is nanoseconds on the
//! clock's own monotonic time line; the real clock is `CLOCK_MONOTONIC`, the
//! simulated one starts at zero and moves only when a test or the replayer
//! advances it, which makes the loop deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A point on a monotonic time line, in nanoseconds.
///
/// Stamps from different clocks are not comparable; every stamp the loop
/// compares comes from the one [`Clock`] it runs on (drivers stamp receipt
/// with that clock too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Stamp(pub u64);

impl Stamp {
    /// The origin of the time line.
    pub const ZERO: Stamp = Stamp(0);

    /// From nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        Stamp(ns)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the origin, for logs and reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// `self + ns`, saturating at the end of the time line.
    pub const fn add_nanos(self, ns: u64) -> Self {
        Stamp(self.0.saturating_add(ns))
    }

    /// `self - earlier` in nanoseconds, or 0 when `earlier` is later.
    pub const fn saturating_since(self, earlier: Stamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `self - other` as a signed number of nanoseconds.
    pub const fn signed_since(self, other: Stamp) -> i64 {
        self.0 as i64 - other.0 as i64
    }
}

/// The loop's source of time.
///
/// Invariants every implementation keeps:
/// - `now` is monotonic (never decreases) and never fails;
/// - `sleep_until` returns at or after `deadline` (it may return late; it
///   never returns early), and returns at once when the deadline is past;
/// - both are callable from the real-time thread: no allocation, no locks.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Stamp;
    /// Blocks until `deadline` (absolute, on this clock's time line).
    fn sleep_until(&self, deadline: Stamp);
}

/// `CLOCK_MONOTONIC` with absolute-deadline sleeps (`clock_nanosleep` with
/// `TIMER_ABSTIME`), so a late wake-up never shifts the following deadlines.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl MonotonicClock {
    /// The monotonic clock of this process.
    pub const fn new() -> Self {
        MonotonicClock
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Stamp {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
        // exists on Linux, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Stamp(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    fn sleep_until(&self, deadline: Stamp) {
        let ts = libc::timespec {
            tv_sec: (deadline.0 / 1_000_000_000) as libc::time_t,
            tv_nsec: (deadline.0 % 1_000_000_000) as libc::c_long,
        };
        loop {
            // SAFETY: `ts` is a valid timespec; a null remainder is allowed
            // with TIMER_ABSTIME.
            let rc =
                unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) };
            // Interrupted by a signal: the deadline is absolute, so sleeping
            // again with the same timespec is exact.
            if rc != libc::EINTR {
                break;
            }
        }
    }
}

/// A clock that moves only when told to.
///
/// Cloning shares the time line. `sleep_until` jumps the clock forward to
/// the deadline (it never waits), so a loop driven on a `SimClock` runs as
/// fast as it can compute, deterministically.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    now_ns: Arc<AtomicU64>,
}

impl SimClock {
    /// A simulated clock at `start`.
    pub fn new(start: Stamp) -> Self {
        SimClock { now_ns: Arc::new(AtomicU64::new(start.0)) }
    }

    /// Moves the clock forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now_ns.fetch_add(ns, Ordering::AcqRel);
    }

    /// Moves the clock to `t`; a `t` in the past is ignored (monotonic).
    pub fn set(&self, t: Stamp) {
        self.now_ns.fetch_max(t.0, Ordering::AcqRel);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Stamp {
        Stamp(self.now_ns.load(Ordering::Acquire))
    }

    fn sleep_until(&self, deadline: Stamp) {
        self.set(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_never_goes_backwards_and_sleeps_to_deadline() {
        let c = MonotonicClock::new();
        let a = c.now();
        let deadline = a.add_nanos(2_000_000);
        c.sleep_until(deadline);
        let b = c.now();
        assert!(b >= deadline, "woke at {b:?} before deadline {deadline:?}");
    }

    #[test]
    fn sim_clock_moves_only_forward() {
        let c = SimClock::new(Stamp(100));
        c.advance(50);
        assert_eq!(c.now(), Stamp(150));
        c.set(Stamp(10));
        assert_eq!(c.now(), Stamp(150));
        c.sleep_until(Stamp(1_000));
        assert_eq!(c.now(), Stamp(1_000));
        let shared = c.clone();
        shared.advance(1);
        assert_eq!(c.now(), Stamp(1_001));
    }
}
