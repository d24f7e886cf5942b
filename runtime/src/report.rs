//! Writing the JSON reports of the measuring commands (`--report FILE`)
//! and their plots.

/// `dev` or `release` (debug assertions off: `release` and `dist`): the
/// `build_profile` of every report, since a dev build's numbers are not
/// the deployed binary's.
pub const BUILD_PROFILE: &str = if cfg!(debug_assertions) { "dev" } else { "release" };

/// Writes `value` as pretty JSON to `path` (the `--report FILE` of every
/// measuring command), creating parent directories.
pub fn write_report(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating report directory {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing report {}", path.display()))
}

/// Writes `report` as JSON to `path` and its plots (a histogram per
/// `samples_us` series, jitter over time) into `plots`, or into
/// `<path without extension>-plots/` when `plots` is `None`. Returns the
/// plot files.
pub fn write_report_and_plots(
    path: &std::path::Path,
    report: &impl serde::Serialize,
    plots: Option<&std::path::Path>,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    write_report(path, report)?;
    let dir = match plots {
        Some(d) => d.to_path_buf(),
        None => {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
            path.with_file_name(format!("{stem}-plots"))
        }
    };
    let value = serde_json::to_value(report).context("report to JSON")?;
    crate::recorder::plot::plot_bench(&value, &dir).with_context(|| format!("plotting into {}", dir.display()))
}
