//! Running the policy off the control thread.
//!
//! The loop talks to an [`InferenceExecutor`]: it [`submit`]s an observation
//! (copied into a pooled buffer) and later [`poll`]s for the finished chunk.
//! Two implementations:
//!
//! - [`WorkerExecutor`]: the real one. A dedicated thread runs a
//!   `Box<dyn Policy>`; requests and results travel through bounded
//!   lock-free queues (`crossbeam_queue::ArrayQueue`) as boxed jobs drawn from
//!   a pool built at start-up, so a round trip never allocates and never
//!   blocks the loop. The worker is woken with `Thread::unpark` (an atomic
//!   and at most one futex wake, no lock). A panicking policy is caught and
//!   reported as a failure; a worker that never answers simply stays busy,
//!   and the loop sees it as `InferenceLate` when the executor starves.
//! - [`SimLatencyExecutor`]: for runs on a `SimClock`. It computes on the
//!   calling thread when the simulated clock reaches `request time +
//!   latency` (so a policy that reads the clock sees when its reply
//!   arrives), the latency coming from a [`LatencyModel`]; same seed, same
//!   latencies, same command stream.
//!
//! The simulated executor takes an [`InjectedDelay`] handle, the
//! fault-test hook for slow or stalled inference in simulated time; the
//! worker has none (faults there wrap the policy: `crate::faults`).
//!
//! [`submit`]: InferenceExecutor::submit
//! [`poll`]: InferenceExecutor::poll

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use ganglion_core::{ActionChunk, Clock, Observation, Policy, PolicyError, PolicySpec, Stamp};

/// Why an inference produced no chunk. `Copy`: the worker turns a
/// [`PolicyError`] (which owns a `String`) into this on its own thread, so
/// the loop never frees heap memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InferenceFailure {
    /// The policy rejected the observation.
    #[error("policy rejected the observation")]
    BadObservation,
    /// The backend failed while running a graph.
    #[error("policy backend error")]
    Backend,
    /// The policy panicked; the worker keeps answering with this failure
    /// and never calls the policy again.
    #[error("policy panicked")]
    Panicked,
    /// The worker has stopped.
    #[error("inference worker stopped")]
    WorkerStopped,
    /// The policy's server could not be reached.
    #[error("policy server unreachable")]
    Unreachable,
    /// The policy's server did not answer this request in time (lost or
    /// late on the link): not a fault by itself, the next request goes out
    /// at once ([`PolicyError::NoReply`]).
    #[error("no reply from the policy server")]
    NoReply,
}

impl From<&PolicyError> for InferenceFailure {
    fn from(e: &PolicyError) -> Self {
        match e {
            PolicyError::BadObservation(_) => InferenceFailure::BadObservation,
            // An instruction the policy could not encode still produced a
            // chunk; reaching here means the policy returned it as an error.
            PolicyError::Backend(_) | PolicyError::InstructionRejected(_) => InferenceFailure::Backend,
            PolicyError::WorkerStopped => InferenceFailure::WorkerStopped,
            PolicyError::Unreachable(_) => InferenceFailure::Unreachable,
            PolicyError::NoReply(_) => InferenceFailure::NoReply,
        }
    }
}

/// Why a request was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// A request is still in flight.
    #[error("inference busy")]
    Busy,
    /// The observation does not fit the pooled buffer (camera count or
    /// frame size differ from the policy spec).
    #[error("observation does not fit the policy's buffers")]
    Shape,
    /// The worker has stopped.
    #[error("inference worker stopped")]
    Stopped,
}

/// A finished request, borrowed from the executor until the next `poll`.
#[derive(Debug)]
pub enum Completion<'a> {
    /// The policy returned a chunk (not yet validated by the loop).
    Chunk(&'a ActionChunk),
    /// The policy failed.
    Failed {
        /// The request that failed.
        request_id: u64,
        /// Why.
        failure: InferenceFailure,
    },
}

