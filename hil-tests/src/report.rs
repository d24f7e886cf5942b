//! Runs scenarios and writes `report.json`, `report.md` and the plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::analyze::{self, Check, Metrics};
use crate::runner::{self, Controller, Tools};
use crate::scenario::Scenario;
use ganglion_core::stats::Percentiles;

/// One episode of one controller.
#[derive(Debug, serde::Serialize)]
pub struct EpisodeResult {
    /// Episode (scene) number.
    pub episode: u64,
    /// Where its files are (relative to the report directory).
    pub dir: String,
    /// Measured.
    pub metrics: Metrics,
    /// Expectations (Ganglion only; the baseline has no safety contract).
    pub checks: Vec<Check>,
    /// One line on what happened.
    pub behaviour: String,
}

/// Aggregate over episodes.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Episodes run.
    pub episodes: u64,
    /// Share of episodes whose task succeeded.
    pub success_rate: f64,
    /// Mean final tip error, cm.
    pub final_error_cm_mean: Option<f64>,
    /// Loop tick jitter, µs: median of p50, max of p99, max of max.
    pub loop_jitter_us: Option<Percentiles>,
    /// Ticks without an action (sum).
    pub starved_ticks: Option<u64>,
    /// Longest command gap at the plant, ms.
    pub worst_command_gap_ms: f64,
    /// Command inter-arrival jitter at the plant, ms (same aggregation).
    pub command_jitter_ms: Percentiles,
    /// Joint-state capture → command at the plant, ms (same aggregation).
    pub latency_ms: Option<Percentiles>,
    /// Commands outside limits or non-finite (sum).
    pub limit_violations: u64,
    /// Periods without a command (sum).
    pub missed_periods: u64,
    /// What happened in the first episode.
    pub behaviour: String,
}

/// One controller on one scenario.
#[derive(Debug, serde::Serialize)]
pub struct ControllerResult {
    /// Which.
    pub controller: Controller,
    /// Per episode.
    pub episodes: Vec<EpisodeResult>,
    /// Aggregate.
    pub summary: Summary,
}

/// One scenario.
#[derive(Debug, serde::Serialize)]
pub struct ScenarioResult {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Fault class.
    pub class: String,
    /// Every Ganglion check of every episode held.
    pub passed: bool,
    /// Ganglion.
    pub ganglion: ControllerResult,
    /// The Python baseline (when run).
    pub baseline: Option<ControllerResult>,
    /// Plot files (relative to the report directory).
    pub plots: Vec<String>,
}

/// `report.json`.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// CPU cores of this machine.
    pub cpus: usize,
    /// The `ganglion` binary used.
    pub ganglion: String,
    /// Whether `ganglion run --record-dir` was available (recording checks).
    pub recording_checked: bool,
    /// SCHED_FIFO priority of the plant and controller processes (`None`: default scheduler).
    pub rt_priority: Option<u8>,
    /// Every scenario passed.
    pub passed: bool,
    /// Names of the failed scenarios.
    pub failed: Vec<String>,
    /// Per scenario.
    pub scenarios: Vec<ScenarioResult>,
}

fn agg(v: impl Iterator<Item = Percentiles> + Clone) -> Option<Percentiles> {
    let p50s: Vec<f64> = v.clone().map(|p| p.p50).collect();
    if p50s.is_empty() {
        return None;
    }
    Some(Percentiles {
        p50: analyze::pctl(&p50s).p50,
        p99: v.clone().map(|p| p.p99).fold(0.0, f64::max),
        max: v.map(|p| p.max).fold(0.0, f64::max),
    })
}

fn summarize(eps: &[EpisodeResult]) -> Summary {
    let n = eps.len() as u64;
    let ms: Vec<&Metrics> = eps.iter().map(|e| &e.metrics).collect();
    let errs: Vec<f64> = ms.iter().filter_map(|m| m.final_error_cm).collect();
    Summary {
        episodes: n,
        success_rate: ms.iter().filter(|m| m.success == Some(true)).count() as f64 / n.max(1) as f64,
        final_error_cm_mean: (!errs.is_empty())
            .then(|| (errs.iter().sum::<f64>() / errs.len() as f64 * 1000.0).round() / 1000.0),
        loop_jitter_us: agg(ms.iter().filter_map(|m| m.loop_jitter_us)),
        starved_ticks: ms.iter().map(|m| m.starved_ticks).sum(),
        worst_command_gap_ms: ms.iter().map(|m| m.command_gap_ms.max).fold(0.0, f64::max),
        command_jitter_ms: agg(ms.iter().map(|m| m.command_jitter_ms)).unwrap_or_default(),
        latency_ms: agg(ms.iter().filter_map(|m| m.latency_ms)),
        limit_violations: ms.iter().map(|m| m.limit_violations).sum(),
        missed_periods: ms.iter().map(|m| m.missed_periods).sum(),
        behaviour: eps.first().map(|e| e.behaviour.clone()).unwrap_or_default(),
    }
}

