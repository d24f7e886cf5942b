//! `ganglion bench transport` (the library side): end-to-end latency of the zenoh or ROS 2
//! (DDS) transport on loopback, through the real drivers.
//!
//! One process, two independent transport endpoints: the loop's side
//! ([`crate::transport::start`], exactly what `ganglion run` uses) and the
//! robot's side ([`PlantLink`], what `ganglion sim serve` uses). They share
//! nothing but the network: zenoh over TCP on 127.0.0.1 (or zenoh shared
//! memory with `--shared-memory`), DDS over UDP on 127.0.0.1 (two RustDDS
//! participants). Running both in one process gives both ends the same
//! clock, so no cross-process clock offset enters the numbers.
//!
//! The robot side publishes joint states at `--joint-rate-hz` and rgb8
//! frames of `--width × --height` at `--frame-rate-hz`, concurrently (as a
//! robot does), each stamped with the wall time just before encoding. A
//! sample's latency is its **header stamp → decoded into the loop's input
//! slot** (the ingest maps the header stamp onto the loop clock; the
//! difference is wall time after decode minus header stamp). A poller reads
//! the slots every 100 µs; a sample overwritten in its slot before the
//! poller saw it is counted in `overwritten_in_slot`, not as lost.
//!
//! With `--malformed`, the shared malformed corpus
//! ([`ganglion_codec::corpus`]) is then sent on the joint-state, camera and
//! instruction topics (5 ms apart) and the report gives, per topic, what was
//! sent, what arrived and how many were counted as decode errors, followed
//! by a valid message that must still land.
//!
//! Report (`--report FILE`, also printed): `transport`, `setup`,
//! `joint_state` and `frame` with `sent` and `received` (whole stream,
//! warm-up included; the difference is lost in transport), `measured`
//! (latency samples in the measured window),
//! `overwritten_in_slot`, `decode_errors`, `latency_us` {p50, p99, max},
//! `mean_us`, `payload_bytes` and the raw `samples_us`; `malformed` (when
//! asked); `build_profile`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion_codec::corpus::{malformed_corpus, valid_image, valid_joint_state, CorpusTopic};
use ganglion_codec::msg::{Message, StringMsg, Time};
use ganglion_codec::TopicStats;
use ganglion_core::{input_slots, InputReaders, MonotonicClock};

use crate::stats::Percentiles;
use crate::transport::{LinkSpec, PlantLink, RunningTransport, TransportConfig, TransportKind};

/// What to measure: the flags of `ganglion bench transport`.
#[derive(Debug, Clone)]
pub struct TransportBench {
    /// The transport.
    pub transport: TransportKind,
    /// Camera frame width, pixels (rgb8).
    pub width: u32,
    /// Camera frame height, pixels.
    pub height: u32,
    /// Measured duration, seconds (after discovery and 0.5 s of warm-up).
    pub seconds: f64,
    /// Joint-state publish rate, Hz (0: none).
    pub joint_rate_hz: f64,
    /// Frame publish rate, Hz (0: none).
    pub frame_rate_hz: f64,
    /// Joints in each joint state (1..=16).
    pub joints: usize,
    /// ROS 2 only: DDS domain id (default 220 + pid % 12).
    pub domain: Option<u16>,
    /// zenoh only: enable shared memory on both ends.
    pub shared_memory: bool,
    /// Also send the malformed corpus and report the decode-error counts.
    pub malformed: bool,
}

impl Default for TransportBench {
    fn default() -> Self {
        TransportBench {
            transport: TransportKind::Zenoh,
            width: 64,
            height: 64,
            seconds: 10.0,
            joint_rate_hz: 500.0,
            frame_rate_hz: 30.0,
            joints: 6,
            domain: None,
            shared_memory: false,
            malformed: false,
        }
    }
}

/// One stream's numbers.
#[derive(Debug, serde::Serialize)]
pub struct StreamReport {
    /// Publish rate, Hz.
    pub rate_hz: f64,
    /// Encoded message size, bytes.
    pub payload_bytes: usize,
    /// Published (warm-up included).
    pub sent: u64,
    /// Decoded by the loop side (warm-up included).
    pub received: u64,
    /// Latency samples in the measured window.
    pub measured: usize,
    /// Samples overwritten in the slot before the poller saw them (not lost).
    pub overwritten_in_slot: u64,
    /// Messages that did not decode.
    pub decode_errors: u64,
    /// Header stamp → input slot, µs.
    pub latency_us: Option<Percentiles>,
    /// Mean latency, µs.
    pub mean_us: Option<f64>,
    /// Every latency sample, µs, in arrival order (the plots).
    pub samples_us: Vec<f64>,
}

