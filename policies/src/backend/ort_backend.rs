//! ONNX Runtime through the `ort` crate, loaded dynamically.
//!
//! The shared library comes from `ORT_DYLIB_PATH`, else from an installed
//! `onnxruntime` Python package (`<site-packages>/onnxruntime/capi/
//! libonnxruntime.so.1.*`). One ONNX Runtime environment exists per process
//! (an `ort` rule), created on first use.
//!
//! Providers are registered with `error_on_failure`, so a CUDA or TensorRT
//! request on a machine without them is an error, never a silent CPU run;
//! the provider reported is the one registered.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionInputValue, SessionInputs};
use ort::value::TensorRef;

use super::tract_backend::{check_names, select_outputs};
use super::{
    copy_output, prompt_axis_fixed, widen_output, BackendChoice, Engine, GraphIo, GraphModel, Narrowed, Provider,
    TensorBuf,
};
use crate::error::BundleError;
use crate::manifest::{DType, GraphSpec, Precision, TensorSpec};

/// Where the ONNX Runtime library was found and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtLibrary {
    /// The shared library.
    pub path: PathBuf,
    /// `ORT_DYLIB_PATH` or the Python interpreter used to find it.
    pub found_via: String,
}

/// Python interpreters to ask for the onnxruntime package, in order:
/// `GANGLION_PYTHON`, a `.venv` in the working directory or above the
/// executable, `python3`.
fn python_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("GANGLION_PYTHON") {
        out.push(PathBuf::from(p));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    // Tests run with the crate as working directory; the workspace root
    // holds the CI virtual environment.
    roots.extend(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(Path::to_path_buf));
    for r in roots {
        let py = r.join(".venv/bin/python");
        if py.exists() && !out.contains(&py) {
            out.push(py);
        }
    }
    out.push(PathBuf::from("python3"));
    out
}

/// Finds the ONNX Runtime shared library (see the module docs).
pub fn discover_ort_library() -> Result<OrtLibrary, BundleError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(p);
        if path.is_file() {
            return Ok(OrtLibrary { path, found_via: "ORT_DYLIB_PATH".into() });
        }
        return Err(BundleError::Backend(format!("ORT_DYLIB_PATH={} is not a file", path.display())));
    }
    const FIND: &str = "import importlib.util as u; s = u.find_spec('onnxruntime'); print(s.submodule_search_locations[0] if s else '')";
    let mut tried = Vec::new();
    for py in python_candidates() {
        let Ok(out) = Command::new(&py).args(["-c", FIND]).output() else {
            tried.push(format!("{} (not runnable)", py.display()));
            continue;
        };
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if dir.is_empty() {
            tried.push(format!("{} (no onnxruntime package)", py.display()));
            continue;
        }
        let capi = Path::new(&dir).join("capi");
        let mut libs: Vec<PathBuf> = std::fs::read_dir(&capi)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        libs.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.1")));
        libs.sort();
        if let Some(path) = libs.pop() {
            return Ok(OrtLibrary { path, found_via: format!("onnxruntime package of {}", py.display()) });
        }
        tried.push(format!("{} (no libonnxruntime.so.1.* in {})", py.display(), capi.display()));
    }
    Err(BundleError::Backend(format!(
        "ONNX Runtime library not found: set ORT_DYLIB_PATH to libonnxruntime.so, or install the `onnxruntime` Python package (tried {})",
        tried.join(", ")
    )))
}

static ENV: OnceLock<Result<(Environment, OrtLibrary), String>> = OnceLock::new();

/// The process's ONNX Runtime environment, created on first call.
fn environment() -> Result<&'static Environment, BundleError> {
    let r = ENV.get_or_init(|| {
        let lib = discover_ort_library().map_err(|e| e.to_string())?;
        let builder = ort::init_from(&lib.path).map_err(|e| format!("loading {}: {e}", lib.path.display()))?;
        let env =
            builder.with_name("ganglion").build().map_err(|e| format!("creating the ONNX Runtime environment: {e}"))?;
        tracing::info!(library = %lib.path.display(), via = %lib.found_via, "ONNX Runtime loaded");
        Ok((env, lib))
    });
    r.as_ref().map(|(e, _)| e).map_err(|e| BundleError::Backend(e.clone()))
}

