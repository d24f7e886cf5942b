//! The Dynamixel protocol 2.0 bus driver (X series: Koch arms and many
//! research arms), behind the same [`ServoBus`] trait as the Feetech one.
//!
//! Differences from Feetech that matter to a caller: the CRC-16 and byte
//! stuffing of protocol 2.0; positions are 4-byte two's complement and
//! `Present_Position = actual + Homing_Offset`; torque on/off is
//! `Torque_Enable` alone (LeRobot writes no `Lock` on Dynamixel); EEPROM
//! writes with torque on are refused by the servo ([`BusError::Refused`]);
//! `Drive_Mode` is applied by the servo, so LeRobot does not invert values
//! itself ([`Joint::apply_drive_mode`] false, see
//! [`CalibrationFile::dynamixel_joints`](crate::CalibrationFile::dynamixel_joints));
//! status packets carry an alert bit, not the hardware error itself
//! ([`DynamixelBus::hardware_errors`] reads it, outside the tick).

use std::path::Path;
use std::time::Duration;

use crate::calibration::{check_registers, Joint};
use crate::error::BusError;
use crate::link::{index_ids, le, Collect, Framing, Link};
use crate::protocol::StatusBits;
use crate::protocol2::{self, instruction, next_frame, unstuff, PacketWriter, BROADCAST_ID};
use crate::register::{self, Register};
use crate::xseries;
use crate::{BusCounters, ServoBus, ServoState};

/// How the bus talks to the servos.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamixelConfig {
    /// Bits per second (LeRobot's default for Dynamixel: 1 Mbit/s).
    pub baud: u32,
    /// Repeats of a failed exchange before it is an error.
    pub max_retries: u32,
    /// Added to the wire time of an exchange to make its timeout (plus twice
    /// the USB-serial latency timer where the adapter has one).
    pub timeout_margin: Duration,
    /// Allowed per answering servo for its `Return_Delay_Time` (factory
    /// 500 µs; 0 after LeRobot's set-up).
    pub return_delay: Duration,
    /// On drop, broadcast `Torque_Enable` 0.
    pub torque_off_on_drop: bool,
    /// Ask an FTDI adapter (the U2D2) for a 1 ms latency timer.
    pub low_latency: bool,
    /// At open, ping every servo and check it is an X-series model LeRobot knows.
    pub check_model: bool,
}

impl Default for DynamixelConfig {
    fn default() -> Self {
        DynamixelConfig {
            baud: 1_000_000,
            max_retries: 2,
            timeout_margin: Duration::from_millis(3),
            return_delay: Duration::from_micros(500),
            torque_off_on_drop: true,
            low_latency: true,
            check_model: true,
        }
    }
}

/// The set-up LeRobot's Koch follower writes at connect
/// (`KochFollower.configure`, `DynamixelMotorsBus.configure_motors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KochSetup {
    /// `Return_Delay_Time`.
    pub return_delay_time: u8,
    /// The gripper's id: `Operating_Mode` current-based position (5); every
    /// other servo extended position (4).
    pub gripper_id: Option<u8>,
    /// The elbow's id, which gets the gains below.
    pub elbow_id: Option<u8>,
    /// Elbow `Position_P_Gain`, `Position_I_Gain`, `Position_D_Gain`.
    pub elbow_pid: (u16, u16, u16),
}

impl Default for KochSetup {
    fn default() -> Self {
        KochSetup { return_delay_time: 0, gripper_id: Some(6), elbow_id: Some(3), elbow_pid: (1500, 0, 600) }
    }
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One status packet from every slot with `want[slot]` data bytes.
    Slots,
    /// One status packet of `len` data bytes from `id`.
    One { id: u8, len: usize },
}

