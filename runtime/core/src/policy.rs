//! What the inference worker consumes and produces, and the [`Policy`] trait.
//!
//! Observations and action chunks are pooled buffers: allocated once at
//! start-up with their largest size, then refilled in place, so handing them
//! between the control thread and the worker never allocates.

use crate::frame::{Frame, PixelFormat};
use crate::io::Instruction;
use crate::joints::{JointRange, JointState, JointVec};
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
    /// Observations one inference reads, the newest last (LeRobot's
    /// `n_obs_steps`), one policy step (`step_ns`) apart: 1 is the
    /// observation alone; `k` asks the loop for the `k - 1` before it in
    /// [`Observation::past`].
    pub history: usize,
    /// The policy decides only when its result is ready how many of
    /// [`Observation::committed`] it rolls its latent over: as many as the
    /// request actually took (a split world model, whose encoder runs on a
    /// server and whose dynamics and head run on the robot when the reply
    /// arrives). The loop then hands it the plan for
    /// [`MAX_COMMITTED_STEPS`] steps instead of the expected latency's.
    pub rolls_at_reply: bool,
}

/// Whole policy steps nearest to `ns` (at least 0): how many committed
/// actions a world model rolls its latent over for a latency of `ns`.
/// Rolling a full step ahead for a few milliseconds predicts for the wrong
/// time (measured on reach-v1: final error 0.96 cm with ceil vs 0.85 cm
/// without rolling at 5 ms); the executor's time alignment covers the rest.
pub fn steps_nearest(ns: u64, step_ns: u64) -> usize {
    if step_ns == 0 {
        return 0;
    }
    usize::try_from(ns.saturating_add(step_ns / 2) / step_ns).unwrap_or(usize::MAX)
}

/// What a world model's encoder hands its dynamics and action head: the
/// message between the two halves of a split policy (the encoder on a
/// policy server, the rest on the robot, see [`Policy::infer_latent`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latent {
    /// The observation's latent state.
    pub state: Vec<f32>,
    /// The instruction's embedding (empty without a text encoder).
    pub embedding: Vec<f32>,
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
    /// The observations before this one a policy with a history
    /// ([`PolicySpec::history`] `> 1`) reads: `past[i]` is the one nearest
    /// `stamp - (i+1)·step_ns`, the newest first, as LeRobot's observation
    /// queue holds one per policy step. Preallocated by
    /// [`Observation::with_history`]; filled by the control loop, which
    /// keeps one observation per policy step ([`StepHistory`]). Empty
    /// ([`Observation::for_spec`]): the caller calls once per policy step
    /// (LeRobot's `select_action`, a parity replay) and the policy keeps the
    /// history of its own calls.
    pub past: Vec<PastObservation>,
}

/// An earlier observation in [`Observation::past`]: what a policy history
/// slot holds (no instruction or committed actions: those are the newest
/// observation's).
#[derive(Debug, Clone)]
pub struct PastObservation {
    /// When it was taken.
    pub stamp: Stamp,
    /// Joint state then.
    pub joints: JointState,
    /// One frame per camera then, same order as the newest observation's.
    pub frames: Vec<Frame>,
}

impl PastObservation {
    /// A buffer for `spec`'s joints and cameras, frames preallocated.
    pub fn for_spec(spec: &PolicySpec) -> Self {
        PastObservation {
            stamp: Stamp::ZERO,
            joints: JointState::zeros(spec.n_joints),
            frames: spec.cameras.iter().map(|c| Frame::with_capacity(c.width, c.height)).collect(),
        }
    }

    /// Copies `obs`'s stamp, joints and frames in place (no allocation);
    /// false when a frame does not fit or the camera counts differ.
    pub fn copy_from(&mut self, stamp: Stamp, joints: &JointState, frames: &[Frame]) -> bool {
        if self.frames.len() != frames.len() {
            return false;
        }
        self.stamp = stamp;
        self.joints = *joints;
        self.frames.iter_mut().zip(frames).all(|(d, s)| d.set(s.width, s.height, s.format, s.data()).is_ok())
    }
}

