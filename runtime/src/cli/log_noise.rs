//! Log lines of dependencies that report nothing wrong, dropped by message
//! (not by target, so the same targets' real failures still show):
//!
//! - zenoh's unix-socket link warns `Can not create a new UnixSocketStream
//!   link bound to "<path>"` on every successful connect: the connecting
//!   side's socket is unnamed, as client sockets always are (zenoh-link-
//!   unixsock_stream 1.10.2, `new_link`). A failed connect carries the OS
//!   error after the path and is kept.
//! - RustDDS logs `leave_multicast_group: ... AddrNotAvailable` at ERROR
//!   when a participant restricted to some interfaces closes: it joined the
//!   group on those interfaces but leaves on the default one (rustdds
//!   0.15.1, `UDPListener::drop`); the socket is closing anyway.
//! - ros2-client warns `ROS_DISTRO is not set` on every start: Ganglion
//!   needs no ROS installation and its topics do not depend on the
//!   distribution (a `ROS_DISTRO` naming a different one still logs its
//!   ERROR).

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Whether a log line with this target and message is one of the known
/// harmless ones above.
pub fn is_noise(target: &str, message: &str) -> bool {
    match target {
        "zenoh_link_unixsock_stream::unicast" => {
            message.starts_with("Can not create a new UnixSocketStream link bound to \"") && message.ends_with('"')
        }
        "rustdds::network::udp_listener" => message.starts_with("leave_multicast_group:"),
        "ros2_client::distributions" => message.starts_with("ROS_DISTRO is not set"),
        _ => false,
    }
}

/// A layer that disables the events [`is_noise`] names.
pub struct DropKnownNoise;

/// The message and, for records of the `log` crate (RustDDS, ros2-client
/// log through it; tracing-log hands them over with the target `log` and
/// the real one in the `log.target` field), the real target.
#[derive(Default)]
struct Fields {
    message: String,
    log_target: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "log.target" => self.log_target = value.to_string(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "log.target" => self.log_target = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for DropKnownNoise {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let target = event.metadata().target();
        if target != "log" && !NOISY_TARGETS.contains(&target) {
            return true;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let target = if target == "log" { f.log_target.as_str() } else { target };
        !is_noise(target, &f.message)
    }
}

const NOISY_TARGETS: [&str; 3] =
    ["zenoh_link_unixsock_stream::unicast", "rustdds::network::udp_listener", "ros2_client::distributions"];

#[cfg(test)]
mod tests {
    use super::is_noise;

    #[test]
    fn only_the_harmless_lines_are_noise() {
        let unix = "zenoh_link_unixsock_stream::unicast";
        assert!(is_noise(unix, "Can not create a new UnixSocketStream link bound to \"/run/ganglion/zenoh.sock\""));
        assert!(!is_noise(
            unix,
            "Can not create a new UnixSocketStream link bound to \"/tmp/z.sock\": No such file or directory (os \
             error 2) at unicast.rs:249."
        ));
        assert!(is_noise(
            "rustdds::network::udp_listener",
            "leave_multicast_group: Os { code: 99, kind: AddrNotAvailable, message: \"Cannot assign requested address\" }"
        ));
        assert!(is_noise("ros2_client::distributions", "ROS_DISTRO is not set; ros2-client was built for 'humble'."));
        assert!(!is_noise("ros2_client::distributions", "ROS_DISTRO='jazzy' but ros2-client was built for 'humble'."));
        assert!(!is_noise("rustdds::dds::pubsub", "leave_multicast_group: x"));
    }
}