/// Bytes of data per servo a sync or bulk read may ask for.
pub const MAX_BLOCK: usize = 32;
/// What a Dynamixel exchange collects: a status packet from each servo
/// asked (sync or bulk read) or from one.
#[derive(Debug)]
struct Answers {
    expect: Expect,
    ids: Vec<u8>,
    index: [u8; 256],
    /// The unstuffed body of the packet being filed.
    scratch: Vec<u8>,
    data: Vec<u8>,
    want: Vec<usize>,
    /// Slot → whether it is part of the current read.
    asked: Vec<bool>,
    seen: Vec<bool>,
    /// Who answered in an earlier attempt of this exchange.
    answered: Vec<bool>,
    alarms: Vec<StatusBits>,
    single: Vec<u8>,
    single_len: usize,
    single_error: u8,
    single_seen: bool,
    refused: Option<(u8, u8)>,
}

impl Collect for Answers {
    fn begin(&mut self) {
        self.answered.iter_mut().for_each(|a| *a = false);
    }

    fn reset(&mut self) {
        self.answered.iter_mut().zip(&self.seen).for_each(|(a, s)| *a |= *s);
        self.seen.iter_mut().for_each(|s| *s = false);
        self.single_seen = false;
        self.refused = None;
    }

    fn complete(&self) -> bool {
        match self.expect {
            Expect::Slots => self.asked.iter().zip(&self.seen).all(|(a, s)| !a || *s),
            Expect::One { .. } => self.single_seen,
        }
    }

    fn missing(&self) -> u8 {
        match self.expect {
            Expect::One { id, .. } => id,
            Expect::Slots => {
                let missing = |i: &usize| self.asked[*i] && !self.seen[*i];
                let never = (0..self.ids.len()).find(|i| missing(i) && !self.answered[*i]);
                never.or_else(|| (0..self.ids.len()).find(missing)).map_or(0, |i| self.ids[i])
            }
        }
    }

    fn accept(&mut self, counters: &mut BusCounters, id: u8, code: u8, body: &[u8]) -> bool {
        let n = unstuff(code, body, &mut self.scratch);
        if n == 0 {
            counters.unexpected_packets += 1;
            return false;
        }
        let error = self.scratch[0];
        let data_len = n - 1;
        let slot = (self.index[id as usize] as usize).checked_sub(1);
        if let Some(slot) = slot {
            let alert = StatusBits(if error & protocol2::error::ALERT != 0 { StatusBits::ALERT } else { 0 });
            self.alarms[slot] = alert;
        }
        match self.expect {
            Expect::Slots => {
                let Some(slot) = slot.filter(|&s| self.asked[s] && !self.seen[s]) else {
                    counters.unexpected_packets += 1;
                    return true;
                };
                if error & 0x7F != 0 || data_len != self.want[slot] {
                    counters.unexpected_packets += 1;
                    return false;
                }
                let at = slot * MAX_BLOCK;
                self.data[at..at + data_len].copy_from_slice(&self.scratch[1..n]);
                self.seen[slot] = true;
            }
            Expect::One { id: want, len } => {
                if id != want || self.single_seen {
                    counters.unexpected_packets += 1;
                    return true;
                }
                if error & 0x7F != 0 {
                    // Refused: a deterministic answer, not worth a retry.
                    self.single_seen = true;
                    self.single_error = error;
                    self.single_len = 0;
                    self.refused = Some((id, error & 0x7F));
                    counters.status_packets += 1;
                    return true;
                }
                if data_len != len {
                    counters.unexpected_packets += 1;
                    return false;
                }
                self.single[..len].copy_from_slice(&self.scratch[1..n]);
                self.single_len = len;
                self.single_error = error;
                self.single_seen = true;
            }
        }
        counters.status_packets += 1;
        if error & protocol2::error::ALERT != 0 {
            counters.alarms += 1;
        }
        true
    }
}

const FRAMING: Framing = Framing { next_frame, header: 3, is_status: |code| code == instruction::STATUS };

/// A Dynamixel protocol 2.0 bus on a serial port.
#[derive(Debug)]
pub struct DynamixelBus {
    link: Link,
    cfg: DynamixelConfig,
    ids: Vec<u8>,
    models: Vec<u16>,
    tx: Vec<u8>,
    ans: Answers,
    shut_down: bool,
}

