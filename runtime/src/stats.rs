//! Latency statistics of every report: one definition of the percentiles.

/// `{p50, p99, max}` in microseconds (3 decimals), the shape every report uses.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// [`Percentiles`] plus the raw samples (µs, in order), the shape the
/// plotter reads (`recorder::plot`: every `samples_us` array is a series).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampledPercentiles {
    /// The percentiles of the whole run.
    #[serde(flatten)]
    pub percentiles: Percentiles,
    /// Samples, µs, in tick order.
    pub samples_us: Vec<f64>,
}

impl SampledPercentiles {
    /// `h`'s percentiles with `samples_ns` as the series.
    pub fn new(h: &hdrhistogram::Histogram<u64>, samples_ns: &[u32]) -> Self {
        SampledPercentiles { percentiles: us(h), samples_us: samples_ns.iter().map(|&n| f64::from(n) / 1e3).collect() }
    }
}

/// Percentiles of a histogram of nanoseconds, in microseconds.
pub fn us(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
    let f = |ns: u64| (ns as f64 / 1e3 * 1000.0).round() / 1000.0;
    Percentiles { p50: f(h.value_at_quantile(0.5)), p99: f(h.value_at_quantile(0.99)), max: f(h.max()) }
}
