//! Per-tick bus time for 6 servos (sync read + sync write) at 1 Mbit/s
//! against the emulators (Feetech, then Dynamixel), median and p99, next to
//! the wire time.
//!
//! `cargo run -p ganglion-servo --example bus_bench [-- SERVOS TICKS]`

use std::time::Duration;

use ganglion_servo::bench::{self, Protocol};

fn main() {
    let mut args = std::env::args().skip(1);
    let servos = args.next().and_then(|s| s.parse().ok()).unwrap_or(6);
    let ticks = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    for (protocol, paced) in [
        (Protocol::Feetech, false),
        (Protocol::Feetech, true),
        (Protocol::Dynamixel, false),
        (Protocol::Dynamixel, true),
    ] {
        match bench::run(protocol, servos, ticks, Duration::from_millis(2), paced) {
            Ok(b) => {
                println!(
                    "{:?}: {} servos, {} ticks, {} baud, emulator {}: tick p50 {:.1} us p99 {:.1} us max {:.1} us \
                     (read p50 {:.1} p99 {:.1}; write p50 {:.1} p99 {:.1}); wire {} bytes = {:.1} us; \
                     retries {} timeouts {}",
                    b.protocol,
                    b.servos,
                    b.ticks,
                    b.baud,
                    if b.paced { "paced at the wire time" } else { "unpaced (software + pty only)" },
                    b.tick_us.p50,
                    b.tick_us.p99,
                    b.tick_us.max,
                    b.read_us.p50,
                    b.read_us.p99,
                    b.write_us.p50,
                    b.write_us.p99,
                    b.tick_bytes,
                    b.wire_us,
                    b.counters.retries,
                    b.counters.timeouts,
                );
                if let Ok(json) = serde_json::to_string(&b) {
                    println!("{json}");
                }
            }
            Err(e) => {
                eprintln!("bus bench failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
