//! `ganglion sim serve`: the simulated arm as an external process.
//!
//! The arm publishes joint states, camera frames and its instruction over
//! the profile's transport (as a robot would) and applies the commands it
//! receives. Two modes:
//!
//! - real time: physics advances with the wall clock; commands are applied
//!   as they arrive; with `--command-timeout-ms` the arm brakes (holds its
//!   measured position, zero velocity) when no command arrived for that
//!   long, as a robot's own controller does when its commander dies; it
//!   ends 2 s after the last command (or at `--seconds`);
//! - `--lockstep`: the arm advances one control period per received
//!   command, so its trajectory depends only on the commands (deterministic
//!   for CI); when no command arrives within `--timeout-ms` it counts a miss
//!   and advances holding the previous targets.
//!
//! Faults (`--fault KIND@SECONDS[:DURATION]`, repeatable; seconds after the
//! first command arrived, i.e. once the control loop is live; no duration =
//! until the end) change what goes on the wire, as a broken robot or
//! network would: see [`PlantFault`] for the kinds.
//!
//! The plant log (`--log FILE`, JSON lines, one object per line, `t` names
//! the record) is what the HIL rig checks: `start` (monotonic and wall
//! clock at start), `cmd` (every command payload: `rx_mono_ns` on
//! `CLOCK_MONOTONIC`, `rx_wall_ns`, `stamp_ns` = the command header's wall
//! stamp, `pos`, `vel`, `applied` = false while partitioned or for a
//! non-finite command, `bad` = failed to decode), `hb` (Ganglion's
//! heartbeat, zenoh only: `rx_mono_ns`, `stamp_ns`, `mode`; with
//! `heartbeat_period_ms = 0` one follows every command with the command's
//! own header stamp, which is how a command's mode is known on the plant
//! side), `state` (true arm state at every joint period: `mono_ns`, `pos`,
//! `vel`, `tip_error_m`), `cam` (every frame put on the wire: `mono_ns`,
//! `stamp_ns`), `fault` (`kind`, `edge` = start|end, `mono_ns`), `brake`
//! (command timeout fired, `mono_ns`), `end`.
//!
//! Report (`--report FILE`, also printed): `transport`, `mode`,
//! `commands_received`, `commands_ignored`, `decode_errors`, `misses`,
//! `steps`, `joint_states_published`, `frames_published`,
//! `malformed_published`, `flood_published`, `inputs_sent` (every joint
//! state and image payload), `inputs_sent_between_commands` (those sent
//! between the first and the last command received, when the runtime was
//! certainly listening), `brakes`, `tip_error_m`,
//! `success`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion_codec::msg::{Header, Image, JointState, Message, StringMsg, Time};
use ganglion_codec::{decode_command, DecodeLimits};
use ganglion_core::{input_slots, CauseSet, Clock, Command, InputReaders, JointVec, Mode, MonotonicClock, Stamp};

use ganglion::profile::Profile;
use ganglion::transport::{PlantLink, TransportKind};

/// Arguments of `ganglion sim serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// `zenoh` or `ros2` (overrides the profile's `transport.kind`).
    #[arg(long)]
    pub transport: String,
    /// Robot profile with `[sim]` and `[transport]` sections.
    #[arg(long)]
    pub profile: std::path::PathBuf,
    /// Advance one control period per received command.
    #[arg(long)]
    pub lockstep: bool,
    /// Simulated seconds to run (lockstep: also ends 2 s after the commands stop).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Lockstep: how long to wait for a command before counting a miss, ms.
    #[arg(long, default_value_t = 200)]
    pub timeout_ms: u64,
    /// Real time: brake (hold the measured position) when no command arrived
    /// for this long, ms; 0 = never (the arm keeps its last targets).
    #[arg(long, default_value_t = 0)]
    pub command_timeout_ms: u64,
    /// Fault on the wire, `KIND@SECONDS[:DURATION]` (seconds after the first
    /// command); repeatable. Kinds: camera-dropout, frozen-frame,
    /// black-frame, joint-dropout, nan-joint, inf-joint, stamp-forward,
    /// stamp-backward, flood, malformed, partition.
    #[arg(long = "fault")]
    pub faults: Vec<String>,
    /// Sensor noise on the camera (the low bit of a few pixels changes every
    /// frame, as on a real sensor), so a frozen frame is detectable by content.
    #[arg(long)]
    pub camera_noise: bool,
    /// Write the plant log (JSON lines) here.
    #[arg(long)]
    pub log: Option<std::path::PathBuf>,
    /// Scene seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Episode of the seed's scene stream (scene, instruction, initial pose).
    #[arg(long, default_value_t = 0)]
    pub episode: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

