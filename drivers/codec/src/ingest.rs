//! Transport-independent plumbing both drivers share: per-topic decoders
//! that stamp and sequence samples into the loop's latest-value slots, the
//! per-topic counters, and the bounded command queue behind a
//! [`CommandSink`].
//!
//! A transport only has to call [`Ingest::on_payload`] from its receive
//! callback and drain an [`Outbox`] on its publisher thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ganglion_core::{
    Clock, Command, CommandSink, ExternalHeartbeat, Frame, InputWriters, Instruction, JointState, SinkError,
    SlotWriter, Stamp, Stamped,
};

use crate::msg::Time;
use crate::{decode_heartbeat_into, decode_image_into, decode_instruction, decode_joint_state_into};
use crate::{DecodeLimits, JointMap};

/// Counters of one input or output topic. Shared (`Arc`) between the
/// receive callback and whoever reports them.
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Payloads that arrived.
    pub received: AtomicU64,
    /// Payloads dropped for a reason other than decoding (queue full, slot
    /// rejected the geometry, stale sequence).
    pub dropped: AtomicU64,
    /// Payloads that failed to decode.
    pub decode_errors: AtomicU64,
}

/// A snapshot of [`TopicCounters`], for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicStats {
    /// Payloads that arrived.
    pub received: u64,
    /// Payloads dropped (not decode errors).
    pub dropped: u64,
    /// Payloads that failed to decode.
    pub decode_errors: u64,
}

impl TopicCounters {
    /// Current values.
    pub fn snapshot(&self) -> TopicStats {
        TopicStats {
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
        }
    }
}

/// How the capture stamp of an input is put on the loop clock's time line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureStamp {
    /// From the message header: the header is the sender's wall (ROS) time,
    /// so capture = receive − (wall now − header stamp). Clock skew between
    /// machines shows up as future stamps, which the loop flags.
    #[default]
    Header,
    /// Ignore the header; capture = receive (for sources without clocks).
    Receive,
}

/// What an [`Ingest`] decodes, and the slot it writes.
enum Target {
    Joints { slot: SlotWriter<Stamped<JointState>>, map: JointMap },
    Camera { slot: SlotWriter<Stamped<Frame>> },
    // Boxed: the 256-byte text would bloat every variant.
    Instruction { slot: SlotWriter<Stamped<Instruction>>, current: Box<Instruction> },
    Heartbeat { slot: SlotWriter<Stamped<ExternalHeartbeat>> },
}

/// One input topic: decodes each payload into its slot with receive stamp,
/// capture stamp and a sequence number assigned here, and counts.
///
/// Decoding writes straight into the slot's preallocated buffer; after the
/// first message nothing is allocated.
pub struct Ingest {
    name: String,
    target: Target,
    clock: Arc<dyn Clock>,
    limits: DecodeLimits,
    capture: CaptureStamp,
    seq: u64,
    /// The previous header stamp and the capture stamp it mapped to.
    last_mapping: Option<(u64, Stamp)>,
    counters: Arc<TopicCounters>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("name", &self.name).field("seq", &self.seq).finish()
    }
}

/// Settings every input shares.
#[derive(Clone)]
pub struct IngestConfig {
    /// The loop's clock (receive stamps).
    pub clock: Arc<dyn Clock>,
    /// Decoder caps.
    pub limits: DecodeLimits,
    /// Capture stamp policy.
    pub capture: CaptureStamp,
    /// Joint-name mapping of joint-state messages.
    pub joints: JointMap,
}

/// The inputs of one robot, ready to hand to a transport's callbacks.
#[derive(Debug)]
pub struct Inputs {
    /// Joint states.
    pub joints: Ingest,
    /// Cameras, in profile order, with their names.
    pub cameras: Vec<Ingest>,
    /// Language instruction.
    pub instruction: Ingest,
    /// External heartbeat.
    pub heartbeat: Ingest,
}

