//! The Feetech STS/SMS protocol-0 bus driver.

use std::path::Path;
use std::time::Duration;

use crate::calibration::{check_registers, Joint};
use crate::error::BusError;
use crate::link::{index_ids, le, Collect, Framing, Link};
use crate::protocol::{self, instruction, next_frame, PacketWriter, StatusBits, BROADCAST_ID};
use crate::sts::{self, Register};
use crate::{BusCounters, ServoBus, ServoState};

/// How the bus talks to the servos.
#[derive(Debug, Clone, PartialEq)]
pub struct FeetechConfig {
    /// Bits per second; the servos' `Baud_Rate` must match (1 Mbit/s out of
    /// the box and in LeRobot).
    pub baud: u32,
    /// Repeats of a failed exchange before it is an error (LeRobot's
    /// `num_read_retries` is 2).
    pub max_retries: u32,
    /// Added to the wire time of an exchange to make its timeout: the
    /// adapter's and the kernel's latency. Twice the USB-serial latency
    /// timer, where the adapter has one, is added on top.
    pub timeout_margin: Duration,
    /// Allowed per answering servo for its `Return_Delay_Time` (0 after
    /// LeRobot's set-up).
    pub return_delay: Duration,
    /// On drop (a panic unwinding, an early return), broadcast
    /// `Torque_Enable` 0 and `Lock` 0 so the arm stops driving. An explicit
    /// [`FeetechBus::shutdown`] does it acknowledged instead.
    pub torque_off_on_drop: bool,
    /// Ask an FTDI adapter for a 1 ms latency timer (best effort).
    pub low_latency: bool,
    /// At open, ping every servo and check its `Model_Number` is an STS3215.
    pub check_model: bool,
}

impl Default for FeetechConfig {
    fn default() -> Self {
        FeetechConfig {
            baud: 1_000_000,
            max_retries: 2,
            timeout_margin: Duration::from_millis(3),
            return_delay: Duration::ZERO,
            torque_off_on_drop: true,
            low_latency: true,
            check_model: true,
        }
    }
}

/// The set-up LeRobot's SO-100/SO-101 follower writes at connect
/// (`SOFollower.configure` and `FeetechMotorsBus.configure_motors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct So101Setup {
    /// `Return_Delay_Time` (0: answer at once).
    pub return_delay_time: u8,
    /// `Maximum_Acceleration`.
    pub maximum_acceleration: u8,
    /// `Acceleration`.
    pub acceleration: u8,
    /// `P_Coefficient` (`position_p_coefficient`).
    pub p: u8,
    /// `I_Coefficient`.
    pub i: u8,
    /// `D_Coefficient`.
    pub d: u8,
    /// The gripper's id, which gets the torque and current limits below.
    pub gripper_id: Option<u8>,
    /// Gripper `Max_Torque_Limit` (0.1 %: 500 = 50 %).
    pub gripper_max_torque_limit: u16,
    /// Gripper `Protection_Current`.
    pub gripper_protection_current: u16,
    /// Gripper `Overload_Torque` (%).
    pub gripper_overload_torque: u8,
}

impl Default for So101Setup {
    fn default() -> Self {
        So101Setup {
            return_delay_time: 0,
            maximum_acceleration: 254,
            acceleration: 254,
            p: 16,
            i: 0,
            d: 32,
            gripper_id: Some(6),
            gripper_max_torque_limit: 500,
            gripper_protection_current: 250,
            gripper_overload_torque: 25,
        }
    }
}

/// What an exchange waits for.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One status packet of `len` data bytes from every servo (sync read).
    All { len: usize },
    /// One status packet of `len` data bytes from `id`.
    One { id: u8, len: usize },
}

/// What a Feetech exchange collects: a status packet from every servo
/// (sync read) or from one.
#[derive(Debug)]
struct Answers {
    expect: Expect,
    ids: Vec<u8>,
    /// id → 1 + index in `ids`; 0 when not on this bus.
    index: [u8; 256],
    /// Sync-read data: `ids.len()` blocks of `block` bytes.
    data: Vec<u8>,
    block: usize,
    seen: Vec<bool>,
    /// Who answered in an earlier attempt of this exchange.
    answered: Vec<bool>,
    alarms: Vec<StatusBits>,
    /// The latest single-servo answer.
    single: [u8; protocol::MAX_PARAMS],
    single_len: usize,
    single_error: StatusBits,
    single_seen: bool,
}

