//! Interop with Cyclone DDS (Python `cyclonedds`): robot.py publishes
//! `sensor_msgs/JointState` on `rt/joint_states` (type
//! `sensor_msgs::msg::dds_::JointState_`) and images, and subscribes to
//! Ganglion's command topic; loopback only, multicast off. Both directions
//! are checked: Cyclone -> Ganglion (joint states and frames land in the
//! slots with the documented contents) and Ganglion -> Cyclone (robot.py
//! decodes consecutive commands).

#[path = "../../interop/python.rs"]
mod python;
#[path = "../../interop/robot_check.rs"]
mod robot_check;

use std::process::Stdio;
use std::sync::atomic::Ordering;

use ganglion_codec::{command_queue, CommandFormat, Inputs};
use ganglion_core::input_slots;
use ganglion_ros2::{CommandOut, Ros2Config, Ros2Transport};

/// A domain id of our own so parallel tests do not see each other: 10..=159
/// (runtime's transport_e2e uses 160..=219, `ganglion bench transport` 220..=231).
fn domain(offset: u16) -> u16 {
    10 + ((std::process::id() as u16).wrapping_mul(7).wrapping_add(offset)) % 150
}

fn run(format: CommandFormat, offset: u16) {
    // RUST_LOG=rustdds=debug shows discovery (topic names, locators) when this fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let domain_id = domain(offset);
    let cfg = Ros2Config {
        domain_id,
        command_topic: "ganglion/command".into(),
        only_networks: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        ..Ros2Config::default()
    };
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
    let transport = Ros2Transport::start(&cfg, inputs, outbox, out).expect("ros2 transport starts");
    let robot = python::script("robot.py")
        .args(["--transport", "dds", "--domain", &domain_id.to_string(), "--command-topic", "ganglion/command"])
        .args(["--format", format.ros_type(), "--commands", "5", "--camera", cam])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start robot.py");
    robot_check::exchange(robot, &mut readers, &mut sink, 5);
    let joints = robot_check::counter(&counters, "joint_states");
    assert!(joints.received.load(Ordering::Relaxed) >= 1);
    assert_eq!(joints.decode_errors.load(Ordering::Relaxed), 0);
    drop(sink);
    transport.shutdown();
}

#[test]
fn cyclone_dds_robot_round_trip_trajectory_commands() {
    run(CommandFormat::JointTrajectory, 0);
}

#[test]
fn cyclone_dds_robot_round_trip_joint_state_commands() {
    run(CommandFormat::JointState, 1);
}
