//! The plant on the wire (`ganglion sim serve`): the simulated arm as an
//! external process publishing joint states, camera frames and its
//! instruction over the profile's transport, as a robot would, and
//! applying the commands it receives.
//!
//! Two pacings ([`super::Pacing`]):
//!
//! - real time: physics advances with the clock; commands are applied as
//!   they arrive; with `command_timeout_ms` the arm brakes (holds its
//!   measured position, zero velocity) when no command arrived for that
//!   long, as a robot's own controller does when its commander dies; it
//!   ends 2 s after the last command (or at `seconds`);
//! - lockstep: the arm advances one control period per received command,
//!   so its trajectory depends only on the commands (deterministic for
//!   CI); when no command arrives within `timeout_ms` it counts a miss and
//!   advances holding the previous targets.
//!
//! Faults (the grammar of [`crate::faults`], [`Consumer::SimServe`]): times
//! count from the first command, i.e. once the control loop is live; wire
//! kinds change what the publisher puts on the wire, arm kinds without a
//! wire form (joint-delay, camera-delay, joint-noise, joint-offset) are
//! scheduled on the arm then, and a capture lag reaches the wire as an
//! older header stamp.
//!
//! The plant log (`log`, JSON lines, one object per line, `t` names the
//! record) is what the HIL rig checks: `start` (monotonic and wall clock
//! at start), `cmd` (every command payload: `rx_mono_ns` on
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

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion_codec::msg::{Header, Image, JointState, Message, StringMsg, Time};
use ganglion_codec::{decode_command, DecodeLimits};
use ganglion_core::{
    input_slots, CauseSet, Clock, Command, InputReaders, InputWriters, JointVec, Mode, MonotonicClock, Stamp,
};
use ganglion_sim::SimArm;

use super::{Flow, Pacing, Plant, PlantPort};
use crate::faults::{Consumer, FaultAt, Kind, Layer};
use crate::profile::Profile;
use crate::transport::{PlantLink, TransportKind};

/// What `ganglion sim serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Zenoh or ROS 2 (overrides the profile's `transport.kind`).
    pub transport: TransportKind,
    /// Robot profile with `[sim]` and `[transport]` sections.
    pub profile: PathBuf,
    /// Advance one control period per received command.
    pub lockstep: bool,
    /// Simulated seconds to run.
    pub seconds: f64,
    /// Lockstep: how long to wait for a command before counting a miss.
    pub timeout: Duration,
    /// Real time: brake when no command arrived for this long, ms; 0 = never.
    pub command_timeout_ms: u64,
    /// Fault specs (`KIND@SECONDS[:ARG]`), seconds after the first command.
    pub faults: Vec<String>,
    /// Flip the low bit of a few pixels every frame, so a frozen frame is
    /// detectable by content.
    pub camera_noise: bool,
    /// The plant log (JSON lines).
    pub log: Option<PathBuf>,
    /// Scene seed.
    pub seed: u64,
    /// Episode of the seed's scene stream.
    pub episode: u64,
}

impl ServeOptions {
    /// The plant of `profile` over zenoh in real time (not lockstep) for
    /// up to 60 simulated seconds: camera noise on, no faults, no log,
    /// seed and episode 0. What in-process tests start from.
    pub fn zenoh(profile: PathBuf) -> ServeOptions {
        ServeOptions {
            transport: TransportKind::Zenoh,
            profile,
            lockstep: false,
            seconds: 60.0,
            timeout: Duration::from_secs(2),
            command_timeout_ms: 0,
            faults: Vec::new(),
            camera_noise: true,
            log: None,
            seed: 0,
            episode: 0,
        }
    }
}

/// What `ganglion sim serve` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServeReport {
    /// `zenoh` or `ros2`.
    pub transport: String,
    /// `realtime` or `lockstep`.
    pub mode: &'static str,
    /// Commands applied.
    pub commands_received: u64,
    /// Commands ignored (partition).
    pub commands_ignored: u64,
    /// Command payloads that failed to decode.
    pub decode_errors: u64,
    /// Lockstep: periods without a command.
    pub misses: u64,
    /// Plant steps.
    pub steps: u64,
    /// Joint states put on the wire.
    pub joint_states_published: u64,
    /// Frames put on the wire.
    pub frames_published: u64,
    /// Malformed payloads put on the wire.
    pub malformed_published: u64,
    /// Extra copies put on the wire by `flood`.
    pub flood_published: u64,
    /// Every joint-state and image payload sent.
    pub inputs_sent: u64,
    /// Those sent between the first and the last command received, when the
    /// runtime was certainly listening.
    pub inputs_sent_between_commands: u64,
    /// Times the command timeout braked the arm.
    pub brakes: u64,
    /// Tip-to-target distance at the end (m).
    pub tip_error_m: f64,
    /// Tip within the success radius at the end.
    pub success: bool,
}

