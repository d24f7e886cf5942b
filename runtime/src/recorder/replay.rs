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
use std::sync::Arc;

use ganglion_core::{
    input_slots, ActionChunk, Command, CommandSink, InputReaders, Observation, PolicySpec, SimClock, SinkError, Stamp,
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
}

impl ReplayExecutor {
    /// Serves `results` (in collection order); `current` holds the
    /// scheduled time of the tick being replayed.
    pub fn new(spec: PolicySpec, results: Vec<InferenceRow>, current: Arc<AtomicU64>, first_id: u64) -> Self {
        let answer = ActionChunk::for_spec(&spec);
        ReplayExecutor { spec, results: results.into(), current, in_flight: None, next_id: first_id, answer }
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

    fn submit(&mut self, _obs: &Observation, now: Stamp) -> Result<u64, SubmitError> {
        if self.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight = Some((now, id));
        Ok(id)
    }

    fn poll(&mut self, _now: Stamp) -> Option<Completion<'_>> {
        let tick = self.current.load(Ordering::Relaxed);
        if self.results.front().is_none_or(|r| r.collected.0 != tick) {
            return None;
        }
        let r = self.results.pop_front()?;
        self.in_flight = None;
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
    let executor = ReplayExecutor::new(spec.clone(), rec.results.clone(), current.clone(), first_id);
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
