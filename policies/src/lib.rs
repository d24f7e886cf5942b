//! Policy bundles (manifest, digests, ed25519 signatures), preprocessing, and
//! inference backends (tract, ONNX Runtime).
//!
//! - [`manifest`]: `policy.toml`, parsed and validated (errors name the key).
//! - [`signing`] / [`bundle`]: keys, signatures, digest checks, directory and
//!   zip bundles; verification happens before any model file is parsed.
//! - [`external_data`]: the files an ONNX graph names for its weights must
//!   be listed and signed, and reach the backends only as verified bytes.
//! - [`preprocess`]: frames and joints into preallocated tensors.
//! - [`backend`]: tract and ONNX Runtime (CPU / CUDA / TensorRT) behind one
//!   trait.
//! - [`policy`]: [`BundlePolicy`], a bundle as a [`ganglion_core::Policy`]
//!   (format 1: the world-model pipeline; format 2: the dataflow of
//!   `pipeline.rs`); entry point [`load_policy`].
//! - [`world_model`] / [`split`]: the format-1 world-model pipeline, and
//!   its split: the encoder on a policy server, the dynamics and head on
//!   the robot ([`SplitPolicy`]).
//! - [`schedule`] / [`noise`]: iterative heads' schedules (flow matching,
//!   DDPM, DDIM) and their seeded noise.
//! - [`import`]: `ganglion policy import`, a LeRobot checkpoint into a
//!   signed bundle behind a parity gate against PyTorch.
//! - [`inspect`] / [`bench`]: what `ganglion policy inspect|bench` print.
//!
//! The bundle format is specified in `policies/README.md`.

#![warn(missing_docs)]

pub mod backend;
pub mod bench;
pub mod bundle;
pub mod error;
pub mod external_data;
mod guidance;
pub mod import;
pub mod inspect;
pub mod manifest;
pub mod noise;
mod pipeline;
pub mod policy;
pub mod preprocess;
pub mod schedule;
pub mod signing;
pub mod split;
pub mod tokenizer;
pub mod world_model;

pub use backend::{BackendKind, GraphModel, Provider, TensorRtOptions};
pub use bench::{bench_policy, BenchReport};
pub use bundle::{open_verified, sign_bundle, SignatureStatus, VerifiedBundle, VerifyOptions};
pub use error::{BackendError, BundleError};
pub use inspect::{inspect, InspectReport};
pub use manifest::{Manifest, MANIFEST_FILE, SIGNATURE_FILE};
pub use noise::NoiseRecord;
pub use pipeline::StageTimes;
pub use policy::{load_policy, BundlePolicy, LoadOptions, LoadReport};
pub use signing::{keygen, load_trusted_keys, read_signing_key, read_verifying_key};
pub use split::{load_tail, SplitPolicy};
pub use world_model::WorldModelTail;
