//! Chunk executor: turns policy-rate action chunks into a smooth,
//! control-rate trajectory.
//!
//! A chunk holds H actions; action `i` is meant for `obs_stamp + i·step_ns`,
//! the time of the observation it was computed from plus `i` policy steps.
//! [`ChunkExecutor::accept`] turns a chunk into the *plan*:
//!
//! 1. **align**: steps due before `now + step/2` are overtaken by inference
//!    latency and skipped (there is no time left to reach them smoothly);
//! 2. **blend** with the plan already executing ([`BlendMode`]): temporal
//!    ensembling as in ACT, a frozen prefix as in real-time chunking, or
//!    replacement;
//! 3. **seam check**: walking from the current plan's position one policy
//!    step before the first new knot, no step between consecutive knots may
//!    exceed the largest step inside the chunk (per joint, with a floor of
//!    [`ExecutorConfig::min_seam_step`]); larger ones are slew-limited into
//!    a ramp that rejoins the chunk as soon as it can;
//! 4. **head knot**: the plan starts at `now` with the position *and
//!    velocity* the old plan had at `now`, so switching plans is C¹.
//!
//! [`ChunkExecutor::action_at`] interpolates the knots with cubic Hermite
//! splines (Catmull-Rom tangents), which is C¹: position and velocity are
//! continuous everywhere, including at knots and plan switches.
//!
//! Everything is preallocated in [`ChunkExecutor::new`]; `accept`,
//! `action_at` and the rest do bounded work and never allocate or panic.

use ganglion_core::{
    steps_nearest, ActionChunk, ActionKind, JointLimit, JointVec, Stamp, MAX_COMMITTED_STEPS, MAX_JOINTS,
};

/// How a new chunk is merged with the plan already executing.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BlendMode {
    /// Temporal ensembling (ACT): all predictions for one time are averaged,
    /// the `i`-th oldest weighted `exp(-decay·i)`, so older predictions
    /// weigh more and the motion stays consistent.
    Ensemble {
        /// Weight decay per newer prediction (ACT's `k`, e.g. 0.01); 0
        /// averages equally. Must be finite and ≥ 0.
        decay: f64,
    },
    /// Real-time-chunking style: the first `steps` upcoming knots of the
    /// current plan are kept unchanged (the robot is committed to them while
    /// the new chunk was being computed); the new chunk takes over after.
    FrozenPrefix {
        /// Number of upcoming policy steps kept from the current plan.
        steps: usize,
    },
    /// The new chunk replaces the plan (still seam-checked and C¹-joined).
    Replace,
}

/// `[executor]` section of the robot profile.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// How overlapping chunks are merged.
    pub blend: BlendMode,
    /// Safety margin added to the learned latency p99 when deciding to
    /// request the next chunk, ns.
    pub latency_margin_ns: u64,
    /// Minimum time between two requests, ns (0: whenever the horizon is short).
    pub min_request_interval_ns: u64,
    /// Request a fresh chunk once the last request is this old, even when
    /// the plan still covers the latency, ns (0: only when the horizon runs
    /// short). Replanning every policy step closes the loop at the policy
    /// rate (with temporal ensembling, as ACT runs) instead of executing
    /// most of each chunk open-loop, and feeds the world model's surprise
    /// monitor an observation per step.
    pub replan_interval_ns: u64,
    /// Smallest per-step seam ramp (rad per policy step), so a chunk that
    /// barely moves can still be joined when it starts away from the plan.
    pub min_seam_step: f64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            blend: BlendMode::Ensemble { decay: 0.01 },
            latency_margin_ns: 5_000_000,
            min_request_interval_ns: 0,
            replan_interval_ns: 0,
            min_seam_step: 0.005,
        }
    }
}

/// Why an [`ExecutorConfig`] is unusable; names the offending key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorConfigError {
    /// `blend.decay` is negative or non-finite.
    Decay,
    /// `min_seam_step` is not a finite number > 0.
    MinSeamStep,
}

impl ExecutorConfigError {
    /// The profile key at fault.
    pub fn key(&self) -> String {
        match self {
            ExecutorConfigError::Decay => "executor.blend.decay".into(),
            ExecutorConfigError::MinSeamStep => "executor.min_seam_step".into(),
        }
    }

    /// What would have been accepted.
    pub fn expected(&self) -> &'static str {
        match self {
            ExecutorConfigError::Decay => "a finite number >= 0",
            ExecutorConfigError::MinSeamStep => "a finite number > 0 (rad per policy step)",
        }
    }
}

super::config_error!(ExecutorConfigError);

