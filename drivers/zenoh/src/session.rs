//! The zenoh session itself (the `session` feature): opening sessions,
//! the loop's transport and the plant's end.

use crate::{Batching, IncomingQuery};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ganglion_codec::ingest::{CommandOut, Ingest, Inputs, Outbox};
use ganglion_codec::msg::{DiagnosticArray, Message, Time};
use ganglion_codec::{encode_command, encode_heartbeat};
use zenoh::Wait;

use crate::config::{endpoint_proto, is_tls_proto};
use crate::{
    endpoint_is_local, Keys, LinkFact, NoReply, SessionFacts, SessionMode, ZenohConfig, ZenohError, TLS_LINK_BUILT,
};

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

/// The TLS settings a zenoh config can carry; any of them set means the
/// config asks for TLS.
const TLS_KEYS: [&str; 6] = [
    "transport/link/tls/root_ca_certificate",
    "transport/link/tls/listen_certificate",
    "transport/link/tls/listen_private_key",
    "transport/link/tls/connect_certificate",
    "transport/link/tls/connect_private_key",
    "transport/link/tls/enable_mtls",
];

impl SessionFacts {
    /// Reads the facts a config determines (no session yet).
    pub fn from_config(c: &zenoh::Config) -> SessionFacts {
        let get = |key: &str| c.get_json(key).ok().and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
        let mode = get("mode").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "peer".into());
        // Endpoint lists are either a list or one list per mode.
        let endpoints = |key: &str| -> Vec<String> {
            let v = match get(key) {
                Some(serde_json::Value::Object(m)) => m.get(&mode).cloned().unwrap_or(serde_json::Value::Null),
                Some(v) => v,
                None => serde_json::Value::Null,
            };
            v.as_array().map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect()).unwrap_or_default()
        };
        let listen = endpoints("listen/endpoints");
        let connect = endpoints("connect/endpoints");
        let multicast_scouting = get("scouting/multicast/enabled").and_then(|v| v.as_bool()).unwrap_or(true);
        let mut tls_requested: Vec<String> = TLS_KEYS
            .iter()
            .filter(|k| get(k).is_some_and(|v| !v.is_null() && v != serde_json::Value::Bool(false)))
            .map(|k| (*k).to_owned())
            .collect();
        tls_requested.extend(listen.iter().chain(&connect).filter(|e| is_tls_proto(endpoint_proto(e))).cloned());
        let all_tls = !listen.is_empty() || !connect.is_empty();
        let all_tls = all_tls && listen.iter().chain(&connect).all(|e| is_tls_proto(endpoint_proto(e)));
        let non_loopback_listeners = listen.iter().filter(|e| !endpoint_is_local(e)).cloned().collect();
        SessionFacts {
            mode,
            listen,
            connect,
            multicast_scouting,
            tls_requested,
            tls_link_built: TLS_LINK_BUILT,
            tls_in_effect: TLS_LINK_BUILT && all_tls && !multicast_scouting,
            non_loopback_listeners,
            routers: None,
            peers: None,
            links: None,
            locators: None,
        }
    }

    /// Adds what an open session reports: routers and peers connected.
    fn observe(&mut self, session: &zenoh::Session) {
        let info = session.info();
        self.routers = Some(info.routers_zid().wait().count());
        self.peers = Some(info.peers_zid().wait().count());
    }

    /// Opens a short-lived session with `cfg` (admin space on, for this
    /// session only), reads its links and locators, closes it. What
    /// `ganglion check` reports as negotiated.
    pub fn probe(cfg: &ZenohConfig, settle: Duration) -> Result<SessionFacts, ZenohError> {
        let mut c = cfg.to_zenoh()?;
        let mut facts = SessionFacts::from_config(&c);
        c.insert_json5("adminspace/enabled", "true")
            .map_err(|e| ZenohError::Config { key: "adminspace/enabled".into(), reason: e.to_string() })?;
        let session = zenoh::open(c).wait().map_err(zerr)?;
        std::thread::sleep(settle);
        facts.observe(&session);
        let key = format!("@/{}/{}", session.zid(), facts.mode);
        let replies = session
            .get(&key)
            // The admin space is the runtime's, not a session-local
            // queryable; remote nodes only answer for their own zid.
            .timeout(Duration::from_secs(2))
            .wait()
            .map_err(zerr)?;
        let mut admin = None;
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                admin = serde_json::from_slice::<serde_json::Value>(&sample.payload().to_bytes()).ok();
            }
        }
        let _ = session.close().wait();
        if let Some(admin) = admin {
            let strs = |v: Option<&serde_json::Value>| -> Vec<String> {
                v.and_then(|v| v.as_array())
                    .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            facts.locators = Some(strs(admin.get("locators")));
            let mut links = Vec::new();
            for s in admin.get("sessions").and_then(|v| v.as_array()).into_iter().flatten() {
                let field = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                for l in s.get("links").and_then(|v| v.as_array()).into_iter().flatten() {
                    let end = |k: &str| l.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    links.push(LinkFact {
                        peer: field("peer"),
                        whatami: field("whatami"),
                        src: end("src"),
                        dst: end("dst"),
                    });
                }
            }
            if !links.is_empty() && facts.tls_link_built {
                facts.tls_in_effect = facts.tls_in_effect && links.iter().all(|l| is_tls_proto(endpoint_proto(&l.dst)));
            }
            facts.links = Some(links);
        }
        Ok(facts)
    }
}