/// A fault the plant puts on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantFault {
    /// No frames.
    CameraDropout,
    /// The last frame's bytes again, with new stamps.
    FrozenFrame,
    /// All-zero pixels, new stamps.
    BlackFrame,
    /// No joint states.
    JointDropout,
    /// The first joint's position is NaN.
    NanJoint,
    /// The first joint's velocity is +Inf.
    InfJoint,
    /// Header stamps 1 s in the future.
    StampForward,
    /// Header stamps 0.5 s in the past (a backwards jump, then old data).
    StampBackward,
    /// Every joint state and frame published 100 times.
    Flood,
    /// After every joint state and frame, a truncated copy and random bytes on the same key.
    Malformed,
    /// Nothing published, every command ignored.
    Partition,
}

impl PlantFault {
    /// Every kind with its name.
    pub const ALL: [(PlantFault, &'static str); 11] = [
        (PlantFault::CameraDropout, "camera-dropout"),
        (PlantFault::FrozenFrame, "frozen-frame"),
        (PlantFault::BlackFrame, "black-frame"),
        (PlantFault::JointDropout, "joint-dropout"),
        (PlantFault::NanJoint, "nan-joint"),
        (PlantFault::InfJoint, "inf-joint"),
        (PlantFault::StampForward, "stamp-forward"),
        (PlantFault::StampBackward, "stamp-backward"),
        (PlantFault::Flood, "flood"),
        (PlantFault::Malformed, "malformed"),
        (PlantFault::Partition, "partition"),
    ];

    /// The kind's name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(k, _)| *k == self).map_or("?", |(_, n)| n)
    }
}

/// One scheduled fault: `[start, end)` in ns after the first command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultWindow {
    /// What.
    pub kind: PlantFault,
    /// From, ns after the first command.
    pub start_ns: u64,
    /// Until (exclusive); `u64::MAX` = to the end.
    pub end_ns: u64,
}

/// Parses `KIND@SECONDS[:DURATION]`.
pub fn parse_fault(spec: &str) -> anyhow::Result<FaultWindow> {
    let expected = "KIND@SECONDS[:DURATION], e.g. black-frame@3:1";
    let (kind, time) = spec.split_once('@').with_context(|| format!("--fault {spec:?}: expected {expected}"))?;
    let kind = PlantFault::ALL.iter().find(|(_, n)| *n == kind).map(|(k, _)| *k).with_context(|| {
        let names: Vec<&str> = PlantFault::ALL.iter().map(|(_, n)| *n).collect();
        format!("--fault {spec:?}: unknown kind {kind:?}; known: {}", names.join(", "))
    })?;
    let (at, dur) = match time.split_once(':') {
        Some((a, d)) => (a, Some(d)),
        None => (time, None),
    };
    let secs = |s: &str, what: &str| -> anyhow::Result<u64> {
        let v: f64 = s.parse().with_context(|| format!("--fault {spec:?}: {what} {s:?} is not a number"))?;
        anyhow::ensure!(v.is_finite() && v >= 0.0, "--fault {spec:?}: {what} must be >= 0 seconds");
        Ok((v * 1e9) as u64)
    };
    let start_ns = secs(at, "start")?;
    let end_ns = match dur {
        Some(d) => start_ns.saturating_add(secs(d, "duration")?),
        None => u64::MAX,
    };
    Ok(FaultWindow { kind, start_ns, end_ns })
}

#[derive(Debug, serde::Serialize)]
struct ServeReport {
    transport: String,
    mode: &'static str,
    commands_received: u64,
    commands_ignored: u64,
    decode_errors: u64,
    misses: u64,
    steps: u64,
    joint_states_published: u64,
    frames_published: u64,
    malformed_published: u64,
    flood_published: u64,
    inputs_sent: u64,
    inputs_sent_between_commands: u64,
    brakes: u64,
    tip_error_m: f64,
    success: bool,
}