impl ExecutorConfig {
    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), ExecutorConfigError> {
        if let BlendMode::Ensemble { decay } = self.blend {
            if !(decay.is_finite() && decay >= 0.0) {
                return Err(ExecutorConfigError::Decay);
            }
        }
        if !(self.min_seam_step.is_finite() && self.min_seam_step > 0.0) {
            return Err(ExecutorConfigError::MinSeamStep);
        }
        Ok(())
    }
}

/// Facts about an accepted chunk, for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AcceptInfo {
    /// Leading steps already overtaken by latency and skipped.
    pub skipped: usize,
    /// Knots of the new plan after the head.
    pub kept: usize,
    /// Whether the seam check had to slew-limit (ramp) the new plan.
    pub ramped: bool,
    /// Latency recorded for this chunk (`now − obs_stamp`), ns.
    pub latency_ns: u64,
    /// The jump at the chunk boundary, rad: the largest per-joint distance
    /// between the chunk's first executed action and where the plan it
    /// replaces was going to be at that time, before blending and the seam
    /// ramp. What real-time chunking keeps small. `None` when no plan was
    /// executing there (the first chunk, after a starved gap).
    pub seam_jump: Option<f64>,
}

/// Why a chunk was not accepted. The current plan is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRejected {
    /// Wrong joint count, or more steps than the executor was built for.
    #[error("chunk shape does not match the executor")]
    Shape,
    /// No steps, or a zero step period.
    #[error("chunk is empty or has a zero step period")]
    Empty,
    /// An action (or the base position of delta actions) is NaN or infinite.
    #[error("chunk contains non-finite values")]
    NonFinite,
    /// The observation stamp lies after `now`.
    #[error("chunk observation stamp lies in the future")]
    FromFuture,
    /// Computed from an observation older than the current plan's.
    #[error("chunk is older than the current plan")]
    OutOfOrder,
    /// Every step is already overtaken by latency.
    #[error("every step of the chunk is already overtaken")]
    Expired,
    /// Delta actions arrived through [`ChunkExecutor::accept`], without the
    /// observed joint position they are relative to.
    #[error("delta actions need the observed joint position")]
    NeedsBase,
    /// An action (as an absolute target) lies beyond a joint's position
    /// range by more than the tolerance set with
    /// [`ChunkExecutor::set_position_bounds`]: a policy fault, refused whole
    /// rather than smoothed into the range by the seam ramp and the shield.
    #[error("an action lies beyond a joint's position limits")]
    BeyondLimits,
}

/// Samples in the latency window.
const LATENCY_WINDOW: usize = 128;
/// Below this many samples the declared latency still bounds the p99 from
/// below: a handful of fast samples says little about the tail. The median
/// (the expected latency, which sets how many actions are committed for
/// latency compensation) is the measured one from the first sample: the
/// declared figure only stands in before any chunk came back.
const LATENCY_WARMUP: usize = 8;

/// Knots of one plan: `t[0]` is the head (the plan's start), the rest lie on
/// the chunk's policy-step grid. Tangents `v` are in rad/s.
#[derive(Debug, Clone)]
struct Plan {
    len: usize,
    src_obs: Stamp,
    /// The seam check's per-joint step limit of the chunk behind the plan.
    max_step: JointVec,
    t: Vec<u64>,
    q: Vec<JointVec>,
    v: Vec<JointVec>,
    /// Ensemble bookkeeping per knot: sum of weights and number of predictions merged.
    wsum: Vec<f64>,
    count: Vec<u32>,
}

impl Plan {
    fn with_capacity(cap: usize, n: usize) -> Self {
        Plan {
            len: 0,
            src_obs: Stamp::ZERO,
            max_step: JointVec::zeros(n),
            t: vec![0; cap],
            q: vec![JointVec::zeros(n); cap],
            v: vec![JointVec::zeros(n); cap],
            wsum: vec![0.0; cap],
            count: vec![0; cap],
        }
    }

    fn end(&self) -> Option<u64> {
        self.len.checked_sub(1).map(|i| self.t[i])
    }

    /// Index `j` of the segment `[t[j], t[j+1]]` containing `t` (`t` within the plan).
    fn segment(&self, t: u64) -> usize {
        if self.len < 3 || t <= self.t[1] {
            return 0;
        }
        let step = self.t[2] - self.t[1];
        let j = 1 + ((t - self.t[1]) / step.max(1)) as usize;
        j.min(self.len - 2)
    }

