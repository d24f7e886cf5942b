//! Wiring of the zenoh / ROS 2 drivers and of the serial servo bus into
//! the loop's slots and sink.
//!
//! `[transport]` picks the driver; all share the bounded command queue
//! (`ganglion_codec::ingest`), so the loop sees one [`QueueSink`] whichever
//! transport runs. zenoh and ROS 2 also share the codec and the per-topic
//! counters; the servo bus ([`servo`]) writes the joint-state slot itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ganglion_codec::ingest::OutboxCounters;
use ganglion_codec::msg::DiagnosticArray;
use ganglion_codec::{
    command_queue, CaptureStamp, CommandFormat, DecodeLimits, IngestConfig, Inputs, JointMap, QueueSink, TopicCounters,
    TopicStats,
};
use ganglion_core::{Clock, InputWriters};

pub mod camera;
pub mod servo;

pub use servo::{ServoFault, ServoOutage, ServoProtocol, ServoReport, ServoSection, ServoStartError, ServoTransport};

/// Which transport runs (`[transport] kind`; with clap, a `--transport` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// No external transport (in-process simulation).
    #[default]
    None,
    /// zenoh.
    Zenoh,
    /// ROS 2 over DDS.
    Ros2,
    /// The robot's serial servo bus, in-process (`[transport.servo]`).
    /// Not a `--transport` value: `sim serve` and `bench transport` have
    /// no plant side for it.
    #[value(skip)]
    Servo,
}

/// `[transport.zenoh]`.
///
/// The session keys (`mode`, `listen`, `connect`, `multicast_scouting`,
/// `shared_memory`) are optional so that a profile naming a `config_file`
/// can be refused when it also sets one: the file is then the whole session
/// config, and a key here silently overriding it (a peer listening on plain
/// TCP next to a file meant to be secure) is what must not happen.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZenohSection {
    /// Key prefix; empty means `ganglion/<robot.name>`.
    pub prefix: String,
    /// `peer` (default) or `client`.
    #[serde(deserialize_with = "de::session_mode")]
    pub mode: Option<ganglion_zenoh::SessionMode>,
    /// Endpoints to listen on; absent or empty: no listener.
    pub listen: Option<Vec<String>>,
    /// Endpoints to connect to.
    pub connect: Option<Vec<String>>,
    /// Multicast scouting (default off).
    pub multicast_scouting: Option<bool>,
    /// Shared memory for large payloads (default off).
    pub shared_memory: Option<bool>,
    /// A zenoh json5 config (TLS/mTLS, access control, a router's unix
    /// socket): the whole session config; relative to the profile's
    /// directory.
    pub config_file: Option<PathBuf>,
}

impl ZenohSection {
    /// The session keys this section sets (`config_file` excluded).
    pub fn session_keys_set(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.mode.is_some() {
            keys.push("mode");
        }
        if self.listen.is_some() {
            keys.push("listen");
        }
        if self.connect.is_some() {
            keys.push("connect");
        }
        if self.multicast_scouting.is_some() {
            keys.push("multicast_scouting");
        }
        if self.shared_memory.is_some() {
            keys.push("shared_memory");
        }
        keys
    }
}

/// `[transport.ros2]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ros2Section {
    /// DDS domain id (0..=232).
    pub domain_id: u16,
    /// Node name.
    pub node_name: String,
    /// Node namespace.
    pub namespace: String,
    /// Command topic (e.g. `joint_trajectory_controller/joint_trajectory`).
    pub command_topic: String,
    /// Instruction topic.
    pub instruction_topic: String,
    /// Restrict DDS to the loopback interface.
    pub loopback_only: bool,
}

impl Default for Ros2Section {
    fn default() -> Self {
        Ros2Section {
            domain_id: 0,
            node_name: "ganglion".into(),
            namespace: "/".into(),
            command_topic: "command".into(),
            instruction_topic: "instruction".into(),
            loopback_only: false,
        }
    }
}

