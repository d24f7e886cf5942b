//! zenoh transport: key expressions, subscribers into latest-value slots,
//! non-blocking command publisher.
//!
//! # Key expressions
//!
//! Every key lives under a per-robot `prefix` (e.g. `robots/arm1`); every
//! payload is a CDR-encoded ROS 2 message (see `ganglion-codec`), so any ROS
//! tool decodes it:
//!
//! | key                        | direction | payload                                   |
//! |----------------------------|-----------|-------------------------------------------|
//! | `<prefix>/camera/<name>`   | in        | `sensor_msgs/msg/Image`                   |
//! | `<prefix>/joint_states`    | in        | `sensor_msgs/msg/JointState`              |
//! | `<prefix>/instruction`     | in        | `std_msgs/msg/String`                     |
//! | `<prefix>/heartbeat_in`    | in        | `std_msgs/msg/Header` (`ok` / `stop`)     |
//! | `<prefix>/command`         | out       | per profile: `JointTrajectory`, `Float64MultiArray` or `JointState` |
//! | `<prefix>/heartbeat`       | out       | `std_msgs/msg/Header` (supervisor mode)   |
//! | `<prefix>/diagnostics`     | out       | `diagnostic_msgs/msg/DiagnosticArray`     |
//!
//! The external heartbeat comes in on its own key so a robot never hears its
//! own heartbeat back.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use ganglion_codec::ingest::CommandOut;
use ganglion_codec::ingest::{Ingest, Inputs, Outbox};
use ganglion_codec::msg::{DiagnosticArray, Message, Time};
use ganglion_codec::{encode_command, encode_heartbeat};
use zenoh::Wait;

pub use zenoh;

/// Key expressions of one robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (trailing `/` ignored).
    pub fn new(prefix: &str) -> Self {
        Keys { prefix: prefix.trim_end_matches('/').to_owned() }
    }
    /// `<prefix>/camera/<name>`.
    pub fn camera(&self, name: &str) -> String {
        format!("{}/camera/{name}", self.prefix)
    }
    /// `<prefix>/joint_states`.
    pub fn joint_states(&self) -> String {
        format!("{}/joint_states", self.prefix)
    }
    /// `<prefix>/command`.
    pub fn command(&self) -> String {
        format!("{}/command", self.prefix)
    }
    /// `<prefix>/instruction`.
    pub fn instruction(&self) -> String {
        format!("{}/instruction", self.prefix)
    }
    /// `<prefix>/diagnostics`.
    pub fn diagnostics(&self) -> String {
        format!("{}/diagnostics", self.prefix)
    }
    /// `<prefix>/heartbeat` (Ganglion's own).
    pub fn heartbeat(&self) -> String {
        format!("{}/heartbeat", self.prefix)
    }
    /// `<prefix>/heartbeat_in` (operator / safety layer).
    pub fn heartbeat_in(&self) -> String {
        format!("{}/heartbeat_in", self.prefix)
    }
}

/// zenoh session role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionMode {
    /// Peer-to-peer.
    #[default]
    Peer,
    /// Client of a router.
    Client,
}

/// Settings of a zenoh session.
#[derive(Debug, Clone, PartialEq)]
pub struct ZenohConfig {
    /// Key prefix of the robot.
    pub prefix: String,
    /// Peer or client.
    pub mode: SessionMode,
    /// Endpoints to listen on, e.g. `tcp/127.0.0.1:7447`.
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    pub connect: Vec<String>,
    /// Multicast scouting (off for loopback tests and most deployments).
    pub multicast_scouting: bool,
    /// zenoh shared memory transport (large frames travel through `/dev/shm`
    /// when both ends enable it).
    pub shared_memory: bool,
    /// A zenoh json5 config loaded first (TLS/mTLS certificates, access
    /// control, ...); the settings above are applied on top.
    pub config_file: Option<PathBuf>,
}

impl Default for ZenohConfig {
    fn default() -> Self {
        ZenohConfig {
            prefix: "ganglion".into(),
            mode: SessionMode::Peer,
            listen: Vec::new(),
            connect: Vec::new(),
            multicast_scouting: false,
            shared_memory: false,
            config_file: None,
        }
    }
}

/// Why the zenoh transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum ZenohError {
    /// The merged zenoh config was rejected (`key` names the setting).
    #[error("zenoh config {key}: {reason}")]
    Config {
        /// The zenoh config key, or the file path.
        key: String,
        /// What zenoh said.
        reason: String,
    },
    /// Opening the session or declaring an entity failed.
    #[error("zenoh: {0}")]
    Zenoh(String),
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