    /// Position and velocity at `t`, clamped to the plan's span (holding
    /// the end position at zero velocity beyond it). `None` without a plan.
    fn eval(&self, t: u64, pos: &mut JointVec, vel: &mut JointVec) -> bool {
        if self.len == 0 {
            return false;
        }
        if self.len == 1 || t >= self.t[self.len - 1] {
            let last = self.len - 1;
            *pos = self.q[last];
            *vel = if t == self.t[last] { self.v[last] } else { JointVec::zeros(pos.len()) };
            return true;
        }
        let t = t.max(self.t[0]);
        let j = self.segment(t);
        let h = (self.t[j + 1] - self.t[j]) as f64 * 1e-9;
        let s = (t - self.t[j]) as f64 * 1e-9 / h;
        let (s2, s3) = (s * s, s * s * s);
        let (h00, h10, h01, h11) = (2.0 * s3 - 3.0 * s2 + 1.0, s3 - 2.0 * s2 + s, -2.0 * s3 + 3.0 * s2, s3 - s2);
        let (d00, d10, d01, d11) =
            (6.0 * s2 - 6.0 * s, 3.0 * s2 - 4.0 * s + 1.0, -6.0 * s2 + 6.0 * s, 3.0 * s2 - 2.0 * s);
        let (q0, q1, v0, v1) = (&self.q[j], &self.q[j + 1], &self.v[j], &self.v[j + 1]);
        *pos = *q0;
        *vel = *v0;
        for k in 0..pos.len() {
            pos[k] = h00 * q0[k] + h10 * h * v0[k] + h01 * q1[k] + h11 * h * v1[k];
            vel[k] = (d00 * q0[k] + d01 * q1[k]) / h + d10 * v0[k] + d11 * v1[k];
        }
        true
    }

    /// Ensemble weight and prediction count of the knot at or before `t`;
    /// zero beyond the plan's end.
    fn weight_at(&self, t: u64) -> (f64, u32) {
        match self.end() {
            Some(end) if t <= end && self.len >= 2 => {
                let j = self.segment(t.max(self.t[0]));
                // The head carries no ensemble weight of its own: use the
                // first grid knot's.
                let j = if j == 0 { 1 } else { j };
                (self.wsum[j], self.count[j])
            }
            _ => (0.0, 0),
        }
    }

    /// Catmull-Rom tangents from the knot positions (one-sided at the end).
    fn compute_tangents(&mut self) {
        for j in 1..self.len {
            let (a, b) = if j + 1 < self.len { (j - 1, j + 1) } else { (j - 1, j) };
            let dt = (self.t[b] - self.t[a]) as f64 * 1e-9;
            let (qa, qb) = (self.q[a], self.q[b]);
            let v = &mut self.v[j];
            for k in 0..v.len() {
                v[k] = if dt > 0.0 { (qb[k] - qa[k]) / dt } else { 0.0 };
            }
        }
    }
}

/// Online estimate of inference latency over a fixed window.
#[derive(Debug, Clone)]
struct LatencyEstimator {
    samples: [u64; LATENCY_WINDOW],
    next: usize,
    filled: usize,
    declared: u64,
    p50: u64,
    p99: u64,
}

impl LatencyEstimator {
    fn new(declared: u64) -> Self {
        LatencyEstimator { samples: [0; LATENCY_WINDOW], next: 0, filled: 0, declared, p50: declared, p99: declared }
    }

    fn observe(&mut self, ns: u64) {
        self.samples[self.next] = ns;
        self.next = (self.next + 1) % LATENCY_WINDOW;
        self.filled = (self.filled + 1).min(LATENCY_WINDOW);
        // Sorting a stack copy once per chunk keeps queries O(1) per tick.
        let mut sorted = [0u64; LATENCY_WINDOW];
        let n = self.filled;
        sorted[..n].copy_from_slice(&self.samples[..n]);
        sorted[..n].sort_unstable();
        let rank99 = (n * 99).div_ceil(100).max(1) - 1;
        let (p50, p99) = (sorted[(n - 1) / 2], sorted[rank99]);
        self.p50 = p50;
        self.p99 = if n < LATENCY_WARMUP { p99.max(self.declared) } else { p99 };
    }
}

/// Executes action chunks: aligns, blends, seam-checks and interpolates
/// them (see the module docs).
///
/// Invariants: the trajectory returned by [`action_at`](Self::action_at) is
/// C¹ in time, including across accepted chunks; a rejected chunk leaves the
/// plan untouched; after [`new`](Self::new) no method allocates.
#[derive(Debug, Clone)]
pub struct ChunkExecutor {
    cfg: ExecutorConfig,
    n: usize,
    max_len: usize,
    plan: Plan,
    scratch: Plan,
    abs: Vec<JointVec>,
    /// Where the robot was last commanded by this executor, or where it is
    /// after [`reset_at`](Self::reset_at): the start of a plan that has no
    /// predecessor.
    anchor: Option<JointVec>,
    latency: LatencyEstimator,
    last_request: Option<Stamp>,
    starved: u64,
    /// Per joint `[min, max]` an absolute target may take (limits widened by
    /// the tolerance); empty: unchecked.
    bounds: Vec<(f64, f64)>,
}

