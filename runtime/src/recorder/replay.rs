//! Bit-exact replay: re-run a [`ControlLoop`] on a recording's inputs and
//! inference results with a simulated clock, and compare every tick's
//! decisions and command with the recorded ones.
//!
//! Before tick `k` the harness writes every input the recorded tick `k`
//! sampled into the loop's slots, sets the simulated clock to the recorded
//! start of tick `k`, and lets the loop tick at the recorded scheduled time.
//! A [`ReplayExecutor`] stands in for the inference worker: it accepts
//! submissions and answers each with the recorded result at the tick that
//! collected it in the recording.
//!
//! Limits: the loop's configuration and the policy spec must be the
//! recorded run's (the caller rebuilds the loop); the recording must start
//! at tick 0 (the loop's internal state at a later tick is not recorded);
//! stage timings and overrun flags measure real time and are not compared.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ganglion_core::{
    input_slots, ActionChunk, Command, CommandSink, InputReaders, Observation, Policy, PolicySpec, SimClock, SinkError,
    Stamp,
};

use super::loop_source::tick_row;
use super::read::{InputSample, Recording};
use super::row::{Divergence, InferenceRow, ResultStatus};
use crate::control::{Completion, ControlLoop, InferenceExecutor, InferenceFailure, LoopError, SubmitError};

/// Why a replay could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The recording holds no ticks.
    #[error("the recording holds no ticks")]
    Empty,
    /// The recording starts after tick 0, so the loop's state at its first
    /// tick is unknown.
    #[error("the recording starts at tick {0}, not 0: a bit-exact replay needs the run from its start")]
    NotFromStart(u64),
    /// Tick records are missing (dropped by a full ring).
    #[error("tick {0} is missing from the recording (a ring overflowed); replay cannot stay in step")]
    Gap(u64),
    /// The loop could not be built.
    #[error("building the loop: {0}")]
    Loop(#[from] LoopError),
}

/// The result of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Ticks replayed (up to and including a divergence).
    pub ticks: u64,
    /// The first divergence, if any.
    pub divergence: Option<Divergence>,
}

/// Answers submissions with recorded results, each at the tick that
/// collected it in the recording.
pub struct ReplayExecutor {
    spec: PolicySpec,
    results: VecDeque<InferenceRow>,
    current: Arc<AtomicU64>,
    in_flight: Option<(Stamp, u64)>,
    next_id: u64,
    answer: ActionChunk,
    shadow: Option<Shadow>,
}

/// A policy re-run on every observation the replayed loop submits; its
/// chunk is compared with the recorded one when that is collected. The loop
/// itself is driven by the recorded results, so it stays in step with the
/// recording whatever the shadow answers.
struct Shadow {
    policy: Box<dyn Policy>,
    /// The shadow's answer to the request in flight (`None`: it failed).
    pending: Option<(u64, Option<ActionChunk>)>,
    drift: Arc<Mutex<Drift>>,
}

/// Numeric drift of re-inferred action chunks against the recorded ones
/// (`ganglion replay --reinfer`): for comparing backends, providers and
/// precisions on the same observations. Units: the action's (rad for
/// absolute joint positions).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Drift {
    /// Chunks compared (recorded Ok and re-inferred Ok).
    pub compared: u64,
    /// Requests the recording answered but the shadow policy failed on.
    pub shadow_errors: u64,
    /// Requests whose recorded result was an error (not compared).
    pub recorded_errors: u64,
    /// Chunks of a different shape (steps or joints) than recorded.
    pub shape_mismatches: u64,
    /// Largest absolute difference of any action value.
    pub max_abs: f64,
    /// Mean absolute difference over every compared value.
    pub mean_abs: f64,
    /// Root mean square difference over every compared value.
    pub rms: f64,
    /// Largest absolute difference per chunk step (index = step).
    pub per_step_max_abs: Vec<f64>,
    /// Largest absolute difference per joint.
    pub per_joint_max_abs: Vec<f64>,
    /// Request id of the chunk with the largest difference.
    pub worst_request: u64,
    #[serde(skip)]
    sum_abs: f64,
    #[serde(skip)]
    sum_sq: f64,
    #[serde(skip)]
    values: u64,
}

