//! The control thread's side of the recorder: bounded rings and buffer
//! pools it pushes into without blocking or allocating.
//!
//! Every push is a `try_send` on a bounded crossbeam array channel; a full
//! ring drops the item and counts it. The drain side only ever polls
//! (`try_recv`), never blocks in `recv`, so no receiver is ever parked on the
//! channel and a push never touches the channel's internal mutex. Frames and
//! inference results travel in buffers allocated once here and handed back
//! by the drain (a free list per pool), so copying them costs no allocation.
//!
//! What the tap records is what the loop *saw*: each input is pushed at the
//! tick that sampled it (once per new sequence number) and logged at that
//! tick's scheduled time, which is what a replay needs to present the same
//! inputs to the same ticks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use ganglion_core::{
    ActionChunk, ExternalHeartbeat, Frame, InputReaders, Instruction, JointState, PolicyError, Stamp, Stamped,
};

use super::row::{InferenceRow, ResultStatus, TickRow};

/// Sizes of the rings and pools between the control thread and the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapConfig {
    /// Tick records in flight.
    pub ticks: usize,
    /// Joint states, instructions and heartbeats in flight (each).
    pub inputs: usize,
    /// Frame buffers per camera.
    pub frames: usize,
    /// Inference result buffers.
    pub results: usize,
}

impl Default for TapConfig {
    fn default() -> Self {
        // At 1 kHz the drain polls every 10 ms: 4096 ticks leave it 4 s of slack.
        TapConfig { ticks: 4096, inputs: 1024, frames: 8, results: 8 }
    }
}

/// What the tap dropped because a ring or pool was full (the drain fell
/// behind). Shared between both sides; read any time.
#[derive(Debug, Default)]
pub struct TapCounters {
    /// Tick records dropped.
    pub ticks_dropped: AtomicU64,
    /// Joint states, instructions and heartbeats dropped.
    pub inputs_dropped: AtomicU64,
    /// Frames dropped.
    pub frames_dropped: AtomicU64,
    /// Inference results dropped.
    pub results_dropped: AtomicU64,
}

impl TapCounters {
    /// Everything dropped so far.
    pub fn total(&self) -> u64 {
        self.ticks_dropped.load(Ordering::Relaxed)
            + self.inputs_dropped.load(Ordering::Relaxed)
            + self.frames_dropped.load(Ordering::Relaxed)
            + self.results_dropped.load(Ordering::Relaxed)
    }
}

/// A recorded input sample and the tick time at which the loop saw it.
#[derive(Debug, Clone)]
pub struct Seen<T> {
    /// Scheduled start of the tick that sampled it.
    pub tick: Stamp,
    /// The sample as the loop saw it.
    pub sample: Stamped<T>,
}

struct Pool<T> {
    free: Receiver<T>,
    full: Sender<T>,
}

struct PoolDrain<T> {
    free: Sender<T>,
    full: Receiver<T>,
}

fn pool<T>(n: usize, make: impl Fn() -> T) -> (Pool<T>, PoolDrain<T>) {
    let n = n.max(1);
    let (free_tx, free_rx) = bounded(n);
    let (full_tx, full_rx) = bounded(n);
    for _ in 0..n {
        // Cannot fail: the channel holds exactly `n`.
        let _ = free_tx.try_send(make());
    }
    (Pool { free: free_rx, full: full_tx }, PoolDrain { free: free_tx, full: full_rx })
}

/// The control thread's handle: push ticks, inputs and results.
///
/// Invariants: no method blocks, allocates after construction, or panics;
/// each returns whether the item was queued (false: dropped and counted).
pub struct RecorderTap {
    ticks: Sender<TickRow>,
    joints: Sender<Seen<JointState>>,
    instructions: Sender<Seen<Instruction>>,
    heartbeats: Sender<Seen<ExternalHeartbeat>>,
    frames: Vec<Pool<(Stamp, Stamped<Frame>)>>,
    results: Pool<InferenceRow>,
    last_seq: LastSeq,
    counters: Arc<TapCounters>,
}

#[derive(Default)]
struct LastSeq {
    joints: u64,
    instruction: u64,
    heartbeat: u64,
    frames: [u64; 16],
}