/// The loop's view of inference.
///
/// Invariants every implementation keeps:
/// - `submit`, `poll`, `is_idle` never block, never allocate after
///   construction, never panic;
/// - at most one request is in flight; `submit` while busy is `Busy`;
/// - a `Completion` answers the request in flight (same `request_id`), and
///   its chunk stays valid until the next call to `poll` or `submit`.
pub trait InferenceExecutor: Send {
    /// The policy's shapes and rates.
    fn spec(&self) -> &PolicySpec;

    /// Whether a request may be submitted now.
    fn is_idle(&self) -> bool;

    /// When the request in flight was submitted, if any.
    fn in_flight_since(&self) -> Option<Stamp>;

    /// Copies `obs` into a pooled buffer and starts inference on it. The
    /// executor assigns and returns the request id.
    fn submit(&mut self, obs: &Observation, now: Stamp) -> Result<u64, SubmitError>;

    /// Takes the finished request, if there is one at `now`.
    fn poll(&mut self, now: Stamp) -> Option<Completion<'_>>;
}

/// Copies `src` into the preallocated `dst` without allocating. Returns
/// false (leaving `dst` partly written) when a frame does not fit or the
/// camera counts differ.
pub fn copy_observation(dst: &mut Observation, src: &Observation) -> bool {
    if dst.frames.len() != src.frames.len() {
        return false;
    }
    dst.request_id = src.request_id;
    dst.stamp = src.stamp;
    dst.joints = src.joints;
    for (d, s) in dst.frames.iter_mut().zip(&src.frames) {
        if d.set(s.width, s.height, s.format, s.data()).is_err() {
            return false;
        }
    }
    if dst.instruction.seq != src.instruction.seq || dst.instruction.text != src.instruction.text {
        dst.instruction.seq = src.instruction.seq;
        dst.instruction.text.clear();
        // Same capacity on both sides: cannot fail.
        let _ = dst.instruction.text.push_str(&src.instruction.text);
    }
    dst.committed.clear();
    for v in &src.committed {
        // Same capacity on both sides: cannot fail.
        let _ = dst.committed.push(*v);
    }
    dst.held = src.held;
    if dst.past.len() != src.past.len() {
        return false;
    }
    dst.past.iter_mut().zip(&src.past).all(|(d, s)| d.copy_from(s.stamp, &s.joints, &s.frames))
}

/// Extra inference delay injected by fault tests: 0 is none,
/// [`InjectedDelay::STALL`] never answers. Cloning shares the setting.
#[derive(Debug, Clone, Default)]
pub struct InjectedDelay(Arc<AtomicU64>);

impl InjectedDelay {
    /// The value meaning "never finish".
    pub const STALL: u64 = u64::MAX;

    /// No delay.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `ns` to every following request.
    pub fn set(&self, ns: u64) {
        self.0.store(ns, Ordering::Relaxed);
    }

    /// Following requests never finish.
    pub fn stall(&self) {
        self.set(Self::STALL);
    }

    /// Back to no extra delay.
    pub fn clear(&self) {
        self.set(0);
    }

    /// The current extra delay, ns.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One request's buffers; a fixed pool of these circulates between the loop
/// and the worker.
struct Job {
    obs: Observation,
    chunk: ActionChunk,
    outcome: Result<(), InferenceFailure>,
}

impl Job {
    fn new(spec: &PolicySpec) -> Box<Job> {
        Box::new(Job { obs: Observation::with_history(spec), chunk: ActionChunk::for_spec(spec), outcome: Ok(()) })
    }