/// Which transport a profile uses and its settings (`[transport]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// `none`, `zenoh`, `ros2` or `servo`.
    pub kind: TransportKind,
    /// Command message type: `trajectory_msgs/msg/JointTrajectory`,
    /// `std_msgs/msg/Float64MultiArray` or `sensor_msgs/msg/JointState`
    /// (`/msg/` may be left out).
    #[serde(deserialize_with = "de::command_format")]
    pub command_type: CommandFormat,
    /// `header` (capture stamp from the message header, sender wall time)
    /// or `receive`.
    #[serde(deserialize_with = "de::capture_stamp")]
    pub capture_stamp: CaptureStamp,
    /// Commands the hand-off queue holds before dropping.
    pub queue_capacity: usize,
    /// Least time between two heartbeats, ms.
    pub heartbeat_period_ms: u64,
    /// At start, wait up to this long for the robot's command subscriber
    /// to appear (0: do not wait), ms.
    pub wait_for_subscriber_ms: u64,
    /// `[transport.zenoh]`.
    pub zenoh: ZenohSection,
    /// `[transport.ros2]`.
    pub ros2: Ros2Section,
    /// `[transport.servo]`.
    pub servo: ServoSection,
    /// `[[transport.cameras]]`: V4L2 cameras beside the servo bus ([`camera`]).
    pub cameras: Vec<camera::CameraSection>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            kind: TransportKind::None,
            command_type: CommandFormat::JointTrajectory,
            capture_stamp: CaptureStamp::Header,
            queue_capacity: 64,
            heartbeat_period_ms: 100,
            wait_for_subscriber_ms: 0,
            zenoh: ZenohSection::default(),
            ros2: Ros2Section::default(),
            servo: ServoSection::default(),
            cameras: Vec::new(),
        }
    }
}

/// serde for the driver crates' enums, which carry no serde derive: the
/// profile parses them directly, so a bad value is a load error naming the
/// key and the accepted values (serde's "unknown variant" wording, which
/// the profile reference's tests read).
mod de {
    use ganglion_codec::{CaptureStamp, CommandFormat};
    use ganglion_zenoh::SessionMode;
    use serde::de::{Deserialize, Deserializer, Error};

    fn by_name<'de, D: Deserializer<'de>, T>(
        d: D,
        names: &'static [&'static str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| D::Error::unknown_variant(&s, names))
    }

    const COMMAND_TYPES: [&str; 3] = [
        CommandFormat::JointTrajectory.ros_type(),
        CommandFormat::Float64MultiArray.ros_type(),
        CommandFormat::JointState.ros_type(),
    ];

    pub fn command_format<'de, D: Deserializer<'de>>(d: D) -> Result<CommandFormat, D::Error> {
        by_name(d, &COMMAND_TYPES, CommandFormat::from_ros_type)
    }

    pub fn capture_stamp<'de, D: Deserializer<'de>>(d: D) -> Result<CaptureStamp, D::Error> {
        by_name(d, &["header", "receive"], |s| match s {
            "header" => Some(CaptureStamp::Header),
            "receive" => Some(CaptureStamp::Receive),
            _ => None,
        })
    }

    pub fn session_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SessionMode>, D::Error> {
        by_name(d, &["peer", "client"], |s| match s {
            "peer" => Some(SessionMode::Peer),
            "client" => Some(SessionMode::Client),
            _ => None,
        })
        .map(Some)
    }
}

/// A `[transport]` value that cannot work (checked by
/// [`TransportConfig::validate`], so by `Profile::load`). Not `Copy`: the
/// conflict names the config file as the profile wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfigError {
    /// `queue_capacity` is 0: no command could ever be handed off.
    QueueCapacity,
    /// `ros2.domain_id` is above 232, the largest domain DDS maps onto ports.
    DomainId,
    /// `[transport.zenoh]` names a `config_file` and also sets a session key
    /// the file decides (a key here silently overriding a file meant to be
    /// secure is what must not happen).
    ConflictsWithConfigFile {
        /// Key under `[transport.zenoh]`.
        key: &'static str,
        /// The config file, as the profile names it.
        file: PathBuf,
    },
    /// `kind = "servo"` and a `[transport.servo]` key is missing or wrong.
    Servo {
        /// Key under `[transport.servo]`.
        key: &'static str,
        /// What would have been accepted.
        expected: String,
    },
    /// A `[[transport.cameras]]` entry is wrong, or cameras are listed
    /// without the servo bus.
    Camera {
        /// The full key path, e.g. `transport.cameras[1].fps`.
        key: String,
        /// What would have been accepted.
        expected: String,
    },
}

impl TransportConfigError {
    /// The profile key at fault.
    pub fn key(&self) -> String {
        match self {
            TransportConfigError::QueueCapacity => "transport.queue_capacity".into(),
            TransportConfigError::DomainId => "transport.ros2.domain_id".into(),
            TransportConfigError::ConflictsWithConfigFile { key, .. } => format!("transport.zenoh.{key}"),
            TransportConfigError::Servo { key, .. } => format!("transport.servo.{key}"),
            TransportConfigError::Camera { key, .. } => key.clone(),
        }
    }

