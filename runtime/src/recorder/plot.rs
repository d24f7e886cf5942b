//! PNG plots of a benchmark report: a latency histogram of every sample
//! array, and jitter over time.
//!
//! Input: a bench JSON report. Every object in it (at any depth) holding a
//! `samples_us` array of numbers is a series named by its JSON path
//! (`overhead_us`, `policy.tract.latency_us`, ...). For each series
//! [`plot_bench`] writes `<name>-hist.png`; for series whose name contains
//! `jitter` it also writes `<name>-time.png` (sample index on x, so the
//! samples must be in tick order). Text is drawn with a bundled DejaVu Sans
//! Mono through `ab_glyph`: no system fonts or fontconfig needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

use crate::stats::{nearest_rank, Percentiles};

const FONT: &[u8] = include_bytes!("fonts/DejaVuSansMono.ttf");
/// The family name plots use; registered once per process.
const FAMILY: &str = "sans-serif";

/// Why plots could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The report holds no `samples_us` array.
    #[error("the report has no `samples_us` arrays to plot")]
    NoSamples,
    /// The output directory could not be created.
    #[error("creating {dir}: {source}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Drawing or encoding a PNG failed.
    #[error("drawing {file}: {message}")]
    Draw {
        /// The file.
        file: PathBuf,
        /// What plotters said.
        message: String,
    },
}

/// One series found in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// JSON path with `.` separators.
    pub name: String,
    /// Values, µs.
    pub samples: Vec<f64>,
}

/// Every `samples_us` array in `report`, depth first.
pub fn find_series(report: &serde_json::Value) -> Vec<Series> {
    fn walk(v: &serde_json::Value, path: &str, out: &mut Vec<Series>) {
        let serde_json::Value::Object(map) = v else { return };
        if let Some(serde_json::Value::Array(a)) = map.get("samples_us") {
            let samples: Vec<f64> = a.iter().filter_map(serde_json::Value::as_f64).filter(|x| x.is_finite()).collect();
            if !samples.is_empty() {
                out.push(Series { name: if path.is_empty() { "report".into() } else { path.into() }, samples });
            }
        }
        for (k, child) in map {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            walk(child, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(report, "", &mut out);
    out
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            tracing::warn!("bundled plot font failed to load; plots will lack text");
        }
    });
}

fn draw_err(file: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw { file: file.to_path_buf(), message: e.to_string() }
}

/// Histogram of `s` into `file`: 60 bins from 0 to the 99.9th percentile;
/// the samples beyond it are counted in the caption.
pub fn histogram_png(s: &Series, file: &Path) -> Result<(), PlotError> {
    register_font();
    let mut sorted = s.samples.clone();
    sorted.sort_by(f64::total_cmp);
    let Percentiles { p50, p99, max } = Percentiles::of_sorted(&sorted);
    let top = nearest_rank(&sorted, 0.999).max(1e-3) * 1.05;
    const BINS: usize = 60;
    let width = top / BINS as f64;
    let mut counts = [0u32; BINS];
    let mut beyond = 0usize;
    for &v in &sorted {
        let b = (v.max(0.0) / width) as usize;
        match counts.get_mut(b) {
            Some(c) => *c += 1,
            None => beyond += 1,
        }
    }
    let ymax = counts.iter().copied().max().unwrap_or(1).max(1);
    let root = BitMapBackend::new(file, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(file, e))?;
    let caption = format!(
        "{}  n={} p50={p50:.1} p99={p99:.1} max={max:.1} µs{}",
        s.name,
        sorted.len(),
        if beyond > 0 { format!(" ({beyond} beyond axis)") } else { String::new() }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FAMILY, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..top, 0u32..(ymax + ymax / 10 + 1))
        .map_err(|e| draw_err(file, e))?;
    chart
        .configure_mesh()
        .x_desc("latency (µs)")
        .y_desc("samples")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| draw_err(file, e))?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = i as f64 * width;
            Rectangle::new([(x0, 0), (x0 + width, c)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| draw_err(file, e))?;
    for (q, color) in [(p50, GREEN), (p99, RED)] {
        chart
            .draw_series(LineSeries::new([(q, 0), (q, ymax)], color.stroke_width(2)))
            .map_err(|e| draw_err(file, e))?;
    }
    root.present().map_err(|e| draw_err(file, e))
}

/// `s` against sample index into `file` (jitter over time).
pub fn time_png(s: &Series, file: &Path) -> Result<(), PlotError> {
    register_font();
    let lo = s.samples.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
    let hi = s.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-3);
    let root = BitMapBackend::new(file, (900, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(file, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{} over time (n={})", s.name, s.samples.len()), (FAMILY, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0usize..s.samples.len().max(2), lo..hi * 1.05)
        .map_err(|e| draw_err(file, e))?;
    chart
        .configure_mesh()
        .x_desc("tick")
        .y_desc("µs")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| draw_err(file, e))?;
    chart
        .draw_series(LineSeries::new(s.samples.iter().copied().enumerate(), BLUE.stroke_width(1)))
        .map_err(|e| draw_err(file, e))?;
    root.present().map_err(|e| draw_err(file, e))
}

/// Writes the plots of `report` into `out_dir` (created if needed); returns
/// the files written.
pub fn plot_bench(report: &serde_json::Value, out_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let series = find_series(report);
    if series.is_empty() {
        return Err(PlotError::NoSamples);
    }
    std::fs::create_dir_all(out_dir).map_err(|source| PlotError::Dir { dir: out_dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for s in &series {
        let stem: String =
            s.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
        let f = out_dir.join(format!("{stem}-hist.png"));
        histogram_png(s, &f)?;
        files.push(f);
        if s.name.contains("jitter") {
            let f = out_dir.join(format!("{stem}-time.png"));
            time_png(s, &f)?;
            files.push(f);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_sample_arrays() {
        let r = serde_json::json!({
            "overhead_us": {"p50": 1.0, "samples_us": [1.0, 2.0, 3.0]},
            "policy": {"tract": {"latency_us": {"samples_us": [10.0, "x", 12.0]}}},
            "ticks": 3
        });
        let s = find_series(&r);
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["overhead_us", "policy.tract.latency_us"]);
        assert_eq!(s[1].samples, [10.0, 12.0]);
        assert!(matches!(
            plot_bench(&serde_json::json!({"a": 1}), Path::new("/nonexistent")),
            Err(PlotError::NoSamples)
        ));
    }
}
