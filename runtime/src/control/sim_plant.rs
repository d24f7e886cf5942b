//! The simulated arm as a real-time plant: its own thread steps the arm on
//! the real clock, publishes joint states and frames into the input slots
//! as a driver would, and applies the newest command from a lock-free
//! queue. Used by `ganglion bench loop` and real-clock demos.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_queue::ArrayQueue;
use ganglion_core::{Clock, Command, CommandSink, InputWriters, SinkError, Stamp};
use ganglion_sim::SimArm;

/// The loop's sink into the plant: a bounded queue; when full, the oldest
/// command is replaced (the plant only wants the newest) and counted.
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

/// A running plant thread.
pub struct SimPlant {
    stop: Arc<AtomicBool>,
    replaced: Arc<AtomicU64>,
    handle: Option<JoinHandle<SimArm>>,
}

impl SimPlant {
    /// Starts the plant: every `step_ns` (absolute deadlines on `clock`) it
    /// applies the newest command, integrates one step and publishes what
    /// is due.
    pub fn spawn<C: Clock + 'static>(
        mut arm: SimArm,
        mut writers: InputWriters,
        clock: C,
        step_ns: u64,
    ) -> std::io::Result<(SimPlant, PlantSink)> {
        let queue = Arc::new(ArrayQueue::new(4));
        let stop = Arc::new(AtomicBool::new(false));
        let replaced = Arc::new(AtomicU64::new(0));
        let step_ns = step_ns.max(1);
        let (q, s) = (queue.clone(), stop.clone());
        let handle = std::thread::Builder::new().name("ganglion-sim-plant".into()).spawn(move || {
            let mut next = clock.now();
            arm.publish_due(next, &mut writers);
            while !s.load(Ordering::Acquire) {
                next = next.add_nanos(step_ns);
                clock.sleep_until(next);
                let mut newest = None;
                while let Some(cmd) = q.pop() {
                    newest = Some(cmd);
                }
                if let Some(cmd) = newest {
                    arm.apply_command(&cmd);
                }
                arm.step(step_ns);
                let now = clock.now();
                arm.publish_due(now, &mut writers);
                if now.saturating_since(next) > step_ns {
                    next = Stamp(now.as_nanos());
                }
            }
            arm
        })?;
        Ok((SimPlant { stop, replaced: replaced.clone(), handle: Some(handle) }, PlantSink { queue, replaced }))
    }

    /// Commands replaced in the queue before the plant took them.
    pub fn replaced_commands(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Stops the plant and returns the arm (`None` if its thread panicked).
    pub fn stop(mut self) -> Option<SimArm> {
        self.stop.store(true, Ordering::Release);
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl Drop for SimPlant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
