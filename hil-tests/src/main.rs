//! `ganglion-rig run SCENARIO.toml... --report DIR`: see the crate docs
//! and `hil-tests/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ganglion_rig::report::{self, Report};
use ganglion_rig::runner::Tools;
use ganglion_rig::scenario::Scenario;

/// HIL rig: scenarios, fault injection, closed-loop evaluation, baseline.
#[derive(Debug, Parser)]
#[command(name = "ganglion-rig", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run scenarios; exit status 0 when every Ganglion check passed.
    Run {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Output directory (report.json, report.md, plots/, runs/).
        #[arg(long)]
        report: PathBuf,
        /// The `ganglion` binary (default: GANGLION_BIN, else next to this executable).
        #[arg(long)]
        ganglion: Option<PathBuf>,
        /// Python for the baseline (default: GANGLION_PYTHON, else ./.venv/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Workspace root (profiles, bundle, baseline); default: two levels above the first scenario.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Skip the Python baseline.
        #[arg(long)]
        no_baseline: bool,
        /// Only the scenarios marked `ci = true`.
        #[arg(long)]
        ci: bool,
        /// SCHED_FIFO priority for the plant and controller processes
        /// (`chrt -f`); Ganglion's control thread and worker get their own,
        /// higher ones (`[realtime] enabled`). Default 40 where allowed
        /// (root and `chrt`); 0 = default scheduler.
        #[arg(long)]
        rt_priority: Option<u8>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ganglion-rig: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let Cmd::Run { scenarios, report: out, ganglion, python, root, no_baseline, ci, rt_priority } =
        Cli::parse().command;
    let root = match root {
        Some(r) => r,
        None => {
            let first = scenarios[0].canonicalize().with_context(|| format!("{}", scenarios[0].display()))?;
            first.parent().and_then(|p| p.parent()).and_then(|p| p.parent()).context("scenario has no root")?.into()
        }
    };
    let root = root.canonicalize().with_context(|| format!("workspace root {}", root.display()))?;
    let mut tools = Tools::find(ganglion, python, root)?;
    tools.rt_priority = match rt_priority {
        Some(0) => None,
        Some(p) => Some(p),
        None => ganglion_rig::runner::can_chrt().then_some(40),
    };
    let mut loaded = Vec::new();
    for p in &scenarios {
        let s = Scenario::load(p)?;
        if !ci || s.ci {
            loaded.push(s);
        }
    }
    anyhow::ensure!(!loaded.is_empty(), "no scenario selected");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // Absolute: the profile the rig writes names files under it, and
    // relative paths in a profile resolve against the profile's directory.
    let out = out.canonicalize().with_context(|| format!("{}", out.display()))?;
    let mut results = Vec::new();
    for s in &loaded {
        results.push(report::run_scenario(s, &tools, &out, !no_baseline)?);
    }
    let failed: Vec<String> = results.iter().filter(|r| !r.passed).map(|r| r.name.clone()).collect();
    let rep = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        ganglion: tools.ganglion.display().to_string(),
        recording_checked: tools.has_record_dir,
        rt_priority: tools.rt_priority,
        passed: failed.is_empty(),
        failed,
        scenarios: results,
    };
    let (json, md) = report::write(&rep, &out)?;
    eprintln!("[rig] {} — {} and {}", if rep.passed { "PASS" } else { "FAIL" }, json.display(), md.display());
    Ok(rep.passed)
}
