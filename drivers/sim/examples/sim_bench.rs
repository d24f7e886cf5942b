//! Cost of the simulated arm's hot paths: rendering a frame into a slot
//! (`publish_due` with a frame due) and one 10 ms physics step.
//!
//! `cargo run --release -p ganglion-sim --example sim_bench [-- --frames N] [--report FILE]`
//! prints (and optionally writes) JSON: `render_us` and `step_10ms_us`, each
//! with `p50`, `p99`, `max`, plus `frames`.

use std::time::Instant;

use ganglion_core::{hold_command, input_slots, JointVec, Mode, Stamp};
use ganglion_sim::{SimArm, SimConfig};

fn percentiles(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("{{\"p50\": {:.3}, \"p99\": {:.3}, \"max\": {:.3}}}", at(0.5), at(0.99), at(1.0))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let frames: usize = value("--frames").map(|s| s.parse()).transpose()?.unwrap_or(5000);
    let cfg = SimConfig { camera_rate_hz: 100.0, joint_rate_hz: 100.0, ..SimConfig::default() };
    let mut arm = SimArm::new(&cfg, 0)?;
    let (mut w, mut r) = input_slots(3, &[(cfg.camera_name.clone(), cfg.camera_width, cfg.camera_height)]);
    let targets = [[0.8, -0.6, 1.5], [-0.5, -1.2, 0.7]];
    let (mut render, mut step) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
    for k in 0..frames {
        if k % 100 == 0 {
            let q = JointVec::from_slice(&targets[(k / 100) % 2]).ok_or("joints")?;
            arm.apply_command(&hold_command(0, Stamp::ZERO, Mode::Nominal, q));
        }
        let now = Stamp(k as u64 * 10_000_000);
        let t = Instant::now();
        let published = arm.publish_due(now, &mut w);
        let dt = t.elapsed().as_secs_f64() * 1e6;
        if published.camera {
            render.push(dt);
        }
        r.cameras[0].update();
        let t = Instant::now();
        arm.step(10_000_000);
        step.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let json = format!(
        "{{\"frames\": {}, \"render_us\": {}, \"step_10ms_us\": {}}}",
        render.len(),
        percentiles(render),
        percentiles(step)
    );
    println!("{json}");
    if let Some(path) = value("--report") {
        std::fs::write(path, json + "\n")?;
    }
    Ok(())
}
