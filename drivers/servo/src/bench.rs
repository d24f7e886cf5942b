//! The bus's per-tick cost: one sync read of present position and one sync
//! write of goal positions for N servos, against an emulator on a pty, next
//! to the wire time those bytes need at the baud rate (10 bits a byte).
//! `ganglion bench bus` prints it (docs/BENCHMARKS.md, "Servo bus").

use std::time::{Duration, Instant};

use ganglion_core::stats::Percentiles;

use crate::dxl_emulator::{DxlEmulator, DxlEmulatorConfig};
use crate::emulator::{Emulator, EmulatorConfig};
use crate::{BusCounters, BusError, DynamixelBus, DynamixelConfig, FeetechBus, FeetechConfig, ServoBus};

/// The bus protocol measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Protocol {
    /// Feetech STS protocol 0 ([`FeetechBus`]).
    Feetech,
    /// Dynamixel protocol 2.0 ([`DynamixelBus`]).
    Dynamixel,
}

/// What [`run`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BusBench {
    /// The protocol.
    pub protocol: Protocol,
    /// Servos on the bus.
    pub servos: usize,
    /// Ticks measured.
    pub ticks: usize,
    /// Baud rate of the driver (and of the emulator's pacing, when on).
    pub baud: u32,
    /// Whether the emulator waited the wire time of every exchange.
    pub paced: bool,
    /// Bytes on the wire per tick: sync read, its answers, sync write.
    pub tick_bytes: usize,
    /// Their wire time at `baud`, microseconds.
    pub wire_us: f64,
    /// Sync read + sync write, microseconds.
    pub tick_us: Percentiles,
    /// The sync read alone, microseconds.
    pub read_us: Percentiles,
    /// The sync write alone, microseconds.
    pub write_us: Percentiles,
    /// Ticks whose sync read failed after its retries (left out of the
    /// percentiles; counted in `counters.failures` too).
    pub failed_reads: usize,
    /// The driver's counters at the end.
    pub counters: BusCounters,
}

struct Samples {
    tick: Vec<f64>,
    read: Vec<f64>,
    write: Vec<f64>,
    failed_reads: usize,
}

fn measure(bus: &mut impl ServoBus, ticks: usize, interval: Duration) -> Result<Samples, BusError> {
    let n = bus.ids().len();
    let mut pos = vec![0i32; n];
    let mut goals = vec![0i32; n];
    let mut s = Samples {
        tick: Vec::with_capacity(ticks),
        read: Vec::with_capacity(ticks),
        write: Vec::with_capacity(ticks),
        failed_reads: 0,
    };
    let warmup = 50;
    for k in 0..ticks + warmup {
        let t0 = Instant::now();
        // A read that fails after its retries (a starved emulator thread on
        // a busy machine) is counted, not fatal: the next tick tries again.
        let read = bus.sync_read_positions(&mut pos);
        let t1 = Instant::now();
        if read.is_err() {
            s.failed_reads += usize::from(k >= warmup);
            continue;
        }
        for (i, g) in goals.iter_mut().enumerate() {
            *g = 2048 + ((k as f64 * 0.05 + i as f64).sin() * 300.0) as i32;
        }
        bus.sync_write_goals(&goals)?;
        let t2 = Instant::now();
        if k >= warmup {
            s.tick.push((t2 - t0).as_secs_f64() * 1e6);
            s.read.push((t1 - t0).as_secs_f64() * 1e6);
            s.write.push((t2 - t1).as_secs_f64() * 1e6);
        }
        std::thread::sleep(interval);
    }
    Ok(s)
}

fn pty_error(source: std::io::Error) -> BusError {
    BusError::Port { port: "emulator".into(), what: "open a pty", source }
}

/// Measures `ticks` ticks of `servos` servos on `protocol` at 1 Mbit/s, one
/// tick every `interval` (the sync read and write back to back, then a
/// sleep), after 50 warm-up ticks. With `paced`, the emulator adds the wire
/// time of each exchange, so the numbers approximate a real bus; without,
/// they are the software and pty overhead alone.
pub fn run(
    protocol: Protocol,
    servos: usize,
    ticks: usize,
    interval: Duration,
    paced: bool,
) -> Result<BusBench, BusError> {
    let baud = 1_000_000;
    let ids: Vec<u8> = (1..=servos.clamp(1, 200) as u8).collect();
    let pace_baud = paced.then_some(baud);
    let margin = Duration::from_millis(20);
    let (samples, tick_bytes, wire, counters) = match protocol {
        Protocol::Feetech => {
            let e = Emulator::start(EmulatorConfig { ids: ids.clone(), pace_baud, ..EmulatorConfig::default() })
                .map_err(pty_error)?;
            let cfg = FeetechConfig { baud, timeout_margin: margin, ..FeetechConfig::default() };
            let mut bus = FeetechBus::open(e.path(), &ids, cfg)?;
            bus.set_torque(true)?;
            let s = measure(&mut bus, ticks, interval)?;
            let (bytes, wire) = bus.tick_wire();
            let c = bus.counters();
            bus.shutdown()?;
            (s, bytes, wire, c)
        }
        Protocol::Dynamixel => {
            let e =
                DxlEmulator::start(DxlEmulatorConfig { ids: ids.clone(), pace_baud, ..DxlEmulatorConfig::default() })
                    .map_err(pty_error)?;
            let cfg = DynamixelConfig { baud, timeout_margin: margin, ..DynamixelConfig::default() };
            let mut bus = DynamixelBus::open(e.path(), &ids, cfg)?;
            // LeRobot's set-up: no return delay.
            bus.setup_koch(&crate::KochSetup::default())?;
            bus.set_torque(true)?;
            let s = measure(&mut bus, ticks, interval)?;
            let (bytes, wire) = bus.tick_wire();
            let c = bus.counters();
            bus.shutdown()?;
            (s, bytes, wire, c)
        }
    };
    let Samples { mut tick, mut read, mut write, failed_reads } = samples;
    Ok(BusBench {
        protocol,
        servos: ids.len(),
        ticks,
        baud,
        paced,
        tick_bytes,
        wire_us: wire.as_secs_f64() * 1e6,
        tick_us: Percentiles::of(&mut tick).rounded(),
        read_us: Percentiles::of(&mut read).rounded(),
        write_us: Percentiles::of(&mut write).rounded(),
        failed_reads,
        counters,
    })
}
