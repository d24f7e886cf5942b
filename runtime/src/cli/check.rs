//! `ganglion check`: real-time readiness of this machine, and the zenoh
//! session the profile opens.
//!
//! Prints one line per [`CheckItem`] (or the [`Report`] as JSON). With a
//! profile whose `[transport] kind` is zenoh it also opens that session for
//! a moment (a probe: `--no-probe` skips it) and prints what it got: mode,
//! listeners (stating any on a non-loopback address), links and whether
//! they are TLS (JSON: the `zenoh` field, `ganglion_zenoh::SessionFacts`).
//! It lists the cameras found (`/dev/video*`, through
//! `ganglion_camera::survey`): each node's name, driver and the capture
//! formats, sizes and frame rates it offers, or why it could not be read,
//! or that there is none (JSON: the `cameras` array). The exit code is 0 unless `--strict` is given and an item listed in the
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
    let cameras = ganglion_camera::survey();
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        if let Some(obj) = json.as_object_mut() {
            if let Some(z) = &zenoh {
                obj.insert("zenoh".into(), serde_json::to_value(z)?);
            }
            obj.insert("cameras".into(), cameras_json(&cameras));
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", table(&report));
        if let Some(z) = &zenoh {
            print!("{}", zenoh_table(z));
        }
        print!("{}", cameras_table(&cameras));
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

/// The cameras as JSON: per node its path, then the device (`driver`,
/// `card`, `bus_info`, `caps`) and `formats` (fourcc, description, sizes
/// with their rates), or `error`.
fn cameras_json(cameras: &[ganglion_camera::Surveyed]) -> serde_json::Value {
    let list = cameras
        .iter()
        .map(|(path, r)| match r {
            Ok((info, formats)) => serde_json::json!({
                "path": path,
                "device": info,
                "capture": info.can_stream_video(),
                "formats": formats,
            }),
            Err(e) => serde_json::json!({ "path": path, "error": e.to_string() }),
        })
        .collect();
    serde_json::Value::Array(list)
}

/// The cameras block of the table: a line per node, a line per format.
fn cameras_table(cameras: &[ganglion_camera::Surveyed]) -> String {
    if cameras.is_empty() {
        return "cameras: none found (no /dev/video* node)\n".into();
    }
    let mut out = format!("cameras ({} /dev/video* node(s)):\n", cameras.len());
    for (path, r) in cameras {
        match r {
            Ok((info, formats)) => {
                out.push_str(&format!("  {}: {} ({}, {})", path.display(), info.card, info.driver, info.bus_info));
                if !info.can_stream_video() || formats.is_empty() {
                    // UVC cameras add a metadata node next to the capture node.
                    out.push_str(": no capture formats (not a capture node)\n");
                    continue;
                }
                out.push('\n');
                for f in formats {
                    out.push_str(&format!("    {f}\n"));
                }
            }
            Err(e) => out.push_str(&format!("  {}: cannot be read: {e}\n", path.display())),
        }
    }
    out
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