impl DynamixelBus {
    /// Opens the bus on `port` for servos `ids`; with `check_model`, pings
    /// each (a wrong port, a missing id or an unknown model is an error
    /// naming it).
    pub fn open(port: &Path, ids: &[u8], cfg: DynamixelConfig) -> Result<DynamixelBus, BusError> {
        let index = index_ids(ids)?;
        // The sync write of 4-byte goals, with room for stuffing (a byte in three).
        let longest = (protocol2::INSTRUCTION_OVERHEAD + 4 + ids.len() * 5) * 4 / 3;
        if longest > protocol2::MAX_PACKET {
            return Err(BusError::PacketTooLong { params: longest });
        }
        let link = Link::open(port, cfg.baud, cfg.low_latency, cfg.timeout_margin, FRAMING)?;
        let n = ids.len();
        let ans = Answers {
            expect: Expect::Slots,
            ids: ids.to_vec(),
            index,
            scratch: vec![0; protocol2::MAX_PACKET],
            data: vec![0; n * MAX_BLOCK],
            want: vec![0; n],
            asked: vec![false; n],
            seen: vec![false; n],
            answered: vec![false; n],
            alarms: vec![StatusBits::default(); n],
            single: vec![0; protocol2::MAX_PACKET],
            single_len: 0,
            single_error: 0,
            single_seen: false,
            refused: None,
        };
        let mut bus = DynamixelBus {
            link,
            ids: ids.to_vec(),
            models: vec![0; n],
            tx: Vec::with_capacity(protocol2::MAX_PACKET),
            ans,
            shut_down: false,
            cfg,
        };
        if bus.cfg.check_model {
            for i in 0..n {
                let id = bus.ids[i];
                let model = bus.ping(id)?;
                if xseries::model_name(model).is_none() {
                    return Err(BusError::WrongModel {
                        id,
                        found: model,
                        expected: 1200,
                        model: "a Dynamixel X series",
                    });
                }
                bus.models[i] = model;
            }
        }
        Ok(bus)
    }

    /// The port's path.
    pub fn port(&self) -> &str {
        self.link.path()
    }

    /// Each servo's `Model_Number` (found at open with `check_model`).
    pub fn models(&self) -> &[u16] {
        &self.models
    }

    /// The timeout of one attempt of a state sync read.
    pub fn read_timeout(&self) -> Duration {
        let n = self.ids.len();
        self.timeout_for(protocol2::INSTRUCTION_OVERHEAD + 4 + n, n, xseries::STATE_BLOCK.1 as usize)
    }

    /// The longest a state sync read can take before it fails.
    pub fn worst_case_read(&self) -> Duration {
        self.read_timeout() * (self.cfg.max_retries + 1)
    }

    /// Bytes on the wire per tick (sync read of positions, its answers, the
    /// sync write of goals; no stuffing) and their time at the baud rate.
    pub fn tick_wire(&self) -> (usize, Duration) {
        let n = self.ids.len();
        let bytes = (protocol2::INSTRUCTION_OVERHEAD + 4 + n)
            + n * (protocol2::STATUS_OVERHEAD + 4)
            + (protocol2::INSTRUCTION_OVERHEAD + 4 + 5 * n);
        (bytes, Duration::from_secs_f64(crate::protocol::wire_seconds(bytes, self.cfg.baud)))
    }

    fn timeout_for(&self, tx_bytes: usize, answers: usize, data_bytes_each: usize) -> Duration {
        let bytes = tx_bytes + answers * (protocol2::STATUS_OVERHEAD + data_bytes_each);
        // Stuffing can add a byte per three; a quarter more covers it.
        let bytes = bytes + bytes / 4;
        Duration::from_secs_f64(crate::protocol::wire_seconds(bytes, self.cfg.baud))
            + self.cfg.return_delay * answers as u32
            + self.link.margin
    }

    fn exchange(&mut self, expect: Expect, timeout: Duration) -> Result<(), BusError> {
        self.ans.expect = expect;
        self.link.exchange(&self.tx, &mut self.ans, timeout, self.cfg.max_retries + 1)
    }

