//! What the inference worker consumes and produces, and the [`Policy`] trait.
//!
//! Observations and action chunks are pooled buffers: allocated once at
//! start-up with their largest size, then refilled in place, so handing them
//! between the control thread and the worker never allocates.

use crate::frame::{Frame, PixelFormat};
use crate::io::Instruction;
use crate::joints::{JointState, JointVec};
use crate::time::Stamp;

/// Most policy-rate actions an [`Observation`] carries for latency compensation.
pub const MAX_COMMITTED_STEPS: usize = 32;

/// How a policy's actions are meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Absolute joint position targets (rad).
    AbsolutePosition,
    /// Joint position offsets from the observed position (rad).
    DeltaPosition,
}

/// A camera a policy consumes, as it arrives from the robot (preprocessing
/// to the network's input size happens inside the policy).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// Camera name as in the robot profile (`<prefix>/camera/<name>`).
    pub name: String,
    /// Expected width in pixels.
    pub width: u32,
    /// Expected height in pixels.
    pub height: u32,
    /// Expected pixel layout.
    pub format: PixelFormat,
}

/// What the loop needs to know about a policy before running it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Human-readable name and version, e.g. `reach-v1 1.0.0`.
    pub name: String,
    /// Joints the policy reads and commands, in profile order.
    pub n_joints: usize,
    /// Actions per chunk (H).
    pub chunk_len: usize,
    /// Time between consecutive actions of a chunk (the policy period), ns.
    pub step_ns: u64,
    /// Absolute targets or deltas.
    pub action_kind: ActionKind,
    /// Cameras, in the order of [`Observation::frames`].
    pub cameras: Vec<CameraSpec>,
    /// Latency the bundle declares (the executor starts from it and then
    /// learns the real figure online), ns.
    pub expected_latency_ns: u64,
    /// Threshold on the world model's normalized surprise; `None` when the
    /// policy has no dynamics model.
    pub surprise_threshold: Option<f32>,
}

/// One observation handed to the inference worker.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Identifies the request; echoed in the [`ActionChunk`].
    pub request_id: u64,
    /// The time the observation describes (capture stamp of the joint
    /// state). The chunk computed from it is aligned to this time.
    pub stamp: Stamp,
    /// Joint state at `stamp`.
    pub joints: JointState,
    /// One frame per camera of [`PolicySpec::cameras`], same order.
    pub frames: Vec<Frame>,
    /// The language instruction in force.
    pub instruction: Instruction,
    /// Absolute joint targets the executor has committed to for the policy
    /// steps after `stamp` (step `i` at `stamp + (i+1)·step_ns`); a world
    /// model rolls its latent over them to compensate for latency.
    pub committed: heapless::Vec<JointVec, MAX_COMMITTED_STEPS>,
    /// The robot is held at rest by the fallback, not following the
    /// policy's plan: a world model must predict this observation over a
    /// hold at the measured position, not over its own plan (which nobody
    /// executes), and restart its history whenever this changes. This is
    /// what lets the surprise monitor recover (see `BundlePolicy`).
    pub held: bool,
}

impl Observation {
    /// An observation buffer for `spec`, frames preallocated at the cameras'
    /// sizes.
    pub fn for_spec(spec: &PolicySpec) -> Self {
        Observation {
            request_id: 0,
            stamp: Stamp::ZERO,
            joints: JointState::zeros(spec.n_joints),
            frames: spec.cameras.iter().map(|c| Frame::with_capacity(c.width, c.height)).collect(),
            instruction: Instruction::default(),
            committed: heapless::Vec::new(),
            held: false,
        }
    }
}

/// A chunk of actions computed from one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionChunk {
    /// The request this answers.
    pub request_id: u64,
    /// Stamp of the observation it was computed from; action `i` is meant
    /// for `obs_stamp + i·step_ns`.
    pub obs_stamp: Stamp,
    /// Time between actions, ns.
    pub step_ns: u64,
    /// Absolute targets or deltas.
    pub kind: ActionKind,
    /// Normalized world-model surprise for this observation, if the policy has
    /// a dynamics model.
    pub surprise: Option<f32>,
    /// Time the worker spent computing it, ns (measured by the worker with
    /// the loop clock).
    pub compute_ns: u64,
    n_joints: usize,
    steps: usize,
    max_steps: usize,
    data: Vec<f64>,
}

impl ActionChunk {
    /// A chunk buffer for up to `max_steps` actions of `n_joints` joints.
    pub fn with_capacity(max_steps: usize, n_joints: usize) -> Self {
        ActionChunk {
            request_id: 0,
            obs_stamp: Stamp::ZERO,
            step_ns: 0,
            kind: ActionKind::AbsolutePosition,
            surprise: None,
            compute_ns: 0,
            n_joints,
            steps: 0,
            max_steps,
            data: vec![0.0; max_steps * n_joints],
        }
    }

    /// A buffer sized for `spec`.
    pub fn for_spec(spec: &PolicySpec) -> Self {
        let mut c = Self::with_capacity(spec.chunk_len, spec.n_joints);
        c.step_ns = spec.step_ns;
        c.kind = spec.action_kind;
        c
    }

