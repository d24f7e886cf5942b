//! Property and behaviour tests of the control algorithms: chunk executor,
//! safety shield, fallback controllers.

use ganglion::control::executor::{BlendMode, ChunkExecutor, ChunkRejected, ExecutorConfig};
use ganglion::control::fallback::{FallbackConfig, FallbackConfigError, FallbackController, FallbackKind};
use ganglion::control::shield::{Shield, ShieldConfig, ShieldMode, WorkspaceBox};
use ganglion_core::{ActionChunk, ActionKind, ArmModel, JointLimit, JointVec, Stamp, MAX_COMMITTED_STEPS};
use proptest::prelude::*;

const MS: u64 = 1_000_000;

fn limits(n: usize) -> Vec<JointLimit> {
    (0..n)
        .map(|j| JointLimit {
            position_min: -2.0 - 0.1 * j as f64,
            position_max: 2.0 + 0.2 * j as f64,
            velocity: 2.0 + 0.5 * j as f64,
            acceleration: 10.0 + 3.0 * j as f64,
            jerk: 200.0 + 50.0 * j as f64,
        })
        .collect()
}

fn chunk(obs_ns: u64, step_ns: u64, rows: &[Vec<f64>]) -> ActionChunk {
    let n = rows[0].len();
    let mut c = ActionChunk::with_capacity(rows.len(), n);
    c.set_steps(rows.len());
    c.obs_stamp = Stamp(obs_ns);
    c.step_ns = step_ns;
    c.kind = ActionKind::AbsolutePosition;
    for (i, r) in rows.iter().enumerate() {
        c.step_mut(i).copy_from_slice(r);
    }
    c
}

/// A 2-joint chunk whose joint values are `f(t_ms)` at each step time.
fn chunk_fn(obs_ms: u64, step_ms: u64, steps: usize, f: impl Fn(f64) -> [f64; 2]) -> ActionChunk {
    let rows: Vec<Vec<f64>> = (0..steps).map(|i| f((obs_ms + i as u64 * step_ms) as f64).to_vec()).collect();
    chunk(obs_ms * MS, step_ms * MS, &rows)
}

fn no_ramp(blend: BlendMode) -> ExecutorConfig {
    ExecutorConfig { blend, min_seam_step: 10.0, ..ExecutorConfig::default() }
}

fn jv(v: &[f64]) -> JointVec {
    JointVec::from_slice(v).expect("fits")
}

// ---------------------------------------------------------------- executor

#[test]
fn alignment_skips_overtaken_steps() {
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Replace), 2, 16, MS, 50 * MS);
    let c = chunk_fn(0, 100, 10, |t| [t * 1e-3, -t * 1e-3]);
    let info = ex.accept_with_base(&c, &jv(&[0.2, -0.2]), Stamp(250 * MS)).expect("accepted");
    // Steps at 0, 100, 200 ms are overtaken; 300 ms is < half a step after
    // 250 ms? No: 300 ≥ 250 + 50, so it is kept.
    assert_eq!(info.skipped, 3);
    assert_eq!(info.kept, 7);
    assert_eq!(info.latency_ns, 250 * MS);
    let knots: Vec<(Stamp, JointVec)> = ex.knots().map(|(t, q)| (t, *q)).collect();
    assert_eq!(knots[0].0, Stamp(250 * MS), "head at accept time");
    for (i, (t, q)) in knots.iter().enumerate().skip(1) {
        let step = 2 + i as u64;
        assert_eq!(*t, Stamp(step * 100 * MS));
        assert!((q[0] - step as f64 * 0.1).abs() < 1e-12, "knot {i} = {q:?}");
    }
    // A step due in less than half a step is overtaken too.
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Replace), 2, 16, MS, 50 * MS);
    let info = ex.accept_with_base(&c, &jv(&[0.2, -0.2]), Stamp(260 * MS)).expect("accepted");
    assert_eq!(info.skipped, 4);
    // All overtaken: rejected, plan untouched, latency still learned.
    let late = chunk_fn(0, 100, 3, |_| [0.0, 0.0]);
    assert_eq!(ex.accept(&late, Stamp(400 * MS)), Err(ChunkRejected::Expired));
    assert_eq!(ex.knots().count(), 7);
}

