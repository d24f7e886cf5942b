//! What a zenoh session is set to do, without zenoh itself: the robot's
//! key expressions, the session settings the profile parses, the error type
//! and the facts a session reports. Always built, so a build without the
//! `session` feature still reads profiles and reports.

use std::path::PathBuf;

/// Key expressions of one robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (trailing `/` ignored).
    pub fn new(prefix: &str) -> Self {
        Keys { prefix: prefix.trim_end_matches('/').to_owned() }
    }
    /// `<prefix>/camera/<name>`.
    pub fn camera(&self, name: &str) -> String {
        format!("{}/camera/{name}", self.prefix)
    }
    /// `<prefix>/joint_states`.
    pub fn joint_states(&self) -> String {
        format!("{}/joint_states", self.prefix)
    }
    /// `<prefix>/command`.
    pub fn command(&self) -> String {
        format!("{}/command", self.prefix)
    }
    /// `<prefix>/instruction`.
    pub fn instruction(&self) -> String {
        format!("{}/instruction", self.prefix)
    }
    /// `<prefix>/diagnostics`.
    pub fn diagnostics(&self) -> String {
        format!("{}/diagnostics", self.prefix)
    }
    /// `<prefix>/heartbeat` (Ganglion's own).
    pub fn heartbeat(&self) -> String {
        format!("{}/heartbeat", self.prefix)
    }
    /// `<prefix>/heartbeat_in` (operator / safety layer).
    pub fn heartbeat_in(&self) -> String {
        format!("{}/heartbeat_in", self.prefix)
    }
}

/// zenoh session role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionMode {
    /// Peer-to-peer.
    #[default]
    Peer,
    /// Client of a router.
    Client,
}

/// Settings of a zenoh session.
#[derive(Debug, Clone, PartialEq)]
pub struct ZenohConfig {
    /// Key prefix of the robot.
    pub prefix: String,
    /// Peer or client.
    pub mode: SessionMode,
    /// Endpoints to listen on, e.g. `tcp/127.0.0.1:7447`. Empty: the
    /// session listens nowhere (zenoh's own default, a peer listening on
    /// every interface, is never used).
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    pub connect: Vec<String>,
    /// Multicast scouting (off for loopback tests and most deployments).
    pub multicast_scouting: bool,
    /// zenoh shared memory transport (large frames travel through `/dev/shm`
    /// when both ends enable it).
    pub shared_memory: bool,
    /// A zenoh json5 config (TLS/mTLS, access control, a router's unix
    /// socket, ...). When set, the file is the whole session config:
    /// `mode`, `listen`, `connect`, `multicast_scouting` and `shared_memory`
    /// above are NOT applied (the robot profile refuses them next to a
    /// file). A file without a `listen` key listens nowhere.
    pub config_file: Option<PathBuf>,
}

impl Default for ZenohConfig {
    fn default() -> Self {
        ZenohConfig {
            prefix: "ganglion".into(),
            mode: SessionMode::Peer,
            listen: Vec::new(),
            connect: Vec::new(),
            multicast_scouting: false,
            shared_memory: false,
            config_file: None,
        }
    }
}

/// Why the zenoh transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum ZenohError {
    /// The merged zenoh config was rejected (`key` names the setting).
    #[error("zenoh config {key}: {reason}")]
    Config {
        /// The zenoh config key, or the file path.
        key: String,
        /// What zenoh said.
        reason: String,
    },
    /// Opening the session or declaring an entity failed.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// This build has no zenoh session: `ganglion-zenoh` was built without
    /// its `session` feature (ganglion's `zenoh` feature, on by default).
    #[error(
        "this build of ganglion has no zenoh transport (built without the `zenoh` feature): rebuild with default \
         features"
    )]
    NotBuilt,
}

/// Whether this build's zenoh has a TLS (or QUIC) link. It does not: the
/// workspace builds zenoh with tcp, udp and unix-socket links only (no
/// crypto in the robot's real-time process; a router terminates mTLS, see
/// launch/zenoh-secure). Keep in step with the workspace `Cargo.toml`.
pub const TLS_LINK_BUILT: bool = false;

/// Why a request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReply {
    /// Nothing answers on the key (no server, or not reachable).
    NoServer,
    /// The server did not answer within the timeout.
    Timeout,
}

/// One link of a session (from the session's admin space).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkFact {
    /// The remote zenoh node.
    pub peer: String,
    /// `router`, `peer` or `client`.
    pub whatami: String,
    /// Local locator, e.g. `unixsock-stream//run/ganglion/zenoh.sock`.
    pub src: String,
    /// Remote locator.
    pub dst: String,
}