    fn one(&mut self, id: u8, len: usize, what: &'static str) -> Result<(), BusError> {
        let timeout = self.timeout_for(self.tx.len(), 1, len);
        self.exchange(Expect::One { id, len }, timeout)?;
        if let Some((id, code)) = self.ans.refused {
            return Err(BusError::Refused { id, code, what });
        }
        Ok(())
    }

    /// Pings `id`; its `Model_Number`.
    pub fn ping(&mut self, id: u8) -> Result<u16, BusError> {
        PacketWriter::new(&mut self.tx, id, instruction::PING).finish();
        self.one(id, 3, "PING")?;
        Ok(u16::from_le_bytes([self.ans.single[0], self.ans.single[1]]))
    }

    /// Reads `len` bytes at `addr` of servo `id`.
    pub fn read(&mut self, id: u8, addr: u16, len: u16) -> Result<&[u8], BusError> {
        let mut w = PacketWriter::new(&mut self.tx, id, instruction::READ);
        w.push(&addr.to_le_bytes()).push(&len.to_le_bytes());
        w.finish();
        self.one(id, len as usize, "READ")?;
        Ok(&self.ans.single[..self.ans.single_len])
    }

    /// Reads register `r` of servo `id`, decoded (two's complement where
    /// LeRobot decodes it).
    pub fn read_register(&mut self, id: u8, r: Register) -> Result<i32, BusError> {
        let bytes = self.read(id, r.addr, u16::from(r.len))?;
        Ok(register::decode(r, le(bytes)))
    }

    /// Writes `data` at `addr` of servo `id`, acknowledged (broadcast: not).
    pub fn write(&mut self, id: u8, addr: u16, data: &[u8]) -> Result<(), BusError> {
        let mut w = PacketWriter::new(&mut self.tx, id, instruction::WRITE);
        w.push(&addr.to_le_bytes()).push(data);
        w.finish().ok_or(BusError::PacketTooLong { params: data.len() + 2 })?;
        if id == BROADCAST_ID {
            return self.link.send(&self.tx);
        }
        self.one(id, 0, "WRITE")
    }

    /// Writes register `r` of servo `id`.
    pub fn write_register(&mut self, id: u8, r: Register, value: i32) -> Result<(), BusError> {
        let raw =
            register::encode(r, value).ok_or(BusError::ValueOutOfRange { register: r.name, value: value.into() })?;
        self.write(id, r.addr, &raw.to_le_bytes()[..r.len as usize])
    }

    /// One sync write of register `r` for every servo, `values` in `ids()` order.
    pub fn sync_write_register(&mut self, r: Register, values: &[i32]) -> Result<(), BusError> {
        if values.len() != self.ids.len() {
            return Err(BusError::LengthMismatch { what: r.name, got: values.len(), expected: self.ids.len() });
        }
        let len = r.len as usize;
        let mut w = PacketWriter::new(&mut self.tx, BROADCAST_ID, instruction::SYNC_WRITE);
        w.push(&r.addr.to_le_bytes()).push(&u16::from(r.len).to_le_bytes());
        for (&id, &v) in self.ids.iter().zip(values) {
            let Some(raw) = register::encode(r, v) else {
                return Err(BusError::ValueOutOfRange { register: r.name, value: v.into() });
            };
            w.push(&[id]).push(&raw.to_le_bytes()[..len]);
        }
        w.finish().ok_or(BusError::PacketTooLong { params: 4 + values.len() * (len + 1) })?;
        self.link.send(&self.tx)
    }

    fn sync_read(&mut self, addr: u16, len: u16) -> Result<(), BusError> {
        let len_us = len as usize;
        if len_us > MAX_BLOCK {
            return Err(BusError::PacketTooLong { params: len_us });
        }
        let mut w = PacketWriter::new(&mut self.tx, BROADCAST_ID, instruction::SYNC_READ);
        w.push(&addr.to_le_bytes()).push(&len.to_le_bytes()).push(&self.ids);
        w.finish().ok_or(BusError::PacketTooLong { params: 4 + self.ids.len() })?;
        self.ans.want.iter_mut().for_each(|w| *w = len_us);
        self.ans.asked.iter_mut().for_each(|a| *a = true);
        let timeout = self.timeout_for(self.tx.len(), self.ids.len(), len_us);
        self.exchange(Expect::Slots, timeout)
    }

