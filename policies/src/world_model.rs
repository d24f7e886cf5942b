//! Format 1: the world-model pipeline, per observation (wiring documented
//! in the README), in two halves that may run on two machines.
//!
//! The encoder half (`WorldModelPolicy`, which `BundlePolicy` runs), into a
//! [`Latent`]:
//! 1. instruction: re-tokenized and re-encoded only when its `seq` changes;
//! 2. observation graph (`encoder` or `policy`): images, normalized joint
//!    positions, \[instruction embedding\].
//!
//! [`WorldModelTail`], the dynamics and the head:
//! 3. with `dynamics`: surprise = RMS distance between this observation's
//!    latent and the prediction rolled from the previous observation over
//!    the actions planned since (whole steps, then a linear blend for the
//!    fraction of a step); then the latent is rolled over the first `roll`
//!    committed actions (latency compensation): the head's chunk then
//!    starts `roll` steps after the observation, and the chunk handed out
//!    keeps the observation's stamp with the committed actions in front
//!    (see [`WorldModelTail::finish`]);
//! 4. `action_head` (latent, \[embedding\]) → normalized chunk →
//!    de-normalized into the [`ActionChunk`].
//!
//! On one machine the tail rolls over every committed action the loop
//! sent (the expected latency's). Split ([`crate::split::SplitPolicy`]):
//! the encoder runs on a policy server ([`ganglion_core::Policy::infer_latent`]) and the
//! tail on the robot when the reply arrives, over as many committed
//! actions as the round trip really took.

use std::time::Instant;

use ganglion_core::MAX_COMMITTED_STEPS;
use ganglion_core::{ActionChunk, ActionKind, JointVec, Latent, Observation, PolicyError, PolicySpec, Stamp};

use crate::backend::{BackendChoice, Graph, TensorBuf};
use crate::bundle::VerifiedBundle;
use crate::error::BundleError;
use crate::manifest::{ActionKindConfig, GraphRole, GraphSpec, Manifest};
use crate::policy::check_observation;
use crate::preprocess::{ImageOut, ImagePreprocessor, JointRange, Normalizer};
use crate::tokenizer::{TokenizeError, Tokenizer};

/// Loads the graph `spec` of `bundle` in `role` (verified bytes only).
fn load_graph(
    bundle: &VerifiedBundle,
    choice: &BackendChoice,
    role: GraphRole,
    spec: &GraphSpec,
) -> Result<Graph, BundleError> {
    let mut external = Vec::new();
    let model = bundle.graph_model(&spec.file, &mut external)?;
    Graph::load(role, spec, model, &bundle.display_path(&spec.file), choice)
}

/// Format 1 on one machine: the encoder half, and the tail when the bundle
/// has an action head (else the observation graph's output is the chunk).
pub(crate) struct WorldModelPolicy {
    pub(crate) manifest: Manifest,
    state_norm: Normalizer,
    action_norm: Normalizer,
    pub(crate) spec: PolicySpec,
    cameras: Vec<ImagePreprocessor>,
    pub(crate) obs_graph: Graph,
    text: Option<(Graph, Tokenizer)>,
    instruction_seq: Option<u64>,
    pub(crate) instruction_errors: u64,
    pub(crate) last_instruction_error: Option<TokenizeError>,
    /// The encoder's output and the instruction embedding.
    pub(crate) latent: Latent,
    tail: Option<WorldModelTail>,
}

