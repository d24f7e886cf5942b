//! Inference backends behind one trait.
//!
//! A [`Graph`] owns preallocated input and output buffers sized from the
//! manifest ([`GraphIo`]); callers fill the inputs in place, call
//! [`Graph::run`], and read the outputs in place. An [`Engine`] (tract or
//! ONNX Runtime) only moves data between those buffers and its own runtime.

use std::path::{Path, PathBuf};

use crate::error::{BackendError, BundleError};
use crate::manifest::{DType, GraphRole, GraphSpec, Precision};

pub mod ort_backend;
pub mod tract_backend;

pub use ort_backend::{discover_ort_library, ort_available, EngineCacheKey, OrtLibrary};

/// Which backend runs the graphs: the one backend vocabulary of the
/// workspace (the profile's `[policy] backend`, `--backend` of `eval`,
/// `bench`, `replay`). Lower-case in TOML and on the command line; with the
/// `clap` feature it is a `clap::ValueEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// ONNX Runtime with the CUDA provider when the library loads, was built
    /// with CUDA and an NVIDIA GPU exists (and the bundle then loads on it);
    /// else tract. The load report says why.
    #[default]
    Auto,
    /// tract, pure Rust, CPU.
    Tract,
    /// ONNX Runtime with [`LoadOptions::provider`](crate::LoadOptions).
    Ort,
}

impl BackendKind {
    /// Lower-case name, as in TOML and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }
}

/// ONNX Runtime execution provider: the one provider vocabulary of the
/// workspace (the profile's `[policy] execution_provider`, `--provider`).
/// Lower-case in TOML and on the command line; with the `clap` feature it is
/// a `clap::ValueEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// CPU.
    #[default]
    Cpu,
    /// CUDA.
    Cuda,
    /// TensorRT (engines must be built first with `ganglion policy build-engine`).
    Tensorrt,
}

impl Provider {
    /// Lower-case name, as in TOML and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::Tensorrt => "tensorrt",
        }
    }

    /// ONNX Runtime's name for the provider.
    pub const fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::Tensorrt => "TensorrtExecutionProvider",
        }
    }
}

/// TensorRT settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TensorRtOptions {
    /// Directory holding prebuilt engines (one subdirectory per
    /// [`EngineCacheKey`]). Required for the TensorRT provider.
    pub engine_cache_dir: Option<PathBuf>,
    /// Precision to build for; the manifest's precision when `None`.
    pub precision: Option<Precision>,
}

/// A fully resolved backend choice for loading graphs.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    /// tract on CPU.
    Tract,
    /// ONNX Runtime.
    Ort {
        /// Provider to register (with failure as an error).
        provider: Provider,
        /// Intra-op threads.
        threads: usize,
        /// TensorRT settings.
        tensorrt: TensorRtOptions,
        /// Precision from the manifest.
        precision: Precision,
        /// Build TensorRT engines when missing (only `build-engine` sets this).
        build_engines: bool,
    },
}

/// A graph's verified bytes: the ONNX file and every external-data file it
/// names (see [`crate::external_data`]). Backends load from these bytes only;
/// none opens a file.
#[derive(Debug, Clone, Copy)]
pub struct GraphModel<'a> {
    /// The ONNX file.
    pub graph: &'a [u8],
    /// `(location as written in the graph, verified bytes)` for each
    /// external-data file; empty for a self-contained graph.
    pub external: &'a [(&'a str, &'a [u8])],
}

impl<'a> GraphModel<'a> {
    /// A graph that keeps all its tensors inline.
    pub const fn inline(graph: &'a [u8]) -> Self {
        GraphModel { graph, external: &[] }
    }

    /// SHA-256 over the graph and its external data, in order: what a cache
    /// of compiled engines must be keyed by (the weights may live outside
    /// the graph file).
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.graph);
        for (location, bytes) in self.external {
            h.update(location.as_bytes());
            h.update(bytes);
        }
        hex::encode(h.finalize())
    }
}

/// Input buffer of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorBuf {
    /// f32 data.
    F32(Vec<f32>),
    /// u8 data.
    U8(Vec<u8>),
    /// i64 data.
    I64(Vec<i64>),
}

impl TensorBuf {
    fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F32 => TensorBuf::F32(vec![0.0; len]),
            DType::U8 => TensorBuf::U8(vec![0; len]),
            DType::I64 => TensorBuf::I64(vec![0; len]),
        }
    }
}

