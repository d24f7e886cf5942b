//! Errors of bundle loading and inference backends.

use std::path::PathBuf;

/// Why a bundle could not be verified, parsed or loaded.
///
/// Every variant names the file it is about, so an operator can find the
/// problem without reading code.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read (missing, permissions, bad archive entry).
    #[error("{}: {reason}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A bundle file the manifest lists is not there.
    #[error("{}: file listed in the manifest is missing from the bundle", file.display())]
    MissingFile {
        /// The missing file.
        file: PathBuf,
    },
    /// The manifest does not parse or fails validation.
    #[error("{}: key `{key}`: {problem}", file.display())]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// Dotted key path, e.g. `graphs.encoder.inputs[0].shape`.
        key: String,
        /// What was expected.
        problem: String,
    },
    /// The signature is missing, malformed, made by an untrusted key or does
    /// not match the manifest bytes.
    #[error("{}: signature rejected: {reason}", file.display())]
    Signature {
        /// The signature file (or the manifest when it was altered).
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file's SHA-256 does not match the manifest.
    #[error("{}: SHA-256 mismatch: manifest says {expected}, file has {actual}", file.display())]
    Digest {
        /// The altered file.
        file: PathBuf,
        /// Digest from the manifest (hex).
        expected: String,
        /// Digest of the file (hex).
        actual: String,
    },
    /// A key file is malformed.
    #[error("{}: {reason}", file.display())]
    Key {
        /// The key file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A graph names external data (weights in a side file) that the signed
    /// manifest does not list, outside the bundle, out of range, or in a
    /// place only the backend itself would resolve. Refused at verification,
    /// before any backend sees the graph.
    #[error("{}: external data refused: {reason}", file.display())]
    ExternalData {
        /// The graph file.
        file: PathBuf,
        /// Which tensor, which location, and why.
        reason: String,
    },
    /// A model file was verified but the backend could not load it, or its
    /// tensors disagree with the manifest.
    #[error("{}: {reason}", file.display())]
    Model {
        /// The ONNX file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The inference backend cannot be used here (library missing, provider
    /// unavailable, engine not built).
    #[error("backend unavailable: {0}")]
    Backend(String),
}

/// Why a graph could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The backend reported an error while running.
    #[error("{graph}: {reason}")]
    Run {
        /// Graph role (`encoder`, `policy`, ...).
        graph: &'static str,
        /// Backend message.
        reason: String,
    },
    /// An output had a different size than the manifest declares.
    #[error("{graph}: output {index} has {actual} values, manifest declares {expected}")]
    OutputShape {
        /// Graph role.
        graph: &'static str,
        /// Output index.
        index: usize,
        /// Declared element count.
        expected: usize,
        /// Actual element count.
        actual: usize,
    },
}
