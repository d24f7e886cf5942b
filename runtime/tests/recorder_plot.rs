//! Benchmark plots: a report with sample arrays yields PNG histograms (and a
//! jitter-over-time plot), drawn without any system font.

use ganglion::recorder::plot::{plot_bench, PlotError};

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn report_samples_become_png_plots() {
    // A deterministic, skewed distribution with a tail.
    let overhead: Vec<f64> =
        (0..5000).map(|i| 4.0 + ((i * 7919) % 100) as f64 * 0.05 + if i % 500 == 0 { 40.0 } else { 0.0 }).collect();
    let jitter: Vec<f64> = (0..5000).map(|i| ((i as f64) * 0.01).sin().abs() * 30.0).collect();
    let report = serde_json::json!({
        "ticks": 5000,
        "overhead_us": {"p50": 6.5, "p99": 8.9, "max": 48.9, "samples_us": overhead},
        "jitter_us": {"p50": 19.0, "samples_us": jitter},
        "timer_floor_us": {"p50": 50.0}
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let files = plot_bench(&report, dir.path()).expect("plots");
    let names: Vec<String> =
        files.iter().map(|f| f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string()).collect();
    assert_eq!(names, ["jitter_us-hist.png", "jitter_us-time.png", "overhead_us-hist.png"]);
    for f in &files {
        let bytes = std::fs::read(f).expect("png written");
        let (w, h) = png_size(&bytes);
        assert_eq!(w, 900);
        assert!(h == 500 || h == 400);
        // Text, bars and lines make a real image, not a blank canvas.
        assert!(bytes.len() > 5_000, "{} is only {} bytes", f.display(), bytes.len());
    }
    assert!(matches!(plot_bench(&serde_json::json!({"ticks": 1}), dir.path()), Err(PlotError::NoSamples)));
}

/// `ganglion bench loop --report F` writes every measured tick's jitter and
/// overhead as `samples_us` and draws the plots beside the report.
#[test]
fn bench_loop_report_carries_samples_and_plots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("loop.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
        .args(["bench", "loop", "--seconds", "0.5", "--rate-hz", "200", "--report"])
        .arg(&report)
        .output()
        .expect("ganglion bench loop runs");
    assert!(out.status.success(), "bench failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
    let ticks = r["ticks"].as_u64().expect("ticks");
    assert_eq!(ticks, 100, "0.5 s at 200 Hz: {r}");
    for key in ["overhead_us", "jitter_us"] {
        let samples = r[key]["samples_us"].as_array().unwrap_or_else(|| panic!("{key}.samples_us missing"));
        assert_eq!(samples.len() as u64, ticks, "{key}: one sample per measured tick");
        let max = samples.iter().filter_map(|v| v.as_f64()).fold(0.0f64, f64::max);
        // The histogram's max (3 significant digits) and the raw max agree.
        let hist_max = r[key]["max"].as_f64().expect("max");
        assert!((max - hist_max).abs() <= hist_max * 0.01 + 0.01, "{key}: raw max {max} vs histogram max {hist_max}");
    }
    let plots = dir.path().join("loop-plots");
    for name in ["jitter_us-hist.png", "jitter_us-time.png", "overhead_us-hist.png"] {
        let bytes = std::fs::read(plots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h) = png_size(&bytes);
        assert!(w >= 400 && h >= 200, "{name}: {w}x{h}");
    }
}
