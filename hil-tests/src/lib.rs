//! The hardware/software-in-the-loop rig (`ganglion-rig`).
//!
//! A scenario (`hil-tests/scenarios/*.toml`) names a fault schedule for the
//! plant (`ganglion sim serve --fault ...`) and for the policy
//! (`ganglion run --inject ...`), profile changes, and expectations. The
//! rig starts the plant and the controller as separate processes over
//! zenoh on loopback (a fresh port per run, multicast scouting off), lets
//! them run, SIGKILLs the controller where the scenario says so, then reads
//! the plant's log (every command with its receive time, Ganglion's
//! heartbeat mode per command, the arm's true state) and Ganglion's event
//! log (mode changes with causes, inference timings) and checks the
//! expectations. The same scenario runs against the Python baseline
//! (`hil-tests/baseline/loop.py`) for the side-by-side report.

pub mod analyze;
pub mod plot;
pub mod report;
pub mod runner;
pub mod scenario;
