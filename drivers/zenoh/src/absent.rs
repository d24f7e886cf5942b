//! Stand-ins for the session types when the `session` feature is off.
//!
//! Each type is uninhabited (an empty enum): its constructor returns
//! [`ZenohError::NotBuilt`] and no value of it can exist, so its methods
//! are never called and cost nothing. They mirror the signatures in
//! `session.rs` that callers use; a build with `--no-default-features`
//! (`.ci/run` builds one) keeps the two in step.

use std::time::Duration;

use ganglion_codec::ingest::{CommandOut, Inputs, Outbox};
use ganglion_codec::msg::DiagnosticArray;

use crate::{Keys, NoReply, SessionFacts, ZenohConfig, ZenohError};

/// The loop's zenoh transport (not built).
pub enum ZenohTransport {}

impl ZenohTransport {
    /// Fails: this build has no zenoh session.
    pub fn start(_cfg: &ZenohConfig, _inputs: Inputs, _outbox: Outbox, _out: CommandOut) -> Result<Self, ZenohError> {
        Err(ZenohError::NotBuilt)
    }

    /// Unreachable: no value exists.
    pub fn command_matched_at_start(&self) -> bool {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn keys(&self) -> &Keys {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn facts(&self) -> &SessionFacts {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn publish_diagnostics(&mut self, _diag: &DiagnosticArray) -> Result<(), ZenohError> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn shutdown(self) {
        match self {}
    }
}

/// The plant's end of the keys (not built).
pub enum ZenohPlant {}

impl ZenohPlant {
    /// Fails: this build has no zenoh session.
    pub fn start(
        _cfg: &ZenohConfig,
        _camera_names: &[String],
        _on_command: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Result<Self, ZenohError> {
        Err(ZenohError::NotBuilt)
    }

    /// Unreachable: no value exists.
    pub fn publish_joints(&self, _payload: &[u8]) -> Result<(), ZenohError> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn publish_camera(&self, _index: usize, _payload: &[u8]) -> Result<(), ZenohError> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn publish_instruction(&self, _payload: &[u8]) -> Result<(), ZenohError> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn close(self) {
        match self {}
    }
}

/// A session with one subscriber (not built).
pub enum Subscription {}

impl ZenohConfig {
    /// Fails: this build has no zenoh session.
    pub fn facts(&self) -> Result<SessionFacts, ZenohError> {
        Err(ZenohError::NotBuilt)
    }

    /// Fails: this build has no zenoh session.
    pub fn serve_queries(
        &self,
        _keys: &[String],
        _queue: usize,
        _handler: impl FnMut(usize, &[u8], std::time::Instant, &mut Vec<u8>) + Send + 'static,
    ) -> Result<QueryServer, ZenohError> {
        Err(ZenohError::NotBuilt)
    }

    /// Fails: this build has no zenoh session.
    pub fn serve_query_batches(
        &self,
        _keys: &[String],
        _queue: usize,
        _batching: crate::Batching,
        _complete: impl Fn(usize) -> bool + Send + 'static,
        _handler: impl FnMut(&[crate::IncomingQuery], &mut [Vec<u8>]) + Send + 'static,
    ) -> Result<QueryServer, ZenohError> {
        Err(ZenohError::NotBuilt)
    }

    /// Fails: this build has no zenoh session.
    pub fn requester(&self) -> Result<Requester, ZenohError> {
        Err(ZenohError::NotBuilt)
    }

    /// Fails: this build has no zenoh session.
    pub fn subscribe(
        &self,
        _key: &str,
        _on_payload: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Result<Subscription, ZenohError> {
        Err(ZenohError::NotBuilt)
    }
}

/// Answers zenoh queries (not built).
pub enum QueryServer {}

/// Sends zenoh queries (not built).
pub enum Requester {}

impl Requester {
    /// Unreachable: no value exists.
    pub fn request(
        &self,
        _key: &str,
        _payload: &[u8],
        _timeout: Duration,
        _reply: &mut Vec<u8>,
    ) -> Result<Result<(), NoReply>, ZenohError> {
        match *self {}
    }
}

impl SessionFacts {
    /// Fails: this build has no zenoh session.
    pub fn probe(_cfg: &ZenohConfig, _settle: Duration) -> Result<SessionFacts, ZenohError> {
        Err(ZenohError::NotBuilt)
    }
}