    /// Presets the chunk header from the observation; the policy fills the rest.
    fn prepare(&mut self, spec: &PolicySpec) {
        self.chunk.request_id = self.obs.request_id;
        self.chunk.obs_stamp = self.obs.stamp;
        self.chunk.step_ns = spec.step_ns;
        self.chunk.kind = spec.action_kind;
        self.chunk.surprise = None;
        self.chunk.compute_ns = 0;
        self.chunk.set_steps(0);
    }
}

/// Runs `policy` on `job`, catching panics. Returns whether it panicked.
fn run_policy(policy: &mut dyn Policy, job: &mut Job) -> bool {
    match catch_unwind(AssertUnwindSafe(|| policy.infer(&job.obs, &mut job.chunk))) {
        Ok(Ok(())) => {
            job.outcome = Ok(());
            false
        }
        Ok(Err(e)) => {
            tracing::warn!(request = job.obs.request_id, error = %e, "policy returned an error");
            job.outcome = Err(InferenceFailure::from(&e));
            false
        }
        Err(_) => {
            tracing::error!(request = job.obs.request_id, "policy panicked; inference disabled");
            job.outcome = Err(InferenceFailure::Panicked);
            true
        }
    }
}

/// Histograms of the policy's time per inference, kept by the inference
/// worker (never touched by the control thread): `total` (the whole
/// `infer`, as `ActionChunk::compute_ns`) and every stage the policy
/// reports through [`Policy::stage_times`] (tokenize, preprocess, each
/// graph, each head step; a remote policy's server queue and compute).
/// A histogram is allocated the first time its stage appears.
#[derive(Default)]
pub struct InferenceStages {
    stages: Vec<(String, hdrhistogram::Histogram<u64>)>,
}

impl InferenceStages {
    fn record(&mut self, name: &str, ns: u64) {
        let i = match self.stages.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.stages.push((name.to_owned(), super::runner::duration_histogram()));
                self.stages.len() - 1
            }
        };
        if let Some((_, h)) = self.stages.get_mut(i) {
            h.saturating_record(ns.max(1));
        }
    }

    /// Percentiles per stage, µs (`total` first, then in order of appearance).
    pub fn summary_us(&self) -> Vec<(String, crate::stats::Percentiles)> {
        self.stages.iter().map(|(n, h)| (n.clone(), crate::stats::us(h))).collect()
    }
}

/// The worker's stage histograms, shared with whoever writes the report.
pub type SharedStages = Arc<Mutex<InferenceStages>>;

/// Jobs in the pool: one in flight, one being read by the loop, one spare.
const POOL: usize = 3;

struct WorkerShared {
    requests: ArrayQueue<Box<Job>>,
    results: ArrayQueue<Box<Job>>,
    stop: AtomicBool,
    busy: AtomicBool,
}

/// The real inference executor: a worker thread running the policy.
pub struct WorkerExecutor {
    spec: PolicySpec,
    shared: Arc<WorkerShared>,
    free: heapless::Vec<Box<Job>, POOL>,
    delivered: Option<Box<Job>>,
    in_flight: Option<(u64, Stamp)>,
    next_id: u64,
    worker: Option<JoinHandle<()>>,
    thread: Thread,
    stages: SharedStages,
}

impl WorkerExecutor {
    /// Starts the worker thread (named `ganglion-infer`) for `policy`.
    /// `clock` measures the compute time stamped into each chunk. Faults
    /// (late, failing, stalled inference) are injected by wrapping the
    /// policy (`crate::faults`), never here: the deployed worker has no
    /// test hook.
    pub fn spawn(policy: Box<dyn Policy>, clock: Arc<dyn Clock>) -> std::io::Result<WorkerExecutor> {
        Self::spawn_with(policy, clock, None)
    }

