//! Real-time readiness of this machine, and applying RT settings at start.
//!
//! Three parts, one concern (is this process going to run on time?):
//!
//! - **apply**: what the runtime does at start: [`lock_memory`] once for the
//!   process, [`apply_thread_settings`] from inside each real-time thread
//!   (SCHED_FIFO priority, CPU affinity, timer slack). Both return what
//!   succeeded and what failed with the reason; they never panic, and a
//!   failure is something to report (and refuse to arm on under `--strict`),
//!   not something to crash on.
//! - **check**: [`check`] probes the machine (on a throwaway thread, with the
//!   same apply functions) and reads the kernel's and the board's settings
//!   from `/sys` and `/proc`, giving pass / fail / not-applicable with a
//!   reason per [`CheckItem`]. `ganglion check` prints it; `ganglion run
//!   --strict` refuses to arm when [`Report::required_failures`] is non-empty.
//! - **notify**: [`notify::SdNotify`], systemd's readiness and watchdog
//!   protocol over a plain unix datagram socket.

use serde::{Deserialize, Serialize};

/// Real-time settings (`[realtime]` of a robot profile).
///
/// Invariants (checked by [`RealtimeConfig::validate`]): priorities lie in
/// 1..=99 and differ, so the control thread always preempts the inference
/// worker; CPU numbers are below [`MAX_CPUS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeConfig {
    /// Apply the settings below at start. `false` runs every thread with the
    /// default scheduler (a laptop, a CI machine).
    pub enabled: bool,
    /// SCHED_FIFO priority of the control thread, 1..=99.
    pub control_priority: u8,
    /// SCHED_FIFO priority of the inference worker, 1..=99, different from
    /// the control thread's (normally lower: the loop must preempt inference).
    pub inference_priority: u8,
    /// CPUs the control thread may run on; empty leaves it unpinned. Best an
    /// isolated core (`isolcpus=` / `nohz_full=`), see launch/JETSON.md.
    pub control_cpus: Vec<usize>,
    /// CPUs the inference worker may run on; empty leaves it unpinned.
    pub inference_cpus: Vec<usize>,
    /// Lock all current and future pages in RAM (`mlockall`), so a page
    /// fault never stalls a tick.
    pub mlockall: bool,
    /// Timer slack of real-time threads in nanoseconds (>= 1; the kernel's
    /// default of 50 µs delays every sleep of a non-FIFO thread by up to that).
    pub timer_slack_ns: u64,
    /// Expected Jetson power mode (`nvpmodel` id); `None` accepts any mode.
    /// Mode 0 is MAXN on every Orin module.
    pub jetson_power_mode: Option<u32>,
    /// Items that must pass under `--strict` (`ganglion check --strict`,
    /// `ganglion run --strict`). Not-applicable counts as not passing.
    pub required: Vec<CheckItem>,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            enabled: true,
            control_priority: 80,
            inference_priority: 70,
            control_cpus: Vec::new(),
            inference_cpus: Vec::new(),
            mlockall: true,
            timer_slack_ns: 1,
            jetson_power_mode: None,
            required: vec![CheckItem::SchedFifo, CheckItem::Mlockall],
        }
    }
}

/// CPU numbers at or above this are rejected (the size of glibc's `cpu_set_t`).
pub const MAX_CPUS: usize = 1024;

/// A `[realtime]` value that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealtimeConfigError {
    /// `realtime.control_priority` outside 1..=99.
    ControlPriority(u8),
    /// `realtime.inference_priority` outside 1..=99.
    InferencePriority(u8),
    /// Both threads would share one priority, so neither reliably preempts the other.
    SamePriority(u8),
    /// A CPU number in `realtime.control_cpus` is too large.
    ControlCpu(usize),
    /// A CPU number in `realtime.inference_cpus` is too large.
    InferenceCpu(usize),
    /// `realtime.timer_slack_ns` is 0, which the kernel reads as "reset to default".
    TimerSlack,
}

