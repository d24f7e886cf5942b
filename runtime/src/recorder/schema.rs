//! The channels of a Ganglion recording and their message schemas.
//!
//! Every channel uses message encoding `cdr` with a `ros2msg` schema, so
//! Foxglove, `mcap-ros2-support` and `ros2 bag` decode all of them: the
//! standard inputs with their `common_interfaces` definitions, Ganglion's
//! own records with the `ganglion_msgs/msg/*` definitions below (the schema
//! text travels in the file, no package needs to be installed to read it).
//! docs/RECORDING.md documents every field.

use std::fmt::Write as _;

/// One channel kind of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Measured joint states (`/joint_states`, `sensor_msgs/msg/JointState`).
    Joints,
    /// Camera `i` of the profile (`/camera/<name>/image_raw`, `sensor_msgs/msg/Image`).
    Camera(u8),
    /// The language instruction (`/instruction`, `std_msgs/msg/String`).
    Instruction,
    /// The external heartbeat / operator stop (`/heartbeat_in`, `ganglion_msgs/msg/ExternalHeartbeat`).
    Heartbeat,
    /// Inference results as the loop collected them (`/ganglion/inference`, `ganglion_msgs/msg/InferenceResult`).
    Inference,
    /// One record per tick (`/ganglion/tick`, `ganglion_msgs/msg/TickRecord`).
    Tick,
    /// The command of every tick (`/command`, `sensor_msgs/msg/JointState`), for plotting.
    Command,
}

impl Topic {
    /// The MCAP topic name; cameras need their profile names.
    pub fn name(self, cameras: &[String]) -> String {
        match self {
            Topic::Joints => "/joint_states".into(),
            Topic::Camera(i) => {
                let name = cameras.get(i as usize).map(String::as_str).unwrap_or("unnamed");
                format!("/camera/{name}/image_raw")
            }
            Topic::Instruction => "/instruction".into(),
            Topic::Heartbeat => "/heartbeat_in".into(),
            Topic::Inference => "/ganglion/inference".into(),
            Topic::Tick => "/ganglion/tick".into(),
            Topic::Command => "/command".into(),
        }
    }

    /// The schema (message type) name.
    pub fn schema_name(self) -> &'static str {
        match self {
            Topic::Joints | Topic::Command => "sensor_msgs/msg/JointState",
            Topic::Camera(_) => "sensor_msgs/msg/Image",
            Topic::Instruction => "std_msgs/msg/String",
            Topic::Heartbeat => "ganglion_msgs/msg/ExternalHeartbeat",
            Topic::Inference => "ganglion_msgs/msg/InferenceResult",
            Topic::Tick => "ganglion_msgs/msg/TickRecord",
        }
    }

    /// The `ros2msg` schema text, dependencies appended the way `ros2 bag`
    /// writes them (a `=` separator line, then `MSG: <type>`).
    pub fn schema_text(self) -> String {
        let (main, deps): (&str, &[(&str, &str)]) = match self {
            Topic::Joints | Topic::Command => {
                (JOINT_STATE, &[("std_msgs/Header", HEADER), ("builtin_interfaces/Time", TIME)])
            }
            Topic::Camera(_) => (IMAGE, &[("std_msgs/Header", HEADER), ("builtin_interfaces/Time", TIME)]),
            Topic::Instruction => (STRING, &[]),
            Topic::Heartbeat => (HEARTBEAT, &[("builtin_interfaces/Time", TIME)]),
            Topic::Inference => (INFERENCE, &[("builtin_interfaces/Time", TIME)]),
            Topic::Tick => (TICK, &[("builtin_interfaces/Time", TIME)]),
        };
        let mut s = String::from(main);
        for (name, text) in deps {
            let _ = write!(s, "{SEPARATOR}\nMSG: {name}\n{text}");
        }
        s
    }
}

const SEPARATOR: &str = "================================================================================";

const TIME: &str = "int32 sec\nuint32 nanosec\n";
const HEADER: &str = "builtin_interfaces/Time stamp\nstring frame_id\n";
const JOINT_STATE: &str =
    "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n";
const IMAGE: &str = "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n";
const STRING: &str = "string data\n";
const HEARTBEAT: &str = "# Capture stamp on the loop clock (monotonic, not wall time).\n\
builtin_interfaces/Time stamp\n\
bool stop\n";
const INFERENCE: &str = "# One inference result, logged at the tick that collected it.\n\
uint64 request_id\n\
# Stamp of the observation the chunk was computed from (loop clock).\n\
builtin_interfaces/Time obs_stamp\n\
uint64 step_ns\n\
# 0 absolute position, 1 delta position\n\
uint8 kind\n\
# 0 ok, 1 bad_observation, 2 backend, 3 instruction_rejected, 4 worker_stopped, 5 panicked\n\
uint8 status\n\
bool has_surprise\n\
float64 surprise\n\
uint64 compute_ns\n\
uint32 n_joints\n\
# steps x n_joints, row-major\n\
float64[] actions\n";
const TICK: &str = "# One control tick (ganglion::recorder::TickRow).\n\
uint64 seq\n\
builtin_interfaces/Time scheduled\n\
builtin_interfaces/Time start\n\
# sample, collect, request, supervise, act, shield, publish, total (ns)\n\
uint32[] stage_ns\n\
# 0 startup, 1 nominal, 2 degraded, 3 fallback, 4 safe_stop\n\
uint8 mode\n\
# bit i set = cause code i active (see docs/RECORDING.md)\n\
uint32 causes\n\
uint64 request_id\n\
uint64 result_id\n\
uint32 action_index\n\
uint32 clamps\n\
# 1 published, 2 overrun, 4 clamped, 8 violation, 16 starved\n\
uint8 flags\n\
uint64 inference_latency_ns\n\
float64[] command_position\n\
float64[] command_velocity\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_carry_their_dependencies() {
        let s = Topic::Joints.schema_text();
        assert!(s.starts_with("std_msgs/Header header\n"));
        assert!(s.contains("MSG: std_msgs/Header\n") && s.contains("MSG: builtin_interfaces/Time\n"));
        assert!(!Topic::Instruction.schema_text().contains("MSG:"));
        assert_eq!(Topic::Camera(1).name(&["a".into(), "wrist".into()]), "/camera/wrist/image_raw");
    }
}