/// One topic of the malformed corpus.
#[derive(Debug, serde::Serialize)]
pub struct MalformedTopic {
    /// Published (warm-up included).
    pub sent: u64,
    /// Decoded by the loop side (warm-up included).
    pub received: u64,
    /// Messages that did not decode.
    pub decode_errors: u64,
    /// Whether the valid message sent after the corpus arrived.
    pub valid_after_landed: bool,
}

/// The malformed corpus's outcome.
#[derive(Debug, serde::Serialize)]
pub struct MalformedReport {
    /// `name -> expected outcome` of every payload sent.
    pub cases: Vec<String>,
    /// Payloads DDS itself cannot carry (not sent).
    pub skipped_over_dds: Vec<String>,
    /// Corpus payloads after which an input slot changed: must be empty.
    pub landed_in_a_slot: Vec<String>,
    /// Per topic.
    pub topics: BTreeMap<String, MalformedTopic>,
}

/// The report of `ganglion bench transport` (fields: the module docs).
#[derive(Debug, serde::Serialize)]
pub struct TransportReport {
    /// `zenoh` or `ros2`.
    pub transport: &'static str,
    /// How both ends were connected.
    pub setup: String,
    /// What a latency sample measures.
    pub latency_definition: &'static str,
    /// Measured duration, s.
    pub seconds: f64,
    /// Frame width, pixels.
    pub width: u32,
    /// Frame height, pixels.
    pub height: u32,
    /// Joints per joint state.
    pub joints: usize,
    /// Until the first joint state crossed, ms.
    pub discovery_ms: f64,
    /// The joint-state stream.
    pub joint_state: StreamReport,
    /// The camera stream.
    pub frame: StreamReport,
    /// The malformed corpus (with `malformed`).
    pub malformed: Option<MalformedReport>,
    /// `dev` or `release`.
    pub build_profile: &'static str,
}

const CAMERA: &str = "bench";

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free TCP port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// The `[transport]` both ends use: loopback only, multicast off.
fn transport_config(a: &TransportBench) -> anyhow::Result<(TransportConfig, String)> {
    let mut cfg = TransportConfig { queue_capacity: 64, ..TransportConfig::default() };
    let setup = match a.transport {
        TransportKind::None | TransportKind::Servo => {
            anyhow::bail!("--transport: expected zenoh or ros2 (the servo bus: `ganglion bench bus`)")
        }
        TransportKind::Zenoh => {
            cfg.kind = TransportKind::Zenoh;
            let port = free_port()?;
            cfg.zenoh.listen = Some(vec![format!("tcp/127.0.0.1:{port}")]);
            cfg.zenoh.multicast_scouting = Some(false);
            cfg.zenoh.shared_memory = Some(a.shared_memory);
            format!(
                "zenoh peer listening on tcp/127.0.0.1:{port}, robot side connects; multicast scouting off; \
                 shared memory {}",
                if a.shared_memory { "on" } else { "off" }
            )
        }
        TransportKind::Ros2 => {
            anyhow::ensure!(!a.shared_memory, "--shared-memory applies to zenoh only");
            cfg.kind = TransportKind::Ros2;
            // 220..=231: a range no test uses (the Cyclone interop tests use
            // 10..=159, the sim serve + run end-to-end tests 160..=219), so a
            // bench run in CI never shares a domain with another DDS test.
            cfg.ros2.domain_id = a.domain.unwrap_or(220 + (std::process::id() % 12) as u16);
            anyhow::ensure!(cfg.ros2.domain_id <= 232, "--domain must be 0..=232, got {}", cfg.ros2.domain_id);
            cfg.ros2.loopback_only = true;
            cfg.ros2.node_name = "ganglion_bench".into();
            format!(
                "two RustDDS participants (ros2-client), domain {}, restricted to 127.0.0.1; sensor topics best effort",
                cfg.ros2.domain_id
            )
        }
    };
    Ok((cfg, setup))
}