impl ChunkExecutor {
    /// An executor for `n_joints` joints and chunks of at most
    /// `max_chunk_len` steps. `control_period_ns` is the loop's period (kept
    /// for reports; interpolation works at any `t`); `initial_latency_ns`
    /// (the bundle's declared latency) seeds the latency estimate.
    /// Preallocates everything.
    pub fn new(
        cfg: &ExecutorConfig,
        n_joints: usize,
        max_chunk_len: usize,
        control_period_ns: u64,
        initial_latency_ns: u64,
    ) -> Self {
        let _ = control_period_ns;
        let n = n_joints.min(MAX_JOINTS);
        let max_len = max_chunk_len.max(1);
        ChunkExecutor {
            cfg: cfg.clone(),
            n,
            max_len,
            plan: Plan::with_capacity(max_len + 1, n),
            scratch: Plan::with_capacity(max_len + 1, n),
            abs: vec![JointVec::zeros(n); max_len],
            anchor: None,
            latency: LatencyEstimator::new(initial_latency_ns),
            last_request: None,
            starved: 0,
            bounds: Vec::new(),
        }
    }

    /// Refuse chunks with an action beyond `limits` by more than `tolerance`
    /// rad ([`ChunkRejected::BeyondLimits`]). Call before the first
    /// [`accept`](Self::accept): it allocates.
    pub fn set_position_bounds(&mut self, limits: &[JointLimit], tolerance: f64) {
        let tol = tolerance.max(0.0);
        self.bounds = limits.iter().take(self.n).map(|l| (l.position_min - tol, l.position_max + tol)).collect();
    }

    /// Accepts an absolute-position chunk; delta chunks are refused with
    /// [`ChunkRejected::NeedsBase`] (use [`accept_with_base`](Self::accept_with_base)).
    pub fn accept(&mut self, chunk: &ActionChunk, now: Stamp) -> Result<AcceptInfo, ChunkRejected> {
        self.accept_inner(chunk, None, now)
    }

    /// Accepts a chunk. `base` is the observed joint position at
    /// `chunk.obs_stamp` (the observation's joint positions): delta actions
    /// are added to it, and a plan with no predecessor starts from it.
    pub fn accept_with_base(
        &mut self,
        chunk: &ActionChunk,
        base: &JointVec,
        now: Stamp,
    ) -> Result<AcceptInfo, ChunkRejected> {
        self.accept_inner(chunk, Some(base), now)
    }

