//! Guided real-time chunking, as LeRobot 0.6.1 runs it
//! (`lerobot.policies.rtc`, `dataflow.head.committed = "guided"`).
//!
//! While a chunk is computed the robot keeps executing the previous one. The
//! policy keeps that previous chunk (normalized, as the model produced it)
//! and, at every flow-matching step, pulls the model's prediction of the
//! clean sample, `x₁ = x − t·v`, towards what is left of it:
//!
//! ```text
//! v ← v − g(t) · (prev − x₁) · w
//! ```
//!
//! `prev` row i is the previous chunk's action for the same time as the new
//! chunk's action i (the previous chunk shifted by the policy steps between
//! the two observations, zero beyond its end and in the padding values);
//! `w` is LeRobot's prefix schedule over the rows: 1 for the `d` actions
//! executed while the inference runs, then falling to 0 at the execution
//! horizon; `g(t)` LeRobot's guidance weight, capped. LeRobot's
//! `RTCProcessor.denoise_step` evaluates the velocity before it marks `x_t`
//! as requiring gradients, so the "correction" it obtains from autograd is
//! the weighted error itself (the identity, not the model's Jacobian, is
//! differentiated); `policies/lerobot/make_rtc_golden.py` checks that and
//! this reproduces it.
//!
//! All buffers are sized at load; nothing allocates per inference.

use ganglion_core::{steps_nearest, Observation, Stamp};

use crate::manifest::{GuidanceSpec, PrefixSchedule};

/// The previous chunk and this inference's guidance.
#[derive(Debug, Clone)]
pub(crate) struct Guide {
    spec: GuidanceSpec,
    /// Joints: the values of each action kept from a chunk (the rest of the
    /// `width` are padding, guided towards 0 as LeRobot pads the leftover).
    n: usize,
    /// Actions in the sample.
    rows: usize,
    /// Values per action in the sample.
    width: usize,
    /// The previous chunk, normalized, `rows × width` (padding zero).
    prev: Vec<f32>,
    /// Its observation's stamp; `None` before the first chunk.
    prev_stamp: Option<Stamp>,
    /// This inference's target: the previous chunk shifted to the new
    /// observation's time, `rows × width`.
    left_over: Vec<f32>,
    /// This inference's weight per row.
    weights: Vec<f32>,
    /// Whether this inference is guided.
    active: bool,
}

impl Guide {
    /// Buffers for a sample of `rows × width` values whose first `n` per
    /// action are the joints.
    pub(crate) fn new(spec: GuidanceSpec, n: usize, rows: usize, width: usize) -> Self {
        Guide {
            spec,
            n: n.min(width),
            rows,
            width,
            prev: vec![0.0; rows * width],
            prev_stamp: None,
            left_over: vec![0.0; rows * width],
            weights: vec![0.0; rows],
            active: false,
        }
    }

    /// Sets up this inference: guided when there is a previous chunk, the
    /// fallback has not held the robot since (`obs.held` forgets it: the
    /// robot did not follow it), and it reaches the new observation's time.
    /// Returns the actions executed during the inference, which the weights
    /// hold at 1: `obs.committed.len() + 1` (the chunk's action 0, at the
    /// observation's stamp, is past too when the chunk arrives); 0 when not
    /// guided.
    pub(crate) fn prepare(&mut self, obs: &Observation, step_ns: u64) -> usize {
        self.active = false;
        if obs.held {
            self.prev_stamp = None;
        }
        let Some(prev_stamp) = self.prev_stamp else { return 0 };
        if obs.stamp < prev_stamp {
            return 0;
        }
        let shift = steps_nearest(obs.stamp.as_nanos() - prev_stamp.as_nanos(), step_ns);
        let Some(left) = self.rows.checked_sub(shift).filter(|&l| l > 0) else { return 0 };
        let kept = left * self.width;
        let (Some(dst), Some(src)) = (self.left_over.get_mut(..kept), self.prev.get(shift * self.width..)) else {
            return 0;
        };
        dst.copy_from_slice(src);
        self.left_over[kept..].fill(0.0);
        let delay = obs.committed.len() + 1;
        // LeRobot clamps the horizon to the leftover's length.
        prefix_weights(self.spec.schedule, delay, self.spec.execution_horizon.min(left), &mut self.weights);
        self.active = true;
        delay
    }

