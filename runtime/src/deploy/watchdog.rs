//! The systemd watchdog, fed from the loop's health rather than a timer.

use std::time::{Duration, Instant};

use crate::control::LoopProgress;
use crate::rtcheck::notify::{watchdog_interval, NotifyError, SdNotify};

/// Pings the systemd watchdog only while the control thread keeps ticking
/// and has not latched SafeStop: a stuck or stopped loop lets systemd
/// restart the service.
pub(crate) struct Watchdog {
    notify: Option<SdNotify>,
    interval: Option<Duration>,
    last_ping: Instant,
    last_ticks: u64,
}

impl Watchdog {
    /// From `NOTIFY_SOCKET` / `WATCHDOG_USEC` (absent: every call is a no-op).
    pub(crate) fn from_env() -> Watchdog {
        let notify = SdNotify::from_env().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable: no sd_notify");
            None
        });
        // Twice per interval, as sd_watchdog_enabled(3) recommends.
        let interval = watchdog_interval().map(|d| d / 2);
        Watchdog { notify, interval, last_ping: Instant::now(), last_ticks: 0 }
    }

    /// Sends one notification; a failure is logged, never fatal.
    pub(crate) fn send(&self, what: &str, f: impl FnOnce(&SdNotify) -> Result<(), NotifyError>) {
        if let Some(n) = &self.notify {
            if let Err(e) = f(n) {
                tracing::warn!(error = %e, "sd_notify {what} failed");
            }
        }
    }

    /// Pings when the interval has passed and the loop made progress.
    pub(crate) fn poll(&mut self, progress: &LoopProgress) {
        let Some(interval) = self.interval else { return };
        if self.last_ping.elapsed() < interval {
            return;
        }
        let ticks = progress.ticks();
        if ticks > self.last_ticks && progress.mode() != ganglion_core::Mode::SafeStop {
            self.send("WATCHDOG", SdNotify::watchdog);
            self.last_ping = Instant::now();
        }
        self.last_ticks = ticks;
    }
}