/// Which faults act on the current publication.
#[derive(Debug, Default, Clone, Copy)]
struct Active {
    camera_dropout: bool,
    frozen: bool,
    black: bool,
    joint_dropout: bool,
    nan: bool,
    inf: bool,
    stamp_offset_ns: i64,
    flood: bool,
    malformed: bool,
    partition: bool,
}

impl Active {
    fn of(windows: &[FaultWindow], since_first_ns: Option<u64>) -> Active {
        let mut a = Active::default();
        let Some(t) = since_first_ns else { return a };
        for w in windows.iter().filter(|w| t >= w.start_ns && t < w.end_ns) {
            match w.kind {
                PlantFault::CameraDropout => a.camera_dropout = true,
                PlantFault::FrozenFrame => a.frozen = true,
                PlantFault::BlackFrame => a.black = true,
                PlantFault::JointDropout => a.joint_dropout = true,
                PlantFault::NanJoint => a.nan = true,
                PlantFault::InfJoint => a.inf = true,
                PlantFault::StampForward => a.stamp_offset_ns = 1_000_000_000,
                PlantFault::StampBackward => a.stamp_offset_ns = -500_000_000,
                PlantFault::Flood => a.flood = true,
                PlantFault::Malformed => a.malformed = true,
                PlantFault::Partition => a.partition = true,
            }
        }
        a
    }
}

/// Times copies of each message go out during a flood (100× the nominal rate).
const FLOOD_FACTOR: u64 = 100;

/// xorshift64*: garbage bytes and camera noise without a dependency; seeded,
/// so a run is repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The plant log: JSON lines, buffered (the plant is not a real-time path).
struct Log(Option<std::io::BufWriter<std::fs::File>>);

impl Log {
    fn line(&mut self, v: serde_json::Value) {
        if let Some(w) = &mut self.0 {
            // A failed log write must not stop the plant; the rig notices a
            // short log (missing `end`).
            let _ = writeln!(w, "{v}");
        }
    }
    fn flush(&mut self) {
        if let Some(w) = &mut self.0 {
            let _ = w.flush();
        }
    }
}

fn mono_ns() -> u64 {
    MonotonicClock::new().now().as_nanos()
}

fn wall_ns() -> u64 {
    Time::now_wall().as_nanos().unwrap_or(0)
}

/// Encodes and publishes whatever `publish_due` wrote into the local slots.
struct Publisher {
    link: PlantLink,
    readers: InputReaders,
    joint_names: Vec<String>,
    frame_id: String,
    joints_msg: JointState,
    image_msg: Image,
    last_pixels: Vec<u8>,
    buf: Vec<u8>,
    junk: Vec<u8>,
    rng: Rng,
    camera_noise: bool,
    joints_published: u64,
    frames_published: u64,
    malformed_published: u64,
    flood_published: u64,
    /// Every joint-state and image payload put on the wire (flood and
    /// malformed copies included).
    inputs_sent: u64,
}

impl Publisher {
    /// Puts `self.buf` on the wire (`joints` or camera 0) with the active
    /// flood / malformed faults.
    fn send(&mut self, joints: bool, a: &Active) -> anyhow::Result<()> {
        let copies = if a.flood { FLOOD_FACTOR } else { 1 };
        for _ in 0..copies {
            if joints {
                self.link.publish_joints(&self.buf)?;
            } else {
                self.link.publish_camera(0, &self.buf)?;
            }
        }
        self.flood_published += copies - 1;
        self.inputs_sent += copies;
        if a.malformed {
            // A truncated copy, then random bytes of the same length.
            let n = self.buf.len();
            self.junk.clear();
            self.junk.extend_from_slice(&self.buf[..n / 2]);
            let garbage: Vec<u8> = (0..n.max(16)).map(|_| self.rng.next() as u8).collect();
            for payload in [&self.junk, &garbage] {
                if joints {
                    self.link.publish_joints(payload)?;
                } else {
                    self.link.publish_camera(0, payload)?;
                }
            }
            self.malformed_published += 2;
            self.inputs_sent += 2;
        }
        Ok(())
    }

