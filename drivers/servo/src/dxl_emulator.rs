//! An emulated bus of Dynamixel X-series servos (protocol 2.0) on a
//! pseudo-terminal, the counterpart of [`crate::emulator`].
//!
//! Each servo has the X-series register map (EEPROM 0..=63, RAM 64..=146,
//! the defaults below) and answers as the real one does:
//!
//! - PING (model number and firmware), READ, WRITE, REG_WRITE/ACTION,
//!   SYNC_READ (0x82), SYNC_WRITE (0x83), BULK_READ (0x92); broadcast PING
//!   answered by every servo in id order; CRC-16 and byte stuffing both ways;
//!   `Status_Return_Level` 0 answers PING only, 1 PING and reads, 2 all;
//! - refusals carry the protocol's error numbers: EEPROM writes with torque
//!   on, writes to read-only or unknown addresses (7, access), a
//!   `Goal_Position` outside `Min/Max_Position_Limit` in position mode (6,
//!   data limit), unknown instructions (2);
//! - hardware errors ([`Fault::Alarm`] bits are `Hardware_Error_Status`
//!   bits) set the alert bit (0x80) of every status packet; those listed in
//!   `Shutdown` switch torque off and refuse it (1, result fail) until
//!   cleared;
//! - `Present_Position = actual + Homing_Offset`, negated by `Drive_Mode`
//!   bit 0, not wrapped (extended position); with torque on the servo moves
//!   toward `Goal_Position` at `Profile_Velocity` (0: the configured
//!   maximum); switching torque on sets `Goal_Position` to the present
//!   position (assumed, so an arm holds where it is); answers wait
//!   `Return_Delay_Time` × 2 µs (factory 250: 500 µs);
//! - `Goal_PWM` (power-up value `PWM_Limit`, factory 885) bounds the
//!   output: the top speed toward the goal is scaled by
//!   min(|`Goal_PWM`|, `PWM_Limit`) / 885 (PWM bounds the motor's voltage,
//!   hence its speed), and so is the current reported; a `Goal_PWM`
//!   beyond ±`PWM_Limit` is refused (6, data limit);
//! - `Bus_Watchdog` (98) as the e-Manual describes it: with a value of
//!   1..=127 and torque on, a servo that receives no instruction packet
//!   (addressed to it or broadcast) for value × 20 ms stops, its
//!   `Bus_Watchdog` reads -1 and goal writes (`Goal_PWM`, `Goal_Current`,
//!   `Goal_Velocity`, `Goal_Position`) are refused with error 4 (data
//!   range) until 0 is written. "Stops" is modelled as holding the position
//!   reached at the expiry with torque on (`Goal_Position` := present; the
//!   manual does not say more); the motion up to the expiry instant is
//!   kept, none after it.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::emulator::{EmulatorStats, Fault, Runner, Served, Wire};
use crate::protocol::Frame;
use crate::protocol2::{self, error, instruction, next_frame, unstuff, PacketWriter, BROADCAST_ID};
use crate::register::{self, Register};
use crate::xseries;

/// How the emulated Dynamixel bus behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct DxlEmulatorConfig {
    /// The servos' ids.
    pub ids: Vec<u8>,
    /// Their `Model_Number`s, in `ids` order (missing: 1200, XL330-M288).
    pub models: Vec<u16>,
    /// Speed toward the goal when `Profile_Velocity` is 0, ticks/s.
    pub max_speed: f64,
    /// Encoder position of every servo at start, ticks.
    pub initial_position: i32,
    /// When set, each answer also waits the wire time of the bytes.
    pub pace_baud: Option<u32>,
    /// `Present_Input_Voltage`, 0.1 V.
    pub voltage_dv: u16,
    /// `Present_Temperature`, °C.
    pub temperature_c: u8,
}