impl Drift {
    fn add(&mut self, recorded: &ActionChunk, shadow: &ActionChunk) {
        let steps = recorded.steps();
        if steps != shadow.steps() || recorded.step(0).len() != shadow.step(0).len() {
            self.shape_mismatches += 1;
            return;
        }
        self.compared += 1;
        for i in 0..steps {
            for (j, (a, b)) in recorded.step(i).iter().zip(shadow.step(i)).enumerate() {
                let d = (a - b).abs();
                if self.per_step_max_abs.len() <= i {
                    self.per_step_max_abs.resize(i + 1, 0.0);
                }
                if self.per_joint_max_abs.len() <= j {
                    self.per_joint_max_abs.resize(j + 1, 0.0);
                }
                self.per_step_max_abs[i] = self.per_step_max_abs[i].max(d);
                self.per_joint_max_abs[j] = self.per_joint_max_abs[j].max(d);
                if d > self.max_abs {
                    self.max_abs = d;
                    self.worst_request = recorded.request_id;
                }
                self.sum_abs += d;
                self.sum_sq += d * d;
                self.values += 1;
            }
        }
        let n = self.values.max(1) as f64;
        self.mean_abs = self.sum_abs / n;
        self.rms = (self.sum_sq / n).sqrt();
    }
}

impl Shadow {
    fn run(&mut self, obs: &Observation, id: u64) {
        let mut out = ActionChunk::for_spec(self.policy.spec());
        let mut obs = obs.clone();
        obs.request_id = id;
        let ok = self.policy.infer(&obs, &mut out).is_ok() && out.as_slice().iter().all(|v| v.is_finite());
        self.pending = Some((id, ok.then_some(out)));
    }

    fn compare(&mut self, recorded: &InferenceRow) {
        let Ok(mut drift) = self.drift.lock() else { return };
        let shadow = self.pending.take().filter(|(id, _)| *id == recorded.chunk.request_id).and_then(|(_, c)| c);
        match (recorded.status, shadow) {
            (ResultStatus::Ok, Some(c)) => drift.add(&recorded.chunk, &c),
            (ResultStatus::Ok, None) => drift.shadow_errors += 1,
            _ => drift.recorded_errors += 1,
        }
    }
}

impl ReplayExecutor {
    /// Serves `results` (in collection order); `current` holds the
    /// scheduled time of the tick being replayed.
    pub fn new(spec: PolicySpec, results: Vec<InferenceRow>, current: Arc<AtomicU64>, first_id: u64) -> Self {
        let answer = ActionChunk::for_spec(&spec);
        ReplayExecutor {
            spec,
            results: results.into(),
            current,
            in_flight: None,
            next_id: first_id,
            answer,
            shadow: None,
        }
    }

    /// Also runs `policy` on every submitted observation and accumulates
    /// its drift against the recorded chunks into `drift`.
    pub fn with_shadow(mut self, policy: Box<dyn Policy>, drift: Arc<Mutex<Drift>>) -> Self {
        self.shadow = Some(Shadow { policy, pending: None, drift });
        self
    }
}

fn failure(status: ResultStatus) -> InferenceFailure {
    match status {
        ResultStatus::BadObservation => InferenceFailure::BadObservation,
        ResultStatus::WorkerStopped => InferenceFailure::WorkerStopped,
        ResultStatus::Panicked => InferenceFailure::Panicked,
        ResultStatus::Ok | ResultStatus::Backend | ResultStatus::InstructionRejected => InferenceFailure::Backend,
    }
}

impl InferenceExecutor for ReplayExecutor {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn is_idle(&self) -> bool {
        self.in_flight.is_none()
    }

    fn in_flight_since(&self) -> Option<Stamp> {
        self.in_flight.map(|(t, _)| t)
    }

    fn submit(&mut self, obs: &Observation, now: Stamp) -> Result<u64, SubmitError> {
        if self.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight = Some((now, id));
        if let Some(shadow) = &mut self.shadow {
            shadow.run(obs, id);
        }
        Ok(id)
    }

