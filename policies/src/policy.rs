//! [`BundlePolicy`]: a verified bundle running as a [`ganglion_core::Policy`].
//!
//! A format-2 bundle (named graphs, declared dataflow, iterative head) runs
//! in [`crate::pipeline`]; a format-1 bundle runs the world-model pipeline
//! of [`crate::world_model`].

use std::path::Path;
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use ganglion_core::{ActionChunk, Latent, Observation, Policy, PolicyError, PolicySpec};

use crate::backend::{ort_available, BackendChoice, BackendKind, Provider, TensorRtOptions};
use crate::bundle::{open_verified, SignatureStatus, VerifiedBundle, VerifyOptions};
use crate::error::BundleError;
use crate::manifest::{Manifest, FORMAT_DATAFLOW};
use crate::noise::NoiseRecord;
use crate::pipeline::DataflowPolicy;
use crate::tokenizer::TokenizeError;
use crate::world_model::WorldModelPolicy;

/// How to load a bundle.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Backend; `auto` picks ONNX Runtime with CUDA when usable, else tract.
    pub backend: BackendKind,
    /// ONNX Runtime execution provider (ignored by tract).
    pub provider: Provider,
    /// Intra-op threads for ONNX Runtime.
    pub threads: usize,
    /// Keys whose signatures are trusted.
    pub trusted_keys: Vec<VerifyingKey>,
    /// Run bundles without a verified signature (warns on every load).
    pub allow_unsigned: bool,
    /// TensorRT settings.
    pub tensorrt: TensorRtOptions,
    /// Build TensorRT engines when missing; only `build-engine` sets this.
    pub build_engines: bool,
    /// Share the graphs' engines with every policy loaded into this pool and
    /// run their calls together (a policy server's robots, dynamic
    /// batching; ONNX Runtime only). `None`: the policy owns its engines.
    pub batch: Option<std::sync::Arc<crate::backend::batch::BatchPool>>,
    /// The arm's calibrated range per joint (profile order), which joints
    /// in LeRobot's range units (`range_m100_100`, `range_0_100`) are
    /// converted with; empty: none (such a bundle is refused).
    pub joint_ranges: Vec<crate::preprocess::JointRange>,
    /// The arm's calibration comes later, per robot (a policy server:
    /// [`Policy::set_joint_ranges`] with each robot's): a bundle in
    /// LeRobot's range units then loads (built and warmed up with a nominal
    /// calibration, ±π rad) and refuses to infer until it has the robot's.
    pub ranges_per_robot: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            backend: BackendKind::Tract,
            provider: Provider::Cpu,
            threads: 1,
            trusted_keys: Vec::new(),
            allow_unsigned: false,
            tensorrt: TensorRtOptions::default(),
            build_engines: false,
            batch: None,
            joint_ranges: Vec::new(),
            ranges_per_robot: false,
        }
    }
}

/// What loading measured and decided.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// Backend actually used.
    pub backend: BackendKind,
    /// Execution provider actually in use.
    pub execution_provider: String,
    /// Why this backend (relevant for `auto`).
    pub backend_reason: String,
    /// Verification + graph loading + optimization, ms.
    pub load_ms: f64,
    /// The warm-up inference, ms.
    pub first_inference_ms: f64,
    /// Signature status, as text.
    pub signature: String,
}