    /// Guides the velocity `v` of the sample `x` at flow time `t` (in place).
    pub(crate) fn apply(&self, x: &[f32], v: &mut [f32], t: f32) {
        if !self.active {
            return;
        }
        let g = guidance_weight(t, self.spec.max_guidance_weight);
        let rows = x.chunks_exact(self.width).zip(v.chunks_exact_mut(self.width));
        for (((x, v), prev), &w) in rows.zip(self.left_over.chunks_exact(self.width)).zip(&self.weights) {
            for ((x, v), prev) in x.iter().zip(v.iter_mut()).zip(prev) {
                let x1 = x - t * *v;
                *v -= g * ((prev - x1) * w);
            }
        }
    }

    /// Keeps the final sample `x` of the observation at `stamp` as the
    /// previous chunk: its joints' values, the padding zero.
    pub(crate) fn remember(&mut self, x: &[f32], stamp: Stamp) {
        for (dst, src) in self.prev.chunks_exact_mut(self.width).zip(x.chunks_exact(self.width)) {
            dst[..self.n].copy_from_slice(&src[..self.n]);
            dst[self.n..].fill(0.0);
        }
        self.prev_stamp = Some(stamp);
    }

    /// Forgets the previous chunk (a new episode).
    pub(crate) fn forget(&mut self) {
        self.prev_stamp = None;
        self.active = false;
    }

    /// This inference's weights (for tests and reports).
    #[cfg(test)]
    fn weights(&self) -> &[f32] {
        &self.weights
    }
}

/// LeRobot's `get_prefix_weights(start = delay, end = horizon, total =
/// out.len())` into `out`.
pub(crate) fn prefix_weights(schedule: PrefixSchedule, delay: usize, horizon: usize, out: &mut [f32]) {
    let total = out.len();
    let end = horizon.min(total);
    let start = delay.min(end);
    out.fill(0.0);
    match schedule {
        PrefixSchedule::Zeros => out[..start].fill(1.0),
        PrefixSchedule::Ones => out[..end].fill(1.0),
        PrefixSchedule::Linear | PrefixSchedule::Exp => {
            out[..start].fill(1.0);
            // torch.linspace(1, 0, count + 2)[1:-1] between them.
            let count = end - start;
            for (j, w) in out[start..end].iter_mut().enumerate() {
                let lin = 1.0 - (j + 1) as f32 / (count + 1) as f32;
                *w = match schedule {
                    PrefixSchedule::Exp => lin * lin.exp_m1() / (std::f32::consts::E - 1.0),
                    _ => lin,
                };
            }
        }
    }
}