/// The library in use, loading it when needed; an error says why ONNX
/// Runtime cannot be used here.
pub fn ort_available() -> Result<OrtLibrary, BundleError> {
    environment()?;
    match ENV.get() {
        Some(Ok((_, lib))) => Ok(lib.clone()),
        _ => Err(BundleError::Backend("ONNX Runtime environment missing".into())),
    }
}

/// Whether the loaded ONNX Runtime was built with `provider` (it may still
/// fail to register when its libraries or the GPU are absent).
pub fn provider_compiled_in(provider: Provider) -> bool {
    use ort::ep::ExecutionProvider;
    if environment().is_err() {
        return false;
    }
    match provider {
        Provider::Cpu => true,
        Provider::Cuda => ort::ep::CUDA::is_available().unwrap_or(false),
        Provider::Tensorrt => ort::ep::TensorRT::is_available().unwrap_or(false),
    }
}

/// What a TensorRT engine depends on; engines are cached per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineCacheKey {
    /// SHA-256 of the ONNX file.
    pub model_sha256: String,
    /// TensorRT version (from `libnvinfer.so.*`), `none` when absent.
    pub tensorrt: String,
    /// CUDA runtime version (from `libcudart.so.*`), `none` when absent.
    pub cuda: String,
    /// GPU model, `none` when absent.
    pub gpu: String,
    /// Engine precision.
    pub precision: Precision,
}

impl EngineCacheKey {
    /// Detects the versions and GPU of this machine for `model_sha256`.
    pub fn detect(model_sha256: &str, precision: Precision) -> Self {
        EngineCacheKey {
            model_sha256: model_sha256.to_string(),
            tensorrt: library_version("libnvinfer.so.").unwrap_or_else(|| "none".into()),
            cuda: library_version("libcudart.so.").unwrap_or_else(|| "none".into()),
            gpu: gpu_name().unwrap_or_else(|| "none".into()),
            precision,
        }
    }

    /// Directory name of the engine cache entry.
    pub fn dir_name(&self) -> String {
        let slug: String =
            self.gpu.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let digest = self.model_sha256.get(..16).unwrap_or(&self.model_sha256);
        format!("{digest}-trt{}-cuda{}-{slug}-{}", self.tensorrt, self.cuda, self.precision.as_str())
    }

    /// Whether this machine has what TensorRT needs; the error says what is
    /// missing.
    pub fn check_usable(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if self.gpu == "none" {
            missing.push("no NVIDIA GPU found (/proc/driver/nvidia/gpus, /proc/device-tree/model)");
        }
        if self.tensorrt == "none" {
            missing.push("TensorRT library libnvinfer.so.* not found in the library path");
        }
        if self.cuda == "none" {
            missing.push("CUDA runtime libcudart.so.* not found in the library path");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }
}

fn library_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("LD_LIBRARY_PATH").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/local/cuda/lib64",
        "/usr/local/cuda/targets/aarch64-linux/lib",
        "/usr/lib64",
        "/usr/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Highest `X.Y.Z` among files named `<prefix>X.Y.Z` in the library dirs.
fn library_version(prefix: &str) -> Option<String> {
    let mut best: Option<String> = None;
    for dir in library_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(v) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
            if v.chars().all(|c| c.is_ascii_digit() || c == '.') && best.as_deref().is_none_or(|b| v.len() > b.len()) {
                best = Some(v.to_string());
            }
        }
    }
    best
}

/// The NVIDIA GPU of this machine (`/proc/driver/nvidia`, or the Jetson
/// board model), if any.
pub fn gpu_name() -> Option<String> {
    if let Ok(rd) = std::fs::read_dir("/proc/driver/nvidia/gpus") {
        for e in rd.flatten() {
            let text = std::fs::read_to_string(e.path().join("information")).unwrap_or_default();
            if let Some(model) = text.lines().find_map(|l| l.strip_prefix("Model:")) {
                return Some(model.trim().to_string());
            }
        }
    }
    // Jetson modules expose no /proc/driver/nvidia; the board model names the GPU.
    std::fs::read_to_string("/proc/device-tree/model")
        .ok()
        .map(|s| s.trim_matches(char::from(0)).trim().to_string())
        .filter(|s| s.contains("Jetson") || s.contains("NVIDIA"))
}