    fn accept_inner(
        &mut self,
        chunk: &ActionChunk,
        base: Option<&JointVec>,
        now: Stamp,
    ) -> Result<AcceptInfo, ChunkRejected> {
        let n = self.n;
        let steps = chunk.steps();
        if chunk.n_joints() != n || steps > self.max_len {
            return Err(ChunkRejected::Shape);
        }
        if steps == 0 || chunk.step_ns == 0 {
            return Err(ChunkRejected::Empty);
        }
        if !chunk.is_finite() {
            return Err(ChunkRejected::NonFinite);
        }
        let base = base.filter(|b| b.len() == n);
        if base.is_some_and(|b| !b.is_finite()) {
            return Err(ChunkRejected::NonFinite);
        }
        if chunk.obs_stamp > now {
            return Err(ChunkRejected::FromFuture);
        }
        if self.plan.len > 0 && chunk.obs_stamp < self.plan.src_obs {
            return Err(ChunkRejected::OutOfOrder);
        }
        // Lateness is what the request timing must learn, so it is recorded
        // even when every step turns out to be overtaken.
        let latency_ns = now.saturating_since(chunk.obs_stamp);
        self.observe_latency(latency_ns);

        // Absolute targets and the largest in-chunk step per joint.
        for i in 0..steps {
            let row = chunk.step(i);
            let a = &mut self.abs[i];
            match (chunk.kind, base) {
                (ActionKind::AbsolutePosition, _) => a.copy_from_slice(row),
                (ActionKind::DeltaPosition, Some(b)) => {
                    for k in 0..n {
                        a[k] = b[k] + row[k];
                    }
                }
                (ActionKind::DeltaPosition, None) => return Err(ChunkRejected::NeedsBase),
            }
        }
        // A policy asking for a position far outside the joint's range is
        // faulty: refuse the chunk before the seam ramp smooths it (a chunk
        // uniformly offset by 10 rad would otherwise be ramped toward the
        // limit step by step and never trip the shield).
        let beyond = self.abs[..steps]
            .iter()
            .any(|a| self.bounds.iter().enumerate().any(|(k, &(lo, hi))| a[k] < lo || a[k] > hi));
        if beyond {
            return Err(ChunkRejected::BeyondLimits);
        }
        let mut max_step = JointVec::splat(n, self.cfg.min_seam_step.max(0.0));
        for i in 1..steps {
            for k in 0..n {
                max_step[k] = max_step[k].max((self.abs[i][k] - self.abs[i - 1][k]).abs());
            }
        }

        // Align: the first step due at least half a policy step after now.
        let step = chunk.step_ns;
        let obs = chunk.obs_stamp.as_nanos();
        let elapsed = now.saturating_since(chunk.obs_stamp);
        let first = elapsed.saturating_add(step / 2).div_ceil(step);
        if first >= steps as u64 {
            return Err(ChunkRejected::Expired);
        }
        let first = first as usize;
        let t_of = |i: usize| obs.saturating_add(i as u64 * step);

        // Head knot: where the executing plan is at `now` (C¹ switch), else
        // the anchor, the base, or the first action, at rest.
        let mut head_q = JointVec::zeros(n);
        let mut head_v = JointVec::zeros(n);
        let old = &self.plan;
        let has_old = old.len > 0;
        if has_old {
            old.eval(now.as_nanos(), &mut head_q, &mut head_v);
        } else if let Some(a) = self.anchor.as_ref().or(base) {
            head_q = *a;
        } else {
            head_q = self.abs[first];
        }
        // Seam reference: one policy step before the first new knot.
        let mut seam_ref = head_q;
        let mut seam_jump = None;
        if has_old {
            let mut scratch_v = JointVec::zeros(n);
            old.eval(t_of(first).saturating_sub(step), &mut seam_ref, &mut scratch_v);
            if old.end().is_some_and(|end| t_of(first) <= end) {
                let mut there = JointVec::zeros(n);
                old.eval(t_of(first), &mut there, &mut scratch_v);
                seam_jump = Some((0..n).map(|k| (self.abs[first][k] - there[k]).abs()).fold(0.0, f64::max));
            }
        }

        // Blend onto the new grid.
        let new = &mut self.scratch;
        new.len = 0;
        new.src_obs = chunk.obs_stamp;
        new.max_step = max_step;
        new.t[0] = now.as_nanos();
        new.q[0] = head_q;
        new.v[0] = head_v;
        new.wsum[0] = 0.0;
        new.count[0] = 0;
        let mut frozen = 0usize;
        let mut old_q = JointVec::zeros(n);
        let mut old_v = JointVec::zeros(n);
        for (j, i) in (first..steps).enumerate() {
            let t = t_of(i);
            let slot = j + 1;
            new.t[slot] = t;
            new.q[slot] = self.abs[i];
            new.wsum[slot] = 1.0;
            new.count[slot] = 1;
            let covered = has_old && old.end().is_some_and(|end| t <= end);
            if !covered {
                continue;
            }
            match self.cfg.blend {
                BlendMode::Replace => {}
                BlendMode::Ensemble { decay } => {
                    let (w_old, c_old) = old.weight_at(t);
                    if w_old > 0.0 {
                        old.eval(t, &mut old_q, &mut old_v);
                        let w_new = (-decay.max(0.0) * f64::from(c_old)).exp();
                        let total = w_old + w_new;
                        let q = &mut new.q[slot];
                        for k in 0..n {
                            q[k] = (w_old * old_q[k] + w_new * q[k]) / total;
                        }
                        new.wsum[slot] = total;
                        new.count[slot] = c_old.saturating_add(1);
                    }
                }
                BlendMode::FrozenPrefix { steps: keep } => {
                    if j < keep && frozen == j {
                        old.eval(t, &mut new.q[slot], &mut old_v);
                        frozen += 1;
                    }
                }
            }
        }
        new.len = steps - first + 1;

        // Seam check: slew-limit every step from the seam on to the largest
        // in-chunk step; frozen knots are the old plan's and stay as they are.
        let mut prev = if frozen == 0 { seam_ref } else { new.q[frozen] };
        let mut ramped = false;
        for slot in (frozen + 1)..new.len {
            let q = &mut new.q[slot];
            for k in 0..n {
                let d = q[k] - prev[k];
                let lim = max_step[k];
                if d.abs() > lim {
                    q[k] = prev[k] + lim.copysign(d);
                    ramped = true;
                }
            }
            prev = *q;
        }
        new.compute_tangents();
        std::mem::swap(&mut self.plan, &mut self.scratch);
        Ok(AcceptInfo { skipped: first, kept: steps - first, ramped, latency_ns, seam_jump })
    }