/// Loads, verifies and warms up the bundle at `dir` (directory or zip).
pub fn load_policy(dir: &Path, opts: &LoadOptions) -> Result<BundlePolicy, BundleError> {
    let t0 = Instant::now();
    let verify = VerifyOptions { trusted_keys: opts.trusted_keys.clone(), allow_unsigned: opts.allow_unsigned };
    let bundle = open_verified(dir, &verify)?;
    let (mut choice, reason) = resolve_backend(opts, &bundle.manifest);
    if let Some(pool) = &opts.batch {
        let most = bundle.manifest.max_batch.unwrap_or(1) as usize;
        if pool.max_batch() > most {
            return Err(BundleError::Backend(format!(
                "batches of {} rows asked, the bundle's manifest allows {most} (`max_batch`)",
                pool.max_batch()
            )));
        }
        choice = BackendChoice::Batched(pool.clone(), Box::new(choice));
    }
    // A policy server's robots send their calibration later: build with a
    // nominal one and refuse to infer until a robot's arrives.
    let pending = opts.ranges_per_robot && opts.joint_ranges.is_empty() && bundle.manifest.needs_joint_ranges();
    let nominal = vec![NOMINAL_RANGE; bundle.manifest.n_joints()];
    let ranges = if pending { &nominal } else { &opts.joint_ranges };
    let mut policy = match BundlePolicy::from_bundle(&bundle, &choice, ranges) {
        Ok(p) => p,
        Err(e) if opts.backend == BackendKind::Auto && !matches!(choice, BackendChoice::Tract) => {
            tracing::warn!(error = %e, "auto: ONNX Runtime with a GPU failed to load the bundle; using tract");
            BundlePolicy::from_bundle(&bundle, &BackendChoice::Tract, ranges)?
        }
        Err(e) => return Err(e),
    };
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let first_inference_ms = policy.warm_up()?;
    policy.ranges_pending = pending;
    let backend = match &policy.choice {
        BackendChoice::Tract => BackendKind::Tract,
        BackendChoice::Batched(_, inner) if matches!(**inner, BackendChoice::Tract) => BackendKind::Tract,
        _ => BackendKind::Ort,
    };
    policy.report = LoadReport {
        backend,
        execution_provider: policy.execution_provider().to_string(),
        backend_reason: reason,
        load_ms,
        first_inference_ms,
        signature: match &bundle.signature {
            SignatureStatus::Valid { key_id } => format!("valid (key {key_id})"),
            SignatureStatus::Unsigned => "unsigned (allowed)".into(),
            SignatureStatus::NotChecked => "not checked: no trusted key (allowed)".into(),
        },
    };
    tracing::info!(bundle = %dir.display(), report = ?policy.report, "policy loaded");
    Ok(policy)
}

pub(crate) fn resolve_backend(opts: &LoadOptions, manifest: &Manifest) -> (BackendChoice, String) {
    let ort = |provider| BackendChoice::Ort {
        provider,
        threads: opts.threads,
        tensorrt: opts.tensorrt.clone(),
        precision: manifest.precision,
        build_engines: opts.build_engines,
    };
    match opts.backend {
        BackendKind::Tract => (BackendChoice::Tract, "requested".into()),
        BackendKind::Ort => (ort(opts.provider), "requested".into()),
        BackendKind::Auto => {
            let why = match ort_available() {
                Err(e) => format!("ONNX Runtime unusable ({e})"),
                Ok(_) if !crate::backend::ort_backend::provider_compiled_in(Provider::Cuda) => {
                    "this ONNX Runtime has no CUDA execution provider".to_string()
                }
                Ok(_) if crate::backend::ort_backend::gpu_name().is_none() => "no NVIDIA GPU found".to_string(),
                Ok(lib) => {
                    let why = format!("ONNX Runtime {} with CUDA and a GPU", lib.path.display());
                    tracing::info!(reason = %why, "auto backend: ort/cuda");
                    return (ort(Provider::Cuda), why);
                }
            };
            let why = format!("tract: {why}");
            tracing::info!(reason = %why, "auto backend: tract");
            (BackendChoice::Tract, why)
        }
    }
}

/// A verified bundle ready to run: format 1 (world model or single graph)
/// or format 2 (dataflow with an optional iterative head).
pub struct BundlePolicy {
    choice: BackendChoice,
    report: LoadReport,
    inner: Pipeline,
    joint_ranges: Vec<crate::preprocess::JointRange>,
    /// Loaded with [`LoadOptions::ranges_per_robot`] and still without a
    /// robot's calibration: inference is refused.
    ranges_pending: bool,
}

/// The calibration a bundle in range units is built and warmed up with
/// before a robot's arrives ([`LoadOptions::ranges_per_robot`]).
const NOMINAL_RANGE: crate::preprocess::JointRange =
    crate::preprocess::JointRange { min_rad: -std::f64::consts::PI, max_rad: std::f64::consts::PI, inverted: false };

/// What runs the bundle.
enum Pipeline {
    WorldModel(Box<WorldModelPolicy>),
    Dataflow(Box<DataflowPolicy>),
}

impl std::fmt::Debug for BundlePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundlePolicy").field("spec", self.spec()).field("report", &self.report).finish()
    }
}

