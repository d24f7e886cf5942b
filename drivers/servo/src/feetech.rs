//! The Feetech STS/SMS protocol-0 bus driver.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::calibration::{CalibrationError, Joint};
use crate::error::BusError;
use crate::protocol::{self, instruction, next_frame, Frame, PacketWriter, StatusBits, BROADCAST_ID, MAX_ID};
use crate::serial::SerialPort;
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

const RX_BUF: usize = 4 * protocol::MAX_PACKET;

/// A Feetech protocol-0 bus on a serial port. See [`ServoBus`] for the
/// per-tick contract; the other methods are for set-up.
#[derive(Debug)]
pub struct FeetechBus {
    port: SerialPort,
    cfg: FeetechConfig,
    ids: Vec<u8>,
    /// id → 1 + index in `ids`; 0 when not on this bus.
    index: [u8; 256],
    tx: Vec<u8>,
    rx: Vec<u8>,
    fill: usize,
    /// Sync-read data: `ids.len()` blocks of `block` bytes.
    data: Vec<u8>,
    block: usize,
    seen: Vec<bool>,
    alarms: Vec<StatusBits>,
    /// The latest single-servo answer.
    single: [u8; protocol::MAX_PARAMS],
    single_len: usize,
    single_error: StatusBits,
    single_seen: bool,
    counters: BusCounters,
    margin: Duration,
    shut_down: bool,
}