    /// The planned position and velocity (rad/s) at `t`. Returns false when
    /// no plan covers `t` (starved; counted): then `pos` holds the last
    /// planned position (or is left unchanged without any plan) and `vel` zeros.
    /// A `t` before the plan's start gets the start.
    pub fn action_at(&mut self, t: Stamp, pos: &mut JointVec, vel: &mut JointVec) -> bool {
        let covered = self.plan.end().is_some_and(|end| t.as_nanos() <= end);
        if !covered {
            self.starved += 1;
            if self.plan.len > 0 {
                *pos = self.plan.q[self.plan.len - 1];
            } else if let Some(a) = &self.anchor {
                *pos = *a;
            }
            *vel = JointVec::zeros(pos.len());
            return false;
        }
        self.plan.eval(t.as_nanos(), pos, vel);
        self.anchor = Some(*pos);
        true
    }

    /// Joins the plan from `pos` moving at `vel` at `now`, as if the plan's
    /// upcoming knots had just arrived as a chunk: the knots due before
    /// `now + step/2` are dropped, the new head is `(now, pos, vel)` (C¹ with
    /// whatever commanded `pos` until now) and the seam check ramps from
    /// `pos` at the chunk's own step size. Without a plan (or with nothing
    /// left of it) the plan is forgotten and `pos` becomes the anchor.
    ///
    /// The loop calls this when the policy takes over from the fallback:
    /// the plan's clock kept running while the fallback drove, so its
    /// position at `now` can lie far from the command in force; joining
    /// turns that step into a ramp within the chunk's own speed.
    pub fn rejoin(&mut self, now: Stamp, pos: &JointVec, vel: &JointVec) {
        let n = self.n;
        let (pos, vel) = if pos.len() == n && pos.is_finite() && vel.len() == n && vel.is_finite() {
            (*pos, *vel)
        } else {
            return;
        };
        let t = now.as_nanos();
        let old = &self.plan;
        // Grid knots are 1..len; their spacing is the policy step.
        let step = if old.len >= 3 { old.t[2] - old.t[1] } else { 0 };
        let first = (1..old.len).find(|&i| old.t[i] >= t.saturating_add(step / 2));
        let Some(first) = first else {
            self.reset_at(&pos);
            return;
        };
        let new = &mut self.scratch;
        new.src_obs = old.src_obs;
        new.max_step = old.max_step;
        new.t[0] = t;
        new.q[0] = pos;
        new.v[0] = vel;
        new.wsum[0] = 0.0;
        new.count[0] = 0;
        let kept = old.len - first;
        for j in 0..kept {
            new.t[j + 1] = old.t[first + j];
            new.q[j + 1] = old.q[first + j];
            new.wsum[j + 1] = old.wsum[first + j];
            new.count[j + 1] = old.count[first + j];
        }
        new.len = kept + 1;
        let mut prev = pos;
        for slot in 1..new.len {
            let q = &mut new.q[slot];
            for k in 0..n {
                let d = q[k] - prev[k];
                let lim = new.max_step[k];
                if d.abs() > lim {
                    q[k] = prev[k] + lim.copysign(d);
                }
            }
            prev = *q;
        }
        new.compute_tangents();
        std::mem::swap(&mut self.plan, &mut self.scratch);
        self.anchor = Some(pos);
    }

    /// Time the plan still covers after `now`, ns (0 without a plan).
    pub fn remaining_horizon_ns(&self, now: Stamp) -> u64 {
        self.plan.end().map_or(0, |end| end.saturating_sub(now.as_nanos()))
    }

    /// Whether to request the next chunk: the remaining horizon is shorter
    /// than the learned latency p99 plus the margin, and the last request
    /// (see [`mark_requested`](Self::mark_requested)) or accepted
    /// observation is at least `min_request_interval_ns` old; or, with
    /// `replan_interval_ns`, once the last request is that old.
    pub fn should_request(&self, now: Stamp) -> bool {
        let last = match (self.last_request, self.plan.len > 0) {
            (Some(r), true) => Some(r.max(self.plan.src_obs)),
            (Some(r), false) => Some(r),
            (None, true) => Some(self.plan.src_obs),
            (None, false) => None,
        };
        let need = self.latency.p99.saturating_add(self.cfg.latency_margin_ns);
        let replan = self.cfg.replan_interval_ns > 0
            && last.is_some_and(|l| now.saturating_since(l) >= self.cfg.replan_interval_ns);
        if self.remaining_horizon_ns(now) >= need && !replan {
            return false;
        }
        last.is_none_or(|l| now.saturating_since(l) >= self.cfg.min_request_interval_ns)
    }