    /// What would have been accepted.
    pub fn expected(&self) -> String {
        match self {
            TransportConfigError::QueueCapacity => "at least 1".into(),
            TransportConfigError::DomainId => "a DDS domain id in 0..=232".into(),
            TransportConfigError::ConflictsWithConfigFile { key, file } => format!(
                "no `{key}` next to transport.zenoh.config_file ({}): that file is the whole zenoh session config \
                 (mode, listeners, TLS); remove `{key}` from the profile, or set it in the file",
                file.display()
            ),
            TransportConfigError::Servo { expected, .. } => format!("{expected} (transport.kind = \"servo\")"),
            TransportConfigError::Camera { expected, .. } => expected.clone(),
        }
    }
}

crate::control::config_error!(TransportConfigError);

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A `[transport]` value is invalid (a profile that loaded never has one).
    #[error(transparent)]
    Config(#[from] TransportConfigError),
    /// The profile says `kind = "none"`.
    #[error("transport.kind is \"none\": this command needs zenoh, ros2 or servo")]
    NoTransport,
    /// The servo bus could not be armed.
    #[error(transparent)]
    Servo(Box<ServoStartError>),
    /// A camera could not be opened or set up (before the bus is armed).
    #[error(transparent)]
    Camera(Box<camera::CameraStartError>),
    /// A `[transport.zenoh] listen` endpoint is taken on this host.
    #[error(
        "transport.zenoh.listen: {endpoint} is already in use on this host (another `ganglion run` with this \
         profile?): give each instance its own port in [transport.zenoh] listen of its profile, and point its \
         plant's connect at it"
    )]
    ListenInUse {
        /// The endpoint, as the profile names it.
        endpoint: String,
    },
    /// zenoh failed.
    #[error(transparent)]
    Zenoh(#[from] ganglion_zenoh::ZenohError),
    /// ROS 2 failed.
    #[error(transparent)]
    Ros2(#[from] ganglion_ros2::Ros2Error),
}

impl TransportConfig {
    /// The zenoh settings; `robot` names the default prefix, `base` is the
    /// profile's directory (for a relative `config_file`).
    pub fn zenoh_config(
        &self,
        robot: &str,
        base: Option<&std::path::Path>,
    ) -> Result<ganglion_zenoh::ZenohConfig, TransportConfigError> {
        let z = &self.zenoh;
        if let Some(file) = &z.config_file {
            if let Some(key) = z.session_keys_set().first() {
                return Err(TransportConfigError::ConflictsWithConfigFile { key, file: file.clone() });
            }
        }
        let config_file = z.config_file.as_ref().map(|p| match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.clone(),
        });
        Ok(ganglion_zenoh::ZenohConfig {
            prefix: if z.prefix.is_empty() { format!("ganglion/{robot}") } else { z.prefix.clone() },
            mode: z.mode.unwrap_or_default(),
            listen: z.listen.clone().unwrap_or_default(),
            connect: z.connect.clone().unwrap_or_default(),
            multicast_scouting: z.multicast_scouting.unwrap_or(false),
            shared_memory: z.shared_memory.unwrap_or(false),
            config_file,
        })
    }

    /// The ROS 2 settings.
    pub fn ros2_config(&self) -> Result<ganglion_ros2::Ros2Config, TransportConfigError> {
        let r = &self.ros2;
        if r.domain_id > 232 {
            return Err(TransportConfigError::DomainId);
        }
        Ok(ganglion_ros2::Ros2Config {
            domain_id: r.domain_id,
            node_name: r.node_name.clone(),
            namespace: r.namespace.clone(),
            command_topic: r.command_topic.clone(),
            instruction_topic: r.instruction_topic.clone(),
            only_networks: if r.loopback_only { vec![std::net::Ipv4Addr::LOCALHOST.into()] } else { Vec::new() },
        })
    }

    /// Checks what parsing cannot (called by `Profile::load`; enums are
    /// refused while parsing).
    pub fn validate(&self) -> Result<(), TransportConfigError> {
        if self.queue_capacity == 0 {
            return Err(TransportConfigError::QueueCapacity);
        }
        self.zenoh_config("robot", None)?;
        self.ros2_config()?;
        if self.kind == TransportKind::Servo {
            if let Some((key, expected)) = self.servo.problem() {
                return Err(TransportConfigError::Servo { key, expected });
            }
        }
        if let Some((key, expected)) = camera::section_problem(&self.cameras, self.kind) {
            return Err(TransportConfigError::Camera { key, expected });
        }
        Ok(())
    }
}