/// Runs one scenario with both controllers.
pub fn run_scenario(sc: &Scenario, tools: &Tools, out: &Path, with_baseline: bool) -> anyhow::Result<ScenarioResult> {
    let mut ganglion = Vec::new();
    let mut baseline = Vec::new();
    let mut period_ns = 10_000_000;
    for ep in 0..sc.plant.episodes {
        let mut ctls = vec![Controller::Ganglion];
        if with_baseline && sc.baseline {
            ctls.push(Controller::Baseline);
        }
        for ctl in ctls {
            let rel = format!("runs/{}/{}/ep{ep}", sc.name, ctl.name());
            eprintln!("[rig] {} {} episode {ep}", sc.name, ctl.name());
            let files = runner::run_episode(sc, ctl, ep, tools, &out.join(&rel))
                .with_context(|| format!("scenario {} ({}) episode {ep}", sc.name, ctl.name()))?;
            period_ns = files.period_ns;
            let parsed = analyze::parse(&files)?;
            let metrics = analyze::metrics(ctl, &files, &parsed);
            let checks =
                if ctl == Controller::Ganglion { analyze::checks(sc, &files, &parsed, &metrics) } else { Vec::new() };
            // A run whose reaction the machine hid (the loop stalled, see
            // `stalled_before_reaction`) runs once more; the second run is
            // judged, the first reported. Anything else fails as measured.
            let stalled = (ctl == Controller::Ganglion && checks.iter().any(|c| !c.passed))
                .then(|| analyze::stalled_before_reaction(sc, &parsed))
                .flatten();
            let (rel, files, parsed, metrics, checks) = match stalled {
                None => (rel, files, parsed, metrics, checks),
                Some(why) => {
                    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
                    eprintln!("[rig] {} episode {ep}: {why}; failed {failed:?}; running it once more", sc.name);
                    let first = format!("{rel}: {why}; failed: {}", failed.join(", "));
                    let rel = format!("{rel}-rerun");
                    let files = runner::run_episode(sc, ctl, ep, tools, &out.join(&rel))
                        .with_context(|| format!("scenario {} ({}) episode {ep}, rerun", sc.name, ctl.name()))?;
                    let parsed = analyze::parse(&files)?;
                    let metrics = analyze::metrics(ctl, &files, &parsed);
                    let mut checks = analyze::checks(sc, &files, &parsed, &metrics);
                    checks.push(Check {
                        name: "earlier run stalled by the machine (information)".into(),
                        passed: true,
                        measured: first,
                        expected: "reported; this run judged".into(),
                    });
                    (rel, files, parsed, metrics, checks)
                }
            };
            let behaviour = analyze::behaviour(ctl, sc, &files, &parsed, &metrics);
            for c in checks.iter().filter(|c| !c.passed) {
                eprintln!("[rig]   FAILED {}: measured {} expected {}", c.name, c.measured, c.expected);
            }
            let r = EpisodeResult { episode: ep, dir: rel, metrics, checks, behaviour };
            match ctl {
                Controller::Ganglion => ganglion.push(r),
                Controller::Baseline => baseline.push(r),
            }
        }
    }
    let passed = ganglion.iter().all(|e| e.checks.iter().all(|c| c.passed));
    // Plots of the first episode.
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    let mut plots = Vec::new();
    let mut series = vec![("ganglion", &ganglion[0].metrics.samples)];
    if let Some(b) = baseline.first() {
        series.push(("python baseline", &b.metrics.samples));
    }
    let lat = format!("plots/{}-latency.png", sc.name);
    analyze_plot(plot_latency(&series, &sc.name, &out.join(&lat)), &lat, &mut plots);
    let jit = format!("plots/{}-jitter.png", sc.name);
    let title = format!("{}: command inter-arrival at the plant (period {} ms)", sc.name, period_ns as f64 / 1e6);
    analyze_plot(crate::plot::jitter(&series, period_ns as f64 / 1e6, &title, &out.join(&jit)), &jit, &mut plots);
    let modes = format!("plots/{}-modes.png", sc.name);
    let title = format!("{}: Ganglion mode, faults shaded", sc.name);
    analyze_plot(crate::plot::modes(&ganglion[0].metrics.samples, &title, &out.join(&modes)), &modes, &mut plots);
    Ok(ScenarioResult {
        name: sc.name.clone(),
        description: sc.description.clone(),
        class: sc.class.clone(),
        passed,
        ganglion: ControllerResult {
            controller: Controller::Ganglion,
            summary: summarize(&ganglion),
            episodes: ganglion,
        },
        baseline: (!baseline.is_empty()).then(|| ControllerResult {
            controller: Controller::Baseline,
            summary: summarize(&baseline),
            episodes: baseline,
        }),
        plots,
    })
}