impl BundlePolicy {
    fn from_bundle(
        bundle: &VerifiedBundle,
        choice: &BackendChoice,
        ranges: &[crate::preprocess::JointRange],
    ) -> Result<Self, BundleError> {
        let inner = if bundle.manifest.format == FORMAT_DATAFLOW {
            Pipeline::Dataflow(Box::new(DataflowPolicy::from_bundle(bundle, choice, ranges)?))
        } else {
            Pipeline::WorldModel(Box::new(WorldModelPolicy::from_bundle(bundle, choice, ranges)?))
        };
        Ok(BundlePolicy {
            choice: choice.clone(),
            report: LoadReport {
                backend: BackendKind::Tract,
                execution_provider: String::new(),
                backend_reason: String::new(),
                load_ms: 0.0,
                first_inference_ms: 0.0,
                signature: String::new(),
            },
            inner,
            joint_ranges: ranges.to_vec(),
            ranges_pending: false,
        })
    }

    /// Runs the pipeline once on a neutral observation (mid-grey frames,
    /// joints at their mean), then forgets the run; returns its duration in ms.
    fn warm_up(&mut self) -> Result<f64, BundleError> {
        let obs = neutral_observation(self.spec(), self.manifest(), &self.joint_ranges)?;
        let mut out = ActionChunk::for_spec(self.spec());
        let t = Instant::now();
        self.infer(&obs, &mut out).map_err(|e| BundleError::Backend(format!("warm-up inference failed: {e}")))?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        self.reset_history();
        Ok(ms)
    }

