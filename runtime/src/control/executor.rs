//! Chunk executor: turns policy-rate action chunks into a smooth control-rate trajectory.

use ganglion_core::{ActionChunk, JointVec, Stamp, MAX_COMMITTED_STEPS};

/// How a new chunk is merged with the plan already executing.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BlendMode {
    /// Temporal ensembling (ACT): every prediction for a time is averaged, prediction `i` (oldest first) weighted `exp(-decay·i)`.
    Ensemble {
        /// Weight decay per newer prediction (ACT's `k`); 0 averages equally.
        decay: f64,
    },
    /// Real-time chunking style: the first `steps` upcoming actions of the current plan stay as they are.
    FrozenPrefix {
        /// Number of upcoming policy steps kept from the current plan.
        steps: usize,
    },
    /// The new chunk replaces the plan (still seam-checked).
    Replace,
}

/// `[executor]` section of the robot profile.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// How overlapping chunks are merged.
    pub blend: BlendMode,
    /// Added to the learned latency p99 when deciding to request, ns.
    pub latency_margin_ns: u64,
    /// Minimum time between two requests, ns.
    pub min_request_interval_ns: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig { blend: BlendMode::Ensemble { decay: 0.01 }, latency_margin_ns: 5_000_000, min_request_interval_ns: 0 }
    }
}

/// Facts about an accepted chunk.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AcceptInfo {
    /// Steps of the chunk already overtaken by latency and skipped.
    pub skipped: usize,
    /// Whether the seam needed a ramp.
    pub ramped: bool,
    /// Latency recorded for this chunk (now − obs_stamp), ns.
    pub latency_ns: u64,
}

/// Why a chunk was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRejected {
    /// Wrong joint count or more steps than the executor was built for.
    #[error("chunk shape does not match the executor")]
    Shape,
    /// No steps, or a zero step period.
    #[error("chunk is empty or has a zero step period")]
    Empty,
    /// A value is NaN or infinite.
    #[error("chunk contains non-finite values")]
    NonFinite,
    /// Stamped after `now`.
    #[error("chunk observation stamp lies in the future")]
    FromFuture,
    /// Older than the chunk the current plan came from.
    #[error("chunk is older than the current plan")]
    OutOfOrder,
    /// Every step is already overtaken.
    #[error("every step of the chunk is already overtaken")]
    Expired,
    /// Delta actions but no base position given.
    #[error("delta actions need the observed joint position")]
    NeedsBase,
}

/// Executes action chunks. See the module docs.
#[derive(Debug, Clone)]
pub struct ChunkExecutor {
    starved: u64,
    p99: u64,
}

impl ChunkExecutor {
    /// Preallocates everything.
    pub fn new(
        _cfg: &ExecutorConfig,
        _n_joints: usize,
        _max_chunk_len: usize,
        _control_period_ns: u64,
        initial_latency_ns: u64,
    ) -> Self {
        ChunkExecutor { starved: 0, p99: initial_latency_ns }
    }
    /// Accepts an absolute-position chunk.
    pub fn accept(&mut self, chunk: &ActionChunk, now: Stamp) -> Result<AcceptInfo, ChunkRejected> {
        self.accept_inner(chunk, None, now)
    }
    /// Accepts a chunk; `base` is the observed joint position at `chunk.obs_stamp` (needed for delta actions).
    pub fn accept_with_base(&mut self, chunk: &ActionChunk, base: &JointVec, now: Stamp) -> Result<AcceptInfo, ChunkRejected> {
        self.accept_inner(chunk, Some(base), now)
    }
    fn accept_inner(&mut self, _chunk: &ActionChunk, _base: Option<&JointVec>, _now: Stamp) -> Result<AcceptInfo, ChunkRejected> {
        Err(ChunkRejected::Empty)
    }
    /// Action at time `t`; false when starved.
    pub fn action_at(&mut self, _t: Stamp, _pos: &mut JointVec, _vel: &mut JointVec) -> bool {
        self.starved += 1;
        false
    }
    /// Time the plan still covers after `now`, ns.
    pub fn remaining_horizon_ns(&self, _now: Stamp) -> u64 {
        0
    }
    /// Whether to request the next chunk now.
    pub fn should_request(&self, _now: Stamp) -> bool {
        true
    }
    /// Notes that a request was submitted at `now`.
    pub fn mark_requested(&mut self, _now: Stamp) {}
    /// Records one inference latency, ns.
    pub fn observe_latency(&mut self, ns: u64) {
        self.p99 = ns;
    }
    /// Learned p99 latency, ns.
    pub fn latency_p99_ns(&self) -> u64 {
        self.p99
    }
    /// Planned absolute targets after `obs_stamp`.
    pub fn committed_steps(&self, _obs_stamp: Stamp, _step_ns: u64, out: &mut heapless::Vec<JointVec, MAX_COMMITTED_STEPS>) {
        out.clear();
    }
    /// Forgets the plan.
    pub fn reset(&mut self) {}
    /// Ticks without a plan.
    pub fn starved_ticks(&self) -> u64 {
        self.starved
    }
}