/// A graph loaded in ONNX Runtime.
pub struct OrtEngine {
    session: Session,
    input_names: Vec<String>,
    output_names: Vec<String>,
    /// Inputs narrower than their host buffers (f16, bf16, i32), refilled
    /// before every run.
    narrowed: Vec<Narrowed>,
    /// The graph's element type of each output.
    outputs: Vec<DType>,
    provider: &'static str,
    /// Inputs held for every run ([`Engine::hold_inputs`]): narrowed once.
    held: Vec<bool>,
    /// Bytes narrowed into input buffers since load (the rest are read in
    /// place).
    copied: u64,
    /// The declared outputs only, each into a tensor allocated at load that
    /// ONNX Runtime overwrites at every run (no output allocated per run);
    /// `None` for a batched engine, whose row count varies, and for a graph
    /// whose outputs follow the prompt's length (ONNX Runtime allocates them
    /// per run, on the inference worker).
    preallocated: Option<RunOptions<HasSelectedOutputs>>,
}

/// Selects the manifest's outputs, each preallocated at its shape: ONNX
/// Runtime writes every run's values into the same tensors.
fn preallocated_outputs(spec: &GraphSpec) -> Result<RunOptions<HasSelectedOutputs>, String> {
    use ort::memory::Allocator;
    use ort::value::Tensor;
    let alloc = Allocator::default();
    let mut selector = OutputSelector::no_default();
    for t in &spec.outputs {
        let shape = t.shape.clone();
        let err = |e: ort::Error| format!("output `{}`: {e}", t.name);
        selector = match t.dtype {
            DType::F32 => selector.preallocate(&t.name, Tensor::<f32>::new(&alloc, shape).map_err(err)?),
            DType::F16 => selector.preallocate(&t.name, Tensor::<half::f16>::new(&alloc, shape).map_err(err)?),
            DType::Bf16 => selector.preallocate(&t.name, Tensor::<half::bf16>::new(&alloc, shape).map_err(err)?),
            DType::U8 => selector.preallocate(&t.name, Tensor::<u8>::new(&alloc, shape).map_err(err)?),
            DType::I32 => selector.preallocate(&t.name, Tensor::<i32>::new(&alloc, shape).map_err(err)?),
            DType::I64 => selector.preallocate(&t.name, Tensor::<i64>::new(&alloc, shape).map_err(err)?),
            DType::Bool => selector.preallocate(&t.name, Tensor::<bool>::new(&alloc, shape).map_err(err)?),
        }
        .with(&t.name);
    }
    Ok(RunOptions::new().map_err(|e| e.to_string())?.with_outputs(selector))
}

impl OrtEngine {
    /// Creates a session for `model` with the provider of `choice`.
    pub fn load(
        spec: &GraphSpec,
        model: GraphModel<'_>,
        file: &Path,
        choice: &BackendChoice,
    ) -> Result<Self, BundleError> {
        Self::load_checked(spec, model, file, choice, false)
    }

    /// [`load`](Self::load) for a batch ([`super::batch`]): `spec`'s first
    /// dimensions are the batch's capacity, and every input and output of
    /// the graph must have a dynamic first dimension.
    pub(crate) fn load_batched(
        spec: &GraphSpec,
        model: GraphModel<'_>,
        file: &Path,
        choice: &BackendChoice,
    ) -> Result<Self, BundleError> {
        Self::load_checked(spec, model, file, choice, true)
    }