    /// Joints per action.
    pub fn n_joints(&self) -> usize {
        self.n_joints
    }

    /// Actions in the chunk.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Most actions the buffer holds.
    pub fn max_steps(&self) -> usize {
        self.max_steps
    }

    /// Sets the number of actions (clamped to capacity); returns the new count.
    pub fn set_steps(&mut self, steps: usize) -> usize {
        self.steps = steps.min(self.max_steps);
        self.steps
    }

    /// Action `i` (`n_joints` values). Panics when `i >= steps()`; callers
    /// iterate within `steps()`.
    pub fn step(&self, i: usize) -> &[f64] {
        assert!(i < self.steps, "action index {i} beyond chunk of {}", self.steps);
        &self.data[i * self.n_joints..(i + 1) * self.n_joints]
    }

    /// Mutable action `i`.
    pub fn step_mut(&mut self, i: usize) -> &mut [f64] {
        assert!(i < self.steps, "action index {i} beyond chunk of {}", self.steps);
        &mut self.data[i * self.n_joints..(i + 1) * self.n_joints]
    }

    /// All actions, row-major (`steps × n_joints`).
    pub fn as_slice(&self) -> &[f64] {
        &self.data[..self.steps * self.n_joints]
    }

    /// All actions, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data[..self.steps * self.n_joints]
    }

    /// Whether every action value is finite.
    pub fn is_finite(&self) -> bool {
        self.as_slice().iter().all(|x| x.is_finite())
    }

    /// Copies `other` in without reallocating; returns false (and leaves
    /// `self` untouched) when shapes differ.
    pub fn copy_from(&mut self, other: &ActionChunk) -> bool {
        if other.n_joints != self.n_joints || other.steps > self.max_steps {
            return false;
        }
        self.request_id = other.request_id;
        self.obs_stamp = other.obs_stamp;
        self.step_ns = other.step_ns;
        self.kind = other.kind;
        self.surprise = other.surprise;
        self.compute_ns = other.compute_ns;
        self.steps = other.steps;
        self.as_mut_slice().copy_from_slice(other.as_slice());
        true
    }
}

/// Why inference failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The observation does not fit the policy (shape, format, joint count).
    #[error("observation rejected: {0}")]
    BadObservation(String),
    /// The backend failed while running a graph.
    #[error("backend error: {0}")]
    Backend(String),
    /// The instruction could not be encoded (e.g. unknown words); the
    /// previous instruction stays in force and inference still ran.
    #[error("instruction rejected: {0}")]
    InstructionRejected(String),
    /// The worker is gone (panicked or shut down).
    #[error("inference worker stopped")]
    WorkerStopped,
    /// The policy runs elsewhere (a policy server) and nothing answers
    /// there: no server, or no route to it.
    #[error("policy unreachable: {0}")]
    Unreachable(String),
}

/// A policy the inference worker runs: observation in, action chunk out.
///
/// Invariants:
/// - `infer` runs on the inference worker, never on the control thread, so
///   it may take as long as the network needs; the loop measures lateness.
/// - On `Ok`, `out` holds between 1 and `spec().chunk_len` finite-or-not
///   actions of `spec().n_joints` joints (the loop validates values; the
///   policy does not hide NaNs), with `obs_stamp`, `request_id`, `step_ns`
///   and `kind` set from `obs` and the spec.
/// - `infer` does not panic on any observation; bad input is an `Err`.
pub trait Policy: Send {
    /// Shapes, rates and cameras of this policy.
    fn spec(&self) -> &PolicySpec;

    /// Computes the chunk for `obs` into the preallocated `out`.
    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError>;

    /// Hands `record` the wall time of each stage of the last successful
    /// [`infer`](Self::infer), ns, by stage name (a bundle: `tokenize`,
    /// `preprocess`, `graph <name>`, `step` once per head step,
    /// `postprocess`; a remote policy: `server queue`, `server compute`).
    /// The inference worker calls it after every chunk and keeps a
    /// histogram per name for the run report; `ganglion policy bench`
    /// reads the same. Default: no stages.
    fn stage_times(&self, record: &mut dyn FnMut(&str, u64)) {
        let _ = record;
    }
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn spec(&self) -> &PolicySpec {
        (**self).spec()
    }
    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        (**self).infer(obs, out)
    }
    fn stage_times(&self, record: &mut dyn FnMut(&str, u64)) {
        (**self).stage_times(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_rows_are_joint_vectors() {
        let mut c = ActionChunk::with_capacity(4, 3);
        assert_eq!(c.set_steps(9), 4);
        c.step_mut(2).copy_from_slice(&[1.0, 2.0, 3.0]);
        assert_eq!(c.step(2), &[1.0, 2.0, 3.0]);
        assert_eq!(c.as_slice().len(), 12);
        c.step_mut(0)[1] = f64::NAN;
        assert!(!c.is_finite());
        let mut d = ActionChunk::with_capacity(4, 3);
        assert!(d.copy_from(&c));
        assert_eq!(d.step(2), c.step(2));
        assert!(!ActionChunk::with_capacity(4, 2).copy_from(&c));
    }
}
