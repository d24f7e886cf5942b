//! [`ControlLoop`]: one object that runs the tick (docs/ARCHITECTURE.md, "The tick").
//!
//! sample → collect → request → supervise → act → shield → publish →
//! account. Everything it touches is allocated in [`ControlLoop::new`] (or
//! when a telemetry ring / input tap is attached); [`ControlLoop::tick`]
//! allocates nothing, takes no lock, and never blocks.
//!
//! Timing contract: the caller (a runner) calls `tick` once per period
//! with the tick's scheduled start t_k. Triggers found during a tick engage
//! the fallback in that same tick's command. Two triggers are found only
//! after the command is computed and apply to the next tick boundary: a
//! limit violation reported by the shield (its output is already clamped
//! within limits) and a tick overrun (known only once the body has ended).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ganglion_core::{
    ActionChunk, ActionKind, ArmModel, Cause, CauseSet, Clock, Command, CommandSink, DeviceCauses, InputReaders,
    JointLimit, JointVec, Mode, PolicySpec, Stamp, StepHistory,
};

use super::executor::{AcceptInfo, ChunkExecutor, ChunkRejected, ExecutorConfig, ExecutorConfigError};
use super::fallback::{FallbackConfig, FallbackConfigError, FallbackController};
use super::inference::{Completion, InferenceExecutor, InferenceFailure};
use super::input::{SampleReport, Sampler, SamplerError, StalenessConfig, StalenessConfigError};
use super::shield::{Shield, ShieldConfig, ShieldConfigError, ShieldOutcome};
use super::supervisor::{policy_drives, CauseCounts, RearmError, Supervisor, SupervisorConfig, SupervisorConfigError};
use super::telemetry::{
    clamped_joints, input_tap, telemetry_ring, CollectOutcome, InputTapReader, InputTapWriter, Stage, TelemetryReader,
    TelemetryWriter, TickRecord, ACTION_INDEX_NONE,
};

/// Everything the loop needs besides its inputs, policy and sink. Usually
/// built from a robot profile with [`crate::profile::Profile::loop_config`].
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Control period, ns.
    pub period_ns: u64,
    /// Tick body budget, ns: a tick that starts or ends later than
    /// `scheduled + budget` is an overrun.
    pub budget_ns: u64,
    /// A request in flight longer than this is `InferenceLate`; 0 leaves
    /// lateness to the executor running dry.
    pub inference_timeout_ns: u64,
    /// Consecutive chunks whose surprise exceeds the policy's threshold
    /// before `WorldModelSurprise` triggers.
    pub surprise_chunks: u32,
    /// Consecutive chunks whose surprise was compared and stayed within the
    /// threshold that release a triggered `WorldModelSurprise` (see
    /// [`ControlLoop`]'s recovery rule).
    pub surprise_calm_chunks: u32,
    /// Joint limits, profile order.
    pub limits: Vec<JointLimit>,
    /// Kinematics for the shield's workspace box.
    pub arm: Option<ArmModel>,
    /// `[staleness]`.
    pub staleness: StalenessConfig,
    /// `[supervisor]`.
    pub supervisor: SupervisorConfig,
    /// `[executor]`.
    pub executor: ExecutorConfig,
    /// `[shield]`.
    pub shield: ShieldConfig,
    /// `[fallback]`.
    pub fallback: FallbackConfig,
}

impl LoopConfig {
    /// Defaults for `limits` at `rate_hz`: budget = period, no inference
    /// timeout, default sections.
    pub fn with_limits(limits: Vec<JointLimit>, rate_hz: f64) -> Self {
        let period_ns = (1e9 / rate_hz.max(1.0)) as u64;
        LoopConfig {
            period_ns,
            budget_ns: period_ns,
            inference_timeout_ns: 0,
            surprise_chunks: 3,
            surprise_calm_chunks: 3,
            limits,
            arm: None,
            staleness: StalenessConfig::default(),
            supervisor: SupervisorConfig::default(),
            executor: ExecutorConfig::default(),
            shield: ShieldConfig::default(),
            fallback: FallbackConfig::default(),
        }
    }
}