#[test]
fn ensemble_weights_older_predictions_more() {
    let decay = 0.5;
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Ensemble { decay }), 2, 16, MS, 50 * MS);
    let a = |t: f64| [t * 1e-3, 1.0];
    let b = |t: f64| [t * 1e-3 + 0.04, 1.2];
    ex.accept_with_base(&chunk_fn(0, 100, 10, a), &jv(&[0.0, 1.0]), Stamp(10 * MS)).expect("a");
    ex.accept_with_base(&chunk_fn(100, 100, 10, b), &jv(&[0.1, 1.0]), Stamp(150 * MS)).expect("b");
    let w = (-decay * 1.0f64).exp();
    for (t, q) in ex.knots().skip(1) {
        let t_ms = t.as_nanos() as f64 / MS as f64;
        let expect = if t_ms <= 900.0 {
            let (qa, qb) = (a(t_ms), b(t_ms));
            [(qa[0] + w * qb[0]) / (1.0 + w), (qa[1] + w * qb[1]) / (1.0 + w)]
        } else {
            b(t_ms)
        };
        assert!((q[0] - expect[0]).abs() < 1e-9 && (q[1] - expect[1]).abs() < 1e-9, "t={t_ms}: {q:?} vs {expect:?}");
    }
    // A third chunk: the oldest prediction keeps weight 1, then e^-k, e^-2k.
    let c = |t: f64| [t * 1e-3 - 0.02, 0.9];
    ex.accept_with_base(&chunk_fn(200, 100, 10, c), &jv(&[0.2, 1.0]), Stamp(250 * MS)).expect("c");
    let (t, q) = ex.knots().nth(1).map(|(t, q)| (t, *q)).expect("knot");
    let t_ms = t.as_nanos() as f64 / MS as f64;
    let w2 = (-decay * 2.0f64).exp();
    let expect = (a(t_ms)[1] + w * b(t_ms)[1] + w2 * c(t_ms)[1]) / (1.0 + w + w2);
    assert!((q[1] - expect).abs() < 1e-9, "{} vs {expect}", q[1]);
}

#[test]
fn frozen_prefix_keeps_the_old_plan_first() {
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::FrozenPrefix { steps: 2 }), 2, 16, MS, 50 * MS);
    let a = |t: f64| [t * 1e-3, 0.5];
    let b = |t: f64| [t * 1e-3 + 0.05, 0.7];
    ex.accept_with_base(&chunk_fn(0, 100, 10, a), &jv(&[0.0, 0.5]), Stamp(10 * MS)).expect("a");
    ex.accept_with_base(&chunk_fn(100, 100, 10, b), &jv(&[0.1, 0.5]), Stamp(150 * MS)).expect("b");
    let knots: Vec<(f64, JointVec)> = ex.knots().skip(1).map(|(t, q)| (t.as_nanos() as f64 / MS as f64, *q)).collect();
    for (i, (t, q)) in knots.iter().enumerate() {
        let expect = if i < 2 { a(*t) } else { b(*t) };
        assert!((q[0] - expect[0]).abs() < 1e-9 && (q[1] - expect[1]).abs() < 1e-9, "knot {i} t={t}: {q:?}");
    }
}

#[test]
fn seam_is_ramped_when_the_new_chunk_jumps() {
    let cfg = ExecutorConfig { blend: BlendMode::Replace, min_seam_step: 0.001, ..ExecutorConfig::default() };
    let mut ex = ChunkExecutor::new(&cfg, 2, 16, MS, 50 * MS);
    ex.accept_with_base(&chunk_fn(0, 100, 10, |t| [t * 1e-4, 0.0]), &jv(&[0.0, 0.0]), Stamp(10 * MS)).expect("a");
    // Jumps 0.5 rad with in-chunk steps of 0.01 rad.
    let info = ex
        .accept_with_base(&chunk_fn(100, 100, 10, |t| [0.5 + t * 1e-4, 0.0]), &jv(&[0.0, 0.0]), Stamp(150 * MS))
        .expect("b");
    assert!(info.ramped);
    let q: Vec<f64> = ex.knots().skip(1).map(|(_, q)| q[0]).collect();
    let mut prev = 0.01; // old plan one step before the first new knot (100 ms)
    for x in q {
        assert!((x - prev).abs() <= 0.01 + 1e-12, "step {} too large", x - prev);
        prev = x;
    }
}

/// Position and velocity at `t` via a clone, so probing never counts starvation.
fn probe(ex: &ChunkExecutor, t: u64) -> (JointVec, JointVec, bool) {
    let mut e = ex.clone();
    let mut p = JointVec::zeros(2);
    let mut v = JointVec::zeros(2);
    let ok = e.action_at(Stamp(t), &mut p, &mut v);
    (p, v, ok)
}

