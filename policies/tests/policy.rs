//! BundlePolicy end to end on the fixture bundles (tract backend).

mod common;

use common::*;
use ganglion_core::{ActionChunk, ActionKind, Instruction, Observation, Policy, PolicyError, Stamp};
use ganglion_policies::backend::{BackendChoice, Graph, GraphModel, TensorBuf};
use ganglion_policies::manifest::GraphRole;
use ganglion_policies::preprocess::{ImageOut, ImagePreprocessor, Normalizer};
use ganglion_policies::tokenizer::TokenizeError;
use ganglion_policies::{load_policy, BackendKind, BundlePolicy};

fn wm() -> BundlePolicy {
    load_policy(&fixtures().join("wm"), &opts(BackendKind::Tract)).expect("wm loads")
}

fn observation(policy: &BundlePolicy, step: u64, seed: u64) -> Observation {
    let spec = policy.spec();
    let mut obs = Observation::for_spec(spec);
    for (frame, cam) in obs.frames.iter_mut().zip(&spec.cameras) {
        frame
            .set_with(cam.width, cam.height, cam.format, |b| {
                for (i, px) in b.iter_mut().enumerate() {
                    *px = ((i as u64 * 29 + seed * 53) % 253) as u8;
                }
            })
            .expect("frame");
    }
    for (i, p) in obs.joints.position.iter_mut().enumerate() {
        *p = 0.2 * i as f64 - 0.1 * seed as f64;
    }
    obs.stamp = Stamp::from_nanos(step * spec.step_ns);
    obs.request_id = 100 + step;
    obs
}

#[test]
fn spec_and_load_report_come_from_the_manifest() {
    let p = wm();
    let s = p.spec();
    assert_eq!(s.name, "wm-fixture 0.1.0");
    assert_eq!((s.n_joints, s.chunk_len, s.step_ns), (3, 8, 100_000_000));
    assert_eq!(s.action_kind, ActionKind::AbsolutePosition);
    assert_eq!(s.expected_latency_ns, 5_000_000);
    assert_eq!(s.surprise_threshold, Some(0.5));
    assert_eq!(s.cameras.len(), 1);
    assert_eq!((s.cameras[0].name.as_str(), s.cameras[0].width, s.cameras[0].height), ("front", 40, 30));
    let r = p.load_report();
    assert_eq!(r.backend, BackendKind::Tract);
    assert_eq!(r.execution_provider, "tract-cpu");
    assert!(r.load_ms > 0.0 && r.first_inference_ms > 0.0, "{r:?}");
    assert!(r.signature.starts_with("valid"), "{}", r.signature);
}

#[test]
fn inference_is_deterministic_and_fills_the_chunk() {
    let mut p = wm();
    let obs = observation(&p, 0, 1);
    let mut a = ActionChunk::for_spec(p.spec());
    p.infer(&obs, &mut a).expect("infer");
    assert_eq!(a.steps(), 8);
    assert!(a.is_finite());
    assert_eq!(a.request_id, 100);
    assert_eq!(a.obs_stamp, obs.stamp);
    assert_eq!(a.surprise, None, "no previous observation yet");
    // A fresh policy on the same observation gives the same chunk.
    let mut q = wm();
    let mut b = ActionChunk::for_spec(q.spec());
    q.infer(&obs, &mut b).expect("infer");
    assert_eq!(a.as_slice(), b.as_slice());
    // A different image changes the actions.
    let mut c = ActionChunk::for_spec(q.spec());
    q.infer(&observation(&q, 1, 7), &mut c).expect("infer");
    assert_ne!(a.as_slice(), c.as_slice());
}