fn stream(rate_hz: f64, payload_bytes: usize, sent: u64, stats: TopicStats, s: Samples) -> StreamReport {
    let mut v: Vec<f64> = s.ns.iter().map(|&ns| ns as f64 / 1e3).collect();
    let latency_us = (!v.is_empty()).then(|| Percentiles::of(&mut v).rounded());
    let mean_us = (!v.is_empty()).then(|| (v.iter().sum::<f64>() / v.len() as f64 * 1000.0).round() / 1000.0);
    StreamReport {
        rate_hz,
        payload_bytes,
        sent,
        received: stats.received,
        measured: s.ns.len(),
        overwritten_in_slot: s.overwritten,
        decode_errors: stats.decode_errors,
        latency_us,
        mean_us,
        samples_us: s.arrival_order_us,
    }
}

#[derive(Default)]
struct Samples {
    ns: Vec<u64>,
    arrival_order_us: Vec<f64>,
    last_seq: u64,
    overwritten: u64,
}

impl Samples {
    fn push(&mut self, seq: u64, latency_ns: u64) {
        if self.last_seq != 0 && seq > self.last_seq + 1 {
            self.overwritten += seq - self.last_seq - 1;
        }
        self.last_seq = seq;
        self.ns.push(latency_ns);
        self.arrival_order_us.push((latency_ns as f64 / 1e3 * 1000.0).round() / 1000.0);
    }
}