fn assert_c1_at(ex: &ChunkExecutor, t: u64, what: &str) {
    let h = 1_000; // 1 µs
    let (p0, v0, _) = probe(ex, t - h);
    let (p1, v1, _) = probe(ex, t + h);
    let (pm, vm, _) = probe(ex, t);
    for k in 0..2 {
        let fd = (p1[k] - p0[k]) / (2.0 * h as f64 * 1e-9);
        assert!((fd - vm[k]).abs() < 1e-3 * (1.0 + vm[k].abs()), "{what}: velocity {} vs slope {fd} at {t}", vm[k]);
        assert!((v1[k] - v0[k]).abs() < 1e-2 * (1.0 + vm[k].abs()), "{what}: velocity jump at {t}");
        assert!((p1[k] - pm[k]).abs() < 1e-4 && (pm[k] - p0[k]).abs() < 1e-4, "{what}: position jump at {t}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Across random chunk sequences: knot steps never exceed the largest
    /// in-chunk step (seam included), the trajectory is C¹ at knots and at
    /// plan switches, and no kept knot is overtaken.
    #[test]
    fn executor_seams_and_continuity(
        ensemble in any::<bool>(),
        offsets in prop::collection::vec((-0.3f64..0.3, -0.3f64..0.3), 1..5),
        slopes in prop::collection::vec((-2e-3f64..2e-3, -2e-3f64..2e-3), 5),
        latency_ms in 10u64..180,
        min_seam in 0.001f64..0.02,
    ) {
        let blend = if ensemble { BlendMode::Ensemble { decay: 0.1 } } else { BlendMode::Replace };
        let cfg = ExecutorConfig { blend, min_seam_step: min_seam, ..ExecutorConfig::default() };
        let (step, steps) = (50u64, 12usize);
        let mut ex = ChunkExecutor::new(&cfg, 2, steps, MS, 50 * MS);
        let base = jv(&[0.0, 0.0]);
        for (i, (o0, o1)) in offsets.iter().enumerate() {
            let (s0, s1) = slopes[i];
            let obs = i as u64 * 200;
            let now = (obs + latency_ms) * MS;
            let c = chunk_fn(obs, step, steps, |t| [o0 + s0 * t, o1 + s1 * t]);
            let mut max_step = [min_seam; 2];
            for r in 1..steps {
                for (k, m) in max_step.iter_mut().enumerate() {
                    *m = m.max((c.step(r)[k] - c.step(r - 1)[k]).abs());
                }
            }
            let before = ex.clone();
            let had_plan = before.plan_end().is_some();
            let (p_now, v_now, covered) = probe(&before, now);
            match ex.accept_with_base(&c, &base, Stamp(now)) {
                Ok(_) => {}
                Err(ChunkRejected::Expired) => continue,
                Err(e) => panic!("unexpected rejection {e:?}"),
            }
            let knots: Vec<(u64, JointVec)> = ex.knots().map(|(t, q)| (t.as_nanos(), *q)).collect();
            prop_assert!(knots.iter().skip(1).all(|(t, _)| *t >= now + step * MS / 2));
            // Seam reference: the old plan one policy step before the first new knot.
            let mut prev = if had_plan { probe(&before, knots[1].0 - step * MS).0 } else { knots[0].1 };
            for (_, q) in knots.iter().skip(1) {
                for k in 0..2 {
                    prop_assert!((q[k] - prev[k]).abs() <= max_step[k] + 1e-9,
                        "step {} > {}", (q[k] - prev[k]).abs(), max_step[k]);
                }
                prev = *q;
            }
            // C¹ switch: the new plan starts where the old one was, as fast.
            if had_plan && covered {
                let (p, v, _) = probe(&ex, now);
                for k in 0..2 {
                    prop_assert!((p[k] - p_now[k]).abs() < 1e-9);
                    prop_assert!((v[k] - v_now[k]).abs() < 1e-6 * (1.0 + v_now[k].abs()));
                }
            }
            for (t, _) in knots.iter().skip(1).take(knots.len().saturating_sub(2)) {
                assert_c1_at(&ex, *t, "knot");
            }
        }
    }
}

#[test]
fn interpolation_passes_through_knots_and_reports_starvation() {
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Replace), 2, 16, MS, 50 * MS);
    let f = |t: f64| [(t * 3e-3).sin(), (t * 2e-3).cos()];
    ex.accept_with_base(&chunk_fn(0, 100, 10, f), &jv(&f(0.0)), Stamp(40 * MS)).expect("a");
    for (t, q) in ex.knots().skip(1) {
        let (p, _, ok) = probe(&ex, t.as_nanos());
        assert!(ok);
        assert!((p[0] - q[0]).abs() < 1e-12 && (p[1] - q[1]).abs() < 1e-12);
    }
    let end = ex.plan_end().expect("plan").as_nanos();
    let (mut p, mut v) = (JointVec::zeros(2), JointVec::zeros(2));
    assert!(ex.action_at(Stamp(end), &mut p, &mut v));
    assert_eq!(ex.starved_ticks(), 0);
    assert!(!ex.action_at(Stamp(end + 1), &mut p, &mut v));
    assert!(!ex.action_at(Stamp(end + MS), &mut p, &mut v));
    assert_eq!(ex.starved_ticks(), 2);
    assert_eq!(&*v, &[0.0, 0.0]);
    ex.reset();
    assert!(!ex.action_at(Stamp(0), &mut p, &mut v));
    assert_eq!(ex.starved_ticks(), 3);
}

