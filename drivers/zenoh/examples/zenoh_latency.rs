//! Loopback latency of the zenoh transport, encode → decoded in the slot:
//! joint states and 64×64 / 224×224 rgb8 frames, TCP (and shared memory
//! with `--shm`). `cargo run --release -p ganglion-zenoh --example zenoh_latency [-- --shm]`.

#[path = "../../interop/latency.rs"]
mod latency;

use std::time::Duration;

use ganglion_codec::{command_queue, Inputs};
use ganglion_core::input_slots;
use ganglion_zenoh::{CommandOut, ZenohConfig, ZenohPlant, ZenohTransport};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shm = std::env::args().any(|a| a == "--shm");
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let cfg = ZenohConfig {
        prefix: "bench".into(),
        listen: vec![endpoint.clone()],
        shared_memory: shm,
        ..Default::default()
    };
    let (writers, mut readers) = input_slots(latency::JOINTS.len(), &[("cam".to_string(), 224, 224)]);
    let inputs = Inputs::new(writers, &latency::ingest_config(224));
    let (_sink, outbox) = command_queue(8);
    let out = CommandOut {
        format: Default::default(),
        joint_names: Vec::new(),
        time_from_start_ns: 0,
        heartbeat_period_ns: 1_000_000_000,
        wait_for_subscriber_ns: 0,
    };
    let transport = ZenohTransport::start(&cfg, inputs, outbox, out)?;
    let plant_cfg =
        ZenohConfig { prefix: "bench".into(), connect: vec![endpoint], shared_memory: shm, ..Default::default() };
    let plant = ZenohPlant::start(&plant_cfg, &["cam".to_string()], |_| {})?;
    std::thread::sleep(Duration::from_millis(500));
    let gap = Duration::from_millis(2);
    let joints = latency::joints(n, gap, &mut readers, &|b| drop(plant.publish_joints(b)));
    let f64px = latency::frames(n, 64, gap, &mut readers, &|b| drop(plant.publish_camera(0, b)));
    let f224 = latency::frames(n, 224, Duration::from_millis(4), &mut readers, &|b| drop(plant.publish_camera(0, b)));
    let report = serde_json::json!({
        "transport": if shm { "zenoh (tcp + shared memory)" } else { "zenoh (tcp)" },
        "build_profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        "joint_state": joints, "frame_64": f64px, "frame_224": f224,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    plant.close();
    transport.shutdown();
    Ok(())
}
