//! PNG plots of a rig run with `plotters` (bitmap backend, the recorder's
//! bundled DejaVu Sans Mono through `ab_glyph`: no system fonts needed):
//! latency histogram, command inter-arrival over time (jitter), and
//! Ganglion's mode timeline with the fault windows shaded.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::analyze::Samples;

const FONT: &[u8] = include_bytes!("../../runtime/src/recorder/fonts/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Without the font the plots still draw, only without text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn err(file: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing {}: {e}", file.display())
}

const COLORS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];

/// Latency histograms of each `(label, samples)`, overlaid.
pub fn latency(series: &[(&str, &Samples)], title: &str, file: &Path) -> anyhow::Result<()> {
    register_font();
    let all: Vec<f64> = series.iter().flat_map(|(_, s)| s.latency_ms.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    let top = sorted[((sorted.len() - 1) as f64 * 0.995) as usize].max(0.1) * 1.1;
    const BINS: usize = 50;
    let w = top / BINS as f64;
    let hist = |v: &[f64]| {
        let mut c = [0u32; BINS];
        for x in v {
            if let Some(b) = c.get_mut((x.max(0.0) / w) as usize) {
                *b += 1;
            }
        }
        c
    };
    let hs: Vec<[u32; BINS]> = series.iter().map(|(_, s)| hist(&s.latency_ms)).collect();
    let ymax = hs.iter().flat_map(|h| h.iter().copied()).max().unwrap_or(1).max(1);
    let root = BitMapBackend::new(file, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(file, e))?;
    let mut chart =
        frame(&root, title, 60).build_cartesian_2d(0.0..top, 0u32..ymax + ymax / 10 + 1).map_err(|e| err(file, e))?;
    chart
        .configure_mesh()
        .x_desc("joint-state capture -> command at the plant (ms)")
        .y_desc("commands")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| err(file, e))?;
    for (i, ((label, _), h)) in series.iter().zip(&hs).enumerate() {
        let c = COLORS[i % 2];
        chart
            .draw_series(
                h.iter()
                    .enumerate()
                    .map(|(b, &n)| Rectangle::new([(b as f64 * w, 0), ((b + 1) as f64 * w, n)], c.mix(0.45).filled())),
            )
            .map_err(|e| err(file, e))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(file, e))?;
    root.present().map_err(|e| err(file, e))
}

/// The chart layout every rig plot shares: title, margin, axis label areas
/// (`y_area`: room for the y labels).
fn frame<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &'b str,
    y_area: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, (FAMILY, 18)).margin(12).x_label_area_size(40).y_label_area_size(y_area);
    b
}

/// Command inter-arrival at the plant over time, per controller.
pub fn jitter(series: &[(&str, &Samples)], period_ms: f64, title: &str, file: &Path) -> anyhow::Result<()> {
    register_font();
    let xmax = series.iter().map(|(_, s)| s.span_s).fold(1.0, f64::max);
    let ymax = series.iter().flat_map(|(_, s)| s.gaps.iter().map(|g| g.1)).fold(period_ms * 2.0, f64::max) * 1.05;
    let root = BitMapBackend::new(file, (1000, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(file, e))?;
    let mut chart = frame(&root, title, 60).build_cartesian_2d(0.0..xmax, 0.0..ymax).map_err(|e| err(file, e))?;
    chart
        .configure_mesh()
        .x_desc("s since the first command")
        .y_desc("command inter-arrival (ms)")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| err(file, e))?;
    for (i, (label, s)) in series.iter().enumerate() {
        let c = COLORS[i % 2];
        chart
            .draw_series(s.gaps.iter().map(|&(t, g)| Circle::new((t, g), 2, c.filled())))
            .map_err(|e| err(file, e))?
            .label(*label)
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(file, e))?;
    root.present().map_err(|e| err(file, e))
}

/// Ganglion's mode over time, fault windows shaded.
pub fn modes(s: &Samples, title: &str, file: &Path) -> anyhow::Result<()> {
    register_font();
    let xmax = s.span_s.max(s.modes.last().map_or(1.0, |m| m.0)).max(1.0);
    let root = BitMapBackend::new(file, (1000, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(file, e))?;
    let mut chart = frame(&root, title, 90).build_cartesian_2d(0.0..xmax, -0.5f64..4.5).map_err(|e| err(file, e))?;
    chart
        .configure_mesh()
        .x_desc("s since the first command")
        .y_labels(5)
        .y_label_formatter(&|y| {
            ["startup", "nominal", "degraded", "fallback", "safe_stop"]
                .get(y.round() as usize)
                .unwrap_or(&"")
                .to_string()
        })
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| err(file, e))?;
    for (kind, a, b) in &s.faults {
        let b = b.unwrap_or(xmax);
        chart
            .draw_series(std::iter::once(Rectangle::new([(*a, -0.5), (b.max(*a + 0.01), 4.5)], RED.mix(0.15).filled())))
            .map_err(|e| err(file, e))?;
        chart
            .draw_series(std::iter::once(Text::new(kind.clone(), (*a, 4.3), (FAMILY, 13))))
            .map_err(|e| err(file, e))?;
    }
    let mut pts = Vec::new();
    for w in s.modes.windows(2) {
        pts.push((w[0].0, w[0].1 as f64));
        pts.push((w[1].0, w[0].1 as f64));
    }
    if let Some(l) = s.modes.last() {
        pts.push((l.0, l.1 as f64));
        pts.push((xmax, l.1 as f64));
    }
    chart.draw_series(LineSeries::new(pts, COLORS[0].stroke_width(2))).map_err(|e| err(file, e))?;
    root.present().map_err(|e| err(file, e))
}
