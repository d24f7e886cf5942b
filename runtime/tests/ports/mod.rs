//! TCP ports for the tests' zenoh endpoints, never handed out twice during
//! a test run, even to tests running in parallel processes.
//!
//! Asking the kernel for a free port (`bind` to port 0, then closing) races:
//! between that and the endpoint's own `bind`, another test process may be
//! handed the same port ("already in use"). These ports come from below
//! the kernel's ephemeral range (32768-60999 by default), which neither
//! `bind(0)` nor an outgoing connection takes, through a counter file that
//! the test processes share under an exclusive lock; each is checked
//! bindable before it is handed out.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;

/// First port handed out.
const FIRST: u16 = 20_000;
/// Ports in the cycle (up to 31_999).
const SPAN: u16 = 12_000;

/// A TCP port on 127.0.0.1 no other test of this run was given.
pub fn free_port() -> u16 {
    let path = std::env::temp_dir().join("ganglion-test-ports");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .expect("the port counter file");
    // SAFETY: flock on a file descriptor this function owns; released when
    // `file` is closed at the end of the function.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "locking {}", path.display());
    let mut text = String::new();
    file.read_to_string(&mut text).expect("reading the port counter");
    let mut next: u16 = text.trim().parse().unwrap_or(0);
    for _ in 0..SPAN {
        next = (next + 1) % SPAN;
        let port = FIRST + next;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            file.seek(SeekFrom::Start(0)).expect("rewinding the port counter");
            file.set_len(0).expect("truncating the port counter");
            write!(file, "{next}").expect("writing the port counter");
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}
