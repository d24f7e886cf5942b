//! An emulated bus of STS3215 servos on a pseudo-terminal.
//!
//! [`Emulator::start`] opens a pty pair and serves its master side on a
//! thread; drivers (ours, or the vendor's Python SDK) open
//! [`Emulator::path`] as if it were the USB adapter of a real bus. Each
//! servo has the STS3215 register map (EEPROM 0..=39, RAM 40..=70, factory
//! 80..=86, the defaults below) and answers protocol 0 as the real one does:
//!
//! - PING, READ, WRITE, REG_WRITE/ACTION, SYNC_READ (0x82), SYNC_WRITE
//!   (0x83); broadcast PING answered by every servo in id order; broadcast
//!   WRITE/SYNC_WRITE never answered; `Response_Status_Level` 0 answers
//!   only PING and READ;
//! - status packets carry the servo's alarm bits; an alarm listed in
//!   `Unloading_Condition` switches torque off and keeps it off until the
//!   alarm is cleared;
//! - each answer waits `Return_Delay_Time` × 2 µs (and, when
//!   [`EmulatorConfig::pace_baud`] is set, the wire time of the bytes);
//! - `Present_Position = actual − Homing_Offset` (sign-magnitude, bit 11),
//!   wrapped to 0..4095; `Goal_Position` is clamped to
//!   `Min/Max_Position_Limit`; with torque on the servo moves toward its goal
//!   at `Goal_Velocity` ticks/s (0: [`EmulatorConfig::max_speed`]), with
//!   torque off `Goal_Position` follows the present position (so enabling
//!   torque holds the arm where it is) and the joint can be moved by hand
//!   ([`Emulator::move_by_hand`]); acceleration is not modelled;
//! - `Torque_Limit` (RAM, 0.1 %, power-up value `Max_Torque_Limit`) scales
//!   the servo's strength: its top speed toward the goal is scaled by
//!   `Torque_Limit` / 1000 (a weaker motor moves the arm's mass slower;
//!   with acceleration unmodelled the top speed stands for it) and
//!   `Present_Load` never exceeds it;
//! - writes to read-only bytes (0..=4, 56..=70) are ignored; EEPROM writes
//!   take effect at once and are kept over [`Emulator::power_cycle`] only
//!   when `Lock` is 0 (power-up value 1);
//! - instruction packets with a bad checksum are ignored (counted), as the
//!   servos do; a partial packet followed by 3 ms of silence is dropped, so
//!   a truncated or garbage header cannot swallow the packets after it.
//!
//! Faults ([`Fault`]) make a servo fall silent, corrupt or prefix answers
//! with noise, or raise alarm bits.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

use crate::protocol::{self, instruction, next_frame, Frame, PacketWriter, StatusBits, BROADCAST_ID};
use crate::pty::open_pty;
use crate::sts::{self, Register};

/// How the emulated bus behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorConfig {
    /// The servos' ids.
    pub ids: Vec<u8>,
    /// Speed toward the goal when `Goal_Velocity` is 0, ticks/s (an STS3215
    /// at 7.4 V: about 0.222 s per 60°, ~3000 ticks/s).
    pub max_speed: f64,
    /// Encoder position of every servo at start, ticks.
    pub initial_position: i32,
    /// When set, each answer also waits the wire time of the request and
    /// of itself at this baud rate (a pty has no wire).
    pub pace_baud: Option<u32>,
    /// `Present_Voltage`, 0.1 V.
    pub voltage_dv: u8,
    /// `Present_Temperature`, °C.
    pub temperature_c: u8,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            ids: vec![1, 2, 3, 4, 5, 6],
            max_speed: 3000.0,
            initial_position: 2048,
            pace_baud: None,
            voltage_dv: 120,
            temperature_c: 32,
        }
    }
}

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Servo `id` stops answering (and ignores every instruction), as if
    /// its cable came off.
    Silent {
        /// The servo.
        id: u8,
    },
    /// The next `count` status packets have one data byte flipped (bad
    /// checksum).
    CorruptAnswers {
        /// How many.
        count: u32,
    },
    /// The next `count` status packets are preceded by noise bytes
    /// (`00 FF 13 FF`) the reader must skip.
    NoiseBeforeAnswers {
        /// How many.
        count: u32,
    },
    /// Servo `id` raises alarm bits (overload, overheat…), in its status
    /// packets and `Status` register.
    Alarm {
        /// The servo.
        id: u8,
        /// The bits.
        bits: StatusBits,
    },
}

