//! Deterministic simulated arm: actuator dynamics, software-rasterized
//! camera, fault hooks, scripted expert, and the training-data recorder.
//!
//! - [`SimArm`]: a seeded reach scene (2–3 coloured targets, an instruction
//!   naming one), a yaw-pitch-pitch arm with saturating second-order
//!   actuators, a 64×64 rgb8 camera, and [`Faults`] on its sensor outputs.
//!   It writes into the runtime's latest-value slots ([`SimArm::publish_due`])
//!   and takes its [`ganglion_core::Command`]s ([`SimArm::apply_command`]).
//! - [`ScriptedExpert`]: analytic IK and minimum-jerk trajectories; the data
//!   source and test oracle.
//! - [`ExpertPolicy`]: the expert behind the [`ganglion_core::Policy`] trait,
//!   locating the instructed target in the camera image.
//! - [`dataset`]: `ganglion sim record`, an `.npz` dataset for training.

#![warn(missing_docs)]

pub mod config;
pub mod dataset;
pub mod expert;
pub mod faults;
pub mod lerobot;
pub mod npy;
pub mod plant;
pub mod policy;
pub mod render;
pub mod scene;

pub use config::SimConfig;
pub use expert::{ExpertError, Plan, ScriptedExpert};
pub use faults::{ActiveFaults, FaultKind, FaultWindow, Faults};
pub use plant::{Published, SimArm};
pub use policy::ExpertPolicy;
pub use render::{PinholeCamera, Renderer};
pub use scene::{Scene, Target, TargetColor, MAX_TARGETS};

/// Why the simulated arm could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A configuration value is out of range.
    #[error("simulator config key `{key}`: expected {expected}")]
    InvalidConfig {
        /// The offending key (as in the TOML table).
        key: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The scripted expert does not support this arm.
    #[error("scripted expert: {0}")]
    Expert(#[from] ExpertError),
}
