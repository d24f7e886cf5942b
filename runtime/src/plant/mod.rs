//! The simulated arm as a plant: one loop that steps the `ganglion_sim`
//! arm, lets it write its joint states, rendered frames and instruction
//! (with its scheduled arm faults applied) into input slots, and applies
//! the commands that come back. What is around the slots is a
//! [`PlantPort`]:
//!
//! - [`LocalPort`]: the slots are the control loop's own, commands come
//!   through [`PlantSink`] (`ganglion bench loop`, tests);
//! - [`episodes::Episodes`]: the same, starting a new episode whenever the
//!   policy held the arm on its target (`ganglion demo`);
//! - [`wire::WirePort`]: the slots are local, a publisher puts them on the
//!   transport with the wire faults applied and commands come off it
//!   (`ganglion sim serve`).
//!
//! [`Pacing`] says how time advances: on the real clock with absolute
//! deadlines, or one step per received command (lockstep, deterministic).
//! The loop never blocks on its port's peer: in-process commands come
//! through a bounded queue, wire commands through the transport's callback.
//!
//! [`harness::SimHarness`] is the same arm in simulated time: the control
//! loop and the arm stepped together on one thread on a `SimClock`, no
//! wall time (tests, `ganglion eval`, replay).

pub mod episodes;
pub mod harness;
pub mod wire;

pub use harness::{CountingSink, EpisodeOutcome, HarnessError, SimHarness};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use crossbeam_queue::ArrayQueue;
use ganglion_core::{Clock, Command, CommandSink, InputWriters, MonotonicClock, SinkError, Stamp};
use ganglion_sim::SimArm;

/// How the plant's time advances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// One step every `step_ns` of the monotonic clock (absolute deadlines;
    /// a short stall is caught up, one over [`MAX_CATCH_UP_NS`] skipped).
    RealTime {
        /// Step, ns.
        step_ns: u64,
    },
    /// One step of `step_ns` per received command; the port waits up to
    /// `wait` for it.
    Lockstep {
        /// Step, ns.
        step_ns: u64,
        /// How long the port may block for a command.
        wait: Duration,
    },
}

/// The longest stall the real-time plant catches up on; beyond it the arm
/// skips time instead of running a burst of steps with stale stamps.
pub const MAX_CATCH_UP_NS: u64 = 100_000_000;

/// Whether the plant goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Next step.
    Continue,
    /// End the loop.
    Stop,
}

/// What surrounds the arm's input slots.
pub trait PlantPort {
    /// Before each step, at `now` (the plant's time line): take the
    /// commands that arrived and apply them to `arm`. `wait` is the
    /// lockstep wait for one (`None`: real time, never block).
    fn commands(&mut self, arm: &mut SimArm, now: Stamp, wait: Option<Duration>) -> anyhow::Result<Flow>;

    /// After the arm wrote what was due at `now` into `writers`.
    fn published(&mut self, arm: &mut SimArm, writers: &mut InputWriters, now: Stamp) -> anyhow::Result<Flow>;
}

/// The simulated arm and its input slots, stepped by [`Plant::run`].
pub struct Plant {
    arm: SimArm,
    writers: InputWriters,
    pacing: Pacing,
    clock: MonotonicClock,
}

impl Plant {
    /// A plant writing into `writers` (the control loop's, or local slots
    /// a [`wire::WirePort`] reads).
    pub fn new(arm: SimArm, writers: InputWriters, pacing: Pacing) -> Plant {
        Plant { arm, writers, pacing, clock: MonotonicClock::new() }
    }

    /// The arm.
    pub fn arm(&self) -> &SimArm {
        &self.arm
    }

    /// The arm, e.g. to schedule faults before the run.
    pub fn arm_mut(&mut self) -> &mut SimArm {
        &mut self.arm
    }

    /// Ends the plant, returning the arm.
    pub fn into_arm(self) -> SimArm {
        self.arm
    }

