//! The simulated arm: determinism, actuator saturation, rendering, faults,
//! and the scripted expert solving the reach task.

mod common;

use common::{run_expert, secs, slots};
use ganglion_core::{hold_command, Frame, JointVec, Mode, Stamp};
use ganglion_sim::{FaultKind, SimArm, SimConfig, TargetColor};

#[test]
fn same_seed_gives_identical_trajectories_and_frames() {
    let cfg = SimConfig::default();
    let run = |seed: u64| {
        let mut arm = SimArm::new(&cfg, seed).expect("valid config");
        arm.reset_episode(3);
        let mut expert = ganglion_sim::ScriptedExpert::new(&cfg).expect("3-DoF");
        let q0 = arm.joint_state().position;
        expert.plan(&q0, arm.target_position(), arm.time()).expect("reachable");
        let mut traj = Vec::new();
        let mut frames = Vec::new();
        let mut frame = Frame::with_capacity(64, 64);
        for k in 0..150u64 {
            let (q, v) = expert.sample(arm.time()).expect("planned");
            let mut cmd = hold_command(k, arm.time(), Mode::Nominal, q);
            cmd.velocity = v;
            arm.apply_command(&cmd);
            // Uneven step sizes exercise the substep remainder.
            arm.step(if k % 3 == 0 { 7_500_000 } else { 11_250_000 });
            let s = arm.joint_state();
            traj.extend(s.position.iter().chain(s.velocity.iter()).map(|x| x.to_bits()));
            if k % 10 == 0 {
                arm.render_into(&mut frame).expect("fits");
                frames.push(frame.data().to_vec());
            }
        }
        (arm.instruction().to_string(), traj, frames)
    };
    let a = run(42);
    let b = run(42);
    assert_eq!(a.0, b.0);
    assert!(a.1 == b.1, "joint trajectories differ for the same seed");
    assert!(a.2 == b.2, "frames differ for the same seed");
    let c = run(43);
    assert!(a.1 != c.1 && a.2 != c.2, "another seed should give another episode");
}

#[test]
fn episodes_depend_only_on_seed_and_episode() {
    let cfg = SimConfig::default();
    let mut a = SimArm::new(&cfg, 7).expect("valid");
    let mut b = SimArm::new(&cfg, 7).expect("valid");
    a.reset_episode(5);
    run_expert(&mut a, 1.0);
    a.reset_episode(9);
    b.reset_episode(9);
    assert_eq!(a.scene(), b.scene());
    assert_eq!(a.joint_state(), b.joint_state());
    assert_eq!(a.instruction(), b.instruction());
    let mut colors = std::collections::HashSet::new();
    for ep in 0..30 {
        a.reset_episode(ep);
        colors.insert(a.scene().instructed().color);
        assert_eq!(TargetColor::from_instruction(a.instruction()), Some(a.scene().instructed().color));
    }
    assert_eq!(colors.len(), 3, "every colour gets instructed over 30 episodes");
}

#[test]
fn actuators_saturate_velocity_and_effort() {
    let cfg = SimConfig::default();
    let mut arm = SimArm::new(&cfg, 1).expect("valid");
    arm.set_pose(&[-1.0, -0.5, 0.0]);
    // A far step target: the servo asks for far more than it may give.
    arm.apply_command(&hold_command(0, Stamp::ZERO, Mode::Nominal, JointVec::from_slice(&[2.0, 0.5, 2.0]).unwrap()));
    let (mut vmax, mut emax) = (0.0f64, 0.0f64);
    for _ in 0..2000 {
        arm.step(1_000_000);
        let s = arm.joint_state();
        vmax = s.velocity.iter().fold(vmax, |m, v| m.max(v.abs()));
        emax = s.effort.iter().fold(emax, |m, e| m.max(e.abs()));
    }
    assert!(vmax <= cfg.max_velocity_rad_s + 1e-12, "speed {vmax} beyond saturation");
    assert!(emax <= cfg.max_effort_nm + 1e-12, "effort {emax} beyond saturation");
    assert!(vmax > 0.99 * cfg.max_velocity_rad_s, "the step should drive the speed to its limit ({vmax})");
    assert!(emax > 0.99 * cfg.max_effort_nm, "the step should drive the effort to its limit ({emax})");
    let q = arm.joint_state().position;
    assert!(q.max_abs_diff(&JointVec::from_slice(&[2.0, 0.5, 2.0]).unwrap()) < 1e-3, "settles on target: {q:?}");
    // Non-finite commands are ignored, not followed.
    arm.apply_command(&hold_command(1, Stamp::ZERO, Mode::Nominal, JointVec::splat(3, f64::NAN)));
    arm.step(100_000_000);
    assert_eq!(arm.rejected_commands(), 1);
    assert!(arm.joint_state().is_finite());
}

