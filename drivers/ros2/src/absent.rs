//! Stand-ins for the node types when the `dds` feature is off.
//!
//! Each type is uninhabited (an empty enum): its constructor returns
//! [`Ros2Error::NotBuilt`] and no value of it can exist, so its methods are
//! never called. They mirror the signatures in `dds.rs` that callers use;
//! a build with `--no-default-features` (`.ci/run` builds one) keeps the
//! two in step.

use ganglion_codec::ingest::{CommandOut, Inputs, Outbox};
use ganglion_codec::msg::DiagnosticArray;
use ganglion_codec::CommandFormat;

use crate::{QosMismatch, Ros2Config, Ros2Error};

/// A DDS participant plus a ROS node (not built).
pub enum Ros2Node {}

impl Ros2Node {
    /// Unreachable: no value exists.
    pub fn dds_topic_name(&self, _topic: &str) -> Result<String, Ros2Error> {
        match *self {}
    }
}

/// What DDS matching has reported (not built).
pub enum MatchStatus {}

impl MatchStatus {
    /// Unreachable: no value exists.
    pub fn mismatches(&self) -> Vec<QosMismatch> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn command_subscribers(&self) -> i32 {
        match *self {}
    }
}

/// The loop's ROS 2 transport (not built).
pub enum Ros2Transport {}

impl Ros2Transport {
    /// Fails: this build has no DDS node.
    pub fn start(_cfg: &Ros2Config, _inputs: Inputs, _outbox: Outbox, _out: CommandOut) -> Result<Self, Ros2Error> {
        Err(Ros2Error::NotBuilt)
    }

    /// Unreachable: no value exists.
    pub fn publish_diagnostics(&self, _diag: &DiagnosticArray) -> Result<(), Ros2Error> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn match_status(&self) -> &MatchStatus {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn command_matched_at_start(&self) -> bool {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn node(&self) -> &Ros2Node {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn shutdown(self) {
        match self {}
    }
}

/// The plant's end of the topics (not built).
pub enum Ros2Plant {}

impl Ros2Plant {
    /// Fails: this build has no DDS node.
    pub fn start(
        _cfg: &Ros2Config,
        _camera_names: &[String],
        _format: CommandFormat,
        _on_command: impl FnMut(&[u8]) + Send + 'static,
    ) -> Result<Self, Ros2Error> {
        Err(Ros2Error::NotBuilt)
    }

    /// Unreachable: no value exists.
    pub fn match_status(&self) -> &MatchStatus {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn publish_joints(&self, _payload: &[u8]) -> Result<(), Ros2Error> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn publish_camera(&self, _index: usize, _payload: &[u8]) -> Result<(), Ros2Error> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn publish_instruction(&self, _payload: &[u8]) -> Result<(), Ros2Error> {
        match *self {}
    }
}
