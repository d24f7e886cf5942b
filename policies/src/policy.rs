//! [`BundlePolicy`]: a verified bundle running as a [`ganglion_core::Policy`].
//!
//! A format-2 bundle (named graphs, declared dataflow, iterative head) runs
//! in [`crate::pipeline`]. A format-1 bundle runs the world-model pipeline
//! here, per observation (wiring documented in the README):
//! 1. instruction: re-tokenized and re-encoded only when its `seq` changes;
//! 2. observation graph (`encoder` or `policy`): images, normalized joint
//!    positions, [instruction embedding];
//! 3. with `dynamics`: surprise = RMS distance between this observation's
//!    latent and the prediction rolled from the previous observation over
//!    the actions planned since (whole steps, then a linear blend for the
//!    fraction of a step); then the latent is rolled over `obs.committed`
//!    (latency compensation): the head's chunk then starts `k` steps after
//!    the observation, and the chunk handed out keeps the observation's
//!    stamp with the committed actions in front (see `infer`);
//! 4. `action_head` (latent, [embedding]) → normalized chunk → de-normalized
//!    into the [`ActionChunk`].

use std::path::Path;
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use ganglion_core::{
    ActionChunk, ActionKind, JointVec, Observation, Policy, PolicyError, PolicySpec, Stamp, MAX_COMMITTED_STEPS,
};

use crate::backend::{ort_available, BackendChoice, BackendKind, Graph, Provider, TensorBuf, TensorRtOptions};
use crate::bundle::{open_verified, SignatureStatus, VerifiedBundle, VerifyOptions};
use crate::error::BundleError;
use crate::manifest::{ActionKindConfig, GraphRole, GraphSpec, Manifest, FORMAT_DATAFLOW};
use crate::noise::NoiseRecord;
use crate::pipeline::DataflowPolicy;
use crate::preprocess::{ImageOut, ImagePreprocessor, Normalizer};
use crate::tokenizer::{TokenizeError, Tokenizer};

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
    let mut policy = match BundlePolicy::from_bundle(&bundle, &choice) {
        Ok(p) => p,
        Err(e) if opts.backend == BackendKind::Auto && !matches!(choice, BackendChoice::Tract) => {
            tracing::warn!(error = %e, "auto: ONNX Runtime with a GPU failed to load the bundle; using tract");
            BundlePolicy::from_bundle(&bundle, &BackendChoice::Tract)?
        }
        Err(e) => return Err(e),
    };
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let first_inference_ms = policy.warm_up()?;
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

fn resolve_backend(opts: &LoadOptions, manifest: &Manifest) -> (BackendChoice, String) {
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
}

/// What runs the bundle.
enum Pipeline {
    WorldModel(Box<WorldModelPolicy>),
    Dataflow(Box<DataflowPolicy>),
}

/// Format 1: the world-model pipeline (or one `policy` graph).
struct WorldModelPolicy {
    manifest: Manifest,
    state_norm: Normalizer,
    action_norm: Normalizer,
    spec: PolicySpec,
    cameras: Vec<ImagePreprocessor>,
    obs_graph: Graph,
    dynamics: Option<Graph>,
    head: Option<Graph>,
    text: Option<(Graph, Tokenizer)>,
    embedding: Vec<f32>,
    instruction_seq: Option<u64>,
    instruction_errors: u64,
    last_instruction_error: Option<TokenizeError>,
    latent: Vec<f32>,
    rolled: Vec<f32>,
    scratch: Vec<f32>,
    prev_latent: Vec<f32>,
    prev_stamp: Option<Stamp>,
    /// Actions (policy action space) planned after the reference
    /// observation (used while the policy drives).
    plan: Vec<JointVec>,
    /// Joint positions of the reference observation.
    prev_position: JointVec,
    /// Whether the previous observation was held ([`Observation::held`]).
    was_held: bool,
    last_surprise: Option<f32>,
}

impl std::fmt::Debug for BundlePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundlePolicy").field("spec", self.spec()).field("report", &self.report).finish()
    }
}