/// The recorder thread's end of a [`RecorderTap`].
pub struct TapDrain {
    ticks: Receiver<TickRow>,
    joints: Receiver<Seen<JointState>>,
    instructions: Receiver<Seen<Instruction>>,
    heartbeats: Receiver<Seen<ExternalHeartbeat>>,
    frames: Vec<PoolDrain<(Stamp, Stamped<Frame>)>>,
    results: PoolDrain<InferenceRow>,
    /// Drop counters shared with the tap.
    pub counters: Arc<TapCounters>,
}

/// Shapes the tap must preallocate for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapShape {
    /// Joints per state and per action.
    pub n_joints: usize,
    /// Largest frame per camera, `(max_width, max_height)`, in profile order
    /// (at most 16 cameras are recorded).
    pub cameras: Vec<(u32, u32)>,
    /// Most actions per chunk.
    pub chunk_len: usize,
}

/// Makes a tap and its drain, allocating every buffer now.
pub fn tap(config: &TapConfig, shape: &TapShape) -> (RecorderTap, TapDrain) {
    let (ticks_tx, ticks_rx) = bounded(config.ticks.max(1));
    let (j_tx, j_rx) = bounded(config.inputs.max(1));
    let (i_tx, i_rx) = bounded(config.inputs.max(1));
    let (h_tx, h_rx) = bounded(config.inputs.max(1));
    let (mut frames, mut frame_drains) = (Vec::new(), Vec::new());
    for &(w, h) in shape.cameras.iter().take(16) {
        let (p, d) = pool(config.frames, || (Stamp::ZERO, Stamped::empty(Frame::with_capacity(w, h))));
        frames.push(p);
        frame_drains.push(d);
    }
    let (n, steps) = (shape.n_joints, shape.chunk_len);
    let (results, result_drain) = pool(config.results, || InferenceRow {
        collected: Stamp::ZERO,
        status: ResultStatus::Ok,
        chunk: ActionChunk::with_capacity(steps, n),
    });
    let counters = Arc::new(TapCounters::default());
    (
        RecorderTap {
            ticks: ticks_tx,
            joints: j_tx,
            instructions: i_tx,
            heartbeats: h_tx,
            frames,
            results,
            last_seq: LastSeq::default(),
            counters: counters.clone(),
        },
        TapDrain {
            ticks: ticks_rx,
            joints: j_rx,
            instructions: i_rx,
            heartbeats: h_rx,
            frames: frame_drains,
            results: result_drain,
            counters,
        },
    )
}