    /// [`spawn`](Self::spawn), running `on_start` on the worker thread before
    /// it takes its first request (real-time priority and affinity: they can
    /// only be set from the thread itself).
    pub fn spawn_with(
        policy: Box<dyn Policy>,
        clock: Arc<dyn Clock>,
        on_start: Option<Box<dyn FnOnce() + Send>>,
    ) -> std::io::Result<WorkerExecutor> {
        let spec = policy.spec().clone();
        let shared = Arc::new(WorkerShared {
            requests: ArrayQueue::new(POOL),
            results: ArrayQueue::new(POOL),
            stop: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        });
        let mut free = heapless::Vec::new();
        for _ in 0..POOL {
            // Capacity is POOL: cannot fail.
            let _ = free.push(Job::new(&spec));
        }
        let worker_shared = shared.clone();
        let worker_spec = spec.clone();
        let stages = SharedStages::default();
        let worker_stages = stages.clone();
        let worker = std::thread::Builder::new().name("ganglion-infer".into()).spawn(move || {
            if let Some(hook) = on_start {
                hook();
            }
            worker_main(policy, worker_spec, clock, worker_shared, worker_stages)
        })?;
        let thread = worker.thread().clone();
        Ok(WorkerExecutor {
            spec,
            shared,
            free,
            delivered: None,
            in_flight: None,
            next_id: 1,
            worker: Some(worker),
            thread,
            stages,
        })
    }

    /// The worker's per-stage inference times (for the run report).
    pub fn stages(&self) -> SharedStages {
        self.stages.clone()
    }

    fn recycle_delivered(&mut self) {
        if let Some(job) = self.delivered.take() {
            // At most POOL jobs exist: cannot fail.
            let _ = self.free.push(job);
        }
    }
}

fn worker_main(
    mut policy: Box<dyn Policy>,
    spec: PolicySpec,
    clock: Arc<dyn Clock>,
    shared: Arc<WorkerShared>,
    stages: SharedStages,
) {
    let mut poisoned = false;
    while !shared.stop.load(Ordering::Acquire) {
        let Some(mut job) = shared.requests.pop() else {
            // The loop unparks after every push; the timeout only bounds how
            // long a stop request can go unnoticed.
            std::thread::park_timeout(Duration::from_millis(50));
            continue;
        };
        shared.busy.store(true, Ordering::Release);
        job.prepare(&spec);
        let t0 = clock.now();
        if poisoned {
            job.outcome = Err(InferenceFailure::Panicked);
        } else {
            poisoned = run_policy(policy.as_mut(), &mut job);
        }
        job.chunk.compute_ns = clock.now().saturating_since(t0);
        let (ok, compute_ns) = (job.outcome.is_ok(), job.chunk.compute_ns);
        shared.busy.store(false, Ordering::Release);
        // The loop keeps at most one request in flight, so there is room.
        if shared.results.push(job).is_err() {
            tracing::error!("inference result queue full; result dropped");
        }
        // After the result is out: the loop does not wait for the accounting.
        // The lock is shared only with the report writer, never with the
        // control thread.
        if ok {
            if let Ok(mut s) = stages.lock() {
                s.record("total", compute_ns);
                policy.stage_times(&mut |name, ns| s.record(name, ns));
            }
        }
    }
}

impl InferenceExecutor for WorkerExecutor {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn is_idle(&self) -> bool {
        self.in_flight.is_none() && (!self.free.is_empty() || self.delivered.is_some())
    }

    fn in_flight_since(&self) -> Option<Stamp> {
        self.in_flight.map(|(_, t)| t)
    }

    fn submit(&mut self, obs: &Observation, now: Stamp) -> Result<u64, SubmitError> {
        if self.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        if self.worker.as_ref().is_none_or(|w| w.is_finished()) {
            return Err(SubmitError::Stopped);
        }
        self.recycle_delivered();
        let Some(mut job) = self.free.pop() else {
            return Err(SubmitError::Busy);
        };
        if !copy_observation(&mut job.obs, obs) {
            let _ = self.free.push(job);
            return Err(SubmitError::Shape);
        }
        let id = self.next_id;
        self.next_id += 1;
        job.obs.request_id = id;
        if let Err(job) = self.shared.requests.push(job) {
            let _ = self.free.push(job);
            return Err(SubmitError::Busy);
        }
        self.thread.unpark();
        self.in_flight = Some((id, now));
        Ok(id)
    }