    fn load_checked(
        spec: &GraphSpec,
        model: GraphModel<'_>,
        file: &Path,
        choice: &BackendChoice,
        batched: bool,
    ) -> Result<Self, BundleError> {
        let BackendChoice::Ort { provider, threads, tensorrt, precision, build_engines } = choice else {
            return Err(BundleError::Backend("OrtEngine::load needs an ort backend choice".into()));
        };
        let env = environment()?;
        let err = |reason: String| BundleError::Model { file: file.to_path_buf(), reason };
        let berr = |e: ort::Error<ort::session::builder::SessionBuilder>| BundleError::Backend(e.to_string());
        let mut builder = Session::builder(env)
            .map_err(|e| BundleError::Backend(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(berr)?
            .with_intra_threads((*threads).max(1))
            .map_err(berr)?;
        let provider_name = provider.ort_name();
        match provider {
            Provider::Cpu => {}
            Provider::Cuda => {
                builder = builder
                    // TF32 off, said rather than left to the library's
                    // default: the graph's fp32 numerics, as its golden was
                    // made (docs/BENCHMARKS.md, "On a GPU").
                    .with_execution_providers([ort::ep::CUDA::default().with_tf32(false).build().error_on_failure()])
                    .map_err(|e| BundleError::Backend(format!("CUDA execution provider unavailable: {e}")))?;
            }
            Provider::Tensorrt => {
                let precision = tensorrt.precision.unwrap_or(*precision);
                let key = EngineCacheKey::detect(&model.sha256(), precision);
                key.check_usable().map_err(|m| BundleError::Backend(format!("TensorRT unavailable: {m}")))?;
                let root = tensorrt.engine_cache_dir.as_ref().ok_or_else(|| {
                    BundleError::Backend("TensorRT needs an engine cache directory (tensorrt engine_cache_dir)".into())
                })?;
                let dir = root.join(key.dir_name());
                let built = std::fs::read_dir(&dir).map(|mut rd| rd.next().is_some()).unwrap_or(false);
                if !built && !build_engines {
                    return Err(BundleError::Backend(format!(
                        "no TensorRT engine for {} in {}: build it with `ganglion policy build-engine` (engines are never built at start-up)",
                        file.display(),
                        dir.display()
                    )));
                }
                std::fs::create_dir_all(&dir)
                    .map_err(|e| BundleError::Io { file: dir.clone(), reason: e.to_string() })?;
                for d in [root, &dir] {
                    engine_cache_is_private(d).map_err(BundleError::Backend)?;
                }
                let trt = ort::ep::TensorRT::default()
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir.display())
                    .with_timing_cache(true)
                    .with_timing_cache_path(dir.display())
                    .with_fp16(precision == Precision::Fp16)
                    .with_int8(precision == Precision::Int8);
                builder = builder
                    .with_execution_providers([trt.build().error_on_failure()])
                    .map_err(|e| BundleError::Backend(format!("TensorRT execution provider unavailable: {e}")))?;
            }
        }
        // External data from the verified bytes, keyed by the location as the
        // graph writes it: ONNX Runtime then opens no file (it would resolve
        // the location against the working directory for a graph loaded
        // from memory).
        for (location, bytes) in model.external {
            builder = builder
                .with_external_initializer_file_in_memory(location, std::sync::Arc::from(*bytes))
                .map_err(|e| err(format!("external data `{location}`: {e}")))?;
        }
        let session = builder
            .commit_from_memory(model.graph)
            .map_err(|e| err(format!("ONNX Runtime cannot load the graph: {e}")))?;
        let input_names: Vec<String> = session.inputs().iter().map(|o| o.name().to_string()).collect();
        let graph_outputs: Vec<String> = session.outputs().iter().map(|o| o.name().to_string()).collect();
        check_names(&input_names, spec.inputs.iter().map(|t| t.name.as_str()), "inputs").map_err(err)?;
        // Extra graph outputs are allowed; only the declared ones are read.
        let selected = select_outputs(&graph_outputs, spec.outputs.iter().map(|t| t.name.as_str())).map_err(err)?;
        if batched {
            let outputs = selected.iter().map(|&i| (&session.outputs()[i], "output"));
            for (outlet, what) in session.inputs().iter().map(|o| (o, "input")).chain(outputs) {
                if let ort::value::ValueType::Tensor { shape, .. } = outlet.dtype() {
                    if shape.first().is_some_and(|&d| d >= 0) {
                        return Err(err(format!(
                            "{what} `{}` has a fixed first dimension ({shape}): dynamic batching needs graphs \
                             exported with a dynamic batch dimension",
                            outlet.name()
                        )));
                    }
                }
            }
        }
        for (outlet, t) in session.inputs().iter().zip(&spec.inputs) {
            check_tensor_type(outlet.dtype(), t, "input").map_err(err)?;
        }
        for (&i, t) in selected.iter().zip(&spec.outputs) {
            check_tensor_type(session.outputs()[i].dtype(), t, "output").map_err(err)?;
        }
        let output_names: Vec<String> = spec.outputs.iter().map(|t| t.name.clone()).collect();
        tracing::debug!(file = %file.display(), provider = provider_name, "ONNX Runtime session ready");
        Ok(OrtEngine {
            session,
            input_names,
            output_names,
            narrowed: spec.inputs.iter().map(Narrowed::for_tensor).collect(),
            outputs: spec.outputs.iter().map(|t| t.dtype).collect(),
            provider: provider_name,
            held: vec![false; spec.inputs.len()],
            copied: 0,
            preallocated: if batched || spec.outputs.iter().any(TensorSpec::follows_prompt) {
                None
            } else {
                Some(preallocated_outputs(spec).map_err(err)?)
            },
        })
    }
}

/// Compares a graph tensor's type as ONNX Runtime reads it with the
/// manifest's: same element type, same rank, every fixed dimension equal
/// (a dynamic one, `-1`, takes the manifest's size).
fn check_tensor_type(graph: &ort::value::ValueType, t: &TensorSpec, what: &str) -> Result<(), String> {
    use ort::value::TensorElementType as E;
    let ort::value::ValueType::Tensor { ty, shape, .. } = graph else {
        return Err(format!("{what} `{}` is not a tensor in the graph ({graph:?})", t.name));
    };
    let expected = match t.dtype {
        DType::F32 => E::Float32,
        DType::F16 => E::Float16,
        DType::Bf16 => E::Bfloat16,
        DType::U8 => E::Uint8,
        DType::I32 => E::Int32,
        DType::I64 => E::Int64,
        DType::Bool => E::Bool,
    };
    if *ty != expected {
        return Err(format!("{what} `{}` is {ty:?} in the graph, manifest declares {}", t.name, t.dtype.as_str()));
    }
    let fits = shape.len() == t.shape.len()
        && shape.iter().zip(&t.shape).all(|(&g, &m)| g < 0 || usize::try_from(g).is_ok_and(|g| g == m));
    if !fits {
        return Err(format!(
            "{what} `{}` has shape {shape} in the graph, manifest declares {}",
            t.name,
            t.shape_text()
        ));
    }
    if let Some(a) = t.prompt_axes.iter().find(|a| shape.get(a.axis).is_some_and(|&g| g >= 0)) {
        return Err(prompt_axis_fixed(&t.name, a, &shape.to_string()));
    }
    Ok(())
}

/// TensorRT loads whatever engine it finds in its cache directory, with no
/// signature check: a directory others can write would let them replace the
/// signed policy's engine. Refuses group- or world-writable directories.
fn engine_cache_is_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "TensorRT engine cache {} is writable by group or others (mode {:o}): TensorRT runs the engines \
             it finds there unchecked; `chmod go-w` it",
            dir.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

impl Engine for OrtEngine {
    fn run(&mut self, io: &mut GraphIo) -> Result<(), String> {
        let rows = io.input_shapes.first().and_then(|s| s.first()).copied().unwrap_or(1);
        self.run_rows(io, rows)
    }