impl WorldModelPolicy {
    pub(crate) fn from_bundle(
        bundle: &VerifiedBundle,
        choice: &BackendChoice,
        ranges: &[JointRange],
    ) -> Result<Self, BundleError> {
        let m = bundle.manifest.clone();
        let (obs_role, obs_spec) = m
            .graphs
            .observation_graph()
            .ok_or_else(|| BundleError::Backend("manifest has no observation graph".into()))?;
        let obs_graph = load_graph(bundle, choice, obs_role, obs_spec)?;
        let text = match (&m.graphs.text_encoder, &m.vocab) {
            (Some(g), Some(v)) => {
                let vocab = std::str::from_utf8(bundle.file(v)?).map_err(|_| BundleError::Model {
                    file: bundle.display_path(v),
                    reason: "vocabulary is not UTF-8".into(),
                })?;
                let tok = Tokenizer::from_vocab(vocab)
                    .map_err(|reason| BundleError::Model { file: bundle.display_path(v), reason })?;
                Some((load_graph(bundle, choice, GraphRole::TextEncoder, g)?, tok))
            }
            _ => None,
        };
        let tail = match m.graphs.action_head {
            Some(_) => Some(WorldModelTail::from_bundle(bundle, choice, ranges)?),
            None => None,
        };
        let cameras = m.cameras.iter().zip(&obs_spec.inputs).map(|(c, t)| ImagePreprocessor::new(c, t)).collect();
        let dims = m.dims();
        Ok(WorldModelPolicy {
            spec: m.policy_spec(),
            cameras,
            obs_graph,
            text,
            instruction_seq: None,
            instruction_errors: 0,
            last_instruction_error: None,
            latent: Latent { state: vec![0.0; dims.latent], embedding: vec![0.0; dims.embedding] },
            tail,
            state_norm: m.state_normalizer(ranges)?,
            action_norm: m.action_normalizer(ranges)?,
            manifest: m,
        })
    }

    pub(crate) fn reset_history(&mut self) {
        if let Some(t) = self.tail.as_mut() {
            t.reset_history();
        }
    }

    /// Normalizers for another arm's calibrated joint ranges.
    pub(crate) fn set_joint_ranges(&mut self, ranges: &[JointRange]) -> Result<(), BundleError> {
        self.state_norm = self.manifest.state_normalizer(ranges)?;
        self.action_norm = self.manifest.action_normalizer(ranges)?;
        if let Some(t) = self.tail.as_mut() {
            t.action_norm = self.action_norm.clone();
        }
        Ok(())
    }

    pub(crate) fn last_surprise(&self) -> Option<f32> {
        self.tail.as_ref().and_then(|t| t.last_surprise)
    }

    fn update_instruction(&mut self, obs: &Observation) -> Result<(), PolicyError> {
        if self.text.is_none() || self.instruction_seq == Some(obs.instruction.seq) {
            return Ok(());
        }
        self.instruction_seq = Some(obs.instruction.seq);
        let Some((graph, tok)) = self.text.as_mut() else { return Ok(()) };
        let ids = graph.input_i64(0).ok_or_else(|| PolicyError::Backend("text encoder input is not i64".into()))?;
        if let Err(e) = tok.encode(&obs.instruction.text, ids) {
            tracing::warn!(error = %e, seq = obs.instruction.seq, "instruction rejected; keeping the previous one");
            self.instruction_errors += 1;
            self.last_instruction_error = Some(e);
            return Ok(());
        }
        graph.run().map_err(|e| PolicyError::Backend(e.to_string()))?;
        self.latent.embedding.copy_from_slice(graph.output(0));
        self.last_instruction_error = None;
        Ok(())
    }

    /// Steps 1-2: the instruction and the observation graph.
    fn encode(&mut self, obs: &Observation) -> Result<(), PolicyError> {
        check_observation(&self.spec, obs)?;
        self.update_instruction(obs)?;
        let cams = self.cameras.len();
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
            v.copy_from_slice(&self.latent.embedding);
        }
        self.obs_graph.run().map_err(|e| PolicyError::Backend(e.to_string()))?;
        if self.tail.is_some() {
            self.latent.state.copy_from_slice(self.obs_graph.output(0));
        }
        Ok(())
    }

    pub(crate) fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        let t0 = Instant::now();
        self.encode(obs)?;
        match self.tail.as_mut() {
            Some(tail) => tail.finish(obs, &self.latent, obs.committed.len(), out)?,
            None => {
                let kind = self.manifest.action.kind;
                write_chunk(&self.spec, kind, &self.action_norm, self.obs_graph.output(0), obs, 0, out)?;
                out.surprise = None;
            }
        }
        out.compute_ns = t0.elapsed().as_nanos() as u64;
        Ok(())
    }

    /// The server half of a split: steps 1-2 into `out`.
    pub(crate) fn infer_latent(&mut self, obs: &Observation, out: &mut Latent) -> Result<(), PolicyError> {
        if self.tail.is_none() {
            return Err(PolicyError::Backend(format!(
                "{}: one `policy` graph, no action head to run on the robot: nothing to split",
                self.spec.name
            )));
        }
        self.encode(obs)?;
        for (dst, src) in [(&mut out.state, &self.latent.state), (&mut out.embedding, &self.latent.embedding)] {
            dst.clear();
            dst.extend_from_slice(src);
        }
        Ok(())
    }
}