/// What the loop's side of a transport needs from the profile.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    /// Robot name (default zenoh prefix).
    pub robot: String,
    /// Joint names, in robot order.
    pub joint_names: Vec<String>,
    /// Control period, ns (a trajectory point's `time_from_start`).
    pub period_ns: u64,
    /// Largest accepted camera frame.
    pub max_width: u32,
    /// Largest accepted camera frame.
    pub max_height: u32,
    /// The profile's directory.
    pub base_dir: Option<PathBuf>,
    /// Each camera's `(name, width, height)`, in profile order (the
    /// geometry `[[transport.cameras]]` frames are resized to).
    pub cameras: Vec<(String, u32, u32)>,
}

// One per process, built once at start: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Driver {
    Zenoh(ganglion_zenoh::ZenohTransport),
    Ros2(ganglion_ros2::Ros2Transport),
    Servo(ServoTransport),
}

/// A started transport: inputs flow into the slots, commands out of the sink.
pub struct RunningTransport {
    driver: Driver,
    /// `[[transport.cameras]]`; dropped (threads stopped) with the transport.
    cameras: camera::Cameras,
    inputs: Vec<(String, Arc<TopicCounters>)>,
    commands: Arc<OutboxCounters>,
    command_topic: String,
}

/// Refuses a `tcp/` or `udp/` listen endpoint whose address is taken on
/// this host, naming the profile key (zenoh's own error names neither).
fn check_listen_free(listen: &[String]) -> Result<(), TransportError> {
    for endpoint in listen {
        let Some((proto, rest)) = endpoint.split_once('/') else { continue };
        let Ok(addr) = rest.split(['?', '#']).next().unwrap_or(rest).parse::<std::net::SocketAddr>() else {
            continue;
        };
        if addr.port() == 0 {
            continue;
        }
        let taken = |e: std::io::Error| e.kind() == std::io::ErrorKind::AddrInUse;
        let in_use = match proto {
            "tcp" => std::net::TcpListener::bind(addr).err().is_some_and(taken),
            "udp" => std::net::UdpSocket::bind(addr).err().is_some_and(taken),
            _ => false,
        };
        if in_use {
            return Err(TransportError::ListenInUse { endpoint: endpoint.clone() });
        }
    }
    Ok(())
}