    fn poll(&mut self, _now: Stamp) -> Option<Completion<'_>> {
        self.recycle_delivered();
        let job = self.shared.results.pop()?;
        self.in_flight = None;
        let job = self.delivered.insert(job);
        Some(match job.outcome {
            Ok(()) => Completion::Chunk(&job.chunk),
            Err(failure) => Completion::Failed { request_id: job.obs.request_id, failure },
        })
    }
}

impl Drop for WorkerExecutor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
        if let Some(worker) = self.worker.take() {
            // A policy stuck inside `infer` cannot be interrupted; leave
            // that thread detached rather than hang the caller.
            if !self.shared.busy.load(Ordering::Acquire) {
                let _ = worker.join();
            }
        }
    }
}

/// How long simulated inference takes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyModel {
    /// Every request takes `ns`.
    Fixed {
        /// Latency, ns.
        ns: u64,
    },
    /// Uniform in `[min_ns, max_ns]`, from a seeded generator (splitmix64),
    /// one draw per request.
    Uniform {
        /// Shortest latency, ns.
        min_ns: u64,
        /// Longest latency, ns.
        max_ns: u64,
        /// Generator seed.
        seed: u64,
    },
    /// `compute_ns` on the server plus the round trip over `link`; a lost
    /// message or a reply past the timeout ends the request at the timeout
    /// without a chunk ([`InferenceFailure::NoReply`], as the remote client
    /// reports it).
    Network {
        /// The server's compute time per chunk, ns.
        compute_ns: u64,
        /// The link.
        link: NetworkLink,
        /// Generator seed.
        seed: u64,
    },
}

/// A policy behind a network link (a remote policy server), for
/// simulated-clock runs: what `tc netem` would do to the round trip, where
/// the kernel has no `sch_netem` and a real link cannot be slowed
/// deterministically. Each request and each reply crosses the link once.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetworkLink {
    /// One-way delay, ns (netem's `delay`).
    pub delay_ns: u64,
    /// Each crossing's delay varies uniformly within ± this, ns (netem's
    /// jitter), never below 0.
    pub jitter_ns: u64,
    /// Chance that a crossing loses the message, 0..=1 (netem's `loss`):
    /// the robot hears nothing and gives up at `timeout_ns`.
    pub loss: f64,
    /// How long the robot waits for a reply (`[policy.remote] timeout_ms`),
    /// ns: a reply later than this fails the request too.
    pub timeout_ns: u64,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel::Fixed { ns: 10_000_000 }
    }
}

/// splitmix64: tiny, seeded, good enough to spread latencies.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic inference for simulated-clock runs.
pub struct SimLatencyExecutor {
    policy: Box<dyn Policy>,
    spec: PolicySpec,
    model: LatencyModel,
    rng: u64,
    delay: InjectedDelay,
    job: Box<Job>,
    next_id: u64,
    /// Request in flight: submitted at, ready at (`None`: stalled).
    pending: Option<(Stamp, Option<Stamp>)>,
    /// The request in flight's simulated latency, and whether its reply is
    /// lost.
    pending_outcome: (u64, bool),
    poisoned: bool,
}

impl SimLatencyExecutor {
    /// Wraps `policy`; latencies come from `model`, plus whatever `delay`
    /// injects at submission time.
    pub fn new(policy: Box<dyn Policy>, model: LatencyModel, delay: InjectedDelay) -> Self {
        let spec = policy.spec().clone();
        let rng = match model {
            LatencyModel::Uniform { seed, .. } | LatencyModel::Network { seed, .. } => seed,
            LatencyModel::Fixed { .. } => 0,
        };
        let job = Job::new(&spec);
        SimLatencyExecutor {
            policy,
            spec,
            model,
            rng,
            delay,
            job,
            next_id: 1,
            pending: None,
            pending_outcome: (0, false),
            poisoned: false,
        }
    }

