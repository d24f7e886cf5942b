//! `ganglion check`: real-time readiness of this machine, and the zenoh
//! session the profile opens.
//!
//! Prints one line per [`CheckItem`] (or the [`Report`] as JSON). With a
//! profile whose `[transport] kind` is zenoh it also opens that session for
//! a moment (a probe: `--no-probe` skips it) and prints what it got: mode,
//! listeners (stating any on a non-loopback address), links and whether
//! they are TLS (JSON: the `zenoh` field, `ganglion_zenoh::SessionFacts`).
//! The exit code is 0 unless `--strict` is given and an item listed in the
//! profile's `realtime.required` did not pass, or the zenoh config asks for
//! TLS the session does not have; then it is 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use ganglion::profile::CheckSections;
use ganglion::rtcheck::{self, CheckItem, RealtimeConfig, Report};

/// Arguments of `ganglion check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Robot profile whose `[realtime]` section gives priorities, CPUs and
    /// required items (only it, `[transport]` and `robot.name` are read);
    /// without it the defaults are checked.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<PathBuf>,
    /// Exit with status 1 if a required item does not pass.
    #[arg(long)]
    pub strict: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Do not open the profile's zenoh session; report only what its config says.
    #[arg(long)]
    pub no_probe: bool,
}

/// What `check` found about the profile's zenoh session.
#[derive(serde::Serialize)]
struct ZenohCheck {
    /// Whether a session was opened (`false`: config only, see `error`).
    probed: bool,
    /// Why the probe could not open the session.
    error: Option<String>,
    facts: ganglion_zenoh::SessionFacts,
}

/// The profile's zenoh session: its config's facts, then (unless
/// `no_probe`) what a short-lived session with that config got.
fn check_zenoh(path: &Path, sections: &CheckSections, no_probe: bool) -> anyhow::Result<Option<ZenohCheck>> {
    if sections.transport.kind != ganglion::transport::TransportKind::Zenoh {
        return Ok(None);
    }
    let robot = if sections.robot.name.is_empty() { "robot" } else { &sections.robot.name };
    let cfg = sections
        .transport
        .zenoh_config(robot, path.parent())
        .with_context(|| format!("{}: invalid [transport]", path.display()))?;
    let facts = cfg.facts().with_context(|| format!("{}: the zenoh config", path.display()))?;
    if no_probe {
        return Ok(Some(ZenohCheck { probed: false, error: None, facts }));
    }
    Ok(Some(match ganglion_zenoh::SessionFacts::probe(&cfg, std::time::Duration::from_millis(300)) {
        Ok(facts) => ZenohCheck { probed: true, error: None, facts },
        Err(e) => ZenohCheck { probed: false, error: Some(e.to_string()), facts },
    }))
}

/// Runs `ganglion check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (config, zenoh) = match &args.profile {
        Some(path) => {
            let sections = CheckSections::load(path)?;
            let zenoh = check_zenoh(path, &sections, args.no_probe)?;
            (sections.realtime, zenoh)
        }
        None => (RealtimeConfig::default(), None),
    };
    let report = rtcheck::check(&config);
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        if let (Some(z), Some(obj)) = (&zenoh, json.as_object_mut()) {
            obj.insert("zenoh".into(), serde_json::to_value(z)?);
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", table(&report));
        if let Some(z) = &zenoh {
            print!("{}", zenoh_table(z));
        }
    }
    let tls_missing = zenoh.as_ref().and_then(|z| z.facts.tls_missing());
    if args.strict && (!report.strict_ok() || tls_missing.is_some()) {
        let mut failed: Vec<&str> = report.required_failures().map(|i| i.item.name()).collect();
        if tls_missing.is_some() {
            failed.push("zenoh_tls");
        }
        eprintln!("check --strict: required items not passing: {}", failed.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The zenoh session block of the table.
fn zenoh_table(z: &ZenohCheck) -> String {
    let how = match (&z.error, z.probed) {
        (Some(e), _) => format!("from its config; opening it failed: {e}"),
        (None, true) => "opened for a moment to see what it gets".into(),
        (None, false) => "from its config (--no-probe)".into(),
    };
    let mut out = format!("zenoh session ({how}):\n");
    for line in z.facts.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    if let Some(why) = z.facts.tls_missing() {
        out.push_str(&format!("  {why}: `ganglion run` refuses to arm\n"));
    }
    out
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