    fn execution_provider(&self) -> &str {
        match &self.inner {
            Pipeline::WorldModel(p) => p.obs_graph.execution_provider(),
            Pipeline::Dataflow(p) => p.execution_provider(),
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        match &self.inner {
            Pipeline::WorldModel(p) => &p.manifest,
            Pipeline::Dataflow(p) => p.manifest(),
        }
    }

    /// Refuses inference while a robot's calibration is pending
    /// ([`LoadOptions::ranges_per_robot`]).
    fn check_ranges(&self) -> Result<(), PolicyError> {
        if self.ranges_pending {
            return Err(PolicyError::BadObservation(format!(
                "{}: its joints are in LeRobot's range units and this robot sent no calibrated joint ranges \
                 (the servo transport's calibration; [policy.remote] on the robot sends them)",
                self.spec().name
            )));
        }
        Ok(())
    }

    /// The arm's calibrated joint ranges it converts with
    /// ([`LoadOptions::joint_ranges`], or a robot's).
    pub fn joint_ranges(&self) -> &[crate::preprocess::JointRange] {
        &self.joint_ranges
    }

    /// Load-time measurements and decisions.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// Instructions that could not be encoded since load (format 1 with a
    /// text encoder, format 2 with `[text]`; 0 otherwise).
    pub fn instruction_errors(&self) -> u64 {
        match &self.inner {
            Pipeline::WorldModel(p) => p.instruction_errors,
            Pipeline::Dataflow(p) => p.instruction_errors(),
        }
    }

    /// Why the most recent instruction change was rejected, if it was.
    pub fn last_instruction_error(&self) -> Option<&TokenizeError> {
        match &self.inner {
            Pipeline::WorldModel(p) => p.last_instruction_error.as_ref(),
            Pipeline::Dataflow(p) => p.last_instruction_error(),
        }
    }

    /// Forgets the world model's history (the reference observation the
    /// surprise monitor predicts from), e.g. when the scene is reset; the
    /// next observation carries no surprise. `infer` does this itself when
    /// the instruction changes (only bundles with a text encoder read it)
    /// and when the policy takes over from the fallback.
    ///
    /// The surprise monitor's recovery rule: the world model predicts each
    /// observation from the last *trusted* one (a surprising observation
    /// never becomes the reference) over what the robot executed since.
    /// While the policy drives that is the policy's own plan. While the
    /// fallback drives ([`Observation::held`]) the plan is not executed —
    /// predicting over it would keep every later observation surprising,
    /// the latch this rule replaces — so the prediction rolls the reference
    /// over a move to the arm's measured position and a hold there. When
    /// the fault is gone (the camera is back, the joints are sane) that
    /// prediction matches, the observation becomes the new reference, and
    /// the loop releases `world_model_surprise` after `[control]
    /// surprise_calm_chunks` calm chunks in a row. A camera that stays blind
    /// keeps disagreeing with the last trusted reference, so it is never
    /// re-anchored on; and observations that fail the loop's input checks
    /// (blank or frozen camera, stale or out-of-envelope joints) are never
    /// sent to the policy at all.
    ///
    /// Format 2: the observation histories (`history = k` wires) start
    /// afresh: the next observation fills every slot, as LeRobot's
    /// `reset()` empties its queues.
    pub fn reset_history(&mut self) {
        match &mut self.inner {
            Pipeline::WorldModel(p) => p.reset_history(),
            Pipeline::Dataflow(p) => p.reset_history(),
        }
    }

    /// Surprise of the most recent inference (format 1 with dynamics).
    pub fn last_surprise(&self) -> Option<f32> {
        match &self.inner {
            Pipeline::WorldModel(p) => p.last_surprise(),
            Pipeline::Dataflow(_) => None,
        }
    }

    /// The cached instruction embedding (empty without a text encoder).
    pub fn instruction_embedding(&self) -> &[f32] {
        match &self.inner {
            Pipeline::WorldModel(p) => &p.latent.embedding,
            Pipeline::Dataflow(_) => &[],
        }
    }

    /// The seed the iterative head's noise is drawn from (default 0). Each
    /// inference draws from the stream numbered by the observation's
    /// `request_id`, so (seed, request id) re-create a chunk bit for bit;
    /// see [`crate::noise`]. No effect without an iterative head.
    pub fn set_noise_seed(&mut self, seed: u64) {
        if let Pipeline::Dataflow(p) = &mut self.inner {
            p.set_noise_seed(seed);
        }
    }

    /// Draws the iterative head's noise (x_T, then each noisy step's noise,
    /// in step order) from `source` instead of the seeded stream, for the
    /// following inferences (`None`: the seeded stream again). A
    /// [`crate::noise::RecordedNoise`] replays noise recorded elsewhere, e.g.
    /// the `torch.randn` draws of a PyTorch reference loop (parity tests,
    /// replay of a logged run); an x_T set with [`Self::set_initial_noise`]
    /// still takes precedence over the source's first tensor. A source that
    /// cannot deliver fails the inference. Error without an iterative head.
    pub fn set_noise_source(&mut self, source: Option<Box<dyn crate::noise::NoiseSource>>) -> Result<(), PolicyError> {
        match &mut self.inner {
            Pipeline::Dataflow(p) => p.set_noise_source(source),
            Pipeline::WorldModel(_) => Err(PolicyError::Backend("this bundle has no iterative head".into())),
        }
    }

    /// Replaces the drawn initial sample x_T with `noise` for the following
    /// inferences (`None` draws again): for parity tests against a
    /// reference implementation and for replaying a recorded sample.
    /// Per-step noise (DDPM, DDIM with η > 0) is still drawn from the seed.
    pub fn set_initial_noise(&mut self, noise: Option<&[f32]>) -> Result<(), PolicyError> {
        match &mut self.inner {
            Pipeline::Dataflow(p) => p.set_initial_noise(noise),
            Pipeline::WorldModel(_) => Err(PolicyError::Backend("this bundle has no iterative head".into())),
        }
    }

    /// Format 2: the wall time of each stage of the last inference
    /// (tokenize, preprocess, each graph, each head step, postprocess);
    /// `None` for format 1.
    pub fn last_stages(&self) -> Option<&crate::pipeline::StageTimes> {
        match &self.inner {
            Pipeline::WorldModel(_) => None,
            Pipeline::Dataflow(p) => Some(p.stage_times()),
        }
    }

    /// The noise of the most recent inference of an iterative head: what a
    /// recorder logs next to the chunk to replay it.
    pub fn last_noise(&self) -> Option<NoiseRecord> {
        match &self.inner {
            Pipeline::Dataflow(p) => p.last_noise(),
            Pipeline::WorldModel(_) => None,
        }
    }
}

/// A neutral observation for warm-up: mid-grey frames, joints at the
/// manifest's mean.
pub(crate) fn neutral_observation(
    spec: &PolicySpec,
    manifest: &Manifest,
    ranges: &[crate::preprocess::JointRange],
) -> Result<Observation, BundleError> {
    let mut obs = Observation::for_spec(spec);
    for (frame, cam) in obs.frames.iter_mut().zip(&spec.cameras) {
        frame
            .set_with(cam.width, cam.height, cam.format, |b| b.fill(128))
            .map_err(|e| BundleError::Backend(format!("warm-up frame for camera {}: {e}", cam.name)))?;
    }
    let center = manifest.state_normalizer(ranges)?.center(spec.n_joints);
    for (p, c) in obs.joints.position.iter_mut().zip(center) {
        *p = c;
    }
    Ok(obs)
}

/// The checks every pipeline makes on an observation before using it.
pub(crate) fn check_observation(spec: &PolicySpec, obs: &Observation) -> Result<(), PolicyError> {
    let n = spec.n_joints;
    if obs.joints.len() != n {
        return Err(PolicyError::BadObservation(format!("{} joints, policy expects {n}", obs.joints.len())));
    }
    if !obs.joints.position.is_finite() {
        return Err(PolicyError::BadObservation("non-finite joint position".into()));
    }
    if obs.frames.len() != spec.cameras.len() {
        return Err(PolicyError::BadObservation(format!(
            "{} frames, policy expects {} cameras",
            obs.frames.len(),
            spec.cameras.len()
        )));
    }
    if obs.committed.iter().any(|a| a.len() != n || !a.is_finite()) {
        return Err(PolicyError::BadObservation("committed actions of the wrong size or non-finite".into()));
    }
    Ok(())
}

impl Policy for BundlePolicy {
    fn spec(&self) -> &PolicySpec {
        match &self.inner {
            Pipeline::WorldModel(p) => &p.spec,
            Pipeline::Dataflow(p) => p.spec(),
        }
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        self.check_ranges()?;
        match &mut self.inner {
            Pipeline::WorldModel(p) => p.infer(obs, out),
            Pipeline::Dataflow(p) => p.infer(obs, out),
        }
    }

