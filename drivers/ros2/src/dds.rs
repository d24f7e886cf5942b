//! The node itself (the `dds` feature): participant, readers, writers,
//! the loop's transport and the plant's end.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ganglion_codec::ingest::{CommandOut, Ingest, Inputs, Outbox};
use ganglion_codec::msg::{DiagnosticArray, Message, Time};
use ganglion_codec::{encode_command, encode_heartbeat, CommandFormat};
use ros2_client::dds::rustdds;
use ros2_client::{Context, MessageTypeName, Name, Node, NodeName, NodeOptions, QosProfile};
use rustdds::no_key::{DataReader, DataWriter};
use rustdds::{mio1, DomainParticipantBuilder, RepresentationIdentifier};

pub use ros2_client;

use crate::{
    QosMismatch, Ros2Config, Ros2Error, TOPIC_DIAGNOSTICS, TOPIC_HEARTBEAT, TOPIC_HEARTBEAT_IN, TOPIC_JOINT_STATES,
};

/// A CDR payload (with its 4-byte encapsulation header) as RustDDS carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawCdr(pub Vec<u8>);

/// Passes [`RawCdr`] through RustDDS unchanged: the codec has already
/// produced the exact bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawAdapter;

/// Never produced: raw payloads cannot fail to (de)serialize.
#[derive(Debug, thiserror::Error)]
#[error("raw CDR adapter")]
pub struct RawError;

impl rustdds::no_key::SerializerAdapter<RawCdr> for RawAdapter {
    type Error = RawError;
    fn output_encoding() -> RepresentationIdentifier {
        RepresentationIdentifier::CDR_LE
    }
    fn to_bytes(value: &RawCdr) -> Result<rustdds::bytes::Bytes, RawError> {
        // RustDDS writes the encapsulation header itself.
        Ok(rustdds::bytes::Bytes::copy_from_slice(value.0.get(4..).unwrap_or(&[])))
    }
}

impl rustdds::no_key::DeserializerAdapter<RawCdr> for RawAdapter {
    type Error = RawError;
    type Decoded = RawCdr;
    fn supported_encodings() -> &'static [RepresentationIdentifier] {
        &[RepresentationIdentifier::CDR_LE, RepresentationIdentifier::CDR_BE]
    }
    fn transform_decoded(decoded: RawCdr) -> RawCdr {
        decoded
    }
}

impl rustdds::no_key::DefaultDecoder<RawCdr> for RawAdapter {
    type Decoder = RawAdapter;
    const DECODER: RawAdapter = RawAdapter;
}

