//! Reads what both sides logged and turns it into metrics and checks.
//!
//! Every time is `CLOCK_MONOTONIC` ns of this machine (plant log and
//! Ganglion's event log share it); wall stamps (command headers) are only
//! used to pair a command with its heartbeat (same stamp) and, for the
//! baseline, a command with the observation it came from.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use ganglion_core::stats::Percentiles;
use serde_json::Value;

use crate::runner::{Controller, RunFiles};
use crate::scenario::Scenario;

/// A command as the plant received it.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// Receive time, ns.
    pub rx_mono: u64,
    /// Receive time, wall ns.
    pub rx_wall: u64,
    /// Header stamp (wall ns of publication).
    pub stamp: Option<u64>,
    /// Positions (`None` = non-finite).
    pub pos: Vec<Option<f64>>,
    /// Velocities.
    pub vel: Vec<Option<f64>>,
    /// Failed to decode.
    pub bad: bool,
}

/// A true arm state sample.
#[derive(Debug, Clone)]
pub struct State {
    /// When, ns.
    pub mono: u64,
    /// Joint velocities.
    pub vel: Vec<Option<f64>>,
}

/// The plant log.
#[derive(Debug, Default)]
pub struct PlantLog {
    /// Commands, in arrival order.
    pub cmds: Vec<Cmd>,
    /// Heartbeat stamp → mode.
    pub hb_mode: HashMap<u64, String>,
    /// Arm states.
    pub states: Vec<State>,
    /// Frames published: (mono, header wall stamp).
    pub cams: Vec<(u64, i64)>,
    /// Fault edges: (kind, is_end, mono).
    pub faults: Vec<(String, bool, u64)>,
    /// Command-timeout brakes, mono.
    pub brakes: Vec<u64>,
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

fn floats(v: &Value, k: &str) -> Vec<Option<f64>> {
    v.get(k).and_then(Value::as_array).map(|a| a.iter().map(Value::as_f64).collect()).unwrap_or_default()
}

fn lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // A killed process may leave a torn last line: skip what does not parse.
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

impl PlantLog {
    /// Reads `plant.jsonl`.
    pub fn read(path: &Path) -> anyhow::Result<PlantLog> {
        let mut p = PlantLog::default();
        for v in lines(path)? {
            match v.get("t").and_then(Value::as_str) {
                Some("cmd") => p.cmds.push(Cmd {
                    rx_mono: u(&v, "rx_mono_ns").unwrap_or(0),
                    rx_wall: u(&v, "rx_wall_ns").unwrap_or(0),
                    stamp: u(&v, "stamp_ns"),
                    pos: floats(&v, "pos"),
                    vel: floats(&v, "vel"),
                    bad: v.get("bad").and_then(Value::as_bool).unwrap_or(false),
                }),
                Some("hb") => {
                    if let (Some(s), Some(m)) = (u(&v, "stamp_ns"), v.get("mode").and_then(Value::as_str)) {
                        p.hb_mode.insert(s, m.to_string());
                    }
                }
                Some("state") => {
                    p.states.push(State { mono: u(&v, "mono_ns").unwrap_or(0), vel: floats(&v, "vel") });
                }
                Some("cam") => {
                    p.cams.push((u(&v, "mono_ns").unwrap_or(0), v.get("stamp_ns").and_then(Value::as_i64).unwrap_or(0)))
                }
                Some("fault") => p.faults.push((
                    v.get("kind").and_then(Value::as_str).unwrap_or("?").to_string(),
                    v.get("edge").and_then(Value::as_str) == Some("end"),
                    u(&v, "mono_ns").unwrap_or(0),
                )),
                Some("brake") => p.brakes.push(u(&v, "mono_ns").unwrap_or(0)),
                _ => {}
            }
        }
        Ok(p)
    }

    /// The mode Ganglion's heartbeat gave for this command (same stamp).
    pub fn mode_of(&self, c: &Cmd) -> Option<&str> {
        c.stamp.and_then(|s| self.hb_mode.get(&s)).map(String::as_str)
    }