    /// The next request's latency, and whether it fails (lost or too late
    /// on the link: then the latency is the timeout).
    fn next_latency(&mut self) -> (u64, bool) {
        match self.model {
            LatencyModel::Fixed { ns } => (ns, false),
            LatencyModel::Uniform { min_ns, max_ns, .. } => {
                let span = max_ns.saturating_sub(min_ns);
                let r = splitmix64(&mut self.rng);
                (min_ns + if span == u64::MAX { r } else { r % (span + 1) }, false)
            }
            LatencyModel::Network { compute_ns, link, .. } => {
                let mut total = compute_ns;
                let mut lost = false;
                for _ in 0..2 {
                    let u = splitmix64(&mut self.rng) as f64 / u64::MAX as f64;
                    let offset = (2.0 * u - 1.0) * link.jitter_ns as f64;
                    total = total.saturating_add((link.delay_ns as f64 + offset).max(0.0) as u64);
                    lost |= (splitmix64(&mut self.rng) as f64 / u64::MAX as f64) < link.loss;
                }
                if lost || total > link.timeout_ns {
                    (link.timeout_ns, true)
                } else {
                    (total, false)
                }
            }
        }
    }
}

impl InferenceExecutor for SimLatencyExecutor {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    fn in_flight_since(&self) -> Option<Stamp> {
        self.pending.map(|(t, _)| t)
    }