/// The preallocated inputs and outputs of a graph, shaped as the manifest
/// declares. Outputs are always f32.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphIo {
    /// One buffer per input, in manifest order.
    pub inputs: Vec<TensorBuf>,
    /// One buffer per output, in manifest order.
    pub outputs: Vec<Vec<f32>>,
}

/// Runs one loaded graph.
///
/// Invariants: `run` reads `io.inputs` and writes every `io.outputs[i]`
/// completely (same length as declared, or an error); it never panics on
/// data; it is called from one thread at a time.
pub trait Engine: Send {
    /// Runs the graph.
    fn run(&mut self, io: &mut GraphIo) -> Result<(), String>;
    /// The execution provider actually in use (`tract` for tract).
    fn execution_provider(&self) -> &str;
}

/// A loaded graph with its buffers.
pub struct Graph {
    role: GraphRole,
    spec: GraphSpec,
    io: GraphIo,
    engine: Box<dyn Engine>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph").field("role", &self.role).field("provider", &self.engine.execution_provider()).finish()
    }
}

impl Graph {
    /// Loads `model` (verified bytes of `file` and its external data) for
    /// `spec` with `choice`. Checks that the model's tensors match the
    /// manifest.
    pub fn load(
        role: GraphRole,
        spec: &GraphSpec,
        model: GraphModel<'_>,
        file: &Path,
        choice: &BackendChoice,
    ) -> Result<Self, BundleError> {
        if let Some((i, t)) = spec.outputs.iter().enumerate().find(|(_, t)| t.dtype != DType::F32) {
            return Err(BundleError::Model {
                file: file.to_path_buf(),
                reason: format!("output {i} `{}` is {}: outputs must be f32", t.name, t.dtype.as_str()),
            });
        }
        let engine: Box<dyn Engine> = match choice {
            BackendChoice::Tract => Box::new(tract_backend::TractEngine::load(spec, model, file)?),
            BackendChoice::Ort { .. } => Box::new(ort_backend::OrtEngine::load(spec, model, file, choice)?),
        };
        let io = GraphIo {
            inputs: spec.inputs.iter().map(|t| TensorBuf::zeros(t.dtype, t.len())).collect(),
            outputs: spec.outputs.iter().map(|t| vec![0.0; t.len()]).collect(),
        };
        Ok(Graph { role, spec: spec.clone(), io, engine })
    }

    /// The graph's role.
    pub fn role(&self) -> GraphRole {
        self.role
    }

    /// The manifest's description.
    pub fn spec(&self) -> &GraphSpec {
        &self.spec
    }

    /// Execution provider in use.
    pub fn execution_provider(&self) -> &str {
        self.engine.execution_provider()
    }

    /// All buffers, for callers that fill several inputs at once.
    pub fn io_mut(&mut self) -> &mut GraphIo {
        &mut self.io
    }

    /// Input `i` as f32; `None` when it is not f32 (or out of range).
    pub fn input_f32(&mut self, i: usize) -> Option<&mut [f32]> {
        match self.io.inputs.get_mut(i) {
            Some(TensorBuf::F32(v)) => Some(v),
            _ => None,
        }
    }

    /// Input `i` as i64; `None` when it is not i64.
    pub fn input_i64(&mut self, i: usize) -> Option<&mut [i64]> {
        match self.io.inputs.get_mut(i) {
            Some(TensorBuf::I64(v)) => Some(v),
            _ => None,
        }
    }

    /// Output `i` (empty when out of range).
    pub fn output(&self, i: usize) -> &[f32] {
        self.io.outputs.get(i).map_or(&[], Vec::as_slice)
    }

    /// Runs the graph on the current inputs.
    pub fn run(&mut self) -> Result<(), BackendError> {
        let graph = self.role.as_str();
        self.engine.run(&mut self.io).map_err(|reason| BackendError::Run { graph, reason })?;
        for (index, (buf, t)) in self.io.outputs.iter().zip(&self.spec.outputs).enumerate() {
            if buf.len() != t.len() {
                return Err(BackendError::OutputShape { graph, index, expected: t.len(), actual: buf.len() });
            }
        }
        Ok(())
    }
}

/// Copies `src` into `dst` when the lengths agree; otherwise reports both.
pub(crate) fn copy_output(dst: &mut [f32], src: &[f32], index: usize) -> Result<(), String> {
    if dst.len() != src.len() {
        return Err(format!("output {index} has {} values, manifest declares {}", src.len(), dst.len()));
    }
    dst.copy_from_slice(src);
    Ok(())
}
