//! Inference backends behind one trait.
//!
//! A [`Graph`] owns preallocated input and output buffers sized from the
//! manifest ([`GraphIo`]); callers fill the inputs in place, call
//! [`Graph::run`], and read the outputs in place. An [`Engine`] (tract or
//! ONNX Runtime) only moves data between those buffers and its own runtime.

use std::path::{Path, PathBuf};

use crate::error::{BackendError, BundleError};
use crate::manifest::{DType, GraphRole, GraphSpec, Precision, TensorSpec};

pub mod batch;
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
    /// The graphs of the pool on the choice inside (ONNX Runtime): one
    /// engine per graph shared by every policy loaded into the pool, their
    /// calls run together ([`batch`]).
    Batched(std::sync::Arc<batch::BatchPool>, Box<BackendChoice>),
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

/// The buffer of one tensor, in its host type ([`DType::host`]): the
/// backend converts f16/bf16 and i32 tensors at its boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorBuf {
    /// f32 data.
    F32(Vec<f32>),
    /// u8 data.
    U8(Vec<u8>),
    /// i64 data.
    I64(Vec<i64>),
    /// bool data.
    Bool(Vec<bool>),
}

impl TensorBuf {
    /// Zeros for a tensor of `dtype`, held in its host type.
    fn zeros(dtype: DType, len: usize) -> Self {
        match dtype.host() {
            DType::U8 => TensorBuf::U8(vec![0; len]),
            DType::I64 => TensorBuf::I64(vec![0; len]),
            DType::Bool => TensorBuf::Bool(vec![false; len]),
            _ => TensorBuf::F32(vec![0.0; len]),
        }
    }

    /// The element type (a host type).
    pub fn dtype(&self) -> DType {
        match self {
            TensorBuf::F32(_) => DType::F32,
            TensorBuf::U8(_) => DType::U8,
            TensorBuf::I64(_) => DType::I64,
            TensorBuf::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorBuf::F32(v) => v.len(),
            TensorBuf::U8(v) => v.len(),
            TensorBuf::I64(v) => v.len(),
            TensorBuf::Bool(v) => v.len(),
        }
    }

    /// Size in bytes.
    pub fn byte_len(&self) -> usize {
        match self {
            TensorBuf::F32(v) => v.len() * 4,
            TensorBuf::U8(v) => v.len(),
            TensorBuf::I64(v) => v.len() * 8,
            TensorBuf::Bool(v) => v.len(),
        }
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data when it is f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorBuf::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Copies the first `n` values of `src` in place (a wire between graphs:
    /// the tensor a run wrote, [`GraphIo::output_shapes`]): same element
    /// type and buffer length, or an error naming both; nothing is
    /// allocated.
    pub fn copy_from(&mut self, src: &TensorBuf, n: usize) -> Result<(), String> {
        let fits = |d: usize, s: usize| d == s && n <= s;
        match (self, src) {
            (TensorBuf::F32(d), TensorBuf::F32(s)) if fits(d.len(), s.len()) => d[..n].copy_from_slice(&s[..n]),
            (TensorBuf::U8(d), TensorBuf::U8(s)) if fits(d.len(), s.len()) => d[..n].copy_from_slice(&s[..n]),
            (TensorBuf::I64(d), TensorBuf::I64(s)) if fits(d.len(), s.len()) => d[..n].copy_from_slice(&s[..n]),
            (TensorBuf::Bool(d), TensorBuf::Bool(s)) if fits(d.len(), s.len()) => d[..n].copy_from_slice(&s[..n]),
            (d, s) => {
                return Err(format!(
                    "{} {} values into {} {} values",
                    s.len(),
                    s.dtype().as_str(),
                    d.len(),
                    d.dtype().as_str()
                ))
            }
        }
        Ok(())
    }
}

/// The preallocated inputs and outputs of a graph, shaped and typed as the
/// manifest declares.
///
/// Buffers are sized for the largest shape; a tensor whose shape follows
/// the prompt's length ([`crate::manifest::prompt_axis`]) occupies the first
/// values of its buffer, laid out in its current shape.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphIo {
    /// One buffer per input, in manifest order.
    pub inputs: Vec<TensorBuf>,
    /// One buffer per output, in manifest order.
    pub outputs: Vec<TensorBuf>,
    /// Each input's shape for the next run (the manifest's, or for the
    /// current prompt's length).
    pub input_shapes: Vec<Vec<usize>>,
    /// Each output's shape for the next run.
    pub output_shapes: Vec<Vec<usize>>,
}

impl GraphIo {
    /// Zeroed buffers for `spec`, each tensor at its largest shape.
    pub(crate) fn for_spec(spec: &GraphSpec) -> Self {
        GraphIo {
            inputs: spec.inputs.iter().map(|t| TensorBuf::zeros(t.dtype, t.len())).collect(),
            outputs: spec.outputs.iter().map(|t| TensorBuf::zeros(t.dtype, t.len())).collect(),
            input_shapes: spec.inputs.iter().map(|t| t.shape.clone()).collect(),
            output_shapes: spec.outputs.iter().map(|t| t.shape.clone()).collect(),
        }
    }