/// Which wire faults act on the current publication.
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
    fn of(faults: &[FaultAt], since_first_ns: Option<u64>) -> Active {
        let mut a = Active::default();
        let Some(t) = since_first_ns else { return a };
        for f in faults.iter().filter(|f| f.kind.acts_on(Layer::Wire) && f.covers(t)) {
            match f.kind {
                Kind::CameraDropout => a.camera_dropout = true,
                Kind::FrozenFrame => a.frozen = true,
                Kind::BlackFrame => a.black = true,
                Kind::JointDropout => a.joint_dropout = true,
                Kind::NanJoint => a.nan = true,
                Kind::InfJoint => a.inf = true,
                Kind::StampForward => a.stamp_offset_ns = 1_000_000_000,
                Kind::StampBackward => a.stamp_offset_ns = -500_000_000,
                Kind::Flood => a.flood = true,
                Kind::Malformed => a.malformed = true,
                Kind::Partition => a.partition = true,
                // Arm-only kinds act through the arm (scheduled at the first
                // command); policy kinds are refused by the parser.
                _ => {}
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
    /// Command payloads that failed to decode (the transport callback counts).
    decode_errors: Arc<AtomicU64>,
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
        // The arm's capture lag (joint-delay, camera-delay: capture behind
        // receive) reaches the wire as an older header stamp.
        let aged = |capture: Stamp, receive: Stamp| (wall - receive.saturating_since(capture) as i64).max(0) as u64;
        if self.readers.joints.update() && !a.partition && !a.joint_dropout {
            let latest = self.readers.joints.latest();
            let stamp = Time::from_nanos(aged(latest.capture, latest.receive));
            let s = &latest.value;
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
            let latest = self.readers.cameras[0].latest();
            let stamp_ns = aged(latest.capture, latest.receive);
            let f = &latest.value;
            let m = &mut self.image_msg;
            m.header = Header { stamp: Time::from_nanos(stamp_ns), frame_id: self.frame_id.clone() };
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
            log.line(serde_json::json!({"t": "cam", "mono_ns": mono_ns(), "stamp_ns": stamp_ns}));
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
) -> anyhow::Result<ganglion_zenoh::Subscription> {
    let mut z = profile.transport.zenoh_config(&profile.robot.name, None)?;
    if z.connect.is_empty() {
        z.connect = std::mem::take(&mut z.listen);
    } else {
        z.listen.clear();
    }
    let key = ganglion_zenoh::Keys::new(&z.prefix).heartbeat();
    let limits = DecodeLimits::default();
    let subscription = z
        .subscribe(&key, move |bytes| {
            let rx = mono_ns();
            // The heartbeat is a std_msgs/Header: stamp + mode name in frame_id.
            if let Ok(h) = Header::decode(bytes, &limits) {
                let _ = tx.send((rx, h.stamp.as_nanos().unwrap_or(0), h.frame_id));
            }
        })
        .map_err(|e| anyhow::anyhow!("subscribing to the heartbeat: {e}"))?;
    Ok(subscription)
}

/// Plant-side counters of one run.
#[derive(Debug, Default)]
struct Counts {
    received: u64,
    ignored: u64,
    misses: u64,
    steps: u64,
    brakes: u64,
}

/// The plant's end of the transport: publishes what the arm wrote into
/// the local slots (wire faults applied), takes the commands that came in.
pub struct WirePort {
    publisher: Publisher,
    log: Log,
    commands: crossbeam_channel::Receiver<Received>,
    bad: crossbeam_channel::Receiver<u64>,
    heartbeats: crossbeam_channel::Receiver<(u64, u64, String)>,
    faults: Vec<FaultAt>,
    /// Per fault: start and end logged.
    edges: Vec<[bool; 2]>,
    /// Wire faults acting on this step's publication.
    active: Active,
    /// Plant time of the first command: fault times count from here.
    first_at: Option<Stamp>,
    total_ns: u64,
    command_timeout_ms: u64,
    joint_period_ns: u64,
    counts: Counts,
    /// Inputs sent when the first / latest command arrived: in between, the
    /// runtime was certainly subscribed, so it must have received them all.
    sent_at_first: Option<u64>,
    sent_at_last: u64,
    wall_start: Instant,
    last_command_at: Instant,
    last_any_at: Instant,
    braking: bool,
    next_state_log: Stamp,
    last_instruction: Option<Stamp>,
}

impl WirePort {
    /// Applies one received command (unless partitioned) and logs it;
    /// whether it was applied.
    fn take(&mut self, r: Received, arm: &mut SimArm, partition: bool) -> bool {
        let finite = r.cmd.position.iter().chain(r.cmd.velocity.iter()).all(|x| x.is_finite());
        if !partition {
            arm.apply_command(&r.cmd);
        }
        self.log.line(serde_json::json!({"t": "cmd", "rx_mono_ns": r.rx_mono_ns, "rx_wall_ns": r.rx_wall_ns,
            "stamp_ns": r.stamp_ns, "pos": fin(&r.cmd.position), "vel": fin(&r.cmd.velocity),
            "applied": !partition && finite}));
        !partition
    }

    /// Counts a command that came in at `now`; the first one starts the
    /// fault clock and schedules the arm-side faults.
    fn arrived(&mut self, arm: &mut SimArm, now: Stamp, applied: bool) {
        if applied {
            self.counts.received += 1;
        } else {
            self.counts.ignored += 1;
        }
        if self.first_at.is_none() {
            self.first_at = Some(now);
            for f in self.faults.iter().filter(|f| !f.kind.acts_on(Layer::Wire)) {
                f.schedule(arm.faults_mut(), now);
            }
        }
        self.sent_at_first.get_or_insert(self.publisher.inputs_sent);
        self.sent_at_last = self.publisher.inputs_sent;
    }

    /// Logs what the transport threads queued: heartbeats, bad commands.
    fn drain_side_logs(&mut self) {
        for rx in self.heartbeats.try_iter() {
            self.log.line(serde_json::json!({"t": "hb", "rx_mono_ns": rx.0, "stamp_ns": rx.1, "mode": rx.2}));
        }
        for rx in self.bad.try_iter() {
            self.log.line(serde_json::json!({"t": "cmd", "rx_mono_ns": rx, "bad": true, "applied": false}));
        }
    }

    /// Logs each fault's start and end once.
    fn log_edges(&mut self, since: Option<u64>) {
        let Some(t) = since else { return };
        for (f, done) in self.faults.iter().zip(self.edges.iter_mut()) {
            for (edge, at) in [(0, f.start_ns()), (1, f.end_ns())] {
                if t >= at && !done[edge] {
                    done[edge] = true;
                    self.log.line(serde_json::json!({"t": "fault", "kind": f.name(),
                        "edge": if edge == 1 { "end" } else { "start" }, "mono_ns": mono_ns()}));
                }
            }
        }
    }

    /// After the loop: commands still in flight count too; the report.
    fn finish(mut self, arm: &mut SimArm, transport: &str, lockstep: bool) -> ServeReport {
        std::thread::sleep(Duration::from_millis(300));
        for r in self.commands.clone().try_iter() {
            if self.take(r, arm, false) {
                self.counts.received += 1;
            }
        }
        self.drain_side_logs();
        let report = ServeReport {
            transport: transport.to_string(),
            mode: if lockstep { "lockstep" } else { "realtime" },
            commands_received: self.counts.received,
            commands_ignored: self.counts.ignored,
            decode_errors: self.publisher.decode_errors.load(Ordering::Relaxed),
            misses: self.counts.misses,
            steps: self.counts.steps,
            joint_states_published: self.publisher.joints_published,
            frames_published: self.publisher.frames_published,
            malformed_published: self.publisher.malformed_published,
            flood_published: self.publisher.flood_published,
            inputs_sent: self.publisher.inputs_sent,
            inputs_sent_between_commands: self
                .sent_at_last
                .saturating_sub(self.sent_at_first.unwrap_or(self.sent_at_last)),
            brakes: self.counts.brakes,
            tip_error_m: arm.tip_error_m(),
            success: arm.success(),
        };
        self.log.line(serde_json::json!({"t": "end", "mono_ns": mono_ns(), "report": &report}));
        self.log.flush();
        report
    }
}

impl PlantPort for WirePort {
    fn published(&mut self, arm: &mut SimArm, _: &mut InputWriters, now: Stamp) -> anyhow::Result<Flow> {
        if arm.time().as_nanos() >= self.total_ns {
            return Ok(Flow::Stop);
        }
        let since = self.first_at.map(|f| now.saturating_since(f));
        self.active = Active::of(&self.faults, since);
        self.log_edges(since);
        self.publisher.flush(&self.active, &mut self.log)?;
        if now >= self.next_state_log {
            self.next_state_log = now.add_nanos(self.joint_period_ns);
            let s = arm.joint_state();
            self.log.line(serde_json::json!({"t": "state", "mono_ns": mono_ns(), "pos": fin(&s.position),
                "vel": fin(&s.velocity), "tip_error_m": arm.tip_error_m()}));
        }
        // Late joiners never saw the first instruction: repeat it.
        let last = *self.last_instruction.get_or_insert(now);
        if now.saturating_since(last) >= 500_000_000 && !self.active.partition {
            self.publisher.publish_instruction()?;
            self.last_instruction = Some(now);
        }
        self.drain_side_logs();
        Ok(Flow::Continue)
    }

    fn commands(&mut self, arm: &mut SimArm, now: Stamp, wait: Option<Duration>) -> anyhow::Result<Flow> {
        let partition = self.active.partition;
        if let Some(wait) = wait {
            match self.commands.recv_timeout(wait) {
                Ok(r) => {
                    let applied = self.take(r, arm, partition);
                    self.arrived(arm, now, applied);
                    self.last_command_at = Instant::now();
                }
                Err(_) if self.counts.received == 0 => {
                    // The runtime is not up yet: the arm rests (its targets
                    // are its pose), time moves so states keep flowing.
                    anyhow::ensure!(
                        self.wall_start.elapsed() <= Duration::from_secs(30),
                        "no command arrived within 30 s"
                    );
                }
                Err(_) => {
                    if self.last_command_at.elapsed() > Duration::from_secs(2) {
                        tracing::info!("commands stopped; ending");
                        return Ok(Flow::Stop);
                    }
                    self.counts.misses += 1;
                }
            }
            self.counts.steps += 1;
            return Ok(Flow::Continue);
        }
        for r in self.commands.clone().try_iter() {
            self.last_any_at = Instant::now();
            let applied = self.take(r, arm, partition);
            if applied {
                self.last_command_at = Instant::now();
                self.braking = false;
            }
            self.arrived(arm, now, applied);
        }
        // The commander is gone for good (killed, finished): end, as
        // lockstep does, once nothing arrived for 2 s (ignored commands
        // count as arriving: a partition is not the end).
        if self.counts.received > 0 && self.last_any_at.elapsed() > Duration::from_secs(2) {
            tracing::info!("commands stopped; ending");
            return Ok(Flow::Stop);
        }
        let silent = self.last_command_at.elapsed() > Duration::from_millis(self.command_timeout_ms);
        if self.command_timeout_ms > 0 && self.counts.received > 0 && silent && !self.braking {
            // The commander is gone: hold where the arm is, zero velocity;
            // the servo decelerates within its effort limit.
            self.braking = true;
            self.counts.brakes += 1;
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
            self.log.line(serde_json::json!({"t": "brake", "mono_ns": mono_ns()}));
            tracing::warn!(timeout_ms = self.command_timeout_ms, "no command: braking");
        }
        self.counts.steps += 1;
        Ok(Flow::Continue)
    }
}

/// The transport's name in the report.
fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Zenoh => "zenoh",
        TransportKind::Ros2 => "ros2",
        TransportKind::None => "none",
        TransportKind::Servo => "servo",
    }
}

/// Runs the plant on the wire until the commands stop or `seconds` of
/// plant time passed.
pub fn serve(opts: &ServeOptions) -> anyhow::Result<ServeReport> {
    let kind = opts.transport;
    anyhow::ensure!(
        matches!(kind, TransportKind::Zenoh | TransportKind::Ros2),
        "sim serve needs a zenoh or ros2 transport"
    );
    anyhow::ensure!(opts.seconds > 0.0 && opts.seconds.is_finite(), "--seconds must be positive");
    let faults = crate::faults::parse_all(&opts.faults, Consumer::SimServe)?;
    let profile = Profile::load(&opts.profile)?;
    let sim = profile.sim.clone().with_context(|| format!("{}: no [sim] section", opts.profile.display()))?;
    let mut arm = SimArm::new(&sim, opts.seed).context("building the simulated arm")?;
    if opts.episode != 0 {
        arm.reset_episode(opts.episode);
    }
    let period_ns = profile.period_ns();
    let format = profile.transport.command_type;
    let mut log = Log(match &opts.log {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating the plant log {}", p.display()))?,
        )),
        None => None,
    });
    let fault_names: Vec<String> = faults.iter().map(FaultAt::to_string).collect();
    log.line(serde_json::json!({"t": "start", "mono_ns": mono_ns(), "wall_ns": wall_ns(),
        "period_ns": period_ns, "command_timeout_ms": opts.command_timeout_ms, "lockstep": opts.lockstep,
        "faults": fault_names}));

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
    let _heartbeat = if kind == TransportKind::Zenoh && opts.log.is_some() {
        Some(heartbeat_listener(&profile, hb_tx).context("listening to Ganglion's heartbeat")?)
    } else {
        None
    };
    let (writers, readers) =
        input_slots(sim.limits.len(), &[(sim.camera_name.clone(), sim.camera_width, sim.camera_height)]);
    let publisher = Publisher {
        link,
        readers,
        joint_names: profile.robot.joints.iter().map(|j| j.name.clone()).collect(),
        frame_id: sim.camera_name.clone(),
        joints_msg: JointState::default(),
        image_msg: Image::default(),
        last_pixels: Vec::new(),
        buf: Vec::new(),
        junk: Vec::new(),
        rng: Rng(0x9E37_79B9_7F4A_7C15 ^ opts.seed.wrapping_add(1)),
        camera_noise: opts.camera_noise,
        decode_errors,
        joints_published: 0,
        frames_published: 0,
        malformed_published: 0,
        flood_published: 0,
        inputs_sent: 0,
    };
    let now = Instant::now();
    let mut port = WirePort {
        publisher,
        log,
        commands: cmd_rx,
        bad: bad_rx,
        heartbeats: hb_rx,
        edges: vec![[false; 2]; faults.len()],
        faults,
        active: Active::default(),
        first_at: None,
        total_ns: (opts.seconds * 1e9) as u64,
        command_timeout_ms: opts.command_timeout_ms,
        joint_period_ns: sim.joint_period_ns(),
        counts: Counts::default(),
        sent_at_first: None,
        sent_at_last: 0,
        wall_start: now,
        last_command_at: now,
        last_any_at: now,
        braking: false,
        next_state_log: Stamp::ZERO,
        last_instruction: None,
    };
    let pacing = if opts.lockstep {
        Pacing::Lockstep { step_ns: period_ns, wait: opts.timeout }
    } else {
        Pacing::RealTime { step_ns: sim.physics_dt_ns }
    };
    tracing::info!(
        transport = transport_name(kind),
        lockstep = opts.lockstep,
        faults = port.faults.len(),
        "sim serve started"
    );
    let mut plant = Plant::new(arm, writers, pacing);
    plant.run(&mut port, &AtomicBool::new(false))?;
    Ok(port.finish(plant.arm_mut(), transport_name(kind), opts.lockstep))
}

/// Values for JSON: non-finite numbers become `null` (JSON has no NaN).
fn fin(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().map(|x| x.is_finite().then_some(*x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_faults_follow_their_windows() {
        let w = [FaultAt::parse("flood@1:1").unwrap(), FaultAt::parse("stamp-backward@1.5").unwrap()];
        assert!(!Active::of(&w, None).flood, "nothing before the first command");
        assert!(!Active::of(&w, Some(999_999_999)).flood);
        let a = Active::of(&w, Some(1_600_000_000));
        assert!(a.flood && a.stamp_offset_ns == -500_000_000);
        let a = Active::of(&w, Some(2_000_000_000));
        assert!(!a.flood && a.stamp_offset_ns == -500_000_000, "end is exclusive; open window stays");
    }

    #[test]
    fn arm_only_faults_leave_the_wire_alone() {
        let w = [FaultAt::parse("joint-noise@0").unwrap()];
        let a = Active::of(&w, Some(1));
        assert!(!a.nan && !a.flood && !a.partition && a.stamp_offset_ns == 0);
    }
}