#[test]
fn requests_when_horizon_drops_below_learned_latency() {
    let cfg =
        ExecutorConfig { latency_margin_ns: 5 * MS, min_request_interval_ns: 30 * MS, ..no_ramp(BlendMode::Replace) };
    let mut ex = ChunkExecutor::new(&cfg, 2, 16, MS, 50 * MS);
    assert!(ex.should_request(Stamp(0)), "no plan: request");
    ex.mark_requested(Stamp(0));
    assert!(!ex.should_request(Stamp(10 * MS)), "minimum interval");
    // Plan from obs 0 to 900 ms, accepted at 60 ms (latency 60 ms ≥ declared 50).
    ex.accept_with_base(&chunk_fn(0, 100, 10, |_| [0.0, 0.0]), &jv(&[0.0, 0.0]), Stamp(60 * MS)).expect("a");
    assert_eq!(ex.latency_p99_ns(), 60 * MS);
    assert_eq!(ex.remaining_horizon_ns(Stamp(800 * MS)), 100 * MS);
    // Threshold 60 + 5 = 65 ms before the end.
    assert!(!ex.should_request(Stamp(835 * MS)));
    assert!(ex.should_request(Stamp(836 * MS)));
    // Learned online: with 1..=100 ms (and the accepted chunk's 60 ms) in
    // the window, p99 = 99 ms and the median is 51 ms.
    for ms in 1..=100 {
        ex.observe_latency(ms * MS);
    }
    assert_eq!(ex.latency_p99_ns(), 99 * MS);
    assert_eq!(ex.latency_p50_ns(), 51 * MS);
    assert!(!ex.should_request(Stamp(795 * MS)));
    assert!(ex.should_request(Stamp(797 * MS)));
    // The window forgets: 128 fast samples replace the slow ones.
    for _ in 0..128 {
        ex.observe_latency(MS);
    }
    assert_eq!(ex.latency_p99_ns(), MS);
}

/// The expected latency (the median: how many actions are committed for
/// latency compensation) is measured from the first chunk that comes back;
/// the declared figure stands in only before. The p99, which decides when
/// to ask, stays at least the declared one for the first 8 chunks.
#[test]
fn the_expected_latency_is_measured_from_the_first_chunk() {
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Replace), 2, 16, MS, 50 * MS);
    assert_eq!((ex.latency_p50_ns(), ex.latency_p99_ns()), (50 * MS, 50 * MS), "declared until a chunk is back");
    ex.observe_latency(2 * MS);
    assert_eq!((ex.latency_p50_ns(), ex.latency_p99_ns()), (2 * MS, 50 * MS), "one fast chunk");
    let mut out = heapless::Vec::<JointVec, MAX_COMMITTED_STEPS>::new();
    ex.accept_with_base(&chunk_fn(0, 100, 10, |_| [0.0, 0.0]), &jv(&[0.0, 0.0]), Stamp(2 * MS)).expect("plan");
    ex.committed_steps(Stamp(10 * MS), 100 * MS, false, &mut out);
    assert!(out.is_empty(), "2 ms is no policy step: nothing to commit ({} committed)", out.len());
    for _ in 0..7 {
        ex.observe_latency(2 * MS);
    }
    assert_eq!(ex.latency_p99_ns(), 2 * MS, "after 8 chunks the tail is measured too");
}