/// What a zenoh session is set to do and, once opened, what it got: read
/// back from the final zenoh config (after the file and the profile's keys
/// were merged), from the session's info and, for a probe, from its admin
/// space. `ganglion run` logs it at start, `ganglion check` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionFacts {
    /// `peer`, `client` or `router`.
    pub mode: String,
    /// Endpoints the session listens on (empty: no listener).
    pub listen: Vec<String>,
    /// Endpoints the session connects to.
    pub connect: Vec<String>,
    /// Multicast scouting on (peers found that way use whatever link they offer).
    pub multicast_scouting: bool,
    /// What in the config asks for TLS (keys under `transport/link/tls`,
    /// `tls/`/`quic/` endpoints); empty: TLS not asked for.
    pub tls_requested: Vec<String>,
    /// Whether this build has a TLS link at all ([`TLS_LINK_BUILT`]).
    pub tls_link_built: bool,
    /// Whether every link of the session is TLS (or QUIC).
    pub tls_in_effect: bool,
    /// Listeners on an address other than loopback (or a unix socket):
    /// reachable from other machines.
    pub non_loopback_listeners: Vec<String>,
    /// Routers connected (after open).
    pub routers: Option<usize>,
    /// Peers connected (after open).
    pub peers: Option<usize>,
    /// Links of the session (a probe only: from its admin space).
    pub links: Option<Vec<LinkFact>>,
    /// Non-loopback locators the session advertises (a probe only).
    pub locators: Option<Vec<String>>,
}

pub(crate) fn endpoint_proto(e: &str) -> &str {
    e.split('/').next().unwrap_or("")
}

pub(crate) fn is_tls_proto(proto: &str) -> bool {
    matches!(proto, "tls" | "quic" | "quic_datagram" | "wss")
}

/// Whether `endpoint` (`proto/address[?config]`) can only be reached from
/// this machine: a unix socket, or an IP loopback address / `localhost`.
pub fn endpoint_is_local(endpoint: &str) -> bool {
    let (proto, rest) = endpoint.split_once('/').unwrap_or((endpoint, ""));
    if proto.starts_with("unixsock") {
        return true;
    }
    let addr = rest.split(['?', '#']).next().unwrap_or("");
    let host = match addr.rsplit_once(':') {
        Some((h, _port)) => h,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl SessionFacts {
    /// `Some(why)` when the config asks for TLS but the session's links are
    /// not all TLS: a run must not arm then.
    pub fn tls_missing(&self) -> Option<String> {
        if self.tls_requested.is_empty() || self.tls_in_effect {
            return None;
        }
        let why = if !self.tls_link_built {
            "this build of ganglion has no TLS link (reach the router over its unix socket instead, launch/zenoh-secure)"
                .to_string()
        } else if let Some(l) = self.links.iter().flatten().find(|l| !is_tls_proto(endpoint_proto(&l.dst))) {
            format!("link to {} is not TLS", l.dst)
        } else {
            "not every endpoint is tls/ or quic/, or multicast scouting is on".to_string()
        };
        Some(format!(
            "the zenoh config asks for TLS ({}) but the session is not TLS: {why}",
            self.tls_requested.join(", ")
        ))
    }

    /// One line per fact, for logs and `ganglion check`.
    pub fn lines(&self) -> Vec<String> {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let mut out = vec![
            format!("mode: {}", self.mode),
            format!("listeners: {}", list(&self.listen)),
            format!("connect: {}", list(&self.connect)),
            format!("multicast scouting: {}", if self.multicast_scouting { "on" } else { "off" }),
        ];
        if !self.non_loopback_listeners.is_empty() {
            out.push(format!(
                "NON-LOOPBACK listeners (reachable from other machines): {}",
                self.non_loopback_listeners.join(", ")
            ));
        }
        let tls = match (self.tls_in_effect, self.tls_requested.is_empty()) {
            (true, _) => "yes".to_string(),
            (false, true) => "no (not asked for)".to_string(),
            (false, false) => format!("NO, but asked for by {}", self.tls_requested.join(", ")),
        };
        out.push(format!("tls: {tls}{}", if self.tls_link_built { "" } else { "; this build has no TLS link" }));
        if let (Some(r), Some(p)) = (self.routers, self.peers) {
            out.push(format!("connected: {r} router(s), {p} peer(s)"));
        }
        if let Some(links) = &self.links {
            if links.is_empty() {
                out.push("links: none".into());
            }
            for l in links {
                out.push(format!("link: {} -> {} ({} {})", l.src, l.dst, l.whatami, l.peer));
            }
        }
        if let Some(loc) = &self.locators {
            out.push(format!("advertised non-loopback locators: {}", list(loc)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_unix_socket_endpoints_are_local() {
        for e in
            ["tcp/127.0.0.1:7447", "tcp/[::1]:7447", "udp/localhost:7447", "unixsock-stream//run/ganglion/zenoh.sock"]
        {
            assert!(endpoint_is_local(e), "{e}");
        }
        for e in [
            "tcp/0.0.0.0:7447",
            "tcp/[::]:0",
            "tls/robot.local:7447",
            "tcp/192.168.1.5:7447",
            "tcp/10.0.0.1:1?iface=eth0",
        ] {
            assert!(!endpoint_is_local(e), "{e}");
        }
    }
}

/// A query the serving thread hands to its handler: which of the keys it
/// came on, its payload and when it arrived.
#[derive(Debug, Clone)]
pub struct IncomingQuery {
    /// Index into the served keys.
    pub key: usize,
    /// The query's payload.
    pub payload: Vec<u8>,
    /// When zenoh delivered it (for the queue time).
    pub arrived: std::time::Instant,
}

/// How the serving thread groups queries for its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most queries handed over at once (at least 1).
    pub max: usize,
    /// How long to wait for more after the first of a batch; what is
    /// already queued joins without waiting.
    pub window: std::time::Duration,
}

impl Batching {
    /// One query at a time.
    pub const ONE: Batching = Batching { max: 1, window: std::time::Duration::ZERO };
}