impl FeetechBus {
    /// Opens the bus on `port` for servos `ids` (the order of every slice
    /// later), and with `check_model` pings each and checks it is an STS3215:
    /// a wrong port, a missing id or another model is an error naming it.
    pub fn open(port: &Path, ids: &[u8], cfg: FeetechConfig) -> Result<FeetechBus, BusError> {
        let mut index = [0u8; 256];
        if ids.is_empty() {
            return Err(BusError::LengthMismatch { what: "servo ids", got: 0, expected: 1 });
        }
        for (i, &id) in ids.iter().enumerate() {
            if id > MAX_ID {
                return Err(BusError::BadId { id, why: "above 252" });
            }
            if index[id as usize] != 0 {
                return Err(BusError::BadId { id, why: "listed twice" });
            }
            index[id as usize] = (i + 1) as u8;
        }
        // The longest per-tick packets must fit: a sync write of 2 bytes per
        // servo, a sync read of every id.
        let sync_write_params = 2 + ids.len() * 3;
        if sync_write_params > protocol::MAX_PARAMS || ids.len() > u8::MAX as usize {
            return Err(BusError::PacketTooLong { params: sync_write_params });
        }
        let serial = SerialPort::open(port, cfg.baud, cfg.low_latency).map_err(|source| BusError::Port {
            port: port.display().to_string(),
            what: "open at the configured baud rate",
            source,
        })?;
        let margin = cfg.timeout_margin + Duration::from_millis(2 * u64::from(serial.latency_timer_ms().unwrap_or(0)));
        let block = sts::STATE_BLOCK.1 as usize;
        let mut bus = FeetechBus {
            port: serial,
            ids: ids.to_vec(),
            index,
            tx: Vec::with_capacity(protocol::MAX_PACKET),
            rx: vec![0; RX_BUF],
            fill: 0,
            data: vec![0; ids.len() * block],
            block,
            seen: vec![false; ids.len()],
            alarms: vec![StatusBits::default(); ids.len()],
            single: [0; protocol::MAX_PARAMS],
            single_len: 0,
            single_error: StatusBits::default(),
            single_seen: false,
            counters: BusCounters::default(),
            margin,
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
        self.port.path()
    }

    /// The timeout of one attempt of a state sync read.
    pub fn read_timeout(&self) -> Duration {
        self.timeout_for(protocol::OVERHEAD + 2 + self.ids.len(), Expect::All { len: self.block })
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
            + self.margin
    }

    fn io(&self, source: std::io::Error) -> BusError {
        BusError::Io { port: self.port.path().to_string(), source }
    }

    /// Sends `self.tx` and waits for `expect`, retrying up to `max_retries`.
    fn exchange(&mut self, expect: Expect) -> Result<(), BusError> {
        let attempts = self.cfg.max_retries + 1;
        let timeout = self.timeout_for(self.tx.len(), expect);
        let mut corrupt = false;
        for attempt in 0..attempts {
            if attempt > 0 {
                self.counters.retries += 1;
            }
            let stale = self.port.discard_input(&mut self.rx).map_err(|e| self.io(e))?;
            self.counters.dropped_bytes += stale as u64;
            self.fill = 0;
            self.seen.iter_mut().for_each(|s| *s = false);
            self.single_seen = false;
            let sent = self.port.write_all(&self.tx);
            sent.map_err(|e| self.io(e))?;
            self.counters.packets_sent += 1;
            let deadline = Instant::now() + timeout;
            corrupt = false;
            loop {
                corrupt |= self.parse(expect);
                if self.complete(expect) {
                    return Ok(());
                }
                let got = self.port.read_until(&mut self.rx[self.fill..], deadline);
                match got {
                    Ok(0) => break,
                    Ok(n) => self.fill += n,
                    Err(e) => return Err(self.io(e)),
                }
            }
            self.counters.timeouts += 1;
        }
        self.counters.failures += 1;
        let id = match expect {
            Expect::One { id, .. } => id,
            Expect::All { .. } => {
                let missing = self.seen.iter().position(|s| !s).unwrap_or(0);
                self.ids[missing]
            }
        };
        let port = self.port.path().to_string();
        Err(if corrupt {
            BusError::Corrupt { id, port, attempts }
        } else {
            BusError::NoResponse { id, port, attempts, timeout_us: timeout.as_micros() as u64 }
        })
    }

    fn complete(&self, expect: Expect) -> bool {
        match expect {
            Expect::All { .. } => self.seen.iter().all(|s| *s),
            Expect::One { .. } => self.single_seen,
        }
    }

    /// Takes every complete packet out of `rx`; true when one was corrupt.
    fn parse(&mut self, expect: Expect) -> bool {
        let mut pos = 0;
        let mut corrupt = false;
        loop {
            match next_frame(&self.rx[pos..self.fill]) {
                Frame::Incomplete { skip } => {
                    self.counters.dropped_bytes += skip as u64;
                    pos += skip;
                    break;
                }
                Frame::BadChecksum { skip } => {
                    self.counters.dropped_bytes += skip as u64 + 2;
                    self.counters.checksum_errors += 1;
                    pos += skip + 2;
                    corrupt = true;
                }
                Frame::Packet { skip, id, code, params, end } => {
                    self.counters.dropped_bytes += skip as u64;
                    if code > 0x7F {
                        // Not a status packet (an echoed instruction): junk.
                        self.counters.dropped_bytes += 1;
                        pos += skip + 1;
                        continue;
                    }
                    let params = pos + params.start..pos + params.end;
                    corrupt |= !self.accept(expect, id, StatusBits(code), params);
                    pos += end;
                }
            }
        }
        if pos >= self.fill {
            self.fill = 0;
        } else {
            self.rx.copy_within(pos..self.fill, 0);
            self.fill -= pos;
        }
        if self.fill == self.rx.len() {
            // Cannot happen (a packet is shorter than the buffer); stay total.
            self.counters.dropped_bytes += self.fill as u64;
            self.fill = 0;
        }
        corrupt
    }

    /// Files one status packet; false when it came from a servo waited for
    /// but with the wrong length.
    fn accept(&mut self, expect: Expect, id: u8, error: StatusBits, params: std::ops::Range<usize>) -> bool {
        let n = params.len();
        match expect {
            Expect::All { len } => {
                let slot = self.index[id as usize] as usize;
                if slot == 0 || self.seen[slot - 1] {
                    self.counters.unexpected_packets += 1;
                    return true;
                }
                if n != len {
                    self.counters.unexpected_packets += 1;
                    return false;
                }
                let i = slot - 1;
                self.data[i * self.block..i * self.block + len].copy_from_slice(&self.rx[params]);
                self.seen[i] = true;
                self.alarms[i] = error;
            }
            Expect::One { id: want, len } => {
                if id != want || self.single_seen {
                    self.counters.unexpected_packets += 1;
                    return true;
                }
                if n != len {
                    self.counters.unexpected_packets += 1;
                    return false;
                }
                self.single[..len].copy_from_slice(&self.rx[params]);
                self.single_len = len;
                self.single_error = error;
                self.single_seen = true;
                if let Some(slot) = self.index[id as usize].checked_sub(1) {
                    self.alarms[slot as usize] = error;
                }
            }
        }
        self.counters.status_packets += 1;
        if !error.is_ok() {
            self.counters.alarms += 1;
        }
        true
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
        Ok(self.single_error)
    }

    /// Reads `len` bytes at `addr` of servo `id`. An answer with alarm bits
    /// is an error (as LeRobot's `read` raises).
    pub fn read(&mut self, id: u8, addr: u8, len: u8) -> Result<&[u8], BusError> {
        self.build(id, instruction::READ, &[addr, len])?;
        self.exchange(Expect::One { id, len: len as usize })?;
        if !self.single_error.is_ok() {
            return Err(BusError::Alarm { id, bits: self.single_error });
        }
        Ok(&self.single[..self.single_len])
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
            return self.send_only();
        }
        self.exchange(Expect::One { id, len: 0 })?;
        if !self.single_error.is_ok() {
            return Err(BusError::Alarm { id, bits: self.single_error });
        }
        Ok(())
    }