#[test]
fn joints_stop_at_their_limits() {
    let cfg = SimConfig::default();
    let mut arm = SimArm::new(&cfg, 1).expect("valid");
    arm.apply_command(&hold_command(0, Stamp::ZERO, Mode::Nominal, JointVec::from_slice(&[9.0, -9.0, 9.0]).unwrap()));
    arm.step(5_000_000_000);
    let q = arm.joint_state().position;
    for (i, l) in cfg.limits.iter().enumerate() {
        assert!(q[i] >= l.position_min && q[i] <= l.position_max, "joint {i} at {} beyond its limits", q[i]);
    }
}

/// Pixels of `color` in an rgb8 frame, with their mean position.
fn blob(frame: &Frame, color: TargetColor) -> (usize, f64, f64) {
    let w = frame.width as usize;
    let (mut n, mut su, mut sv) = (0, 0.0, 0.0);
    for (k, px) in frame.data().chunks_exact(3).enumerate() {
        if TargetColor::classify([px[0], px[1], px[2]]) == Some(color) {
            n += 1;
            su += (k % w) as f64 + 0.5;
            sv += (k / w) as f64 + 0.5;
        }
    }
    (n, su / n.max(1) as f64, sv / n.max(1) as f64)
}

#[test]
fn targets_appear_in_their_colour_where_they_project() {
    let cfg = SimConfig::default();
    let mut arm = SimArm::new(&cfg, 11).expect("valid");
    let mut frame = Frame::with_capacity(64, 64);
    for ep in 0..20 {
        arm.reset_episode(ep);
        // Arm turned away behind the base: nothing hides the targets.
        arm.set_pose(&[2.5, -1.4, 0.3]);
        arm.render_into(&mut frame).expect("fits");
        assert_eq!((frame.width, frame.height, frame.data().len()), (64, 64, 64 * 64 * 3));
        let scene = *arm.scene();
        assert_eq!(scene.targets().len(), cfg.n_targets);
        for t in scene.targets() {
            let (u, v, _) = arm.camera().project(t.position).expect("in front of the camera");
            assert!((2.0..62.0).contains(&u) && (2.0..62.0).contains(&v), "target off screen at ({u}, {v})");
            let k = 3 * (v as usize * 64 + u as usize);
            let px = [frame.data()[k], frame.data()[k + 1], frame.data()[k + 2]];
            assert_eq!(TargetColor::classify(px), Some(t.color), "episode {ep}: pixel {px:?} at ({u}, {v})");
            let (n, cu, cv) = blob(&frame, t.color);
            assert!(n >= 8, "episode {ep}: only {n} pixels of {:?}", t.color);
            assert!((cu - u).abs() < 0.6 && (cv - v).abs() < 0.6, "blob centre ({cu}, {cv}) vs ({u}, {v})");
        }
        // Colours not in the scene are absent.
        for c in TargetColor::ALL {
            if !scene.targets().iter().any(|t| t.color == c) {
                assert_eq!(blob(&frame, c).0, 0);
            }
        }
    }
}

#[test]
fn the_arm_is_drawn_and_moves_in_the_image() {
    let cfg = SimConfig::default();
    let mut arm = SimArm::new(&cfg, 2).expect("valid");
    let mut a = Frame::with_capacity(64, 64);
    let mut b = Frame::with_capacity(64, 64);
    arm.set_pose(&[0.0, -1.0, 1.2]);
    arm.render_into(&mut a).expect("fits");
    let (u, v, _) = arm.camera().project(arm.tip_position()).expect("visible");
    let k = 3 * (v as usize * 64 + u as usize);
    assert_eq!(&a.data()[k..k + 3].iter().map(|x| *x > 100).collect::<Vec<_>>(), &[true, true, false], "yellow tip");
    arm.set_pose(&[0.6, -1.0, 1.2]);
    arm.render_into(&mut b).expect("fits");
    let changed = a.data().chunks_exact(3).zip(b.data().chunks_exact(3)).filter(|(x, y)| x != y).count();
    assert!(changed > 20, "turning the arm changed only {changed} pixels");
}

