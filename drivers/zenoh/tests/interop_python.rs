//! Interop with the eclipse-zenoh Python package: robot.py publishes joint
//! states and frames encoded by Cyclone DDS's Python CDR serializer to a
//! Ganglion zenoh transport and decodes the commands it gets back.

#[path = "../../interop/python.rs"]
mod python;
#[path = "../../interop/robot_check.rs"]
mod robot_check;

use std::process::Stdio;
use std::sync::atomic::Ordering;

use ganglion_codec::{command_queue, CommandFormat, Inputs};
use ganglion_core::input_slots;
use ganglion_zenoh::{CommandOut, ZenohConfig, ZenohTransport};

fn run(format: CommandFormat) {
    let port = python::free_port();
    let prefix = format!("itest/{port}");
    let cfg =
        ZenohConfig { prefix: prefix.clone(), listen: vec![format!("tcp/127.0.0.1:{port}")], ..ZenohConfig::default() };
    let (cam, w, h) = robot_check::CAMERA;
    let (writers, mut readers) = input_slots(3, &[(cam.to_string(), w, h)]);
    let inputs = Inputs::new(writers, &robot_check::ingest_config());
    let counters = inputs.counters();
    let (mut sink, outbox) = command_queue(64);
    let out = CommandOut {
        format,
        joint_names: robot_check::JOINTS.iter().map(|s| s.to_string()).collect(),
        time_from_start_ns: 10_000_000,
        heartbeat_period_ns: 100_000_000,
        wait_for_subscriber_ns: 0,
    };
    let transport = ZenohTransport::start(&cfg, inputs, outbox, out).expect("zenoh transport starts");
    let robot = python::script("robot.py")
        .args(["--transport", "zenoh", "--endpoint", &format!("tcp/127.0.0.1:{port}"), "--prefix", &prefix])
        .args(["--format", format.ros_type(), "--commands", "5", "--camera", cam])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start robot.py");
    let report = robot_check::exchange(robot, &mut readers, &mut sink, 5);
    let joints = robot_check::counter(&counters, "joint_states");
    assert!(joints.decode_errors.load(Ordering::Relaxed) >= 1, "the malformed joint state was not counted");
    assert!(joints.received.load(Ordering::Relaxed) >= 2);
    let camera = robot_check::counter(&counters, &format!("camera/{cam}"));
    assert_eq!(camera.decode_errors.load(Ordering::Relaxed), 0);
    assert!(camera.received.load(Ordering::Relaxed) >= 1 && report.published >= 1);
    let published = sink.counters().published.load(Ordering::Relaxed);
    drop(sink);
    transport.shutdown();
    assert!(published >= 5, "published {published}");
}

#[test]
fn python_zenoh_robot_round_trip_trajectory_commands() {
    run(CommandFormat::JointTrajectory);
}

#[test]
fn python_zenoh_robot_round_trip_float64_multi_array_commands() {
    run(CommandFormat::Float64MultiArray);
}