    fn poll(&mut self, _now: Stamp) -> Option<Completion<'_>> {
        let tick = self.current.load(Ordering::Relaxed);
        if self.results.front().is_none_or(|r| r.collected.0 != tick) {
            return None;
        }
        let r = self.results.pop_front()?;
        self.in_flight = None;
        if let Some(shadow) = &mut self.shadow {
            shadow.compare(&r);
        }
        if r.status != ResultStatus::Ok {
            return Some(Completion::Failed { request_id: r.chunk.request_id, failure: failure(r.status) });
        }
        // Replay runs off the real-time path: a recorded chunk of another
        // shape simply replaces the buffer.
        if !self.answer.copy_from(&r.chunk) {
            self.answer = r.chunk;
        }
        Some(Completion::Chunk(&self.answer))
    }
}

/// A sink that accepts everything (replay compares the loop's records).
struct Discard;

impl CommandSink for Discard {
    fn send(&mut self, _cmd: &Command) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Builds a loop from the replay's inputs, executor and sink: the caller
/// supplies the recorded run's configuration.
pub type BuildLoop<'a> =
    dyn FnOnce(InputReaders, Box<dyn InferenceExecutor>, Box<dyn CommandSink>) -> Result<ControlLoop, LoopError> + 'a;

/// Replays `rec` through the loop `build` makes for `spec`; stops at the
/// first divergence.
pub fn check(rec: &Recording, spec: &PolicySpec, build: Box<BuildLoop<'_>>) -> Result<ReplayOutcome, ReplayError> {
    run(rec, spec, build, None)
}

/// [`check`], re-running `policy` on every observation the loop submits and
/// measuring its drift against the recorded chunks (the loop stays driven
/// by the recorded results).
pub fn reinfer(
    rec: &Recording,
    spec: &PolicySpec,
    build: Box<BuildLoop<'_>>,
    policy: Box<dyn Policy>,
) -> Result<(ReplayOutcome, Drift), ReplayError> {
    let drift = Arc::new(Mutex::new(Drift::default()));
    let outcome = run(rec, spec, build, Some((policy, drift.clone())))?;
    let drift = drift.lock().map(|d| d.clone()).unwrap_or_default();
    Ok((outcome, drift))
}

type ShadowSpec = (Box<dyn Policy>, Arc<Mutex<Drift>>);

fn run(
    rec: &Recording,
    spec: &PolicySpec,
    build: Box<BuildLoop<'_>>,
    shadow: Option<ShadowSpec>,
) -> Result<ReplayOutcome, ReplayError> {
    let first = rec.ticks.first().ok_or(ReplayError::Empty)?;
    if first.seq != 0 {
        return Err(ReplayError::NotFromStart(first.seq));
    }
    if let Some(w) = rec.ticks.windows(2).find(|w| w[1].seq != w[0].seq + 1) {
        return Err(ReplayError::Gap(w[0].seq + 1));
    }
    let cameras: Vec<(String, u32, u32)> = spec.cameras.iter().map(|c| (c.name.clone(), c.width, c.height)).collect();
    let (mut writers, readers) = input_slots(spec.n_joints, &cameras);
    let current = Arc::new(AtomicU64::new(0));
    let first_id = rec.ticks.iter().map(|t| t.request_id).find(|&id| id != 0).unwrap_or(1);
    let mut executor = ReplayExecutor::new(spec.clone(), rec.results.clone(), current.clone(), first_id);
    if let Some((policy, drift)) = shadow {
        executor = executor.with_shadow(policy, drift);
    }
    let mut lp = build(readers, Box::new(executor), Box::new(Discard))?;
    let clock = SimClock::new(Stamp::ZERO);
    let mut next_input = 0;
    let mut ticks = 0;
    for row in &rec.ticks {
        current.store(row.scheduled.0, Ordering::Relaxed);
        while let Some(input) = rec.inputs.get(next_input).filter(|i| i.tick <= row.scheduled) {
            next_input += 1;
            match &input.sample {
                InputSample::Joints(s) => writers.joints.write_with(|d| *d = s.clone()),
                InputSample::Instruction(s) => writers.instruction.write_with(|d| *d = s.clone()),
                InputSample::Heartbeat(s) => writers.heartbeat.write_with(|d| *d = s.clone()),
                InputSample::Frame(cam, s) => {
                    if let Some(w) = writers.cameras.get_mut(*cam) {
                        w.slot.write_with(|d| {
                            d.capture = s.capture;
                            d.receive = s.receive;
                            d.seq = s.seq;
                            let f = &s.value;
                            // A recorded frame larger than the spec's camera
                            // cannot reach the loop; the tick will diverge.
                            let _ = d.value.set(f.width, f.height, f.format, f.data());
                        });
                    }
                }
            }
        }
        clock.set(row.start);
        lp.tick(&clock, row.scheduled);
        ticks += 1;
        let replayed = tick_row(lp.last_record());
        if let Some(d) = row.first_divergence(&replayed) {
            return Ok(ReplayOutcome { ticks, divergence: Some(d) });
        }
    }
    Ok(ReplayOutcome { ticks, divergence: None })
}

/// The policy spec as recorded in a file's metadata (`policy_spec`, JSON),
/// so `ganglion replay --check` can rebuild the loop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpecRecord {
    /// [`PolicySpec::name`].
    pub name: String,
    /// [`PolicySpec::n_joints`].
    pub n_joints: usize,
    /// [`PolicySpec::chunk_len`].
    pub chunk_len: usize,
    /// [`PolicySpec::step_ns`].
    pub step_ns: u64,
    /// [`PolicySpec::action_kind`].
    pub action_kind: ganglion_core::ActionKind,
    /// [`PolicySpec::cameras`].
    pub cameras: Vec<ganglion_core::CameraSpec>,
    /// [`PolicySpec::expected_latency_ns`].
    pub expected_latency_ns: u64,
    /// [`PolicySpec::surprise_threshold`].
    pub surprise_threshold: Option<f32>,
    /// [`PolicySpec::history`] (recordings made before it existed: 1).
    #[serde(default = "one")]
    pub history: usize,
    /// [`PolicySpec::rolls_at_reply`] (recordings made before it existed:
    /// false).
    #[serde(default)]
    pub rolls_at_reply: bool,
}