impl ZenohConfig {
    /// The zenoh config: the file alone when there is one, else these
    /// settings. Either way, no `listen` means no listener.
    pub fn to_zenoh(&self) -> Result<zenoh::Config, ZenohError> {
        let mut c = match &self.config_file {
            Some(p) => zenoh::Config::from_file(p)
                .map_err(|e| ZenohError::Config { key: p.display().to_string(), reason: e.to_string() })?,
            None => zenoh::Config::default(),
        };
        // A file that does not name listeners would get zenoh's default (a
        // peer listens on every interface): it gets none instead.
        let listen_unset =
            c.get_json("listen/endpoints").ok() == zenoh::Config::default().get_json("listen/endpoints").ok();
        let mut set = |key: &str, value: String| {
            c.insert_json5(key, &value).map_err(|e| ZenohError::Config { key: key.into(), reason: e.to_string() })
        };
        if self.config_file.is_none() {
            let mode = match self.mode {
                SessionMode::Peer => "\"peer\"",
                SessionMode::Client => "\"client\"",
            };
            set("mode", mode.into())?;
            set("listen/endpoints", json_list(&self.listen))?;
            set("connect/endpoints", json_list(&self.connect))?;
            set("scouting/multicast/enabled", self.multicast_scouting.to_string())?;
            set("transport/shared_memory/enabled", self.shared_memory.to_string())?;
        } else if listen_unset {
            set("listen/endpoints", "[]".into())?;
        }
        Ok(c)
    }

