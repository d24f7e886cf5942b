//! Applying the real-time settings: [`lock_memory`] once for the process,
//! [`apply_thread_settings`] from inside each real-time thread (through
//! [`start_hook`]). Failures are reported, never panics.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{RealtimeConfig, MAX_CPUS};

/// Which real-time thread settings are applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadRole {
    /// The fixed-rate control thread (highest priority).
    Control,
    /// The inference worker.
    Inference,
}

impl ThreadRole {
    /// Stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            ThreadRole::Control => "control",
            ThreadRole::Inference => "inference",
        }
    }
}

/// Why a setting could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyError {
    /// The kernel refused for lack of privilege: neither root nor
    /// `CAP_SYS_NICE` / `CAP_IPC_LOCK`, or `RLIMIT_RTPRIO` / `RLIMIT_MEMLOCK`
    /// too low (the systemd unit grants both).
    #[error("permission denied (needs CAP_SYS_NICE / CAP_IPC_LOCK or a higher RLIMIT_RTPRIO / RLIMIT_MEMLOCK)")]
    PermissionDenied,
    /// The value is outside what the kernel accepts (priority range, a CPU
    /// that does not exist or is offline).
    #[error("invalid value for this machine")]
    Invalid,
    /// Not enough memory to lock every page (`mlockall`).
    #[error("not enough lockable memory (RLIMIT_MEMLOCK too low, or RAM)")]
    NoMemory,
    /// Any other `errno`.
    #[error("os error {0}")]
    Os(i32),
}

impl ApplyError {
    fn from_errno(e: i32) -> ApplyError {
        match e {
            libc::EPERM | libc::EACCES => ApplyError::PermissionDenied,
            libc::EINVAL => ApplyError::Invalid,
            libc::ENOMEM | libc::EAGAIN => ApplyError::NoMemory,
            other => ApplyError::Os(other),
        }
    }

    pub(super) fn last_os() -> ApplyError {
        ApplyError::from_errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// The outcome of applying one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "error")]
pub enum Outcome {
    /// The setting is in effect.
    Applied,
    /// The configuration does not ask for it (disabled, or no CPU list).
    NotRequested,
    /// The kernel refused; the thread runs without it.
    Failed(ApplyError),
}

impl Outcome {
    /// `true` unless the setting was asked for and failed.
    pub fn ok(self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Applied => f.write_str("applied"),
            Outcome::NotRequested => f.write_str("not requested"),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// What [`apply_thread_settings`] achieved on the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ThreadSettings {
    /// The role the settings were taken from.
    pub role: ThreadRole,
    /// SCHED_FIFO at the role's priority.
    pub sched_fifo: Outcome,
    /// CPU affinity to the role's CPU list.
    pub affinity: Outcome,
    /// Timer slack set to `timer_slack_ns`.
    pub timer_slack: Outcome,
}

impl ThreadSettings {
    /// `true` when nothing that was asked for failed.
    pub fn complete(&self) -> bool {
        self.sched_fifo.ok() && self.affinity.ok() && self.timer_slack.ok()
    }
}

impl fmt::Display for ThreadSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} thread: SCHED_FIFO {}, CPU affinity {}, timer slack {}",
            self.role.name(),
            self.sched_fifo,
            self.affinity,
            self.timer_slack
        )
    }
}

/// Applies the role's settings to the **calling** thread: SCHED_FIFO at the
/// role's priority, affinity to the role's CPUs, timer slack. Call it first
/// thing inside the control thread and the inference worker, before warm-up.
/// Each setting is tried independently; the result says which took effect.
/// Does nothing (all [`Outcome::NotRequested`]) when `config.enabled` is false.
pub fn apply_thread_settings(config: &RealtimeConfig, role: ThreadRole) -> ThreadSettings {
    if !config.enabled {
        return ThreadSettings {
            role,
            sched_fifo: Outcome::NotRequested,
            affinity: Outcome::NotRequested,
            timer_slack: Outcome::NotRequested,
        };
    }
    let (priority, cpus) = config.for_role(role);
    ThreadSettings {
        role,
        sched_fifo: set_fifo(priority),
        affinity: if cpus.is_empty() { Outcome::NotRequested } else { set_affinity(cpus) },
        timer_slack: set_timer_slack(config.timer_slack_ns),
    }
}

