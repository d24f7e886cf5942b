//! The hardware/software-in-the-loop rig (`ganglion-rig`): **not built yet**.
//!
//! Issue 6 (scenarios, fault-injection matrix, closed-loop evaluation and the
//! side-by-side Python baseline) is open; see `hil-tests/README.md` for what
//! exists elsewhere today and what the rig will add. This crate holds no
//! code until then, so nothing here pretends to test anything.
