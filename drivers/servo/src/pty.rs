//! Pseudo-terminal pairs (`posix_openpt`, `grantpt`, `unlockpt`,
//! `ptsname`): the emulator serves the master side, a driver opens the
//! slave's path as if it were a USB serial adapter.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use rustix::fs::OFlags;
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{self, OptionalActions};

/// A pty pair. The slave stays open here too, so the master never sees a
/// hang-up while clients come and go, and it is set raw before any client
/// opens it (no echo, no line editing).
#[derive(Debug)]
pub struct Pty {
    /// The master side.
    pub master: File,
    /// The slave's path, e.g. `/dev/pts/7`.
    pub slave_path: PathBuf,
    _slave: File,
}

/// Opens a pty pair with the slave raw at `baud`.
pub fn open_pty(baud: u32) -> io::Result<Pty> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave_path = PathBuf::from(name.to_string_lossy().into_owned());
    let slave =
        OpenOptions::new().read(true).write(true).custom_flags(OFlags::NOCTTY.bits() as i32).open(&slave_path)?;
    let mut t = termios::tcgetattr(&slave)?;
    crate::serial::make_raw(&mut t, baud)?;
    termios::tcsetattr(&slave, OptionalActions::Now, &t)?;
    Ok(Pty { master: File::from(master), slave_path, _slave: slave })
}
