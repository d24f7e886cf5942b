//! The split world model ([`SplitPolicy`]): the encoder's latent
//! ([`Policy::infer_latent`]) continued by the dynamics and head of
//! [`load_tail`], on the `wm` fixture (text encoder, encoder, dynamics,
//! head), against the same bundle run whole.

mod common;

use std::sync::Arc;

use common::*;
use ganglion_core::{ActionChunk, Instruction, Latent, Observation, Policy, SimClock, Stamp};
use ganglion_policies::{load_policy, load_tail, BackendKind, BundlePolicy, SplitPolicy};

fn wm() -> BundlePolicy {
    load_policy(&fixtures().join("wm"), &opts(BackendKind::Tract)).expect("wm loads")
}

/// Observation `step` of a run: textured frame, a pose, an instruction,
/// `committed` actions of the executing plan (a ramp).
fn observation(spec: &ganglion_core::PolicySpec, step: u64, committed: usize) -> Observation {
    let mut obs = Observation::for_spec(spec);
    let cam = &spec.cameras[0];
    obs.frames[0]
        .set_with(cam.width, cam.height, cam.format, |b| {
            for (i, px) in b.iter_mut().enumerate() {
                *px = ((i as u64 * 31 + step * 17) % 251) as u8;
            }
        })
        .expect("frame");
    for (i, p) in obs.joints.position.iter_mut().enumerate() {
        *p = 0.1 * i as f64 + 0.02 * step as f64;
    }
    obs.stamp = Stamp::from_nanos(step * spec.step_ns);
    obs.request_id = 1 + step;
    obs.instruction = Instruction::new(1, "reach the red cube");
    for k in 0..committed {
        let mut a = obs.joints.position;
        for v in a.iter_mut() {
            *v += 0.03 * (k + 1) as f64;
        }
        obs.committed.push(a).expect("fits");
    }
    obs
}

/// A split whose clock the test sets (the reply's arrival).
fn split(clock: &SimClock) -> SplitPolicy {
    let tail = load_tail(&fixtures().join("wm"), &opts(BackendKind::Tract)).expect("tail loads");
    SplitPolicy::new(Box::new(wm()), tail, Arc::new(clock.clone())).expect("same bundle")
}

/// When the reply arrives as many steps after the observation as the
/// committed actions cover, the split computes what the whole bundle
/// computes, chunk and surprise bit for bit, request after request (the
/// surprise monitor's history lives in the robot's half).
#[test]
fn a_split_world_model_is_the_whole_one_when_the_round_trip_is_as_expected() {
    let mut whole = wm();
    let clock = SimClock::new(Stamp::ZERO);
    let mut split = split(&clock);
    assert!(split.spec().rolls_at_reply, "the loop must hand it the plan to the reply");
    let mut expected_spec = whole.spec().clone();
    expected_spec.rolls_at_reply = true;
    assert_eq!(split.spec(), &expected_spec);
    let (mut a, mut b) = (ActionChunk::for_spec(whole.spec()), ActionChunk::for_spec(whole.spec()));
    let mut surprises = 0;
    for step in 0..6u64 {
        let committed = (step % 3) as usize;
        let obs = observation(whole.spec(), step * 4, committed);
        whole.infer(&obs, &mut a).expect("whole");
        clock.set(obs.stamp.add_nanos(committed as u64 * whole.spec().step_ns));
        split.infer(&obs, &mut b).expect("split");
        assert_eq!(split.last_roll(), committed);
        assert_eq!(a.as_slice(), b.as_slice(), "chunk {step}");
        assert_eq!((a.surprise, a.obs_stamp, a.request_id), (b.surprise, b.obs_stamp, b.request_id), "step {step}");
        surprises += usize::from(b.surprise.is_some());
    }
    assert!(surprises >= 4, "the robot's half computes the surprise ({surprises} of 6)");
}

/// The roll covers the whole policy steps nearest the time the reply took,
/// at most the committed actions: a reply one step after the observation
/// rolls one of three; a late one rolls all three.
#[test]
fn the_split_rolls_over_the_round_trip_it_took() {
    let step_ns = wm().spec().step_ns;
    for (arrival_ns, roll) in [(step_ns * 2 / 5, 0), (step_ns, 1), (step_ns * 8 / 5, 2), (step_ns * 10, 3)] {
        let mut whole = wm();
        let clock = SimClock::new(Stamp::ZERO);
        let mut split = split(&clock);
        let obs = observation(whole.spec(), 5, 3);
        let mut truncated = obs.clone();
        truncated.committed.truncate(roll);
        let (mut a, mut b) = (ActionChunk::for_spec(whole.spec()), ActionChunk::for_spec(whole.spec()));
        whole.infer(&truncated, &mut a).expect("whole");
        clock.set(obs.stamp.add_nanos(arrival_ns));
        split.infer(&obs, &mut b).expect("split");
        assert_eq!(split.last_roll(), roll, "reply after {arrival_ns} ns");
        assert_eq!(a.as_slice(), b.as_slice(), "reply after {arrival_ns} ns");
    }
}

/// The server half returns the encoder's latent and the embedding, sized as
/// the robot's half expects; a bundle without a head has nothing to split.
#[test]
fn the_server_half_returns_the_latent_the_robot_half_reads() {
    let mut whole = wm();
    let tail = load_tail(&fixtures().join("wm"), &opts(BackendKind::Tract)).expect("tail loads");
    let mut latent = Latent::default();
    let obs = observation(whole.spec(), 1, 0);
    whole.infer_latent(&obs, &mut latent).expect("encodes");
    let expected = tail.latent_buffer();
    assert_eq!((latent.state.len(), latent.embedding.len()), (expected.state.len(), expected.embedding.len()));
    assert!(latent.embedding.iter().any(|v| *v != 0.0), "the instruction was encoded");
    assert_eq!(latent.embedding, whole.instruction_embedding());

    let mut single = load_policy(&fixtures().join("single"), &opts(BackendKind::Tract)).expect("single loads");
    let obs = Observation::for_spec(single.spec());
    let err = single.infer_latent(&obs, &mut latent).expect_err("no head").to_string();
    assert!(err.contains("nothing to split"), "{err}");
}

/// Bundles that cannot be split, and two halves of different bundles, are
/// refused at load with the reason.
#[test]
fn a_split_needs_a_world_model_and_the_same_bundle_on_both_sides() {
    let err = load_tail(&fixtures().join("single"), &opts(BackendKind::Tract)).expect_err("no head").to_string();
    assert!(err.contains("action_head"), "{err}");
    let err =
        load_tail(&fixtures().join("iterative/flow-mlp"), &opts(BackendKind::Tract)).expect_err("format 2").to_string();
    assert!(err.contains("format-1"), "{err}");

    let other = load_policy(&fixtures().join("servo-wm"), &opts(BackendKind::Tract)).expect("servo-wm loads");
    let tail = load_tail(&fixtures().join("wm"), &opts(BackendKind::Tract)).expect("tail loads");
    let err = SplitPolicy::new(Box::new(other), tail, Arc::new(SimClock::new(Stamp::ZERO)))
        .expect_err("different bundles")
        .to_string();
    assert!(err.contains("same bundle"), "{err}");
}
