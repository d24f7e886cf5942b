//! Dynamic batching across the policy instances of a policy server's robots
//! (issue 19, `ganglion serve --max-batch`).
//!
//! Every robot keeps its own [`crate::BundlePolicy`]: its instruction, its
//! histories, its noise stream, its buffers. Only the engines are shared:
//! each graph of the bundle is loaded once, with room for `max_batch` rows,
//! and every robot's [`Graph`](super::Graph) of it runs through a
//! [`BatchPool`]. The robots' inferences run on their own threads; a call
//! that reaches a graph copies its inputs into a free row and waits. The
//! rows waiting at one graph run as one batch as soon as
//!
//! - every robot inside an inference is waiting somewhere (nobody else can
//!   join: run now, no timer), or
//! - the graph's rows are all taken.
//!
//! Robots whose pipelines call the same graphs in the same order (every
//! format-2 bundle: prefix once, the step graph N times) meet at every call
//! and run in lockstep, one engine call per graph call for all of them.
//! Pipelines that diverge (a world model's dynamics rolled over a different
//! number of committed actions) still finish: whoever waits alone runs alone
//! once the others are waiting elsewhere or done.
//!
//! The batching window lives in the server (how long it collects requests
//! before it starts their inferences); here nothing waits on a clock.
//!
//! Backends: ONNX Runtime, whose sessions take any batch when the graph's
//! first dimension is dynamic (checked at load, naming the tensor). tract
//! optimizes for the manifest's fixed shapes and is refused.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{BackendChoice, Engine, GraphIo, GraphModel, TensorBuf};
use crate::error::BundleError;
use crate::manifest::GraphSpec;

/// Most rows a pool batches (ONNX Runtime's sessions and this pool's
/// buffers are sized for it at load).
pub const MAX_BATCH: usize = 256;

/// Counters of a pool, for the server's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BatchStats {
    /// Engine calls.
    pub runs: u64,
    /// Rows computed by those calls (graph calls of robots).
    pub rows: u64,
    /// The largest batch run.
    pub largest: usize,
}

impl BatchStats {
    /// Mean rows per engine call.
    pub fn mean_batch(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.rows as f64 / self.runs as f64
        }
    }
}

/// One graph shared by every robot: the engine, sized for `max` rows, and
/// the rows of its next batch.
struct Combiner {
    key: String,
    engine: Box<dyn Engine>,
    /// `max` rows of every input and output.
    io: GraphIo,
    in_len: Vec<usize>,
    out_len: Vec<usize>,
    /// Rows filled for the next run.
    pending: usize,
    /// Rows of the last run not yet copied out by their robots: the next run
    /// waits for them (it would overwrite their outputs).
    unread: usize,
    /// Runs so far; a robot waits for the run after the one it joined.
    generation: u64,
    /// The last run's failure, handed to each of its rows.
    error: Option<String>,
}

struct PoolState {
    /// The backend the engines load on (the first robot's; ONNX Runtime).
    choice: Option<BackendChoice>,
    /// Robots inside an inference ([`BatchPool::enter`]).
    active: usize,
    /// Of them, those waiting at a graph.
    waiting: usize,
    graphs: Vec<Combiner>,
    stats: BatchStats,
}

/// The engines shared by a server's robots; see the module docs.
pub struct BatchPool {
    max: usize,
    state: Mutex<PoolState>,
    ran: Condvar,
}

impl std::fmt::Debug for BatchPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPool").field("max_batch", &self.max).finish()
    }
}

/// A robot's inference, counted by the pool while it lives; dropped when the
/// inference returns (or unwinds), so the others never wait for it.
pub struct Inference<'a> {
    pool: &'a BatchPool,
}

impl Drop for Inference<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        st.active = st.active.saturating_sub(1);
        // Everyone left may now be waiting: run the fullest batch.
        if st.active > 0 && st.waiting >= st.active {
            if let Some(g) =
                (0..st.graphs.len()).filter(|&g| st.graphs[g].pending > 0).max_by_key(|&g| st.graphs[g].pending)
            {
                st = self.pool.run_graph(st, g);
            }
        }
        drop(st);
    }
}