/// Recomputes the world-model wiring by hand with the public graph API and
/// compares surprise, latency compensation and the chunk.
#[test]
fn surprise_and_latency_compensation_follow_the_documented_wiring() {
    let mut p = wm();
    let m = p.manifest().clone();
    let bundle = fixtures().join("wm");
    let graph = |role: GraphRole, spec: &ganglion_policies::manifest::GraphSpec| {
        let file = bundle.join(&spec.file);
        Graph::load(role, spec, GraphModel::inline(&std::fs::read(&file).expect("read")), &file, &BackendChoice::Tract)
            .expect("graph")
    };
    let enc_spec = m.graphs.encoder.as_ref().expect("encoder");
    let mut enc = graph(GraphRole::Encoder, enc_spec);
    let mut dynamics = graph(GraphRole::Dynamics, m.graphs.dynamics.as_ref().expect("dynamics"));
    let mut head = graph(GraphRole::ActionHead, m.graphs.action_head.as_ref().expect("head"));
    let mut pre = ImagePreprocessor::new(&m.cameras[0], &enc_spec.inputs[0]);
    let encode = |enc: &mut Graph, pre: &mut ImagePreprocessor, obs: &Observation| -> Vec<f32> {
        let io = enc.io_mut();
        let TensorBuf::F32(img) = &mut io.inputs[0] else { panic!() };
        pre.run(&obs.frames[0], ImageOut::F32(img)).expect("pre");
        let TensorBuf::F32(j) = &mut io.inputs[1] else { panic!() };
        Normalizer::new(m.joints.stats()).normalize(&obs.joints.position, j);
        // Empty instruction: the text encoder's embedding of all-padding is
        // zero (padding row of the table is zero).
        let TensorBuf::F32(e) = &mut io.inputs[2] else { panic!() };
        e.fill(0.0);
        enc.run().expect("enc");
        enc.output(0).to_vec()
    };
    let step = |dynamics: &mut Graph, z: &[f32], a: &[f64]| -> Vec<f32> {
        let io = dynamics.io_mut();
        let TensorBuf::F32(zi) = &mut io.inputs[0] else { panic!() };
        zi.copy_from_slice(z);
        let TensorBuf::F32(ai) = &mut io.inputs[1] else { panic!() };
        Normalizer::new(m.action.stats()).normalize(a, ai);
        dynamics.run().expect("dyn");
        dynamics.output(0).to_vec()
    };

    // Observation 0 with two committed actions.
    let mut obs0 = observation(&p, 0, 1);
    for k in 0..2 {
        let mut a = obs0.joints.position;
        a.iter_mut().for_each(|v| *v += 0.05 * (k + 1) as f64);
        obs0.committed.push(a).expect("cap");
    }
    let mut out0 = ActionChunk::for_spec(p.spec());
    p.infer(&obs0, &mut out0).expect("infer 0");
    // The chunk keeps the observation's stamp (the loop matches results to
    // requests by it); the head's actions start at step 2, where the latent
    // was rolled to, behind the committed actions.
    assert_eq!(out0.obs_stamp, obs0.stamp, "chunk keeps the observation stamp");
    assert_eq!(out0.step(0), &obs0.committed[0][..], "step 0 (always overtaken) repeats step 1");
    assert_eq!(out0.step(1), &obs0.committed[0][..], "step 1 is the first committed action");
    let z0 = encode(&mut enc, &mut pre, &obs0);
    let mut z = z0.clone();
    for a in &obs0.committed {
        z = step(&mut dynamics, &z, a);
    }
    {
        let io = head.io_mut();
        let TensorBuf::F32(zi) = &mut io.inputs[0] else { panic!() };
        zi.copy_from_slice(&z);
        let TensorBuf::F32(e) = &mut io.inputs[1] else { panic!() };
        e.fill(0.0);
    }
    head.run().expect("head");
    // Steps 2.. are the head's actions 0..6 (its last two fall beyond the chunk).
    for (i, (got, norm)) in out0.as_slice()[2 * 3..].iter().zip(head.output(0)).enumerate() {
        let j = i % 3;
        let want = f64::from(*norm) * f64::from(m.action.std[j]) + f64::from(m.action.mean[j]);
        assert!((got - want).abs() < 1e-5, "action value {i}: {got} vs {want}");
    }

    // Observation 1, three policy steps later: surprise compares its latent
    // with z0 rolled for 3 steps over the actions meant for steps 1, 2, 3
    // (chunk steps 1.., which start with the committed action).
    let obs1 = observation(&p, 3, 2);
    let mut out1 = ActionChunk::for_spec(p.spec());
    p.infer(&obs1, &mut out1).expect("infer 1");
    let plan: Vec<Vec<f64>> = (1..out0.steps()).map(|i| out0.step(i).to_vec()).collect();
    let mut pred = z0;
    for a in &plan[..3] {
        pred = step(&mut dynamics, &pred, a);
    }
    let z1 = encode(&mut enc, &mut pre, &obs1);
    let rms = (z1.iter().zip(&pred).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / z1.len() as f32).sqrt();
    let got = out1.surprise.expect("surprise with dynamics");
    assert!((got - rms).abs() < 1e-5, "surprise {got} vs recomputed {rms}");
    assert_eq!(p.last_surprise(), Some(got));
    assert_eq!(out1.obs_stamp, obs1.stamp, "no committed actions, no shift");
}

