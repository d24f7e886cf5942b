//! The bus's per-tick cost: one sync read of present position and one sync
//! write of goal positions for N servos, against the emulator on a pty,
//! next to the wire time those bytes need at the baud rate (10 bits a byte).
//! `cargo run -p ganglion-servo --example bus_bench`.

use std::time::{Duration, Instant};

use ganglion_core::stats::Percentiles;

use crate::emulator::{Emulator, EmulatorConfig};
use crate::{BusCounters, BusError, FeetechBus, FeetechConfig, ServoBus};

/// What [`run`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BusBench {
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
    /// The driver's counters at the end.
    pub counters: BusCounters,
}

/// Measures `ticks` ticks of `servos` servos, one tick every `interval`
/// (the sync read and write back to back, then a sleep), after a warm-up.
/// With `paced`, the emulator adds the wire time of each exchange, so the
/// numbers approximate a real bus; without, they are the software and pty
/// overhead alone.
pub fn run(servos: usize, ticks: usize, interval: Duration, paced: bool) -> Result<BusBench, BusError> {
    let baud = 1_000_000;
    let ids: Vec<u8> = (1..=servos.min(200) as u8).collect();
    let emulator = Emulator::start(EmulatorConfig {
        ids: ids.clone(),
        pace_baud: paced.then_some(baud),
        ..EmulatorConfig::default()
    })
    .map_err(|source| BusError::Port { port: "emulator".into(), what: "open a pty", source })?;
    let cfg = FeetechConfig { baud, timeout_margin: Duration::from_millis(20), ..FeetechConfig::default() };
    let mut bus = FeetechBus::open(emulator.path(), &ids, cfg)?;
    bus.set_torque(true)?;
    let mut pos = vec![0i32; ids.len()];
    let mut goals = vec![0i32; ids.len()];
    let (mut tick, mut read, mut write) = (Vec::new(), Vec::new(), Vec::new());
    let warmup = 50;
    for k in 0..ticks + warmup {
        let t0 = Instant::now();
        bus.sync_read_positions(&mut pos)?;
        let t1 = Instant::now();
        for (i, g) in goals.iter_mut().enumerate() {
            *g = 2048 + ((k as f64 * 0.05 + i as f64).sin() * 300.0) as i32;
        }
        bus.sync_write_goals(&goals)?;
        let t2 = Instant::now();
        if k >= warmup {
            tick.push((t2 - t0).as_secs_f64() * 1e6);
            read.push((t1 - t0).as_secs_f64() * 1e6);
            write.push((t2 - t1).as_secs_f64() * 1e6);
        }
        std::thread::sleep(interval);
    }
    let (tick_bytes, wire) = bus.tick_wire();
    let counters = bus.counters();
    bus.shutdown()?;
    Ok(BusBench {
        servos: ids.len(),
        ticks,
        baud,
        paced,
        tick_bytes,
        wire_us: wire.as_secs_f64() * 1e6,
        tick_us: Percentiles::of(&mut tick).rounded(),
        read_us: Percentiles::of(&mut read).rounded(),
        write_us: Percentiles::of(&mut write).rounded(),
        counters,
    })
}