#[test]
fn scripted_expert_reaches_the_instructed_target_within_3_s() {
    let cfg = SimConfig::default();
    let mut arm = SimArm::new(&cfg, 2026).expect("valid");
    let mut worst = 0.0f64;
    for ep in 0..50 {
        arm.reset_episode(ep);
        let err = run_expert(&mut arm, 3.0);
        worst = worst.max(err);
        assert!(arm.success(), "episode {ep}: tip {:.1} mm from the target after 3 s", err * 1e3);
    }
    assert!(worst < 0.01, "worst final error {worst} m");
}

#[test]
fn publish_due_follows_the_rates_with_stamps_and_sequence_numbers() {
    let cfg = SimConfig { joint_rate_hz: 100.0, camera_rate_hz: 25.0, ..SimConfig::default() };
    let mut arm = SimArm::new(&cfg, 3).expect("valid");
    let (mut w, mut r) = slots(&cfg);
    let (mut joints, mut frames, mut instructions) = (0, 0, 0);
    for k in 0..=200u64 {
        let now = Stamp(k * 1_000_000); // 1 kHz calls for 200 ms
        let p = arm.publish_due(now, &mut w);
        joints += usize::from(p.joints);
        frames += usize::from(p.camera);
        instructions += usize::from(p.instruction);
        if p.joints {
            assert!(r.joints.update());
            let s = r.joints.latest();
            assert_eq!((s.capture, s.receive, s.seq), (now, now, joints as u64));
            assert_eq!(s.value, arm.joint_state());
        }
        if p.camera {
            assert!(r.cameras[0].update());
            let s = r.cameras[0].latest();
            assert_eq!((s.capture, s.receive, s.seq), (now, now, frames as u64));
        }
        arm.step(1_000_000);
    }
    assert_eq!((joints, frames, instructions), (21, 6, 1));
    assert!(r.instruction.update());
    let i = r.instruction.latest().clone();
    assert_eq!(i.value.text.as_str(), arm.instruction());
    assert_eq!(i.seq, 1);
    arm.reset_episode(1);
    assert!(arm.publish_due(Stamp(300_000_000), &mut w).instruction);
    assert!(r.instruction.update());
    assert!(r.instruction.latest().value.seq > i.value.seq, "a new episode is a new instruction");
}

#[test]
fn camera_faults_black_freeze_drop_and_delay() {
    let cfg = SimConfig { camera_rate_hz: 10.0, ..SimConfig::default() };
    let mut arm = SimArm::new(&cfg, 4).expect("valid");
    let f = arm.faults_mut();
    f.add(FaultKind::BlackFrame, secs(0.2), secs(0.3));
    f.add(FaultKind::FreezeCamera, secs(0.4), secs(0.6));
    f.add(FaultKind::FreezeCameraSameSeq, secs(0.7), secs(0.9));
    f.add(FaultKind::DropCamera, secs(1.0), secs(1.2));
    f.add(FaultKind::DelayCamera { lag_ns: 150_000_000 }, secs(1.3), secs(1.4));
    let (mut w, mut r) = slots(&cfg);
    // Keep the arm moving so a fresh render always differs.
    arm.apply_command(&hold_command(0, Stamp::ZERO, Mode::Nominal, JointVec::from_slice(&[1.5, -0.9, 1.0]).unwrap()));
    let mut before_freeze = Vec::new();
    let mut last_seq = 0;
    for k in 0..15u64 {
        let now = Stamp(k * 100_000_000);
        let published = arm.publish_due(now, &mut w).camera;
        let fresh = r.cameras[0].update();
        assert_eq!(published, fresh);
        let s = r.cameras[0].latest();
        match k {
            2 => {
                assert!(s.value.data().iter().all(|&b| b == 0), "black frame");
                assert_eq!(s.seq, last_seq + 1);
            }
            3 => {
                assert!(s.value.data().iter().any(|&b| b != 0), "black fault over");
                before_freeze = s.value.data().to_vec();
            }
            4 | 5 => {
                assert_eq!(s.value.data(), &before_freeze[..], "frozen pixels");
                assert_eq!((s.seq, s.capture), (last_seq + 1, now), "frozen frame with new stamp and sequence");
            }
            6 => {
                assert_ne!(s.value.data(), &before_freeze[..], "the arm moved");
                before_freeze = s.value.data().to_vec();
            }
            7 | 8 => {
                assert_eq!(s.value.data(), &before_freeze[..]);
                assert_eq!((s.seq, s.capture, s.receive), (last_seq, now, now), "same sequence, new stamps");
            }
            10 | 11 => assert!(!fresh, "dropped"),
            13 => assert_eq!((s.capture, s.receive), (Stamp(now.0 - 150_000_000), now), "delayed"),
            _ => assert_eq!((s.capture, s.seq), (now, last_seq + 1)),
        }
        last_seq = s.seq;
        arm.step(100_000_000);
    }
}