impl Default for DxlEmulatorConfig {
    fn default() -> Self {
        DxlEmulatorConfig {
            ids: vec![1, 2, 3, 4, 5, 6],
            models: Vec::new(),
            max_speed: 4000.0,
            initial_position: 2048,
            pace_baud: None,
            voltage_dv: 50,
            temperature_c: 30,
        }
    }
}

const REGS: usize = xseries::TABLE_END as usize;
const EEPROM: usize = xseries::EEPROM_END as usize;
/// 0.229 rpm in ticks per second (4096 ticks a turn).
const VELOCITY_UNIT: f64 = 0.229 * 4096.0 / 60.0;

struct DxlServo {
    regs: [u8; REGS],
    /// When the servo last received an instruction packet (its own id or
    /// broadcast): what `Bus_Watchdog` measures.
    last_heard: Instant,
    actual: f64,
    silent: bool,
    hw_error: u8,
    registered: Option<(usize, Vec<u8>)>,
}

fn get(regs: &[u8; REGS], r: Register) -> i32 {
    let a = r.addr as usize;
    let raw = regs[a..a + r.len as usize].iter().rev().fold(0u32, |acc, x| (acc << 8) | u32::from(*x));
    register::decode(r, raw)
}

fn put(regs: &mut [u8; REGS], r: Register, value: i32) {
    let raw = register::encode(r, value).unwrap_or(0);
    let a = r.addr as usize;
    regs[a..a + r.len as usize].copy_from_slice(&raw.to_le_bytes()[..r.len as usize]);
}

fn read_only(addr: usize) -> bool {
    addr <= 6 || addr == 69 || addr == 70 || (120..REGS).contains(&addr)
}

impl DxlServo {
    fn new(id: u8, model: u16, position: i32) -> DxlServo {
        let mut r = [0u8; REGS];
        put(&mut r, xseries::MODEL_NUMBER, model.into());
        put(&mut r, xseries::FIRMWARE_VERSION, 46);
        put(&mut r, xseries::ID, id.into());
        put(&mut r, xseries::BAUD_RATE, 3);
        put(&mut r, xseries::RETURN_DELAY_TIME, 250);
        put(&mut r, xseries::OPERATING_MODE, xseries::mode::POSITION.into());
        put(&mut r, xseries::MOVING_THRESHOLD, 10);
        put(&mut r, xseries::TEMPERATURE_LIMIT, 70);
        put(&mut r, xseries::MAX_VOLTAGE_LIMIT, 70);
        put(&mut r, xseries::MIN_VOLTAGE_LIMIT, 35);
        put(&mut r, xseries::PWM_LIMIT, xseries::FULL_PWM);
        put(&mut r, xseries::GOAL_PWM, xseries::FULL_PWM);
        put(&mut r, xseries::CURRENT_LIMIT, 1750);
        put(&mut r, xseries::VELOCITY_LIMIT, 445);
        put(&mut r, xseries::MAX_POSITION_LIMIT, 4095);
        put(&mut r, xseries::MIN_POSITION_LIMIT, 0);
        put(&mut r, xseries::SHUTDOWN, 52); // overheating, electrical shock, overload
        put(&mut r, xseries::STATUS_RETURN_LEVEL, 2);
        put(&mut r, xseries::POSITION_P_GAIN, 400);
        put(&mut r, xseries::GOAL_POSITION, position);
        DxlServo {
            regs: r,
            last_heard: Instant::now(),
            actual: f64::from(position),
            silent: false,
            hw_error: 0,
            registered: None,
        }
    }

    fn id(&self) -> u8 {
        self.regs[xseries::ID.addr as usize]
    }

    fn torque(&self) -> bool {
        self.regs[xseries::TORQUE_ENABLE.addr as usize] != 0
    }

    fn shut_down(&self) -> bool {
        self.hw_error & self.regs[xseries::SHUTDOWN.addr as usize] != 0
    }

    fn sign(&self) -> f64 {
        if self.regs[xseries::DRIVE_MODE.addr as usize] & 1 != 0 {
            -1.0
        } else {
            1.0
        }
    }