    /// Values of input `i` in the next run.
    pub fn input_len(&self, i: usize) -> usize {
        self.input_shapes.get(i).map_or(0, |s| s.iter().product())
    }

    /// Values of output `i` in the next run.
    pub fn output_len(&self, i: usize) -> usize {
        self.output_shapes.get(i).map_or(0, |s| s.iter().product())
    }
}

/// Runs one loaded graph.
///
/// Invariants: `run` reads `io.inputs` and writes every `io.outputs[i]`
/// completely (same length as declared, or an error); it never panics on
/// data; it is called from one thread at a time.
pub trait Engine: Send {
    /// Runs the graph.
    fn run(&mut self, io: &mut GraphIo) -> Result<(), String>;
    /// Runs the graph on the first `rows` rows of buffers sized for more
    /// (a batch, [`batch`]); engines with fixed shapes take only all rows.
    fn run_rows(&mut self, io: &mut GraphIo, rows: usize) -> Result<(), String> {
        let _ = rows;
        self.run(io)
    }
    /// The execution provider actually in use (`tract` for tract).
    fn execution_provider(&self) -> &str;
    /// The inputs marked in `held` keep their current values in `io` for
    /// every run until the next call (an iterative head's conditioning: the
    /// prefix's KV cache, written once per inference, read by every step):
    /// an engine that copies inputs into its own tensors may copy these once
    /// here and reuse them. All `false`: every input is read at each run
    /// again. Engines that read the host buffers in place ignore it.
    fn hold_inputs(&mut self, io: &GraphIo, held: &[bool]) -> Result<(), String> {
        let _ = (io, held);
        Ok(())
    }
    /// Bytes copied from the host buffers into the engine's own input
    /// tensors since it was loaded (0 for an engine that reads them in
    /// place): what a copy-count test counts.
    fn input_bytes_copied(&self) -> u64 {
        0
    }
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
        let engine: Box<dyn Engine> = match choice {
            BackendChoice::Tract => Box::new(tract_backend::TractEngine::load(spec, model, file)?),
            BackendChoice::Ort { .. } => Box::new(ort_backend::OrtEngine::load(spec, model, file, choice)?),
            BackendChoice::Batched(pool, inner) => pool.participant(spec, model, file, inner)?,
        };
        Ok(Graph { role, spec: spec.clone(), io: GraphIo::for_spec(spec), engine })
    }

    /// Shapes the next runs' tensors that follow the prompt's length for a
    /// prompt of `tokens` tokens (`1..=max_tokens`); nothing is allocated.
    /// Other tensors keep their shapes.
    pub fn set_prompt_len(&mut self, tokens: usize) {
        let inputs = self.spec.inputs.iter().zip(&mut self.io.input_shapes);
        for (t, shape) in inputs.chain(self.spec.outputs.iter().zip(&mut self.io.output_shapes)) {
            if t.follows_prompt() {
                t.shape_at(tokens, shape);
            }
        }
    }