#[test]
fn instructions_are_encoded_on_change_and_unknown_words_keep_the_previous_one() {
    let mut p = wm();
    assert!(p.instruction_embedding().iter().all(|v| *v == 0.0), "empty instruction embeds to zero");
    let mut obs = observation(&p, 0, 1);
    let mut out = ActionChunk::for_spec(p.spec());
    p.infer(&obs, &mut out).expect("infer");
    let base = out.as_slice().to_vec();

    obs.instruction = Instruction::new(1, "Reach the RED cube!");
    p.infer(&obs, &mut out).expect("infer");
    let red = p.instruction_embedding().to_vec();
    assert!(red.iter().any(|v| *v != 0.0));
    assert_ne!(out.as_slice(), &base[..], "the instruction conditions the actions");
    let red_actions = out.as_slice().to_vec();

    obs.instruction = Instruction::new(2, "reach the purple cube");
    p.infer(&obs, &mut out).expect("unknown words still produce actions");
    assert_eq!(p.instruction_errors(), 1);
    assert_eq!(p.last_instruction_error(), Some(&TokenizeError::UnknownWord("purple".into())));
    assert_eq!(p.instruction_embedding(), &red[..], "previous embedding kept");
    assert_eq!(out.as_slice(), &red_actions[..]);

    // Same seq again: not re-encoded, not counted again.
    p.infer(&obs, &mut out).expect("infer");
    assert_eq!(p.instruction_errors(), 1);

    // Text changes without a new seq: ignored (the seq is the change signal).
    obs.instruction = Instruction::new(2, "move to the left target");
    p.infer(&obs, &mut out).expect("infer");
    assert_eq!(p.instruction_embedding(), &red[..]);

    obs.instruction = Instruction::new(3, "move to the left target");
    p.infer(&obs, &mut out).expect("infer");
    assert_ne!(p.instruction_embedding(), &red[..]);
    assert_eq!(p.last_instruction_error(), None);

    obs.instruction = Instruction::new(4, "reach the red cube to the left to the right target");
    p.infer(&obs, &mut out).expect("too long still produces actions");
    assert!(matches!(p.last_instruction_error(), Some(TokenizeError::TooLong { .. })));
}

#[test]
fn bad_observations_are_errors_not_panics() {
    let mut p = wm();
    let mut out = ActionChunk::for_spec(p.spec());
    let good = observation(&p, 0, 1);

    let mut obs = good.clone();
    obs.joints = ganglion_core::JointState::zeros(2);
    assert!(matches!(p.infer(&obs, &mut out), Err(PolicyError::BadObservation(_))));

    let mut obs = good.clone();
    obs.joints.position[1] = f64::NAN;
    assert!(matches!(p.infer(&obs, &mut out), Err(PolicyError::BadObservation(_))));

    let mut obs = good.clone();
    obs.frames.clear();
    assert!(matches!(p.infer(&obs, &mut out), Err(PolicyError::BadObservation(_))));

    // The manifest crops the 40x30 camera: another size is rejected.
    let mut obs = good.clone();
    obs.frames[0].set(4, 2, ganglion_core::PixelFormat::Rgb8, &[0; 24]).expect("fits");
    match p.infer(&obs, &mut out) {
        Err(PolicyError::BadObservation(m)) => assert!(m.contains("front"), "{m}"),
        other => panic!("{other:?}"),
    }

    let mut obs = good.clone();
    obs.frames[0] = ganglion_core::Frame::with_capacity(40, 30);
    assert!(matches!(p.infer(&obs, &mut out), Err(PolicyError::BadObservation(_))));

    let mut small = ActionChunk::with_capacity(8, 2);
    assert!(p.infer(&good, &mut small).is_err());

    // Still healthy afterwards.
    p.infer(&good, &mut out).expect("recovers");
}

#[test]
fn single_graph_bundle_with_u8_mono_input_and_delta_actions() {
    let mut p = load_policy(&fixtures().join("single"), &opts(BackendKind::Tract)).expect("single loads");
    assert_eq!(p.spec().action_kind, ActionKind::DeltaPosition);
    assert_eq!(p.spec().surprise_threshold, None);
    let mut obs = Observation::for_spec(p.spec());
    // No crop declared: a frame of another size is resized.
    obs.frames = vec![ganglion_core::Frame::with_capacity(48, 36)];
    obs.frames[0]
        .set_with(48, 36, ganglion_core::PixelFormat::Mono8, |b| {
            for (i, px) in b.iter_mut().enumerate() {
                *px = (i % 200) as u8;
            }
        })
        .expect("frame");
    let mut out = ActionChunk::for_spec(p.spec());
    p.infer(&obs, &mut out).expect("infer");
    assert_eq!(out.kind, ActionKind::DeltaPosition);
    assert_eq!((out.steps(), out.n_joints()), (4, 2));
    // The graph ends in a softmax over the flattened chunk; with mean 0 and
    // std 0.1 the de-normalized actions are positive and sum to 0.1.
    let sum: f64 = out.as_slice().iter().sum();
    assert!((sum - 0.1).abs() < 1e-5, "sum {sum}");
    assert!(out.as_slice().iter().all(|v| *v > 0.0));
    assert_eq!(out.surprise, None);
}