/// Why a loop could not be built: a configuration it refuses (rather than
/// substituting a value), or inputs and policy that do not fit together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoopError {
    /// The policy commands a different number of joints than the profile has.
    #[error("policy has {policy} joints, profile has {profile}")]
    JointCount {
        /// Joints of the policy.
        policy: usize,
        /// Joints of the profile.
        profile: usize,
    },
    /// Camera slots and policy cameras differ.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// The tick budget is 0 (every tick would overrun).
    #[error("`control.budget_us`: expected a positive budget")]
    Budget,
    /// `surprise_chunks` or `surprise_calm_chunks` is 0.
    #[error("`control.surprise_chunks`, `control.surprise_calm_chunks`: expected at least 1")]
    SurpriseChunks,
    /// `[staleness]`.
    #[error(transparent)]
    Staleness(#[from] StalenessConfigError),
    /// `[supervisor]`.
    #[error(transparent)]
    Supervisor(#[from] SupervisorConfigError),
    /// `[executor]`.
    #[error(transparent)]
    Executor(#[from] ExecutorConfigError),
    /// `[shield]`, the joint limits, the arm or the period.
    #[error(transparent)]
    Shield(#[from] ShieldConfigError),
    /// `[fallback]`.
    #[error(transparent)]
    Fallback(#[from] FallbackConfigError),
}

impl LoopConfig {
    /// Checks every section as [`ControlLoop::new`] does (the profile runs
    /// the same check at load).
    pub fn validate(&self) -> Result<(), LoopError> {
        self.shield.validate_for(&self.limits, self.arm.as_ref(), self.period_ns)?;
        if self.budget_ns == 0 {
            return Err(LoopError::Budget);
        }
        if self.surprise_chunks == 0 || self.surprise_calm_chunks == 0 {
            return Err(LoopError::SurpriseChunks);
        }
        self.staleness.validate()?;
        self.supervisor.validate()?;
        self.executor.validate()?;
        self.fallback.validate(&self.limits)?;
        Ok(())
    }
}

/// Loop counters since construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct LoopCounters {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks whose start or end went past the budget.
    pub overruns: u64,
    /// Ticks in Fallback or SafeStop.
    pub fallback_ticks: u64,
    /// Ticks the policy drove but had no action for t_k.
    pub starved_ticks: u64,
    /// Commands handed to the sink.
    pub published: u64,
    /// Commands the sink refused.
    pub sink_errors: u64,
    /// Inference requests submitted.
    pub requests: u64,
    /// Chunks accepted by the executor.
    pub chunks_accepted: u64,
    /// Chunks refused (malformed or by the executor).
    pub chunks_rejected: u64,
    /// Inferences that failed.
    pub inference_failures: u64,
    /// Ticks the shield clamped.
    pub clamped_ticks: u64,
}

/// A handle that asks the loop for an operator stop (latched by the
/// default supervisor config). Cloneable, lock-free.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Requests the stop (stays requested until [`clear`](Self::clear)).
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Withdraws the request (SafeStop still needs a re-arm).
    pub fn clear(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether a stop is requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The control loop. See the module docs.
pub struct ControlLoop {
    period_ns: u64,
    budget_ns: u64,
    inference_timeout_ns: u64,
    surprise_chunks: u32,
    surprise_calm_chunks: u32,
    n_joints: usize,
    spec: PolicySpec,
    sampler: Sampler,
    /// The recent valid observations, for the policy's history
    /// (`Observation::past`; nothing kept for a policy without one).
    history: StepHistory,
    inference: Box<dyn InferenceExecutor>,
    executor: ChunkExecutor,
    /// What the executor said of the last chunk it accepted.
    last_accept: Option<AcceptInfo>,
    shield: Shield,
    fallback: FallbackController,
    supervisor: Supervisor,
    sink: Box<dyn CommandSink>,
    stop: StopHandle,
    /// Causes raised by a device thread (the servo bus), read once a tick.
    device_causes: DeviceCauses,
    telemetry: Option<TelemetryWriter>,
    tap: Option<InputTapWriter>,

    command: Command,
    record: TickRecord,
    initialized: bool,
    fallback_engaged: bool,
    sticky: CauseSet,
    pending: CauseSet,
    surprise_run: u32,
    /// Consecutive compared chunks within the threshold.
    calm_run: u32,
    /// `WorldModelSurprise` holds until `surprise_calm_chunks` calm chunks.
    surprise_tripped: bool,
    in_flight: Option<(u64, Stamp, JointVec)>,
    /// Observation stamp and step of the newest accepted chunk (for the
    /// tick record's action index).
    active_chunk: Option<(Stamp, u64)>,
    desired_pos: JointVec,
    desired_vel: JointVec,
    /// The chunk answered this tick, kept for the input tap.
    chunk_copy: ActionChunk,
    chunk_copy_valid: bool,
    counters: LoopCounters,
}

impl ControlLoop {
    /// Builds the loop; every buffer it will use is allocated here.
    pub fn new(
        cfg: &LoopConfig,
        inputs: InputReaders,
        inference: Box<dyn InferenceExecutor>,
        sink: Box<dyn CommandSink>,
    ) -> Result<ControlLoop, LoopError> {
        cfg.validate()?;
        let n = cfg.limits.len();
        let spec = inference.spec().clone();
        if spec.n_joints != n {
            return Err(LoopError::JointCount { policy: spec.n_joints, profile: n });
        }
        let sampler = Sampler::new(inputs, &spec, &cfg.staleness)?;
        let mut executor =
            ChunkExecutor::new(&cfg.executor, n, spec.chunk_len, cfg.period_ns, spec.expected_latency_ns);
        executor.set_position_bounds(&cfg.limits, cfg.shield.tolerance);
        let shield = Shield::new(&cfg.shield, &cfg.limits, cfg.arm.clone(), cfg.period_ns)?;
        let fallback = FallbackController::new(&cfg.fallback, &cfg.limits, cfg.period_ns)?;
        let chunk_copy = ActionChunk::for_spec(&spec);
        let command = ganglion_core::hold_command(0, Stamp::ZERO, Mode::Startup, JointVec::zeros(n));
        let record = TickRecord {
            seq: 0,
            scheduled: Stamp::ZERO,
            start: Stamp::ZERO,
            end: Stamp::ZERO,
            mode: Mode::Startup,
            causes: CauseSet::EMPTY,
            command,
            published: false,
            stage_ns: [0; Stage::COUNT],
            overrun: false,
            clamped: false,
            clamped_joints: 0,
            action_index: ACTION_INDEX_NONE,
            violation: false,
            submitted: 0,
            completed: 0,
            collect: CollectOutcome::None,
            chunk_age_ns: 0,
            compute_ns: 0,
            joint_seq: 0,
            obs_stamp: Stamp::ZERO,
            starved: false,
        };
        Ok(ControlLoop {
            period_ns: cfg.period_ns,
            budget_ns: cfg.budget_ns,
            inference_timeout_ns: cfg.inference_timeout_ns,
            surprise_chunks: cfg.surprise_chunks,
            surprise_calm_chunks: cfg.surprise_calm_chunks,
            n_joints: n,
            history: StepHistory::new(&spec, cfg.period_ns),
            spec,
            sampler,
            inference,
            executor,
            last_accept: None,
            shield,
            fallback,
            supervisor: Supervisor::new(&cfg.supervisor),
            sink,
            stop: StopHandle::default(),
            device_causes: DeviceCauses::default(),
            telemetry: None,
            tap: None,
            command,
            record,
            initialized: false,
            fallback_engaged: false,
            sticky: CauseSet::EMPTY,
            pending: CauseSet::EMPTY,
            surprise_run: 0,
            calm_run: 0,
            surprise_tripped: false,
            in_flight: None,
            active_chunk: None,
            desired_pos: JointVec::zeros(n),
            desired_vel: JointVec::zeros(n),
            chunk_copy,
            chunk_copy_valid: false,
            counters: LoopCounters::default(),
        })
    }

    /// Reads `causes` (raised by a device thread: the servo bus's alarm
    /// bits and bus faults) at every tick's sample stage, next to the
    /// inputs' own; one atomic read per tick. Call before running.
    pub fn attach_device_causes(&mut self, causes: DeviceCauses) {
        self.device_causes = causes;
    }

    /// Attaches a tick-record ring of `capacity` records and returns its
    /// reading end (replacing any earlier ring). Call before running.
    pub fn attach_telemetry(&mut self, capacity: usize) -> TelemetryReader {
        let (w, r) = telemetry_ring(capacity);
        self.telemetry = Some(w);
        r
    }

    /// Attaches an input tap of `capacity` pooled snapshots (the recorder's
    /// replay hook) and returns its reading end. Call before running.
    pub fn attach_input_tap(&mut self, capacity: usize) -> InputTapReader {
        let (w, r) = input_tap(&self.spec, capacity);
        self.tap = Some(w);
        r
    }

    /// The handle for operator stops.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Control period, ns.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// The policy's spec.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        self.supervisor.mode()
    }

    /// Loop counters.
    pub fn counters(&self) -> &LoopCounters {
        &self.counters
    }

    /// The executor's facts about the last accepted chunk (the seam jump,
    /// what was skipped); `chunks_accepted` in [`counters`](Self::counters)
    /// says when it changes.
    pub fn last_accept(&self) -> Option<AcceptInfo> {
        self.last_accept
    }

    /// Per-cause counters.
    pub fn cause_counts(&self) -> &CauseCounts {
        self.supervisor.counts()
    }

    /// The supervisor (mode ticks, transitions).
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The shield (clamp counters).
    pub fn shield(&self) -> &Shield {
        &self.shield
    }

    /// The chunk executor (latency estimate, starved ticks).
    pub fn executor(&self) -> &ChunkExecutor {
        &self.executor
    }

    /// The last command.
    pub fn last_command(&self) -> &Command {
        &self.command
    }

    /// The last tick's record.
    pub fn last_record(&self) -> &TickRecord {
        &self.record
    }

    /// Leaves SafeStop (see [`Supervisor::rearm`]); the policy must deliver
    /// a fresh chunk before it drives again.
    pub fn rearm(&mut self) -> Result<(), RearmError> {
        self.supervisor.rearm()?;
        self.executor.reset();
        self.active_chunk = None;
        self.sticky = CauseSet::EMPTY;
        Ok(())
    }

    /// Runs one tick scheduled at `scheduled` and returns its command.
    ///
    /// Until the first joint state arrives there is nothing safe to
    /// command: the tick runs, but nothing is published
    /// (`last_record().published` is false).
    pub fn tick<C: Clock + ?Sized>(&mut self, clock: &C, scheduled: Stamp) -> &Command {
        let start = clock.now();
        let mut stage_ns = [0u32; Stage::COUNT];
        let mut mark = start;
        let mut lap = |stage: Stage, stage_ns: &mut [u32; Stage::COUNT]| {
            let t = clock.now();
            stage_ns[stage as usize] = t.saturating_since(mark).min(u64::from(u32::MAX)) as u32;
            mark = t;
        };
        let now = start;
        let seq = self.counters.ticks;

        // 1. sample
        let mut report = self.sampler.sample(now);
        if self.shield.outside_envelope(&self.sampler.observation().joints.position) {
            report.causes.insert(Cause::OutOfEnvelope);
            report.obs_valid = false;
        }
        let mut causes = report.causes.union(self.pending).union(self.sticky).union(self.device_causes.take());
        self.pending = CauseSet::EMPTY;
        if self.stop.is_stopped() {
            causes.insert(Cause::OperatorStop);
        }
        self.initialize_if_needed(&report);
        if report.obs_valid {
            self.history.tap(self.sampler.observation(), report.new_frames);
        }
        lap(Stage::Sample, &mut stage_ns);

        // 2. collect
        let (collect, completed, chunk_age_ns, compute_ns) = self.collect(now);
        match collect {
            CollectOutcome::Accepted => self.sticky = CauseSet::EMPTY,
            CollectOutcome::Invalid
            | CollectOutcome::Rejected(ChunkRejected::NonFinite)
            | CollectOutcome::Rejected(ChunkRejected::Shape)
            | CollectOutcome::Rejected(ChunkRejected::Empty)
            | CollectOutcome::Rejected(ChunkRejected::NeedsBase)
            | CollectOutcome::Rejected(ChunkRejected::FromFuture) => self.sticky.insert(Cause::InvalidAction),
            CollectOutcome::Rejected(ChunkRejected::BeyondLimits) => self.sticky.insert(Cause::LimitViolation),
            CollectOutcome::Failed(InferenceFailure::Unreachable) => self.sticky.insert(Cause::PolicyUnreachable),
            // A reply lost or late on the link: the plan in hand drives on and
            // the next request goes out now; running out of plan is
            // `inference_late` (below), as for a slow policy.
            CollectOutcome::Failed(InferenceFailure::NoReply) => {}
            CollectOutcome::Failed(_) => self.sticky.insert(Cause::InferenceError),
            CollectOutcome::None
            | CollectOutcome::Rejected(ChunkRejected::OutOfOrder)
            | CollectOutcome::Rejected(ChunkRejected::Expired) => {}
        }
        causes = causes.union(self.sticky);
        if self.surprise_tripped {
            causes.insert(Cause::WorldModelSurprise);
        }
        lap(Stage::Collect, &mut stage_ns);

        // 3. request
        let mut submitted = 0;
        if self.inference.is_idle() && report.obs_valid && self.executor.should_request(now) {
            let obs_stamp = self.sampler.observation().stamp;
            // Held: the fallback drives (it brings the arm to rest and holds
            // it), so the policy's plan is not what the robot does. Not tied
            // to a speed threshold: a flag that flickered while the arm
            // settles would restart the world model's history every time.
            let obs = self.sampler.observation_mut();
            obs.held = self.fallback_engaged;
            self.executor.committed_steps(obs_stamp, self.spec.step_ns, self.spec.rolls_at_reply, &mut obs.committed);
            // The frames fit: the history's buffers were made for the same spec.
            let _ = self.history.fill(obs);
            let obs = self.sampler.observation();
            if let Ok(id) = self.inference.submit(obs, now) {
                self.executor.mark_requested(now);
                self.in_flight = Some((id, obs.stamp, obs.joints.position));
                self.counters.requests += 1;
                submitted = id;
            }
        }
        if self.inference_timeout_ns > 0
            && self.inference.in_flight_since().is_some_and(|t| now.saturating_since(t) > self.inference_timeout_ns)
        {
            causes.insert(Cause::InferenceLate);
        }
        lap(Stage::Request, &mut stage_ns);

        // 4. supervise
        let action_ready = self.executor.action_at(scheduled, &mut self.desired_pos, &mut self.desired_vel)
            && self.desired_pos.len() == self.n_joints;
        let starved = policy_drives(self.supervisor.mode()) && !action_ready;
        if starved {
            causes.insert(Cause::InferenceLate);
            self.counters.starved_ticks += 1;
        }
        let mode = self.supervisor.update(causes, action_ready);
        lap(Stage::Supervise, &mut stage_ns);

        // 5. act
        let (mut pos, mut vel) = (self.command.position, self.command.velocity);
        if policy_drives(mode) {
            if self.fallback_engaged {
                // Hand-over from the fallback (or Startup's hold): the plan's
                // clock ran on meanwhile; join it from the command in force
                // (C¹) instead of stepping to where it has got to.
                self.executor.rejoin(scheduled, &self.command.position, &self.command.velocity);
                self.executor.action_at(scheduled, &mut self.desired_pos, &mut self.desired_vel);
            }
            self.fallback_engaged = false;
            pos = self.desired_pos;
        } else {
            if !self.fallback_engaged {
                self.fallback.engage(&self.command.position, &self.command.velocity);
                // The policy's plan is void; a new chunk must join from
                // where the fallback takes over.
                self.executor.reset_at(&self.command.position);
                self.active_chunk = None;
                self.fallback_engaged = true;
            }
            self.fallback.step(&mut pos, &mut vel);
        }
        lap(Stage::Act, &mut stage_ns);

        // 6. shield
        let desired = pos;
        let outcome =
            if self.initialized { self.shield.apply(&desired, &mut pos, &mut vel) } else { ShieldOutcome::default() };
        if outcome.clamped {
            self.counters.clamped_ticks += 1;
        }
        if outcome.violation {
            self.pending.insert(Cause::LimitViolation);
        }
        lap(Stage::Shield, &mut stage_ns);

        // 7. publish
        self.command = Command {
            seq,
            stamp: scheduled,
            mode,
            causes: self.supervisor_causes(causes, mode),
            position: pos,
            velocity: vel,
        };
        let mut published = false;
        if self.initialized {
            match self.sink.send(&self.command) {
                Ok(()) => {
                    published = true;
                    self.counters.published += 1;
                }
                Err(_) => self.counters.sink_errors += 1,
            }
        }
        lap(Stage::Publish, &mut stage_ns);

        // 8. account
        let end = clock.now();
        let overrun =
            start.saturating_since(scheduled) > self.budget_ns || end.saturating_since(scheduled) > self.budget_ns;
        if overrun {
            self.counters.overruns += 1;
            self.pending.insert(Cause::TickOverrun);
        }
        if matches!(mode, Mode::Fallback | Mode::SafeStop) {
            self.counters.fallback_ticks += 1;
        }
        self.counters.ticks += 1;
        let js = self.sampler.joints();
        self.record = TickRecord {
            seq,
            scheduled,
            start,
            end,
            mode,
            causes: self.command.causes,
            command: self.command,
            published,
            stage_ns,
            overrun,
            clamped: outcome.clamped,
            clamped_joints: clamped_joints(&desired, &pos),
            action_index: match self.active_chunk {
                Some((obs, step)) if policy_drives(mode) && step > 0 => {
                    u32::try_from(scheduled.saturating_since(obs) / step).unwrap_or(u32::MAX)
                }
                _ => ACTION_INDEX_NONE,
            },
            violation: outcome.violation,
            submitted,
            completed,
            collect,
            chunk_age_ns,
            compute_ns,
            joint_seq: js.seq,
            obs_stamp: self.sampler.observation().stamp,
            starved,
        };
        if let Some(t) = &self.telemetry {
            t.push(&self.record);
        }
        self.fill_tap(&report, scheduled, now, submitted, collect, completed);
        &self.command
    }

    /// The causes reported with the command: every trigger seen this tick
    /// (the supervisor filters `InferenceLate` during Startup).
    fn supervisor_causes(&self, causes: CauseSet, mode: Mode) -> CauseSet {
        if mode == Mode::Startup {
            CauseSet(causes.0 & !(1 << Cause::InferenceLate as u32))
        } else {
            causes
        }
    }

    /// On the first usable joint state: start every controller from the
    /// measured position, so the first command holds still.
    fn initialize_if_needed(&mut self, report: &SampleReport) {
        if self.initialized || !report.new_joints {
            return;
        }
        let js = self.sampler.joints();
        if js.value.len() != self.n_joints || !js.value.position.is_finite() {
            return;
        }
        let q = js.value.position;
        self.command.position = q;
        self.command.velocity = JointVec::zeros(self.n_joints);
        self.shield.reset(&q);
        // A first plan starts where the arm is, not at the policy's first action.
        self.executor.reset_at(&q);
        self.active_chunk = None;
        self.fallback.engage(&q, &self.command.velocity);
        self.fallback_engaged = true;
        self.initialized = true;
    }

    /// Takes a finished inference, validates it and hands it to the executor.
    fn collect(&mut self, now: Stamp) -> (CollectOutcome, u64, u64, u64) {
        let Some(completion) = self.inference.poll(now) else {
            return (CollectOutcome::None, 0, 0, 0);
        };
        let Some((id, obs_stamp, base)) = self.in_flight.take() else {
            // An answer to nothing we asked: malformed by definition.
            self.counters.chunks_rejected += 1;
            return (CollectOutcome::Invalid, 0, 0, 0);
        };
        match completion {
            Completion::Failed { failure, .. } => {
                self.counters.inference_failures += 1;
                (CollectOutcome::Failed(failure), id, 0, 0)
            }
            Completion::Chunk(chunk) => {
                let age = now.saturating_since(chunk.obs_stamp);
                let well_formed = chunk.request_id == id
                    && chunk.obs_stamp == obs_stamp
                    && chunk.n_joints() == self.n_joints
                    && chunk.steps() >= 1
                    && chunk.step_ns > 0
                    && chunk.is_finite();
                if !well_formed {
                    self.counters.chunks_rejected += 1;
                    return (CollectOutcome::Invalid, id, age, chunk.compute_ns);
                }
                // A chunk without a comparison (the world model restarted its
                // history) is neither surprising nor calm.
                match chunk.surprise.zip(self.spec.surprise_threshold) {
                    Some((s, threshold)) if s.is_nan() || s > threshold => {
                        self.surprise_run = self.surprise_run.saturating_add(1);
                        self.calm_run = 0;
                        if self.surprise_run >= self.surprise_chunks {
                            self.surprise_tripped = true;
                        }
                    }
                    Some(_) => {
                        self.surprise_run = 0;
                        self.calm_run = self.calm_run.saturating_add(1);
                        if self.calm_run >= self.surprise_calm_chunks {
                            self.surprise_tripped = false;
                        }
                    }
                    None => {}
                }
                let compute_ns = chunk.compute_ns;
                if self.tap.is_some() {
                    self.chunk_copy_valid = self.chunk_copy.copy_from(chunk);
                }
                let accepted = match chunk.kind {
                    ActionKind::AbsolutePosition => self.executor.accept(chunk, now),
                    ActionKind::DeltaPosition => self.executor.accept_with_base(chunk, &base, now),
                };
                match accepted {
                    Ok(info) => {
                        self.last_accept = Some(info);
                        self.counters.chunks_accepted += 1;
                        self.active_chunk = Some((chunk.obs_stamp, chunk.step_ns));
                        (CollectOutcome::Accepted, id, age, compute_ns)
                    }
                    Err(e) => {
                        self.counters.chunks_rejected += 1;
                        (CollectOutcome::Rejected(e), id, age, compute_ns)
                    }
                }
            }
        }
    }

    fn fill_tap(
        &mut self,
        report: &SampleReport,
        scheduled: Stamp,
        now: Stamp,
        submitted: u64,
        collect: CollectOutcome,
        completed: u64,
    ) {
        let Some(tap) = self.tap.as_mut() else { return };
        let Some(snap) = tap.begin() else { return };
        snap.tick = self.record.seq;
        snap.scheduled = scheduled;
        snap.now = now;
        snap.report = *report;
        let js = self.sampler.joints();
        snap.joints.capture = js.capture;
        snap.joints.receive = js.receive;
        snap.joints.seq = js.seq;
        snap.joints.value = js.value;
        for (i, dst) in snap.frames.iter_mut().enumerate() {
            if report.new_frames & (1 << i) == 0 {
                continue;
            }
            if let Some(src) = self.sampler.frame(i) {
                dst.capture = src.capture;
                dst.receive = src.receive;
                dst.seq = src.seq;
                let f = &src.value;
                // A frame that does not fit the policy's geometry is
                // recorded as empty; the report says it was invalid.
                if dst.value.set(f.width, f.height, f.format, f.data()).is_err() {
                    let _ = dst.value.set(0, 0, f.format, &[]);
                }
            }
        }
        if report.new_instruction {
            // The slot's sample, not the observation's copy: the recording
            // needs the receive stamp (MCAP publish_time) and the slot's
            // sequence number, as for every other input.
            let ins = self.sampler.instruction();
            snap.instruction.capture = ins.capture;
            snap.instruction.receive = ins.receive;
            snap.instruction.seq = ins.seq;
            snap.instruction.value.clone_from(&ins.value);
        }
        snap.heartbeat.clone_from(self.sampler.heartbeat());
        snap.submitted = submitted;
        snap.collect = collect;
        snap.completed = completed;
        snap.chunk_valid = completed != 0 && self.chunk_copy_valid && snap.chunk.copy_from(&self.chunk_copy);
        self.chunk_copy_valid = false;
        snap.command = self.command;
        tap.commit();
    }
}