impl BatchPool {
    /// A pool batching up to `max_batch` rows (1..=[`MAX_BATCH`]).
    pub fn new(max_batch: usize) -> Result<Arc<BatchPool>, BundleError> {
        if !(1..=MAX_BATCH).contains(&max_batch) {
            return Err(BundleError::Backend(format!("max batch {max_batch}: expected 1..={MAX_BATCH}")));
        }
        let state = PoolState { choice: None, active: 0, waiting: 0, graphs: Vec::new(), stats: BatchStats::default() };
        Ok(Arc::new(BatchPool { max: max_batch, state: Mutex::new(state), ran: Condvar::new() }))
    }

    /// Most rows a batch holds.
    pub fn max_batch(&self) -> usize {
        self.max
    }

    /// The counters so far.
    pub fn stats(&self) -> BatchStats {
        self.lock().stats
    }

    /// Marks the start of one robot's inference; hold the guard until it
    /// returns. Enter every robot of a batch before any of them starts
    /// (else the first may find itself alone and run alone). Graph calls
    /// outside any inference (a policy's warm-up at load) run at once,
    /// alone.
    pub fn enter(&self) -> Inference<'_> {
        self.lock().active += 1;
        Inference { pool: self }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A robot thread that panicked while holding the lock left the
        // counters consistent (every update is one statement): keep going.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The engine for one robot's copy of graph `spec` (loaded once per
    /// distinct graph, on `choice`, which must be ONNX Runtime).
    pub(crate) fn participant(
        self: &Arc<Self>,
        spec: &GraphSpec,
        model: GraphModel<'_>,
        file: &Path,
        choice: &BackendChoice,
    ) -> Result<Box<dyn Engine>, BundleError> {
        let err = |reason: String| BundleError::Model { file: file.to_path_buf(), reason };
        if !matches!(choice, BackendChoice::Ort { .. }) {
            return Err(err(
                "dynamic batching needs ONNX Runtime (`--backend ort`): tract optimizes for the manifest's fixed shapes"
                    .into(),
            ));
        }
        if let Some(t) = spec.inputs.iter().chain(&spec.outputs).find(|t| t.follows_prompt()) {
            return Err(err(format!(
                "`{}` is {}: dynamic batching stacks tensors of one shape, not shapes that follow each robot's prompt",
                t.name,
                t.shape_text()
            )));
        }
        let key = format!("{}:{}", file.display(), model.sha256());
        let mut st = self.lock();
        let index = match st.graphs.iter().position(|c| c.key == key) {
            Some(i) => i,
            None => {
                let rows = |t: &crate::manifest::TensorSpec| {
                    let mut t = t.clone();
                    if let Some(d) = t.shape.first_mut() {
                        *d = self.max;
                    }
                    t
                };
                let batched = GraphSpec {
                    file: spec.file.clone(),
                    inputs: spec.inputs.iter().map(rows).collect(),
                    outputs: spec.outputs.iter().map(rows).collect(),
                };
                let engine = super::ort_backend::OrtEngine::load_batched(&batched, model, file, choice)?;
                let io = GraphIo::for_spec(&batched);
                st.choice.get_or_insert_with(|| choice.clone());
                st.graphs.push(Combiner {
                    key,
                    engine: Box::new(engine),
                    io,
                    in_len: spec.inputs.iter().map(|t| t.len()).collect(),
                    out_len: spec.outputs.iter().map(|t| t.len()).collect(),
                    pending: 0,
                    unread: 0,
                    generation: 0,
                    error: None,
                });
                st.graphs.len() - 1
            }
        };
        let provider = format!("{} (batched)", st.graphs[index].engine.execution_provider());
        drop(st);
        Ok(Box::new(Participant { pool: self.clone(), graph: index, provider }))
    }