    fn run_rows(&mut self, io: &mut GraphIo, rows: usize) -> Result<(), String> {
        // The first `rows` rows of tensors shaped for `shape[0]` rows (the
        // run's shapes: the manifest's, or the current prompt's).
        let part = |shape: &[usize]| {
            let mut s = shape.to_vec();
            if let Some(d) = s.first_mut() {
                *d = rows.min((*d).max(1));
            }
            let n = s.iter().product::<usize>();
            (s, n)
        };
        let inputs_of = io.inputs.iter().zip(&io.input_shapes).zip(&self.input_names).zip(&mut self.narrowed);
        for ((((buf, shape), name), narrow), &held) in inputs_of.zip(&self.held) {
            if !held {
                self.copied += narrow.fill(buf, part(shape).1, name)? as u64;
            }
        }
        let mut inputs: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(io.inputs.len());
        let inputs_of = io.inputs.iter().zip(&io.input_shapes).zip(&self.input_names);
        for (((buf, shape), name), narrow) in inputs_of.zip(&self.narrowed) {
            let (shape, n) = part(shape);
            let v: SessionInputValue<'_> = match (narrow, buf) {
                (Narrowed::F16(v), _) => TensorRef::from_array_view((shape, &v[..n])).map(Into::into),
                (Narrowed::Bf16(v), _) => TensorRef::from_array_view((shape, &v[..n])).map(Into::into),
                (Narrowed::I32(v), _) => TensorRef::from_array_view((shape, &v[..n])).map(Into::into),
                (Narrowed::Same, TensorBuf::F32(v)) => TensorRef::from_array_view((shape, &v[..n])).map(Into::into),
                (Narrowed::Same, TensorBuf::U8(v)) => TensorRef::from_array_view((shape, &v[..n])).map(Into::into),
                (Narrowed::Same, TensorBuf::I64(v)) => TensorRef::from_array_view((shape, &v[..n])).map(Into::into),
                (Narrowed::Same, TensorBuf::Bool(v)) => TensorRef::from_array_view((shape, &v[..n])).map(Into::into),
            }
            .map_err(|e| format!("input `{name}`: {e}"))?;
            inputs.push((name.as_str(), v));
        }
        let outputs = match &self.preallocated {
            Some(options) => self.session.run_with_options(SessionInputs::from(inputs), options),
            None => self.session.run(SessionInputs::from(inputs)),
        }
        .map_err(|e| e.to_string())?;
        let outputs_of = io.outputs.iter_mut().zip(&io.output_shapes).zip(&self.output_names).zip(&self.outputs);
        for (i, (((dst, shape), name), &dtype)) in outputs_of.enumerate() {
            let value = outputs.get(name).ok_or_else(|| format!("output `{name}` missing"))?;
            let err = |e: ort::Error| format!("output `{name}`: {e}");
            let n = part(shape).1;
            match dtype {
                DType::F32 => copy_output(dst, value.try_extract_tensor::<f32>().map_err(err)?.1, i, n)?,
                DType::F16 => {
                    widen_output(dst, value.try_extract_tensor::<half::f16>().map_err(err)?.1, i, n, half::f16::to_f32)?
                }
                DType::Bf16 => widen_output(
                    dst,
                    value.try_extract_tensor::<half::bf16>().map_err(err)?.1,
                    i,
                    n,
                    half::bf16::to_f32,
                )?,
                DType::U8 => copy_output(dst, value.try_extract_tensor::<u8>().map_err(err)?.1, i, n)?,
                DType::I32 => widen_output(dst, value.try_extract_tensor::<i32>().map_err(err)?.1, i, n, i64::from)?,
                DType::I64 => copy_output(dst, value.try_extract_tensor::<i64>().map_err(err)?.1, i, n)?,
                DType::Bool => copy_output(dst, value.try_extract_tensor::<bool>().map_err(err)?.1, i, n)?,
            }
        }
        Ok(())
    }

    fn execution_provider(&self) -> &str {
        self.provider
    }

    fn hold_inputs(&mut self, io: &GraphIo, held: &[bool]) -> Result<(), String> {
        let inputs_of = io.inputs.iter().zip(&self.input_names).zip(&mut self.narrowed).zip(&mut self.held);
        for (i, (((buf, name), narrow), flag)) in inputs_of.enumerate() {
            *flag = held.get(i).copied().unwrap_or(false);
            if *flag {
                self.copied += narrow.fill(buf, io.input_len(i), name)? as u64;
            }
        }
        Ok(())
    }

    fn input_bytes_copied(&self) -> u64 {
        self.copied
    }
}

#[cfg(test)]
mod tests {
    use super::engine_cache_is_private;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_shared_engine_cache_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        engine_cache_is_private(tmp.path()).expect("0755 is private");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = engine_cache_is_private(tmp.path()).expect_err("0777 accepted");
        assert!(err.contains("777") && err.contains("chmod go-w"), "{err}");
        assert!(engine_cache_is_private(&tmp.path().join("missing")).is_err());
    }
}
