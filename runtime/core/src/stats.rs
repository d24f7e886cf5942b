//! Summary statistics of every report: one definition of a percentile.
//!
//! Percentiles are **nearest rank**: the `q` quantile of `n` samples is the
//! smallest sample with at least `⌈q·n⌉` samples at or below it, so it is
//! always a value that occurred, and p100 is the maximum. `hdrhistogram`'s
//! `value_at_quantile` follows the same definition (to the histogram's
//! precision), so the runtime's histograms (`ganglion::stats`) and the
//! sample lists here give comparable numbers across commands.

/// `p50`, `p99` and `max` of a sample: the shape of every latency in a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (sorted in place; non-finite values sort to
    /// the ends); zeros when empty.
    pub fn of(samples: &mut [f64]) -> Percentiles {
        samples.sort_by(f64::total_cmp);
        Percentiles::of_sorted(samples)
    }

    /// Percentiles of samples already in ascending order.
    pub fn of_sorted(sorted: &[f64]) -> Percentiles {
        Percentiles {
            p50: nearest_rank(sorted, 0.5),
            p99: nearest_rank(sorted, 0.99),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }

    /// Every field multiplied by `factor` (unit conversion).
    pub fn scaled(self, factor: f64) -> Percentiles {
        Percentiles { p50: self.p50 * factor, p99: self.p99 * factor, max: self.max * factor }
    }

    /// Every field rounded to three decimals (reports stay readable).
    pub fn rounded(self) -> Percentiles {
        Percentiles { p50: round3(self.p50), p99: round3(self.p99), max: round3(self.max) }
    }
}

/// Mean, count and the percentiles of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Median (= `p50`; kept for reports that name it so).
    pub median: f64,
    /// 50th percentile.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values, non-finite ones included.
    pub count: usize,
}

impl Summary {
    /// Summary of the finite values of `values`; `count` counts all of
    /// them. Zeros when none is finite.
    pub fn of(values: &[f64]) -> Summary {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Summary { count: values.len(), ..Summary::default() };
        }
        v.sort_by(f64::total_cmp);
        let median = nearest_rank(&v, 0.5);
        Summary {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            median,
            p50: median,
            p90: nearest_rank(&v, 0.9),
            p99: nearest_rank(&v, 0.99),
            max: v[v.len() - 1],
            count: values.len(),
        }
    }

    /// The `p50`/`p99`/`max` part.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles { p50: self.p50, p99: self.p99, max: self.max }
    }
}

/// The nearest-rank `q` quantile (`0 ≤ q ≤ 1`) of ascending `sorted`; 0 when empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_a_sample_and_p100_the_max() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), 50.0);
        assert_eq!(nearest_rank(&v, 0.99), 99.0);
        assert_eq!(nearest_rank(&v, 0.991), 100.0);
        assert_eq!(nearest_rank(&v, 1.0), 100.0);
        assert_eq!(nearest_rank(&v, 0.0), 1.0);
        assert_eq!(nearest_rank(&[7.0], 0.99), 7.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
        // Two samples: the median is the lower one, never an interpolation.
        assert_eq!(nearest_rank(&[1.0, 3.0], 0.5), 1.0);
    }

    #[test]
    fn percentiles_sort_and_summary_skips_non_finite_values() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(Percentiles::of(&mut v), Percentiles { p50: 3.0, p99: 5.0, max: 5.0 });
        let s = Summary::of(&[2.0, f64::NAN, 4.0, f64::INFINITY]);
        assert_eq!((s.count, s.mean, s.p50, s.max), (4, 3.0, 2.0, 4.0));
        assert_eq!(Summary::of(&[f64::NAN]).count, 1);
        assert_eq!(Percentiles { p50: 1.23456, p99: 2.0, max: 3.0 }.rounded().p50, 1.235);
    }
}
