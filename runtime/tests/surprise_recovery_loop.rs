//! The surprise monitor's recovery rule in closed loop, with a world model
//! that has no text encoder (policies/fixtures/servo-wm: its predictions of
//! the simulated arm are nearly exact, and no new instruction ever resets
//! its history). After each input fault clears, the fallback has held the
//! arm while the policy's plan went on; the world model must predict over
//! that hold, let `world_model_surprise` go after `surprise_calm_chunks`
//! calm chunks, and hand the arm back to the policy. Predicting over the
//! unexecuted plan (the rule before) kept the fallback engaged to the end
//! of every episode after any fault.

use std::path::Path;

use ganglion::eval::{evaluate, load_bundle, sim_profile, EvalReport, SimEvalConfig};
use ganglion::faults::FaultAt;
use ganglion_core::Policy;
use ganglion_policies::BackendKind;

const SECONDS: f64 = 4.0;

fn run(fault: Option<&str>) -> EvalReport {
    run_with(fault, true)
}

/// `content_checks` off: blank and frozen frames reach the policy, and the
/// world model's surprise is what hands the arm to the fallback.
fn run_with(fault: Option<&str>, content_checks: bool) -> EvalReport {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bundle = root.join("policies/fixtures/servo-wm");
    let key = root.join("policies/fixtures/TEST-ONLY-signing.pub");
    let (_, policy) = load_bundle(Some(&bundle), BackendKind::Tract, Some(&key), false).expect("servo-wm loads");
    let latency_ns = policy.spec().expected_latency_ns;
    let (_, mut loop_cfg, sim) = sim_profile(Some(&root.join("launch/sim.toml"))).expect("launch/sim.toml loads");
    if !content_checks {
        loop_cfg.staleness.blank_frame_spread = 0;
        loop_cfg.staleness.frozen_identical_frames = 0;
    }
    let fault = fault.map(|f| f.parse::<FaultAt>().expect("fault"));
    let cfg = SimEvalConfig { loop_cfg, sim, episode_seconds: SECONDS, latency_ns, link: None, fault };
    evaluate(policy, cfg, 2, 5, true, false).expect("evaluation runs").0
}

#[test]
fn nominal_runs_never_trip_the_world_model() {
    let r = run(None);
    println!("nominal: surprise {:?}, fallback {} ticks, causes {:?}", r.surprise.values, r.fallback_ticks, r.causes);
    assert_eq!(r.surprise.episodes_triggered, 0, "{:?}", r.surprise);
    assert!(r.surprise.values.max < 0.5 * r.surprise.threshold.unwrap_or(0.0) as f64, "{:?}", r.surprise);
}

#[test]
fn the_policy_drives_again_after_each_input_fault() {
    for fault in ["nan-joint@0.2:0.3", "joint-dropout@0.2:0.3", "black-frame@0.2:0.3", "frozen-frame@0.2:0.6"] {
        let r = run(Some(fault));
        println!(
            "{fault}: fallback {} ticks, surprise triggered in {} episodes, causes {:?}",
            r.fallback_ticks, r.surprise.episodes_triggered, r.causes
        );
        let first = r.first_fallback_ticks_after_fault.unwrap_or_default();
        assert_eq!(first.count, 2, "{fault}: the fault must engage the fallback in both episodes");
        // The fallback may outlast the fault by the recovery (clear ticks,
        // the hold prediction's calm chunks), not to the end of the episode.
        let after_fault = (SECONDS - 0.2) * r.control_rate_hz * 2.0;
        assert!(
            (r.fallback_ticks as f64) < 0.6 * after_fault,
            "{fault}: fallback {} of the {after_fault} ticks after the onset: the policy never drove again",
            r.fallback_ticks
        );
    }
}

/// The world model itself trips on a black-out (content checks off), the
/// fallback holds the arm, and once the image is back the hold prediction
/// lets the policy drive again.
#[test]
fn the_world_model_releases_the_arm_after_it_tripped() {
    // Early in the move, while the plan still has far to go: the fallback's
    // hold then differs most from what the plan would have done.
    let r = run_with(Some("black-frame@0.2:0.3"), false);
    println!(
        "black-out, content checks off: fallback {} ticks, surprise triggered in {} episodes, causes {:?}",
        r.fallback_ticks, r.surprise.episodes_triggered, r.causes
    );
    assert_eq!(r.surprise.episodes_triggered, 2, "the black-out must trip the world model: {:?}", r.surprise);
    let after_fault = (SECONDS - 0.2) * r.control_rate_hz * 2.0;
    assert!(
        (r.fallback_ticks as f64) < 0.6 * after_fault,
        "fallback {} of the {after_fault} ticks after the onset: the world model latched",
        r.fallback_ticks
    );
}
