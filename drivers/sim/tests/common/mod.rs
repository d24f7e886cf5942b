//! Helpers shared by the simulated-arm tests.
#![allow(dead_code)]

use ganglion_core::{hold_command, input_slots, InputReaders, InputWriters, Mode, Stamp};
use ganglion_sim::{ScriptedExpert, SimArm, SimConfig};

/// Control period of the test loops (100 Hz).
pub const CONTROL_NS: u64 = 10_000_000;

/// Input slots sized for `cfg` with one camera named as in `cfg`.
pub fn slots(cfg: &SimConfig) -> (InputWriters, InputReaders) {
    input_slots(cfg.arm.dof(), &[(cfg.camera_name.clone(), cfg.camera_width, cfg.camera_height)])
}

/// Runs the scripted expert (true target) on `arm` for `seconds`, applying
/// its plan at 100 Hz; returns the final tip error (m).
pub fn run_expert(arm: &mut SimArm, seconds: f64) -> f64 {
    let mut expert = ScriptedExpert::new(arm.config()).expect("3-DoF arm");
    let q0 = arm.joint_state().position;
    expert.plan(&q0, arm.target_position(), arm.time()).expect("reachable target");
    let ticks = (seconds * 1e9 / CONTROL_NS as f64).round() as u64;
    for k in 0..ticks {
        let (q, v) = expert.sample(arm.time()).expect("planned");
        let mut cmd = hold_command(k, arm.time(), Mode::Nominal, q);
        cmd.velocity = v;
        arm.apply_command(&cmd);
        arm.step(CONTROL_NS);
    }
    arm.tip_error_m()
}

/// `t` seconds as a stamp.
pub fn secs(t: f64) -> Stamp {
    Stamp((t * 1e9).round() as u64)
}
