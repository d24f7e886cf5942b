//! An emulated bus of STS3215 servos (or, with `--dynamixel`, Dynamixel
//! X-series servos) on a pty, for trying a driver (ours, LeRobot's, the
//! vendors' SDKs) without an arm.
//!
//! `servo-emulator [--dynamixel] [--ids 1,2,3,4,5,6] [--speed TICKS_PER_S] [--calibration FILE.json] [--paced]`
//!
//! Prints the pty's path on the first line of stdout, then serves until
//! stdin closes or the process is killed.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use ganglion_servo::dxl_emulator::{self, DxlEmulator, DxlEmulatorConfig};
use ganglion_servo::emulator::{load_calibration, Emulator, EmulatorConfig};
use ganglion_servo::CalibrationFile;

fn usage(msg: &str) -> ! {
    eprintln!("servo-emulator: {msg}");
    eprintln!(
        "usage: servo-emulator [--dynamixel] [--ids 1,2,3,4,5,6] [--speed TICKS_PER_S] [--calibration FILE.json] [--paced]"
    );
    std::process::exit(2);
}

fn main() {
    let mut cfg = EmulatorConfig::default();
    let mut calibration: Option<PathBuf> = None;
    let mut dynamixel = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ids" => {
                let v = args.next().unwrap_or_else(|| usage("--ids needs a list"));
                let ids: Result<Vec<u8>, _> = v.split(',').map(|s| s.trim().parse::<u8>()).collect();
                cfg.ids = ids.unwrap_or_else(|_| usage("--ids: comma-separated ids 0..=252"));
            }
            "--speed" => {
                let v = args.next().unwrap_or_else(|| usage("--speed needs a number"));
                cfg.max_speed = v.parse().unwrap_or_else(|_| usage("--speed: ticks per second"));
            }
            "--calibration" => {
                calibration = Some(args.next().unwrap_or_else(|| usage("--calibration needs a file")).into())
            }
            "--paced" => cfg.pace_baud = Some(1_000_000),
            "--dynamixel" => dynamixel = true,
            "-h" | "--help" => usage("an emulated STS3215 bus on a pty"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let file = calibration.map(|path| {
        CalibrationFile::load(&path).unwrap_or_else(|e| {
            eprintln!("servo-emulator: {e}");
            std::process::exit(1);
        })
    });
    let fail = |e: std::io::Error| -> ! {
        eprintln!("servo-emulator: cannot open a pty: {e}");
        std::process::exit(1);
    };
    // Both kinds stop their thread when dropped at the end of main.
    let (path, stats): (PathBuf, Box<dyn Fn() -> ganglion_servo::emulator::EmulatorStats>) = if dynamixel {
        let dcfg = DxlEmulatorConfig {
            ids: cfg.ids.clone(),
            max_speed: cfg.max_speed,
            pace_baud: cfg.pace_baud,
            ..DxlEmulatorConfig::default()
        };
        let e = DxlEmulator::start(dcfg).unwrap_or_else(|e| fail(e));
        if let Some(f) = &file {
            dxl_emulator::load_calibration(&e, f);
        }
        (e.path().to_path_buf(), Box::new(move || e.stats()))
    } else {
        let e = Emulator::start(cfg).unwrap_or_else(|e| fail(e));
        if let Some(f) = &file {
            load_calibration(&e, f);
        }
        (e.path().to_path_buf(), Box::new(move || e.stats()))
    };
    println!("{}", path.display());
    let _ = std::io::stdout().flush();
    // Serve until stdin closes (or a signal ends the process).
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        if line.is_err() {
            break;
        }
    }
    let s = stats();
    eprintln!("servo-emulator: {} packets, {} answers, {} bad checksums", s.packets, s.answers, s.bad_checksums);
}