    fn flush(&mut self, a: &Active, log: &mut Log) -> anyhow::Result<()> {
        let wall = wall_ns() as i64 + a.stamp_offset_ns;
        let stamp = Time::from_nanos(wall.max(0) as u64);
        if self.readers.joints.update() && !a.partition && !a.joint_dropout {
            let s = &self.readers.joints.latest().value;
            let m = &mut self.joints_msg;
            m.header.stamp = stamp;
            m.name.clone_from(&self.joint_names);
            m.position.clear();
            m.position.extend_from_slice(&s.position);
            m.velocity.clear();
            m.velocity.extend_from_slice(&s.velocity);
            m.effort.clear();
            m.effort.extend_from_slice(&s.effort);
            if a.nan {
                if let Some(p) = m.position.first_mut() {
                    *p = f64::NAN;
                }
            }
            if a.inf {
                if let Some(v) = m.velocity.first_mut() {
                    *v = f64::INFINITY;
                }
            }
            m.encode_into(&mut self.buf);
            self.send(true, a)?;
            self.joints_published += 1;
        }
        if self.readers.cameras[0].update() && !a.partition && !a.camera_dropout {
            let f = &self.readers.cameras[0].latest().value;
            let m = &mut self.image_msg;
            m.header = Header { stamp, frame_id: self.frame_id.clone() };
            m.width = f.width;
            m.height = f.height;
            m.encoding = f.format.ros_encoding().into();
            m.step = f.width * f.format.bytes_per_pixel() as u32;
            m.data.clear();
            if a.frozen && self.last_pixels.len() == f.data().len() {
                m.data.extend_from_slice(&self.last_pixels);
            } else if a.black {
                m.data.resize(f.data().len(), 0);
            } else {
                m.data.extend_from_slice(f.data());
                if self.camera_noise {
                    // Sensor noise: the low bit of 16 random pixels flips.
                    let n = m.data.len();
                    for _ in 0..16 {
                        if n > 0 {
                            let i = (self.rng.next() % n as u64) as usize;
                            m.data[i] ^= 1;
                        }
                    }
                }
                self.last_pixels.clone_from(&m.data);
            }
            m.encode_into(&mut self.buf);
            self.send(false, a)?;
            self.frames_published += 1;
            log.line(serde_json::json!({"t": "cam", "mono_ns": mono_ns(), "stamp_ns": wall}));
        }
        if self.readers.instruction.update() && !a.partition {
            self.publish_instruction()?;
        }
        Ok(())
    }

    fn publish_instruction(&mut self) -> anyhow::Result<()> {
        let text = self.readers.instruction.latest().value.text.to_string();
        if !text.is_empty() {
            StringMsg { data: text }.encode_into(&mut self.buf);
            self.link.publish_instruction(&self.buf)?;
        }
        Ok(())
    }
}

/// A received command with what the log needs.
struct Received {
    cmd: Command,
    rx_mono_ns: u64,
    rx_wall_ns: u64,
    stamp_ns: Option<u64>,
}

/// Subscribes to Ganglion's heartbeat on a second zenoh session (the plant
/// link owns the first) and logs every one; the session lives as long as
/// the returned value.
fn heartbeat_listener(
    profile: &Profile,
    tx: crossbeam_channel::Sender<(u64, u64, String)>,
) -> anyhow::Result<(zenoh::Session, zenoh::pubsub::Subscriber<()>)> {
    use zenoh::Wait;
    let mut z = profile.transport.zenoh_config(&profile.robot.name, None)?;
    if z.connect.is_empty() {
        z.connect = std::mem::take(&mut z.listen);
    } else {
        z.listen.clear();
    }
    let session = z.open()?;
    let key = ganglion_zenoh::Keys::new(&z.prefix).heartbeat();
    let limits = DecodeLimits::default();
    let sub = session
        .declare_subscriber(key)
        .callback(move |s| {
            let rx = mono_ns();
            let bytes = s.payload().to_bytes();
            // The heartbeat is a std_msgs/Header: stamp + mode name in frame_id.
            if let Ok(h) = Header::decode(&bytes, &limits) {
                let _ = tx.send((rx, h.stamp.as_nanos().unwrap_or(0), h.frame_id));
            }
        })
        .wait()
        .map_err(|e| anyhow::anyhow!("subscribing to the heartbeat: {e}"))?;
    Ok((session, sub))
}