/// What the emulator has seen. Every field only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmulatorStats {
    /// Instruction packets with a good checksum.
    pub packets: u64,
    /// Instruction packets dropped for a bad checksum.
    pub bad_checksums: u64,
    /// Bytes skipped while looking for a header.
    pub junk_bytes: u64,
    /// Status packets sent.
    pub answers: u64,
    /// SYNC_READ packets handled.
    pub sync_reads: u64,
    /// SYNC_WRITE packets handled.
    pub sync_writes: u64,
    /// WRITE packets handled (any id).
    pub writes: u64,
    /// Answers dropped because nobody read the pty.
    pub answers_dropped: u64,
}

const REGS: usize = 128;
const EEPROM: usize = sts::EEPROM_END as usize;

struct Servo {
    regs: [u8; REGS],
    saved: [u8; EEPROM],
    /// Absolute encoder position, ticks.
    actual: f64,
    silent: bool,
    alarm: u8,
    registered: Option<(u8, Vec<u8>)>,
}

struct Bus {
    cfg: EmulatorConfig,
    servos: Vec<Servo>,
    last: Instant,
    wire: Wire,
}

/// A running emulated bus; stops its thread when dropped.
pub struct Emulator {
    bus: Arc<Mutex<Bus>>,
    runner: Runner,
}

/// What the serving thread shares with the protocol: counters, pending
/// faults on the wire, pacing.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    pub(crate) stats: EmulatorStats,
    pub(crate) corrupt: u32,
    pub(crate) noise: u32,
    pub(crate) pace_baud: Option<u32>,
}

/// A bus of emulated servos speaking one protocol.
pub(crate) trait Served: Send + 'static {
    /// Bytes sent before an answer for [`Fault::NoiseBeforeAnswers`]: junk
    /// that looks like the start of a header.
    const NOISE: &'static [u8];
    /// Which byte of an answer, counted from its end, a corruption flips.
    const CORRUPT_FROM_END: usize;
    /// The protocol's framing.
    fn frame(buf: &[u8]) -> Frame;
    /// Handles one instruction packet (`params` as on the wire); pushes the
    /// answers, each with its return delay in 2 µs units.
    fn handle(&mut self, id: u8, code: u8, params: &[u8], answers: &mut Vec<(u8, Vec<u8>)>);
    /// The wire state.
    fn wire(&mut self) -> &mut Wire;
}