fn one() -> usize {
    1
}

impl From<&PolicySpec> for SpecRecord {
    fn from(s: &PolicySpec) -> Self {
        SpecRecord {
            name: s.name.clone(),
            n_joints: s.n_joints,
            chunk_len: s.chunk_len,
            step_ns: s.step_ns,
            action_kind: s.action_kind,
            cameras: s.cameras.clone(),
            expected_latency_ns: s.expected_latency_ns,
            surprise_threshold: s.surprise_threshold,
            history: s.history,
            rolls_at_reply: s.rolls_at_reply,
        }
    }
}

impl From<SpecRecord> for PolicySpec {
    fn from(s: SpecRecord) -> Self {
        PolicySpec {
            name: s.name,
            n_joints: s.n_joints,
            chunk_len: s.chunk_len,
            step_ns: s.step_ns,
            action_kind: s.action_kind,
            cameras: s.cameras,
            expected_latency_ns: s.expected_latency_ns,
            surprise_threshold: s.surprise_threshold,
            history: s.history,
            rolls_at_reply: s.rolls_at_reply,
        }
    }
}

/// Metadata keys a recording needs for `ganglion replay --check`: the
/// robot profile's text (`profile_toml`) and the policy spec
/// (`policy_spec`). Whoever starts the recorder puts these into
/// [`RecordingMeta::info`](super::RecordingMeta::info).
pub fn replay_info(profile_toml: &str, spec: &PolicySpec) -> Vec<(String, String)> {
    vec![
        ("profile_toml".into(), profile_toml.into()),
        ("policy_spec".into(), serde_json::to_string(&SpecRecord::from(spec)).unwrap_or_default()),
    ]
}