/// Runs `ganglion sim serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let kind = match args.transport.as_str() {
        "zenoh" => TransportKind::Zenoh,
        "ros2" => TransportKind::Ros2,
        other => anyhow::bail!("--transport: expected zenoh or ros2, got {other:?}"),
    };
    anyhow::ensure!(args.seconds > 0.0 && args.seconds.is_finite(), "--seconds must be positive");
    let windows = args.faults.iter().map(|f| parse_fault(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let profile = Profile::load(&args.profile)?;
    let sim = profile.sim.clone().with_context(|| format!("{}: no [sim] section", args.profile.display()))?;
    let mut arm = ganglion_sim::SimArm::new(&sim, args.seed).context("building the simulated arm")?;
    if args.episode != 0 {
        arm.reset_episode(args.episode);
    }
    let period_ns = profile.period_ns();
    let format = profile.transport.command_format()?;
    let mut log = Log(match &args.log {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating the plant log {}", p.display()))?,
        )),
        None => None,
    });
    log.line(serde_json::json!({"t": "start", "mono_ns": mono_ns(), "wall_ns": wall_ns(),
        "period_ns": period_ns, "command_timeout_ms": args.command_timeout_ms, "lockstep": args.lockstep,
        "faults": args.faults}));

    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded::<Received>();
    let decode_errors = Arc::new(AtomicU64::new(0));
    let errors = decode_errors.clone();
    let limits = DecodeLimits::default();
    let seq = AtomicU64::new(0);
    let (bad_tx, bad_rx) = crossbeam_channel::unbounded::<u64>();
    let on_command = move |bytes: &[u8]| {
        let (rx_mono_ns, rx_wall_ns) = (mono_ns(), wall_ns());
        match decode_command(bytes, format, &limits) {
            Ok(t) => {
                let cmd = Command {
                    seq: seq.fetch_add(1, Ordering::Relaxed),
                    stamp: Stamp::ZERO,
                    mode: Mode::Nominal,
                    causes: CauseSet::EMPTY,
                    position: t.position,
                    velocity: t.velocity,
                };
                let stamp_ns = t.stamp.and_then(|s| s.as_nanos());
                let _ = cmd_tx.send(Received { cmd, rx_mono_ns, rx_wall_ns, stamp_ns });
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                let _ = bad_tx.send(rx_mono_ns);
            }
        }
    };
    let cameras = vec![sim.camera_name.clone()];
    let link = PlantLink::start(&profile.transport, kind, &profile.robot.name, &cameras, on_command)?;
    let (hb_tx, hb_rx) = crossbeam_channel::unbounded::<(u64, u64, String)>();
    let _heartbeat = if kind == TransportKind::Zenoh && args.log.is_some() {
        Some(heartbeat_listener(&profile, hb_tx).context("listening to Ganglion's heartbeat")?)
    } else {
        None
    };
    let (mut writers, readers) =
        input_slots(sim.limits.len(), &[(sim.camera_name.clone(), sim.camera_width, sim.camera_height)]);
    let mut publisher = Publisher {
        link,
        readers,
        joint_names: profile.robot.joints.iter().map(|j| j.name.clone()).collect(),
        frame_id: sim.camera_name.clone(),
        joints_msg: JointState::default(),
        image_msg: Image::default(),
        last_pixels: Vec::new(),
        buf: Vec::new(),
        junk: Vec::new(),
        rng: Rng(0x9E37_79B9_7F4A_7C15 ^ args.seed.wrapping_add(1)),
        camera_noise: args.camera_noise,
        joints_published: 0,
        frames_published: 0,
        malformed_published: 0,
        flood_published: 0,
        inputs_sent: 0,
    };

    let total_ns = (args.seconds * 1e9) as u64;
    let (mut received, mut ignored, mut misses, mut steps, mut brakes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let wall_start = Instant::now();
    let mut last_instruction = Stamp::ZERO;
    let mut last_command_at = Instant::now();
    let mut last_any_at = Instant::now();
    // Inputs sent when the first / latest command arrived: in between, the
    // runtime was certainly subscribed, so it must have received them all.
    let (mut sent_at_first, mut sent_at_last) = (None::<u64>, 0u64);
    // Arm time of the first command: fault times count from here.
    let mut first_at: Option<Stamp> = None;
    let mut braking = false;
    let mut edges = vec![[false; 2]; windows.len()];
    let mut next_state_log = Stamp::ZERO;
    let joint_period = sim.joint_period_ns();
    tracing::info!(transport = %args.transport, lockstep = args.lockstep, faults = windows.len(), "sim serve started");

    // Applies one received command (unless partitioned) and logs it.
    let take = |r: Received, arm: &mut ganglion_sim::SimArm, partition: bool, log: &mut Log| -> bool {
        let finite = r.cmd.position.iter().chain(r.cmd.velocity.iter()).all(|x| x.is_finite());
        let applied = !partition && finite;
        if !partition {
            arm.apply_command(&r.cmd);
        }
        log.line(serde_json::json!({"t": "cmd", "rx_mono_ns": r.rx_mono_ns, "rx_wall_ns": r.rx_wall_ns,
            "stamp_ns": r.stamp_ns, "pos": fin(&r.cmd.position), "vel": fin(&r.cmd.velocity), "applied": applied}));
        !partition
    };
    while arm.time().as_nanos() < total_ns {
        let now = arm.time();
        let since = first_at.map(|f| now.saturating_since(f));
        let active = Active::of(&windows, since);
        log_edges(&windows, since, &mut edges, &mut log);
        arm.publish_due(now, &mut writers);
        publisher.flush(&active, &mut log)?;
        if now >= next_state_log {
            next_state_log = now.add_nanos(joint_period);
            let s = arm.joint_state();
            log.line(serde_json::json!({"t": "state", "mono_ns": mono_ns(), "pos": fin(&s.position),
                "vel": fin(&s.velocity), "tip_error_m": arm.tip_error_m()}));
        }
        // Late joiners never saw the first instruction: repeat it.
        if now.saturating_since(last_instruction) >= 500_000_000 && !active.partition {
            publisher.publish_instruction()?;
            last_instruction = now;
        }
        for rx in hb_rx.try_iter() {
            log.line(serde_json::json!({"t": "hb", "rx_mono_ns": rx.0, "stamp_ns": rx.1, "mode": rx.2}));
        }
        for rx in bad_rx.try_iter() {
            log.line(serde_json::json!({"t": "cmd", "rx_mono_ns": rx, "bad": true, "applied": false}));
        }
        if args.lockstep {
            match cmd_rx.recv_timeout(Duration::from_millis(args.timeout_ms)) {
                Ok(r) => {
                    if take(r, &mut arm, active.partition, &mut log) {
                        received += 1;
                    } else {
                        ignored += 1;
                    }
                    first_at.get_or_insert(now);
                    sent_at_first.get_or_insert(publisher.inputs_sent);
                    sent_at_last = publisher.inputs_sent;
                    last_command_at = Instant::now();
                }
                Err(_) if received == 0 => {
                    // The runtime is not up yet: the arm rests (its targets
                    // are its pose), time moves so states keep flowing.
                    if wall_start.elapsed() > Duration::from_secs(30) {
                        anyhow::bail!("no command arrived within 30 s");
                    }
                }
                Err(_) => {
                    if last_command_at.elapsed() > Duration::from_secs(2) {
                        tracing::info!("commands stopped; ending");
                        break;
                    }
                    misses += 1;
                }
            }
            arm.step(period_ns);
        } else {
            for r in cmd_rx.try_iter() {
                last_any_at = Instant::now();
                if take(r, &mut arm, active.partition, &mut log) {
                    received += 1;
                    last_command_at = Instant::now();
                    braking = false;
                } else {
                    ignored += 1;
                }
                first_at.get_or_insert(now);
                sent_at_first.get_or_insert(publisher.inputs_sent);
                sent_at_last = publisher.inputs_sent;
            }
            // The commander is gone for good (killed, finished): end, as
            // lockstep does, once nothing arrived for 2 s (ignored commands
            // count as arriving: a partition is not the end).
            if received > 0 && last_any_at.elapsed() > Duration::from_secs(2) {
                tracing::info!("commands stopped; ending");
                break;
            }
            let silent = last_command_at.elapsed() > Duration::from_millis(args.command_timeout_ms);
            if args.command_timeout_ms > 0 && received > 0 && silent && !braking {
                // The commander is gone: hold where the arm is, zero velocity;
                // the servo decelerates within its effort limit.
                braking = true;
                brakes += 1;
                let s = arm.joint_state();
                let hold = Command {
                    seq: 0,
                    stamp: Stamp::ZERO,
                    mode: Mode::Fallback,
                    causes: CauseSet::EMPTY,
                    position: s.position,
                    velocity: JointVec::zeros(s.position.len()),
                };
                arm.apply_command(&hold);
                log.line(serde_json::json!({"t": "brake", "mono_ns": mono_ns()}));
                tracing::warn!(timeout_ms = args.command_timeout_ms, "no command: braking");
            }
            let target = wall_start + Duration::from_nanos(now.as_nanos() + sim.physics_dt_ns);
            if let Some(d) = target.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            arm.step(sim.physics_dt_ns);
        }
        steps += 1;
    }
    // In lockstep, commands still in flight when the time ran out count too.
    std::thread::sleep(Duration::from_millis(300));
    for r in cmd_rx.try_iter() {
        if take(r, &mut arm, false, &mut log) {
            received += 1;
        }
    }
    for rx in hb_rx.try_iter() {
        log.line(serde_json::json!({"t": "hb", "rx_mono_ns": rx.0, "stamp_ns": rx.1, "mode": rx.2}));
    }
    for rx in bad_rx.try_iter() {
        log.line(serde_json::json!({"t": "cmd", "rx_mono_ns": rx, "bad": true, "applied": false}));
    }

    let report = ServeReport {
        transport: args.transport.clone(),
        mode: if args.lockstep { "lockstep" } else { "realtime" },
        commands_received: received,
        commands_ignored: ignored,
        decode_errors: decode_errors.load(Ordering::Relaxed),
        misses,
        steps,
        joint_states_published: publisher.joints_published,
        frames_published: publisher.frames_published,
        malformed_published: publisher.malformed_published,
        flood_published: publisher.flood_published,
        inputs_sent: publisher.inputs_sent,
        inputs_sent_between_commands: sent_at_last.saturating_sub(sent_at_first.unwrap_or(sent_at_last)),
        brakes,
        tip_error_m: arm.tip_error_m(),
        success: arm.success(),
    };
    log.line(serde_json::json!({"t": "end", "mono_ns": mono_ns(), "report": &report}));
    log.flush();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(if report.success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Values for JSON: non-finite numbers become `null` (JSON has no NaN).
fn fin(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().map(|x| x.is_finite().then_some(*x)).collect()
}

/// Logs each fault window's start and end once (`edges` remembers which).
fn log_edges(windows: &[FaultWindow], since: Option<u64>, edges: &mut [[bool; 2]], log: &mut Log) {
    let Some(t) = since else { return };
    for (w, done) in windows.iter().zip(edges.iter_mut()) {
        for (edge, at) in [(0, w.start_ns), (1, w.end_ns)] {
            if t >= at && !done[edge] {
                done[edge] = true;
                log.line(serde_json::json!({"t": "fault", "kind": w.kind.name(),
                    "edge": if edge == 1 { "end" } else { "start" }, "mono_ns": mono_ns()}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fault_specs_and_names_bad_ones() {
        let w = parse_fault("black-frame@2:1.5").unwrap();
        assert_eq!(w, FaultWindow { kind: PlantFault::BlackFrame, start_ns: 2_000_000_000, end_ns: 3_500_000_000 });
        assert_eq!(parse_fault("partition@0.5").unwrap().end_ns, u64::MAX);
        for (kind, name) in PlantFault::ALL {
            assert_eq!(parse_fault(&format!("{name}@1")).unwrap().kind, kind);
            assert_eq!(kind.name(), name);
        }
        for bad in ["black-frame", "bogus@1", "flood@x", "flood@-1", "flood@1:-2"] {
            let e = parse_fault(bad).unwrap_err().to_string();
            assert!(e.contains("--fault") && e.contains(bad.split('@').next().unwrap_or(bad)), "{bad}: {e}");
        }
    }

    #[test]
    fn active_faults_follow_their_windows() {
        let w = [parse_fault("flood@1:1").unwrap(), parse_fault("stamp-backward@1.5").unwrap()];
        assert!(!Active::of(&w, None).flood, "nothing before the first command");
        assert!(!Active::of(&w, Some(999_999_999)).flood);
        let a = Active::of(&w, Some(1_600_000_000));
        assert!(a.flood && a.stamp_offset_ns == -500_000_000);
        let a = Active::of(&w, Some(2_000_000_000));
        assert!(!a.flood && a.stamp_offset_ns == -500_000_000, "end is exclusive; open window stays");
    }
}