/// Polls the slots until `until`, recording latencies when `record`.
fn poll(readers: &mut InputReaders, until: Instant, record: bool, joints: &mut Samples, frames: &mut Samples) {
    while Instant::now() < until {
        if readers.joints.update() && record {
            let s = readers.joints.latest();
            joints.push(s.seq, s.receive.saturating_since(s.capture));
        }
        if readers.cameras[0].update() && record {
            let s = readers.cameras[0].latest();
            frames.push(s.seq, s.receive.saturating_since(s.capture));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Publishes joint states and frames at their rates until `stop`; counts
/// what it sent.
fn spawn_publisher(
    link: Arc<PlantLink>,
    a: &TransportBench,
    stop: Arc<AtomicBool>,
    sent_joints: Arc<AtomicU64>,
    sent_frames: Arc<AtomicU64>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let names: Vec<String> = (0..a.joints).map(|k| format!("j{k}")).collect();
    let mut js = valid_joint_state(&names);
    let mut img = valid_image(a.width, a.height);
    let period = |hz: f64| (hz > 0.0).then(|| Duration::from_secs_f64(1.0 / hz));
    let (jp, fp) = (period(a.joint_rate_hz), period(a.frame_rate_hz));
    std::thread::Builder::new()
        .name("bench-robot".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let start = Instant::now();
            let (mut next_j, mut next_f) = (start, start);
            let mut k = 0u64;
            while !stop.load(Ordering::Acquire) {
                let now = Instant::now();
                if let Some(p) = jp.filter(|_| now >= next_j) {
                    js.position[0] = k as f64 * 1e-3;
                    js.header.stamp = Time::now_wall();
                    js.encode_into(&mut buf);
                    if link.publish_joints(&buf).is_ok() {
                        sent_joints.fetch_add(1, Ordering::Relaxed);
                    }
                    next_j += p;
                    k += 1;
                }
                if let Some(p) = fp.filter(|_| now >= next_f) {
                    img.data[0] = k as u8;
                    img.header.stamp = Time::now_wall();
                    img.encode_into(&mut buf);
                    if link.publish_camera(0, &buf).is_ok() {
                        sent_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    next_f += p;
                }
                let next = match (jp, fp) {
                    (Some(_), Some(_)) => next_j.min(next_f),
                    (Some(_), None) => next_j,
                    (None, Some(_)) => next_f,
                    (None, None) => now + Duration::from_millis(10),
                };
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d.min(Duration::from_millis(10)));
                }
            }
        })
        .context("starting the publisher thread")
}

fn topic_stats(t: &RunningTransport, name: &str) -> TopicStats {
    t.topics().get(name).copied().unwrap_or_default()
}

fn diff(a: TopicStats, b: TopicStats) -> TopicStats {
    TopicStats {
        received: a.received.saturating_sub(b.received),
        dropped: a.dropped.saturating_sub(b.dropped),
        decode_errors: a.decode_errors.saturating_sub(b.decode_errors),
    }
}

/// Sends the corpus over `link`, then one valid message per topic.
fn malformed_phase(
    a: &TransportBench,
    link: &PlantLink,
    transport: &RunningTransport,
    readers: &mut InputReaders,
    names: &[String],
) -> anyhow::Result<MalformedReport> {
    let corpus = malformed_corpus(names, a.width, a.height);
    let over_dds = a.transport == TransportKind::Ros2;
    let camera_topic = format!("camera/{CAMERA}");
    let topic_name = |t: CorpusTopic| match t {
        CorpusTopic::JointStates => "joint_states".to_string(),
        CorpusTopic::Camera => camera_topic.clone(),
        CorpusTopic::Instruction => "instruction".to_string(),
    };
    let before: BTreeMap<String, TopicStats> = transport.topics();
    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    let (mut cases, mut skipped, mut accepted) = (Vec::new(), Vec::new(), Vec::new());
    for s in &corpus {
        if over_dds && !s.survives_dds {
            skipped.push(s.name.to_string());
            continue;
        }
        match s.topic {
            CorpusTopic::JointStates => link.publish_joints(&s.payload)?,
            CorpusTopic::Camera => link.publish_camera(0, &s.payload)?,
            CorpusTopic::Instruction => link.publish_instruction(&s.payload)?,
        }
        *sent.entry(topic_name(s.topic)).or_default() += 1;
        cases.push(format!("{} -> {:?}", s.name, s.expected));
        // Sensor topics are best effort with a history of 1: space the
        // payloads so none is overwritten before the reader thread takes it.
        std::thread::sleep(Duration::from_millis(5));
        // Nothing may land in a slot; say which payload did if one does.
        if readers.joints.update() | readers.cameras[0].update() | readers.instruction.update() {
            accepted.push(s.name.to_string());
        }
    }
    link.publish_joints(&valid_joint_state(names).encode())?;
    link.publish_camera(0, &valid_image(a.width, a.height).encode())?;
    link.publish_instruction(&StringMsg { data: "after the corpus".into() }.encode())?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut landed = [false; 3];
    while Instant::now() < deadline && !landed.iter().all(|l| *l) {
        landed[0] |= readers.joints.update();
        landed[1] |= readers.cameras[0].update();
        landed[2] |= readers.instruction.update();
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = transport.topics();
    let mut topics = BTreeMap::new();
    for (i, t) in [CorpusTopic::JointStates, CorpusTopic::Camera, CorpusTopic::Instruction].into_iter().enumerate() {
        let name = topic_name(t);
        let d = diff(after.get(&name).copied().unwrap_or_default(), before.get(&name).copied().unwrap_or_default());
        let n_sent = sent.get(&name).copied().unwrap_or(0);
        topics.insert(
            name,
            MalformedTopic {
                sent: n_sent,
                // The valid message after the corpus is not counted as sent.
                received: d.received.saturating_sub(u64::from(landed[i])),
                decode_errors: d.decode_errors,
                valid_after_landed: landed[i],
            },
        );
    }
    Ok(MalformedReport { cases, skipped_over_dds: skipped, landed_in_a_slot: accepted, topics })
}

/// Measures the transport: both ends in this process, discovery, 0.5 s
/// of warm-up, `seconds` measured, then the malformed corpus when asked.
pub fn measure(a: &TransportBench) -> anyhow::Result<TransportReport> {
    anyhow::ensure!(a.seconds > 0.0 && a.seconds.is_finite(), "--seconds must be positive, got {}", a.seconds);
    anyhow::ensure!((1..=16).contains(&a.joints), "--joints must be 1..=16, got {}", a.joints);
    anyhow::ensure!(
        (1..=4096).contains(&a.width) && (1..=4096).contains(&a.height),
        "--width/--height must be 1..=4096, got {}x{}",
        a.width,
        a.height
    );
    for (name, hz) in [("--joint-rate-hz", a.joint_rate_hz), ("--frame-rate-hz", a.frame_rate_hz)] {
        anyhow::ensure!((0.0..=10_000.0).contains(&hz), "{name} must be 0..=10000, got {hz}");
    }
    let (cfg, setup) = transport_config(a)?;
    let names: Vec<String> = (0..a.joints).map(|k| format!("j{k}")).collect();
    let spec = LinkSpec {
        robot: "bench".into(),
        joint_names: names.clone(),
        period_ns: 2_000_000,
        max_width: a.width,
        max_height: a.height,
        base_dir: None,
        cameras: vec![(CAMERA.to_string(), a.width, a.height)],
    };
    let (writers, mut readers) = input_slots(a.joints, &[(CAMERA.to_string(), a.width, a.height)]);
    let (sink, transport) = crate::transport::start(&cfg, &spec, writers, Arc::new(MonotonicClock::new()))
        .context("starting the loop side of the transport")?;
    let kind = cfg.kind;
    let link = Arc::new(
        PlantLink::start(&cfg, kind, &spec.robot, &[CAMERA.to_string()], |_| {})
            .context("starting the robot side of the transport")?,
    );

    // Discovery / connection: publish joint states until one lands.
    let t0 = Instant::now();
    let probe = valid_joint_state(&names).encode();
    let mut found = false;
    while t0.elapsed() < Duration::from_secs(15) && !found {
        link.publish_joints(&probe)?;
        std::thread::sleep(Duration::from_millis(5));
        found = readers.joints.update();
    }
    anyhow::ensure!(found, "no joint state crossed the transport within 15 s (discovery failed)");
    let discovery_ms = t0.elapsed().as_secs_f64() * 1e3;
    // Let probes still in flight arrive before the counters are read.
    std::thread::sleep(Duration::from_millis(200));
    let start_j = topic_stats(&transport, "joint_states");
    let start_f = topic_stats(&transport, &format!("camera/{CAMERA}"));

    let stop = Arc::new(AtomicBool::new(false));
    let (sent_j, sent_f) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let publisher = spawn_publisher(link.clone(), a, stop.clone(), sent_j.clone(), sent_f.clone())?;
    let (mut js, mut fr) = (Samples::default(), Samples::default());
    poll(&mut readers, Instant::now() + Duration::from_millis(500), false, &mut js, &mut fr);
    poll(&mut readers, Instant::now() + Duration::from_secs_f64(a.seconds), true, &mut js, &mut fr);
    stop.store(true, Ordering::Release);
    publisher.join().map_err(|_| anyhow::anyhow!("publisher thread panicked"))?;
    // Let the last samples arrive.
    poll(&mut readers, Instant::now() + Duration::from_millis(200), true, &mut js, &mut fr);
    let end_j = topic_stats(&transport, "joint_states");
    let end_f = topic_stats(&transport, &format!("camera/{CAMERA}"));
    let js_bytes = valid_joint_state(&names).encode().len();
    let img_bytes = valid_image(a.width, a.height).encode().len();
    let joint_state = stream(a.joint_rate_hz, js_bytes, sent_j.load(Ordering::Relaxed), diff(end_j, start_j), js);
    let frame = stream(a.frame_rate_hz, img_bytes, sent_f.load(Ordering::Relaxed), diff(end_f, start_f), fr);

    let malformed = if a.malformed { Some(malformed_phase(a, &link, &transport, &mut readers, &names)?) } else { None };

    drop(sink);
    drop(link);
    transport.shutdown();
    Ok(TransportReport {
        transport: match a.transport {
            TransportKind::None => "none",
            TransportKind::Zenoh => "zenoh",
            TransportKind::Ros2 => "ros2",
            TransportKind::Servo => "servo",
        },
        setup: format!("{setup}; both ends in one process (one clock)"),
        latency_definition: "header stamp (wall time just before encoding) -> decoded into the loop's input slot",
        seconds: a.seconds,
        width: a.width,
        height: a.height,
        joints: a.joints,
        discovery_ms: (discovery_ms * 10.0).round() / 10.0,
        joint_state,
        frame,
        malformed,
        build_profile: crate::report::BUILD_PROFILE,
    })
}

impl TransportReport {
    /// The corpus check as pass/fail: every malformed payload counted as a
    /// decode error, none in a slot, the valid message after it delivered.
    /// `Ok` without `--malformed`; else the topics that failed.
    pub fn malformed_outcome(&self) -> Result<(), Vec<String>> {
        let Some(m) = &self.malformed else { return Ok(()) };
        let mut bad: Vec<String> = m
            .topics
            .iter()
            .filter(|(_, t)| t.decode_errors != t.sent || t.received != t.sent || !t.valid_after_landed)
            .map(|(n, _)| n.clone())
            .collect();
        bad.extend(m.landed_in_a_slot.iter().map(|c| format!("landed in a slot: {c}")));
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad)
        }
    }
}