    /// Writes register `r` of servo `id` (encoded as LeRobot encodes it).
    pub fn write_register(&mut self, id: u8, r: Register, value: i32) -> Result<(), BusError> {
        let raw = sts::encode(r, value).ok_or(BusError::ValueOutOfRange { register: r.name, value: value.into() })?;
        let bytes = raw.to_le_bytes();
        self.write(id, addr8(r), &bytes[..r.len as usize])
    }

    fn send_only(&mut self) -> Result<(), BusError> {
        let sent = self.port.write_all(&self.tx);
        sent.map_err(|e| self.io(e))?;
        self.counters.packets_sent += 1;
        Ok(())
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
        self.send_only()
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
            let b = &self.data[i * self.block..i * self.block + r.len as usize];
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

    /// Checks every joint's calibration against the servo's registers
    /// (`Homing_Offset`, `Min_Position_Limit`, `Max_Position_Limit`), as
    /// LeRobot's `is_calibrated` does; the first disagreement is an error
    /// naming the motor, the register and both values. Call before arming.
    pub fn check_calibration(&mut self, joints: &[Joint]) -> Result<(), BusError> {
        for j in joints {
            if self.index[j.id as usize] == 0 {
                return Err(BusError::BadId { id: j.id, why: "in the calibration but not on this bus" });
            }
            let checks = [
                (sts::HOMING_OFFSET, j.homing_offset),
                (sts::MIN_POSITION_LIMIT, j.range_min),
                (sts::MAX_POSITION_LIMIT, j.range_max),
            ];
            for (r, want) in checks {
                let got = self.read_register(j.id, r)?;
                if got != want {
                    return Err(CalibrationError::RegisterMismatch {
                        motor: j.name.clone(),
                        id: j.id,
                        register: r.name,
                        file: want,
                        servo: got,
                    }
                    .into());
                }
            }
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
            let b = &self.data[i * self.block..(i + 1) * self.block];
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
        &self.alarms
    }

    fn counters(&self) -> BusCounters {
        self.counters
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
                let _ = self.send_only();
            }
        }
    }
}

/// A Feetech register's address: one byte on the wire (the STS table ends
/// at 86).
fn addr8(r: Register) -> u8 {
    r.addr as u8
}

/// Little-endian bytes (1..=4) as a number.
fn le(bytes: &[u8]) -> u32 {
    bytes.iter().rev().fold(0u32, |a, b| (a << 8) | u32::from(*b))
}