impl Collect for Answers {
    fn begin(&mut self) {
        self.answered.iter_mut().for_each(|a| *a = false);
    }

    fn reset(&mut self) {
        self.answered.iter_mut().zip(&self.seen).for_each(|(a, s)| *a |= *s);
        self.seen.iter_mut().for_each(|s| *s = false);
        self.single_seen = false;
    }

    fn complete(&self) -> bool {
        match self.expect {
            Expect::All { .. } => self.seen.iter().all(|s| *s),
            Expect::One { .. } => self.single_seen,
        }
    }

    fn missing(&self) -> u8 {
        match self.expect {
            Expect::One { id, .. } => id,
            Expect::All { .. } => {
                let never = self.seen.iter().zip(&self.answered).position(|(s, a)| !s && !a);
                never.or_else(|| self.seen.iter().position(|s| !s)).map_or(0, |i| self.ids[i])
            }
        }
    }

    fn accept(&mut self, counters: &mut BusCounters, id: u8, code: u8, body: &[u8]) -> bool {
        let error = StatusBits(code);
        let n = body.len();
        match self.expect {
            Expect::All { len } => {
                let slot = self.index[id as usize] as usize;
                if slot == 0 || self.seen[slot - 1] {
                    counters.unexpected_packets += 1;
                    return true;
                }
                if n != len {
                    counters.unexpected_packets += 1;
                    return false;
                }
                let i = slot - 1;
                self.data[i * self.block..i * self.block + len].copy_from_slice(body);
                self.seen[i] = true;
                self.alarms[i] = error;
            }
            Expect::One { id: want, len } => {
                if id != want || self.single_seen {
                    counters.unexpected_packets += 1;
                    return true;
                }
                if n != len {
                    counters.unexpected_packets += 1;
                    return false;
                }
                self.single[..len].copy_from_slice(body);
                self.single_len = len;
                self.single_error = error;
                self.single_seen = true;
                if let Some(slot) = self.index[id as usize].checked_sub(1) {
                    self.alarms[slot as usize] = error;
                }
            }
        }
        counters.status_packets += 1;
        if !error.is_ok() {
            counters.alarms += 1;
        }
        true
    }
}

const FRAMING: Framing = Framing { next_frame, header: 2, is_status: |code| code <= 0x7F };

/// A Feetech protocol-0 bus on a serial port. See [`ServoBus`] for the
/// per-tick contract; the other methods are for set-up.
#[derive(Debug)]
pub struct FeetechBus {
    link: Link,
    cfg: FeetechConfig,
    ids: Vec<u8>,
    tx: Vec<u8>,
    ans: Answers,
    shut_down: bool,
}

impl FeetechBus {
    /// Opens the bus on `port` for servos `ids` (the order of every slice
    /// later), and with `check_model` pings each and checks it is an STS3215:
    /// a wrong port, a missing id or another model is an error naming it.
    pub fn open(port: &Path, ids: &[u8], cfg: FeetechConfig) -> Result<FeetechBus, BusError> {
        let index = index_ids(ids)?;
        // The longest per-tick packet must fit: a sync write of 2 bytes per servo.
        let sync_write_params = 2 + ids.len() * 3;
        if sync_write_params > protocol::MAX_PARAMS {
            return Err(BusError::PacketTooLong { params: sync_write_params });
        }
        let link = Link::open(port, cfg.baud, cfg.low_latency, cfg.timeout_margin, FRAMING)?;
        let block = sts::STATE_BLOCK.1 as usize;
        let ans = Answers {
            expect: Expect::All { len: 0 },
            ids: ids.to_vec(),
            index,
            data: vec![0; ids.len() * block],
            block,
            seen: vec![false; ids.len()],
            answered: vec![false; ids.len()],
            alarms: vec![StatusBits::default(); ids.len()],
            single: [0; protocol::MAX_PARAMS],
            single_len: 0,
            single_error: StatusBits::default(),
            single_seen: false,
        };
        let mut bus = FeetechBus {
            link,
            ids: ids.to_vec(),
            tx: Vec::with_capacity(protocol::MAX_PACKET),
            ans,
            shut_down: false,
            cfg,
        };
        if bus.cfg.check_model {
            for i in 0..bus.ids.len() {
                let id = bus.ids[i];
                bus.ping(id)?;
                let model = bus.read_register(id, sts::MODEL_NUMBER)? as u16;
                if model != sts::STS3215_MODEL {
                    return Err(BusError::WrongModel {
                        id,
                        found: model,
                        expected: sts::STS3215_MODEL,
                        model: "STS3215",
                    });
                }
            }
        }
        Ok(bus)
    }