impl<'de> rustdds::no_key::Decode<'de, RawCdr> for RawAdapter {
    type Error = RawError;
    fn decode_bytes(self, input: &'de [u8], encoding: RepresentationIdentifier) -> Result<RawCdr, RawError> {
        // Put the encapsulation header back so the codec sees a full payload.
        let mut v = Vec::with_capacity(input.len() + 4);
        v.extend_from_slice(&encoding.to_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(input);
        Ok(RawCdr(v))
    }
}

fn dds_err(e: impl std::fmt::Debug) -> Ros2Error {
    Ros2Error::Dds(format!("{e:?}"))
}

/// A DDS participant plus a ROS node; creates raw topics, readers, writers.
///
/// Field order is drop order: the publisher, subscriber, node and context
/// go first and the participant last, so that no writer outlives the
/// participant's event loop (RustDDS logs `Cannot remove Writer` at ERROR
/// for each one that does, on every clean shutdown).
pub struct Ros2Node {
    namespace: String,
    node_name: NodeName,
    publisher: rustdds::Publisher,
    subscriber: rustdds::Subscriber,
    node: Node,
    context: Context,
    _participant: rustdds::DomainParticipant,
}

fn split_type(ros_type: &str) -> (String, String) {
    let mut parts = ros_type.split('/');
    let pkg = parts.next().unwrap_or_default().to_owned();
    let name = parts.next_back().unwrap_or_default().to_owned();
    (pkg, name)
}

/// Resolves `topic` against the node `namespace` into an absolute ROS name.
///
/// Why not hand ros2-client a relative [`Name`]: its `Name::to_dds_name`
/// (0.12.1) joins the node namespace and the name with an extra `/`, so a
/// relative `joint_states` in namespace `/` becomes the DDS topic
/// `rt//joint_states`. Only ros2-client peers use that spelling; rclcpp,
/// Cyclone DDS and every other ROS 2 node use `rt/joint_states`, so nothing
/// would ever match. Absolute names are rendered correctly
/// (`rt/<ns>/<name>`), hence we resolve here.
pub fn resolve_topic(namespace: &str, topic: &str) -> Result<Name, Ros2Error> {
    let bad = |reason: &str| Ros2Error::Name { name: topic.into(), reason: reason.into() };
    if topic.starts_with('~') {
        return Err(bad("private (~) topic names are not supported"));
    }
    let full =
        if topic.starts_with('/') { topic.to_owned() } else { format!("{}/{topic}", namespace.trim_end_matches('/')) };
    let full = if full.starts_with('/') { full } else { format!("/{full}") };
    let (ns, base) = full.rsplit_once('/').ok_or_else(|| bad("empty name"))?;
    let ns = if ns.is_empty() { "/" } else { ns };
    Name::new(ns, base).map_err(|e| bad(&format!("{e:?}")))
}

/// Best-effort, volatile, keep-last-5: rclcpp's `SensorDataQoS`. Depth 5
/// rather than 1 so that samples arriving while the reader thread is
/// descheduled are still handed to the ingest in order (the slot keeps the
/// latest anyway) instead of being overwritten in RustDDS's reader cache.
pub fn sensor_qos() -> QosProfile {
    QosProfile::subscription_default().history(ros2_client::qos::History::KeepLast { depth: 5 })
}

/// Reliable, keep-last-32 (a burst of commands is retransmitted, not
/// overwritten), never blocking the publisher for long.
pub fn reliable_qos() -> QosProfile {
    QosProfile::subscription_default()
        .reliability_reliable(ros2_client::qos::WhenFull::Wait(Duration::from_millis(5)))
        .history(ros2_client::qos::History::KeepLast { depth: 32 })
}

/// The QoS settings that decide matching, as one line (`reliable, volatile,
/// keep last 32`); unset policies read as the DDS defaults.
pub fn describe_qos(q: &rustdds::QosPolicies) -> String {
    use rustdds::policy::{Durability, History, Liveliness, Ownership, Reliability};
    let mut parts = vec![
        match q.reliability() {
            Some(Reliability::BestEffort) => "best effort".to_string(),
            Some(Reliability::Reliable { .. }) => "reliable".to_string(),
            None => "reliability unset".to_string(),
        },
        match q.durability().unwrap_or(Durability::Volatile) {
            Durability::Volatile => "volatile".to_string(),
            Durability::TransientLocal => "transient local".to_string(),
            Durability::Transient => "transient".to_string(),
            Durability::Persistent => "persistent".to_string(),
        },
        match q.history().unwrap_or(History::KeepLast { depth: 1 }) {
            History::KeepLast { depth } => format!("keep last {depth}"),
            History::KeepAll => "keep all".to_string(),
        },
    ];
    if let Some(d) = q.deadline().filter(|d| d.0 != rustdds::Duration::INFINITE) {
        parts.push(format!("deadline {:?}", d.0));
    }
    match q.liveliness() {
        None | Some(Liveliness::Automatic { lease_duration: rustdds::Duration::INFINITE }) => {}
        Some(l) => parts.push(format!("liveliness {l:?}")),
    }
    if let Some(Ownership::Exclusive { .. }) = q.ownership() {
        parts.push("exclusive ownership".to_string());
    }
    parts.join(", ")
}

/// What DDS matching has reported so far: the incompatible peers on every
/// topic and the command topic's matched subscribers. Filled by the I/O
/// threads from RustDDS's reader and writer status events; each mismatch is
/// logged (WARN) once, when first seen.
#[derive(Debug, Default)]
pub struct MatchStatus {
    mismatches: Mutex<Vec<QosMismatch>>,
    command_subscribers: AtomicI32,
}

impl MatchStatus {
    /// Every incompatible peer seen so far (one entry per topic, side and
    /// peer participant, however often discovery re-announces it).
    pub fn mismatches(&self) -> Vec<QosMismatch> {
        self.mismatches.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Subscribers currently matched on the command topic.
    pub fn command_subscribers(&self) -> i32 {
        self.command_subscribers.load(Ordering::Relaxed)
    }

    fn note(&self, m: QosMismatch) {
        let mut all = self.mismatches.lock().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|o| o.topic == m.topic && o.ganglion_side == m.ganglion_side && o.peer == m.peer) {
            return;
        }
        tracing::warn!("ROS 2 {m}");
        all.push(m);
    }