    fn present(&self) -> i32 {
        (self.sign() * self.actual).round() as i32 + get(&self.regs, xseries::HOMING_OFFSET)
    }

    /// The output `Goal_PWM` allows, as a fraction of full duty, 0..=1.
    fn strength(&self) -> f64 {
        let limit = get(&self.regs, xseries::PWM_LIMIT).clamp(0, xseries::FULL_PWM);
        let pwm = get(&self.regs, xseries::GOAL_PWM).abs().min(limit);
        f64::from(pwm) / f64::from(xseries::FULL_PWM)
    }

    /// `Bus_Watchdog` as a signed value (-1: expired).
    fn watchdog(&self) -> i8 {
        self.regs[xseries::BUS_WATCHDOG.addr as usize] as i8
    }

    /// Moves from `last` to `now` and refreshes the present-state
    /// registers; an expiring `Bus_Watchdog` stops the motion at its
    /// deadline.
    fn advance(&mut self, last: Instant, now: Instant, max_speed: f64, voltage: u16, temperature: u8) {
        if self.shut_down() {
            self.regs[xseries::TORQUE_ENABLE.addr as usize] = 0;
        }
        let mut dt = now.saturating_duration_since(last).as_secs_f64();
        let mut expired = false;
        if self.torque() && self.watchdog() > 0 {
            let limit = Duration::from_millis(xseries::BUS_WATCHDOG_UNIT_MS * self.watchdog() as u64);
            let deadline = self.last_heard + limit;
            if now > deadline {
                dt = dt.min(deadline.saturating_duration_since(last).as_secs_f64());
                expired = true;
            }
        }
        let mut velocity = 0.0;
        if self.torque() {
            let delta = f64::from(get(&self.regs, xseries::GOAL_POSITION) - self.present());
            let profile = f64::from(get(&self.regs, xseries::PROFILE_VELOCITY)) * VELOCITY_UNIT;
            let top = if profile > 0.0 { profile.min(max_speed) } else { max_speed };
            let speed = top * self.strength();
            let step = delta.clamp(-speed * dt, speed * dt);
            self.actual += self.sign() * step;
            if dt > 0.0 {
                velocity = step / dt;
            }
        }
        let p = self.present();
        if expired {
            // The servo stops: it holds where it is, and its goals lock.
            self.regs[xseries::BUS_WATCHDOG.addr as usize] = 0xFF;
            put(&mut self.regs, xseries::GOAL_POSITION, p);
            velocity = 0.0;
        }
        put(&mut self.regs, xseries::PRESENT_POSITION, p);
        put(&mut self.regs, xseries::PRESENT_VELOCITY, (velocity / VELOCITY_UNIT).round() as i32);
        let current = if self.torque() { (velocity / max_speed.max(1.0) * 200.0).round() as i32 } else { 0 };
        put(&mut self.regs, xseries::PRESENT_CURRENT, current);
        put(&mut self.regs, xseries::PRESENT_INPUT_VOLTAGE, voltage.into());
        put(&mut self.regs, xseries::PRESENT_TEMPERATURE, temperature.into());
        put(&mut self.regs, xseries::HARDWARE_ERROR_STATUS, self.hw_error.into());
        put(&mut self.regs, xseries::MOVING, i32::from(velocity != 0.0));
    }