#[test]
fn joint_faults_drop_delay_noise_and_nan() {
    let cfg = SimConfig { joint_rate_hz: 100.0, ..SimConfig::default() };
    let make = || {
        let mut arm = SimArm::new(&cfg, 5).expect("valid");
        let f = arm.faults_mut();
        f.add(FaultKind::DropJoints, secs(0.1), secs(0.2));
        f.add(FaultKind::DelayJoints { lag_ns: 40_000_000 }, secs(0.2), secs(0.3));
        f.add(FaultKind::JointNoise { std_rad: 0.05 }, secs(0.3), secs(1.3));
        f.add(FaultKind::NanJoint, secs(1.3), secs(1.4));
        arm
    };
    let (mut arm, mut twin) = (make(), make());
    let (mut w, mut r) = slots(&cfg);
    let (mut tw, mut tr) = slots(&cfg);
    let mut noise = Vec::new();
    for k in 0..150u64 {
        let now = Stamp(k * 10_000_000);
        let published = arm.publish_due(now, &mut w).joints;
        twin.publish_due(now, &mut tw);
        let fresh = r.joints.update();
        tr.joints.update();
        let truth = arm.joint_state();
        let s = r.joints.latest();
        if (10..20).contains(&k) {
            assert!(!published && !fresh, "dropped at tick {k}");
            continue;
        }
        assert!(fresh);
        if (20..30).contains(&k) {
            assert_eq!((s.capture, s.receive), (Stamp(now.0 - 40_000_000), now));
        } else if (30..130).contains(&k) {
            noise.extend(s.value.position.iter().zip(truth.position.iter()).map(|(a, b)| a - b));
            assert_eq!(s.value.position, tr.joints.latest().value.position, "seeded noise is reproducible");
        } else if (130..140).contains(&k) {
            assert!(s.value.position[0].is_nan() && !s.value.is_finite());
        } else {
            assert_eq!(s.value, truth);
        }
    }
    let std = (noise.iter().map(|x| x * x).sum::<f64>() / noise.len() as f64).sqrt();
    assert!((0.04..0.06).contains(&std), "noise std {std} vs 0.05 configured");
}

#[test]
fn invalid_configs_name_the_key() {
    let bad = [
        (SimConfig { n_targets: 4, ..SimConfig::default() }, "n_targets"),
        (SimConfig { n_targets: 0, ..SimConfig::default() }, "n_targets"),
        (SimConfig { camera_rate_hz: 0.0, ..SimConfig::default() }, "camera_rate_hz"),
        (SimConfig { limits: vec![], ..SimConfig::default() }, "limits"),
        (SimConfig { camera_look_at: [0.9, 0.0, 0.0], ..SimConfig::default() }, "camera_look_at"),
        (SimConfig { initial_pose_max: vec![9.0, 0.0, 0.0], ..SimConfig::default() }, "initial_pose_min"),
    ];
    for (cfg, key) in bad {
        let Err(err) = SimArm::new(&cfg, 0) else { panic!("a config with a bad {key} was accepted") };
        assert!(err.to_string().contains(key), "{err} should name {key}");
    }
    let parsed: SimConfig = toml::from_str("n_targets = 2\ncamera_rate_hz = 15.0\n").expect("partial table");
    assert_eq!((parsed.n_targets, parsed.camera_width), (2, 64));
    assert!(toml::from_str::<SimConfig>("n_target = 2\n").is_err(), "unknown keys are rejected");
}