    fn reader_event(&self, topic: &str, status: rustdds::DataReaderStatus) {
        if let rustdds::DataReaderStatus::RequestedIncompatibleQos {
            last_policy_id,
            writer,
            requested_qos,
            offered_qos,
            ..
        } = status
        {
            self.note(QosMismatch {
                topic: topic.to_string(),
                ganglion_side: "reader",
                policy: format!("{last_policy_id:?}"),
                peer: format!("{:?}", writer.prefix),
                ganglion_qos: describe_qos(&requested_qos),
                peer_qos: describe_qos(&offered_qos),
            });
        }
    }

    /// Returns the writer's current matched-reader count when the event
    /// says it.
    fn writer_event(&self, topic: &str, status: rustdds::DataWriterStatus) -> Option<i32> {
        match status {
            rustdds::DataWriterStatus::OfferedIncompatibleQos {
                last_policy_id,
                reader,
                requested_qos,
                offered_qos,
                ..
            } => {
                self.note(QosMismatch {
                    topic: topic.to_string(),
                    ganglion_side: "writer",
                    policy: format!("{last_policy_id:?}"),
                    peer: format!("{:?}", reader.prefix),
                    ganglion_qos: describe_qos(&offered_qos),
                    peer_qos: describe_qos(&requested_qos),
                });
                None
            }
            rustdds::DataWriterStatus::PublicationMatched { current, .. } => Some(current.count()),
            _ => None,
        }
    }