#[test]
fn committed_steps_follow_the_plan_for_the_expected_latency() {
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Replace), 2, 16, MS, 120 * MS);
    let mut out = heapless::Vec::<JointVec, MAX_COMMITTED_STEPS>::new();
    ex.committed_steps(Stamp(0), 100 * MS, false, &mut out);
    assert!(out.is_empty(), "no plan, nothing committed");
    let f = |t: f64| [t * 1e-3, -t * 2e-3];
    ex.accept_with_base(&chunk_fn(0, 100, 10, f), &jv(&[0.0, 0.0]), Stamp(120 * MS)).expect("a");
    ex.committed_steps(Stamp(300 * MS), 100 * MS, false, &mut out);
    // Median latency 120 ms → the nearest whole number of steps, 1: 400 ms.
    assert_eq!(out.len(), 1);
    assert!((out[0][0] - 0.4).abs() < 1e-12 && (out[0][1] + 0.8).abs() < 1e-12, "{out:?}");
    // 180 ms → 2 steps: 400 and 500 ms.
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Replace), 2, 16, MS, 180 * MS);
    ex.accept_with_base(&chunk_fn(0, 100, 10, f), &jv(&[0.0, 0.0]), Stamp(180 * MS)).expect("b");
    ex.committed_steps(Stamp(300 * MS), 100 * MS, false, &mut out);
    assert_eq!(out.len(), 2);
    assert!((out[0][0] - 0.4).abs() < 1e-12 && (out[1][1] + 1.0).abs() < 1e-12, "{out:?}");
    // A policy that picks when its reply arrives (a split world model) gets
    // the plan as far as it goes, then its last position.
    ex.committed_steps(Stamp(300 * MS), 100 * MS, true, &mut out);
    assert_eq!(out.len(), MAX_COMMITTED_STEPS);
    assert!((out[0][0] - 0.4).abs() < 1e-12 && (out[5][0] - 0.9).abs() < 1e-12, "{out:?}");
    let last = out[31];
    assert!(out[6..].iter().all(|q| *q == last), "beyond the plan's end: its last position, {out:?}");
}

#[test]
fn bad_chunks_are_rejected_and_deltas_need_a_base() {
    let mut ex = ChunkExecutor::new(&no_ramp(BlendMode::Replace), 2, 4, MS, 50 * MS);
    let good = chunk_fn(100, 10, 4, |_| [0.1, 0.2]);
    let mut nan = good.clone();
    nan.step_mut(1)[0] = f64::NAN;
    assert_eq!(ex.accept(&nan, Stamp(100 * MS)), Err(ChunkRejected::NonFinite));
    assert_eq!(ex.accept(&good, Stamp(50 * MS)), Err(ChunkRejected::FromFuture));
    assert_eq!(ex.accept(&chunk_fn(0, 10, 5, |_| [0.0, 0.0]), Stamp(MS)), Err(ChunkRejected::Shape));
    assert_eq!(ex.accept(&chunk(0, MS, &[vec![0.0; 3]]), Stamp(MS)), Err(ChunkRejected::Shape));
    let mut delta = good.clone();
    delta.kind = ActionKind::DeltaPosition;
    assert_eq!(ex.accept(&delta, Stamp(100 * MS)), Err(ChunkRejected::NeedsBase));
    ex.accept_with_base(&delta, &jv(&[1.0, 2.0]), Stamp(100 * MS)).expect("delta with base");
    let last = ex.knots().last().map(|(_, q)| *q).expect("knot");
    assert!((last[0] - 1.1).abs() < 1e-12 && (last[1] - 2.2).abs() < 1e-12);
    let older = chunk_fn(50, 10, 4, |_| [0.1, 0.2]);
    assert_eq!(ex.accept(&older, Stamp(100 * MS)), Err(ChunkRejected::OutOfOrder));
    assert!(ExecutorConfig { min_seam_step: 0.0, ..ExecutorConfig::default() }.validate().is_err());
    assert!(ExecutorConfig { blend: BlendMode::Ensemble { decay: f64::NAN }, ..ExecutorConfig::default() }
        .validate()
        .is_err());
}

// ------------------------------------------------------------------ shield

/// Finite-difference check of an output sequence (starting at rest at
/// `start`) against `lims`; the tolerance covers rounding in the differences.
fn check_limits(start: &[f64], outs: &[JointVec], lims: &[JointLimit], t: f64) -> Result<(), String> {
    let n = lims.len();
    for j in 0..n {
        let l = &lims[j];
        let scale = outs.iter().map(|o| o[j].abs()).fold(start[j].abs(), f64::max).max(1.0);
        let eps = scale * f64::EPSILON * 16.0;
        let (mut p, mut v, mut a) = (start[j], 0.0, 0.0);
        for (k, o) in outs.iter().enumerate() {
            let x = o[j];
            if !x.is_finite() {
                return Err(format!("tick {k} joint {j}: non-finite output"));
            }
            let nv = (x - p) / t;
            let na = (nv - v) / t;
            let jk = (na - a) / t;
            if x < l.position_min - eps || x > l.position_max + eps {
                return Err(format!("tick {k} joint {j}: position {x}"));
            }
            if nv.abs() > l.velocity + 2.0 * eps / t {
                return Err(format!("tick {k} joint {j}: velocity {nv}"));
            }
            if na.abs() > l.acceleration + 4.0 * eps / (t * t) {
                return Err(format!("tick {k} joint {j}: acceleration {na}"));
            }
            if jk.abs() > l.jerk * (1.0 + 1e-9) + 8.0 * eps / (t * t * t) {
                return Err(format!("tick {k} joint {j}: jerk {jk}"));
            }
            (p, v, a) = (x, nv, na);
        }
    }
    Ok(())
}