/// The recent observations a policy history reads, kept by the control
/// loop so that a request carries its earlier observations one policy step
/// apart ([`Observation::past`]), as LeRobot's queues hold one per
/// `select_action` call, however many control ticks and inferences lie
/// between.
///
/// Every control tick's joint state and stamp are kept for the last
/// `history - 1` policy steps (and two ticks more); camera frames only when
/// a camera delivers a new one, each tick pointing at the frames it saw, so
/// the copying is one frame per camera frame, not per tick. The frame rings
/// hold what cameras of up to [`MAX_HISTORY_FPS`] deliver over the window
/// (at most a slot per tick): a faster camera's frames that were
/// overwritten are replaced by the oldest one kept. Every buffer is
/// allocated by [`StepHistory::new`]: [`tap`](Self::tap) and
/// [`fill`](Self::fill) copy in place.
#[derive(Debug)]
pub struct StepHistory {
    step_ns: u64,
    ticks: Ring<Tick>,
    /// Per camera, its recent frames.
    frames: Vec<Ring<Frame>>,
}

/// Camera rate up to which [`StepHistory`] keeps every frame of its window.
pub const MAX_HISTORY_FPS: u64 = 100;

/// One control tick: when, the joints then, and the frame slot of each
/// camera it saw.
#[derive(Debug)]
struct Tick {
    stamp: Stamp,
    joints: JointState,
    /// Per camera: (slot, the ring's push count when it was written).
    frames: Vec<(usize, u64)>,
}

/// A ring of preallocated slots: `newest` written last, `len` valid;
/// `written[i]` is the push count slot `i` was last written at.
#[derive(Debug)]
struct Ring<T> {
    slots: Vec<T>,
    written: Vec<u64>,
    pushed: u64,
    newest: usize,
    len: usize,
}

impl<T> Ring<T> {
    fn new(slots: Vec<T>) -> Self {
        Ring { written: vec![0; slots.len()], slots, pushed: 0, newest: 0, len: 0 }
    }

    /// The oldest valid slot.
    fn oldest(&self) -> usize {
        (self.newest + self.slots.len() + 1 - self.len.max(1)) % self.slots.len().max(1)
    }

    /// The slot to write next (it becomes the newest by [`Ring::commit`]).
    fn next(&self) -> usize {
        if self.len == 0 {
            0
        } else {
            (self.newest + 1) % self.slots.len()
        }
    }

    fn commit(&mut self, slot: usize) {
        self.pushed += 1;
        self.written[slot] = self.pushed;
        self.newest = slot;
        self.len = (self.len + 1).min(self.slots.len());
    }

    /// Valid slots, oldest first.
    fn oldest_first(&self) -> impl Iterator<Item = &T> {
        let n = self.slots.len();
        (0..self.len).rev().map(move |k| &self.slots[(self.newest + n - k) % n])
    }
}

impl StepHistory {
    /// For `spec`, on a loop ticking every `period_ns`: nothing kept when
    /// `spec.history` is 1.
    pub fn new(spec: &PolicySpec, period_ns: u64) -> Self {
        let steps = spec.history.max(1) - 1;
        let per_step = spec.step_ns.div_ceil(period_ns.max(1)) as usize;
        let n = if steps == 0 { 0 } else { steps * per_step + 2 };
        // Frames a MAX_HISTORY_FPS camera delivers over the window.
        let m = (steps as u64 * spec.step_ns).div_ceil(1_000_000_000 / MAX_HISTORY_FPS) as usize + 2;
        let cams = spec.cameras.len();
        let ticks = (0..n)
            .map(|_| Tick { stamp: Stamp::ZERO, joints: JointState::zeros(spec.n_joints), frames: vec![(0, 0); cams] })
            .collect();
        let frames = spec
            .cameras
            .iter()
            .map(|c| Ring::new((0..n.min(m)).map(|_| Frame::with_capacity(c.width, c.height)).collect()))
            .collect();
        StepHistory { step_ns: spec.step_ns.max(1), ticks: Ring::new(ticks), frames }
    }

    /// Forgets every observation (a new episode, the robot re-homed).
    pub fn clear(&mut self) {
        self.ticks.len = 0;
        for f in &mut self.frames {
            f.len = 0;
        }
    }

    /// Keeps `obs` (a valid observation, once per control tick): its stamp
    /// and joints, and the frames of the cameras whose bit is set in
    /// `new_frames` (every camera the first time).
    pub fn tap(&mut self, obs: &Observation, new_frames: u32) {
        if self.ticks.slots.is_empty() || obs.frames.len() != self.frames.len() {
            return;
        }
        for (i, (ring, frame)) in self.frames.iter_mut().zip(&obs.frames).enumerate() {
            if ring.len > 0 && new_frames & (1 << i.min(31)) == 0 {
                continue;
            }
            let slot = ring.next();
            if ring.slots[slot].set(frame.width, frame.height, frame.format, frame.data()).is_ok() {
                ring.commit(slot);
            }
        }
        let slot = self.ticks.next();
        let tick = &mut self.ticks.slots[slot];
        tick.stamp = obs.stamp;
        tick.joints = obs.joints;
        for (dst, ring) in tick.frames.iter_mut().zip(&self.frames) {
            *dst = (ring.newest, ring.pushed);
        }
        self.ticks.commit(slot);
    }

