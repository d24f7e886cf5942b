//! The expert behind the `Policy` trait, fed only through the input slots
//! (joint states, camera frames, instruction), solves the reach task in
//! closed loop.

mod common;

use common::{slots, CONTROL_NS};
use ganglion_core::{hold_command, ActionChunk, Instruction, JointVec, Mode, Observation, Policy, PolicyError};
use ganglion_sim::{ExpertPolicy, SimArm, SimConfig};

const STEP_NS: u64 = 100_000_000;

/// Linear interpolation of the chunk at `t` (clamped to its ends).
fn chunk_at(chunk: &ActionChunk, t: u64) -> (JointVec, JointVec) {
    let s = t.saturating_sub(chunk.obs_stamp.0) as f64 / chunk.step_ns as f64;
    let last = chunk.steps() - 1;
    let i = (s.floor() as usize).min(last);
    let j = (i + 1).min(last);
    let a = (s - i as f64).clamp(0.0, 1.0);
    let (p, q) = (chunk.step(i), chunk.step(j));
    let mut pos = JointVec::zeros(p.len());
    let mut vel = JointVec::zeros(p.len());
    for k in 0..p.len() {
        pos[k] = p[k] + a * (q[k] - p[k]);
        vel[k] = if i == j { 0.0 } else { (q[k] - p[k]) * 1e9 / chunk.step_ns as f64 };
    }
    (pos, vel)
}

#[test]
fn expert_policy_reaches_the_target_it_sees_in_the_camera() {
    let cfg = SimConfig::default();
    let mut arm = SimArm::new(&cfg, 77).expect("valid");
    let mut policy = ExpertPolicy::new(&cfg, 8, STEP_NS).expect("3-DoF");
    let spec = policy.spec().clone();
    assert_eq!((spec.n_joints, spec.chunk_len, spec.step_ns), (3, 8, STEP_NS));
    let (mut w, mut r) = slots(&cfg);
    let mut obs = Observation::for_spec(&spec);
    let mut chunk = ActionChunk::for_spec(&spec);
    let mut errors = Vec::new();
    for ep in 0..20 {
        arm.reset_episode(ep);
        let mut have_chunk = false;
        for tick in 0..300u64 {
            let now = arm.time();
            arm.publish_due(now, &mut w);
            r.joints.update();
            r.cameras[0].update();
            r.instruction.update();
            if tick % 10 == 0 {
                let js = r.joints.latest();
                let cam = r.cameras[0].latest();
                obs.request_id = ep * 1000 + tick;
                obs.stamp = js.capture;
                obs.joints = js.value;
                obs.frames[0].set(cam.value.width, cam.value.height, cam.value.format, cam.value.data()).expect("fits");
                obs.instruction.clone_from(&r.instruction.latest().value);
                policy.infer(&obs, &mut chunk).expect("the expert accepts the sim's observations");
                assert_eq!((chunk.steps(), chunk.request_id, chunk.obs_stamp), (8, obs.request_id, obs.stamp));
                assert!(chunk.is_finite());
                have_chunk = true;
            }
            if have_chunk {
                let (pos, vel) = chunk_at(&chunk, now.0);
                let mut cmd = hold_command(tick, now, Mode::Nominal, pos);
                cmd.velocity = vel;
                arm.apply_command(&cmd);
            }
            arm.step(CONTROL_NS);
        }
        errors.push(arm.tip_error_m());
    }
    let worst = errors.iter().copied().fold(0.0f64, f64::max);
    eprintln!("camera-based expert: worst final error {:.1} mm over {} episodes", worst * 1e3, errors.len());
    let failures: Vec<_> = errors.iter().enumerate().filter(|(_, e)| **e > cfg.success_radius_m).collect();
    assert!(failures.is_empty(), "episodes beyond 3 cm after 3 s: {failures:?}");
}

#[test]
fn expert_policy_rejects_bad_instructions_and_observations() {
    let cfg = SimConfig::default();
    let mut policy = ExpertPolicy::new(&cfg, 8, STEP_NS).expect("3-DoF");
    let spec = policy.spec().clone();
    let mut obs = Observation::for_spec(&spec);
    let mut chunk = ActionChunk::for_spec(&spec);
    obs.instruction = Instruction::new(1, "reach the purple target");
    assert!(matches!(policy.infer(&obs, &mut chunk), Err(PolicyError::InstructionRejected(_))));
    // No colour ever accepted and an empty frame: it holds position.
    obs.joints.position = JointVec::from_slice(&[0.1, -0.9, 1.1]).unwrap();
    policy.infer(&obs, &mut chunk).expect("holds");
    assert!((0..chunk.steps()).all(|i| chunk.step(i) == [0.1, -0.9, 1.1]));
    let mut wrong = Observation::for_spec(&spec);
    wrong.joints = ganglion_core::JointState::zeros(2);
    assert!(matches!(policy.infer(&wrong, &mut chunk), Err(PolicyError::BadObservation(_))));
    let mut no_frames = Observation::for_spec(&spec);
    no_frames.frames.clear();
    assert!(matches!(policy.infer(&no_frames, &mut chunk), Err(PolicyError::BadObservation(_))));
}