impl Inputs {
    /// Wraps the loop's slot writers. Topic names (for counters) are
    /// `joint_states`, `camera/<name>`, `instruction`, `heartbeat`.
    pub fn new(writers: InputWriters, cfg: &IngestConfig) -> Self {
        let mk = |name: String, target| Ingest {
            name,
            target,
            clock: cfg.clock.clone(),
            limits: cfg.limits,
            capture: cfg.capture,
            seq: 0,
            last_mapping: None,
            counters: Arc::default(),
        };
        Inputs {
            joints: mk("joint_states".into(), Target::Joints { slot: writers.joints, map: cfg.joints.clone() }),
            cameras: writers
                .cameras
                .into_iter()
                .map(|c| mk(format!("camera/{}", c.name), Target::Camera { slot: c.slot }))
                .collect(),
            instruction: mk(
                "instruction".into(),
                Target::Instruction { slot: writers.instruction, current: Box::default() },
            ),
            heartbeat: mk("heartbeat".into(), Target::Heartbeat { slot: writers.heartbeat }),
        }
    }

    /// Every input's name and counters.
    pub fn counters(&self) -> Vec<(String, Arc<TopicCounters>)> {
        std::iter::once(&self.joints)
            .chain(&self.cameras)
            .chain([&self.instruction, &self.heartbeat])
            .map(|i| (i.name.clone(), i.counters.clone()))
            .collect()
    }
}

/// Wall-clock nanoseconds since the Unix epoch.
fn wall_now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Ingest {
    /// Topic name (`joint_states`, `camera/<name>`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This topic's counters.
    pub fn counters(&self) -> Arc<TopicCounters> {
        self.counters.clone()
    }

    /// Maps a header stamp onto the loop clock. The mapping reads two
    /// clocks (wall, monotonic) at slightly different instants, so it
    /// jitters by microseconds; without care, repeated or closely spaced
    /// header stamps could map to captures that go backwards and raise a
    /// false `bad_timestamp`. So the mapping is kept monotone in the header:
    /// the same header maps to the same capture, a later header never to an
    /// earlier capture. A header that really goes backwards still maps
    /// backwards, and the loop catches it.
    fn capture_stamp(&mut self, receive: Stamp, header: Time) -> Stamp {
        match (self.capture, header.as_nanos()) {
            (CaptureStamp::Header, Some(h)) => {
                let age = wall_now_ns() as i64 - h as i64;
                let mut capture = if age >= 0 {
                    Stamp(receive.0.saturating_sub(age as u64))
                } else {
                    receive.add_nanos(age.unsigned_abs())
                };
                match self.last_mapping {
                    Some((last_h, last_c)) if h == last_h => capture = last_c,
                    Some((last_h, last_c)) if h > last_h && capture < last_c => capture = last_c,
                    _ => {}
                }
                self.last_mapping = Some((h, capture));
                capture
            }
            _ => receive,
        }
    }

    /// Decodes one payload into the slot; counts it. Never panics, never
    /// blocks; returns whether the sample was published.
    pub fn on_payload(&mut self, bytes: &[u8]) -> bool {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let receive = self.clock.now();
        let limits = self.limits;
        let result = match &mut self.target {
            Target::Joints { slot, map } => {
                let buf = slot.buffer_mut();
                decode_joint_state_into(bytes, &limits, map, &mut buf.value).map(Some)
            }
            Target::Camera { slot } => decode_image_into(bytes, &limits, &mut slot.buffer_mut().value).map(Some),
            Target::Heartbeat { slot } => decode_heartbeat_into(bytes, &limits, &mut slot.buffer_mut().value).map(Some),
            Target::Instruction { slot, current } => match decode_instruction(bytes, &limits) {
                Ok(text) => {
                    if text != current.text.as_str() {
                        **current = Instruction::new(current.seq + 1, text);
                    }
                    slot.buffer_mut().value.clone_from(&**current);
                    // An instruction has no header: it holds from receipt.
                    Ok(None)
                }
                Err(e) => Err(e),
            },
        };
        let header = match result {
            Ok(h) => h,
            Err(_) => {
                self.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        };
        let capture = match header {
            Some(h) => self.capture_stamp(receive, h),
            None => receive,
        };
        self.seq += 1;
        let seq = self.seq;
        match &mut self.target {
            Target::Joints { slot, .. } => publish(slot, capture, receive, seq),
            Target::Camera { slot } => publish(slot, capture, receive, seq),
            Target::Instruction { slot, .. } => publish(slot, capture, receive, seq),
            Target::Heartbeat { slot } => publish(slot, capture, receive, seq),
        }
        true
    }
}

/// Stamps the writer's buffer (already filled by the decoder) and publishes it.
fn publish<T: Send>(slot: &mut SlotWriter<Stamped<T>>, capture: Stamp, receive: Stamp, seq: u64) {
    let s = slot.buffer_mut();
    s.capture = capture;
    s.receive = receive;
    s.seq = seq;
    slot.publish();
}

/// Counters of the command output.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Commands handed to the transport's publisher.
    pub published: AtomicU64,
    /// Commands dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Commands the transport failed to put on the wire.
    pub failed: AtomicU64,
}

