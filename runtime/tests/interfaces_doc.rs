//! docs/INTERFACES.md's table of streams is what the drivers use: every
//! zenoh key expression from `ganglion_zenoh::Keys`, every fixed ROS 2
//! topic from `ganglion_ros2`, the defaults of the configurable ones from
//! the profile's `[transport]`, every message type from the codec. (The ROS
//! 2 QoS table is held to the code by a unit test of `ganglion-ros2`; the
//! profile keys by `ganglion::profile::reference`.)

use ganglion::transport::TransportConfig;
use ganglion_codec::msg::{DiagnosticArray, Header, Image, JointState, Message, StringMsg};
use ganglion_codec::CommandFormat;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/INTERFACES.md");
    std::fs::read_to_string(path).expect("docs/INTERFACES.md")
}

/// The rows of the table under "Topics and key expressions", as cells.
fn stream_table(doc: &str) -> Vec<Vec<String>> {
    let section = doc.split_once("## Topics and key expressions").expect("the section").1;
    let section = section.split_once("###").map_or(section, |(s, _)| s);
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .skip(1)
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect::<Vec<_>>())
        .collect()
}

/// `sensor_msgs/msg/JointState` as DDS names it.
fn dds_name(ros_type: &str) -> String {
    let t = ros_type.trim_matches('`');
    let (pkg, name) = t.split_once("/msg/").unwrap_or_else(|| panic!("{t}: not pkg/msg/Type"));
    format!("{pkg}::msg::dds_::{name}_")
}

#[test]
fn the_stream_table_names_the_keys_topics_and_types_in_use() {
    let doc = doc();
    let rows = stream_table(&doc);
    let keys = ganglion_zenoh::Keys::new("<prefix>");
    let ros = TransportConfig::default().ros2;
    let fixed = |t: &str| format!("`{t}`");
    let configurable = |key: &str, default: &str| format!("`[transport.ros2] {key}` (default `{default}`)");
    // stream, zenoh key, ROS 2 topic, DDS type (None: per profile), direction
    let expected: Vec<(&str, String, String, Option<&str>, &str)> = vec![
        (
            "joint states",
            keys.joint_states(),
            fixed(ganglion_ros2::TOPIC_JOINT_STATES),
            Some(JointState::TYPE_NAME),
            "in",
        ),
        (
            "camera `<name>` (each of `robot.cameras`)",
            keys.camera("<name>"),
            fixed("camera/<name>/image_raw"),
            Some(Image::TYPE_NAME),
            "in",
        ),
        (
            "instruction",
            keys.instruction(),
            configurable("instruction_topic", &ros.instruction_topic),
            Some(StringMsg::TYPE_NAME),
            "in",
        ),
        (
            "external heartbeat / operator stop",
            keys.heartbeat_in(),
            fixed(ganglion_ros2::TOPIC_HEARTBEAT_IN),
            Some(Header::TYPE_NAME),
            "in",
        ),
        ("command", keys.command(), configurable("command_topic", &ros.command_topic), None, "out"),
        (
            "Ganglion's heartbeat",
            keys.heartbeat(),
            fixed(ganglion_ros2::TOPIC_HEARTBEAT),
            Some(Header::TYPE_NAME),
            "out",
        ),
        (
            "diagnostics",
            keys.diagnostics(),
            fixed(ganglion_ros2::TOPIC_DIAGNOSTICS),
            Some(DiagnosticArray::TYPE_NAME),
            "out",
        ),
    ];
    assert_eq!(rows.len(), expected.len(), "one row per stream: {rows:?}");
    for (stream, zenoh, ros2, dds_type, direction) in &expected {
        let row = rows.iter().find(|r| r[1] == *stream).unwrap_or_else(|| panic!("no row {stream:?}"));
        assert_eq!(row[2], format!("`{zenoh}`"), "{stream}: zenoh key");
        assert_eq!(row[3], *ros2, "{stream}: ROS 2 topic");
        if let Some(t) = dds_type {
            assert_eq!(dds_name(&row[4]), *t, "{stream}: message type");
        }
        assert_eq!(row[5], *direction, "{stream}: direction");
    }

    // The default prefix, and the command types the profile accepts.
    let z = TransportConfig::default().zenoh_config("arm", None).expect("default zenoh config");
    assert_eq!(z.prefix, "ganglion/arm");
    assert!(doc.contains("default\n`ganglion/<robot.name>`"), "the default prefix");
    for format in CommandFormat::ALL {
        let row = format!("| `{}` ", format.ros_type());
        assert!(doc.contains(&row), "no command row for {}", format.ros_type());
        assert_eq!(dds_name(format.ros_type()), format.dds_type_name());
    }
    assert_eq!(TransportConfig::default().command_type, CommandFormat::JointTrajectory);
    assert!(doc.contains("| `trajectory_msgs/msg/JointTrajectory` (default) |"));
}