impl ZenohConfig {
    /// The zenoh config: the file (if any), then these settings.
    pub fn to_zenoh(&self) -> Result<zenoh::Config, ZenohError> {
        let mut c = match &self.config_file {
            Some(p) => zenoh::Config::from_file(p)
                .map_err(|e| ZenohError::Config { key: p.display().to_string(), reason: e.to_string() })?,
            None => zenoh::Config::default(),
        };
        let mode = match self.mode {
            SessionMode::Peer => "\"peer\"",
            SessionMode::Client => "\"client\"",
        };
        let mut set = |key: &str, value: String| {
            c.insert_json5(key, &value).map_err(|e| ZenohError::Config { key: key.into(), reason: e.to_string() })
        };
        set("mode", mode.into())?;
        if !self.listen.is_empty() {
            set("listen/endpoints", json_list(&self.listen))?;
        }
        if !self.connect.is_empty() {
            set("connect/endpoints", json_list(&self.connect))?;
        }
        set("scouting/multicast/enabled", self.multicast_scouting.to_string())?;
        set("transport/shared_memory/enabled", self.shared_memory.to_string())?;
        Ok(c)
    }

    /// Opens a session.
    pub fn open(&self) -> Result<zenoh::Session, ZenohError> {
        zenoh::open(self.to_zenoh()?).wait().map_err(|e| ZenohError::Zenoh(e.to_string()))
    }
}

fn zerr(e: impl std::fmt::Display) -> ZenohError {
    ZenohError::Zenoh(e.to_string())
}

/// A running zenoh transport for the control loop: subscribers feeding the
/// slots, a publisher thread draining the command queue.
pub struct ZenohTransport {
    session: zenoh::Session,
    keys: Keys,
    subscribers: Vec<zenoh::pubsub::Subscriber<()>>,
    stop: Arc<AtomicBool>,
    publisher: Option<JoinHandle<()>>,
    diagnostics: zenoh::pubsub::Publisher<'static>,
    diag_buf: Vec<u8>,
}

fn subscribe(
    session: &zenoh::Session,
    key: String,
    ingest: Ingest,
) -> Result<zenoh::pubsub::Subscriber<()>, ZenohError> {
    // zenoh may call back from several threads; the mutex serialises them
    // for this topic only (never touched by the control thread).
    let ingest = Mutex::new(ingest);
    session
        .declare_subscriber(key)
        .callback(move |sample| {
            let bytes = sample.payload().to_bytes();
            if let Ok(mut i) = ingest.lock() {
                i.on_payload(&bytes);
            }
        })
        .wait()
        .map_err(zerr)
}