    /// Applies a write; the error number refusing it, if any (nothing is
    /// applied then).
    fn write(&mut self, addr: usize, data: &[u8]) -> u8 {
        let end = addr + data.len();
        if data.is_empty() || end > REGS || (addr..end).any(read_only) {
            return error::ACCESS;
        }
        if addr < EEPROM && self.torque() {
            return error::ACCESS;
        }
        let covers = |r: Register| addr < r.addr as usize + r.len as usize && end > r.addr as usize;
        if self.watchdog() == -1 {
            let goals = [xseries::GOAL_PWM, xseries::GOAL_CURRENT, xseries::GOAL_VELOCITY, xseries::GOAL_POSITION];
            if goals.into_iter().any(covers) {
                return error::DATA_RANGE;
            }
        }
        let wd_at = xseries::BUS_WATCHDOG.addr as usize;
        if covers(xseries::BUS_WATCHDOG) {
            let v = data[wd_at - addr] as i8;
            // 0 clears; 1..=127 arms, but not over an expired watchdog.
            if v < 0 || (v > 0 && self.watchdog() == -1) {
                return error::DATA_RANGE;
            }
        }
        let torque_at = xseries::TORQUE_ENABLE.addr as usize;
        let turning_on = (addr..end).contains(&torque_at) && data[torque_at - addr] != 0;
        if turning_on && self.shut_down() {
            return error::RESULT_FAIL;
        }
        let pwm = xseries::GOAL_PWM.addr as usize;
        if addr <= pwm && end >= pwm + 2 {
            let v = i32::from(i16::from_le_bytes([data[pwm - addr], data[pwm - addr + 1]]));
            if v.abs() > get(&self.regs, xseries::PWM_LIMIT) {
                return error::DATA_LIMIT;
            }
        }
        let goal = xseries::GOAL_POSITION.addr as usize;
        if addr <= goal && end >= goal + 4 {
            let g = i32::from_le_bytes([
                data[goal - addr],
                data[goal - addr + 1],
                data[goal - addr + 2],
                data[goal - addr + 3],
            ]);
            let (lo, hi) = (get(&self.regs, xseries::MIN_POSITION_LIMIT), get(&self.regs, xseries::MAX_POSITION_LIMIT));
            let mode = self.regs[xseries::OPERATING_MODE.addr as usize];
            if mode == xseries::mode::POSITION && !(lo..=hi).contains(&g) {
                return error::DATA_LIMIT;
            }
        }
        let was_on = self.torque();
        self.regs[addr..end].copy_from_slice(data);
        if !was_on && self.torque() {
            let p = self.present();
            put(&mut self.regs, xseries::GOAL_POSITION, p);
        }
        0
    }

    fn read(&self, addr: usize, len: usize) -> Result<Vec<u8>, u8> {
        if addr + len > REGS {
            return Err(error::ACCESS);
        }
        Ok(self.regs[addr..addr + len].to_vec())
    }

    fn status(&self, id: u8, err: u8, data: &[u8]) -> (u8, Vec<u8>) {
        let alert = if self.hw_error != 0 { error::ALERT } else { 0 };
        let mut buf = Vec::with_capacity(protocol2::STATUS_OVERHEAD + data.len() + 4);
        let mut w = PacketWriter::new(&mut buf, id, instruction::STATUS);
        w.push(&[err | alert]).push(data);
        let _ = w.finish();
        (self.regs[xseries::RETURN_DELAY_TIME.addr as usize], buf)
    }

    fn level(&self) -> u8 {
        self.regs[xseries::STATUS_RETURN_LEVEL.addr as usize]
    }
}

struct DxlBus {
    cfg: DxlEmulatorConfig,
    servos: Vec<DxlServo>,
    last: Instant,
    wire: Wire,
}

impl DxlBus {
    fn update(&mut self) {
        let now = Instant::now();
        let last = self.last;
        self.last = now;
        let (speed, v, t) = (self.cfg.max_speed, self.cfg.voltage_dv, self.cfg.temperature_c);
        for s in &mut self.servos {
            s.advance(last, now, speed, v, t);
        }
    }

    fn servo(&mut self, id: u8) -> Option<&mut DxlServo> {
        self.servos.iter_mut().find(|s| s.id() == id)
    }

    fn answering(&self, id: u8) -> Option<&DxlServo> {
        self.servos.iter().find(|s| s.id() == id && !s.silent)
    }

