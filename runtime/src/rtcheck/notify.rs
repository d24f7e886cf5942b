//! systemd's service notification protocol (`sd_notify(3)`), without libsystemd.
//!
//! The unit (`launch/systemd/ganglion.service`) is `Type=notify` with
//! `WatchdogSec=`: systemd considers the service started on `READY=1` and
//! restarts it when `WATCHDOG=1` stops arriving. How `ganglion run` uses it:
//!
//! - create one [`SdNotify`] with [`SdNotify::from_env`] at start (it is
//!   `None` outside systemd, and every call is then skipped);
//! - call [`SdNotify::ready`] once the loop is armed (warm-up done, first tick
//!   run), never before;
//! - from the **non-real-time** supervisor / telemetry thread, every
//!   [`watchdog_interval`]` / 2`, send [`SdNotify::watchdog`] **only if** the
//!   loop's tick counter advanced since the previous ping and the mode is
//!   not `SafeStop`. The ping then reflects the loop's health rather than a
//!   timer: a wedged control thread or a latched stop lets the watchdog
//!   expire and systemd restarts the service (`Restart=on-failure`);
//! - [`SdNotify::status`] with a short line (mode, tick count, causes) for
//!   `systemctl status`; [`SdNotify::stopping`] on orderly shutdown.
//!
//! Never call it from the control thread: it is a system call on a socket.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Why a notification could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor an abstract name (`@...`).
    #[error("NOTIFY_SOCKET is not an absolute path or @abstract name")]
    BadAddress,
    /// The socket could not be created or the datagram not sent.
    #[error("sending to NOTIFY_SOCKET failed: os error {0}")]
    Send(i32),
}

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct SdNotify {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

fn io_code(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

impl SdNotify {
    /// From `$NOTIFY_SOCKET`: `Ok(None)` when the variable is unset
    /// (not started by systemd, or not `Type=notify`).
    pub fn from_env() -> Result<Option<SdNotify>, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(None),
            Some(path) => SdNotify::connect(path.to_str().ok_or(NotifyError::BadAddress)?).map(Some),
        }
    }

    /// To the socket at `path` (absolute path, or `@name` for the abstract namespace).
    pub fn connect(path: &str) -> Result<SdNotify, NotifyError> {
        let addr = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(|_| NotifyError::BadAddress)?
        } else if path.starts_with('/') {
            std::os::unix::net::SocketAddr::from_pathname(path).map_err(|_| NotifyError::BadAddress)?
        } else {
            return Err(NotifyError::BadAddress);
        };
        let socket = UnixDatagram::unbound().map_err(|e| NotifyError::Send(io_code(&e)))?;
        Ok(SdNotify { socket, addr })
    }

    /// Sends raw newline-separated `KEY=VALUE` assignments.
    pub fn send(&self, state: &str) -> Result<(), NotifyError> {
        self.socket.send_to_addr(state.as_bytes(), &self.addr).map(|_| ()).map_err(|e| NotifyError::Send(io_code(&e)))
    }

    /// `READY=1`: start-up finished, the loop is armed.
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1")
    }

    /// `WATCHDOG=1`: the loop is healthy (see the module docs for when).
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// `STATUS=...`: one line for `systemctl status`; newlines are replaced.
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        self.send(&format!("STATUS={}", text.replace('\n', " ")))
    }

    /// `STOPPING=1`: orderly shutdown started.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }
}

/// The watchdog timeout systemd expects pings within (`$WATCHDOG_USEC`),
/// if it is meant for this process (`$WATCHDOG_PID` unset or ours).
/// Ping at half of it.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn sd_notify_sends_datagrams_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagramServer::bind(&path);
        let n = SdNotify::connect(path.to_str().unwrap()).unwrap();
        n.ready().unwrap();
        n.status("mode nominal\ntick 5").unwrap();
        n.watchdog().unwrap();
        assert_eq!(server.recv(), "READY=1");
        assert_eq!(server.recv(), "STATUS=mode nominal tick 5");
        assert_eq!(server.recv(), "WATCHDOG=1");
        assert_eq!(SdNotify::connect("relative").unwrap_err(), NotifyError::BadAddress);
    }

    #[test]
    fn sd_notify_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ganglion-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        SdNotify::connect(&format!("@{name}")).unwrap().stopping().unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    struct UnixDatagramServer(std::os::unix::net::UnixDatagram);

    impl UnixDatagramServer {
        fn bind(path: &Path) -> Self {
            let s = std::os::unix::net::UnixDatagram::bind(path).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
            UnixDatagramServer(s)
        }
        fn recv(&self) -> String {
            let mut buf = [0u8; 256];
            let n = self.0.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
    }
}