/// The serving thread of an emulator: stops and joins it when dropped.
pub(crate) struct Runner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Runner {
    pub(crate) fn start<B: Served>(bus: Arc<Mutex<B>>, baud: u32) -> io::Result<Runner> {
        let pty = open_pty(baud)?;
        let flags = fcntl_getfl(&pty.master)?;
        fcntl_setfl(&pty.master, flags | OFlags::NONBLOCK)?;
        let stop = Arc::new(AtomicBool::new(false));
        let path = pty.slave_path.clone();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("servo-emulator".into()).spawn(move || serve(pty, bus, stop))?
        };
        Ok(Runner { stop, thread: Some(thread), path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn defaults(id: u8) -> [u8; REGS] {
    let mut r = [0u8; REGS];
    let mut set = |reg: Register, v: u32| {
        let b = v.to_le_bytes();
        r[reg.addr as usize..reg.addr as usize + reg.len as usize].copy_from_slice(&b[..reg.len as usize]);
    };
    set(sts::FIRMWARE_MAJOR, 3);
    set(sts::FIRMWARE_MINOR, 10);
    set(sts::MODEL_NUMBER, u32::from(sts::STS3215_MODEL));
    set(sts::ID, id.into());
    set(sts::BAUD_RATE, 0);
    set(sts::RETURN_DELAY_TIME, 0);
    set(sts::RESPONSE_STATUS_LEVEL, 1);
    set(sts::MIN_POSITION_LIMIT, 0);
    set(sts::MAX_POSITION_LIMIT, 4095);
    set(sts::MAX_TEMPERATURE_LIMIT, 70);
    set(sts::MAX_VOLTAGE_LIMIT, 140);
    set(sts::MIN_VOLTAGE_LIMIT, 40);
    set(sts::MAX_TORQUE_LIMIT, 1000);
    set(sts::PHASE, 0x0C);
    set(sts::UNLOADING_CONDITION, 44); // overheat, overcurrent, overload
    set(sts::LED_ALARM_CONDITION, 47);
    set(sts::P_COEFFICIENT, 32);
    set(sts::D_COEFFICIENT, 32);
    set(sts::I_COEFFICIENT, 0);
    set(sts::PROTECTION_CURRENT, 500);
    set(sts::OVERLOAD_TORQUE, 80);
    set(sts::TORQUE_LIMIT, 1000);
    set(sts::LOCK, 1);
    set(sts::MAXIMUM_ACCELERATION, 0);
    r
}

fn get(regs: &[u8; REGS], r: Register) -> i32 {
    let b = &regs[r.addr as usize..r.addr as usize + r.len as usize];
    let raw = b.iter().rev().fold(0u32, |a, x| (a << 8) | u32::from(*x));
    sts::decode(r, raw)
}

fn put(regs: &mut [u8; REGS], r: Register, value: i32) {
    let raw = sts::encode(r, value).unwrap_or(0);
    let b = raw.to_le_bytes();
    regs[r.addr as usize..r.addr as usize + r.len as usize].copy_from_slice(&b[..r.len as usize]);
}

fn read_only(addr: usize) -> bool {
    addr <= 4 || (56..=70).contains(&addr)
}

impl Servo {
    fn new(id: u8, position: i32) -> Servo {
        let regs = defaults(id);
        let mut saved = [0u8; EEPROM];
        saved.copy_from_slice(&regs[..EEPROM]);
        Servo { regs, saved, actual: f64::from(position), silent: false, alarm: 0, registered: None }
    }

    fn id(&self) -> u8 {
        self.regs[sts::ID.addr as usize]
    }

    fn torque(&self) -> bool {
        self.regs[sts::TORQUE_ENABLE.addr as usize] != 0
    }

    fn unloaded(&self) -> bool {
        self.alarm & self.regs[sts::UNLOADING_CONDITION.addr as usize] != 0
    }

    fn present(&self) -> i32 {
        let offset = get(&self.regs, sts::HOMING_OFFSET);
        (self.actual.round() as i64 - i64::from(offset)).rem_euclid(i64::from(sts::RESOLUTION)) as i32
    }

    fn goal(&self) -> i32 {
        let g = get(&self.regs, sts::GOAL_POSITION);
        let (lo, hi) = (get(&self.regs, sts::MIN_POSITION_LIMIT), get(&self.regs, sts::MAX_POSITION_LIMIT));
        if lo < hi {
            g.clamp(lo, hi)
        } else {
            g
        }
    }

    /// `Torque_Limit` as a fraction of full torque, 0..=1.
    fn strength(&self) -> f64 {
        f64::from(get(&self.regs, sts::TORQUE_LIMIT).clamp(0, 1000)) / 1000.0
    }

    /// Moves for `dt` seconds and refreshes the present-state registers.
    fn advance(&mut self, dt: f64, max_speed: f64, voltage: u8, temperature: u8) {
        if self.unloaded() {
            self.regs[sts::TORQUE_ENABLE.addr as usize] = 0;
        }
        let mut velocity = 0.0;
        if self.torque() {
            let delta = f64::from(self.goal() - self.present());
            let set = f64::from(get(&self.regs, sts::GOAL_VELOCITY).unsigned_abs());
            let top = if set > 0.0 { set.min(max_speed) } else { max_speed };
            let speed = top * self.strength();
            let step = delta.clamp(-speed * dt, speed * dt);
            self.actual += step;
            if dt > 0.0 {
                velocity = step / dt;
            }
        } else {
            let p = self.present();
            put(&mut self.regs, sts::GOAL_POSITION, p);
        }
        let p = self.present();
        put(&mut self.regs, sts::PRESENT_POSITION, p);
        put(&mut self.regs, sts::PRESENT_VELOCITY, velocity.round() as i32);
        let load = if self.torque() { (velocity / max_speed.max(1.0) * 300.0).round() as i32 } else { 0 };
        let most = get(&self.regs, sts::TORQUE_LIMIT).clamp(0, 1000);
        put(&mut self.regs, sts::PRESENT_LOAD, load.clamp(-most, most));
        self.regs[sts::PRESENT_VOLTAGE.addr as usize] = voltage;
        self.regs[sts::PRESENT_TEMPERATURE.addr as usize] = temperature;
        self.regs[sts::STATUS.addr as usize] = self.alarm;
        self.regs[sts::MOVING.addr as usize] = u8::from(velocity != 0.0);
    }

    /// Applies a write of `data` at `addr`.
    fn write(&mut self, addr: usize, data: &[u8]) {
        for (k, &b) in data.iter().enumerate() {
            let a = addr + k;
            if a >= REGS || read_only(a) {
                continue;
            }
            if a == sts::TORQUE_ENABLE.addr as usize && b != 0 && self.unloaded() {
                continue; // an unloading alarm keeps torque off
            }
            self.regs[a] = b;
            if a < EEPROM && self.regs[sts::LOCK.addr as usize] == 0 {
                self.saved[a] = b;
            }
        }
    }

    fn read(&self, addr: usize, len: usize, out: &mut Vec<u8>) {
        for a in addr..addr + len {
            out.push(if a < REGS { self.regs[a] } else { 0 });
        }
    }
}

impl Served for Bus {
    const NOISE: &'static [u8] = &[0x00, 0xFF, 0x13, 0xFF];
    const CORRUPT_FROM_END: usize = 2;

    fn frame(buf: &[u8]) -> Frame {
        next_frame(buf)
    }

    fn handle(&mut self, id: u8, code: u8, params: &[u8], answers: &mut Vec<(u8, Vec<u8>)>) {
        Bus::handle(self, id, code, params, answers);
    }

    fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }
}

impl Bus {
    fn update(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let (speed, v, t) = (self.cfg.max_speed, self.cfg.voltage_dv, self.cfg.temperature_c);
        for s in &mut self.servos {
            s.advance(dt, speed, v, t);
        }
    }

    fn servo(&mut self, id: u8) -> Option<&mut Servo> {
        self.servos.iter_mut().find(|s| s.id() == id)
    }

    /// Handles one instruction packet; the answers to send, in order.
    fn handle(&mut self, id: u8, instr: u8, params: &[u8], answers: &mut Vec<(u8, Vec<u8>)>) {
        self.update();
        self.wire.stats.packets += 1;
        let answer = |s: &Servo, id: u8, data: &[u8]| -> (u8, Vec<u8>) {
            let mut buf = Vec::with_capacity(protocol::status_len(data.len()));
            let mut w = PacketWriter::new(&mut buf, id, s.alarm & 0x7F);
            w.push(data);
            let _ = w.finish();
            (s.regs[sts::RETURN_DELAY_TIME.addr as usize], buf)
        };
        let ack = |s: &Servo| s.regs[sts::RESPONSE_STATUS_LEVEL.addr as usize] != 0;
        match instr {
            instruction::PING => {
                for s in &self.servos {
                    if !s.silent && (id == BROADCAST_ID || s.id() == id) {
                        answers.push(answer(s, s.id(), &[]));
                    }
                }
            }
            instruction::READ if params.len() == 2 => {
                if let Some(s) = self.servos.iter().find(|s| s.id() == id && !s.silent) {
                    let mut data = Vec::new();
                    s.read(params[0] as usize, params[1] as usize, &mut data);
                    answers.push(answer(s, id, &data));
                }
            }
            instruction::WRITE | instruction::REG_WRITE if !params.is_empty() => {
                self.wire.stats.writes += u64::from(instr == instruction::WRITE);
                for s in &mut self.servos {
                    if s.silent || !(id == BROADCAST_ID || s.id() == id) {
                        continue;
                    }
                    if instr == instruction::WRITE {
                        s.write(params[0] as usize, &params[1..]);
                    } else {
                        s.registered = Some((params[0], params[1..].to_vec()));
                    }
                    if id != BROADCAST_ID && ack(s) {
                        answers.push(answer(s, id, &[]));
                    }
                }
            }
            instruction::ACTION => {
                for s in &mut self.servos {
                    if s.silent || !(id == BROADCAST_ID || s.id() == id) {
                        continue;
                    }
                    if let Some((addr, data)) = s.registered.take() {
                        s.write(addr as usize, &data);
                    }
                    if id != BROADCAST_ID && ack(s) {
                        answers.push(answer(s, id, &[]));
                    }
                }
            }
            instruction::SYNC_READ if params.len() >= 2 && id == BROADCAST_ID => {
                self.wire.stats.sync_reads += 1;
                let (addr, len) = (params[0] as usize, params[1] as usize);
                for &want in &params[2..] {
                    if let Some(s) = self.servos.iter().find(|s| s.id() == want && !s.silent) {
                        let mut data = Vec::new();
                        s.read(addr, len, &mut data);
                        answers.push(answer(s, want, &data));
                    }
                }
            }
            instruction::SYNC_WRITE if params.len() >= 2 && id == BROADCAST_ID => {
                self.wire.stats.sync_writes += 1;
                let (addr, len) = (params[0] as usize, params[1] as usize);
                for chunk in params[2..].chunks(len + 1) {
                    if chunk.len() != len + 1 {
                        break; // truncated list: the rest is ignored
                    }
                    if let Some(s) = self.servo(chunk[0]) {
                        if !s.silent {
                            s.write(addr, &chunk[1..]);
                        }
                    }
                }
            }
            _ => {} // unknown or malformed: ignored, as the servos do
        }
        // Writes take effect before the next instant's motion.
        self.update();
    }
}

impl Emulator {
    /// Opens a pty pair and starts serving the bus on its master side.
    pub fn start(cfg: EmulatorConfig) -> io::Result<Emulator> {
        let baud = cfg.pace_baud.unwrap_or(1_000_000);
        let servos = cfg.ids.iter().map(|&id| Servo::new(id, cfg.initial_position)).collect();
        let wire = Wire { pace_baud: cfg.pace_baud, ..Wire::default() };
        let mut bus = Bus { cfg, servos, last: Instant::now(), wire };
        bus.update();
        let bus = Arc::new(Mutex::new(bus));
        let runner = Runner::start(bus.clone(), baud)?;
        Ok(Emulator { bus, runner })
    }

    /// The pty a driver opens (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        self.runner.path()
    }

    fn lock(&self) -> MutexGuard<'_, Bus> {
        // A panic on the serving thread poisons nothing worth refusing.
        self.bus.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register `r` of servo `id` now (decoded), `None` for an unknown id.
    pub fn register(&self, id: u8, r: Register) -> Option<i32> {
        let mut bus = self.lock();
        bus.update();
        bus.servo(id).map(|s| get(&s.regs, r))
    }

    /// Sets register `r` of servo `id` as a write would (and saves EEPROM
    /// registers, as a configuration tool with `Lock` 0 would).
    pub fn set_register(&self, id: u8, r: Register, value: i32) {
        let mut bus = self.lock();
        bus.update();
        if let Some(s) = bus.servo(id) {
            put(&mut s.regs, r, value);
            let a = r.addr as usize;
            for k in a..(a + r.len as usize).min(EEPROM) {
                s.saved[k] = s.regs[k];
            }
        }
        bus.update();
    }

    /// Moves servo `id`'s encoder so its `Present_Position` reads `present`
    /// (a hand moving a joint; a torque-on servo then drives back to its goal).
    pub fn move_by_hand(&self, id: u8, present: i32) {
        let mut bus = self.lock();
        bus.update();
        if let Some(s) = bus.servo(id) {
            s.actual += f64::from(present - s.present());
            if !s.torque() {
                put(&mut s.regs, sts::GOAL_POSITION, present);
            }
        }
        bus.update();
    }

    /// Power-cycles servo `id`: RAM to its power-up values (`Torque_Limit`
    /// := `Max_Torque_Limit`), EEPROM to what was saved (written with
    /// `Lock` 0), alarms cleared.
    pub fn power_cycle(&self, id: u8) {
        let mut bus = self.lock();
        if let Some(s) = bus.servo(id) {
            let saved = s.saved;
            let mut regs = defaults(saved[sts::ID.addr as usize]);
            regs[..EEPROM].copy_from_slice(&saved);
            let max_torque = get(&regs, sts::MAX_TORQUE_LIMIT);
            put(&mut regs, sts::TORQUE_LIMIT, max_torque);
            s.regs = regs;
            s.alarm = 0;
            s.registered = None;
        }
        bus.update();
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) {
        let mut bus = self.lock();
        bus.update();
        match fault {
            Fault::Silent { id } => {
                if let Some(s) = bus.servo(id) {
                    s.silent = true;
                }
            }
            Fault::CorruptAnswers { count } => bus.wire.corrupt += count,
            Fault::NoiseBeforeAnswers { count } => bus.wire.noise += count,
            Fault::Alarm { id, bits } => {
                if let Some(s) = bus.servo(id) {
                    s.alarm |= bits.0;
                }
            }
        }
        bus.update();
    }

    /// Clears every fault: servos answer again, no pending corruption, no alarm.
    pub fn clear_faults(&self) {
        let mut bus = self.lock();
        for s in &mut bus.servos {
            s.silent = false;
            s.alarm = 0;
        }
        bus.wire.corrupt = 0;
        bus.wire.noise = 0;
        bus.update();
    }

    /// What the emulator has seen so far.
    pub fn stats(&self) -> EmulatorStats {
        self.lock().wire.stats
    }
}

/// A gap after which a partial packet is dropped (assumed; a whole packet
/// arrives in one write on a pty, and in well under this on a 1 Mbit/s wire).
const RECEIVE_GAP: Duration = Duration::from_millis(3);

fn serve<B: Served>(pty: crate::pty::Pty, bus: Arc<Mutex<B>>, stop: Arc<AtomicBool>) {
    let mut master = pty.master;
    let mut buf = vec![0u8; 4096];
    let mut fill = 0;
    let mut answers: Vec<(u8, Vec<u8>)> = Vec::new();
    let tick = Timespec { tv_sec: 0, tv_nsec: 20_000_000 };
    let mut last_byte = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        {
            let mut fds = [PollFd::new(&master, PollFlags::IN)];
            match poll(&mut fds, Some(&tick)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        // Bytes left over from before a silent gap are a dead packet (the
        // servos reset their receiver the same way): drop them.
        if fill == buf.len() || (fill > 0 && last_byte.elapsed() > RECEIVE_GAP) {
            bus.lock().unwrap_or_else(|p| p.into_inner()).wire().stats.junk_bytes += fill as u64;
            fill = 0;
        }
        match master.read(&mut buf[fill..]) {
            Ok(n) => {
                fill += n;
                last_byte = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        }
        let mut pos = 0;
        loop {
            let frame = B::frame(&buf[pos..fill]);
            let mut b = bus.lock().unwrap_or_else(|p| p.into_inner());
            match frame {
                Frame::Incomplete { skip } => {
                    b.wire().stats.junk_bytes += skip as u64;
                    pos += skip;
                    break;
                }
                Frame::BadChecksum { skip } => {
                    b.wire().stats.junk_bytes += skip as u64;
                    b.wire().stats.bad_checksums += 1;
                    pos += skip + 2;
                }
                Frame::Packet { skip, id, code, params, end } => {
                    b.wire().stats.junk_bytes += skip as u64;
                    let request_len = end - skip;
                    answers.clear();
                    let params = &buf[pos + params.start..pos + params.end];
                    b.handle(id, code, params, &mut answers);
                    let pace = b.wire().pace_baud;
                    let mut out: Vec<(Duration, Vec<u8>)> = Vec::with_capacity(answers.len());
                    for (k, (delay, packet)) in answers.drain(..).enumerate() {
                        let mut packet = packet;
                        let wire = b.wire();
                        if wire.corrupt > 0 {
                            wire.corrupt -= 1;
                            let at = packet.len().saturating_sub(B::CORRUPT_FROM_END).max(4);
                            if let Some(x) = packet.get_mut(at) {
                                *x ^= 0x55;
                            }
                        }
                        if wire.noise > 0 {
                            wire.noise -= 1;
                            packet.splice(0..0, B::NOISE.iter().copied());
                        }
                        let mut wait = Duration::from_micros(2 * u64::from(delay));
                        if let Some(baud) = pace {
                            let bytes = packet.len() + if k == 0 { request_len } else { 0 };
                            wait += Duration::from_secs_f64(protocol::wire_seconds(bytes, baud));
                        }
                        out.push((wait, packet));
                    }
                    drop(b);
                    for (wait, packet) in out {
                        if !wait.is_zero() {
                            std::thread::sleep(wait);
                        }
                        let sent = master.write_all(&packet);
                        let mut b = bus.lock().unwrap_or_else(|p| p.into_inner());
                        match sent {
                            Ok(()) => b.wire().stats.answers += 1,
                            Err(_) => b.wire().stats.answers_dropped += 1,
                        }
                    }
                    pos += end;
                }
            }
        }
        buf.copy_within(pos..fill, 0);
        fill -= pos;
        if fill > 0 {
            // The gap is silence while listening, not time spent answering.
            last_byte = Instant::now();
        }
    }
    drop(master);
}

/// Writes what a calibration file says into the servos' registers
/// (`Homing_Offset`, `Min/Max_Position_Limit`), as `lerobot-calibrate`
/// leaves a calibrated arm.
pub fn load_calibration(emulator: &Emulator, file: &crate::CalibrationFile) {
    for (_, c) in &file.motors {
        emulator.set_register(c.id, sts::HOMING_OFFSET, c.homing_offset);
        emulator.set_register(c.id, sts::MIN_POSITION_LIMIT, c.range_min);
        emulator.set_register(c.id, sts::MAX_POSITION_LIMIT, c.range_max);
    }
}