    /// One robot's call of graph `g`: its inputs in, its outputs out.
    fn call(&self, g: usize, io: &mut GraphIo) -> Result<(), String> {
        let mut st = self.lock();
        // A full batch is being run by the robot that filled it: wait for
        // it to empty. (Joining while the last run's outputs are still read
        // is fine: the next run waits for them.)
        while st.graphs[g].pending >= self.max {
            st = self.ran.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let c = &mut st.graphs[g];
        let row = c.pending;
        for ((dst, src), &len) in c.io.inputs.iter_mut().zip(&io.inputs).zip(&c.in_len) {
            copy_row(dst, src, row, len)?;
        }
        c.pending += 1;
        let joined = c.generation;
        st.waiting += 1;
        if st.waiting >= st.active || st.graphs[g].pending >= self.max {
            st = self.run_graph(st, g);
        }
        while st.graphs[g].generation == joined {
            st = self.ran.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let c = &mut st.graphs[g];
        let out = c.error.clone().map_or(Ok(()), Err).and_then(|()| {
            for ((dst, src), &len) in io.outputs.iter_mut().zip(&c.io.outputs).zip(&c.out_len) {
                read_row(dst, src, row, len)?;
            }
            Ok(())
        });
        c.unread -= 1;
        if c.unread == 0 {
            self.ran.notify_all();
        }
        out
    }

    /// Runs graph `g` on its pending rows (after the last run's rows were
    /// read) and wakes its robots.
    fn run_graph<'a>(&'a self, mut st: MutexGuard<'a, PoolState>, g: usize) -> MutexGuard<'a, PoolState> {
        while st.graphs[g].unread > 0 {
            st = self.ran.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let rows = st.graphs[g].pending;
        if rows == 0 {
            return st;
        }
        let c = &mut st.graphs[g];
        c.error = c.engine.run_rows(&mut c.io, rows).err();
        c.pending = 0;
        c.unread = rows;
        c.generation += 1;
        st.waiting = st.waiting.saturating_sub(rows);
        st.stats.runs += 1;
        st.stats.rows += rows as u64;
        st.stats.largest = st.stats.largest.max(rows);
        self.ran.notify_all();
        st
    }
}

/// Copies one robot's tensor `src` into row `row` of the batched `dst`.
fn copy_row(dst: &mut TensorBuf, src: &TensorBuf, row: usize, len: usize) -> Result<(), String> {
    let at = row * len..(row + 1) * len;
    match (dst, src) {
        (TensorBuf::F32(d), TensorBuf::F32(s)) if s.len() == len => d.get_mut(at).map(|d| d.copy_from_slice(s)),
        (TensorBuf::U8(d), TensorBuf::U8(s)) if s.len() == len => d.get_mut(at).map(|d| d.copy_from_slice(s)),
        (TensorBuf::I64(d), TensorBuf::I64(s)) if s.len() == len => d.get_mut(at).map(|d| d.copy_from_slice(s)),
        (TensorBuf::Bool(d), TensorBuf::Bool(s)) if s.len() == len => d.get_mut(at).map(|d| d.copy_from_slice(s)),
        _ => None,
    }
    .ok_or_else(|| format!("a robot's input of {} values does not fit the batch's rows of {len}", src.len()))
}

/// Copies row `row` of the batched `src` into one robot's tensor `dst`.
fn read_row(dst: &mut TensorBuf, src: &TensorBuf, row: usize, len: usize) -> Result<(), String> {
    let at = row * len..(row + 1) * len;
    let have = dst.len();
    match (dst, src) {
        (TensorBuf::F32(d), TensorBuf::F32(s)) if d.len() == len => s.get(at).map(|s| d.copy_from_slice(s)),
        (TensorBuf::U8(d), TensorBuf::U8(s)) if d.len() == len => s.get(at).map(|s| d.copy_from_slice(s)),
        (TensorBuf::I64(d), TensorBuf::I64(s)) if d.len() == len => s.get(at).map(|s| d.copy_from_slice(s)),
        (TensorBuf::Bool(d), TensorBuf::Bool(s)) if d.len() == len => s.get(at).map(|s| d.copy_from_slice(s)),
        _ => None,
    }
    .ok_or_else(|| format!("a batch row of {len} values does not fit a robot's output of {have}"))
}

/// One robot's view of a shared graph.
struct Participant {
    pool: Arc<BatchPool>,
    graph: usize,
    provider: String,
}

impl Engine for Participant {
    fn run(&mut self, io: &mut GraphIo) -> Result<(), String> {
        self.pool.call(self.graph, io)
    }

    fn execution_provider(&self) -> &str {
        &self.provider
    }
}