    /// First fault start, mono.
    pub fn first_fault_start(&self) -> Option<u64> {
        self.faults.iter().filter(|f| !f.1).map(|f| f.2).min()
    }

    /// Last fault end, mono.
    pub fn last_fault_end(&self) -> Option<u64> {
        self.faults.iter().filter(|f| f.1).map(|f| f.2).max()
    }
}

/// A mode change from Ganglion's event log.
#[derive(Debug, Clone)]
pub struct ModeEvent {
    /// Tick's scheduled start, ns.
    pub stamp: u64,
    /// Mode name.
    pub mode: String,
    /// Cause names.
    pub causes: Vec<String>,
}

/// One inference request (Ganglion) or one tick (baseline).
#[derive(Debug, Clone)]
pub struct Infer {
    /// Joint-state capture the request used, ns (Ganglion: mono; baseline: wall).
    pub obs_stamp: u64,
    /// End of the request (Ganglion, mono) / command header stamp (baseline, wall).
    pub end: u64,
}

/// Ganglion's `--events` file, or the baseline's log.
#[derive(Debug, Default)]
pub struct ControllerLog {
    /// Mode changes (Ganglion).
    pub modes: Vec<ModeEvent>,
    /// Requests / ticks.
    pub infers: Vec<Infer>,
    /// Baseline tick lateness (start − scheduled), ns.
    pub tick_late_ns: Vec<u64>,
    /// Events the controller could not log.
    pub lost: u64,
    /// When the first `--inject` fault acted (Ganglion, mono ns).
    pub inject_at: Option<u64>,
}

impl ControllerLog {
    /// Reads `events.jsonl` or `baseline.jsonl` (missing file: empty log).
    pub fn read(path: &Path) -> anyhow::Result<ControllerLog> {
        let mut c = ControllerLog::default();
        if !path.exists() {
            return Ok(c);
        }
        for v in lines(path)? {
            match v.get("t").and_then(Value::as_str) {
                Some("mode") => c.modes.push(ModeEvent {
                    stamp: u(&v, "stamp_ns").unwrap_or(0),
                    mode: v.get("mode").and_then(Value::as_str).unwrap_or("?").to_string(),
                    causes: v
                        .get("causes")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                        .unwrap_or_default(),
                }),
                Some("infer") if v.get("ok").and_then(Value::as_bool) == Some(true) => c
                    .infers
                    .push(Infer { obs_stamp: u(&v, "obs_stamp_ns").unwrap_or(0), end: u(&v, "end_ns").unwrap_or(0) }),
                Some("tick") => {
                    if let (Some(o), Some(s)) = (u(&v, "obs_stamp_ns"), u(&v, "cmd_stamp_ns")) {
                        c.infers.push(Infer { obs_stamp: o, end: s });
                    }
                    c.tick_late_ns.push(u(&v, "late_ns").unwrap_or(0));
                }
                Some("lost") => c.lost = u(&v, "mode_events").unwrap_or(0) + u(&v, "infer_events").unwrap_or(0),
                _ => {}
            }
        }
        Ok(c)
    }
}

/// Percentiles (nearest rank, `ganglion_core::stats`) of `v`; zeros when empty.
pub fn pctl(v: &[f64]) -> Percentiles {
    Percentiles::of(&mut v.to_vec())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Joint limits from the profile.
#[derive(Debug, Clone)]
pub struct Limits {
    /// (min, max, velocity) per joint.
    pub joints: Vec<(f64, f64, f64)>,
}

impl Limits {
    /// From the written profile.
    pub fn from_profile(path: &Path) -> anyhow::Result<Limits> {
        let t: toml::Table = toml::from_str(&std::fs::read_to_string(path)?)?;
        let joints = t
            .get("robot")
            .and_then(|r| r.get("joints"))
            .and_then(|j| j.as_array())
            .context("profile: robot.joints missing")?
            .iter()
            .map(|j| {
                let l = j.get("limit").context("profile: robot.joints[].limit missing")?;
                let f = |k: &str| {
                    l.get(k)
                        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                        .with_context(|| format!("profile: robot.joints[].limit.{k} missing"))
                };
                Ok((f("position_min")?, f("position_max")?, f("velocity")?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Limits { joints })
    }

    /// Whether `c` is finite and inside every position and velocity limit.
    pub fn ok(&self, c: &Cmd) -> bool {
        const EPS: f64 = 1e-9;
        c.pos.len() == self.joints.len()
            && c.pos.iter().zip(&self.joints).all(|(p, l)| p.is_some_and(|p| p >= l.0 - EPS && p <= l.1 + EPS))
            && c.vel.iter().zip(&self.joints).all(|(v, l)| v.is_some_and(|v| v.abs() <= l.2 + EPS))
    }
}

/// What one controller did in one run, measured on the plant side (and
/// from the controller's own report where noted).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Metrics {
    /// Commands the plant received (decoded).
    pub commands: u64,
    /// Commands that failed to decode at the plant.
    pub bad_commands: u64,
    /// The task succeeded (tip within 3 cm of the target at the end).
    pub success: Option<bool>,
    /// Final tip error, cm.
    pub final_error_cm: Option<f64>,
    /// Command inter-arrival at the plant, ms.
    pub command_gap_ms: Percentiles,
    /// |inter-arrival − period| at the plant, ms.
    pub command_jitter_ms: Percentiles,
    /// Periods without a command (Σ over gaps of round(gap/period) − 1).
    pub missed_periods: u64,
    /// The controller's own tick jitter (start − scheduled), µs.
    pub loop_jitter_us: Option<Percentiles>,
    /// Ticks without a policy action (Ganglion report; baseline: ticks
    /// that started a full period late or more).
    pub starved_ticks: Option<u64>,
    /// Joint-state capture → command received at the plant, ms.
    pub latency_ms: Option<Percentiles>,
    /// Commands outside the position / velocity limits or non-finite.
    pub limit_violations: u64,
    /// Commands with a non-finite value.
    pub nonfinite_commands: u64,
    /// Ticks in fallback (Ganglion report).
    pub fallback_ticks: Option<u64>,
    /// Controller exit: `ok`, `exit N`, `killed by rig`, `timeout`.
    pub exit: String,
    /// The plant's command timeout fired (brakes).
    pub plant_brakes: u64,
    /// Raw samples for the plots.
    #[serde(skip)]
    pub samples: Samples,
}

/// Raw samples behind [`Metrics`], for the plots.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Latencies, ms.
    pub latency_ms: Vec<f64>,
    /// (seconds since the first command, inter-arrival ms).
    pub gaps: Vec<(f64, f64)>,
    /// (seconds since the first command, mode level 0..=4) at each change.
    pub modes: Vec<(f64, u8)>,
    /// Fault windows, seconds since the first command (end = None: open).
    pub faults: Vec<(String, f64, Option<f64>)>,
    /// Seconds of the run (last command).
    pub span_s: f64,
}

/// One expectation with its measured value.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was measured.
    pub measured: String,
    /// What was required.
    pub expected: String,
}

fn check(name: &str, passed: bool, measured: impl ToString, expected: impl ToString) -> Check {
    Check { name: name.into(), passed, measured: measured.to_string(), expected: expected.to_string() }
}

/// Everything one run produced, parsed.
#[derive(Debug)]
pub struct Parsed {
    /// Plant log.
    pub plant: PlantLog,
    /// Plant report.
    pub plant_report: Value,
    /// Controller report (`Null` when missing).
    pub report: Value,
    /// Controller log.
    pub log: ControllerLog,
    /// Limits.
    pub limits: Limits,
}

/// Reads a run's files.
pub fn parse(files: &RunFiles) -> anyhow::Result<Parsed> {
    let plant = if files.plant_log.exists() { PlantLog::read(&files.plant_log)? } else { PlantLog::default() };
    let json = |p: &Path| -> Value {
        std::fs::read_to_string(p).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
    };
    Ok(Parsed {
        plant,
        plant_report: json(&files.plant_report),
        report: json(&files.controller_report),
        log: ControllerLog::read(&files.controller_log)?,
        limits: Limits::from_profile(&files.profile)?,
    })
}

fn exit_text(files: &RunFiles) -> String {
    if files.killed {
        return "killed by rig".into();
    }
    match files.controller_status {
        None => "timeout".into(),
        Some(s) if s.success() => "ok".into(),
        Some(s) => match s.code() {
            Some(c) => format!("exit {c}"),
            None => "killed by signal".into(),
        },
    }
}

/// Metrics of one run.
pub fn metrics(ctl: Controller, files: &RunFiles, p: &Parsed) -> Metrics {
    let period = files.period_ns as f64;
    let good: Vec<&Cmd> = p.plant.cmds.iter().filter(|c| !c.bad).collect();
    let gaps: Vec<f64> = good.windows(2).map(|w| w[1].rx_mono.saturating_sub(w[0].rx_mono) as f64).collect();
    let missed = gaps.iter().map(|g| ((g / period).round() as u64).saturating_sub(1)).sum();
    let t0 = good.first().map_or(0, |c| c.rx_mono);
    let secs = |t: u64| (t as f64 - t0 as f64) / 1e9;
    let mut samples = Samples {
        gaps: good
            .windows(2)
            .map(|w| (secs(w[1].rx_mono), w[1].rx_mono.saturating_sub(w[0].rx_mono) as f64 / 1e6))
            .collect(),
        modes: p.log.modes.iter().map(|ev| (secs(ev.stamp), mode_level(&ev.mode))).collect(),
        span_s: good.last().map_or(0.0, |c| secs(c.rx_mono)),
        ..Samples::default()
    };
    for (kind, end, at) in &p.plant.faults {
        if *end {
            if let Some(f) = samples.faults.iter_mut().rev().find(|f| &f.0 == kind && f.2.is_none()) {
                f.2 = Some(secs(*at));
            }
        } else {
            samples.faults.push((kind.clone(), secs(*at), None));
        }
    }
    let mut m = Metrics {
        commands: good.len() as u64,
        bad_commands: (p.plant.cmds.len() - good.len()) as u64,
        success: p.plant_report.get("success").and_then(Value::as_bool),
        final_error_cm: p.plant_report.get("tip_error_m").and_then(Value::as_f64).map(|e| round3(e * 100.0)),
        command_gap_ms: pctl(&gaps.iter().map(|g| g / 1e6).collect::<Vec<_>>()).rounded(),
        command_jitter_ms: pctl(&gaps.iter().map(|g| (g - period).abs() / 1e6).collect::<Vec<_>>()).rounded(),
        missed_periods: missed,
        limit_violations: good.iter().filter(|c| !p.limits.ok(c)).count() as u64,
        nonfinite_commands: good.iter().filter(|c| c.pos.iter().chain(&c.vel).any(Option::is_none)).count() as u64,
        exit: exit_text(files),
        // Brakes while commands were still expected (the one after the
        // controller's normal end is how every run finishes).
        plant_brakes: p.plant.brakes.iter().filter(|b| good.last().is_some_and(|c| c.rx_mono > **b)).count() as u64
            + u64::from(files.killed && !p.plant.brakes.is_empty()),
        ..Metrics::default()
    };
    let r = &p.report;
    let pc = |v: &Value| -> Option<Percentiles> {
        Some(Percentiles { p50: v.get("p50")?.as_f64()?, p99: v.get("p99")?.as_f64()?, max: v.get("max")?.as_f64()? })
    };
    match ctl {
        Controller::Ganglion => {
            m.loop_jitter_us = r.get("jitter_us").and_then(pc);
            m.starved_ticks = r.get("starved_ticks").and_then(Value::as_u64);
            m.fallback_ticks = r.get("fallback_ticks").and_then(Value::as_u64);
            // Observation → command: for each finished request, the first
            // command published after it ended (the first tick that could
            // use its chunk), received at the plant, minus the joint-state
            // capture it was computed from. Publication time on the mono
            // clock = header wall stamp − (rx wall − rx mono) at the plant.
            let mut lat = Vec::new();
            let pubs: Vec<(u64, u64)> = good
                .iter()
                .filter_map(|c| {
                    let off = c.rx_wall as i128 - c.rx_mono as i128;
                    c.stamp.map(|s| ((s as i128 - off).max(0) as u64, c.rx_mono))
                })
                .collect();
            for inf in &p.log.infers {
                let i = pubs.partition_point(|(pub_mono, _)| *pub_mono < inf.end);
                if let Some((_, rx)) = pubs.get(i) {
                    if *rx > inf.obs_stamp && rx - inf.obs_stamp < 5_000_000_000 {
                        lat.push((rx - inf.obs_stamp) as f64 / 1e6);
                    }
                }
            }
            m.latency_ms = (!lat.is_empty()).then(|| pctl(&lat).rounded());
            samples.latency_ms = lat;
        }
        Controller::Baseline => {
            m.loop_jitter_us = r.get("jitter_us").and_then(pc);
            m.starved_ticks = r.get("late_ticks").and_then(Value::as_u64);
            // The baseline computes each command from one fresh observation
            // and stamps the command header with its publication time: pair
            // by stamp, latency = plant receive (wall) − joint-state header.
            let rx: HashMap<u64, u64> = good.iter().filter_map(|c| c.stamp.map(|s| (s, c.rx_wall))).collect();
            let lat: Vec<f64> = p
                .log
                .infers
                .iter()
                .filter_map(|i| rx.get(&i.end).filter(|r| **r > i.obs_stamp).map(|r| (r - i.obs_stamp) as f64 / 1e6))
                .filter(|l| *l < 5000.0)
                .collect();
            m.latency_ms = (!lat.is_empty()).then(|| pctl(&lat).rounded());
            samples.latency_ms = lat;
        }
    }
    m.samples = samples;
    m
}

/// Mode as a level for the timeline plot.
pub fn mode_level(mode: &str) -> u8 {
    match mode {
        "startup" => 0,
        "nominal" => 1,
        "degraded" => 2,
        "fallback" => 3,
        "safe_stop" => 4,
        _ => 0,
    }
}

/// Causes of fallback entries in `[from, to)`.
fn causes_between(modes: &[ModeEvent], from: u64, to: u64) -> Vec<String> {
    let mut c: Vec<String> = modes
        .iter()
        .filter(|ev| ev.stamp >= from && ev.stamp < to && is_fallback(&ev.mode))
        .flat_map(|ev| ev.causes.iter().cloned())
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

fn is_fallback(mode: &str) -> bool {
    matches!(mode, "fallback" | "safe_stop")
}

/// Why this Ganglion run cannot judge the scenario's reaction, if so: in
/// its first fallback after the fault's onset (the stretch until it leaves
/// fallback) the loop reported its own tick late (`tick_overrun`, a cause no
/// scenario injects; a stall long enough also ages the inputs, so stale
/// causes may come with it). On a kernel without preemption (CI's VMs:
/// PREEMPT_NONE) any process in a long system call holds a SCHED_FIFO
/// control thread off its CPU for 10+ ms. Such a stall hides faults seen
/// only while the policy drives (a late inference starves nothing while the
/// fallback holds) or delays the fallback command past one period. The rig
/// runs such a failed episode once more ([`crate::report::run_scenario`]);
/// the second run is judged as usual, so a fault the loop mishandles fails.
pub fn stalled_before_reaction(sc: &Scenario, p: &Parsed) -> Option<String> {
    let e = &sc.expect;
    if !e.fallback || e.causes_any.iter().any(|c| c == "tick_overrun") {
        return None;
    }
    let live = p.log.modes.iter().find(|ev| ev.mode == "nominal").map(|ev| ev.stamp)?;
    let onset = [p.plant.first_fault_start(), p.log.inject_at].into_iter().flatten().min();
    let from = onset.unwrap_or(live).max(live);
    let start = p.log.modes.iter().position(|ev| ev.stamp >= from && is_fallback(&ev.mode))?;
    let stretch = p.log.modes[start..].iter().take_while(|ev| is_fallback(&ev.mode));
    let mut causes: Vec<&str> = stretch.flat_map(|ev| ev.causes.iter().map(String::as_str)).collect();
    causes.sort_unstable();
    causes.dedup();
    causes.contains(&"tick_overrun").then(|| {
        let at = onset.map_or(String::new(), |o| {
            format!(" {:.0} ms after the onset", (p.log.modes[start].stamp as f64 - o as f64) / 1e6)
        });
        format!("first fallback after the onset for [{}]{at}", causes.join(", "))
    })
}

/// Ganglion's expectations for one run.
pub fn checks(sc: &Scenario, files: &RunFiles, p: &Parsed, m: &Metrics) -> Vec<Check> {
    let mut out = Vec::new();
    let e = &sc.expect;
    let period_ms = files.period_ns as f64 / 1e6;
    if let Some(text) = &e.refuse_start {
        let stderr = std::fs::read_to_string(&files.controller_stderr).unwrap_or_default();
        let refused = files.controller_status.is_some_and(|s| !s.success());
        let line = stderr.lines().rev().find(|l| l.to_lowercase().contains("error")).unwrap_or("").trim().to_string();
        out.push(check("refuses to start", refused, &m.exit, "non-zero exit"));
        out.push(check(
            "clear error",
            stderr.to_lowercase().contains(&text.to_lowercase()),
            if line.is_empty() { "(no error line)".to_string() } else { line },
            format!("stderr mentions {text:?}"),
        ));
        out.push(check("no command sent", m.commands == 0, m.commands, 0));
        return out;
    }
    let crashed = !files.killed && m.exit != "ok";
    out.push(check("no crash", !crashed, &m.exit, "ok"));
    out.push(check(
        "commands within limits",
        m.limit_violations == 0,
        m.limit_violations,
        "0 outside limits / non-finite",
    ));
    // The loop is live from its first nominal tick; what happens before is start-up.
    let live = p.log.modes.iter().find(|ev| ev.mode == "nominal").map(|ev| ev.stamp);
    // A SIGKILLed run leaves no event log: its checks are the plant's.
    if !files.killed {
        out.push(check("loop went nominal", live.is_some(), live.map_or("never", |_| "yes"), "yes"));
    }
    let live = live.unwrap_or(u64::MAX);
    // The fault's onset: the plant's first fault window or the first
    // injected inference, whichever came first; the loop's reaction to it is
    // the first fallback from then on. Fallbacks between going nominal and
    // the onset are reported, not taken for the reaction.
    let onset = [p.plant.first_fault_start(), p.log.inject_at].into_iter().flatten().min();
    let from = onset.unwrap_or(live).max(live);
    // The reaction to the fault: the first fallback tick from the onset on
    // that carries an expected cause. Fallbacks for other causes in between
    // (a real stale input on a loaded machine, lateness seen before the
    // worker's death is) are reported, not taken for the reaction.
    let expected = |ev: &&ModeEvent| e.causes_any.is_empty() || ev.causes.iter().any(|c| e.causes_any.contains(c));
    let first_any = p.log.modes.iter().find(|ev| ev.stamp >= from && is_fallback(&ev.mode));
    let first_fb = p.log.modes.iter().filter(|ev| ev.stamp >= from && is_fallback(&ev.mode)).find(expected);
    let early = p.log.modes.iter().filter(|ev| ev.stamp >= live && ev.stamp < from && is_fallback(&ev.mode)).count();
    if early > 0 {
        out.push(check(
            "fallbacks before the fault (information)",
            true,
            format!("{early}: [{}]", causes_between(&p.log.modes, live, from).join(", ")),
            "reported",
        ));
    }
    if e.fallback {
        match first_fb {
            None => {
                let measured = match first_any {
                    Some(f) => format!("fallback only for [{}]", f.causes.join(", ")),
                    None => "no fallback".into(),
                };
                out.push(check("fallback engaged", first_any.is_some(), measured, "fallback"));
                out.push(check(
                    "cause code",
                    false,
                    first_any.map_or("none".into(), |_| causes_between(&p.log.modes, from, u64::MAX).join(", ")),
                    format!("one of [{}]", e.causes_any.join(", ")),
                ));
            }
            Some(fb) => {
                let detect = onset.map_or(String::new(), |o| {
                    format!(" ({:.1} ms after the fault started)", (fb.stamp as f64 - o as f64) / 1e6)
                });
                out.push(check("fallback engaged", true, format!("{}{detect}", fb.mode), "fallback"));
                out.push(check(
                    "cause code",
                    true,
                    format!("[{}]", fb.causes.join(", ")),
                    format!("one of [{}]", e.causes_any.join(", ")),
                ));
                if first_any.is_some_and(|f| f.stamp < fb.stamp) {
                    out.push(check(
                        "other fallbacks after the onset, before this one (information)",
                        true,
                        format!("[{}]", causes_between(&p.log.modes, from, fb.stamp).join(", ")),
                        "reported",
                    ));
                }
                // Measured on the plant: the first command whose heartbeat says
                // fallback, received at or after the detecting tick's start.
                let first_cmd =
                    p.plant.cmds.iter().find(|c| c.rx_mono >= fb.stamp && p.plant.mode_of(c).is_some_and(is_fallback));
                match first_cmd {
                    Some(c) => {
                        let dt = (c.rx_mono - fb.stamp) as f64 / 1e6;
                        out.push(check(
                            "first fallback command within one period",
                            dt <= period_ms,
                            format!("{dt:.3} ms"),
                            format!("<= {period_ms} ms"),
                        ));
                    }
                    None => out.push(check(
                        "first fallback command within one period",
                        false,
                        "no fallback command reached the plant",
                        format!("<= {period_ms} ms"),
                    )),
                }
                if let Some(dir) = &files.record_dir {
                    let n = std::fs::read_dir(dir)
                        .map(|d| {
                            d.filter_map(Result::ok)
                                .filter(|f| f.path().extension().is_some_and(|x| x == "mcap"))
                                .count()
                        })
                        .unwrap_or(0);
                    let triggers = p
                        .log
                        .modes
                        .windows(2)
                        .filter(|w| w[1].stamp >= live && is_fallback(&w[1].mode) && !is_fallback(&w[0].mode))
                        .count();
                    out.push(check(
                        "flight recording left behind",
                        n >= 1,
                        format!("{n} file(s) for {triggers} trigger(s)"),
                        ">= 1 .mcap",
                    ));
                }
            }
        }
    }
    if e.no_fallback {
        let n = p.log.modes.iter().filter(|ev| ev.stamp >= live && is_fallback(&ev.mode)).count();
        out.push(check("no fallback", n == 0, format!("{n} fallback entries"), "0"));
    }
    if e.recover || e.latch {
        let after = first_fb.map(|f| f.stamp).unwrap_or(u64::MAX);
        let back = p.log.modes.iter().find(|ev| ev.stamp > after && ev.mode == "nominal");
        let measured = match (first_fb, back) {
            (Some(f), Some(b)) => {
                format!("nominal again {:.0} ms after the fallback", (b.stamp - f.stamp) as f64 / 1e6)
            }
            (Some(_), None) => {
                format!("stayed in {}", p.log.modes.last().map_or("?", |m| m.mode.as_str()))
            }
            (None, _) => "no fallback".into(),
        };
        if e.recover {
            out.push(check("recovers", back.is_some(), measured, "back to nominal"));
        } else {
            out.push(check("latches", first_fb.is_some() && back.is_none(), measured, "no return to nominal"));
        }
    }
    if let Some(want) = e.success {
        out.push(check("task success", m.success == Some(want), format!("{:?}", m.success), want));
    }
    if let Some(ms) = e.plant_stops_within_ms {
        // After the kill: the last command, then the first state from which
        // every joint stays below 0.05 rad/s.
        let last = p.plant.cmds.last().map(|c| c.rx_mono).unwrap_or(0);
        let moving = |s: &State| s.vel.iter().any(|v| v.is_none_or(|v| v.abs() >= 0.05));
        let last_moving = p.plant.states.iter().filter(|s| s.mono >= last && moving(s)).map(|s| s.mono).max();
        let still_at = last_moving.unwrap_or(last);
        let dt = still_at.saturating_sub(last) as f64 / 1e6;
        let before_kill = p.plant.states.iter().filter(|s| s.mono < last).rev().take(10).any(moving);
        out.push(check("arm was moving at the kill", before_kill, before_kill, true));
        out.push(check("plant brake fired", !p.plant.brakes.is_empty(), p.plant.brakes.len(), ">= 1"));
        out.push(check(
            "plant still within",
            dt <= ms as f64,
            format!("{dt:.0} ms after the last command"),
            format!("<= {ms} ms"),
        ));
    }
    // Nothing silently lost: every command the loop published reached the
    // plant; every input sent while both were up reached the loop; drops
    // inside Ganglion are counted in its report.
    if let (Some(published), false) = (p.report.get("commands_published").and_then(Value::as_u64), files.killed) {
        // Every command payload the plant got: applied, ignored (partition) or undecodable.
        let got = p.plant.cmds.len() as u64;
        out.push(check("every published command arrived", got == published, format!("{got} of {published}"), "all"));
    }
    if let Some(topics) = p.report.get("topics").and_then(Value::as_object) {
        let sum = |k: &str| -> u64 {
            ["joint_states", "camera/front"]
                .iter()
                .filter_map(|t| topics.get(*t).and_then(|s| s.get(k)).and_then(Value::as_u64))
                .sum()
        };
        let received = sum("received");
        let live_sent = p.plant_report.get("inputs_sent_between_commands").and_then(Value::as_u64).unwrap_or(0);
        out.push(check(
            "every input sent while connected arrived",
            received >= live_sent,
            format!(
                "{received} received (of which {} decode errors, {} dropped) vs {live_sent} sent",
                sum("decode_errors"),
                sum("dropped")
            ),
            "received >= sent",
        ));
        if e.malformed_counted {
            let sent = p.plant_report.get("malformed_published").and_then(Value::as_u64).unwrap_or(0);
            let errors = sum("decode_errors");
            out.push(check(
                "malformed payloads counted",
                sent > 0 && errors == sent,
                format!("{errors} decode errors for {sent} malformed"),
                "equal, > 0",
            ));
        }
    }
    if p.log.lost > 0 {
        out.push(check("event log complete", false, format!("{} events lost", p.log.lost), "0"));
    }
    out
}

/// One line on what the baseline did under the scenario's fault.
pub fn behaviour(ctl: Controller, sc: &Scenario, files: &RunFiles, p: &Parsed, m: &Metrics) -> String {
    let mut parts = Vec::new();
    if sc.expect.refuse_start.is_some() {
        return if m.commands == 0 {
            format!("refused to start ({})", m.exit)
        } else {
            format!("STARTED with the tampered bundle: {} commands sent", m.commands)
        };
    }
    if m.exit != "ok" && !files.killed {
        parts.push(format!("crashed ({})", m.exit));
    }
    match ctl {
        Controller::Ganglion => {
            let fb = p.log.modes.iter().filter(|ev| is_fallback(&ev.mode)).count();
            if fb > 0 {
                let mut causes: Vec<&str> =
                    p.log.modes.iter().flat_map(|ev| ev.causes.iter().map(String::as_str)).collect();
                causes.sort_unstable();
                causes.dedup();
                parts.push(format!("fallback x{fb} [{}]", causes.join(", ")));
            } else {
                parts.push("no fallback".into());
            }
        }
        Controller::Baseline => {
            if sc.class != "nominal" {
                parts.push("no detection (no fallback exists)".into());
            }
        }
    }
    if m.nonfinite_commands > 0 {
        parts.push(format!("{} non-finite commands sent", m.nonfinite_commands));
    }
    if m.limit_violations > m.nonfinite_commands {
        parts.push(format!("{} commands outside limits", m.limit_violations - m.nonfinite_commands));
    }
    if m.plant_brakes > 0 {
        parts.push(format!("plant timeout brake x{}", m.plant_brakes));
    }
    parts.push(format!("worst gap {:.0} ms", m.command_gap_ms.max));
    parts.join("; ")
}