fn desired_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -3.0f64..3.0,
        1 => Just(f64::NAN),
        1 => prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(1e300), Just(-1e300)],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Whatever is asked, including NaN and infinities, the output never
    /// breaks position, velocity, acceleration or jerk limits.
    #[test]
    fn shield_output_always_within_limits(
        start in prop::collection::vec(-1.9f64..1.9, 3),
        seq in prop::collection::vec((desired_value(), desired_value(), desired_value(), 1usize..40), 1..12),
        period_ms in prop_oneof![Just(1u64), Just(2), Just(10)],
        reject in any::<bool>(),
    ) {
        let lims = limits(3);
        let mode = if reject { ShieldMode::Reject } else { ShieldMode::Saturate };
        let cfg = ShieldConfig { mode, ..ShieldConfig::default() };
        let mut sh = Shield::new(&cfg, &lims, None, period_ms * MS).expect("valid shield");
        sh.reset(&jv(&start));
        let mut outs = Vec::new();
        let (mut p, mut v) = (JointVec::zeros(3), JointVec::zeros(3));
        for (a, b, c, hold) in seq {
            let d = jv(&[a, b, c]);
            for _ in 0..hold {
                let o = sh.apply(&d, &mut p, &mut v);
                prop_assert!(d.is_finite() || o.rejected);
                outs.push(p);
            }
        }
        // Then a long hold of a far target: must come to rest inside.
        for _ in 0..(3000 / period_ms) {
            sh.apply(&jv(&[5.0, -5.0, 0.0]), &mut p, &mut v);
            outs.push(p);
        }
        if let Err(e) = check_limits(&start, &outs, &lims, period_ms as f64 * 1e-3) {
            prop_assert!(false, "{}", e);
        }
    }

    /// The tool point stays in the workspace box for any desired motion.
    #[test]
    fn shield_keeps_the_tool_in_the_workspace(
        seq in prop::collection::vec((-1.5f64..1.5, -1.5f64..1.5, -1.5f64..1.5, 1usize..80), 1..10),
    ) {
        let lims = limits(3);
        let arm = ArmModel::three_dof();
        let bx = WorkspaceBox { min: [0.1, -0.4, 0.02], max: [0.6, 0.4, 0.5] };
        let cfg = ShieldConfig { workspace: Some(bx), ..ShieldConfig::default() };
        let mut sh = Shield::new(&cfg, &lims, Some(arm.clone()), 2 * MS).expect("valid shield");
        let start = [0.0, -0.3, 0.6];
        prop_assert!(bx.contains(&arm.tool_position(&start)));
        sh.reset(&jv(&start));
        let (mut p, mut v) = (JointVec::zeros(3), JointVec::zeros(3));
        let mut outs = Vec::new();
        let mut worst: f64 = 0.0;
        for (a, b, c, hold) in seq {
            for _ in 0..hold {
                sh.apply(&jv(&[a, b, c]), &mut p, &mut v);
                worst = worst.max(bx.distance_outside(&arm.tool_position(&p)));
                outs.push(p);
            }
        }
        // Planning uses the box shrunk by 10 mm; what can still leak past
        // the real box is the small reversal after a braking joint stops
        // (the path check assumes it holds): about a millimetre at most here.
        prop_assert!(worst < 3e-3, "tool {worst} m outside the box");
        if let Err(e) = check_limits(&start, &outs, &lims, 2e-3) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn shield_passes_smooth_motion_through_and_settles_on_steps() {
    let lims = limits(2);
    let mut sh = Shield::new(&ShieldConfig::default(), &lims, None, MS).expect("valid shield");
    sh.reset(&jv(&[0.0, 0.0]));
    let (mut p, mut v) = (JointVec::zeros(2), JointVec::zeros(2));
    // A smooth move within every limit (starting at rest with zero
    // acceleration) passes untouched.
    let mut untouched = 0;
    for k in 0..2000 {
        let t = k as f64 * 1e-3;
        let d = jv(&[0.2 * (1.0 - t.cos()).powi(2), 0.0]);
        let o = sh.apply(&d, &mut p, &mut v);
        if !o.clamped {
            untouched += 1;
        }
        assert!(!o.violation);
    }
    assert!(untouched > 1990, "smooth motion clamped {} times", 2000 - untouched);
    // A 1 rad step: reached without overshoot beyond a hair, and held.
    let target = jv(&[1.3, -0.5]);
    let mut overshoot: f64 = 0.0;
    let mut outs = Vec::new();
    for _ in 0..3000 {
        sh.apply(&target, &mut p, &mut v);
        overshoot = overshoot.max(p[0] - 1.3).max(-0.5 - p[1]);
        outs.push(p);
    }
    assert!(overshoot < 1e-3, "overshoot {overshoot}");
    assert!((p[0] - 1.3).abs() < 1e-6 && (p[1] + 0.5).abs() < 1e-6, "settled at {p:?}");
    assert!(sh.clamp_counts().jerk > 0 || sh.clamp_counts().acceleration > 0);
}

#[test]
fn shield_refuses_non_finite_and_out_of_range_commands() {
    let lims = limits(2);
    let cfg = ShieldConfig { mode: ShieldMode::Reject, tolerance: 0.05, ..ShieldConfig::default() };
    let mut sh = Shield::new(&cfg, &lims, None, MS).expect("valid shield");
    sh.reset(&jv(&[0.5, 0.5]));
    let (mut p, mut v) = (JointVec::zeros(2), JointVec::zeros(2));
    let o = sh.apply(&jv(&[f64::NAN, 0.5]), &mut p, &mut v);
    assert!(o.rejected && o.non_finite && o.violation);
    assert_eq!(&*p, &[0.5, 0.5]);
    assert_eq!(sh.clamp_counts().non_finite, 1);
    // Wrong length is refused too.
    let o = sh.apply(&jv(&[0.5]), &mut p, &mut v);
    assert!(o.rejected && o.non_finite);
    // Beyond the position limit by more than the tolerance: refused, a violation.
    let o = sh.apply(&jv(&[2.5, 0.5]), &mut p, &mut v);
    assert!(o.rejected && o.violation && o.clamped);
    assert_eq!(&*p, &[0.5, 0.5], "kept the previous target");
    assert_eq!(sh.clamp_counts().position, 1);
    // Within tolerance in saturate mode: clamped, no violation.
    let mut sh = Shield::new(&ShieldConfig::default(), &lims, None, MS).expect("valid shield");
    sh.reset(&jv(&[1.999, 0.0]));
    let o = sh.apply(&jv(&[2.01, 0.0]), &mut p, &mut v);
    assert!(o.clamped && !o.violation && !o.rejected);
    assert!(p[0] <= 2.0);
}

// ---------------------------------------------------------------- fallback

fn run_fallback(fb: &mut FallbackController, ticks: usize, n: usize) -> Vec<JointVec> {
    let (mut p, mut v) = (JointVec::zeros(n), JointVec::zeros(n));
    (0..ticks)
        .map(|_| {
            fb.step(&mut p, &mut v);
            p
        })
        .collect()
}

/// Velocity and acceleration of consecutive outputs, starting from the
/// engage command (`p0`, `v0`).
fn check_fd(p0: &[f64], v0: &[f64], outs: &[JointVec], lims: &[JointLimit], t: f64) -> Result<(), String> {
    for j in 0..lims.len() {
        let (mut p, mut v) = (p0[j], v0[j]);
        for (k, o) in outs.iter().enumerate() {
            let nv = (o[j] - p) / t;
            let na = (nv - v) / t;
            if nv.abs() > lims[j].velocity * (1.0 + 1e-9) + 1e-9 {
                return Err(format!("tick {k} joint {j}: velocity {nv}"));
            }
            if na.abs() > lims[j].acceleration * (1.0 + 1e-6) + 1e-6 {
                return Err(format!("tick {k} joint {j}: acceleration {na}"));
            }
            if o[j] < lims[j].position_min || o[j] > lims[j].position_max {
                return Err(format!("tick {k} joint {j}: position {}", o[j]));
            }
            (p, v) = (o[j], nv);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A controlled stop from any state within limits: bumpless, within
    /// acceleration limits, done in at most v/a plus one period.
    #[test]
    fn decelerate_stops_in_bounded_time(
        pos in prop::collection::vec(-1.0f64..1.0, 3),
        frac in prop::collection::vec(-1.0f64..1.0, 3),
        period_ms in prop_oneof![Just(1u64), Just(4), Just(20)],
    ) {
        let lims = limits(3);
        let vel: Vec<f64> = frac.iter().zip(&lims).map(|(f, l)| f * l.velocity).collect();
        let mut fb = FallbackController::new(&FallbackConfig::default(), &lims, period_ms * MS).expect("valid fallback");
        fb.engage(&jv(&pos), &jv(&vel));
        let t = period_ms as f64 * 1e-3;
        let bound = vel.iter().zip(&lims).map(|(v, l)| v.abs() / l.acceleration).fold(0.0, f64::max);
        let ticks = (bound / t).ceil() as usize + 1;
        let outs = run_fallback(&mut fb, ticks, 3);
        prop_assert!(fb.is_settled(), "not stopped after {} ticks", ticks);
        if let Err(e) = check_fd(&pos, &vel, &outs, &lims, t) {
            prop_assert!(false, "{}", e);
        }
        // Stopped means stopped.
        let after = run_fallback(&mut fb, 3, 3);
        prop_assert!(after.iter().all(|p| p == outs.last().expect("ticks")));
        // Synchronized: the stop keeps the direction of motion.
        let disp: Vec<f64> = (0..3).map(|j| outs.last().expect("ticks")[j] - pos[j]).collect();
        for j in 0..3 {
            prop_assert!(disp[j] * vel[j] >= 0.0);
        }
    }

    /// Going home: bumpless from a moving start, within limits, arrives.
    #[test]
    fn home_reaches_home_within_limits(
        pos in prop::collection::vec(-1.5f64..1.5, 3),
        frac in prop::collection::vec(-1.0f64..1.0, 3),
        home in prop::collection::vec(-1.5f64..1.5, 3),
    ) {
        let lims = limits(3);
        let vel: Vec<f64> = frac.iter().zip(&lims).map(|(f, l)| f * l.velocity).collect();
        let cfg = FallbackConfig { kind: FallbackKind::Home, home: Some(home.clone()) };
        prop_assert_eq!(cfg.validate(&lims), Ok(()));
        let mut fb = FallbackController::new(&cfg, &lims, 2 * MS).expect("valid fallback");
        prop_assert_eq!(fb.kind(), FallbackKind::Home);
        fb.engage(&jv(&pos), &jv(&vel));
        // Generous bound: stop (≤ 0.2 s) + the slowest rest-to-rest move (≤ 2.5 s).
        let outs = run_fallback(&mut fb, 1500, 3);
        prop_assert!(fb.is_settled());
        let last = outs.last().expect("ticks");
        for j in 0..3 {
            prop_assert!((last[j] - home[j]).abs() < 1e-12, "joint {} at {} not {}", j, last[j], home[j]);
        }
        if let Err(e) = check_fd(&pos, &vel, &outs, &lims, 2e-3) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn hold_keeps_the_last_command() {
    let lims = limits(2);
    let cfg = FallbackConfig { kind: FallbackKind::Hold, home: None };
    let mut fb = FallbackController::new(&cfg, &lims, MS).expect("valid fallback");
    fb.engage(&jv(&[0.3, -0.2]), &jv(&[1.0, 0.0]));
    assert!(fb.is_settled());
    let outs = run_fallback(&mut fb, 5, 2);
    assert!(outs.iter().all(|p| p[..] == [0.3, -0.2]));
    // Non-finite engage values never reach the output.
    fb.engage(&jv(&[f64::NAN, 0.1]), &jv(&[f64::INFINITY, 0.0]));
    let outs = run_fallback(&mut fb, 2, 2);
    assert!(outs.iter().all(|p| p[..] == [0.3, 0.1]));
}

#[test]
fn fallback_config_errors_name_the_problem() {
    let lims = limits(2);
    let home = |h: Vec<f64>| FallbackConfig { kind: FallbackKind::Home, home: Some(h) };
    assert_eq!(
        FallbackConfig { kind: FallbackKind::Home, home: None }.validate(&lims),
        Err(FallbackConfigError::MissingHome)
    );
    assert_eq!(home(vec![0.0]).validate(&lims), Err(FallbackConfigError::HomeLength { got: 1, expected: 2 }));
    assert_eq!(home(vec![0.0, 9.0]).validate(&lims), Err(FallbackConfigError::HomeOutOfLimits { joint: 1 }));
    assert_eq!(FallbackConfig::default().validate(&lims), Ok(()));
    // The controller refuses what validation refuses (it used to run a
    // controlled stop instead of the configured `home`).
    assert_eq!(
        FallbackController::new(&home(vec![0.0]), &lims, MS).map(|f| f.kind()),
        Err(FallbackConfigError::HomeLength { got: 1, expected: 2 })
    );
    let parsed: FallbackConfig = toml::from_str("kind = \"home\"\nhome = [0.1, 0.2]").expect("parses");
    assert_eq!(parsed, home(vec![0.1, 0.2]));
}