    /// Sync-reads register `r` of every servo into `out` (decoded).
    pub fn sync_read_register(&mut self, r: Register, out: &mut [i32]) -> Result<(), BusError> {
        if out.len() != self.ids.len() {
            return Err(BusError::LengthMismatch { what: r.name, got: out.len(), expected: self.ids.len() });
        }
        self.sync_read(r.addr, u16::from(r.len))?;
        for (i, o) in out.iter_mut().enumerate() {
            let at = i * MAX_BLOCK;
            *o = register::decode(r, le(&self.ans.data[at..at + r.len as usize]));
        }
        Ok(())
    }

    /// One bulk read (0x92): register `reads[k].1` of servo `reads[k].0`,
    /// each its own register, into `out[k]` (decoded). Ids must be on the
    /// bus and distinct.
    pub fn bulk_read(&mut self, reads: &[(u8, Register)], out: &mut [i32]) -> Result<(), BusError> {
        if out.len() != reads.len() {
            return Err(BusError::LengthMismatch { what: "bulk read", got: out.len(), expected: reads.len() });
        }
        self.ans.asked.iter_mut().for_each(|a| *a = false);
        let mut w = PacketWriter::new(&mut self.tx, BROADCAST_ID, instruction::BULK_READ);
        let mut data_bytes = 0;
        for &(id, r) in reads {
            let Some(slot) = (self.ans.index[id as usize] as usize).checked_sub(1) else {
                return Err(BusError::BadId { id, why: "not on this bus" });
            };
            if self.ans.asked[slot] {
                return Err(BusError::BadId { id, why: "listed twice" });
            }
            self.ans.asked[slot] = true;
            self.ans.want[slot] = r.len as usize;
            data_bytes += r.len as usize;
            w.push(&[id]).push(&r.addr.to_le_bytes()).push(&u16::from(r.len).to_le_bytes());
        }
        w.finish().ok_or(BusError::PacketTooLong { params: reads.len() * 5 })?;
        let n = reads.len();
        let timeout = self.timeout_for(self.tx.len(), n, data_bytes / n.max(1) + 1);
        self.exchange(Expect::Slots, timeout)?;
        for (o, &(id, r)) in out.iter_mut().zip(reads) {
            let at = (self.ans.index[id as usize] as usize - 1) * MAX_BLOCK;
            *o = register::decode(r, le(&self.ans.data[at..at + r.len as usize]));
        }
        Ok(())
    }

    /// Each servo's `Hardware_Error_Status` as [`StatusBits`] (one read per
    /// servo: for after an alert, not for the tick).
    pub fn hardware_errors(&mut self, out: &mut [StatusBits]) -> Result<(), BusError> {
        if out.len() != self.ids.len() {
            return Err(BusError::LengthMismatch { what: "hardware errors", got: out.len(), expected: self.ids.len() });
        }
        for (i, o) in out.iter_mut().enumerate() {
            let id = self.ids[i];
            let raw = self.read_register(id, xseries::HARDWARE_ERROR_STATUS)?;
            *o = xseries::status_bits(raw as u8);
        }
        Ok(())
    }

    /// Servo `id`'s `Hardware_Error_Status` (one read: after an alert, not
    /// in the tick).
    pub fn hardware_error(&mut self, id: u8) -> Result<u8, BusError> {
        Ok(self.read_register(id, xseries::HARDWARE_ERROR_STATUS)? as u8)
    }