impl BundlePolicy {
    fn from_bundle(bundle: &VerifiedBundle, choice: &BackendChoice) -> Result<Self, BundleError> {
        let inner = if bundle.manifest.format == FORMAT_DATAFLOW {
            Pipeline::Dataflow(Box::new(DataflowPolicy::from_bundle(bundle, choice)?))
        } else {
            Pipeline::WorldModel(Box::new(WorldModelPolicy::from_bundle(bundle, choice)?))
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
        })
    }

    /// Runs the pipeline once on a neutral observation (mid-grey frames,
    /// joints at their mean), then forgets the run; returns its duration in ms.
    fn warm_up(&mut self) -> Result<f64, BundleError> {
        let obs = neutral_observation(self.spec(), self.manifest())?;
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
            Pipeline::WorldModel(p) => p.last_surprise,
            Pipeline::Dataflow(_) => None,
        }
    }

    /// The cached instruction embedding (empty without a text encoder).
    pub fn instruction_embedding(&self) -> &[f32] {
        match &self.inner {
            Pipeline::WorldModel(p) => &p.embedding,
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
pub(crate) fn neutral_observation(spec: &PolicySpec, manifest: &Manifest) -> Result<Observation, BundleError> {
    let mut obs = Observation::for_spec(spec);
    for (frame, cam) in obs.frames.iter_mut().zip(&spec.cameras) {
        frame
            .set_with(cam.width, cam.height, cam.format, |b| b.fill(128))
            .map_err(|e| BundleError::Backend(format!("warm-up frame for camera {}: {e}", cam.name)))?;
    }
    let center = manifest.state_normalizer().center(spec.n_joints);
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
        match &mut self.inner {
            Pipeline::WorldModel(p) => p.infer(obs, out),
            Pipeline::Dataflow(p) => p.infer(obs, out),
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

impl WorldModelPolicy {
    fn from_bundle(bundle: &VerifiedBundle, choice: &BackendChoice) -> Result<Self, BundleError> {
        let m = bundle.manifest.clone();
        let load = |role: GraphRole, spec: &GraphSpec| {
            let mut external = Vec::new();
            let model = bundle.graph_model(&spec.file, &mut external)?;
            Graph::load(role, spec, model, &bundle.display_path(&spec.file), choice)
        };
        let (obs_role, obs_spec) = m
            .graphs
            .observation_graph()
            .ok_or_else(|| BundleError::Backend("manifest has no observation graph".into()))?;
        let obs_graph = load(obs_role, obs_spec)?;
        let dynamics = m.graphs.dynamics.as_ref().map(|g| load(GraphRole::Dynamics, g)).transpose()?;
        let head = m.graphs.action_head.as_ref().map(|g| load(GraphRole::ActionHead, g)).transpose()?;
        let text = match (&m.graphs.text_encoder, &m.vocab) {
            (Some(g), Some(v)) => {
                let vocab = std::str::from_utf8(bundle.file(v)?).map_err(|_| BundleError::Model {
                    file: bundle.display_path(v),
                    reason: "vocabulary is not UTF-8".into(),
                })?;
                let tok = Tokenizer::from_vocab(vocab)
                    .map_err(|reason| BundleError::Model { file: bundle.display_path(v), reason })?;
                Some((load(GraphRole::TextEncoder, g)?, tok))
            }
            _ => None,
        };
        let cameras = m.cameras.iter().zip(&obs_spec.inputs).map(|(c, t)| ImagePreprocessor::new(c, t)).collect();
        let dims = m.dims();
        let spec = m.policy_spec();
        Ok(WorldModelPolicy {
            spec,
            cameras,
            obs_graph,
            dynamics,
            head,
            text,
            embedding: vec![0.0; dims.embedding],
            instruction_seq: None,
            instruction_errors: 0,
            last_instruction_error: None,
            latent: vec![0.0; dims.latent],
            rolled: vec![0.0; dims.latent],
            scratch: vec![0.0; dims.latent],
            prev_latent: vec![0.0; dims.latent],
            prev_stamp: None,
            plan: Vec::with_capacity(MAX_COMMITTED_STEPS + dims.chunk_len),
            prev_position: JointVec::zeros(dims.joints),
            was_held: false,
            last_surprise: None,
            state_norm: m.state_normalizer(),
            action_norm: m.action_normalizer(),
            manifest: m,
        })
    }

    fn reset_history(&mut self) {
        self.prev_stamp = None;
        self.plan.clear();
        self.last_surprise = None;
    }

    fn update_instruction(&mut self, obs: &Observation) -> Result<(), PolicyError> {
        if self.text.is_none() || self.instruction_seq == Some(obs.instruction.seq) {
            return Ok(());
        }
        self.instruction_seq = Some(obs.instruction.seq);
        // A new instruction starts a new task (in the demo: a new scene):
        // what the world model predicted for the old one does not apply, and
        // a held surprising reference is released here.
        self.reset_history();
        let Some((graph, tok)) = self.text.as_mut() else { return Ok(()) };
        let ids = graph.input_i64(0).ok_or_else(|| PolicyError::Backend("text encoder input is not i64".into()))?;
        if let Err(e) = tok.encode(&obs.instruction.text, ids) {
            tracing::warn!(error = %e, seq = obs.instruction.seq, "instruction rejected; keeping the previous one");
            self.instruction_errors += 1;
            self.last_instruction_error = Some(e);
            return Ok(());
        }
        graph.run().map_err(|e| PolicyError::Backend(e.to_string()))?;
        self.embedding.copy_from_slice(graph.output(0));
        self.last_instruction_error = None;
        Ok(())
    }

    /// Writes `action` (policy action space) normalized into dynamics input 1
    /// and `latent` into input 0, runs, and copies the next latent to `out`.
    fn step_dynamics(
        dynamics: &mut Graph,
        latent: &[f32],
        action: &[f64],
        action_norm: &Normalizer,
        out: &mut [f32],
    ) -> Result<(), PolicyError> {
        let io = dynamics.io_mut();
        match io.inputs.as_mut_slice() {
            [TensorBuf::F32(z), TensorBuf::F32(a)] => {
                z.copy_from_slice(latent);
                action_norm.normalize(action, a);
            }
            _ => return Err(PolicyError::Backend("dynamics inputs are not (f32 latent, f32 action)".into())),
        }
        dynamics.run().map_err(|e| PolicyError::Backend(e.to_string()))?;
        out.copy_from_slice(dynamics.output(0));
        Ok(())
    }
}

/// Absolute target → policy action space (deltas are relative to the
/// observed position).
fn to_action_space(kind: ActionKindConfig, target: &JointVec, position: &JointVec) -> JointVec {
    let mut a = *target;
    if kind == ActionKindConfig::Delta {
        for (x, p) in a.iter_mut().zip(position.iter()) {
            *x -= p;
        }
    }
    a
}

fn rms_distance(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().max(1) as f32;
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / n).sqrt()
}

impl WorldModelPolicy {
    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        let t0 = Instant::now();
        check_observation(&self.spec, obs)?;
        self.update_instruction(obs)?;
        // Taking over from the fallback: the reference was predicted over a
        // hold, the policy's new plan starts now.
        if self.was_held && !obs.held {
            self.reset_history();
        }
        self.was_held = obs.held;
        let n = self.spec.n_joints;
        let cams = self.cameras.len();
        // Observation graph inputs.
        {
            let io = self.obs_graph.io_mut();
            for (i, (pre, frame)) in self.cameras.iter_mut().zip(&obs.frames).enumerate() {
                let dst = match &mut io.inputs[i] {
                    TensorBuf::F32(v) => ImageOut::F32(v),
                    TensorBuf::U8(v) => ImageOut::U8(v),
                    TensorBuf::I64(_) | TensorBuf::Bool(_) => {
                        return Err(PolicyError::Backend("image input is neither f32 nor u8".into()))
                    }
                };
                pre.run(frame, dst)
                    .map_err(|e| PolicyError::BadObservation(format!("camera {}: {e}", self.spec.cameras[i].name)))?;
            }
            match &mut io.inputs[cams] {
                TensorBuf::F32(v) => self.state_norm.normalize(&obs.joints.position, v),
                _ => return Err(PolicyError::Backend("joint input is not f32".into())),
            }
            if let Some(TensorBuf::F32(v)) = io.inputs.get_mut(cams + 1) {
                v.copy_from_slice(&self.embedding);
            }
        }
        self.obs_graph.run().map_err(|e| PolicyError::Backend(e.to_string()))?;

        let kind = self.manifest.action.kind;
        let mut rolled_steps = 0u64;
        let mut surprise = None;
        let chunk_norm: &[f32] = if let Some(head) = self.head.as_mut() {
            self.latent.copy_from_slice(self.obs_graph.output(0));
            if let Some(dynamics) = self.dynamics.as_mut() {
                // Surprise: roll the previous latent over the actions planned
                // since, for the time elapsed (whole policy steps, then a
                // linear blend into the next one, so observations closer
                // together than a policy step, e.g. one per camera frame, are
                // predicted too), and compare.
                // Held: a move to where the arm is measured, then a hold
                // there, for as many steps as a plan would cover.
                let hold = to_action_space(kind, &obs.joints.position, &self.prev_position);
                let horizon = if obs.held { self.spec.chunk_len.saturating_sub(1).max(1) } else { self.plan.len() };
                let action = |plan: &[JointVec], i: usize| if obs.held { hold } else { plan[i] };
                if let (Some(prev), true) = (self.prev_stamp, horizon > 0 && (obs.held || !self.plan.is_empty())) {
                    let step = self.spec.step_ns.max(1);
                    let elapsed = obs.stamp.saturating_since(prev);
                    let whole = ((elapsed / step) as usize).min(horizon);
                    let frac = if whole < horizon { (elapsed % step) as f32 / step as f32 } else { 0.0 };
                    self.rolled.copy_from_slice(&self.prev_latent);
                    for i in 0..whole {
                        let a = action(&self.plan, i);
                        Self::step_dynamics(dynamics, &self.rolled, &a, &self.action_norm, &mut self.scratch)?;
                        std::mem::swap(&mut self.rolled, &mut self.scratch);
                    }
                    if frac > 0.0 {
                        Self::step_dynamics(
                            dynamics,
                            &self.rolled,
                            &action(&self.plan, whole),
                            &self.action_norm,
                            &mut self.scratch,
                        )?;
                        for (r, s) in self.rolled.iter_mut().zip(&self.scratch) {
                            *r += frac * (s - *r);
                        }
                    }
                    surprise = Some(rms_distance(&self.latent, &self.rolled));
                }
                // Latency compensation over the committed actions.
                self.rolled.copy_from_slice(&self.latent);
                for target in &obs.committed {
                    let a = to_action_space(kind, target, &obs.joints.position);
                    Self::step_dynamics(dynamics, &self.rolled, &a, &self.action_norm, &mut self.scratch)?;
                    std::mem::swap(&mut self.rolled, &mut self.scratch);
                    rolled_steps += 1;
                }
            } else {
                self.rolled.copy_from_slice(&self.latent);
            }
            let io = head.io_mut();
            match io.inputs.as_mut_slice() {
                [TensorBuf::F32(z), rest @ ..] => {
                    z.copy_from_slice(&self.rolled);
                    if let Some(TensorBuf::F32(e)) = rest.first_mut() {
                        e.copy_from_slice(&self.embedding);
                    }
                }
                _ => return Err(PolicyError::Backend("action head input is not f32".into())),
            }
            head.run().map_err(|e| PolicyError::Backend(e.to_string()))?;
            head.output(0)
        } else {
            self.obs_graph.output(0)
        };

        let steps = out.set_steps(self.spec.chunk_len);
        if out.n_joints() != n || steps != self.spec.chunk_len {
            return Err(PolicyError::BadObservation(format!(
                "action buffer holds {steps}x{}, policy produces {}x{n}",
                out.n_joints(),
                self.spec.chunk_len
            )));
        }
        // The chunk keeps the observation's stamp (the loop matches results
        // to requests by it, and the executor measures latency from it), so
        // action i stays meant for `obs.stamp + i·step_ns`. After rolling the
        // latent k steps the head's action j is meant for step k + j: steps
        // 1..k are the committed actions themselves (blending them with the
        // plan they came from changes nothing), step 0 (always overtaken by
        // the time the chunk arrives) repeats step 1 so it adds no false step
        // to the executor's in-chunk step size, and the head's last k
        // actions fall beyond the chunk.
        let k = rolled_steps as usize;
        for i in 0..steps {
            if k > 0 && i <= k {
                let c = &obs.committed[i.saturating_sub(1).min(k - 1)];
                out.step_mut(i).copy_from_slice(&to_action_space(kind, c, &obs.joints.position));
                if i < k {
                    continue;
                }
            }
            let j = i - k;
            self.action_norm.denormalize(&chunk_norm[j * n..(j + 1) * n], out.step_mut(i));
        }
        out.request_id = obs.request_id;
        out.obs_stamp = obs.stamp;
        out.step_ns = self.spec.step_ns;
        out.kind = ActionKind::from(kind);
        out.surprise = surprise;
        self.last_surprise = surprise;

        // A surprising observation does not become the reference the next
        // one is predicted from: a blacked-out camera then stays surprising
        // for as long as it lasts (compared with the prediction from the
        // last trusted observation, held at the plan's last action beyond
        // its horizon) instead of only at its onset.
        let trusted = match (surprise, self.spec.surprise_threshold) {
            (Some(s), Some(th)) => s <= th,
            _ => true,
        };
        if self.dynamics.is_some() && trusted {
            self.prev_latent.copy_from_slice(&self.latent);
            self.prev_stamp = Some(obs.stamp);
            self.prev_position = obs.joints.position;
            // The actions for obs.stamp + 1, 2, ... steps (the dynamics input
            // for step i+1 is the target meant for that step).
            self.plan.clear();
            let room = self.plan.capacity();
            for i in 1..steps.min(room + 1) {
                self.plan.push(JointVec::from_slice(out.step(i)).unwrap_or_default());
            }
        }
        out.compute_ns = t0.elapsed().as_nanos() as u64;
        Ok(())
    }
}