    fn read_answer(&self, id: u8, addr: usize, len: usize, answers: &mut Vec<(u8, Vec<u8>)>) {
        if let Some(s) = self.answering(id) {
            if s.level() >= 1 {
                answers.push(match s.read(addr, len) {
                    Ok(data) => s.status(id, 0, &data),
                    Err(e) => s.status(id, e, &[]),
                });
            }
        }
    }

    fn handle_unstuffed(&mut self, id: u8, instr: u8, p: &[u8], answers: &mut Vec<(u8, Vec<u8>)>) {
        let word = |k: usize| u16::from_le_bytes([p[k], p[k + 1]]) as usize;
        let addressed = |s: &DxlServo| !s.silent && (id == BROADCAST_ID || s.id() == id);
        match instr {
            instruction::PING => {
                for s in self.servos.iter().filter(|s| addressed(s)) {
                    let m = get(&s.regs, xseries::MODEL_NUMBER) as u16;
                    let fw = s.regs[xseries::FIRMWARE_VERSION.addr as usize];
                    let [lo, hi] = m.to_le_bytes();
                    answers.push(s.status(s.id(), 0, &[lo, hi, fw]));
                }
            }
            instruction::READ if p.len() == 4 && id != BROADCAST_ID => {
                self.read_answer(id, word(0), word(2), answers);
            }
            instruction::WRITE | instruction::REG_WRITE if p.len() >= 3 => {
                self.wire.stats.writes += u64::from(instr == instruction::WRITE);
                let addr = word(0);
                for s in self.servos.iter_mut().filter(|s| addressed(s)) {
                    let e = if instr == instruction::WRITE {
                        s.write(addr, &p[2..])
                    } else {
                        s.registered = Some((addr, p[2..].to_vec()));
                        0
                    };
                    if id != BROADCAST_ID && s.level() >= 2 {
                        answers.push(s.status(id, e, &[]));
                    }
                }
            }
            instruction::ACTION => {
                for s in self.servos.iter_mut().filter(|s| addressed(s)) {
                    let e = match s.registered.take() {
                        Some((addr, data)) => s.write(addr, &data),
                        None => 0,
                    };
                    if id != BROADCAST_ID && s.level() >= 2 {
                        answers.push(s.status(id, e, &[]));
                    }
                }
            }
            instruction::SYNC_READ if p.len() >= 4 && id == BROADCAST_ID => {
                self.wire.stats.sync_reads += 1;
                let (addr, len) = (word(0), word(2));
                for &want in &p[4..] {
                    self.read_answer(want, addr, len, answers);
                }
            }
            instruction::BULK_READ if id == BROADCAST_ID => {
                self.wire.stats.sync_reads += 1;
                for c in p.chunks_exact(5) {
                    let (addr, len) =
                        (u16::from_le_bytes([c[1], c[2]]) as usize, u16::from_le_bytes([c[3], c[4]]) as usize);
                    self.read_answer(c[0], addr, len, answers);
                }
            }
            instruction::SYNC_WRITE if p.len() >= 4 && id == BROADCAST_ID => {
                self.wire.stats.sync_writes += 1;
                let (addr, len) = (word(0), word(2));
                for c in p[4..].chunks_exact(len + 1) {
                    if let Some(s) = self.servo(c[0]).filter(|s| !s.silent) {
                        let _ = s.write(addr, &c[1..]); // no status: refusals are silent
                    }
                }
            }
            _ => {
                if let Some(s) = self.answering(id) {
                    answers.push(s.status(id, error::INSTRUCTION, &[]));
                }
            }
        }
    }
}

impl Served for DxlBus {
    const NOISE: &'static [u8] = &[0x00, 0xFF, 0xFF, 0xFD, 0x01];
    const CORRUPT_FROM_END: usize = 3;

    fn frame(buf: &[u8]) -> Frame {
        next_frame(buf)
    }