impl ZenohTransport {
    /// Opens the session, subscribes every input, starts the publisher thread.
    pub fn start(cfg: &ZenohConfig, inputs: Inputs, outbox: Outbox, out: CommandOut) -> Result<Self, ZenohError> {
        let session = cfg.open()?;
        let keys = Keys::new(&cfg.prefix);
        let mut subscribers = Vec::new();
        let Inputs { joints, cameras, instruction, heartbeat } = inputs;
        subscribers.push(subscribe(&session, keys.joint_states(), joints)?);
        for cam in cameras {
            let name = cam.name().trim_start_matches("camera/").to_owned();
            subscribers.push(subscribe(&session, keys.camera(&name), cam)?);
        }
        subscribers.push(subscribe(&session, keys.instruction(), instruction)?);
        subscribers.push(subscribe(&session, keys.heartbeat_in(), heartbeat)?);

        // Commands and diagnostics block (on this publisher thread, never the
        // control thread) instead of zenoh's default of dropping when the
        // transmit queue is full: a command lost silently here would still be
        // counted as published. Back-pressure fills the bounded hand-off
        // queue instead, where drops are counted. Heartbeats are best effort.
        let command = session
            .declare_publisher(keys.command())
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .priority(zenoh::qos::Priority::RealTime)
            .wait()
            .map_err(zerr)?;
        let deadline = std::time::Instant::now() + Duration::from_nanos(out.wait_for_subscriber_ns);
        while std::time::Instant::now() < deadline {
            if command.matching_status().wait().is_ok_and(|m| m.matching()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let heartbeat_pub = session.declare_publisher(keys.heartbeat()).wait().map_err(zerr)?;
        let diagnostics = session
            .declare_publisher(keys.diagnostics())
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .wait()
            .map_err(zerr)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let publisher = std::thread::Builder::new()
            .name("zenoh-publish".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(1024);
                let mut hb = Vec::with_capacity(64);
                let mut last_hb: Option<std::time::Instant> = None;
                let hb_period = Duration::from_nanos(out.heartbeat_period_ns);
                // Drain until stopped *and* empty, so the final commands
                // (the fallback hold) still go out on shutdown.
                loop {
                    let Some(cmd) = outbox.recv_timeout(Duration::from_millis(20)) else {
                        if stop2.load(Ordering::Acquire) || outbox.is_closed() {
                            break;
                        }
                        continue;
                    };
                    let now = Time::now_wall();
                    encode_command(&cmd, out.format, &out.joint_names, now, out.time_from_start_ns, &mut buf);
                    outbox.record(command.put(buf.as_slice()).wait().is_ok());
                    if last_hb.is_none_or(|t| t.elapsed() >= hb_period) {
                        encode_heartbeat(cmd.mode, now, &mut hb);
                        let _ = heartbeat_pub.put(hb.as_slice()).wait();
                        last_hb = Some(std::time::Instant::now());
                    }
                }
            })
            .map_err(zerr)?;
        Ok(ZenohTransport {
            session,
            keys,
            subscribers,
            stop,
            publisher: Some(publisher),
            diagnostics,
            diag_buf: Vec::new(),
        })
    }

    /// The robot's keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The session (e.g. for extra publishers).
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// Publishes a diagnostics message (not from the control thread).
    pub fn publish_diagnostics(&mut self, diag: &DiagnosticArray) -> Result<(), ZenohError> {
        diag.encode_into(&mut self.diag_buf);
        self.diagnostics.put(self.diag_buf.as_slice()).wait().map_err(zerr)
    }

    /// Stops the publisher after it drained the queue, undeclares
    /// everything and closes the session.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.publisher.take() {
            let _ = h.join();
        }
        for s in self.subscribers.drain(..) {
            let _ = s.undeclare().wait();
        }
        let _ = self.session.close().wait();
    }
}

/// The plant's side of the same keys (the simulated arm, a test robot):
/// publishes joint states and camera frames, receives command payloads.
pub struct ZenohPlant {
    session: zenoh::Session,
    joints: zenoh::pubsub::Publisher<'static>,
    cameras: Vec<zenoh::pubsub::Publisher<'static>>,
    instruction: zenoh::pubsub::Publisher<'static>,
    _commands: zenoh::pubsub::Subscriber<()>,
}

impl ZenohPlant {
    /// Opens a session and declares the plant's publishers; every command
    /// payload received is handed to `on_command` (on a zenoh thread).
    pub fn start(
        cfg: &ZenohConfig,
        camera_names: &[String],
        on_command: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Result<Self, ZenohError> {
        let session = cfg.open()?;
        let keys = Keys::new(&cfg.prefix);
        let joints = session.declare_publisher(keys.joint_states()).wait().map_err(zerr)?;
        let cameras = camera_names
            .iter()
            .map(|n| session.declare_publisher(keys.camera(n)).wait().map_err(zerr))
            .collect::<Result<Vec<_>, _>>()?;
        let instruction = session.declare_publisher(keys.instruction()).wait().map_err(zerr)?;
        let commands = session
            .declare_subscriber(keys.command())
            .callback(move |s| on_command(&s.payload().to_bytes()))
            .wait()
            .map_err(zerr)?;
        Ok(ZenohPlant { session, joints, cameras, instruction, _commands: commands })
    }

    /// Publishes an encoded `sensor_msgs/JointState`.
    pub fn publish_joints(&self, payload: &[u8]) -> Result<(), ZenohError> {
        self.joints.put(payload).wait().map_err(zerr)
    }

    /// Publishes an encoded `sensor_msgs/Image` on camera `index`.
    pub fn publish_camera(&self, index: usize, payload: &[u8]) -> Result<(), ZenohError> {
        let p = self.cameras.get(index).ok_or_else(|| zerr(format!("no camera {index}")))?;
        p.put(payload).wait().map_err(zerr)
    }

    /// Publishes an encoded `std_msgs/String` instruction.
    pub fn publish_instruction(&self, payload: &[u8]) -> Result<(), ZenohError> {
        self.instruction.put(payload).wait().map_err(zerr)
    }

    /// Closes the session.
    pub fn close(self) {
        let _ = self.session.close().wait();
    }
}
