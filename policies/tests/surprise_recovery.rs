//! The surprise monitor's recovery rule on a world model whose predictions
//! are exact, without a text encoder (so no new instruction ever resets it).
//!
//! The bundle is `fixtures/servo-wm` (make_servo_wm.py): the latent is the
//! joint positions plus the mean image brightness; the dynamics move the
//! joints to the commanded target and keep the brightness; the head plans
//! steps of at most 0.05 rad toward q* = (0.3, -0.6, 0.9). While the fallback
//! holds the arm, predicting over that unexecuted plan would keep every
//! observation surprising (the latch); predicting over a hold at the
//! measured position lets a sane observation become the reference again,
//! while a blind camera keeps disagreeing with the last trusted reference
//! and never becomes it.

mod common;

use common::*;
use ganglion_core::{ActionChunk, Observation, Policy, Stamp};
use ganglion_policies::{load_policy, BackendKind, BundlePolicy};

const STEP_NS: u64 = 100_000_000;

fn servo_world_model() -> BundlePolicy {
    load_policy(&fixtures().join("servo-wm"), &opts(BackendKind::Tract)).expect("servo-wm loads")
}

/// An observation `steps` policy steps in, the arm at `q`, the camera at
/// `brightness` (0 = black), `held` by the fallback or not.
fn obs(p: &BundlePolicy, steps: u64, q: [f64; 3], brightness: u8, held: bool) -> Observation {
    let mut o = Observation::for_spec(p.spec());
    let cam = &p.spec().cameras[0];
    o.frames[0].set_with(cam.width, cam.height, cam.format, |b| b.fill(brightness)).expect("frame");
    o.joints.position.copy_from_slice(&q);
    o.stamp = Stamp::from_nanos(steps * STEP_NS);
    o.request_id = steps;
    o.held = held;
    o
}

#[test]
fn the_world_model_recovers_over_a_hold_and_never_trusts_a_blind_camera() {
    let mut p = servo_world_model();
    let threshold = p.spec().surprise_threshold.expect("a world model");
    let mut out = ActionChunk::for_spec(p.spec());
    let mut surprise = |p: &mut BundlePolicy, steps: u64, q: [f64; 3], brightness: u8, held: bool| {
        let o = obs(p, steps, q, brightness, held);
        p.infer(&o, &mut out).expect("infer");
        out.surprise
    };
    let zero = [0.0; 3];

    // The policy drives from q = 0: the reference; its plan heads for q*.
    assert_eq!(surprise(&mut p, 0, zero, 128, false), None);
    // A fault: the fallback holds the arm at 0. Predicted over the plan
    // nobody executes (0.2, then 0.25 rad along), every later observation is
    // surprising — the latch.
    for k in [3, 4] {
        let s = surprise(&mut p, k, zero, 128, false).expect("compared");
        assert!(s > 0.15 && s > threshold, "predicted over the unexecuted plan: {s}");
    }
    // Told the arm is held, the world model predicts a hold at the measured
    // position: the sane observation is calm and becomes the reference.
    let s = surprise(&mut p, 6, zero, 128, true).expect("compared");
    assert!(s < 1e-6, "a hold where the arm is: {s}");
    // The camera goes blind while held: compared with the last trusted
    // reference (bright), it stays surprising, frame after frame.
    for k in [7, 8, 9] {
        let s = surprise(&mut p, k, zero, 0, true).expect("compared");
        assert!(s > threshold, "a black frame became the reference at step {k}: {s}");
    }
    // The image is back: calm again.
    let s = surprise(&mut p, 10, zero, 128, true).expect("compared");
    assert!(s < threshold, "{s}");
    // The policy takes over: its plan starts now, no comparison yet; then
    // the arm following the plan's first step (0.1 rad toward q*) is
    // predicted exactly.
    assert_eq!(surprise(&mut p, 11, zero, 128, false), None);
    let s = surprise(&mut p, 12, [0.1, -0.1, 0.1], 128, false).expect("compared");
    assert!(s < 1e-6, "the arm followed the plan: {s}");
}