    /// Sets every servo's `Bus_Watchdog` to `timeout` rounded up to its
    /// 20 ms unit (at most 127 units, 2.54 s); `Duration::ZERO` switches it
    /// off and clears an expired watchdog (which otherwise makes the servo
    /// refuse goals). With it on and torque on, a servo that hears no
    /// instruction packet for `timeout` stops by itself: the host's crash
    /// or a cut cable cannot leave it driving.
    pub fn set_bus_watchdog(&mut self, timeout: Duration) -> Result<(), BusError> {
        let unit = u128::from(xseries::BUS_WATCHDOG_UNIT_MS) * 1_000_000;
        let units = timeout.as_nanos().div_ceil(unit);
        let value = i32::try_from(units).ok().filter(|u| *u <= 127).ok_or(BusError::ValueOutOfRange {
            register: xseries::BUS_WATCHDOG.name,
            value: units.min(i64::MAX as u128) as i64,
        })?;
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, xseries::BUS_WATCHDOG, value)?;
        }
        Ok(())
    }

    /// LeRobot's Koch follower set-up, servo by servo, acknowledged: torque
    /// off; `Return_Delay_Time`; `Operating_Mode` extended position (4),
    /// current-based position (5) for the gripper; the elbow's position
    /// gains. Torque stays off.
    pub fn setup_koch(&mut self, setup: &KochSetup) -> Result<(), BusError> {
        self.set_torque(false)?;
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, xseries::RETURN_DELAY_TIME, setup.return_delay_time.into())?;
        }
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            let mode = if setup.gripper_id == Some(id) {
                xseries::mode::CURRENT_POSITION
            } else {
                xseries::mode::EXTENDED_POSITION
            };
            self.write_register(id, xseries::OPERATING_MODE, mode.into())?;
        }
        if let Some(id) = setup.elbow_id.filter(|id| self.ans.index[*id as usize] != 0) {
            let (p, i, d) = setup.elbow_pid;
            self.write_register(id, xseries::POSITION_P_GAIN, p.into())?;
            self.write_register(id, xseries::POSITION_I_GAIN, i.into())?;
            self.write_register(id, xseries::POSITION_D_GAIN, d.into())?;
        }
        Ok(())
    }

    /// Limits every servo's output to `fraction` of its `PWM_Limit`
    /// (EEPROM 36, read from each servo) by writing `Goal_PWM` (RAM 100),
    /// each write acknowledged: in the position modes `Goal_PWM` bounds the
    /// PWM applied to the motor, which is how ROBOTIS limits force. 1.0
    /// writes `PWM_Limit` itself, the power-up value, which also undoes a
    /// lower limit an earlier run left. `fraction` in (0, 1], checked
    /// before anything is written. Returns the values written, in `ids()`
    /// order.
    pub fn set_torque_limit(&mut self, fraction: f64) -> Result<Vec<i32>, BusError> {
        crate::scaled_limit(fraction, 1)?;
        let mut written = Vec::with_capacity(self.ids.len());
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            let full = self.read_register(id, xseries::PWM_LIMIT)?;
            let value = crate::scaled_limit(fraction, full)?;
            self.write_register(id, xseries::GOAL_PWM, value)?;
            written.push(value);
        }
        Ok(written)
    }

    /// Checks every joint against `Homing_Offset`, `Min/Max_Position_Limit`
    /// and `Drive_Mode` (LeRobot's Dynamixel `is_calibrated` compares all
    /// four); the first disagreement is an error naming motor and register.
    pub fn check_calibration(&mut self, joints: &[Joint]) -> Result<(), BusError> {
        for j in joints {
            if self.ans.index[j.id as usize] == 0 {
                return Err(BusError::BadId { id: j.id, why: "in the calibration but not on this bus" });
            }
            let checks = [
                (xseries::HOMING_OFFSET, j.homing_offset),
                (xseries::MIN_POSITION_LIMIT, j.range_min),
                (xseries::MAX_POSITION_LIMIT, j.range_max),
                (xseries::DRIVE_MODE, i32::from(j.drive_mode)),
            ];
            check_registers(j, &checks, |id, r| self.read_register(id, r))?;
        }
        Ok(())
    }

    /// Writes the calibration as LeRobot does (`Homing_Offset`,
    /// `Min/Max_Position_Limit`); torque must be off (EEPROM).
    pub fn write_calibration(&mut self, joints: &[Joint]) -> Result<(), BusError> {
        for j in joints {
            self.write_register(j.id, xseries::HOMING_OFFSET, j.homing_offset)?;
            self.write_register(j.id, xseries::MIN_POSITION_LIMIT, j.range_min)?;
            self.write_register(j.id, xseries::MAX_POSITION_LIMIT, j.range_max)?;
        }
        Ok(())
    }

    /// LeRobot's `set_half_turn_homings` for Dynamixel: resets
    /// `Homing_Offset` to 0 and the limits to 0..4095, reads every
    /// position, and writes `Homing_Offset = 2047 - position` (Dynamixel adds
    /// the offset) so each servo then reads 2047 where it stands. Torque must
    /// be off (EEPROM; the servo refuses otherwise). Returns the offsets in
    /// `ids()` order.
    pub fn set_half_turn_homings(&mut self) -> Result<Vec<i32>, BusError> {
        let max_res = 4095;
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, xseries::HOMING_OFFSET, 0)?;
            self.write_register(id, xseries::MIN_POSITION_LIMIT, 0)?;
            self.write_register(id, xseries::MAX_POSITION_LIMIT, max_res)?;
        }
        let mut pos = vec![0; self.ids.len()];
        self.sync_read_positions(&mut pos)?;
        let homings: Vec<i32> = pos.iter().map(|p| max_res / 2 - p).collect();
        for (i, &h) in homings.iter().enumerate() {
            let id = self.ids[i];
            self.write_register(id, xseries::HOMING_OFFSET, h)?;
        }
        Ok(homings)
    }

    /// Torque off, acknowledged by every servo; no second torque-off on drop.
    pub fn shutdown(mut self) -> Result<(), BusError> {
        self.set_torque(false)?;
        self.shut_down = true;
        Ok(())
    }
}

