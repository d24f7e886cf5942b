//! ROS 2 transport over DDS (ros2-client / RustDDS, no ROS installation):
//! a node with sensor inputs, command outputs and diagnostics.
//!
//! Topics (ROS names; DDS topics are `rt/<name>` with type names
//! `<pkg>::msg::dds_::<Type>_`, so stock ROS 2 nodes interoperate):
//!
//! | topic                          | direction | type / QoS                                         |
//! |--------------------------------|-----------|----------------------------------------------------|
//! | `joint_states`                 | in        | `sensor_msgs/msg/JointState`, best effort (depth 5)|
//! | `camera/<name>/image_raw`      | in        | `sensor_msgs/msg/Image`, best effort               |
//! | `instruction`                  | in        | `std_msgs/msg/String`, reliable                    |
//! | `heartbeat_in`                 | in        | `std_msgs/msg/Header` (`ok`/`stop`), best effort   |
//! | command topic (profile)        | out       | `JointTrajectory` / `Float64MultiArray` / `JointState`, reliable |
//! | `heartbeat`                    | out       | `std_msgs/msg/Header` (mode), best effort          |
//! | `diagnostics`                  | out       | `diagnostic_msgs/msg/DiagnosticArray`, reliable    |
//!
//! Relative names resolve under the node namespace. Payloads are the
//! `ganglion-codec` bytes, passed through RustDDS unchanged by a raw
//! serializer adapter, so both transports share one codec. The full
//! contract (rates, stamps, message contents, QoS) is docs/INTERFACES.md;
//! a test holds its QoS table to [`Stream::qos`].

#![warn(missing_docs)]
//!
//! # Features
//!
//! `dds` (default) builds the node on ros2-client / RustDDS (~100 crates).
//! Without it the crate keeps the settings, errors and reports a profile
//! and a run report use, and the node types become uninhabited stand-ins
//! whose constructors return [`Ros2Error::NotBuilt`] (see
//! ganglion-zenoh's `session` feature, the same idea).

mod config;
pub use config::*;

#[cfg(feature = "dds")]
mod dds;
#[cfg(feature = "dds")]
pub use dds::*;

#[cfg(not(feature = "dds"))]
mod absent;
#[cfg(not(feature = "dds"))]
pub use absent::*;

pub use ganglion_codec::ingest::CommandOut;