/// Starts the transport the profile names, feeding `writers`; returns the
/// command sink for the control loop and the running transport.
pub fn start(
    cfg: &TransportConfig,
    spec: &LinkSpec,
    writers: InputWriters,
    clock: Arc<dyn Clock>,
) -> Result<(QueueSink, RunningTransport), TransportError> {
    cfg.validate()?;
    if cfg.kind == TransportKind::Servo {
        let (sink, outbox) = command_queue(cfg.queue_capacity);
        let commands = sink.counters();
        let period = std::time::Duration::from_nanos(spec.period_ns);
        // Cameras first: a camera that cannot deliver fails the start
        // before the arm is armed.
        let (cameras, _) = camera::Cameras::start(&cfg.cameras, &spec.cameras, writers.cameras, clock.clone())
            .map_err(|e| TransportError::Camera(Box::new(e)))?;
        let servo = ServoTransport::start(
            &cfg.servo,
            &spec.joint_names,
            spec.base_dir.as_deref(),
            period,
            writers.joints,
            outbox,
            clock,
        )
        .map_err(|e| TransportError::Servo(Box::new(e)))?;
        let mut inputs = vec![("joint_states".to_string(), servo.joint_counters())];
        inputs.extend(cameras.inputs());
        let command_topic = format!("servo bus {}", servo.port());
        let driver = Driver::Servo(servo);
        return Ok((sink, RunningTransport { driver, cameras, inputs, commands, command_topic }));
    }
    let ingest = IngestConfig {
        clock,
        limits: DecodeLimits {
            max_width: spec.max_width.max(1),
            max_height: spec.max_height.max(1),
            ..DecodeLimits::default()
        },
        capture: cfg.capture_stamp,
        joints: JointMap::by_name(spec.joint_names.clone()),
    };
    let inputs = Inputs::new(writers, &ingest);
    let counters = inputs.counters();
    let (sink, outbox) = command_queue(cfg.queue_capacity);
    let commands = sink.counters();
    let format = cfg.command_type;
    let heartbeat_period_ns = cfg.heartbeat_period_ms * 1_000_000;
    let driver = match cfg.kind {
        TransportKind::None => return Err(TransportError::NoTransport),
        TransportKind::Servo => unreachable!("started above"),
        TransportKind::Zenoh => {
            let out = ganglion_zenoh::CommandOut {
                format,
                joint_names: spec.joint_names.clone(),
                time_from_start_ns: spec.period_ns,
                heartbeat_period_ns,
                wait_for_subscriber_ns: cfg.wait_for_subscriber_ms * 1_000_000,
            };
            let z = cfg.zenoh_config(&spec.robot, spec.base_dir.as_deref())?;
            check_listen_free(&z.listen)?;
            Driver::Zenoh(ganglion_zenoh::ZenohTransport::start(&z, inputs, outbox, out)?)
        }
        TransportKind::Ros2 => {
            let out = ganglion_ros2::CommandOut {
                format,
                joint_names: spec.joint_names.clone(),
                time_from_start_ns: spec.period_ns,
                heartbeat_period_ns,
                wait_for_subscriber_ns: cfg.wait_for_subscriber_ms * 1_000_000,
            };
            Driver::Ros2(ganglion_ros2::Ros2Transport::start(&cfg.ros2_config()?, inputs, outbox, out)?)
        }
    };
    let command_topic = match &driver {
        Driver::Zenoh(z) => z.keys().command(),
        Driver::Ros2(r) => r.node().dds_topic_name(&cfg.ros2.command_topic)?,
        Driver::Servo(s) => format!("servo bus {}", s.port()),
    };
    let cameras = camera::Cameras::default();
    Ok((sink, RunningTransport { driver, cameras, inputs: counters, commands, command_topic }))
}

impl RunningTransport {
    /// Per input topic: received, dropped, decode errors.
    pub fn topics(&self) -> BTreeMap<String, TopicStats> {
        self.inputs.iter().map(|(n, c)| (n.clone(), c.snapshot())).collect()
    }

    /// The zenoh session's facts (mode, listeners, TLS, connections);
    /// `None` for ROS 2.
    pub fn zenoh_facts(&self) -> Option<&ganglion_zenoh::SessionFacts> {
        match &self.driver {
            Driver::Zenoh(z) => Some(z.facts()),
            Driver::Ros2(_) | Driver::Servo(_) => None,
        }
    }

    /// The command key (zenoh) or DDS topic (ROS 2).
    pub fn command_topic(&self) -> &str {
        &self.command_topic
    }

    /// Whether a command subscriber matched within `[transport]
    /// wait_for_subscriber_ms` at start.
    pub fn command_matched_at_start(&self) -> bool {
        match &self.driver {
            Driver::Zenoh(z) => z.command_matched_at_start(),
            Driver::Ros2(r) => r.command_matched_at_start(),
            // Armed at start: every servo answered.
            Driver::Servo(_) => true,
        }
    }

    /// ROS 2: every peer endpoint whose QoS can never match Ganglion's on
    /// one of its topics (each logged once when discovery finds it); empty
    /// for zenoh, which has no QoS matching.
    pub fn qos_mismatches(&self) -> Vec<ganglion_ros2::QosMismatch> {
        match &self.driver {
            Driver::Zenoh(_) | Driver::Servo(_) => Vec::new(),
            Driver::Ros2(r) => r.match_status().mismatches(),
        }
    }

    /// ROS 2: subscribers matched on the command topic now; `None` for
    /// zenoh (its matching status is read only at start).
    pub fn command_subscribers(&self) -> Option<i32> {
        match &self.driver {
            Driver::Zenoh(_) | Driver::Servo(_) => None,
            Driver::Ros2(r) => Some(r.match_status().command_subscribers()),
        }
    }

    /// The causes the transport's device raises for the control loop (the
    /// servo bus: `servo_fault`, `bus_fault`); `None` for zenoh and ROS 2.
    pub fn device_causes(&self) -> Option<ganglion_core::DeviceCauses> {
        match &self.driver {
            Driver::Servo(s) => Some(s.device_causes()),
            Driver::Zenoh(_) | Driver::Ros2(_) => None,
        }
    }