    /// The port's path.
    pub fn port(&self) -> &str {
        self.link.path()
    }

    /// The timeout of one attempt of a state sync read.
    pub fn read_timeout(&self) -> Duration {
        self.timeout_for(protocol::OVERHEAD + 2 + self.ids.len(), Expect::All { len: self.ans.block })
    }

    /// The longest a state sync read can take before it fails: every attempt
    /// timing out. A control loop checks this against its tick.
    pub fn worst_case_read(&self) -> Duration {
        self.read_timeout() * (self.cfg.max_retries + 1)
    }

    /// Bytes on the wire per tick (sync read of positions, its answers and
    /// the sync write of goals), and their time at the configured baud rate.
    pub fn tick_wire(&self) -> (usize, Duration) {
        let n = self.ids.len();
        let bytes = (protocol::OVERHEAD + 2 + n) + n * protocol::status_len(2) + (protocol::OVERHEAD + 2 + 3 * n);
        (bytes, Duration::from_secs_f64(protocol::wire_seconds(bytes, self.cfg.baud)))
    }

    fn timeout_for(&self, tx_bytes: usize, expect: Expect) -> Duration {
        let (n, len) = match expect {
            Expect::All { len } => (self.ids.len(), len),
            Expect::One { len, .. } => (1, len),
        };
        let bytes = tx_bytes + n * protocol::status_len(len);
        Duration::from_secs_f64(protocol::wire_seconds(bytes, self.cfg.baud))
            + self.cfg.return_delay * n as u32
            + self.link.margin
    }

    /// Sends `self.tx` and waits for `expect`, retrying up to `max_retries`.
    fn exchange(&mut self, expect: Expect) -> Result<(), BusError> {
        self.ans.expect = expect;
        let timeout = self.timeout_for(self.tx.len(), expect);
        self.link.exchange(&self.tx, &mut self.ans, timeout, self.cfg.max_retries + 1)
    }

    fn build(&mut self, id: u8, code: u8, params: &[u8]) -> Result<(), BusError> {
        let mut w = PacketWriter::new(&mut self.tx, id, code);
        w.push(params);
        w.finish().map(|_| ()).ok_or(BusError::PacketTooLong { params: params.len() })
    }

    /// Pings `id`; its alarm bits.
    pub fn ping(&mut self, id: u8) -> Result<StatusBits, BusError> {
        self.build(id, instruction::PING, &[])?;
        self.exchange(Expect::One { id, len: 0 })?;
        Ok(self.ans.single_error)
    }

    /// Reads `len` bytes at `addr` of servo `id`. An answer with alarm bits
    /// is an error (as LeRobot's `read` raises).
    pub fn read(&mut self, id: u8, addr: u8, len: u8) -> Result<&[u8], BusError> {
        self.build(id, instruction::READ, &[addr, len])?;
        self.exchange(Expect::One { id, len: len as usize })?;
        if !self.ans.single_error.is_ok() {
            return Err(BusError::Alarm { id, bits: self.ans.single_error });
        }
        Ok(&self.ans.single[..self.ans.single_len])
    }

    /// Reads register `r` of servo `id`, decoded (sign-magnitude where LeRobot
    /// decodes it).
    pub fn read_register(&mut self, id: u8, r: Register) -> Result<i32, BusError> {
        let bytes = self.read(id, addr8(r), r.len)?;
        Ok(sts::decode(r, le(bytes)))
    }