    /// Whether a tensor of the graph follows the prompt's length.
    pub fn follows_prompt(&self) -> bool {
        self.spec.inputs.iter().chain(&self.spec.outputs).any(TensorSpec::follows_prompt)
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

    /// Output `i` as f32 (empty when out of range or not f32).
    pub fn output(&self, i: usize) -> &[f32] {
        self.io.outputs.get(i).and_then(TensorBuf::as_f32).unwrap_or(&[])
    }

    /// Output `i` whatever its element type.
    pub fn output_buf(&self, i: usize) -> Option<&TensorBuf> {
        self.io.outputs.get(i)
    }

    /// [`Engine::hold_inputs`] on this graph's buffers: the inputs marked
    /// `held` are taken as they are now for every run until the next call.
    pub fn hold_inputs(&mut self, held: &[bool]) -> Result<(), BackendError> {
        let graph = self.role.as_str();
        self.engine.hold_inputs(&self.io, held).map_err(|reason| BackendError::Run { graph, reason })
    }

    /// [`Engine::input_bytes_copied`].
    pub fn input_bytes_copied(&self) -> u64 {
        self.engine.input_bytes_copied()
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

/// The refusal of a graph that fixes an axis the manifest writes as an
/// expression of the prompt's length: a run with another prompt would fail.
pub(crate) fn prompt_axis_fixed(name: &str, axis: &crate::manifest::PromptAxis, graph_shape: &str) -> String {
    format!(
        "axis {} of `{name}` is `{axis}` in the manifest (it follows the prompt's length), but the graph fixes it: \
         {graph_shape}; export the graph with that axis dynamic",
        axis.axis
    )
}

/// Copies an engine's output `src` into the first `expected` values of its
/// preallocated buffer `dst` (all of it but for a partial batch) when
/// element type and length agree; otherwise reports both.
pub(crate) fn copy_output<T: OutputElement>(
    dst: &mut TensorBuf,
    src: &[T],
    index: usize,
    expected: usize,
) -> Result<(), String> {
    let Some(dst) = T::slot(dst) else {
        return Err(format!("output {index} is {} in the graph, manifest declares {}", T::NAME, dst.dtype().as_str()));
    };
    match dst.get_mut(..expected) {
        Some(d) if src.len() == expected => d.copy_from_slice(src),
        _ => return Err(format!("output {index} has {} values, manifest declares {expected}", src.len())),
    }
    Ok(())
}

/// An element type a graph output may have, and its buffer in [`TensorBuf`].
pub(crate) trait OutputElement: Copy {
    /// Manifest spelling.
    const NAME: &'static str;
    /// The buffer's data when it holds this type.
    fn slot(buf: &mut TensorBuf) -> Option<&mut [Self]>;
}

macro_rules! output_element {
    ($t:ty, $variant:ident, $name:literal) => {
        impl OutputElement for $t {
            const NAME: &'static str = $name;
            fn slot(buf: &mut TensorBuf) -> Option<&mut [Self]> {
                match buf {
                    TensorBuf::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
output_element!(f32, F32, "f32");
output_element!(u8, U8, "u8");
output_element!(i64, I64, "i64");
output_element!(bool, Bool, "bool");

/// A graph input whose element type is narrower than its host buffer
/// (f16/bf16 held as f32, i32 held as i64): the narrowed copy handed to the
/// engine, preallocated at load and refilled before every run.
#[derive(Debug, Clone)]
pub(crate) enum Narrowed {
    /// The input is held in its own type: the host buffer goes as it is.
    Same,
    /// f32 rounded to f16 (nearest, ties to even).
    F16(Vec<half::f16>),
    /// f32 rounded to bf16 (nearest, ties to even).
    Bf16(Vec<half::bf16>),
    /// i64 checked into i32.
    I32(Vec<i32>),
}

impl Narrowed {
    /// The narrowed buffer `t` needs, if any.
    pub(crate) fn for_tensor(t: &TensorSpec) -> Narrowed {
        match t.dtype {
            DType::F16 => Narrowed::F16(vec![half::f16::ZERO; t.len()]),
            DType::Bf16 => Narrowed::Bf16(vec![half::bf16::ZERO; t.len()]),
            DType::I32 => Narrowed::I32(vec![0; t.len()]),
            DType::F32 | DType::U8 | DType::I64 | DType::Bool => Narrowed::Same,
        }
    }

    /// Narrows the first `n` values of the host buffer `src` into this
    /// buffer (no allocation) and returns the bytes written (0: the host
    /// buffer goes as it is). An integer outside i32 is an error naming the
    /// input, never wrapped.
    pub(crate) fn fill(&mut self, src: &TensorBuf, n: usize, name: &str) -> Result<usize, String> {
        let mismatch = || format!("input `{name}`: host buffer {} does not fit the graph's type", src.dtype().as_str());
        let fits = |d: usize, s: usize| d == s && n <= s;
        Ok(match (self, src) {
            (Narrowed::Same, _) => 0,
            (Narrowed::F16(d), TensorBuf::F32(s)) if fits(d.len(), s.len()) => {
                d.iter_mut().zip(&s[..n]).for_each(|(d, &s)| *d = half::f16::from_f32(s));
                n * 2
            }
            (Narrowed::Bf16(d), TensorBuf::F32(s)) if fits(d.len(), s.len()) => {
                d.iter_mut().zip(&s[..n]).for_each(|(d, &s)| *d = half::bf16::from_f32(s));
                n * 2
            }
            (Narrowed::I32(d), TensorBuf::I64(s)) if fits(d.len(), s.len()) => {
                for (d, &s) in d.iter_mut().zip(&s[..n]) {
                    *d = i32::try_from(s).map_err(|_| format!("input `{name}`: {s} does not fit the graph's i32"))?;
                }
                n * 4
            }
            _ => return Err(mismatch()),
        })
    }
}

/// Widens an engine's output `src` (f16/bf16 or i32) into the first
/// `expected` values of its host buffer `dst` (f32 or i64) when the lengths
/// agree; otherwise reports both.
pub(crate) fn widen_output<T: Copy, H: OutputElement>(
    dst: &mut TensorBuf,
    src: &[T],
    index: usize,
    expected: usize,
    widen: impl Fn(T) -> H,
) -> Result<(), String> {
    let Some(dst) = H::slot(dst) else {
        return Err(format!("output {index}: host buffer is not {}", H::NAME));
    };
    match dst.get_mut(..expected) {
        Some(d) if src.len() == expected => d.iter_mut().zip(src).for_each(|(d, &s)| *d = widen(s)),
        _ => return Err(format!("output {index} has {} values, manifest declares {expected}", src.len())),
    }
    Ok(())
}
