//! A serial port in raw mode, through termios (`rustix`): 8N1, no flow
//! control, any baud rate the driver accepts (Linux sets non-standard rates
//! through `termios2`), non-blocking reads bounded by `poll` deadlines.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::OFlags;
use rustix::termios::{self, ControlModes, OptionalActions, QueueSelector, SpecialCodeIndex, Termios};

/// An open serial port.
#[derive(Debug)]
pub struct SerialPort {
    file: File,
    path: String,
    latency_timer_ms: Option<u32>,
}

/// `t` made raw 8N1 at `baud`, reading whatever is there (VMIN 0, VTIME 0).
pub fn make_raw(t: &mut Termios, baud: u32) -> io::Result<()> {
    t.make_raw();
    t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD | ControlModes::CS8;
    t.control_modes &= !(ControlModes::CSTOPB | ControlModes::CRTSCTS | ControlModes::PARENB);
    t.special_codes[SpecialCodeIndex::VMIN] = 0;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    t.set_speed(baud)?;
    Ok(())
}

impl SerialPort {
    /// Opens `path` at `baud`, raw, and discards anything pending. With
    /// `low_latency`, asks the USB-serial driver for its shortest latency
    /// timer (FTDI adapters: `/sys/bus/usb-serial/devices/ttyUSBn/latency_timer`
    /// set to 1 ms) where the kernel offers one and allows it; best effort.
    pub fn open(path: &Path, baud: u32, low_latency: bool) -> io::Result<SerialPort> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlags::NOCTTY | OFlags::NONBLOCK).bits() as i32)
            .open(path)?;
        let mut t = termios::tcgetattr(&file)?;
        make_raw(&mut t, baud)?;
        termios::tcsetattr(&file, OptionalActions::Now, &t)?;
        let check = termios::tcgetattr(&file)?;
        if check.output_speed() != baud {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the driver set {} baud instead of {baud}", check.output_speed()),
            ));
        }
        termios::tcflush(&file, QueueSelector::IOFlush)?;
        let latency_timer_ms = latency_timer(path, low_latency);
        Ok(SerialPort { file, path: path.display().to_string(), latency_timer_ms })
    }

    /// The path it was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The USB-serial latency timer in milliseconds, where the adapter has one.
    pub fn latency_timer_ms(&self) -> Option<u32> {
        self.latency_timer_ms
    }

    /// Writes all of `bytes`, waiting for room when the driver's buffer is full.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(PollFlags::OUT, None)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what has arrived into `buf`, waiting until `deadline` at most;
    /// `Ok(0)` when nothing came in time.
    pub fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(0);
            }
            if !self.wait(PollFlags::IN, Some(deadline - now))? {
                return Ok(0);
            }
        }
    }

    /// Reads and discards whatever is pending (late answers of an earlier
    /// exchange); returns how many bytes.
    pub fn discard_input(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        let mut total = 0;
        // Bounded: a babbling line cannot keep us here.
        for _ in 0..64 {
            match self.file.read(scratch) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Waits for `events`; false on timeout.
    fn wait(&self, events: PollFlags, timeout: Option<std::time::Duration>) -> io::Result<bool> {
        let ts = timeout.map(|d| Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ });
        let mut fds = [PollFd::new(&self.file, events)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}

/// The sysfs latency timer of a USB-serial adapter (FTDI), lowered to 1 ms
/// when asked and allowed; `None` where there is none (ptys, CDC-ACM, CH34x).
fn latency_timer(path: &Path, lower: bool) -> Option<u32> {
    let real: PathBuf = std::fs::canonicalize(path).ok()?;
    let name = real.file_name()?.to_str()?;
    let sysfs = PathBuf::from(format!("/sys/bus/usb-serial/devices/{name}/latency_timer"));
    let read = || std::fs::read_to_string(&sysfs).ok().and_then(|s| s.trim().parse::<u32>().ok());
    let now = read()?;
    if lower && now > 1 {
        // Needs write access to sysfs (root or a udev rule); best effort.
        let _ = std::fs::write(&sysfs, "1");
        return read();
    }
    Some(now)
}