fn count(ok: bool, counter: &AtomicU64) -> bool {
    if !ok {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    ok
}

impl RecorderTap {
    /// Queues the tick's record.
    pub fn tick(&mut self, row: &TickRow) -> bool {
        count(self.ticks.try_send(*row).is_ok(), &self.counters.ticks_dropped)
    }

    /// Records the joint state the tick at `tick` sampled, once per sequence
    /// number (a repeated sample is not queued again).
    pub fn joints(&mut self, tick: Stamp, s: &Stamped<JointState>) -> bool {
        if !s.is_present() || s.seq == self.last_seq.joints {
            return true;
        }
        self.last_seq.joints = s.seq;
        let seen = Seen { tick, sample: s.clone() };
        count(self.joints.try_send(seen).is_ok(), &self.counters.inputs_dropped)
    }

    /// Records the instruction the tick at `tick` sampled, once per sequence number.
    pub fn instruction(&mut self, tick: Stamp, s: &Stamped<Instruction>) -> bool {
        if !s.is_present() || s.seq == self.last_seq.instruction {
            return true;
        }
        self.last_seq.instruction = s.seq;
        // heapless::String clones in place: no allocation.
        let seen = Seen { tick, sample: s.clone() };
        count(self.instructions.try_send(seen).is_ok(), &self.counters.inputs_dropped)
    }

    /// Records the external heartbeat the tick at `tick` sampled, once per sequence number.
    pub fn heartbeat(&mut self, tick: Stamp, s: &Stamped<ExternalHeartbeat>) -> bool {
        if !s.is_present() || s.seq == self.last_seq.heartbeat {
            return true;
        }
        self.last_seq.heartbeat = s.seq;
        let seen = Seen { tick, sample: s.clone() };
        count(self.heartbeats.try_send(seen).is_ok(), &self.counters.inputs_dropped)
    }

    /// Records camera `camera`'s frame the tick at `tick` sampled, once per
    /// sequence number, copying it into a pooled buffer.
    pub fn frame(&mut self, tick: Stamp, camera: usize, s: &Stamped<Frame>) -> bool {
        let (Some(pool), Some(last)) = (self.frames.get(camera), self.last_seq.frames.get_mut(camera)) else {
            return true;
        };
        if !s.is_present() || s.seq == *last {
            return true;
        }
        *last = s.seq;
        let Ok(mut buf) = pool.free.try_recv() else {
            return count(false, &self.counters.frames_dropped);
        };
        buf.0 = tick;
        buf.1.capture = s.capture;
        buf.1.receive = s.receive;
        buf.1.seq = s.seq;
        let f = &s.value;
        // The pool's buffers have the camera's configured capacity; a frame
        // that does not fit was already refused by the slot's own buffer.
        let copied = buf.1.value.set(f.width, f.height, f.format, f.data()).is_ok();
        if !copied || pool.full.try_send(buf).is_err() {
            return count(false, &self.counters.frames_dropped);
        }
        true
    }

    /// Records every input of `inputs` as the tick at `tick` sampled it:
    /// call right after the loop's sample stage.
    pub fn inputs(&mut self, tick: Stamp, inputs: &InputReaders) {
        self.joints(tick, inputs.joints.latest());
        self.instruction(tick, inputs.instruction.latest());
        self.heartbeat(tick, inputs.heartbeat.latest());
        for (i, cam) in inputs.cameras.iter().enumerate() {
            self.frame(tick, i, cam.latest());
        }
    }

    /// Records an inference outcome the loop collected at tick time
    /// `collected`, copying the chunk into a pooled buffer.
    pub fn result(&mut self, collected: Stamp, result: &Result<(), PolicyError>, chunk: &ActionChunk) -> bool {
        let Ok(mut buf) = self.results.free.try_recv() else {
            return count(false, &self.counters.results_dropped);
        };
        buf.collected = collected;
        buf.status = ResultStatus::of(result);
        if !buf.chunk.copy_from(chunk) {
            // Shape mismatch: keep the request id so the record still says
            // which request failed.
            buf.chunk.request_id = chunk.request_id;
            buf.chunk.set_steps(0);
        }
        count(self.results.full.try_send(buf).is_ok(), &self.counters.results_dropped)
    }

    /// The drop counters.
    pub fn counters(&self) -> &Arc<TapCounters> {
        &self.counters
    }
}

impl TapDrain {
    /// Takes the next queued frame of camera `camera`, hands it to `f`, and
    /// returns its buffer to the pool. `false` when none is queued.
    pub fn next_frame(&self, camera: usize, f: impl FnOnce(Stamp, &Stamped<Frame>)) -> bool {
        let Some(pool) = self.frames.get(camera) else { return false };
        match pool.full.try_recv() {
            Ok(buf) => {
                f(buf.0, &buf.1);
                let _ = pool.free.try_send(buf);
                true
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => false,
        }
    }

    /// Takes the next queued inference result, hands it to `f`, and returns
    /// its buffer. `false` when none is queued.
    pub fn next_result(&self, f: impl FnOnce(&InferenceRow)) -> bool {
        match self.results.full.try_recv() {
            Ok(buf) => {
                f(&buf);
                let _ = self.results.free.try_send(buf);
                true
            }
            Err(_) => false,
        }
    }

    /// Number of cameras the tap records.
    pub fn cameras(&self) -> usize {
        self.frames.len()
    }
}

impl super::flight::Source for TapDrain {
    fn drain(&mut self, f: &mut dyn FnMut(super::flight::Item<'_>)) {
        use super::flight::Item;
        while let Ok(t) = self.ticks.try_recv() {
            f(Item::Tick(&t));
        }
        while let Ok(s) = self.joints.try_recv() {
            f(Item::Joints(s.tick, &s.sample));
        }
        while let Ok(s) = self.instructions.try_recv() {
            f(Item::Instruction(s.tick, &s.sample));
        }
        while let Ok(s) = self.heartbeats.try_recv() {
            f(Item::Heartbeat(s.tick, &s.sample));
        }
        for cam in 0..self.frames.len() {
            while self.next_frame(cam, |tick, s| f(Item::Frame(tick, cam, s))) {}
        }
        while self.next_result(|r| f(Item::Result(r.collected, r.status, &r.chunk))) {}
    }
}