    /// A bundle in LeRobot's range units converts with `ranges` from now
    /// on (normalizers rebuilt; they must be one per joint); other bundles
    /// ignore them.
    fn set_joint_ranges(&mut self, ranges: &[crate::preprocess::JointRange]) -> Result<(), PolicyError> {
        if !self.manifest().needs_joint_ranges() || (!self.ranges_pending && ranges == self.joint_ranges.as_slice()) {
            return Ok(());
        }
        let n = self.manifest().n_joints();
        if ranges.len() != n {
            return Err(PolicyError::BadObservation(format!(
                "{} calibrated joint ranges, the bundle's joints are {n} in LeRobot's range units",
                ranges.len()
            )));
        }
        let set = match &mut self.inner {
            Pipeline::WorldModel(p) => p.set_joint_ranges(ranges),
            Pipeline::Dataflow(p) => p.set_joint_ranges(ranges),
        };
        set.map_err(|e| PolicyError::BadObservation(e.to_string()))?;
        self.joint_ranges = ranges.to_vec();
        self.ranges_pending = false;
        Ok(())
    }

    /// Format 1 with an action head: the encoder half
    /// ([`crate::world_model`]); otherwise an error.
    fn infer_latent(&mut self, obs: &Observation, out: &mut Latent) -> Result<(), PolicyError> {
        self.check_ranges()?;
        match &mut self.inner {
            Pipeline::WorldModel(p) => p.infer_latent(obs, out),
            Pipeline::Dataflow(p) => Err(PolicyError::Backend(format!(
                "{}: a format-2 bundle has no world-model encoder to split at",
                p.spec().name
            ))),
        }
    }

    /// Format 2: [`StageTimes`](crate::pipeline::StageTimes) by stage, in
    /// run order: `tokenize` (0 when the prompt did not change),
    /// `preprocess`, `graph <name>` per once-per-inference graph, `step`
    /// once per head step, `postprocess`. Format 1: none.
    fn stage_times(&self, record: &mut dyn FnMut(&str, u64)) {
        let Pipeline::Dataflow(p) = &self.inner else { return };
        let s = p.stage_times();
        record("tokenize", s.tokenize_ns);
        record("preprocess", s.preprocess_ns);
        for (name, ns) in &s.graphs_ns {
            record(name, *ns);
        }
        for ns in &s.steps_ns {
            record("step", *ns);
        }
        record("postprocess", s.postprocess_ns);
    }
}
