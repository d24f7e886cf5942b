//! Calibrating a world model's surprise threshold from recorded nominal
//! runs, instead of a fixed recipe.
//!
//! Surprise is the RMS difference between a world model's predicted and
//! observed latents (policies/README.md), in the latent's own units, so a
//! threshold only means something for the model it was measured on. The
//! threshold is `margin ×` the `percentile`-th percentile (nearest rank) of
//! the surprise of every chunk the policy produced *while it drove* (ticks
//! in `nominal` or `degraded`) in recordings of runs without faults. Chunks
//! computed while the fallback drove, or without a comparison (no history
//! yet), are left out.

use ganglion_core::Mode;

use super::read::Recording;
use super::row::ResultStatus;

/// What [`calibrate_surprise`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SurpriseCalibration {
    /// Chunks with a compared surprise, collected while the policy drove.
    pub chunks: usize,
    /// Recordings read.
    pub recordings: usize,
    /// The percentile asked for (0 < p ≤ 100).
    pub percentile: f64,
    /// Its value over the chunks (nearest rank).
    pub percentile_value: f32,
    /// The largest surprise seen.
    pub max: f32,
    /// The margin the threshold adds.
    pub margin: f64,
    /// `margin × percentile_value`: the `surprise_threshold` to put into
    /// the bundle's manifest (then sign it again).
    pub threshold: f32,
}

/// Why no threshold could be calibrated.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    /// `percentile` outside (0, 100] or `margin` below 1.
    #[error("percentile must be in (0, 100] and margin >= 1")]
    BadParameters,
    /// Too few compared chunks to estimate the percentile.
    #[error(
        "{found} chunks with a compared surprise while the policy drove; need at least {needed} for this percentile"
    )]
    TooFewChunks {
        /// Chunks found.
        found: usize,
        /// Chunks needed: enough that the percentile is not the maximum of a handful.
        needed: usize,
    },
}

/// The surprise values of `recording`'s chunks collected while the policy
/// drove, in log order.
pub fn driving_surprises(recording: &Recording) -> Vec<f32> {
    let mut ticks = recording.ticks.iter().peekable();
    let mut mode = Mode::Startup;
    let mut out = Vec::new();
    for r in &recording.results {
        // The mode of the tick that collected the result.
        while let Some(t) = ticks.next_if(|t| t.scheduled <= r.collected) {
            mode = t.mode;
        }
        let driving = matches!(mode, Mode::Nominal | Mode::Degraded);
        if let (true, ResultStatus::Ok, Some(s)) = (driving, r.status, r.chunk.surprise) {
            if s.is_finite() {
                out.push(s);
            }
        }
    }
    out
}

/// Calibrates the threshold over `recordings` (see the module docs).
pub fn calibrate_surprise(
    recordings: &[Recording],
    percentile: f64,
    margin: f64,
) -> Result<SurpriseCalibration, CalibrationError> {
    if !(percentile > 0.0 && percentile <= 100.0 && margin.is_finite() && margin >= 1.0) {
        return Err(CalibrationError::BadParameters);
    }
    let mut values: Vec<f32> = recordings.iter().flat_map(driving_surprises).collect();
    // At least 10 values beyond the percentile's rank, so the estimate is
    // not the maximum of a handful of chunks.
    // (The epsilon keeps 99.9 from rounding up to one more chunk.)
    let needed = ((1000.0 / (100.0 - percentile).max(1e-9) - 1e-6).ceil() as usize).clamp(10, 100_000);
    if values.len() < needed {
        return Err(CalibrationError::TooFewChunks { found: values.len(), needed });
    }
    values.sort_by(f32::total_cmp);
    let rank = ((percentile / 100.0 * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let percentile_value = values[rank - 1];
    Ok(SurpriseCalibration {
        chunks: values.len(),
        recordings: recordings.len(),
        percentile,
        percentile_value,
        max: values[values.len() - 1],
        margin,
        threshold: (f64::from(percentile_value) * margin) as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::row::{InferenceRow, TickRow};
    use ganglion_core::{hold_command, ActionChunk, JointVec, Stamp};

    /// A recording of `n` ticks, tick `i` in `mode(i)`, each collecting a
    /// chunk of surprise `surprise(i)`.
    fn recording(n: u64, mode: impl Fn(u64) -> Mode, surprise: impl Fn(u64) -> Option<f32>) -> Recording {
        let mut r = Recording::default();
        for i in 0..n {
            let t = Stamp::from_nanos(i * 10_000_000);
            r.ticks.push(TickRow::from_command(&hold_command(i, t, mode(i), JointVec::zeros(1))));
            let mut chunk = ActionChunk::with_capacity(1, 1);
            chunk.surprise = surprise(i);
            r.results.push(InferenceRow { collected: t, status: ResultStatus::Ok, chunk });
        }
        r
    }

    #[test]
    fn the_threshold_is_a_margin_over_the_percentile_of_driving_chunks() {
        // 1000 driving chunks with surprise 0.001 .. 1.000, then 100 chunks of
        // 50.0 under the fallback (a fault in the recording) that must not count.
        let r = recording(
            1100,
            |i| if i < 1000 { Mode::Nominal } else { Mode::Fallback },
            |i| Some(if i < 1000 { (i + 1) as f32 / 1000.0 } else { 50.0 }),
        );
        let c = calibrate_surprise(&[r], 99.0, 1.5).expect("calibrates");
        assert_eq!(c.chunks, 1000);
        assert!((c.percentile_value - 0.990).abs() < 1e-6, "{c:?}");
        assert!((c.max - 1.0).abs() < 1e-6);
        assert!((c.threshold - 1.485).abs() < 1e-5);
    }

    #[test]
    fn chunks_without_a_comparison_and_too_few_chunks_are_refused() {
        let r = recording(500, |_| Mode::Nominal, |i| (i % 2 == 0).then_some(0.1));
        assert_eq!(driving_surprises(&r).len(), 250);
        assert_eq!(
            calibrate_surprise(std::slice::from_ref(&r), 99.9, 1.2),
            Err(CalibrationError::TooFewChunks { found: 250, needed: 10_000 })
        );
        assert_eq!(calibrate_surprise(std::slice::from_ref(&r), 0.0, 1.2), Err(CalibrationError::BadParameters));
        assert_eq!(calibrate_surprise(&[r], 99.0, 0.5), Err(CalibrationError::BadParameters));
    }
}