/// LeRobot's guidance weight at flow time `t` (`tau = 1 − t`): `min(c ·
/// ((1−tau)² + tau²) / (1−tau)², max)` with `c = (1−tau)/tau`, an infinite
/// value taken as `max` and NaN as 0 (`torch.nan_to_num`), in f32 as torch
/// computes it.
pub(crate) fn guidance_weight(t: f32, max: f32) -> f32 {
    let tau = (1.0 - f64::from(t)) as f32;
    let finite = |v: f32| {
        if v.is_nan() {
            0.0
        } else if v == f32::INFINITY {
            max
        } else {
            v
        }
    };
    let sq = (1.0 - tau) * (1.0 - tau);
    let inv_r2 = (sq + tau * tau) / sq;
    let c = finite((1.0 - tau) / tau);
    finite(c * inv_r2).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganglion_core::{JointVec, PolicySpec};

    fn weights(schedule: PrefixSchedule, delay: usize, horizon: usize, total: usize) -> Vec<f32> {
        let mut w = vec![9.0; total];
        prefix_weights(schedule, delay, horizon, &mut w);
        w
    }

    #[test]
    fn prefix_weights_are_lerobots() {
        // torch: RTCProcessor(RTCConfig(prefix_attention_schedule=LINEAR)).get_prefix_weights(2, 5, 8)
        // = [1, 1, 0.75, 0.5, 0.25, 0, 0, 0]
        assert_eq!(weights(PrefixSchedule::Linear, 2, 5, 8), [1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0]);
        // The delay beyond the horizon: ones up to the horizon.
        assert_eq!(weights(PrefixSchedule::Linear, 7, 3, 5), [1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(weights(PrefixSchedule::Ones, 1, 3, 5), [1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(weights(PrefixSchedule::Zeros, 2, 4, 5), [1.0, 1.0, 0.0, 0.0, 0.0]);
        let exp = weights(PrefixSchedule::Exp, 1, 3, 4);
        let lin = [2.0f32 / 3.0, 1.0 / 3.0];
        for (w, l) in exp[1..3].iter().zip(lin) {
            assert!((w - l * l.exp_m1() / (std::f32::consts::E - 1.0)).abs() < 1e-7);
        }
        assert_eq!((exp[0], exp[3]), (1.0, 0.0));
    }

    #[test]
    fn the_guidance_weight_is_lerobots() {
        // t = 1 (tau = 0): c is infinite, taken as the cap; inv_r2 = 1.
        assert_eq!(guidance_weight(1.0, 10.0), 10.0);
        // t = 0.5: c = 1, inv_r2 = 2.
        assert!((guidance_weight(0.5, 10.0) - 2.0).abs() < 1e-6);
        // t = 0.9 and 0.1: (t² + tau²) / (t·tau) = 0.82 / 0.09.
        for t in [0.9f32, 0.1] {
            assert!((guidance_weight(t, 10.0) - 0.82 / 0.09).abs() < 1e-4, "{t}");
        }
        assert_eq!(guidance_weight(0.9, 5.0), 5.0, "capped");
        // t = 0: 0 · inf is NaN, taken as 0.
        assert_eq!(guidance_weight(0.0, 10.0), 0.0);
    }

    fn spec(n_joints: usize, chunk_len: usize) -> PolicySpec {
        PolicySpec {
            name: "guided".into(),
            n_joints,
            chunk_len,
            step_ns: 100,
            action_kind: ganglion_core::ActionKind::AbsolutePosition,
            cameras: Vec::new(),
            expected_latency_ns: 100,
            surprise_threshold: None,
            history: 1,
            rolls_at_reply: false,
        }
    }

    #[test]
    fn the_previous_chunk_is_shifted_to_the_new_observation() {
        let mut g = Guide::new(GuidanceSpec { execution_horizon: 4, ..GuidanceSpec::default() }, 2, 6, 3);
        let mut obs = Observation::for_spec(&spec(2, 6));
        // No chunk yet: not guided.
        assert_eq!(g.prepare(&obs, 100), 0);
        let x: Vec<f32> = (0..18).map(|v| v as f32).collect();
        g.remember(&x, Stamp::from_nanos(1_000));
        obs.stamp = Stamp::from_nanos(1_200);
        // Nothing committed (the latency rounds to 0 steps): action 0 alone.
        assert_eq!(g.prepare(&obs, 100), 1);
        assert!(obs.committed.push(JointVec::splat(2, 0.0)).is_ok());
        assert_eq!(g.prepare(&obs, 100), 2, "one committed + action 0");
        // Two steps later: rows 2.. of the previous chunk, padding value zero.
        assert_eq!(&g.left_over[..6], &[6.0, 7.0, 0.0, 9.0, 10.0, 0.0]);
        assert_eq!(&g.left_over[12..], &[0.0; 6], "beyond the previous chunk");
        // 4 rows left; horizon 4: [1, 1, 2/3, 1/3, 0, 0].
        let w = g.weights();
        assert_eq!((w[0], w[1], w[4], w[5]), (1.0, 1.0, 0.0, 0.0));
        assert!((w[2] - 2.0 / 3.0).abs() < 1e-7 && (w[3] - 1.0 / 3.0).abs() < 1e-7);
        // The previous chunk all in the past: not guided.
        obs.stamp = Stamp::from_nanos(1_600);
        assert_eq!(g.prepare(&obs, 100), 0);
        // Held by the fallback: the previous chunk is forgotten for good.
        obs.stamp = Stamp::from_nanos(1_200);
        obs.held = true;
        assert_eq!(g.prepare(&obs, 100), 0);
        obs.held = false;
        assert_eq!(g.prepare(&obs, 100), 0);
    }

    #[test]
    fn guidance_pulls_the_clean_sample_towards_the_previous_chunk() {
        let mut g = Guide::new(GuidanceSpec::default(), 1, 2, 1);
        g.remember(&[0.5, 0.5], Stamp::from_nanos(0));
        let mut obs = Observation::for_spec(&spec(1, 2));
        assert!(obs.committed.push(JointVec::splat(1, 0.0)).is_ok());
        assert_eq!(g.prepare(&obs, 100), 2);
        // x = 1, v = 1 at t = 0.5: x1 = 0.5 - the target already; at x = 2, x1 = 1.5: pulled by 2·(0.5 - 1.5).
        let mut v = [1.0, 1.0];
        g.apply(&[1.0, 2.0], &mut v, 0.5);
        assert!((v[0] - 1.0).abs() < 1e-6 && (v[1] - 3.0).abs() < 1e-5, "{v:?}");
        g.forget();
        assert_eq!(g.prepare(&obs, 100), 0);
    }
}