    /// Commands put on the wire so far.
    pub fn commands_published(&self) -> u64 {
        self.commands.published.load(Ordering::Relaxed)
    }

    /// Commands dropped at the full queue so far.
    pub fn commands_dropped(&self) -> u64 {
        self.commands.dropped.load(Ordering::Relaxed)
    }

    /// Publishes a diagnostics message (never from the control thread).
    pub fn publish_diagnostics(&mut self, diag: &DiagnosticArray) -> Result<(), TransportError> {
        match &mut self.driver {
            Driver::Zenoh(z) => z.publish_diagnostics(diag)?,
            Driver::Ros2(r) => r.publish_diagnostics(diag)?,
            // No wire to publish them on; `ganglion run` logs the report.
            Driver::Servo(_) => {}
        }
        Ok(())
    }

    /// Drains the command queue (the sink must be dropped first for the
    /// publisher to see the end) and closes the transport.
    pub fn shutdown(self) {
        let _ = self.shutdown_with_report();
    }

    /// Stops the `[[transport.cameras]]` capture threads and reports each
    /// camera (empty without cameras); dropping the transport stops them too.
    pub fn stop_cameras(&mut self) -> Vec<ganglion_camera::CameraReport> {
        std::mem::take(&mut self.cameras).stop()
    }

    /// [`shutdown`](Self::shutdown), returning the servo bus's report
    /// (`None` for zenoh and ROS 2). For the servo bus: the queued final
    /// hold is written and held `exit_hold_ms`, then torque goes off.
    pub fn shutdown_with_report(self) -> Option<ServoReport> {
        match self.driver {
            Driver::Zenoh(z) => z.shutdown(),
            Driver::Ros2(r) => r.shutdown(),
            Driver::Servo(s) => return s.shutdown(),
        }
        None
    }
}

/// The plant's end of a transport (`ganglion sim serve`, test robots):
/// publishes encoded sensor messages, receives command payloads.
// One per process, built once at start: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum PlantLink {
    /// Over zenoh.
    Zenoh(ganglion_zenoh::ZenohPlant),
    /// Over ROS 2.
    Ros2(ganglion_ros2::Ros2Plant),
}

impl PlantLink {
    /// Starts the plant side of `kind` for the profile's `[transport]`.
    /// zenoh: a profile that only listens is connected to (the plant is the
    /// other peer). ROS 2: the node is named `<node_name>_plant`.
    pub fn start(
        cfg: &TransportConfig,
        kind: TransportKind,
        robot: &str,
        camera_names: &[String],
        on_command: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Result<PlantLink, TransportError> {
        cfg.validate()?;
        match kind {
            TransportKind::None | TransportKind::Servo => Err(TransportError::NoTransport),
            TransportKind::Zenoh => {
                let mut z = cfg.zenoh_config(robot, None)?;
                if z.connect.is_empty() {
                    z.connect = std::mem::take(&mut z.listen);
                } else {
                    z.listen.clear();
                }
                Ok(PlantLink::Zenoh(ganglion_zenoh::ZenohPlant::start(&z, camera_names, on_command)?))
            }
            TransportKind::Ros2 => {
                let mut r = cfg.ros2_config()?;
                r.node_name = format!("{}_plant", r.node_name);
                let format = cfg.command_type;
                Ok(PlantLink::Ros2(ganglion_ros2::Ros2Plant::start(&r, camera_names, format, on_command)?))
            }
        }
    }

    /// Publishes an encoded joint state.
    pub fn publish_joints(&self, payload: &[u8]) -> Result<(), TransportError> {
        match self {
            PlantLink::Zenoh(z) => z.publish_joints(payload)?,
            PlantLink::Ros2(r) => r.publish_joints(payload)?,
        }
        Ok(())
    }

    /// Publishes an encoded image on camera `index`.
    pub fn publish_camera(&self, index: usize, payload: &[u8]) -> Result<(), TransportError> {
        match self {
            PlantLink::Zenoh(z) => z.publish_camera(index, payload)?,
            PlantLink::Ros2(r) => r.publish_camera(index, payload)?,
        }
        Ok(())
    }

    /// Publishes an encoded instruction.
    pub fn publish_instruction(&self, payload: &[u8]) -> Result<(), TransportError> {
        match self {
            PlantLink::Zenoh(z) => z.publish_instruction(payload)?,
            PlantLink::Ros2(r) => r.publish_instruction(payload)?,
        }
        Ok(())
    }
}