    /// Writes `data` at `addr` of servo `id` and waits for its acknowledgement;
    /// an answer with alarm bits is an error. To the broadcast id nobody
    /// answers and the write is not acknowledged.
    pub fn write(&mut self, id: u8, addr: u8, data: &[u8]) -> Result<(), BusError> {
        let mut w = PacketWriter::new(&mut self.tx, id, instruction::WRITE);
        w.push(&[addr]).push(data);
        w.finish().ok_or(BusError::PacketTooLong { params: data.len() + 1 })?;
        if id == BROADCAST_ID {
            return self.link.send(&self.tx);
        }
        self.exchange(Expect::One { id, len: 0 })?;
        if !self.ans.single_error.is_ok() {
            return Err(BusError::Alarm { id, bits: self.ans.single_error });
        }
        Ok(())
    }

    /// Writes register `r` of servo `id` (encoded as LeRobot encodes it).
    pub fn write_register(&mut self, id: u8, r: Register, value: i32) -> Result<(), BusError> {
        let raw = sts::encode(r, value).ok_or(BusError::ValueOutOfRange { register: r.name, value: value.into() })?;
        let bytes = raw.to_le_bytes();
        self.write(id, addr8(r), &bytes[..r.len as usize])
    }

    /// One sync write of register `r` for every servo; `values` in `ids()`
    /// order. Nobody answers.
    pub fn sync_write_register(&mut self, r: Register, values: &[i32]) -> Result<(), BusError> {
        if values.len() != self.ids.len() {
            return Err(BusError::LengthMismatch { what: r.name, got: values.len(), expected: self.ids.len() });
        }
        let len = r.len as usize;
        let mut w = PacketWriter::new(&mut self.tx, BROADCAST_ID, instruction::SYNC_WRITE);
        w.push(&[addr8(r), r.len]);
        for (&id, &v) in self.ids.iter().zip(values) {
            let raw = match sts::encode(r, v) {
                Some(raw) => raw,
                None => return Err(BusError::ValueOutOfRange { register: r.name, value: v.into() }),
            };
            w.push(&[id]).push(&raw.to_le_bytes()[..len]);
        }
        w.finish().ok_or(BusError::PacketTooLong { params: 2 + values.len() * (len + 1) })?;
        self.link.send(&self.tx)
    }

    /// One sync read of `len` bytes at `addr` from every servo into `data`.
    fn sync_read(&mut self, addr: u8, len: u8) -> Result<(), BusError> {
        let mut w = PacketWriter::new(&mut self.tx, BROADCAST_ID, instruction::SYNC_READ);
        w.push(&[addr, len]).push(&self.ids);
        w.finish().ok_or(BusError::PacketTooLong { params: 2 + self.ids.len() })?;
        self.exchange(Expect::All { len: len as usize })
    }

    /// Sync-reads register `r` of every servo into `out` (decoded).
    pub fn sync_read_register(&mut self, r: Register, out: &mut [i32]) -> Result<(), BusError> {
        if out.len() != self.ids.len() {
            return Err(BusError::LengthMismatch { what: r.name, got: out.len(), expected: self.ids.len() });
        }
        self.sync_read(addr8(r), r.len)?;
        for (i, o) in out.iter_mut().enumerate() {
            let b = &self.ans.data[i * self.ans.block..i * self.ans.block + r.len as usize];
            *o = sts::decode(r, le(b));
        }
        Ok(())
    }