    /// Runs until the port says stop or `stop` is set. The time line starts
    /// at the monotonic clock's now, so stamps written into the slots are
    /// on the control loop's clock.
    pub fn run<P: PlantPort>(&mut self, port: &mut P, stop: &AtomicBool) -> anyhow::Result<()> {
        let (step_ns, wait) = match self.pacing {
            Pacing::RealTime { step_ns } => (step_ns.max(1), None),
            Pacing::Lockstep { step_ns, wait } => (step_ns.max(1), Some(wait)),
        };
        let mut t = self.clock.now();
        self.arm.publish_due(t, &mut self.writers);
        if port.published(&mut self.arm, &mut self.writers, t)? == Flow::Stop {
            return Ok(());
        }
        while !stop.load(Ordering::Acquire) {
            t = t.add_nanos(step_ns);
            if wait.is_none() {
                self.clock.sleep_until(t);
                let now = self.clock.now();
                if now.saturating_since(t) > MAX_CATCH_UP_NS {
                    t = now;
                }
            }
            if port.commands(&mut self.arm, t, wait)? == Flow::Stop {
                break;
            }
            self.arm.step(step_ns);
            self.arm.publish_due(t, &mut self.writers);
            if port.published(&mut self.arm, &mut self.writers, t)? == Flow::Stop {
                break;
            }
        }
        Ok(())
    }

    /// Runs on its own thread until [`PlantThread::stop`] or the port
    /// says stop.
    pub fn spawn<P: PlantPort + Send + 'static>(mut self, mut port: P) -> anyhow::Result<PlantThread<P>> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("ganglion-sim-plant".into())
            .spawn(move || {
                let result = self.run(&mut port, &s);
                (self.arm, port, result)
            })
            .context("starting the plant thread")?;
        Ok(PlantThread { stop, handle: Some(handle) })
    }
}

/// A plant running on its own thread.
pub struct PlantThread<P> {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<(SimArm, P, anyhow::Result<()>)>>,
}

impl<P> PlantThread<P> {
    /// Stops the plant; the arm and the port, or why the plant failed.
    pub fn stop(mut self) -> anyhow::Result<(SimArm, P)> {
        self.stop.store(true, Ordering::Release);
        let handle = self.handle.take().context("the plant thread was already joined")?;
        let (arm, port, result) = handle.join().map_err(|_| anyhow::anyhow!("the plant thread panicked"))?;
        result.map(|()| (arm, port))
    }
}

impl<P> Drop for PlantThread<P> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The control loop's sink into an in-process plant: a bounded queue;
/// when full the oldest command is replaced (the plant only wants the
/// newest) and counted. Never blocks, never allocates.
pub struct PlantSink {
    queue: Arc<ArrayQueue<Command>>,
    replaced: Arc<AtomicU64>,
}

impl CommandSink for PlantSink {
    fn send(&mut self, cmd: &Command) -> Result<(), SinkError> {
        if self.queue.force_push(*cmd).is_some() {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The plant's end of [`PlantSink`]: applies the newest command each step.
pub struct LocalPort {
    queue: Arc<ArrayQueue<Command>>,
    replaced: Arc<AtomicU64>,
    last: Option<Command>,
}

/// A connected [`PlantSink`] (give it to the control loop) and
/// [`LocalPort`] (give it to the plant).
pub fn local_link() -> (PlantSink, LocalPort) {
    let queue = Arc::new(ArrayQueue::new(4));
    let replaced = Arc::new(AtomicU64::new(0));
    (PlantSink { queue: queue.clone(), replaced: replaced.clone() }, LocalPort { queue, replaced, last: None })
}

impl LocalPort {
    /// Commands replaced in the queue before the plant took them.
    pub fn replaced_commands(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// The last command applied.
    pub fn last_command(&self) -> Option<&Command> {
        self.last.as_ref()
    }

    /// Applies the newest queued command; whether there was one.
    fn apply_newest(&mut self, arm: &mut SimArm) -> bool {
        let mut newest = None;
        while let Some(cmd) = self.queue.pop() {
            newest = Some(cmd);
        }
        let Some(cmd) = newest else { return false };
        arm.apply_command(&cmd);
        self.last = Some(cmd);
        true
    }
}

impl PlantPort for LocalPort {
    fn commands(&mut self, arm: &mut SimArm, _now: Stamp, _wait: Option<Duration>) -> anyhow::Result<Flow> {
        self.apply_newest(arm);
        Ok(Flow::Continue)
    }

    fn published(&mut self, _: &mut SimArm, _: &mut InputWriters, _: Stamp) -> anyhow::Result<Flow> {
        Ok(Flow::Continue)
    }
}