fn set_fifo(priority: u8) -> Outcome {
    let param = libc::sched_param { sched_priority: i32::from(priority) };
    // SAFETY: pthread_self() is the calling thread; param is a valid sched_param.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Outcome::Applied
    } else {
        Outcome::Failed(ApplyError::from_errno(rc))
    }
}

fn set_affinity(cpus: &[usize]) -> Outcome {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= MAX_CPUS {
            return Outcome::Failed(ApplyError::Invalid);
        }
        // SAFETY: cpu < CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: tid 0 is the calling thread; set is a valid cpu_set_t of the given size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Outcome::Applied
    } else {
        Outcome::Failed(ApplyError::last_os())
    }
}

fn set_timer_slack(ns: u64) -> Outcome {
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and affects the calling thread only.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Outcome::Applied
    } else {
        Outcome::Failed(ApplyError::last_os())
    }
}

pub(super) fn timer_slack_now() -> u64 {
    // SAFETY: PR_GET_TIMERSLACK has no pointer arguments; returns the slack or -1.
    let rc = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    u64::try_from(rc).unwrap_or(0)
}

/// Locks all current and future pages of the process in RAM
/// (`mlockall(MCL_CURRENT | MCL_FUTURE)`), if `config.mlockall` asks for it.
/// Call once at start, before the real-time threads allocate their buffers.
pub fn lock_memory(config: &RealtimeConfig) -> Outcome {
    if !config.enabled || !config.mlockall {
        return Outcome::NotRequested;
    }
    // SAFETY: mlockall takes flags only.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc == 0 {
        Outcome::Applied
    } else {
        Outcome::Failed(ApplyError::last_os())
    }
}

pub(super) fn unlock_memory() {
    // SAFETY: munlockall takes no arguments; failure leaves pages locked, which is harmless here.
    unsafe { libc::munlockall() };
}

/// What a thread's start hook applied, filled once by the thread itself.
pub type AppliedSettings = std::sync::Arc<std::sync::OnceLock<ThreadSettings>>;

/// A hook for [`RealtimeOptions::on_start`](crate::control::RealtimeOptions)
/// or [`WorkerExecutor::spawn_with`](crate::control::WorkerExecutor::spawn_with):
/// applies `role`'s settings on the thread that runs it and reports the
/// outcome into the returned slot (read it after the thread started; a
/// failure is also logged, naming what could not be applied).
pub fn start_hook(config: &RealtimeConfig, role: ThreadRole) -> (Box<dyn FnOnce() + Send>, AppliedSettings) {
    let slot: AppliedSettings = Default::default();
    let (cfg, out) = (config.clone(), slot.clone());
    let hook = Box::new(move || {
        let applied = apply_thread_settings(&cfg, role);
        if !applied.complete() {
            tracing::warn!("{applied} (the thread runs without what failed)");
        }
        let _ = out.set(applied);
    });
    (hook, slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_config_applies_nothing() {
        let c = RealtimeConfig { enabled: false, ..Default::default() };
        let s = std::thread::spawn(move || apply_thread_settings(&c, ThreadRole::Control)).join().unwrap();
        assert_eq!(s.sched_fifo, Outcome::NotRequested);
        assert!(s.complete());
        assert_eq!(lock_memory(&RealtimeConfig { enabled: false, ..Default::default() }), Outcome::NotRequested);
    }

    #[test]
    fn affinity_to_a_cpu_that_cannot_exist_fails_without_panicking() {
        let c = RealtimeConfig { control_cpus: vec![MAX_CPUS - 1], ..Default::default() };
        let s = std::thread::spawn(move || apply_thread_settings(&c, ThreadRole::Control)).join().unwrap();
        assert_eq!(s.affinity, Outcome::Failed(ApplyError::Invalid));
        assert!(!s.complete());
        assert!(s.to_string().contains("CPU affinity failed"));
    }
}