    /// LeRobot's SO-100/SO-101 follower set-up, servo by servo, each write
    /// acknowledged: torque off (`Torque_Enable` 0, `Lock` 0); then
    /// `Return_Delay_Time`, `Maximum_Acceleration`, `Acceleration`, `Phase`
    /// bit 4 cleared; then `Operating_Mode` 0 (position), `P/I/D_Coefficient`
    /// and the gripper's torque and current limits. Torque stays off: arm
    /// with [`ServoBus::set_torque`] once the calibration is checked.
    pub fn setup_so101(&mut self, setup: &So101Setup) -> Result<(), BusError> {
        self.set_torque(false)?;
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, sts::RETURN_DELAY_TIME, setup.return_delay_time.into())?;
            self.write_register(id, sts::MAXIMUM_ACCELERATION, setup.maximum_acceleration.into())?;
            self.write_register(id, sts::ACCELERATION, setup.acceleration.into())?;
            let phase = self.read_register(id, sts::PHASE)?;
            if phase & 0x10 != 0 {
                self.write_register(id, sts::PHASE, phase & !0x10)?;
            }
        }
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, sts::OPERATING_MODE, 0)?;
            self.write_register(id, sts::P_COEFFICIENT, setup.p.into())?;
            self.write_register(id, sts::I_COEFFICIENT, setup.i.into())?;
            self.write_register(id, sts::D_COEFFICIENT, setup.d.into())?;
            if setup.gripper_id == Some(id) {
                self.write_register(id, sts::MAX_TORQUE_LIMIT, setup.gripper_max_torque_limit.into())?;
                self.write_register(id, sts::PROTECTION_CURRENT, setup.gripper_protection_current.into())?;
                self.write_register(id, sts::OVERLOAD_TORQUE, setup.gripper_overload_torque.into())?;
            }
        }
        Ok(())
    }

    /// Limits every servo's torque to `fraction` of its own limit until
    /// the next power-up: `Torque_Limit` (RAM 48, 0.1 %; 1000 = 100 %) :=
    /// `fraction` × `Max_Torque_Limit` (EEPROM 16, read from each servo),
    /// each write acknowledged. A fraction of each servo's own maximum
    /// rather than of 1000, so a limit never raises a servo above what its
    /// set-up allows (LeRobot gives the SO-101 gripper 500). 1.0 writes
    /// `Max_Torque_Limit` itself, the servo's power-up value, which also
    /// undoes a lower limit an earlier run left in RAM. `fraction` in
    /// (0, 1], checked before anything is written. Returns the values
    /// written, in `ids()` order. Call after [`setup_so101`](Self::setup_so101).
    pub fn set_torque_limit(&mut self, fraction: f64) -> Result<Vec<i32>, BusError> {
        crate::scaled_limit(fraction, 1)?;
        let mut written = Vec::with_capacity(self.ids.len());
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            let full = self.read_register(id, sts::MAX_TORQUE_LIMIT)?;
            let value = crate::scaled_limit(fraction, full)?;
            self.write_register(id, sts::TORQUE_LIMIT, value)?;
            written.push(value);
        }
        Ok(written)
    }

    /// Checks every joint's calibration against the servo's registers
    /// (`Homing_Offset`, `Min_Position_Limit`, `Max_Position_Limit`), as
    /// LeRobot's `is_calibrated` does; the first disagreement is an error
    /// naming the motor, the register and both values. Call before arming.
    pub fn check_calibration(&mut self, joints: &[Joint]) -> Result<(), BusError> {
        for j in joints {
            if self.ans.index[j.id as usize] == 0 {
                return Err(BusError::BadId { id: j.id, why: "in the calibration but not on this bus" });
            }
            let checks = [
                (sts::HOMING_OFFSET, j.homing_offset),
                (sts::MIN_POSITION_LIMIT, j.range_min),
                (sts::MAX_POSITION_LIMIT, j.range_max),
            ];
            check_registers(j, &checks, |id, r| self.read_register(id, r))?;
        }
        Ok(())
    }

    /// Writes the calibration into the registers, as LeRobot's
    /// `write_calibration` does (`Homing_Offset`, then `Min/Max_Position_Limit`).
    /// Torque must be off.
    pub fn write_calibration(&mut self, joints: &[Joint]) -> Result<(), BusError> {
        for j in joints {
            self.write_register(j.id, sts::HOMING_OFFSET, j.homing_offset)?;
            self.write_register(j.id, sts::MIN_POSITION_LIMIT, j.range_min)?;
            self.write_register(j.id, sts::MAX_POSITION_LIMIT, j.range_max)?;
        }
        Ok(())
    }

    /// LeRobot's `set_half_turn_homings` for Feetech: resets `Homing_Offset`
    /// to 0 and the limits to 0..4095, reads every position, and writes
    /// `Homing_Offset = position - 2047` so each servo then reads 2047 (the
    /// middle of its range) where it stands. Call with torque off and
    /// `Operating_Mode` 0, the arm in the middle of its range; returns the
    /// offsets, in `ids()` order, for [`RangeRecorder::finish`](crate::calibration::RangeRecorder::finish).
    pub fn set_half_turn_homings(&mut self) -> Result<Vec<i32>, BusError> {
        let max_res = crate::sts::RESOLUTION as i32 - 1;
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, sts::HOMING_OFFSET, 0)?;
            self.write_register(id, sts::MIN_POSITION_LIMIT, 0)?;
            self.write_register(id, sts::MAX_POSITION_LIMIT, max_res)?;
        }
        let mut pos = vec![0; self.ids.len()];
        self.sync_read_positions(&mut pos)?;
        let homings: Vec<i32> = pos.iter().map(|p| p - max_res / 2).collect();
        for (i, &h) in homings.iter().enumerate() {
            let id = self.ids[i];
            self.write_register(id, sts::HOMING_OFFSET, h)?;
        }
        Ok(homings)
    }

    /// Torque off, acknowledged by every servo, then closes the bus (no
    /// second torque-off on drop).
    pub fn shutdown(mut self) -> Result<(), BusError> {
        // If someone does not acknowledge, the broadcast on drop still goes.
        self.set_torque(false)?;
        self.shut_down = true;
        Ok(())
    }
}