    /// What a session opened from this config will be set to do.
    pub fn facts(&self) -> Result<SessionFacts, ZenohError> {
        Ok(SessionFacts::from_config(&self.to_zenoh()?))
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
    facts: SessionFacts,
    command_matched_at_start: bool,
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
        let zcfg = cfg.to_zenoh()?;
        let mut facts = SessionFacts::from_config(&zcfg);
        let session = zenoh::open(zcfg).wait().map_err(zerr)?;
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
        let command_matched_at_start = loop {
            if command.matching_status().wait().is_ok_and(|m| m.matching()) {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
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
        facts.observe(&session);
        Ok(ZenohTransport {
            session,
            keys,
            subscribers,
            stop,
            publisher: Some(publisher),
            diagnostics,
            diag_buf: Vec::new(),
            facts,
            command_matched_at_start,
        })
    }

    /// Whether a command subscriber matched within `wait_for_subscriber_ns`
    /// at start (false too when no wait was asked for and none had yet).
    pub fn command_matched_at_start(&self) -> bool {
        self.command_matched_at_start
    }

    /// The robot's keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// What the session is set to do and what it is connected to (after
    /// the command subscriber wait at start).
    pub fn facts(&self) -> &SessionFacts {
        &self.facts
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
///
/// Its publishers block instead of dropping when zenoh's transmit queue is
/// full (zenoh's default drops there silently while `put` still succeeds):
/// the plant is the tests' ground truth, so what it counts as sent must have
/// been handed to the transport. Under a flood on a loaded machine the plant
/// then publishes as fast as the link drains, and every input it counts
/// reaches a subscriber that keeps up (the HIL rig's `10-flood` holds
/// Ganglion to exactly that).
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
        let blocking = |key: String| {
            session.declare_publisher(key).congestion_control(zenoh::qos::CongestionControl::Block).wait().map_err(zerr)
        };
        let joints = blocking(keys.joint_states())?;
        let cameras = camera_names.iter().map(|n| blocking(keys.camera(n))).collect::<Result<Vec<_>, _>>()?;
        let instruction = blocking(keys.instruction())?;
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
/// A session with one subscriber, alive as long as this value (a plant's
/// heartbeat listener, a monitor). The subscriber is undeclared before the
/// session closes (field order is drop order).
pub struct Subscription {
    _subscriber: zenoh::pubsub::Subscriber<()>,
    _session: zenoh::Session,
}

impl ZenohConfig {
    /// Opens a session and subscribes to `key`; every payload is handed to
    /// `on_payload` (on a zenoh thread).
    pub fn subscribe(
        &self,
        key: &str,
        on_payload: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Result<Subscription, ZenohError> {
        let session = self.open()?;
        let subscriber = session
            .declare_subscriber(key.to_owned())
            .callback(move |s| on_payload(&s.payload().to_bytes()))
            .wait()
            .map_err(zerr)?;
        Ok(Subscription { _subscriber: subscriber, _session: session })
    }
}

/// Answers zenoh queries on a few keys with one handler, on its own
/// thread and one session: queries wait in a bounded queue (what overflows
/// it is dropped and its requester times out), the handler turns each
/// query's payload into the reply's. Stops when dropped.
pub struct QueryServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _queryables: Vec<zenoh::query::Queryable<()>>,
    _session: zenoh::Session,
}

impl ZenohConfig {
    /// Opens a session and answers queries on each of `keys` with
    /// `handler(key index, payload, arrival, reply)`; at most `queue`
    /// queries wait while the handler runs.
    pub fn serve_queries(
        &self,
        keys: &[String],
        queue: usize,
        mut handler: impl FnMut(usize, &[u8], std::time::Instant, &mut Vec<u8>) + Send + 'static,
    ) -> Result<QueryServer, ZenohError> {
        self.serve_query_batches(
            keys,
            queue,
            Batching::ONE,
            |_| true,
            move |queries, replies| {
                for (q, reply) in queries.iter().zip(replies.iter_mut()) {
                    handler(q.key, &q.payload, q.arrived, reply);
                }
            },
        )
    }

    /// Opens a session and answers queries on each of `keys` in batches:
    /// `handler(queries, replies)` fills `replies[i]` for `queries[i]`. A
    /// batch starts with the first query to arrive and takes what arrives
    /// within `batching.window` after it, up to `batching.max`, or until
    /// `complete(queries in hand)` says no more are coming (a server that
    /// holds one request from each of its robots); at most `queue` queries
    /// wait meanwhile (the rest are dropped and their requesters time out).
    pub fn serve_query_batches(
        &self,
        keys: &[String],
        queue: usize,
        batching: Batching,
        complete: impl Fn(usize) -> bool + Send + 'static,
        mut handler: impl FnMut(&[IncomingQuery], &mut [Vec<u8>]) + Send + 'static,
    ) -> Result<QueryServer, ZenohError> {
        let session = self.open()?;
        type Queued = (usize, zenoh::query::Query, std::time::Instant);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Queued>(queue.max(1));
        let mut queryables = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let tx = tx.clone();
            let q = session
                .declare_queryable(key.clone())
                .callback(move |q| {
                    // Full queue: the query is dropped, the requester times out.
                    let _ = tx.try_send((index, q, std::time::Instant::now()));
                })
                .wait()
                .map_err(zerr)?;
            queryables.push(q);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let max = batching.max.max(1);
        let thread = std::thread::Builder::new()
            .name("zenoh-serve".into())
            .spawn(move || {
                let (mut pending, mut incoming, mut replies) = (Vec::new(), Vec::new(), Vec::new());
                let take = |(key, query, arrived): Queued, pending: &mut Vec<zenoh::query::Query>| {
                    let payload = query.payload().map(|p| p.to_bytes().into_owned()).unwrap_or_default();
                    pending.push(query);
                    IncomingQuery { key, payload, arrived }
                };
                while !stop2.load(Ordering::Acquire) {
                    let Ok(first) = rx.recv_timeout(Duration::from_millis(50)) else { continue };
                    pending.clear();
                    incoming.clear();
                    incoming.push(take(first, &mut pending));
                    let deadline = std::time::Instant::now() + batching.window;
                    while incoming.len() < max && !complete(incoming.len()) {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        let next = if left.is_zero() { rx.try_recv().ok() } else { rx.recv_timeout(left).ok() };
                        let Some(q) = next else { break };
                        incoming.push(take(q, &mut pending));
                    }
                    replies.resize_with(incoming.len(), Vec::new);
                    handler(&incoming, &mut replies[..incoming.len()]);
                    // Each query is answered and dropped: dropping it is what
                    // tells its requester no other reply follows.
                    for (query, reply) in pending.drain(..).zip(&replies) {
                        let _ = query.reply(query.key_expr().clone(), reply.as_slice()).wait();
                    }
                }
            })
            .map_err(zerr)?;
        Ok(QueryServer { stop, thread: Some(thread), _queryables: queryables, _session: session })
    }

    /// Opens a session for [`Requester::request`].
    pub fn requester(&self) -> Result<Requester, ZenohError> {
        Ok(Requester { session: self.open()? })
    }
}

impl Drop for QueryServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A session that sends queries and waits for one reply each.
pub struct Requester {
    session: zenoh::Session,
}

impl Requester {
    /// Queries `key` with `payload` and copies the first reply into
    /// `reply`; `Ok(Err(why))` when none came.
    pub fn request(
        &self,
        key: &str,
        payload: &[u8],
        timeout: Duration,
        reply: &mut Vec<u8>,
    ) -> Result<Result<(), NoReply>, ZenohError> {
        let start = std::time::Instant::now();
        let replies = self.session.get(key).payload(payload).timeout(timeout).wait().map_err(zerr)?;
        while let Ok(r) = replies.recv() {
            if let Ok(sample) = r.result() {
                reply.clear();
                reply.extend_from_slice(&sample.payload().to_bytes());
                return Ok(Ok(()));
            }
        }
        // The reply stream ends early when no queryable matches the key.
        Ok(Err(if start.elapsed() >= timeout { NoReply::Timeout } else { NoReply::NoServer }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_listen_means_no_listener_even_for_a_peer() {
        // zenoh's own default for a peer is tcp/[::]:0, every interface.
        let cfg = ZenohConfig { connect: vec!["tcp/127.0.0.1:7447".into()], ..ZenohConfig::default() };
        let f = cfg.facts().unwrap();
        assert_eq!(f.mode, "peer");
        assert!(f.listen.is_empty(), "{f:?}");
        assert!(f.non_loopback_listeners.is_empty());
        assert_eq!(f.connect, ["tcp/127.0.0.1:7447"]);
        assert!(f.tls_requested.is_empty() && !f.tls_in_effect && f.tls_missing().is_none());
    }

    #[test]
    fn a_config_file_is_the_whole_session_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("z.json5");
        std::fs::write(&file, r#"{ mode: "peer", connect: { endpoints: ["tcp/127.0.0.1:1"] } }"#).unwrap();
        let cfg = ZenohConfig {
            mode: SessionMode::Client,
            listen: vec!["tcp/0.0.0.0:7447".into()],
            config_file: Some(file.clone()),
            ..ZenohConfig::default()
        };
        let f = cfg.facts().unwrap();
        assert_eq!(f.mode, "peer", "the file's mode, not the struct's");
        assert!(f.listen.is_empty(), "a file without listen listens nowhere: {f:?}");
        std::fs::write(&file, r#"{ mode: "peer", listen: { endpoints: ["tcp/0.0.0.0:7447"] } }"#).unwrap();
        let f = cfg.facts().unwrap();
        assert_eq!(f.non_loopback_listeners, ["tcp/0.0.0.0:7447"]);
        assert!(f.lines().iter().any(|l| l.contains("NON-LOOPBACK listeners") && l.contains("0.0.0.0")));
    }

    #[test]
    fn tls_link_built_is_what_this_build_of_zenoh_has() {
        // Without the transport_tls feature zenoh refuses the protocol;
        // with it, it would fail for the missing certificate instead.
        let cfg = ZenohConfig { listen: vec!["tls/127.0.0.1:0".into()], ..ZenohConfig::default() };
        let err = cfg.open().map(|s| drop(s.close().wait())).err().map(|e| e.to_string()).unwrap_or_default();
        let unsupported = err.contains("not supported for tls");
        assert_eq!(unsupported, !TLS_LINK_BUILT, "TLS_LINK_BUILT = {TLS_LINK_BUILT}, but opening said {err:?}");
    }

    #[test]
    fn tls_asked_for_but_not_built_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("z.json5");
        std::fs::write(
            &file,
            r#"{ mode: "peer", listen: { endpoints: ["tcp/127.0.0.1:0"] },
                 transport: { link: { tls: { root_ca_certificate: "/x/ca.pem", enable_mtls: true } } } }"#,
        )
        .unwrap();
        let cfg = ZenohConfig { config_file: Some(file), ..ZenohConfig::default() };
        let f = cfg.facts().unwrap();
        assert_eq!(f.tls_requested, ["transport/link/tls/root_ca_certificate", "transport/link/tls/enable_mtls"]);
        assert!(!f.tls_in_effect);
        let why = f.tls_missing().unwrap();
        assert!(why.contains("root_ca_certificate") && why.contains("no TLS link"), "{why}");
    }
}
