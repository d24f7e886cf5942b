//! The Ganglion runtime: the deterministic control loop and everything
//! around it. Module map (each module does one thing):
//!
//! - [`profile`]: the robot profile (TOML), validated up front.
//! - [`control`]: the control loop, supervisor, fallback controllers,
//!   safety shield, chunk executor and inference worker.
//! - [`transport`]: wiring of the zenoh / ROS 2 drivers into the loop.
//! - [`recorder`]: tick records, flight recorder (MCAP), replay.
//! - [`rtcheck`]: real-time readiness of this machine and applying RT settings.
//! - [`cli`]: the `ganglion` command's subcommands.

#![warn(missing_docs)]

pub mod cli;
pub mod control;
pub mod profile;
pub mod recorder;
pub mod rtcheck;
pub mod transport;