    /// Drains `writer`'s status events; `command`: it is the command writer.
    fn poll_writer(&self, w: &TopicWriter, command: bool) {
        use rustdds::StatusEvented;
        while let Some(status) = w.writer.try_recv_status() {
            if let Some(n) = self.writer_event(&w.topic, status) {
                if command {
                    self.command_subscribers.store(n, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A writer and its DDS topic name (for status reports).
struct TopicWriter {
    topic: String,
    writer: DataWriter<RawCdr, RawAdapter>,
}

/// The streams of the transport, each with one QoS for both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `joint_states` (in).
    JointStates,
    /// `camera/<name>/image_raw` (in).
    Camera,
    /// The instruction topic (in).
    Instruction,
    /// `heartbeat_in` (in).
    HeartbeatIn,
    /// The command topic (out).
    Command,
    /// `heartbeat` (out).
    Heartbeat,
    /// `diagnostics` (out).
    Diagnostics,
}

impl Stream {
    /// Every stream.
    pub const ALL: [Stream; 7] = [
        Stream::JointStates,
        Stream::Camera,
        Stream::Instruction,
        Stream::HeartbeatIn,
        Stream::Command,
        Stream::Heartbeat,
        Stream::Diagnostics,
    ];

    /// The QoS of this stream (readers and writers alike).
    pub fn qos(self) -> QosProfile {
        match self {
            Stream::JointStates | Stream::Camera | Stream::HeartbeatIn | Stream::Heartbeat => sensor_qos(),
            Stream::Instruction | Stream::Command | Stream::Diagnostics => reliable_qos(),
        }
    }

    /// The topic name of a stream whose name is fixed (relative: it
    /// resolves under the node namespace); `None` for cameras
    /// (`camera/<name>/image_raw`) and the profile's instruction and command
    /// topics.
    pub const fn fixed_topic(self) -> Option<&'static str> {
        match self {
            Stream::JointStates => Some(TOPIC_JOINT_STATES),
            Stream::HeartbeatIn => Some(TOPIC_HEARTBEAT_IN),
            Stream::Heartbeat => Some(TOPIC_HEARTBEAT),
            Stream::Diagnostics => Some(TOPIC_DIAGNOSTICS),
            Stream::Camera | Stream::Instruction | Stream::Command => None,
        }
    }

    /// Whether Ganglion reads this stream (the plant writes it).
    pub const fn is_input(self) -> bool {
        matches!(self, Stream::JointStates | Stream::Camera | Stream::Instruction | Stream::HeartbeatIn)
    }
}

impl Ros2Node {
    /// Creates the DDS participant (restricted to `only_networks`) and the node.
    pub fn new(cfg: &Ros2Config) -> Result<Self, Ros2Error> {
        let mut b = DomainParticipantBuilder::new(cfg.domain_id);
        if !cfg.only_networks.is_empty() {
            b = b.with_only_networks(cfg.only_networks.iter().copied());
        }
        let dp = b.build().map_err(dds_err)?;
        let context = Context::from_domain_participant(dp.clone()).map_err(dds_err)?;
        let node_name = NodeName::new(&cfg.namespace, &cfg.node_name)
            .map_err(|e| Ros2Error::Name { name: cfg.node_name.clone(), reason: format!("{e:?}") })?;
        let node = context.new_node(node_name.clone(), NodeOptions::new().enable_rosout(false)).map_err(dds_err)?;
        let qos = rustdds::QosPolicyBuilder::new().build();
        let publisher = dp.create_publisher(&qos).map_err(dds_err)?;
        let subscriber = dp.create_subscriber(&qos).map_err(dds_err)?;
        Ok(Ros2Node {
            namespace: cfg.namespace.clone(),
            node_name,
            publisher,
            subscriber,
            node,
            context,
            _participant: dp,
        })
    }

    fn topic(&self, topic: &str, ros_type: &str, qos: &QosProfile) -> Result<rustdds::Topic, Ros2Error> {
        let (pkg, ty) = split_type(ros_type);
        self.node
            .create_topic(&resolve_topic(&self.namespace, topic)?, MessageTypeName::new(&pkg, &ty), qos)
            .map_err(dds_err)
    }

    /// A raw writer on `topic` of `ros_type` (e.g. `sensor_msgs/msg/Image`).
    pub fn writer(
        &self,
        topic: &str,
        ros_type: &str,
        qos: QosProfile,
    ) -> Result<DataWriter<RawCdr, RawAdapter>, Ros2Error> {
        let t = self.topic(topic, ros_type, &qos)?;
        self.publisher.create_datawriter_no_key::<RawCdr, RawAdapter>(&t, Some((&qos).into())).map_err(dds_err)
    }

    /// A raw reader on `topic` of `ros_type`.
    pub fn reader(
        &self,
        topic: &str,
        ros_type: &str,
        qos: QosProfile,
    ) -> Result<DataReader<RawCdr, RawAdapter>, Ros2Error> {
        let t = self.topic(topic, ros_type, &qos)?;
        self.subscriber.create_datareader_no_key::<RawCdr, RawAdapter>(&t, Some((&qos).into())).map_err(dds_err)
    }

    /// The DDS topic name of `topic` (`rt/<namespace>/<topic>`).
    pub fn dds_topic_name(&self, topic: &str) -> Result<String, Ros2Error> {
        Ok(resolve_topic(&self.namespace, topic)?.to_dds_name("rt", &self.node_name, ""))
    }

    fn topic_reader(
        &self,
        topic: &str,
        ros_type: &str,
        stream: Stream,
        handler: Handler,
    ) -> Result<TopicReader, Ros2Error> {
        let reader = self.reader(topic, ros_type, stream.qos())?;
        Ok(TopicReader { topic: self.dds_topic_name(topic)?, reader, handler })
    }

    fn topic_writer(&self, topic: &str, ros_type: &str, stream: Stream) -> Result<TopicWriter, Ros2Error> {
        let writer = self.writer(topic, ros_type, stream.qos())?;
        Ok(TopicWriter { topic: self.dds_topic_name(topic)?, writer })
    }

    /// The ros2-client context.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// What a reader thread does with each payload of one reader.
type Handler = Box<dyn FnMut(&[u8]) + Send>;

/// A reader, its DDS topic name and what to do with its payloads.
struct TopicReader {
    topic: String,
    reader: DataReader<RawCdr, RawAdapter>,
    handler: Handler,
}

/// Polls `readers` on one thread and hands every payload to its handler
/// until `stop` is set; status events (incompatible QoS) go to `status`.
fn spawn_reader_thread(
    name: &str,
    mut readers: Vec<TopicReader>,
    status: Arc<MatchStatus>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Ros2Error> {
    use rustdds::StatusEvented;
    let mut poll = mio1::Poll::new().map_err(dds_err)?;
    for (i, r) in readers.iter_mut().enumerate() {
        poll.registry().register(&mut r.reader, mio1::Token(i), mio1::Interest::READABLE).map_err(dds_err)?;
    }
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut events = mio1::Events::with_capacity(16);
            while !stop.load(Ordering::Acquire) {
                if poll.poll(&mut events, Some(Duration::from_millis(20))).is_err() {
                    continue;
                }
                // Drain every reader, not only the signalled ones: the
                // notification is edge-like and a missed drain would stall.
                for r in readers.iter_mut() {
                    while let Ok(Some(sample)) = r.reader.take_next_sample() {
                        (r.handler)(&sample.value().0);
                    }
                    while let Some(s) = r.reader.try_recv_status() {
                        status.reader_event(&r.topic, s);
                    }
                }
            }
        })
        .map_err(dds_err)
}

/// Waits until `writer` has matched a reader or `deadline` passes, from
/// its status events (RustDDS 0.15 has no matched-count query); true when
/// one matched. Incompatible readers found meanwhile go to `status`.
fn wait_for_reader(w: &TopicWriter, status: &MatchStatus, deadline: std::time::Instant) -> bool {
    loop {
        status.poll_writer(w, true);
        if status.command_subscribers() > 0 {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running ROS 2 transport for the control loop.
///
/// Field order is drop order: the diagnostics writer before the node.
pub struct Ros2Transport {
    diagnostics: TopicWriter,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    status: Arc<MatchStatus>,
    command_matched_at_start: bool,
    node: Ros2Node,
}

fn handler(mut ingest: Ingest) -> Handler {
    Box::new(move |b| {
        ingest.on_payload(b);
    })
}

impl Ros2Transport {
    /// Creates the node, its readers and writers, and the I/O threads.
    /// With `out.wait_for_subscriber_ns` > 0, first waits up to that long
    /// for a command subscriber to match ([`Ros2Transport::command_matched_at_start`]
    /// says whether one did).
    pub fn start(cfg: &Ros2Config, inputs: Inputs, outbox: Outbox, out: CommandOut) -> Result<Self, Ros2Error> {
        let node = Ros2Node::new(cfg)?;
        let status = Arc::new(MatchStatus::default());
        let Inputs { joints, cameras, instruction, heartbeat } = inputs;
        let mut readers = vec![node.topic_reader(
            TOPIC_JOINT_STATES,
            "sensor_msgs/msg/JointState",
            Stream::JointStates,
            handler(joints),
        )?];
        for cam in cameras {
            let topic = format!("{}/image_raw", cam.name());
            readers.push(node.topic_reader(&topic, "sensor_msgs/msg/Image", Stream::Camera, handler(cam))?);
        }
        readers.push(node.topic_reader(
            &cfg.instruction_topic,
            "std_msgs/msg/String",
            Stream::Instruction,
            handler(instruction),
        )?);
        readers.push(node.topic_reader(
            TOPIC_HEARTBEAT_IN,
            "std_msgs/msg/Header",
            Stream::HeartbeatIn,
            handler(heartbeat),
        )?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![spawn_reader_thread("ros2-read", readers, status.clone(), stop.clone())?];

        let command = node.topic_writer(&cfg.command_topic, out.format.ros_type(), Stream::Command)?;
        let deadline = std::time::Instant::now() + Duration::from_nanos(out.wait_for_subscriber_ns);
        let command_matched_at_start = wait_for_reader(&command, &status, deadline);
        let heartbeat_w = node.topic_writer(TOPIC_HEARTBEAT, "std_msgs/msg/Header", Stream::Heartbeat)?;
        let diagnostics =
            node.topic_writer(TOPIC_DIAGNOSTICS, "diagnostic_msgs/msg/DiagnosticArray", Stream::Diagnostics)?;
        let stop2 = stop.clone();
        let status2 = status.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ros2-publish".into())
                .spawn(move || {
                    let mut buf = RawCdr(Vec::with_capacity(1024));
                    let mut hb = RawCdr(Vec::with_capacity(64));
                    let mut last_hb: Option<std::time::Instant> = None;
                    let hb_period = Duration::from_nanos(out.heartbeat_period_ns);
                    loop {
                        // Matching events first: a subscriber that cannot
                        // match is reported even while no command flows.
                        status2.poll_writer(&command, true);
                        status2.poll_writer(&heartbeat_w, false);
                        let Some(cmd) = outbox.recv_timeout(Duration::from_millis(20)) else {
                            if stop2.load(Ordering::Acquire) || outbox.is_closed() {
                                break;
                            }
                            continue;
                        };
                        let now = Time::now_wall();
                        encode_command(&cmd, out.format, &out.joint_names, now, out.time_from_start_ns, &mut buf.0);
                        outbox.record(command.writer.write(buf.clone(), None).is_ok());
                        if last_hb.is_none_or(|t| t.elapsed() >= hb_period) {
                            encode_heartbeat(cmd.mode, now, &mut hb.0);
                            let _ = heartbeat_w.writer.write(hb.clone(), None);
                            last_hb = Some(std::time::Instant::now());
                        }
                    }
                    // The last commands reach reliable subscribers before the
                    // writer goes (dropped at once, a writer takes what its
                    // readers have not acknowledged with it).
                    let _ = command.writer.wait_for_acknowledgments(Duration::from_millis(500));
                })
                .map_err(dds_err)?,
        );
        Ok(Ros2Transport { diagnostics, stop, threads, status, command_matched_at_start, node })
    }

    /// Publishes a diagnostics message (not from the control thread).
    pub fn publish_diagnostics(&self, diag: &DiagnosticArray) -> Result<(), Ros2Error> {
        self.status.poll_writer(&self.diagnostics, false);
        self.diagnostics.writer.write(RawCdr(diag.encode()), None).map_err(dds_err)
    }

    /// What DDS matching reported: incompatible QoS, command subscribers.
    pub fn match_status(&self) -> &MatchStatus {
        &self.status
    }

    /// Whether a command subscriber matched within `wait_for_subscriber_ns`
    /// at start (false too when no wait was asked for and none had yet).
    pub fn command_matched_at_start(&self) -> bool {
        self.command_matched_at_start
    }

    /// The node.
    pub fn node(&self) -> &Ros2Node {
        &self.node
    }

    /// Drains the command queue, stops the I/O threads.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The plant's side (simulated arm, test robot): publishes joint states and
/// camera images, hands received command payloads to a callback.
///
/// Field order is drop order: the writers before the node.
pub struct Ros2Plant {
    joints: DataWriter<RawCdr, RawAdapter>,
    cameras: Vec<DataWriter<RawCdr, RawAdapter>>,
    instruction: DataWriter<RawCdr, RawAdapter>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    status: Arc<MatchStatus>,
    _node: Ros2Node,
}

impl Ros2Plant {
    /// Creates the plant node; `on_command` runs on the reader thread.
    pub fn start(
        cfg: &Ros2Config,
        camera_names: &[String],
        format: CommandFormat,
        on_command: impl FnMut(&[u8]) + Send + 'static,
    ) -> Result<Self, Ros2Error> {
        let node = Ros2Node::new(cfg)?;
        let joints = node.writer(TOPIC_JOINT_STATES, "sensor_msgs/msg/JointState", Stream::JointStates.qos())?;
        let cameras = camera_names
            .iter()
            .map(|n| node.writer(&format!("camera/{n}/image_raw"), "sensor_msgs/msg/Image", Stream::Camera.qos()))
            .collect::<Result<Vec<_>, _>>()?;
        let instruction = node.writer(&cfg.instruction_topic, "std_msgs/msg/String", Stream::Instruction.qos())?;
        let reader = node.topic_reader(&cfg.command_topic, format.ros_type(), Stream::Command, Box::new(on_command))?;
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(MatchStatus::default());
        let thread = spawn_reader_thread("ros2-plant-read", vec![reader], status.clone(), stop.clone())?;
        Ok(Ros2Plant { joints, cameras, instruction, stop, thread: Some(thread), status, _node: node })
    }

    /// What DDS matching reported on the plant's command reader.
    pub fn match_status(&self) -> &MatchStatus {
        &self.status
    }

    /// Publishes an encoded `sensor_msgs/JointState`.
    pub fn publish_joints(&self, payload: &[u8]) -> Result<(), Ros2Error> {
        self.joints.write(RawCdr(payload.to_vec()), None).map_err(dds_err)
    }

    /// Publishes an encoded `sensor_msgs/Image` on camera `index`.
    pub fn publish_camera(&self, index: usize, payload: &[u8]) -> Result<(), Ros2Error> {
        let w = self.cameras.get(index).ok_or_else(|| Ros2Error::Dds(format!("no camera {index}")))?;
        w.write(RawCdr(payload.to_vec()), None).map_err(dds_err)
    }

    /// Publishes an encoded `std_msgs/String` instruction.
    pub fn publish_instruction(&self, payload: &[u8]) -> Result<(), Ros2Error> {
        self.instruction.write(RawCdr(payload.to_vec()), None).map_err(dds_err)
    }
}

impl Drop for Ros2Plant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dds(ns: &str, topic: &str) -> String {
        let node = NodeName::new(ns, "n").expect("node name");
        resolve_topic(ns, topic).expect("valid").to_dds_name("rt", &node, "")
    }

    #[test]
    fn topics_map_to_the_dds_names_rclcpp_uses() {
        assert_eq!(dds("/", "joint_states"), "rt/joint_states");
        assert_eq!(dds("/", "camera/front/image_raw"), "rt/camera/front/image_raw");
        assert_eq!(dds("/", "/abs/cmd"), "rt/abs/cmd");
        assert_eq!(dds("/arm1", "joint_states"), "rt/arm1/joint_states");
        assert_eq!(dds("/arm1", "ganglion/command"), "rt/arm1/ganglion/command");
        assert_eq!(dds("/arm1", "/joint_states"), "rt/joint_states");
    }

    /// docs/INTERFACES.md's ROS 2 QoS table says what the code does: per
    /// stream, which side Ganglion is, reliability and history; and the
    /// settings every row shares.
    #[test]
    fn interfaces_md_states_the_qos_in_use() {
        use ros2_client::qos::{Durability, History, Liveliness, Reliability, WhenFull};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/INTERFACES.md");
        let doc = std::fs::read_to_string(path).expect("docs/INTERFACES.md");
        let section = doc.split_once("ROS 2 (`drivers/ros2`").expect("the ROS 2 QoS table").1;
        let cells = |first: &str| -> Vec<String> {
            let row = section
                .lines()
                .find(|l| l.split('|').nth(1).is_some_and(|c| c.trim() == first))
                .unwrap_or_else(|| panic!("no row {first:?} in the ROS 2 QoS table"));
            row.split('|').map(|c| c.replace(['*', '`'], "").trim().to_string()).collect()
        };
        assert!(
            section.contains("durability is\nvolatile and liveliness automatic everywhere, no deadline or lifespan")
        );
        for stream in Stream::ALL {
            // Fixed topic names as the code has them: a renamed topic fails here too.
            let first = match (stream.fixed_topic(), stream) {
                (Some(topic), _) => format!("`{topic}`"),
                (None, Stream::Camera) => "`camera/<name>/image_raw`".into(),
                (None, Stream::Instruction) => "instruction topic".into(),
                (None, _) => "command topic".into(),
            };
            let first = first.as_str();
            let c = cells(first);
            let q = stream.qos();
            assert_eq!(c[2], if stream.is_input() { "reader" } else { "writer" }, "{first}");
            let reliability = match q.reliability {
                Reliability::BestEffort => "best effort",
                Reliability::Reliable { .. } => "reliable",
            };
            assert!(c[3].starts_with(reliability), "{first}: the doc says {:?}, the code {reliability}", c[3]);
            let History::KeepLast { depth } = q.history else { panic!("{first}: keep-all history") };
            assert_eq!(c[4], format!("keep last {depth}"), "{first}");
            assert_eq!(
                (q.durability, q.deadline, q.lifespan, q.liveliness),
                (Durability::Volatile, None, None, Liveliness::Automatic),
                "{first}"
            );
            if let Reliability::Reliable { when_full } = q.reliability {
                assert_eq!(when_full, WhenFull::Wait(Duration::from_millis(5)), "{first}");
            }
        }
        assert!(section.contains("blocks at most 5 ms when the send window is full"));
    }

    #[test]
    fn bad_topic_names_are_refused_with_the_name() {
        for bad in ["~/private", "", "a//b", "9lives", "trailing/"] {
            let e = resolve_topic("/", bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