fn plot_latency(series: &[(&str, &analyze::Samples)], name: &str, file: &Path) -> anyhow::Result<()> {
    crate::plot::latency(series, &format!("{name}: joint-state capture -> command received"), file)
}

fn analyze_plot(r: anyhow::Result<()>, rel: &str, plots: &mut Vec<String>) {
    match r {
        Ok(()) => plots.push(rel.to_string()),
        Err(e) => eprintln!("[rig] plot {rel} failed: {e:#}"),
    }
}

fn p3(p: &Option<Percentiles>, digits: usize) -> String {
    p.map_or("–".into(), |p| format!("{:.d$} / {:.d$} / {:.d$}", p.p50, p.p99, p.max, d = digits))
}

/// Writes `report.json` and `report.md` into `out`.
pub fn write(report: &Report, out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let mut md = String::new();
    let _ = writeln!(md, "# Ganglion HIL rig report\n");
    let _ = writeln!(md, "Command: `{}`  ", report.command);
    let _ = writeln!(
        md,
        "Machine: {} CPU cores; ganglion: `{}`; scheduling: {}  ",
        report.cpus,
        report.ganglion,
        report.rt_priority.map_or("default (CFS) for both sides".into(), |p| format!(
            "plant and controllers under SCHED_FIFO {p} (`chrt -f`), Ganglion's control thread / worker at its \
             `[realtime]` priorities"
        ))
    );
    let _ = writeln!(
        md,
        "Result: **{}** ({} of {} scenarios passed){}\n",
        if report.passed { "PASS" } else { "FAIL" },
        report.scenarios.iter().filter(|s| s.passed).count(),
        report.scenarios.len(),
        if report.recording_checked { "" } else { "; flight recordings not checked (no `ganglion run --record-dir`)" }
    );
    let _ = writeln!(
        md,
        "## Summary\n\n| scenario | class | Ganglion checks | Ganglion | Python baseline |\n|---|---|---|---|---|"
    );
    for s in &report.scenarios {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            s.name,
            s.class,
            if s.passed { "pass" } else { "**FAIL**" },
            s.ganglion.summary.behaviour,
            s.baseline.as_ref().map_or("–".into(), |b| b.summary.behaviour.clone())
        );
    }
    let _ = writeln!(
        md,
        "\n## Side by side\n\nTick jitter: the controller's own loop (tick start − scheduled start). Command gap and \
         command jitter (|inter-arrival − period|): measured at the plant. Latency: joint-state capture on the plant → \
         command received on the plant (Ganglion: the first command published after the inference that used that \
         observation finished; baseline: the command computed from it). Starved: Ganglion ticks without a policy \
         action; baseline ticks that started a period or more late.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | controller | episodes | success | final err (cm) | tick jitter p50/p99/max (µs) | starved | worst \
         cmd gap (ms) | cmd jitter p50/p99/max (ms) | latency p50/p99/max (ms) | limit violations |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in &report.scenarios {
        for r in std::iter::once(&s.ganglion).chain(s.baseline.as_ref()) {
            let m = &r.summary;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} % | {} | {} | {} | {:.1} | {} | {} | {} |",
                s.name,
                if r.controller == Controller::Ganglion { "Ganglion" } else { "Python baseline" },
                m.episodes,
                m.success_rate * 100.0,
                m.final_error_cm_mean.map_or("–".into(), |e| format!("{e:.2}")),
                p3(&m.loop_jitter_us, 0),
                m.starved_ticks.map_or("–".into(), |x| x.to_string()),
                m.worst_command_gap_ms,
                p3(&Some(m.command_jitter_ms), 2),
                p3(&m.latency_ms, 1),
                m.limit_violations
            );
        }
    }
    let _ = writeln!(md, "\n## Checks\n");
    for s in &report.scenarios {
        let _ = writeln!(md, "### {} — {}\n\n{}\n", s.name, if s.passed { "pass" } else { "FAIL" }, s.description);
        for e in &s.ganglion.episodes {
            if s.ganglion.episodes.len() > 1 {
                let _ = writeln!(md, "Episode {} (`{}`)\n", e.episode, e.dir);
            } else {
                let _ = writeln!(md, "Files: `{}`\n", e.dir);
            }
            let _ = writeln!(md, "| check | measured | expected | ok |\n|---|---|---|---|");
            for c in &e.checks {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    c.name,
                    c.measured.replace('|', "/"),
                    c.expected.replace('|', "/"),
                    if c.passed { "yes" } else { "**NO**" }
                );
            }
            let _ = writeln!(md);
        }
        for p in &s.plots {
            let _ = writeln!(md, "![{p}]({p})");
        }
        let _ = writeln!(md);
    }
    let mdp = out.join("report.md");
    std::fs::write(&mdp, md).with_context(|| format!("writing {}", mdp.display()))?;
    Ok((json, mdp))
}