    /// Fills `obs.past` (as [`Observation::with_history`] sized it): entry
    /// `i` gets the kept tick nearest `obs.stamp - (i+1)·step_ns` that is
    /// older than `obs` (of two as near, the older), with the frames it saw;
    /// before enough was kept, the oldest kept tick, or `obs` itself (LeRobot
    /// fills its queues with the first observation). False when a frame does
    /// not fit.
    pub fn fill(&self, obs: &mut Observation) -> bool {
        let mut past = std::mem::take(&mut obs.past);
        let mut ok = true;
        for (i, dst) in past.iter_mut().enumerate() {
            let target = obs.stamp.0.saturating_sub((i as u64 + 1) * self.step_ns);
            // Oldest first: of two as near, the first (older) wins, so the
            // slots are never closer together than a policy step.
            let best =
                self.ticks.oldest_first().filter(|t| t.stamp < obs.stamp).min_by_key(|t| t.stamp.0.abs_diff(target));
            ok &= match best {
                Some(t) if dst.frames.len() == t.frames.len() => {
                    dst.stamp = t.stamp;
                    dst.joints = t.joints;
                    dst.frames.iter_mut().zip(&t.frames).zip(&self.frames).all(|((d, &(slot, pushed)), ring)| {
                        // Overwritten since (a camera faster than the ring
                        // is deep): the oldest frame kept stands in.
                        let slot = if ring.written[slot] == pushed { slot } else { ring.oldest() };
                        let f = &ring.slots[slot];
                        d.set(f.width, f.height, f.format, f.data()).is_ok()
                    })
                }
                Some(_) => false,
                None => dst.copy_from(obs.stamp, &obs.joints, &obs.frames),
            };
        }
        obs.past = past;
        ok
    }
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
            past: Vec::new(),
        }
    }

    /// [`for_spec`](Self::for_spec) with room for the `spec.history - 1`
    /// earlier observations in [`past`](Self::past): the buffers of whoever
    /// hands a policy its history (the control loop, the inference worker's
    /// copy, a policy server's per-robot buffer).
    pub fn with_history(spec: &PolicySpec) -> Self {
        let mut obs = Self::for_spec(spec);
        obs.past = (1..spec.history.max(1)).map(|_| PastObservation::for_spec(spec)).collect();
        obs
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
    /// The policy runs elsewhere and its reply did not come back within the
    /// timeout (a message lost or late on the link): this request is over,
    /// nothing is wrong with the policy. The plan in hand still drives and
    /// the next request goes out at once; the loop falls back only when the
    /// plan runs out (`inference_late`).
    #[error("no reply: {0}")]
    NoReply(String),
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

    /// The server half of a split world model: encodes `obs` (and the
    /// instruction, when it changed) into `out`, without running the
    /// dynamics or the action head, which run on the robot when the reply
    /// arrives (rolling the latent over the actions committed during the
    /// round trip it really took). Keeps no history: the robot's half does.
    /// `out`'s buffers are reused (no allocation once they have their
    /// size). Default: the policy has no encoder to split at.
    fn infer_latent(&mut self, obs: &Observation, out: &mut Latent) -> Result<(), PolicyError> {
        let _ = (obs, out);
        Err(PolicyError::Backend(format!("{} has no world-model encoder to split at", self.spec().name)))
    }

    /// The arm's calibrated joint ranges (profile order), for a policy whose
    /// units are relative to them (LeRobot's `range_m100_100`,
    /// `range_0_100`): a policy server's robots send theirs with every
    /// request and the server hands them over when they change. Runs off
    /// the control thread (it may rebuild the policy's normalizers). An
    /// error says why the ranges do not fit. Default: the policy does not
    /// use them.
    fn set_joint_ranges(&mut self, ranges: &[JointRange]) -> Result<(), PolicyError> {
        let _ = ranges;
        Ok(())
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
    fn infer_latent(&mut self, obs: &Observation, out: &mut Latent) -> Result<(), PolicyError> {
        (**self).infer_latent(obs, out)
    }
    fn set_joint_ranges(&mut self, ranges: &[JointRange]) -> Result<(), PolicyError> {
        (**self).set_joint_ranges(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// One joint, one 1×1 camera, a policy step of 100 ms.
    fn spec(history: usize) -> PolicySpec {
        PolicySpec {
            name: "history".into(),
            n_joints: 1,
            chunk_len: 8,
            step_ns: 100 * MS,
            action_kind: ActionKind::AbsolutePosition,
            cameras: vec![CameraSpec { name: "front".into(), width: 1, height: 1, format: PixelFormat::Mono8 }],
            expected_latency_ns: 0,
            surprise_threshold: None,
            history,
            rolls_at_reply: false,
        }
    }

    /// An observation at `t` ms whose joint says `t` and whose one-pixel
    /// frame says `frame` (as u8).
    fn at(obs: &mut Observation, t: u64, frame: u64) {
        obs.stamp = Stamp(t * MS);
        obs.joints.position[0] = t as f64;
        obs.frames[0].set(1, 1, PixelFormat::Mono8, &[frame as u8]).expect("fits");
    }

    /// (stamp in ms, joint, pixel) of each past observation.
    fn past(obs: &Observation) -> Vec<(u64, f64, u8)> {
        obs.past.iter().map(|p| (p.stamp.0 / MS, p.joints.position[0], p.frames[0].data()[0])).collect()
    }

    /// Ticks every 10 ms (a tenth of a policy step), a camera frame every
    /// 30 ms: a request gets the ticks a step and two steps before it,
    /// whatever the tick it falls on, each with the frame it saw then.
    #[test]
    fn step_history_hands_over_the_observations_a_step_apart() {
        let spec = spec(3);
        let mut h = StepHistory::new(&spec, 10 * MS);
        let mut obs = Observation::with_history(&spec);
        assert_eq!(obs.past.len(), 2);
        for t in (0..=450).step_by(10) {
            at(&mut obs, t, t / 30 * 3);
            h.tap(&obs, u32::from(t % 30 == 0));
        }
        assert!(h.fill(&mut obs));
        assert_eq!(past(&obs), [(350, 350.0, 33), (250, 250.0, 24)], "request at 450 ms");
        obs.stamp = Stamp(455 * MS);
        assert!(h.fill(&mut obs));
        assert_eq!(past(&obs), [(350, 350.0, 33), (250, 250.0, 24)], "355 and 255: of two as near, the older");
    }

    /// A camera faster than the frame rings are deep (a frame every 1 ms
    /// tick, against MAX_HISTORY_FPS: 12 slots for 100 ms): the joints are
    /// still the tick's, the overwritten frame is replaced by the oldest kept.
    #[test]
    fn a_camera_faster_than_the_rings_gets_the_oldest_frame_kept() {
        let spec = spec(2);
        let mut h = StepHistory::new(&spec, MS);
        let mut obs = Observation::with_history(&spec);
        for t in 0..=300 {
            at(&mut obs, t, t);
            h.tap(&obs, 1);
        }
        assert!(h.fill(&mut obs));
        assert_eq!(past(&obs), [(200, 200.0, (289 % 256) as u8)], "frames 289..=300 kept");
    }

    /// At the start nothing older is kept: LeRobot fills its queue with the
    /// first observation, and so does the history, with the newest it has.
    #[test]
    fn before_enough_steps_the_oldest_kept_fills_in() {
        let spec = spec(3);
        let mut h = StepHistory::new(&spec, 10 * MS);
        let mut obs = Observation::with_history(&spec);
        at(&mut obs, 1000, 100);
        h.tap(&obs, 1);
        assert!(h.fill(&mut obs));
        assert_eq!(past(&obs), [(1000, 1000.0, 100), (1000, 1000.0, 100)], "only itself");
        at(&mut obs, 1100, 110);
        h.tap(&obs, 1);
        assert!(h.fill(&mut obs));
        assert_eq!(past(&obs), [(1000, 1000.0, 100), (1000, 1000.0, 100)]);
        h.clear();
        at(&mut obs, 1200, 120);
        assert!(h.fill(&mut obs));
        assert_eq!(past(&obs), [(1200, 1200.0, 120), (1200, 1200.0, 120)], "cleared: itself again");
    }

    /// A policy without a history gets no past and costs nothing.
    #[test]
    fn without_a_history_nothing_is_kept() {
        let spec = spec(1);
        let mut h = StepHistory::new(&spec, 10 * MS);
        let mut obs = Observation::with_history(&spec);
        assert!(obs.past.is_empty());
        at(&mut obs, 100, 10);
        h.tap(&obs, 1);
        assert!(h.fill(&mut obs));
        assert!(obs.past.is_empty());
    }

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
