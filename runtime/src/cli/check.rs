//! `ganglion check`: real-time readiness of this machine.
//!
//! Prints one line per [`CheckItem`] (or the [`Report`] as JSON). The exit
//! code is 0 unless `--strict` is given and an item listed in the profile's
//! `realtime.required` did not pass; then it is 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::rtcheck::{self, CheckItem, RealtimeConfig, Report};

/// Arguments of `ganglion check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Robot profile whose `[realtime]` section gives priorities, CPUs and
    /// required items; without it the defaults are checked.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<PathBuf>,
    /// Exit with status 1 if a required item does not pass.
    #[arg(long)]
    pub strict: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ganglion check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.profile {
        Some(path) => load_realtime(path)?,
        None => RealtimeConfig::default(),
    };
    let report = rtcheck::check(&config);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    if args.strict && !report.strict_ok() {
        let failed: Vec<&str> = report.required_failures().map(|i| i.item.name()).collect();
        eprintln!("check --strict: required items not passing: {}", failed.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the `[realtime]` section of a robot profile and validates it.
///
/// Only that section is read: `check` must work on a machine being set up,
/// even when other sections reference bundles or devices not yet installed.
pub fn load_realtime(path: &Path) -> anyhow::Result<RealtimeConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading profile {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not a valid TOML document", path.display()))?;
    let config = match table.get("realtime") {
        None => RealtimeConfig::default(),
        Some(value) => value
            .clone()
            .try_into::<RealtimeConfig>()
            .with_context(|| format!("{}: [realtime]: invalid section", path.display()))?,
    };
    config.validate().with_context(|| format!("{}: invalid [realtime]", path.display()))?;
    Ok(config)
}

/// The human-readable table: item, status, required, reason.
fn table(report: &Report) -> String {
    let width = CheckItem::ALL.iter().map(|i| i.name().len()).max().unwrap_or(0);
    let mut out = format!("kernel: {}\n", report.kernel);
    out.push_str(&format!("{:<width$}  STATUS  REQUIRED  REASON\n", "ITEM"));
    for item in &report.items {
        out.push_str(&format!(
            "{:<width$}  {:<6}  {:<8}  {}\n",
            item.item.name(),
            item.status.label(),
            if item.required { "yes" } else { "no" },
            item.reason
        ));
    }
    let failing = report.required_failures().count();
    if failing == 0 {
        out.push_str("all required items pass\n");
    } else {
        out.push_str(&format!("{failing} required item(s) not passing\n"));
    }
    out
}
