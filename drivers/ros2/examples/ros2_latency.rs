//! Loopback latency of the ROS 2 (DDS) transport, encode → decoded in the
//! slot: joint states and 64×64 / 224×224 rgb8 frames between two DDS
//! participants restricted to 127.0.0.1.
//! `cargo run --release -p ganglion-ros2 --example ros2_latency`.

#[path = "../../interop/latency.rs"]
mod latency;

use std::time::Duration;

use ganglion_codec::{command_queue, CommandFormat, Inputs};
use ganglion_core::input_slots;
use ganglion_ros2::{CommandOut, Ros2Config, Ros2Plant, Ros2Transport};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let cfg = Ros2Config {
        domain_id: 90 + (std::process::id() % 50) as u16,
        only_networks: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        ..Ros2Config::default()
    };
    let (writers, mut readers) = input_slots(latency::JOINTS.len(), &[("cam".to_string(), 224, 224)]);
    let inputs = Inputs::new(writers, &latency::ingest_config(224));
    let (_sink, outbox) = command_queue(8);
    let out = CommandOut {
        format: CommandFormat::JointTrajectory,
        joint_names: Vec::new(),
        time_from_start_ns: 0,
        heartbeat_period_ns: 1_000_000_000,
        wait_for_subscriber_ns: 0,
    };
    let transport = Ros2Transport::start(&cfg, inputs, outbox, out)?;
    let plant_cfg = Ros2Config { node_name: "bench_plant".into(), ..cfg.clone() };
    let plant = Ros2Plant::start(&plant_cfg, &["cam".to_string()], CommandFormat::JointTrajectory, |_| {})?;
    // RustDDS discovery takes a few hundred ms.
    std::thread::sleep(Duration::from_millis(1500));
    let gap = Duration::from_millis(2);
    let joints = latency::joints(n, gap, &mut readers, &|b| drop(plant.publish_joints(b)));
    let f64px = latency::frames(n, 64, gap, &mut readers, &|b| drop(plant.publish_camera(0, b)));
    let f224 = latency::frames(n, 224, Duration::from_millis(5), &mut readers, &|b| drop(plant.publish_camera(0, b)));
    let report = serde_json::json!({
        "transport": "ros2 (RustDDS, loopback UDP)",
        "build_profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        "joint_state": joints, "frame_64": f64px, "frame_224": f224,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    drop(plant);
    transport.shutdown();
    Ok(())
}
