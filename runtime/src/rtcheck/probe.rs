//! The readiness check: probes this machine (on a throwaway thread, with
//! the same apply functions) and reads the kernel's and the board's
//! settings from `/sys` and `/proc`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::apply::{
    apply_thread_settings, timer_slack_now, unlock_memory, ApplyError, Outcome, ThreadRole, ThreadSettings,
};
use super::{RealtimeConfig, MAX_CPUS};

/// One item of the real-time readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckItem {
    /// SCHED_FIFO can be applied to the control and inference threads at
    /// their distinct priorities (probed on a throwaway thread).
    SchedFifo,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)` succeeds.
    Mlockall,
    /// The configured CPU lists can be applied as thread affinity.
    CpuAffinity,
    /// The control thread's CPUs are isolated (`/sys/devices/system/cpu/isolated`).
    IsolatedCores,
    /// Every CPU's frequency governor is `performance`.
    CpuGovernor,
    /// The kernel is PREEMPT_RT (`/sys/kernel/realtime`, `uname -v`).
    PreemptRt,
    /// Jetson only: the `nvpmodel` power mode is the expected one.
    JetsonPowerMode,
    /// Jetson only: CPU and GPU clocks are locked (`jetson_clocks`: min = max).
    JetsonClocks,
    /// The clock source is a fast, stable counter (tsc, arch_sys_counter).
    ClockSource,
    /// The real-time threads' timer slack can be set to `timer_slack_ns`.
    TimerSlack,
}

impl CheckItem {
    /// Every item, in report order.
    pub const ALL: [CheckItem; 10] = [
        CheckItem::SchedFifo,
        CheckItem::Mlockall,
        CheckItem::CpuAffinity,
        CheckItem::IsolatedCores,
        CheckItem::CpuGovernor,
        CheckItem::PreemptRt,
        CheckItem::JetsonPowerMode,
        CheckItem::JetsonClocks,
        CheckItem::ClockSource,
        CheckItem::TimerSlack,
    ];

    /// Stable snake_case name, as in the profile's `required` list and the JSON report.
    pub const fn name(self) -> &'static str {
        match self {
            CheckItem::SchedFifo => "sched_fifo",
            CheckItem::Mlockall => "mlockall",
            CheckItem::CpuAffinity => "cpu_affinity",
            CheckItem::IsolatedCores => "isolated_cores",
            CheckItem::CpuGovernor => "cpu_governor",
            CheckItem::PreemptRt => "preempt_rt",
            CheckItem::JetsonPowerMode => "jetson_power_mode",
            CheckItem::JetsonClocks => "jetson_clocks",
            CheckItem::ClockSource => "clock_source",
            CheckItem::TimerSlack => "timer_slack",
        }
    }
}

/// Verdict on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Ready.
    Pass,
    /// Not ready; the reason says why and what to do.
    Fail,
    /// Does not apply to this machine (e.g. Jetson items elsewhere) or was
    /// not configured. Does not satisfy a `required` item.
    NotApplicable,
}

impl Status {
    /// Upper-case label for the table.
    pub const fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NotApplicable => "N/A",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemReport {
    /// What was checked.
    pub item: CheckItem,
    /// The verdict.
    pub status: Status,
    /// Listed in the profile's `realtime.required`.
    pub required: bool,
    /// Why, in one sentence, with the values that were read.
    pub reason: String,
}

/// The whole readiness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `uname -v` of the running kernel.
    pub kernel: String,
    /// One entry per [`CheckItem`], in [`CheckItem::ALL`] order.
    pub items: Vec<ItemReport>,
}

impl Report {
    /// The entry for `item`.
    pub fn get(&self, item: CheckItem) -> Option<&ItemReport> {
        self.items.iter().find(|i| i.item == item)
    }

    /// Required items that did not pass; empty means `--strict` may arm.
    pub fn required_failures(&self) -> impl Iterator<Item = &ItemReport> {
        self.items.iter().filter(|i| i.required && i.status != Status::Pass)
    }

    /// `true` when every required item passed.
    pub fn strict_ok(&self) -> bool {
        self.required_failures().next().is_none()
    }
}

/// Checks this machine's real-time readiness for `config` (a profile's
/// `[realtime]`). Probes scheduling, affinity and timer slack on a
/// throwaway thread with [`apply_thread_settings`], tries [`lock_memory`]
/// and undoes it, and reads the rest from `/sys` and `/proc`. Never panics.
pub fn check(config: &RealtimeConfig) -> Report {
    check_at(config, Path::new("/"))
}

/// [`check`] with the file-system reads under `root` instead of `/`; the
/// probes still act on the calling process. For tests with a fake sysfs.
pub fn check_at(config: &RealtimeConfig, root: &Path) -> Report {
    let sys = SysRoot(root.to_path_buf());
    let probe = Probe::run(config);
    let mut items = Vec::with_capacity(CheckItem::ALL.len());
    for item in CheckItem::ALL {
        let (status, reason) = match item {
            CheckItem::SchedFifo => check_fifo(config, &probe, &sys),
            CheckItem::Mlockall => check_mlock(config),
            CheckItem::CpuAffinity => check_affinity(config, &probe),
            CheckItem::IsolatedCores => check_isolated(config, &sys),
            CheckItem::CpuGovernor => check_governor(&sys),
            CheckItem::PreemptRt => check_preempt_rt(&sys),
            CheckItem::JetsonPowerMode => check_power_mode(config, &sys),
            CheckItem::JetsonClocks => check_clocks(&sys),
            CheckItem::ClockSource => check_clocksource(&sys),
            CheckItem::TimerSlack => check_timer_slack(config, &probe),
        };
        items.push(ItemReport { item, status, required: config.required.contains(&item), reason });
    }
    Report { kernel: sys.read("proc/sys/kernel/version").unwrap_or_default(), items }
}

/// Files under a root directory (`/` in production).
struct SysRoot(PathBuf);

impl SysRoot {
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// The file's content, trimmed; `None` if unreadable.
    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path(rel)).ok().map(|s| s.trim().to_string())
    }

    /// Sorted entries of a directory whose names start with `prefix`.
    fn entries(&self, rel: &str, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// The kernel's `cpuN` directories (N a number).
    fn cpus(&self) -> Vec<String> {
        self.entries("sys/devices/system/cpu", "cpu")
            .into_iter()
            .filter(|n| n.len() > 3 && n[3..].bytes().all(|b| b.is_ascii_digit()))
            .collect()
    }
}

/// Results of applying both roles' settings on a throwaway thread.
struct Probe {
    control: Option<ThreadSettings>,
    inference: Option<ThreadSettings>,
    /// Timer slack read back after applying the control role.
    slack_after: u64,
}

impl Probe {
    fn run(config: &RealtimeConfig) -> Probe {
        // The probe needs the settings applied even when the profile disables
        // them: it answers "would they work here?".
        let forced = RealtimeConfig { enabled: true, ..config.clone() };
        let handle = std::thread::Builder::new().name("rt-probe".into()).spawn(move || {
            let control = apply_thread_settings(&forced, ThreadRole::Control);
            let slack_after = timer_slack_now();
            let inference = apply_thread_settings(&forced, ThreadRole::Inference);
            (control, inference, slack_after)
        });
        match handle.map(|h| h.join()) {
            Ok(Ok((c, i, s))) => Probe { control: Some(c), inference: Some(i), slack_after: s },
            _ => Probe { control: None, inference: None, slack_after: 0 },
        }
    }
}

fn privileges() -> String {
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    const CAP_IPC_LOCK: u64 = 1 << 14;
    const CAP_SYS_NICE: u64 = 1 << 23;
    let rtprio = rlimit(libc::RLIMIT_RTPRIO);
    let memlock = rlimit(libc::RLIMIT_MEMLOCK);
    format!(
        "uid {}, CAP_SYS_NICE {}, CAP_IPC_LOCK {}, RLIMIT_RTPRIO {}, RLIMIT_MEMLOCK {}",
        // SAFETY: geteuid has no arguments and cannot fail.
        unsafe { libc::geteuid() },
        if caps & CAP_SYS_NICE != 0 { "yes" } else { "no" },
        if caps & CAP_IPC_LOCK != 0 { "yes" } else { "no" },
        rtprio,
        memlock
    )
}

fn rlimit(resource: libc::__rlimit_resource_t) -> String {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid rlimit to write into.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return "unknown".into();
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        lim.rlim_cur.to_string()
    }
}

fn probe_failed() -> (Status, String) {
    (Status::Fail, "could not start a probe thread".into())
}

fn check_fifo(config: &RealtimeConfig, probe: &Probe, sys: &SysRoot) -> (Status, String) {
    if let Err(e) = config.validate() {
        return (Status::Fail, e.to_string());
    }
    let (Some(c), Some(i)) = (probe.control, probe.inference) else { return probe_failed() };
    let mut reason = format!(
        "control at {}: {}; inference at {}: {}; {}",
        config.control_priority,
        c.sched_fifo,
        config.inference_priority,
        i.sched_fifo,
        privileges()
    );
    if sys.read("proc/sys/kernel/sched_rt_runtime_us").as_deref().is_some_and(|v| v != "-1") {
        reason
            .push_str("; RT throttling on (kernel.sched_rt_runtime_us), a runaway RT thread cannot freeze the machine");
    }
    let ok = c.sched_fifo == Outcome::Applied && i.sched_fifo == Outcome::Applied;
    if !config.enabled {
        reason.push_str("; note: realtime.enabled = false, the runtime will not apply it");
    }
    (if ok { Status::Pass } else { Status::Fail }, reason)
}

fn check_mlock(config: &RealtimeConfig) -> (Status, String) {
    // Probe, then undo: check answers "would it work". MCL_ONFAULT asks the
    // same permission (CAP_IPC_LOCK / RLIMIT_MEMLOCK) without paging in every
    // mapping now, which for a test harness or qemu's 1 GiB code buffer
    // would cost real memory for nothing.
    // SAFETY: mlockall takes flags only.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) };
    let outcome = if rc == 0 { Outcome::Applied } else { Outcome::Failed(ApplyError::last_os()) };
    if outcome == Outcome::Applied {
        unlock_memory();
    }
    let mut reason = format!("mlockall(MCL_CURRENT|MCL_FUTURE) {outcome}; {}", privileges());
    if !config.enabled || !config.mlockall {
        reason.push_str("; note: the profile does not ask for it");
    }
    (if outcome == Outcome::Applied { Status::Pass } else { Status::Fail }, reason)
}

fn check_affinity(config: &RealtimeConfig, probe: &Probe) -> (Status, String) {
    if config.control_cpus.is_empty() && config.inference_cpus.is_empty() {
        return (Status::NotApplicable, "no CPU lists configured (realtime.control_cpus / inference_cpus)".into());
    }
    let (Some(c), Some(i)) = (probe.control, probe.inference) else { return probe_failed() };
    let reason = format!(
        "control on {:?}: {}; inference on {:?}: {}",
        config.control_cpus, c.affinity, config.inference_cpus, i.affinity
    );
    let shared: Vec<usize> =
        config.control_cpus.iter().copied().filter(|c| config.inference_cpus.contains(c)).collect();
    if !shared.is_empty() {
        return (Status::Fail, format!("{reason}; CPUs {shared:?} are shared by control and inference"));
    }
    (if c.affinity.ok() && i.affinity.ok() { Status::Pass } else { Status::Fail }, reason)
}

/// Parses a kernel CPU list like `2-3,5` (empty string: no CPUs).
fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b >= MAX_CPUS {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

fn check_isolated(config: &RealtimeConfig, sys: &SysRoot) -> (Status, String) {
    let Some(text) = sys.read("sys/devices/system/cpu/isolated") else {
        return (Status::NotApplicable, "/sys/devices/system/cpu/isolated not readable".into());
    };
    let Some(isolated) = parse_cpu_list(&text) else {
        return (Status::Fail, format!("cannot parse /sys/devices/system/cpu/isolated: {text:?}"));
    };
    if config.control_cpus.is_empty() {
        let status = Status::Fail;
        return (
            status,
            format!("isolated CPUs {isolated:?}; realtime.control_cpus is empty, so the control thread is not pinned to an isolated core"),
        );
    }
    let missing: Vec<usize> = config.control_cpus.iter().copied().filter(|c| !isolated.contains(c)).collect();
    if missing.is_empty() {
        (Status::Pass, format!("control CPUs {:?} are isolated (isolated: {isolated:?})", config.control_cpus))
    } else {
        (
            Status::Fail,
            format!(
                "control CPUs {missing:?} are not isolated (isolated: {isolated:?}); boot with isolcpus= / nohz_full="
            ),
        )
    }
}

fn check_governor(sys: &SysRoot) -> (Status, String) {
    let mut other = Vec::new();
    let mut seen = 0usize;
    for cpu in sys.cpus() {
        if let Some(g) = sys.read(&format!("sys/devices/system/cpu/{cpu}/cpufreq/scaling_governor")) {
            seen += 1;
            if g != "performance" {
                other.push(format!("{cpu}={g}"));
            }
        }
    }
    if seen == 0 {
        return (
            Status::NotApplicable,
            "no cpufreq scaling_governor in sysfs (fixed frequency, VM or container)".into(),
        );
    }
    if other.is_empty() {
        (Status::Pass, format!("all {seen} CPUs use the performance governor"))
    } else {
        (Status::Fail, format!("not performance: {}", other.join(", ")))
    }
}

fn check_preempt_rt(sys: &SysRoot) -> (Status, String) {
    let flag = sys.read("sys/kernel/realtime");
    let version = sys.read("proc/sys/kernel/version").unwrap_or_default();
    let uname_rt =
        version.split(|c: char| c.is_whitespace()).any(|w| w == "PREEMPT_RT") || version.contains("PREEMPT RT");
    let flag_text = match &flag {
        Some(v) => format!("/sys/kernel/realtime = {v}"),
        None => "/sys/kernel/realtime absent".into(),
    };
    if flag.as_deref() == Some("1") || uname_rt {
        (Status::Pass, format!("PREEMPT_RT kernel ({flag_text}; uname -v: {version})"))
    } else {
        (Status::Fail, format!("not a PREEMPT_RT kernel ({flag_text}; uname -v: {version})"))
    }
}

/// A Jetson is recognised by its L4T release file or the Tegra SoC family.
fn jetson(sys: &SysRoot) -> Option<String> {
    if let Some(release) = sys.read("etc/nv_tegra_release") {
        return Some(release.lines().next().unwrap_or_default().to_string());
    }
    sys.read("sys/devices/soc0/family").filter(|f| f.to_ascii_lowercase().contains("tegra"))
}

fn not_jetson() -> (Status, String) {
    (Status::NotApplicable, "not a Jetson (no /etc/nv_tegra_release, soc0 family is not Tegra)".into())
}

fn check_power_mode(config: &RealtimeConfig, sys: &SysRoot) -> (Status, String) {
    if jetson(sys).is_none() {
        return not_jetson();
    }
    // nvpmodel keeps the active mode as e.g. "pmode:0000 fmode:quiet".
    let Some(status) = sys.read("var/lib/nvpmodel/status") else {
        return (Status::Fail, "Jetson, but /var/lib/nvpmodel/status is missing: run `sudo nvpmodel -m 0`".into());
    };
    let mode = status.split_whitespace().find_map(|w| w.strip_prefix("pmode:")).and_then(|m| m.parse::<u32>().ok());
    match (mode, config.jetson_power_mode) {
        (None, _) => (Status::Fail, format!("cannot parse /var/lib/nvpmodel/status: {status:?}")),
        (Some(m), None) => (Status::Pass, format!("power mode {m} (realtime.jetson_power_mode not set, any accepted)")),
        (Some(m), Some(want)) if m == want => (Status::Pass, format!("power mode {m} as configured")),
        (Some(m), Some(want)) => (
            Status::Fail,
            format!("power mode {m}, realtime.jetson_power_mode expects {want}: sudo nvpmodel -m {want}"),
        ),
    }
}

fn check_clocks(sys: &SysRoot) -> (Status, String) {
    if jetson(sys).is_none() {
        return not_jetson();
    }
    let mut unlocked = Vec::new();
    let mut checked = 0usize;
    for cpu in sys.cpus() {
        let base = format!("sys/devices/system/cpu/{cpu}/cpufreq");
        if let (Some(min), Some(max)) =
            (sys.read(&format!("{base}/scaling_min_freq")), sys.read(&format!("{base}/scaling_max_freq")))
        {
            checked += 1;
            if min != max {
                unlocked.push(format!("{cpu} {min}-{max} kHz"));
            }
        }
    }
    // The GPU is a devfreq device named after the SoC's GPU (ga10b on Orin, gv11b on Xavier).
    for dev in sys.entries("sys/class/devfreq", "") {
        if !(dev.contains("gpu") || dev.contains("ga10b") || dev.contains("gv11b") || dev.contains("gb10b")) {
            continue;
        }
        let base = format!("sys/class/devfreq/{dev}");
        if let (Some(min), Some(max)) = (sys.read(&format!("{base}/min_freq")), sys.read(&format!("{base}/max_freq"))) {
            checked += 1;
            if min != max {
                unlocked.push(format!("GPU {dev} {min}-{max} Hz"));
            }
        }
    }
    if checked == 0 {
        return (Status::Fail, "Jetson, but no CPU or GPU frequency limits readable in sysfs".into());
    }
    if unlocked.is_empty() {
        (Status::Pass, format!("{checked} clock domains locked (min = max)"))
    } else {
        (Status::Fail, format!("clocks not locked, run `sudo jetson_clocks`: {}", unlocked.join(", ")))
    }
}

fn check_clocksource(sys: &SysRoot) -> (Status, String) {
    let Some(cs) = sys.read("sys/devices/system/clocksource/clocksource0/current_clocksource") else {
        return (Status::NotApplicable, "current_clocksource not readable".into());
    };
    // tsc / arch_sys_counter are read in user space through the vDSO; kvm-clock
    // too (pvclock). hpet, acpi_pm and jiffies cost a syscall or are coarse.
    match cs.as_str() {
        "tsc" | "arch_sys_counter" | "kvm-clock" => (Status::Pass, format!("{cs} (read through the vDSO)")),
        _ => {
            let available =
                sys.read("sys/devices/system/clocksource/clocksource0/available_clocksource").unwrap_or_default();
            (Status::Fail, format!("{cs} is slow or coarse for clock reads (available: {available})"))
        }
    }
}

fn check_timer_slack(config: &RealtimeConfig, probe: &Probe) -> (Status, String) {
    let Some(c) = probe.control else { return probe_failed() };
    // Since Linux 6.7 a SCHED_FIFO thread reads back 0: the kernel gives RT
    // threads no slack at all, which is at least as good as asked.
    let ok = c.timer_slack == Outcome::Applied && probe.slack_after <= config.timer_slack_ns;
    (
        if ok { Status::Pass } else { Status::Fail },
        format!("set {} ns: {}, effective {} ns", config.timer_slack_ns, c.timer_slack, probe.slack_after),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn status_of(report: &Report, item: CheckItem) -> Status {
        report.get(item).unwrap().status
    }

    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("1-3,6"), Some(vec![1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn fake_jetson_tree_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "etc/nv_tegra_release", "# R36 (release), REVISION: 4.0\n");
        write(r, "var/lib/nvpmodel/status", "pmode:0002 fmode:quiet\n");
        for cpu in ["cpu0", "cpu1"] {
            write(r, &format!("sys/devices/system/cpu/{cpu}/cpufreq/scaling_governor"), "performance\n");
            write(r, &format!("sys/devices/system/cpu/{cpu}/cpufreq/scaling_min_freq"), "2201600\n");
            write(r, &format!("sys/devices/system/cpu/{cpu}/cpufreq/scaling_max_freq"), "2201600\n");
        }
        write(r, "sys/class/devfreq/17000000.ga10b/min_freq", "306000000\n");
        write(r, "sys/class/devfreq/17000000.ga10b/max_freq", "1300500000\n");
        write(r, "sys/devices/system/cpu/isolated", "1\n");
        write(r, "sys/kernel/realtime", "1\n");
        write(r, "proc/sys/kernel/version", "#1 SMP PREEMPT_RT Tue Jan 1 00:00:00 UTC 2026\n");
        write(r, "sys/devices/system/clocksource/clocksource0/current_clocksource", "arch_sys_counter\n");

        let config = RealtimeConfig { control_cpus: vec![1], jetson_power_mode: Some(0), ..Default::default() };
        let report = check_at(&config, r);
        assert_eq!(status_of(&report, CheckItem::CpuGovernor), Status::Pass);
        assert_eq!(status_of(&report, CheckItem::PreemptRt), Status::Pass);
        assert_eq!(status_of(&report, CheckItem::IsolatedCores), Status::Pass);
        assert_eq!(status_of(&report, CheckItem::ClockSource), Status::Pass);
        let pm = report.get(CheckItem::JetsonPowerMode).unwrap();
        assert_eq!(pm.status, Status::Fail);
        assert!(pm.reason.contains("power mode 2"), "{}", pm.reason);
        let clocks = report.get(CheckItem::JetsonClocks).unwrap();
        assert_eq!(clocks.status, Status::Fail);
        assert!(clocks.reason.contains("ga10b"), "{}", clocks.reason);

        write(r, "var/lib/nvpmodel/status", "pmode:0000 fmode:quiet\n");
        write(r, "sys/class/devfreq/17000000.ga10b/min_freq", "1300500000\n");
        write(r, "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "schedutil\n");
        let report = check_at(&config, r);
        assert_eq!(status_of(&report, CheckItem::JetsonPowerMode), Status::Pass);
        assert_eq!(status_of(&report, CheckItem::JetsonClocks), Status::Pass);
        let gov = report.get(CheckItem::CpuGovernor).unwrap();
        assert_eq!(gov.status, Status::Fail);
        assert!(gov.reason.contains("cpu1=schedutil"));
    }

    #[test]
    fn non_jetson_non_rt_tree_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "proc/sys/kernel/version", "#1 SMP PREEMPT_DYNAMIC Debian\n");
        write(r, "sys/devices/system/clocksource/clocksource0/current_clocksource", "hpet\n");
        write(r, "sys/devices/system/cpu/isolated", "\n");
        let report = check_at(&RealtimeConfig { control_cpus: vec![0], ..Default::default() }, r);
        assert_eq!(status_of(&report, CheckItem::PreemptRt), Status::Fail);
        assert_eq!(status_of(&report, CheckItem::JetsonPowerMode), Status::NotApplicable);
        assert_eq!(status_of(&report, CheckItem::JetsonClocks), Status::NotApplicable);
        assert_eq!(status_of(&report, CheckItem::CpuGovernor), Status::NotApplicable);
        assert_eq!(status_of(&report, CheckItem::ClockSource), Status::Fail);
        assert_eq!(status_of(&report, CheckItem::IsolatedCores), Status::Fail);
        assert_eq!(report.items.len(), CheckItem::ALL.len());
    }

    #[test]
    fn strict_needs_every_required_item_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        let config = RealtimeConfig { required: vec![CheckItem::JetsonClocks], ..Default::default() };
        let report = check_at(&config, dir.path());
        assert_eq!(status_of(&report, CheckItem::JetsonClocks), Status::NotApplicable);
        assert!(!report.strict_ok());
        assert_eq!(report.required_failures().map(|i| i.item).collect::<Vec<_>>(), vec![CheckItem::JetsonClocks]);
        let report = check_at(&RealtimeConfig { required: vec![], ..Default::default() }, dir.path());
        assert!(report.strict_ok());
    }
}
