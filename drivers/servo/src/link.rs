//! The exchange engine both drivers share: send an instruction packet,
//! collect status packets until everything asked for has arrived or the
//! timeout has passed, repeat a bounded number of times, count everything.
//! What a packet means is the protocol's business ([`Collect`]).

use std::time::{Duration, Instant};

use crate::error::BusError;
use crate::protocol::{Frame, MAX_ID};
use crate::serial::SerialPort;
use crate::BusCounters;

/// What one exchange waits for, and what it does with each packet.
pub(crate) trait Collect {
    /// Starts an exchange (before its first attempt): forgets which servos
    /// answered in earlier exchanges.
    fn begin(&mut self);
    /// Forgets what an earlier attempt collected (but remembers who
    /// answered in it, for [`missing`](Collect::missing)).
    fn reset(&mut self);
    /// Whether everything asked for has arrived.
    fn complete(&self) -> bool;
    /// The servo to name when the exchange fails: one that answered in no
    /// attempt (a silent servo; a late answer of an earlier attempt can
    /// make another one look missing in the last), else the last attempt's
    /// first missing one.
    fn missing(&self) -> u8;
    /// Files one well-formed packet (`body` as on the wire, after the
    /// instruction or error code); false when it came from a servo waited
    /// for but cannot be used (it then counts as corrupt).
    fn accept(&mut self, counters: &mut BusCounters, id: u8, code: u8, body: &[u8]) -> bool;
}

/// A protocol's framing, as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Framing {
    /// Finds the next packet.
    pub next_frame: fn(&[u8]) -> Frame,
    /// Header bytes dropped after a bad checksum.
    pub header: usize,
    /// Whether a packet with this code is a status packet (anything else,
    /// e.g. an echoed instruction, is junk).
    pub is_status: fn(u8) -> bool,
}

/// A serial port with its receive buffer and counters.
#[derive(Debug)]
pub(crate) struct Link {
    port: SerialPort,
    rx: Vec<u8>,
    fill: usize,
    framing: Framing,
    /// What the bus has counted.
    pub counters: BusCounters,
    /// Added to the wire time of every exchange.
    pub margin: Duration,
}

impl Link {
    /// Opens `path` at `baud`; the margin gets twice the adapter's latency
    /// timer on top of `margin`.
    pub fn open(
        path: &std::path::Path,
        baud: u32,
        low_latency: bool,
        margin: Duration,
        framing: Framing,
    ) -> Result<Link, BusError> {
        let port = SerialPort::open(path, baud, low_latency).map_err(|source| BusError::Port {
            port: path.display().to_string(),
            what: "open at the configured baud rate",
            source,
        })?;
        let margin = margin + Duration::from_millis(2 * u64::from(port.latency_timer_ms().unwrap_or(0)));
        Ok(Link { port, rx: vec![0; 4096], fill: 0, framing, counters: BusCounters::default(), margin })
    }

    /// The port's path.
    pub fn path(&self) -> &str {
        self.port.path()
    }

    pub fn io(&self, source: std::io::Error) -> BusError {
        BusError::Io { port: self.port.path().to_string(), source }
    }

    /// Writes a packet nobody answers.
    pub fn send(&mut self, tx: &[u8]) -> Result<(), BusError> {
        let sent = self.port.write_all(tx);
        sent.map_err(|e| self.io(e))?;
        self.counters.packets_sent += 1;
        Ok(())
    }

    /// Sends `tx` and collects into `c`, each attempt bounded by `timeout`,
    /// at most `attempts` attempts. The error names `c.missing()`:
    /// [`BusError::Corrupt`] when the last attempt saw a corrupt packet,
    /// [`BusError::NoResponse`] otherwise.
    pub fn exchange<C: Collect>(
        &mut self,
        tx: &[u8],
        c: &mut C,
        timeout: Duration,
        attempts: u32,
    ) -> Result<(), BusError> {
        let mut corrupt = false;
        c.begin();
        for attempt in 0..attempts {
            if attempt > 0 {
                self.counters.retries += 1;
            }
            // Late answers to an earlier attempt are stale: dropped, counted.
            let stale = self.port.discard_input(&mut self.rx).map_err(|e| self.io(e))?;
            self.counters.dropped_bytes += stale as u64;
            self.fill = 0;
            c.reset();
            self.send(tx)?;
            let deadline = Instant::now() + timeout;
            corrupt = false;
            loop {
                corrupt |= self.parse(c);
                if c.complete() {
                    if attempt > 0 {
                        // An earlier attempt's answers may still be on their
                        // way (a protocol-0 status packet does not say which
                        // request it answers): wait them out, so they are
                        // not taken for the next exchange's answers.
                        self.drain_until(Instant::now() + timeout)?;
                    }
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
        let (id, port) = (c.missing(), self.port.path().to_string());
        Err(if corrupt {
            BusError::Corrupt { id, port, attempts }
        } else {
            BusError::NoResponse { id, port, attempts, timeout_us: timeout.as_micros() as u64 }
        })
    }

    /// Reads and drops everything that arrives until `deadline` (counted).
    fn drain_until(&mut self, deadline: Instant) -> Result<(), BusError> {
        self.fill = 0;
        loop {
            match self.port.read_until(&mut self.rx, deadline) {
                Ok(0) => return Ok(()),
                Ok(n) => self.counters.dropped_bytes += n as u64,
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    /// Takes every complete packet out of the buffer; true when one was corrupt.
    fn parse<C: Collect>(&mut self, c: &mut C) -> bool {
        let mut pos = 0;
        let mut corrupt = false;
        loop {
            match (self.framing.next_frame)(&self.rx[pos..self.fill]) {
                Frame::Incomplete { skip } => {
                    self.counters.dropped_bytes += skip as u64;
                    pos += skip;
                    break;
                }
                Frame::BadChecksum { skip } => {
                    self.counters.dropped_bytes += (skip + self.framing.header) as u64;
                    self.counters.checksum_errors += 1;
                    pos += skip + self.framing.header;
                    corrupt = true;
                }
                Frame::Packet { skip, id, code, params, end } => {
                    self.counters.dropped_bytes += skip as u64;
                    if !(self.framing.is_status)(code) {
                        // Not a status packet (an echoed instruction): junk.
                        self.counters.dropped_bytes += 1;
                        pos += skip + 1;
                        continue;
                    }
                    let body = &self.rx[pos + params.start..pos + params.end];
                    corrupt |= !c.accept(&mut self.counters, id, code, body);
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
}

/// `ids` checked (each ≤ 252, none twice, at least one) and indexed: id →
/// 1 + its position, 0 for ids not on the bus.
pub(crate) fn index_ids(ids: &[u8]) -> Result<[u8; 256], BusError> {
    let mut index = [0u8; 256];
    if ids.is_empty() {
        return Err(BusError::LengthMismatch { what: "servo ids", got: 0, expected: 1 });
    }
    if ids.len() > u8::MAX as usize {
        return Err(BusError::LengthMismatch { what: "servo ids", got: ids.len(), expected: u8::MAX as usize });
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
    Ok(index)
}

/// Little-endian bytes (1..=4) as a number.
pub(crate) fn le(bytes: &[u8]) -> u32 {
    bytes.iter().rev().fold(0u32, |a, b| (a << 8) | u32::from(*b))
}
