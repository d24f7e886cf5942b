//! What the ROS 2 node is set to do and what it reports, without DDS: the
//! node's settings, the error type, QoS mismatch reports and the fixed
//! topic names. Always built, so a build without the `dds` feature still
//! reads profiles and reports.

use std::net::IpAddr;

/// Settings of the ROS 2 node.
#[derive(Debug, Clone, PartialEq)]
pub struct Ros2Config {
    /// DDS domain (ROS_DOMAIN_ID).
    pub domain_id: u16,
    /// Node name.
    pub node_name: String,
    /// Node namespace, e.g. `/` or `/arm1`.
    pub namespace: String,
    /// Command topic name (relative names resolve under the namespace).
    pub command_topic: String,
    /// Instruction topic name.
    pub instruction_topic: String,
    /// Restrict DDS to these local interfaces (e.g. `127.0.0.1` for
    /// loopback-only tests); empty means every interface.
    pub only_networks: Vec<IpAddr>,
}

impl Default for Ros2Config {
    fn default() -> Self {
        Ros2Config {
            domain_id: 0,
            node_name: "ganglion".into(),
            namespace: "/".into(),
            command_topic: "command".into(),
            instruction_topic: "instruction".into(),
            only_networks: Vec::new(),
        }
    }
}

/// Why the ROS 2 transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum Ros2Error {
    /// A node, topic or type name is not a valid ROS name.
    #[error("invalid ROS name {name:?}: {reason}")]
    Name {
        /// The offending name.
        name: String,
        /// Why.
        reason: String,
    },
    /// DDS refused to create an entity.
    #[error("DDS: {0}")]
    Dds(String),
    /// This build has no DDS node: `ganglion-ros2` was built without its
    /// `dds` feature (ganglion's `ros2` feature, on by default).
    #[error(
        "this build of ganglion has no ROS 2 transport (built without the `ros2` feature): rebuild with default \
         features"
    )]
    NotBuilt,
}

/// A peer endpoint that discovery found on one of Ganglion's topics but
/// whose QoS can never match Ganglion's (DDS "incompatible QoS": a
/// best-effort writer for a reliable reader, a transient-local reader for a
/// volatile writer, ...). Nothing flows between the two, silently, unless
/// someone reads this.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QosMismatch {
    /// The DDS topic, e.g. `rt/instruction`.
    pub topic: String,
    /// Ganglion's end: `"reader"` or `"writer"`.
    pub ganglion_side: &'static str,
    /// The policy RustDDS found incompatible (first found), e.g.
    /// `Reliability` or `Durability`.
    pub policy: String,
    /// The peer's participant (GUID prefix, hex).
    pub peer: String,
    /// Ganglion's QoS on this topic.
    pub ganglion_qos: String,
    /// The peer endpoint's QoS.
    pub peer_qos: String,
}

impl std::fmt::Display for QosMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peer_side = if self.ganglion_side == "reader" { "writer" } else { "reader" };
        write!(
            f,
            "QoS mismatch on {}: Ganglion's {} {{{}}} and the peer's {} {} {{{}}} are incompatible ({}): they never \
             match and nothing flows between them",
            self.topic, self.ganglion_side, self.ganglion_qos, peer_side, self.peer, self.peer_qos, self.policy
        )
    }
}

/// Joint states topic (in).
pub const TOPIC_JOINT_STATES: &str = "joint_states";
/// External heartbeat topic (in).
pub const TOPIC_HEARTBEAT_IN: &str = "heartbeat_in";
/// Ganglion's heartbeat topic (out).
pub const TOPIC_HEARTBEAT: &str = "heartbeat";
/// Diagnostics topic (out).
pub const TOPIC_DIAGNOSTICS: &str = "diagnostics";