/// The control thread's end of the command queue: a [`CommandSink`] whose
/// `send` is a non-blocking push into a bounded, preallocated queue.
pub struct QueueSink {
    tx: crossbeam_channel::Sender<Command>,
    counters: Arc<OutboxCounters>,
}

/// The publisher thread's end of the command queue.
pub struct Outbox {
    rx: crossbeam_channel::Receiver<Command>,
    counters: Arc<OutboxCounters>,
}

/// A bounded command queue of `capacity` commands (allocated here).
pub fn command_queue(capacity: usize) -> (QueueSink, Outbox) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let counters = Arc::<OutboxCounters>::default();
    (QueueSink { tx, counters: counters.clone() }, Outbox { rx, counters })
}

impl CommandSink for QueueSink {
    fn send(&mut self, cmd: &Command) -> Result<(), SinkError> {
        match self.tx.try_send(*cmd) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Err(SinkError::Full)
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(SinkError::Closed),
        }
    }
}

impl QueueSink {
    /// A second sink into the same queue (e.g. for the shutdown hold
    /// command sent after the control loop has stopped).
    pub fn clone_sender(&self) -> QueueSink {
        QueueSink { tx: self.tx.clone(), counters: self.counters.clone() }
    }

    /// The queue's counters.
    pub fn counters(&self) -> Arc<OutboxCounters> {
        self.counters.clone()
    }
}

impl Outbox {
    /// Waits up to `timeout` for the next command; `None` on timeout or when
    /// the sink is gone (see [`is_closed`](Self::is_closed)).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Command> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Whether the sink was dropped and the queue is empty.
    pub fn is_closed(&self) -> bool {
        self.rx.is_empty() && matches!(self.rx.try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected))
    }

    /// Records the outcome of putting one command on the wire.
    pub fn record(&self, ok: bool) {
        let c = if ok { &self.counters.published } else { &self.counters.failed };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The queue's counters.
    pub fn counters(&self) -> Arc<OutboxCounters> {
        self.counters.clone()
    }
}

/// How a transport publishes commands (shared by the zenoh and ROS 2 drivers).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOut {
    /// Message type.
    pub format: crate::CommandFormat,
    /// Robot joint names (trajectory and joint-state formats).
    pub joint_names: Vec<String>,
    /// `time_from_start` of the trajectory point, ns (one control period).
    pub time_from_start_ns: u64,
    /// Minimum time between two heartbeats, ns.
    pub heartbeat_period_ns: u64,
    /// How long `start` waits for a command subscriber to match before
    /// returning (0: do not wait), so no command is published into the void
    /// while the robot side is still coming up.
    pub wait_for_subscriber_ns: u64,
}