impl ServoBus for FeetechBus {
    fn ids(&self) -> &[u8] {
        &self.ids
    }

    fn sync_read_positions(&mut self, out: &mut [i32]) -> Result<(), BusError> {
        self.sync_read_register(sts::PRESENT_POSITION, out)
    }

    fn sync_read_state(&mut self, out: &mut [ServoState]) -> Result<(), BusError> {
        if out.len() != self.ids.len() {
            return Err(BusError::LengthMismatch { what: "servo states", got: out.len(), expected: self.ids.len() });
        }
        let (addr, len) = sts::STATE_BLOCK;
        self.sync_read(addr, len)?;
        for (i, o) in out.iter_mut().enumerate() {
            let b = &self.ans.data[i * self.ans.block..(i + 1) * self.ans.block];
            *o = ServoState {
                position: sts::decode(sts::PRESENT_POSITION, le(&b[0..2])),
                velocity: sts::decode(sts::PRESENT_VELOCITY, le(&b[2..4])),
                load: sts::decode(sts::PRESENT_LOAD, le(&b[4..6])),
                voltage_dv: b[6],
                temperature_c: b[7],
                status: StatusBits(b[9]),
            };
        }
        Ok(())
    }

    fn sync_write_goals(&mut self, goals: &[i32]) -> Result<(), BusError> {
        self.sync_write_register(sts::GOAL_POSITION, goals)
    }

    fn set_torque(&mut self, enable: bool) -> Result<(), BusError> {
        let v = i32::from(enable);
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, sts::TORQUE_ENABLE, v)?;
            self.write_register(id, sts::LOCK, v)?;
        }
        Ok(())
    }

    fn alarms(&self) -> &[StatusBits] {
        &self.ans.alarms
    }

    fn counters(&self) -> BusCounters {
        self.link.counters
    }
}

impl Drop for FeetechBus {
    fn drop(&mut self) {
        if self.shut_down || !self.cfg.torque_off_on_drop {
            return;
        }
        // Broadcast (no answer needed: works with a dead servo on the bus).
        for r in [sts::TORQUE_ENABLE, sts::LOCK] {
            let mut w = PacketWriter::new(&mut self.tx, BROADCAST_ID, instruction::WRITE);
            w.push(&[addr8(r), 0]);
            if w.finish().is_some() {
                let _ = self.link.send(&self.tx);
            }
        }
    }
}

/// A Feetech register's address: one byte on the wire (the STS table ends
/// at 86).
fn addr8(r: Register) -> u8 {
    r.addr as u8
}