/// The robot's half of a world model (steps 3-4 of the module docs): the
/// dynamics and the action head, with the surprise monitor's history. Fed
/// a [`Latent`] per observation, by the encoder on the same machine or by a
/// policy server.
pub struct WorldModelTail {
    spec: PolicySpec,
    kind: ActionKindConfig,
    action_norm: Normalizer,
    dynamics: Option<Graph>,
    head: Graph,
    /// A new instruction restarts the history (bundles with a text encoder
    /// only: the others do not read it).
    reads_instruction: bool,
    instruction_seq: Option<u64>,
    /// Values of the instruction embedding (0 without a text encoder).
    embedding_len: usize,
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

impl std::fmt::Debug for WorldModelTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldModelTail").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl WorldModelTail {
    /// The `dynamics` (optional) and `action_head` graphs of a format-1
    /// bundle; its encoder is not loaded. `ranges`: as
    /// [`crate::LoadOptions::joint_ranges`].
    pub fn from_bundle(
        bundle: &VerifiedBundle,
        choice: &BackendChoice,
        ranges: &[JointRange],
    ) -> Result<Self, BundleError> {
        let m = &bundle.manifest;
        let head_spec = m.graphs.action_head.as_ref().ok_or_else(|| {
            BundleError::Backend(format!("{}: no action_head graph: no world-model tail to run", m.name))
        })?;
        let head = load_graph(bundle, choice, GraphRole::ActionHead, head_spec)?;
        let dynamics =
            m.graphs.dynamics.as_ref().map(|g| load_graph(bundle, choice, GraphRole::Dynamics, g)).transpose()?;
        let dims = m.dims();
        Ok(WorldModelTail {
            spec: m.policy_spec(),
            kind: m.action.kind,
            action_norm: m.action_normalizer(ranges)?,
            dynamics,
            head,
            reads_instruction: m.graphs.text_encoder.is_some() && m.vocab.is_some(),
            instruction_seq: None,
            embedding_len: dims.embedding,
            rolled: vec![0.0; dims.latent],
            scratch: vec![0.0; dims.latent],
            prev_latent: vec![0.0; dims.latent],
            prev_stamp: None,
            plan: Vec::with_capacity(MAX_COMMITTED_STEPS + dims.chunk_len),
            prev_position: JointVec::zeros(dims.joints),
            was_held: false,
            last_surprise: None,
        })
    }

    /// The policy's spec (the bundle's).
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// A [`Latent`] of the sizes the bundle's encoder writes and this tail
    /// reads.
    pub fn latent_buffer(&self) -> Latent {
        Latent { state: vec![0.0; self.rolled.len()], embedding: vec![0.0; self.embedding_len] }
    }

    /// Whether the bundle has a dynamics graph (surprise and latency
    /// compensation); without it the tail is the head alone.
    pub fn has_dynamics(&self) -> bool {
        self.dynamics.is_some()
    }

    /// Forgets the reference observation the surprise monitor predicts
    /// from (see `BundlePolicy::reset_history`).
    pub fn reset_history(&mut self) {
        self.prev_stamp = None;
        self.plan.clear();
        self.last_surprise = None;
    }