    /// Notes that an observation taken at `now` was submitted (for the
    /// minimum request interval).
    pub fn mark_requested(&mut self, now: Stamp) {
        self.last_request = Some(now);
    }

    /// Records one inference latency (observation to result), ns.
    /// [`accept`](Self::accept) calls this itself.
    pub fn observe_latency(&mut self, ns: u64) {
        self.latency.observe(ns);
    }

    /// Learned latency p99 over the last 128 chunks, ns (never below the
    /// declared latency during the first 8).
    pub fn latency_p99_ns(&self) -> u64 {
        self.latency.p99
    }

    /// Learned median latency, ns: the expected latency (the declared one
    /// until a chunk came back, then measured).
    pub fn latency_p50_ns(&self) -> u64 {
        self.latency.p50
    }

    /// The plan's absolute targets at `obs_stamp + (i+1)·step_ns` for the
    /// whole number of steps nearest the expected (median) latency, or with
    /// `to_reply` ([`ganglion_core::PolicySpec::rolls_at_reply`]: the policy
    /// picks how many when its reply arrives) for as many as fit; at most
    /// [`MAX_COMMITTED_STEPS`]; beyond the plan's end its last position.
    /// Empty without a plan. A world model rolls its latent over these.
    pub fn committed_steps(
        &self,
        obs_stamp: Stamp,
        step_ns: u64,
        to_reply: bool,
        out: &mut heapless::Vec<JointVec, MAX_COMMITTED_STEPS>,
    ) {
        out.clear();
        if self.plan.len == 0 || step_ns == 0 {
            return;
        }
        let count = if to_reply { MAX_COMMITTED_STEPS } else { steps_nearest(self.latency.p50, step_ns) };
        let count = count.min(MAX_COMMITTED_STEPS);
        let mut pos = JointVec::zeros(self.n);
        let mut vel = JointVec::zeros(self.n);
        for i in 0..count {
            let t = obs_stamp.as_nanos().saturating_add((i as u64 + 1).saturating_mul(step_ns));
            self.plan.eval(t, &mut pos, &mut vel);
            if out.push(pos).is_err() {
                break;
            }
        }
    }

    /// Forgets the plan (and where it left the robot); keeps the learned
    /// latency and the counters.
    pub fn reset(&mut self) {
        self.plan.len = 0;
        self.anchor = None;
        self.last_request = None;
    }

    /// Forgets the plan; the next one starts from `pos` at rest (e.g. the
    /// command in force when the loop returns from fallback).
    pub fn reset_at(&mut self, pos: &JointVec) {
        self.reset();
        if pos.len() == self.n && pos.is_finite() {
            self.anchor = Some(*pos);
        }
    }

    /// Calls of [`action_at`](Self::action_at) that found no plan.
    pub fn starved_ticks(&self) -> u64 {
        self.starved
    }

    /// The plan's end (the last knot's time), if any.
    pub fn plan_end(&self) -> Option<Stamp> {
        self.plan.end().map(Stamp::from_nanos)
    }

