//! Remote inference over zenoh: the heavy model on a GPU server, the loop
//! and its safety on the robot (issue 19).
//!
//! The robot's [`RemotePolicy`] is a [`ganglion_core::Policy`] like any
//! bundle: the inference worker calls it, the loop measures lateness and the
//! supervisor's causes apply unchanged. A request that finds no server is a
//! [`ganglion_core::PolicyError::Unreachable`] (cause `policy_unreachable`);
//! one the server does not answer in time is given up as
//! [`ganglion_core::PolicyError::NoReply`] (no cause: the plan in hand drives
//! on and the next request goes out; `inference_late` only when the plan
//! runs out).
//!
//! Keys, under `[policy.remote] prefix` (default `ganglion/policy`):
//!
//! | key | query payload | reply |
//! |-----|---------------|-------|
//! | `<prefix>/<name>/spec`  | empty | the policy's spec ([`ganglion_codec::remote::encode_spec`]) |
//! | `<prefix>/<name>/infer` | robot id + observation | the chunk + server times |
//! | `<prefix>/<name>/encode` | robot id + observation | the latent + instruction embedding + server times |
//!
//! The encode key serves a split world model
//! ([`ganglion_policies::SplitPolicy`], `[policy.remote] split = true`): the
//! server runs the bundle's encoder, the robot its dynamics and action head
//! over the actions it committed during the round trip as it really was.
//!
//! Frames travel raw or, with `[policy.remote] frames = "jpeg"`, JPEG-
//! compressed by the robot's inference worker and decoded by the server
//! ([`jpeg`]).
//!
//! The server ([`PolicyServer`], `ganglion serve`) keeps one policy per
//! robot id (its instruction encoding and world-model history apart), up to
//! a configured number of robots.

mod client;
pub mod jpeg;
mod server;

pub use client::{RemoteError, RemotePolicy};
pub use server::{PolicyServer, ServeStats, ServerHandle, DEFAULT_IDLE_AFTER};

/// Default key prefix of policy servers.
pub const DEFAULT_PREFIX: &str = "ganglion/policy";

/// The spec key of policy `name` under `prefix`.
pub fn spec_key(prefix: &str, name: &str) -> String {
    format!("{}/{name}/spec", prefix.trim_end_matches('/'))
}

/// The infer key of policy `name` under `prefix`.
pub fn infer_key(prefix: &str, name: &str) -> String {
    format!("{}/{name}/infer", prefix.trim_end_matches('/'))
}

/// The encode key of policy `name` under `prefix` (a split world model's
/// robot asks here for the latent).
pub fn encode_key(prefix: &str, name: &str) -> String {
    format!("{}/{name}/encode", prefix.trim_end_matches('/'))
}