    /// Surprise of the most recent chunk.
    pub fn last_surprise(&self) -> Option<f32> {
        self.last_surprise
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

    /// Steps 3-4 for `obs`, whose encoding is `latent`: surprise against
    /// the previous trusted observation, the latent rolled over the first
    /// `roll` (at most all) of `obs.committed`, the head, the chunk into
    /// `out` (stamped with the observation, the rolled-over committed
    /// actions in front).
    pub fn finish(
        &mut self,
        obs: &Observation,
        latent: &Latent,
        roll: usize,
        out: &mut ActionChunk,
    ) -> Result<(), PolicyError> {
        if latent.state.len() != self.rolled.len() || latent.embedding.len() != self.embedding_len {
            return Err(PolicyError::Backend(format!(
                "latent of {}+{} values (state+embedding), the dynamics and head read {}+{}",
                latent.state.len(),
                latent.embedding.len(),
                self.rolled.len(),
                self.embedding_len
            )));
        }
        if self.reads_instruction && self.instruction_seq != Some(obs.instruction.seq) {
            // A new instruction starts a new task (in the demo: a new
            // scene): what the world model predicted for the old one does
            // not apply, and a held surprising reference is released here.
            self.instruction_seq = Some(obs.instruction.seq);
            self.reset_history();
        }
        // Taking over from the fallback: the reference was predicted over a
        // hold, the policy's new plan starts now.
        if self.was_held && !obs.held {
            self.reset_history();
        }
        self.was_held = obs.held;
        let kind = self.kind;
        let mut rolled_steps = 0;
        let mut surprise = None;
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
                    let a = action(&self.plan, whole);
                    Self::step_dynamics(dynamics, &self.rolled, &a, &self.action_norm, &mut self.scratch)?;
                    for (r, s) in self.rolled.iter_mut().zip(&self.scratch) {
                        *r += frac * (s - *r);
                    }
                }
                surprise = Some(rms_distance(&latent.state, &self.rolled));
            }
            // Latency compensation over the committed actions.
            self.rolled.copy_from_slice(&latent.state);
            for target in obs.committed.iter().take(roll) {
                let a = to_action_space(kind, target, &obs.joints.position);
                Self::step_dynamics(dynamics, &self.rolled, &a, &self.action_norm, &mut self.scratch)?;
                std::mem::swap(&mut self.rolled, &mut self.scratch);
                rolled_steps += 1;
            }
        } else {
            self.rolled.copy_from_slice(&latent.state);
        }
        let io = self.head.io_mut();
        match io.inputs.as_mut_slice() {
            [TensorBuf::F32(z), rest @ ..] => {
                z.copy_from_slice(&self.rolled);
                if let Some(TensorBuf::F32(e)) = rest.first_mut() {
                    e.copy_from_slice(&latent.embedding);
                }
            }
            _ => return Err(PolicyError::Backend("action head input is not f32".into())),
        }
        self.head.run().map_err(|e| PolicyError::Backend(e.to_string()))?;
        write_chunk(&self.spec, kind, &self.action_norm, self.head.output(0), obs, rolled_steps, out)?;
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
            self.prev_latent.copy_from_slice(&latent.state);
            self.prev_stamp = Some(obs.stamp);
            self.prev_position = obs.joints.position;
            // The actions for obs.stamp + 1, 2, ... steps (the dynamics input
            // for step i+1 is the target meant for that step).
            self.plan.clear();
            let room = self.plan.capacity();
            for i in 1..out.steps().min(room + 1) {
                self.plan.push(JointVec::from_slice(out.step(i)).unwrap_or_default());
            }
        }
        Ok(())
    }
}

/// Writes the normalized chunk `chunk_norm` into `out`, the latent having
/// been rolled `k` steps ahead. The chunk keeps the observation's stamp
/// (the loop matches results to requests by it, and the executor measures
/// latency from it), so action i stays meant for `obs.stamp + i·step_ns`.
/// After rolling the latent k steps the head's action j is meant for step
/// k + j: steps 1..k are the committed actions themselves (blending them
/// with the plan they came from changes nothing), step 0 (always overtaken
/// by the time the chunk arrives) repeats step 1 so it adds no false step
/// to the executor's in-chunk step size, and the head's last k actions fall
/// beyond the chunk.
fn write_chunk(
    spec: &PolicySpec,
    kind: ActionKindConfig,
    action_norm: &Normalizer,
    chunk_norm: &[f32],
    obs: &Observation,
    k: usize,
    out: &mut ActionChunk,
) -> Result<(), PolicyError> {
    let n = spec.n_joints;
    let steps = out.set_steps(spec.chunk_len);
    if out.n_joints() != n || steps != spec.chunk_len {
        return Err(PolicyError::BadObservation(format!(
            "action buffer holds {steps}x{}, policy produces {}x{n}",
            out.n_joints(),
            spec.chunk_len
        )));
    }
    for i in 0..steps {
        if k > 0 && i <= k {
            let c = &obs.committed[i.saturating_sub(1).min(k - 1)];
            out.step_mut(i).copy_from_slice(&to_action_space(kind, c, &obs.joints.position));
            if i < k {
                continue;
            }
        }
        let j = i - k;
        action_norm.denormalize(&chunk_norm[j * n..(j + 1) * n], out.step_mut(i));
    }
    out.request_id = obs.request_id;
    out.obs_stamp = obs.stamp;
    out.step_ns = spec.step_ns;
    out.kind = ActionKind::from(kind);
    Ok(())
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
