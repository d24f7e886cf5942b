//! The Ganglion runtime: the deterministic control loop and everything
//! around it. The picture of crates, threads and data flow is in
//! `docs/ARCHITECTURE.md`. Module map (each module does one thing):
//!
//! - [`profile`]: the robot profile (TOML), validated up front.
//! - [`control`]: the control loop, supervisor, fallback controllers,
//!   safety shield, chunk executor and inference worker.
//! - [`deploy`]: the deployed path (`ganglion run`) as a library: start it
//!   from a profile, stop it, get its report.
//! - [`transport`]: wiring of the zenoh / ROS 2 drivers into the loop.
//! - [`recorder`]: tick records, flight recorder (MCAP), replay.
//! - [`rtcheck`]: real-time readiness of this machine and applying RT settings.
//! - [`demo`]: the embedded default (simulated arm, reference policy, real clock).
//! - [`eval`]: closed-loop evaluation of a bundle on the simulated arm.
//! - [`faults`]: the one fault grammar (arm, wire, policy) and the policy
//!   fault wrappers (`run --inject`).
//! - [`plant`]: the simulated arm's plant loop (demo, `sim serve`, `bench loop`).
//! - [`bench`]: the measurements behind `ganglion bench`.
//! - [`stats`], [`report`]: the percentiles of every report, and writing reports.
//!
//! The `ganglion` command itself is a private module of the binary
//! (`src/cli/`): each subcommand parses, calls this library, prints.

#![warn(missing_docs)]

pub mod bench;
pub mod control;
pub mod demo;
pub mod deploy;
pub mod eval;
pub mod faults;
pub mod plant;
pub mod profile;
pub mod recorder;
pub mod remote;
pub mod report;
pub mod rtcheck;
pub mod stats;
pub mod transport;