    /// The plan's knots (head first), for inspection and tests.
    pub fn knots(&self) -> impl Iterator<Item = (Stamp, &JointVec)> + '_ {
        (0..self.plan.len).map(|i| (Stamp::from_nanos(self.plan.t[i]), &self.plan.q[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: u64 = 100_000_000;

    /// A 3-joint chunk of `steps` absolute targets moving joint 0 by `rate`
    /// rad per step from `start`.
    fn chunk(obs: Stamp, start: f64, rate: f64, steps: usize) -> ActionChunk {
        let mut c = ActionChunk::with_capacity(8, 3);
        c.set_steps(steps);
        for i in 0..steps {
            c.step_mut(i).copy_from_slice(&[start + rate * i as f64, 0.0, 0.0]);
        }
        c.obs_stamp = obs;
        c.step_ns = STEP;
        c.kind = ActionKind::AbsolutePosition;
        c
    }

    /// After the plan ran on without being followed, `rejoin` starts it at
    /// the given position (C¹ head) and ramps back to it at the chunk's
    /// own step size instead of stepping.
    #[test]
    fn rejoin_starts_the_plan_at_the_command_in_force() {
        let mut ex = ChunkExecutor::new(&ExecutorConfig::default(), 3, 8, 10_000_000, 5_000_000);
        let t0 = Stamp::from_nanos(1_000_000_000);
        ex.reset_at(&JointVec::from_slice(&[0.0, 0.0, 0.0]).unwrap());
        ex.accept(&chunk(t0, 0.0, 0.1, 8), t0.add_nanos(5_000_000)).expect("accepted");
        // 250 ms later the arm is still at 0 (the fallback held it).
        let now = t0.add_nanos(250_000_000);
        let (mut p, mut v) = (JointVec::zeros(3), JointVec::zeros(3));
        ex.action_at(now, &mut p, &mut v);
        assert!(p[0] > 0.2, "the plan ran on: {}", p[0]);
        let here = JointVec::from_slice(&[0.0, 0.0, 0.0]).unwrap();
        ex.rejoin(now, &here, &JointVec::zeros(3));
        assert!(ex.action_at(now, &mut p, &mut v));
        assert!(p[0].abs() < 1e-12 && v[0].abs() < 1e-12, "starts at the command in force: {p:?} {v:?}");
        // Knots after the head never step more than the chunk's own 0.1 rad.
        let knots: Vec<f64> = ex.knots().map(|(_, q)| q[0]).collect();
        for w in knots.windows(2) {
            assert!((w[1] - w[0]).abs() <= 0.1 + 1e-12, "knots {knots:?}");
        }
        assert!(knots.len() >= 3, "the rest of the plan is kept: {knots:?}");
        // Nothing left to join: the plan is forgotten, the position anchors the next one.
        ex.rejoin(t0.add_nanos(2_000_000_000), &here, &JointVec::zeros(3));
        assert_eq!(ex.plan_end(), None);
    }

    /// A chunk asking for a position beyond a joint's range by more than
    /// the tolerance is refused whole and the plan kept; one within the
    /// tolerance is accepted (the shield saturates it). Before the rule, a
    /// chunk 10 rad off was ramped toward the limit and never tripped.
    #[test]
    fn chunks_beyond_the_position_limits_are_refused_whole() {
        let lim = JointLimit { position_min: -1.0, position_max: 1.0, velocity: 2.0, acceleration: 10.0, jerk: 100.0 };
        let mut ex = ChunkExecutor::new(&ExecutorConfig::default(), 3, 8, 10_000_000, 5_000_000);
        ex.set_position_bounds(&[lim; 3], 0.05);
        let t0 = Stamp::from_nanos(1_000_000_000);
        ex.reset_at(&JointVec::zeros(3));
        ex.accept(&chunk(t0, 0.0, 0.1, 8), t0.add_nanos(5_000_000)).expect("inside the limits");
        let before: Vec<(Stamp, JointVec)> = ex.knots().map(|(t, q)| (t, *q)).collect();
        let t1 = t0.add_nanos(STEP);
        let far = chunk(t1, 10.0, 0.0, 8);
        assert_eq!(ex.accept(&far, t1.add_nanos(5_000_000)), Err(ChunkRejected::BeyondLimits));
        let after: Vec<(Stamp, JointVec)> = ex.knots().map(|(t, q)| (t, *q)).collect();
        assert_eq!(before, after, "a refused chunk changed the plan");
        // The last step ends 0.04 rad past the limit: within tolerance.
        let edge = chunk(t1, 0.34, 0.1, 8);
        ex.accept(&edge, t1.add_nanos(5_000_000)).expect("within the tolerance");
        let past = chunk(t1, 0.36, 0.1, 8);
        assert_eq!(ex.accept(&past, t1.add_nanos(5_000_000)), Err(ChunkRejected::BeyondLimits));
    }

    /// With `replan_interval_ns`, a chunk is requested once the last request
    /// is that old even though the plan still covers the latency.
    #[test]
    fn replan_interval_requests_before_the_horizon_runs_short() {
        let cfg = ExecutorConfig { replan_interval_ns: 30_000_000, ..ExecutorConfig::default() };
        let mut ex = ChunkExecutor::new(&cfg, 3, 8, 10_000_000, 5_000_000);
        let t0 = Stamp::from_nanos(1_000_000_000);
        ex.mark_requested(t0);
        ex.accept(&chunk(t0, 0.0, 0.1, 8), t0.add_nanos(5_000_000)).expect("accepted");
        assert!(!ex.should_request(t0.add_nanos(20_000_000)), "20 ms after the request");
        assert!(ex.should_request(t0.add_nanos(30_000_000)), "30 ms after the request");
        let mut plain = ChunkExecutor::new(&ExecutorConfig::default(), 3, 8, 10_000_000, 5_000_000);
        plain.mark_requested(t0);
        plain.accept(&chunk(t0, 0.0, 0.1, 8), t0.add_nanos(5_000_000)).expect("accepted");
        assert!(!plain.should_request(t0.add_nanos(30_000_000)), "without it: only when the horizon runs short");
        assert!(plain.should_request(t0.add_nanos(695_000_000)));
    }
}