impl RealtimeConfigError {
    /// The profile key at fault.
    pub fn key(&self) -> String {
        let key = match self {
            RealtimeConfigError::ControlPriority(_) => "control_priority",
            RealtimeConfigError::InferencePriority(_) | RealtimeConfigError::SamePriority(_) => "inference_priority",
            RealtimeConfigError::ControlCpu(_) => "control_cpus",
            RealtimeConfigError::InferenceCpu(_) => "inference_cpus",
            RealtimeConfigError::TimerSlack => "timer_slack_ns",
        };
        format!("realtime.{key}")
    }

    /// What would have been accepted (with the value that was not).
    pub fn expected(&self) -> String {
        match self {
            RealtimeConfigError::ControlPriority(v) | RealtimeConfigError::InferencePriority(v) => {
                format!("a SCHED_FIFO priority in 1..=99, not {v}")
            }
            RealtimeConfigError::SamePriority(v) => format!("a priority other than realtime.control_priority ({v})"),
            RealtimeConfigError::ControlCpu(c) | RealtimeConfigError::InferenceCpu(c) => {
                format!("CPU numbers below {MAX_CPUS}, not {c}")
            }
            RealtimeConfigError::TimerSlack => "at least 1 (0 means the 50 µs default to the kernel)".into(),
        }
    }
}

crate::control::config_error!(RealtimeConfigError);

impl RealtimeConfig {
    /// Checks the invariants listed on the type.
    pub fn validate(&self) -> Result<(), RealtimeConfigError> {
        if !(1..=99).contains(&self.control_priority) {
            return Err(RealtimeConfigError::ControlPriority(self.control_priority));
        }
        if !(1..=99).contains(&self.inference_priority) {
            return Err(RealtimeConfigError::InferencePriority(self.inference_priority));
        }
        if self.control_priority == self.inference_priority {
            return Err(RealtimeConfigError::SamePriority(self.control_priority));
        }
        if let Some(&c) = self.control_cpus.iter().find(|&&c| c >= MAX_CPUS) {
            return Err(RealtimeConfigError::ControlCpu(c));
        }
        if let Some(&c) = self.inference_cpus.iter().find(|&&c| c >= MAX_CPUS) {
            return Err(RealtimeConfigError::InferenceCpu(c));
        }
        if self.timer_slack_ns == 0 {
            return Err(RealtimeConfigError::TimerSlack);
        }
        Ok(())
    }

    /// The SCHED_FIFO priority and CPU list of a role.
    pub fn for_role(&self, role: ThreadRole) -> (u8, &[usize]) {
        match role {
            ThreadRole::Control => (self.control_priority, &self.control_cpus),
            ThreadRole::Inference => (self.inference_priority, &self.inference_cpus),
        }
    }
}

mod apply;
pub mod notify;
mod probe;

pub use apply::*;
pub use probe::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_priorities_distinct() {
        let c = RealtimeConfig::default();
        c.validate().unwrap();
        assert!(c.control_priority > c.inference_priority);
    }

    #[test]
    fn validate_names_the_key() {
        let c = RealtimeConfig { inference_priority: 80, ..Default::default() };
        let e = c.validate().unwrap_err();
        assert_eq!(e, RealtimeConfigError::SamePriority(80));
        assert!(e.to_string().contains("realtime.inference_priority"));
        let c = RealtimeConfig { control_priority: 0, ..Default::default() };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("`realtime.control_priority`: expected ") && e.ends_with("not 0"), "{e}");
        let c = RealtimeConfig { control_cpus: vec![4096], ..Default::default() };
        assert_eq!(c.validate().unwrap_err(), RealtimeConfigError::ControlCpu(4096));
    }

    #[test]
    fn realtime_section_parses_and_rejects_unknown_keys() {
        let c: RealtimeConfig =
            toml::from_str("control_priority = 90\ncontrol_cpus = [3]\nrequired = [\"preempt_rt\", \"sched_fifo\"]\n")
                .unwrap();
        assert_eq!(c.control_priority, 90);
        assert_eq!(c.inference_priority, 70);
        assert_eq!(c.required, vec![CheckItem::PreemptRt, CheckItem::SchedFifo]);
        assert!(toml::from_str::<RealtimeConfig>("control_prio = 1").is_err());
        assert!(toml::from_str::<RealtimeConfig>("required = [\"warp_drive\"]").is_err());
    }
}
