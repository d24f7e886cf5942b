//! Latency statistics of every report. The definitions (nearest-rank
//! percentiles, [`Percentiles`], [`Summary`]) are `ganglion_core::stats`,
//! shared with `policies` and the rig; this module adds the runtime's
//! histograms (`hdrhistogram`, whose `value_at_quantile` is nearest rank
//! too) and the series the plotter reads.

pub use ganglion_core::stats::{nearest_rank, Percentiles, Summary};
use hdrhistogram::Histogram;

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
    pub fn new(h: &Histogram<u64>, samples_ns: &[u32]) -> Self {
        SampledPercentiles { percentiles: us(h), samples_us: samples_ns.iter().map(|&n| f64::from(n) / 1e3).collect() }
    }
}

/// Percentiles of a histogram of nanoseconds, in microseconds (3 decimals);
/// zeros when empty.
pub fn us(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles { p50: h.value_at_quantile(0.5) as f64, p99: h.value_at_quantile(0.99) as f64, max: h.max() as f64 }
        .scaled(1e-3)
        .rounded()
}

/// [`Summary`] of a histogram of nanoseconds, in microseconds.
pub fn summary_us(h: &Histogram<u64>) -> Summary {
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
    if h.is_empty() {
        return Summary::default();
    }
    Summary {
        mean: h.mean() / 1e3,
        median: q(0.5),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        max: h.max() as f64 / 1e3,
        count: h.len() as usize,
    }
}
