//! zenoh transport: key expressions, subscribers into latest-value slots,
//! non-blocking command publisher.
//!
//! # Key expressions
//!
//! Every key lives under a per-robot `prefix` (e.g. `robots/arm1`); every
//! payload is a CDR-encoded ROS 2 message (see `ganglion-codec`), so any ROS
//! tool decodes it:
//!
//! | key                        | direction | payload                                   |
//! |----------------------------|-----------|-------------------------------------------|
//! | `<prefix>/camera/<name>`   | in        | `sensor_msgs/msg/Image`                   |
//! | `<prefix>/joint_states`    | in        | `sensor_msgs/msg/JointState`              |
//! | `<prefix>/instruction`     | in        | `std_msgs/msg/String`                     |
//! | `<prefix>/heartbeat_in`    | in        | `std_msgs/msg/Header` (`ok` / `stop`)     |
//! | `<prefix>/command`         | out       | per profile: `JointTrajectory`, `Float64MultiArray` or `JointState` |
//! | `<prefix>/heartbeat`       | out       | `std_msgs/msg/Header` (supervisor mode)   |
//! | `<prefix>/diagnostics`     | out       | `diagnostic_msgs/msg/DiagnosticArray`     |
//!
//! The external heartbeat comes in on its own key so a robot never hears its
//! own heartbeat back.

#![warn(missing_docs)]
//!
//! # Features
//!
//! `session` (default) builds the zenoh session: [`ZenohTransport`],
//! [`ZenohPlant`], [`Subscription`], [`SessionFacts::probe`]. Without it
//! the crate still has every type a profile and a report use, and the
//! session types become uninhabited stand-ins whose constructors return
//! [`ZenohError::NotBuilt`]: callers keep one code path and a build
//! without zenoh (281 crates) says why it cannot open a session.

mod config;
pub use config::*;

#[cfg(feature = "session")]
mod session;
#[cfg(feature = "session")]
pub use session::*;
#[cfg(feature = "session")]
pub use zenoh;

#[cfg(not(feature = "session"))]
mod absent;
#[cfg(not(feature = "session"))]
pub use absent::*;

pub use ganglion_codec::ingest::CommandOut;