    fn handle(&mut self, id: u8, code: u8, params: &[u8], answers: &mut Vec<(u8, Vec<u8>)>) {
        self.update();
        self.wire.stats.packets += 1;
        // Every instruction packet it hears feeds a servo's bus watchdog.
        let now = self.last;
        for s in self.servos.iter_mut().filter(|s| !s.silent && (id == BROADCAST_ID || s.id() == id)) {
            s.last_heard = now;
        }
        let mut p = vec![0u8; params.len()];
        let n = unstuff(code, params, &mut p);
        p.truncate(n);
        self.handle_unstuffed(id, code, &p, answers);
        self.update();
    }

    fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }
}

/// A running emulated Dynamixel bus; stops its thread when dropped.
pub struct DxlEmulator {
    bus: Arc<Mutex<DxlBus>>,
    runner: Runner,
}

impl DxlEmulator {
    /// Opens a pty pair and starts serving the bus on it.
    pub fn start(cfg: DxlEmulatorConfig) -> io::Result<DxlEmulator> {
        let baud = cfg.pace_baud.unwrap_or(1_000_000);
        let servos = cfg
            .ids
            .iter()
            .enumerate()
            .map(|(i, &id)| DxlServo::new(id, cfg.models.get(i).copied().unwrap_or(1200), cfg.initial_position))
            .collect();
        let wire = Wire { pace_baud: cfg.pace_baud, ..Wire::default() };
        let mut bus = DxlBus { cfg, servos, last: Instant::now(), wire };
        bus.update();
        let bus = Arc::new(Mutex::new(bus));
        let runner = Runner::start(bus.clone(), baud)?;
        Ok(DxlEmulator { bus, runner })
    }

    /// The pty a driver opens.
    pub fn path(&self) -> &Path {
        self.runner.path()
    }

    fn lock(&self) -> MutexGuard<'_, DxlBus> {
        self.bus.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register `r` of servo `id` now (decoded).
    pub fn register(&self, id: u8, r: Register) -> Option<i32> {
        let mut bus = self.lock();
        bus.update();
        bus.servo(id).map(|s| get(&s.regs, r))
    }

    /// Sets register `r` of servo `id` directly (a configuration tool's write,
    /// torque or not).
    pub fn set_register(&self, id: u8, r: Register, value: i32) {
        let mut bus = self.lock();
        bus.update();
        if let Some(s) = bus.servo(id) {
            put(&mut s.regs, r, value);
        }
        bus.update();
    }

    /// Moves servo `id` so its `Present_Position` reads `present` (a hand
    /// moving the joint).
    pub fn move_by_hand(&self, id: u8, present: i32) {
        let mut bus = self.lock();
        bus.update();
        if let Some(s) = bus.servo(id) {
            let delta = f64::from(present - s.present());
            s.actual += s.sign() * delta;
        }
        bus.update();
    }

    /// Injects a fault; [`Fault::Alarm`] bits are `Hardware_Error_Status` bits.
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
                    s.hw_error |= bits.0;
                }
            }
        }
        bus.update();
    }

    /// Clears every fault (as a reboot would clear hardware errors).
    pub fn clear_faults(&self) {
        let mut bus = self.lock();
        for s in &mut bus.servos {
            s.silent = false;
            s.hw_error = 0;
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

/// Writes a calibration file into the servos (`Homing_Offset`,
/// `Min/Max_Position_Limit`, `Drive_Mode`).
pub fn load_calibration(emulator: &DxlEmulator, file: &crate::CalibrationFile) {
    for (_, c) in &file.motors {
        emulator.set_register(c.id, xseries::HOMING_OFFSET, c.homing_offset);
        emulator.set_register(c.id, xseries::MIN_POSITION_LIMIT, c.range_min);
        emulator.set_register(c.id, xseries::MAX_POSITION_LIMIT, c.range_max);
        emulator.set_register(c.id, xseries::DRIVE_MODE, c.drive_mode.into());
    }
}