#[test]
fn tokenizer_rejects_bad_vocabularies() {
    use ganglion_policies::tokenizer::Tokenizer;
    assert!(Tokenizer::from_vocab("").is_err());
    assert!(Tokenizer::from_vocab("<pad>\na\na\n").expect_err("dup").contains("line 3"));
    let t = Tokenizer::from_vocab("<pad>\nreach\nred\n").expect("vocab");
    let mut ids = [9i64; 4];
    t.encode("Reach, red!", &mut ids).expect("encode");
    assert_eq!(ids, [1, 2, 0, 0]);
    assert_eq!(t.encode("reach blue", &mut ids), Err(TokenizeError::UnknownWord("blue".into())));
    assert_eq!(ids, [1, 2, 0, 0], "untouched on error");
}

/// The surprise monitor predicts an observation a fraction of a policy step
/// later by blending the rolled latents, and a surprising observation does
/// not become the reference: what follows it is still compared with the
/// prediction from the last trusted one, so a lasting anomaly stays
/// surprising. `reset_history` forgets the reference.
#[test]
fn surprise_blends_sub_step_gaps_and_keeps_a_trusted_reference() {
    let mut p = wm();
    let threshold = p.spec().surprise_threshold.expect("threshold");
    let mut out = ActionChunk::for_spec(p.spec());
    let obs0 = observation(&p, 0, 1);
    p.infer(&obs0, &mut out).expect("infer 0");
    // The same scene a third of a step later: a small surprise.
    let mut near = observation(&p, 0, 1);
    near.stamp = Stamp::from_nanos(p.spec().step_ns / 3);
    let mut probe = wm();
    probe.infer(&obs0, &mut out).expect("probe 0");
    probe.infer(&near, &mut out).expect("probe near");
    let s_near = out.surprise.expect("surprise");
    // A black frame one step later.
    let black = |p: &BundlePolicy, step: u64| {
        let mut o = observation(p, step, 1);
        let cam = p.spec().cameras[0].clone();
        o.frames[0].set_with(cam.width, cam.height, cam.format, |b| b.fill(0)).expect("frame");
        o
    };
    p.infer(&black(&p, 1), &mut out).expect("black 1");
    let s1 = out.surprise.expect("surprise");
    assert!(s1 > threshold, "a black frame is surprising: {s1} vs {threshold}");
    assert!(s_near < s1);
    // Black again: compared with obs0's prediction, not with the black frame.
    p.infer(&black(&p, 2), &mut out).expect("black 2");
    let s2 = out.surprise.expect("surprise");
    assert!(s2 > threshold, "a lasting black-out stays surprising: {s2}");
    // After a reset the next observation has no reference.
    p.reset_history();
    p.infer(&black(&p, 3), &mut out).expect("black 3");
    assert_eq!(out.surprise, None);
    p.infer(&black(&p, 4), &mut out).expect("black 4");
    assert!(out.surprise.expect("surprise") < threshold, "black after black is no surprise");
}

/// A new instruction starts a new task: the world model's history is
/// forgotten, so the next observation carries no surprise.
#[test]
fn a_new_instruction_forgets_the_surprise_reference() {
    let mut p = wm();
    let mut out = ActionChunk::for_spec(p.spec());
    let mut obs = observation(&p, 0, 1);
    obs.instruction = Instruction::new(1, "reach the red cube");
    p.infer(&obs, &mut out).expect("infer 0");
    let mut next = observation(&p, 1, 2);
    next.instruction = obs.instruction.clone();
    p.infer(&next, &mut out).expect("infer 1");
    assert!(out.surprise.is_some(), "same instruction: predicted from the previous observation");
    let mut other = observation(&p, 2, 3);
    other.instruction = Instruction::new(2, "reach the red cube");
    p.infer(&other, &mut out).expect("infer 2");
    assert_eq!(out.surprise, None, "a new instruction (sequence) forgets the reference");
}