    fn submit(&mut self, obs: &Observation, now: Stamp) -> Result<u64, SubmitError> {
        if self.pending.is_some() {
            return Err(SubmitError::Busy);
        }
        if !copy_observation(&mut self.job.obs, obs) {
            return Err(SubmitError::Shape);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.job.obs.request_id = id;
        self.job.prepare(&self.spec);
        let (latency, failed) = self.next_latency();
        let extra = self.delay.get();
        let ready = if extra == InjectedDelay::STALL { None } else { Some(now.add_nanos(latency).add_nanos(extra)) };
        self.pending = Some((now, ready));
        self.pending_outcome = (latency.saturating_add(extra), failed);
        Ok(id)
    }

    fn poll(&mut self, now: Stamp) -> Option<Completion<'_>> {
        let (_, ready) = self.pending?;
        if ready.is_none_or(|r| now < r) {
            return None;
        }
        self.pending = None;
        // The policy runs when its result is due, so a policy that reads
        // the clock (a split world model rolling over the round trip it
        // took) sees the time its reply arrives.
        let (latency, failed) = self.pending_outcome;
        if self.poisoned {
            self.job.outcome = Err(InferenceFailure::Panicked);
        } else {
            self.poisoned = run_policy(self.policy.as_mut(), &mut self.job);
        }
        if failed {
            // The reply never reached the robot: the request is over.
            self.job.outcome = Err(InferenceFailure::NoReply);
        }
        self.job.chunk.compute_ns = latency;
        let job = &self.job;
        Some(match job.outcome {
            Ok(()) => Completion::Chunk(&job.chunk),
            Err(failure) => Completion::Failed { request_id: job.obs.request_id, failure },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganglion_core::{ActionKind, MonotonicClock};

    fn spec() -> PolicySpec {
        PolicySpec {
            name: "echo".into(),
            n_joints: 2,
            chunk_len: 4,
            step_ns: 10_000_000,
            action_kind: ActionKind::AbsolutePosition,
            cameras: Vec::new(),
            expected_latency_ns: 1_000_000,
            surprise_threshold: None,
            history: 1,
            rolls_at_reply: false,
        }
    }

    /// Echoes the observed position into every step; panics on request 3
    /// when asked to.
    struct Echo {
        spec: PolicySpec,
        panic_on: u64,
    }

    impl Policy for Echo {
        fn spec(&self) -> &PolicySpec {
            &self.spec
        }
        fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
            assert!(obs.request_id != self.panic_on, "test policy panics on request {}", self.panic_on);
            out.set_steps(self.spec.chunk_len);
            for i in 0..out.steps() {
                out.step_mut(i).copy_from_slice(&obs.joints.position);
            }
            Ok(())
        }
    }

    fn obs(v: f64) -> Observation {
        let mut o = Observation::for_spec(&spec());
        o.joints.position.fill(v);
        o
    }

    fn wait_result(ex: &mut WorkerExecutor) -> Result<Vec<f64>, InferenceFailure> {
        for _ in 0..2000 {
            match ex.poll(Stamp::ZERO) {
                Some(Completion::Chunk(c)) => return Ok(c.as_slice().to_vec()),
                Some(Completion::Failed { failure, .. }) => return Err(failure),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        panic!("worker did not answer within 2 s");
    }

    #[test]
    fn worker_round_trips_and_survives_a_panicking_policy() {
        let policy = Box::new(Echo { spec: spec(), panic_on: 3 });
        let mut ex = WorkerExecutor::spawn(policy, Arc::new(MonotonicClock::new())).expect("spawn");
        assert!(ex.is_idle());
        assert_eq!(ex.submit(&obs(0.5), Stamp(1)), Ok(1));
        assert_eq!(ex.submit(&obs(0.5), Stamp(1)), Err(SubmitError::Busy));
        assert_eq!(wait_result(&mut ex), Ok(vec![0.5; 8]));
        assert_eq!(ex.submit(&obs(0.25), Stamp(2)), Ok(2));
        assert_eq!(wait_result(&mut ex), Ok(vec![0.25; 8]));
        assert_eq!(ex.submit(&obs(0.25), Stamp(3)), Ok(3));
        assert_eq!(wait_result(&mut ex), Err(InferenceFailure::Panicked));
        assert_eq!(ex.submit(&obs(0.25), Stamp(4)), Ok(4));
        assert_eq!(wait_result(&mut ex), Err(InferenceFailure::Panicked), "stays disabled after a panic");
    }

    #[test]
    fn the_worker_keeps_a_histogram_per_reported_stage() {
        /// Echo, reporting two stages (one of them twice per inference).
        struct Staged(Echo);
        impl Policy for Staged {
            fn spec(&self) -> &PolicySpec {
                self.0.spec()
            }
            fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
                self.0.infer(obs, out)
            }
            fn stage_times(&self, record: &mut dyn FnMut(&str, u64)) {
                record("preprocess", 2_000);
                record("step", 5_000);
                record("step", 7_000);
            }
        }
        let policy = Box::new(Staged(Echo { spec: spec(), panic_on: 0 }));
        let mut ex = WorkerExecutor::spawn(policy, Arc::new(MonotonicClock::new())).expect("spawn");
        for i in 1..=3 {
            ex.submit(&obs(0.1), Stamp(i)).expect("submit");
            wait_result(&mut ex).expect("chunk");
        }
        // The worker records after handing the result over.
        std::thread::sleep(Duration::from_millis(20));
        let summary = ex.stages().lock().expect("stages").summary_us();
        let names: Vec<&str> = summary.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["total", "preprocess", "step"]);
        let step = &summary[2].1;
        assert!((5.0..=5.01).contains(&step.p50) && (7.0..=7.01).contains(&step.max), "{step:?}");
    }

    #[test]
    fn stalled_worker_stays_busy_and_drop_does_not_hang() {
        /// A policy stuck inside `infer` for good.
        struct Stuck(PolicySpec);
        impl Policy for Stuck {
            fn spec(&self) -> &PolicySpec {
                &self.0
            }
            fn infer(&mut self, _: &Observation, _: &mut ActionChunk) -> Result<(), PolicyError> {
                loop {
                    std::thread::park();
                }
            }
        }
        let mut ex = WorkerExecutor::spawn(Box::new(Stuck(spec())), Arc::new(MonotonicClock::new())).expect("spawn");
        ex.submit(&obs(1.0), Stamp(5)).expect("submit");
        std::thread::sleep(Duration::from_millis(20));
        assert!(ex.poll(Stamp::ZERO).is_none());
        assert!(!ex.is_idle());
        assert_eq!(ex.in_flight_since(), Some(Stamp(5)));
    }

    #[test]
    fn sim_executor_releases_at_request_time_plus_latency() {
        let policy = Box::new(Echo { spec: spec(), panic_on: 0 });
        let delay = InjectedDelay::new();
        let mut ex = SimLatencyExecutor::new(policy, LatencyModel::Fixed { ns: 100 }, delay.clone());
        ex.submit(&obs(0.1), Stamp(1_000)).expect("submit");
        assert!(ex.poll(Stamp(1_099)).is_none());
        assert!(
            matches!(ex.poll(Stamp(1_100)), Some(Completion::Chunk(c)) if c.obs_stamp == Stamp::ZERO && c.request_id == 1)
        );
        delay.set(50);
        ex.submit(&obs(0.1), Stamp(2_000)).expect("submit");
        assert!(ex.poll(Stamp(2_149)).is_none());
        assert!(ex.poll(Stamp(2_150)).is_some());
        delay.stall();
        ex.submit(&obs(0.1), Stamp(3_000)).expect("submit");
        assert!(ex.poll(Stamp(u64::MAX)).is_none());
    }

    #[test]
    fn seeded_latencies_repeat_and_stay_in_range() {
        let draw = |seed| {
            let policy = Box::new(Echo { spec: spec(), panic_on: 0 });
            let mut ex = SimLatencyExecutor::new(
                policy,
                LatencyModel::Uniform { min_ns: 10, max_ns: 20, seed },
                InjectedDelay::new(),
            );
            (0..50).map(|_| ex.next_latency()).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        assert!(a.iter().all(|(l, failed)| (10..=20).contains(l) && !failed));
    }

    fn network(link: NetworkLink) -> SimLatencyExecutor {
        let policy = Box::new(Echo { spec: spec(), panic_on: 0 });
        SimLatencyExecutor::new(
            policy,
            LatencyModel::Network { compute_ns: 1_000, link, seed: 3 },
            InjectedDelay::new(),
        )
    }

    /// A round trip is the compute plus two crossings of `delay ± jitter`;
    /// a lost message, or a reply later than the timeout, fails the request
    /// at the timeout (as the remote client gives up), and about `loss` of
    /// the crossings are lost.
    #[test]
    fn a_network_link_delays_jitters_and_loses() {
        let link = NetworkLink { delay_ns: 10_000, jitter_ns: 2_000, loss: 0.0, timeout_ns: 100_000 };
        let mut ex = network(link);
        let draws: Vec<(u64, bool)> = (0..1000).map(|_| ex.next_latency()).collect();
        assert!(draws.iter().all(|&(l, failed)| !failed && (17_000..=25_000).contains(&l)), "{:?}", &draws[..5]);
        let mean = draws.iter().map(|d| d.0 as f64).sum::<f64>() / 1000.0;
        assert!((mean - 21_000.0).abs() < 300.0, "mean {mean}");

        let mut ex = network(NetworkLink { delay_ns: 60_000, ..link });
        assert_eq!(ex.next_latency(), (100_000, true), "a reply past the timeout is a failure");
        ex.submit(&obs(0.1), Stamp(0)).expect("submit");
        assert!(ex.poll(Stamp(99_999)).is_none());
        assert!(matches!(ex.poll(Stamp(100_000)), Some(Completion::Failed { failure: InferenceFailure::NoReply, .. })));

        let mut ex = network(NetworkLink { loss: 0.05, ..link });
        let failed = (0..4000).filter(|_| ex.next_latency().1).count();
        // Two crossings at 5 %: 1 − 0.95² = 9.75 % of the requests.
        assert!((320..460).contains(&failed), "{failed} of 4000 failed");
    }
}