impl ServoBus for DynamixelBus {
    fn ids(&self) -> &[u8] {
        &self.ids
    }

    fn sync_read_positions(&mut self, out: &mut [i32]) -> Result<(), BusError> {
        self.sync_read_register(xseries::PRESENT_POSITION, out)
    }

    /// The block `Present_Current` (126) .. `Present_Temperature` (146);
    /// `load` is `Present_Current`, `status` the alert bit of the status
    /// packet ([`DynamixelBus::hardware_errors`] says which error).
    fn sync_read_state(&mut self, out: &mut [ServoState]) -> Result<(), BusError> {
        if out.len() != self.ids.len() {
            return Err(BusError::LengthMismatch { what: "servo states", got: out.len(), expected: self.ids.len() });
        }
        let (addr, len) = xseries::STATE_BLOCK;
        self.sync_read(addr, len)?;
        for (i, o) in out.iter_mut().enumerate() {
            let b = &self.ans.data[i * MAX_BLOCK..i * MAX_BLOCK + len as usize];
            let voltage = u16::from_le_bytes([b[18], b[19]]);
            *o = ServoState {
                load: register::decode(xseries::PRESENT_CURRENT, le(&b[0..2])),
                velocity: register::decode(xseries::PRESENT_VELOCITY, le(&b[2..6])),
                position: register::decode(xseries::PRESENT_POSITION, le(&b[6..10])),
                voltage_dv: voltage.min(255) as u8,
                temperature_c: b[20],
                status: self.ans.alarms[i],
            };
        }
        Ok(())
    }

    fn sync_write_goals(&mut self, goals: &[i32]) -> Result<(), BusError> {
        self.sync_write_register(xseries::GOAL_POSITION, goals)
    }

    /// `Torque_Enable` alone, servo by servo, acknowledged (LeRobot's
    /// Dynamixel `enable_torque` / `disable_torque`).
    fn set_torque(&mut self, enable: bool) -> Result<(), BusError> {
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            self.write_register(id, xseries::TORQUE_ENABLE, i32::from(enable))?;
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

impl Drop for DynamixelBus {
    fn drop(&mut self) {
        if self.shut_down || !self.cfg.torque_off_on_drop {
            return;
        }
        let mut w = PacketWriter::new(&mut self.tx, BROADCAST_ID, instruction::WRITE);
        w.push(&xseries::TORQUE_ENABLE.addr.to_le_bytes()).push(&[0]);
        if w.finish().is_some() {
            let _ = self.link.send(&self.tx);
        }
    }
}
