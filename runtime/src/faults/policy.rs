//! Policy-side fault injection and the mode/inference event log of
//! `ganglion run`, for the HIL rig (`hil-tests/`); the specs are the
//! policy-layer kinds of the fault grammar ([`super::FaultAt`]).
//!
//! - [`FaultyPolicy`] wraps the real policy (the bundle or the expert) and,
//!   on the inference worker, makes it late, fail, panic, or return
//!   non-finite / out-of-range actions on a schedule (`--inject`, `demo
//!   --fault`). Times count from the first inference request, i.e. once
//!   the loop is live, unless [`FaultyPolicy::counting_from`] names another
//!   origin.
//! - [`EventSink`] wraps the command sink on the control thread and notes
//!   every change of mode or active causes into a preallocated lock-free
//!   queue (push never allocates or blocks; a full queue drops and counts).
//! - [`InferenceLog`] notes each request on the worker: the observation
//!   stamp (the joint state's capture time on `CLOCK_MONOTONIC`), start and
//!   end; the rig pairs it with the commands the plant received to measure
//!   observation → command latency.
//!
//! `--events FILE` writes both as JSON lines after the run: `{"t":"mode",
//! "seq","stamp_ns","mode","causes":[..]}` (stamp = the tick's scheduled
//! start, `CLOCK_MONOTONIC`), `{"t":"infer","obs_stamp_ns","start_ns",
//! "end_ns","ok"}`, and a final `{"t":"lost","mode_events","infer_events"}`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossbeam_queue::ArrayQueue;
use ganglion_core::{
    ActionChunk, CauseSet, Clock, Command, CommandSink, Mode, MonotonicClock, Observation, Policy, PolicyError,
    PolicySpec, SinkError,
};

/// A policy-side fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InjectKind {
    /// `count` consecutive requests each take `delay` longer.
    Late {
        /// Extra time per request.
        delay: Duration,
        /// Requests affected (`u64::MAX`: every one from then on).
        count: u64,
    },
    /// `count` requests return an error.
    Error {
        /// Requests affected.
        count: u64,
    },
    /// The request panics (the worker dies).
    Crash,
    /// `count` requests return NaN actions.
    NanAction {
        /// Requests affected.
        count: u64,
    },
    /// `count` requests return actions 10 rad beyond every limit.
    OutOfRange {
        /// Requests affected.
        count: u64,
    },
}

/// One scheduled policy fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Injection {
    /// What.
    pub kind: InjectKind,
    /// When, ns after the first request.
    pub at_ns: u64,
}

/// One inference request as the worker saw it.
#[derive(Debug, Clone, Copy)]
pub struct InferEvent {
    /// The observation's stamp (joint-state capture), ns.
    pub obs_stamp_ns: u64,
    /// Request start, ns (`CLOCK_MONOTONIC`).
    pub start_ns: u64,
    /// Request end, ns.
    pub end_ns: u64,
    /// Whether the policy returned `Ok`.
    pub ok: bool,
    /// Whether an `--inject` fault acted on this request.
    pub injected: bool,
}

/// A bounded, lock-free event log shared between a producer thread and the
/// writer at the end of the run.
#[derive(Debug)]
pub struct EventQueue<T> {
    queue: ArrayQueue<T>,
    lost: AtomicU64,
}

impl<T> EventQueue<T> {
    /// Room for `capacity` events, allocated here.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(EventQueue { queue: ArrayQueue::new(capacity.max(1)), lost: AtomicU64::new(0) })
    }

    /// Pushes without blocking or allocating; a full queue counts a loss.
    pub fn push(&self, v: T) {
        if self.queue.push(v).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the next event.
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// Events dropped at a full queue.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Wraps a policy with a fault schedule and an inference log.
pub struct FaultyPolicy {
    inner: Box<dyn Policy>,
    schedule: Vec<Injection>,
    /// Requests already affected, per schedule entry.
    used: Vec<u64>,
    first_ns: Option<u64>,
    log: Arc<EventQueue<InferEvent>>,
    clock: MonotonicClock,
}

impl FaultyPolicy {
    /// Wraps `inner`; `log` receives every request.
    pub fn new(inner: Box<dyn Policy>, schedule: Vec<Injection>, log: Arc<EventQueue<InferEvent>>) -> Self {
        let used = vec![0; schedule.len()];
        FaultyPolicy { inner, schedule, used, first_ns: None, log, clock: MonotonicClock::new() }
    }

    /// Counts fault times from `origin_ns` (`CLOCK_MONOTONIC`) instead of
    /// the first request: the demo's faults start at its own start.
    pub fn counting_from(mut self, origin_ns: u64) -> Self {
        self.first_ns = Some(origin_ns);
        self
    }

    /// The fault due for this request, if any (consumes one of its count).
    fn due(&mut self, since_ns: u64) -> Option<InjectKind> {
        for (inj, used) in self.schedule.iter().zip(self.used.iter_mut()) {
            let count = match inj.kind {
                InjectKind::Late { count, .. }
                | InjectKind::Error { count }
                | InjectKind::NanAction { count }
                | InjectKind::OutOfRange { count } => count,
                InjectKind::Crash => 1,
            };
            if since_ns >= inj.at_ns && *used < count {
                *used += 1;
                return Some(inj.kind);
            }
        }
        None
    }
}

impl Policy for FaultyPolicy {
    fn spec(&self) -> &PolicySpec {
        self.inner.spec()
    }

    fn stage_times(&self, record: &mut dyn FnMut(&str, u64)) {
        self.inner.stage_times(record)
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        let start = self.clock.now().as_nanos();
        let first = *self.first_ns.get_or_insert(start);
        let fault = self.due(start.saturating_sub(first));
        let result = match fault {
            Some(InjectKind::Error { .. }) => {
                Err(PolicyError::Backend("injected error (ganglion run --inject)".into()))
            }
            Some(InjectKind::Crash) => {
                // The point of this fault: a worker that dies mid-run, as a
                // crashing backend would. The loop must see InferenceError.
                self.log.push(InferEvent {
                    obs_stamp_ns: obs.stamp.as_nanos(),
                    start_ns: start,
                    end_ns: start,
                    ok: false,
                    injected: true,
                });
                panic!("injected worker crash (ganglion run --inject crash)")
            }
            _ => {
                let r = self.inner.infer(obs, out);
                match fault {
                    Some(InjectKind::Late { delay, .. }) => std::thread::sleep(delay),
                    Some(InjectKind::NanAction { .. }) => out.as_mut_slice().fill(f64::NAN),
                    Some(InjectKind::OutOfRange { .. }) => {
                        for (i, v) in out.as_mut_slice().iter_mut().enumerate() {
                            // Alternate signs so every joint breaks a limit.
                            *v += if i % 2 == 0 { 10.0 } else { -10.0 };
                        }
                    }
                    _ => {}
                }
                r
            }
        };
        let end = self.clock.now().as_nanos();
        self.log.push(InferEvent {
            obs_stamp_ns: obs.stamp.as_nanos(),
            start_ns: start,
            end_ns: end,
            ok: result.is_ok(),
            injected: fault.is_some(),
        });
        result
    }
}

/// A change of mode or causes, noted by [`EventSink`].
#[derive(Debug, Clone, Copy)]
pub struct ModeEvent {
    /// Tick number.
    pub seq: u64,
    /// The tick's scheduled start, ns (`CLOCK_MONOTONIC`).
    pub stamp_ns: u64,
    /// Mode from this tick on.
    pub mode: Mode,
    /// Causes active at this tick.
    pub causes: CauseSet,
}

/// Wraps the loop's command sink and notes each change of mode or causes.
pub struct EventSink<S: CommandSink> {
    inner: S,
    events: Arc<EventQueue<ModeEvent>>,
    last: Option<(Mode, CauseSet)>,
}

impl<S: CommandSink> EventSink<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, events: Arc<EventQueue<ModeEvent>>) -> Self {
        EventSink { inner, events, last: None }
    }
}

impl<S: CommandSink> CommandSink for EventSink<S> {
    fn send(&mut self, cmd: &Command) -> Result<(), SinkError> {
        if self.last != Some((cmd.mode, cmd.causes)) {
            self.last = Some((cmd.mode, cmd.causes));
            self.events.push(ModeEvent {
                seq: cmd.seq,
                stamp_ns: cmd.stamp.as_nanos(),
                mode: cmd.mode,
                causes: cmd.causes,
            });
        }
        self.inner.send(cmd)
    }
}

/// Writes both logs as JSON lines to `path`.
pub fn write_events(
    path: &std::path::Path,
    modes: &EventQueue<ModeEvent>,
    infers: &EventQueue<InferEvent>,
) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating the event log {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    while let Some(e) = modes.pop() {
        let causes: Vec<&str> = e.causes.iter().map(|c| c.name()).collect();
        writeln!(
            w,
            "{}",
            serde_json::json!({"t": "mode", "seq": e.seq, "stamp_ns": e.stamp_ns,
            "mode": e.mode.name(), "causes": causes})
        )?;
    }
    while let Some(e) = infers.pop() {
        writeln!(
            w,
            "{}",
            serde_json::json!({"t": "infer", "obs_stamp_ns": e.obs_stamp_ns,
            "start_ns": e.start_ns, "end_ns": e.end_ns, "ok": e.ok, "injected": e.injected})
        )?;
    }
    writeln!(w, "{}", serde_json::json!({"t": "lost", "mode_events": modes.lost(), "infer_events": infers.lost()}))?;
    w.flush().with_context(|| format!("writing the event log {}", path.display()))
}

/// The two event logs of one `ganglion run`.
pub struct RigEvents {
    /// Mode / cause changes (control thread).
    pub modes: Arc<EventQueue<ModeEvent>>,
    /// Inference requests (worker).
    pub infers: Arc<EventQueue<InferEvent>>,
}

/// Wraps `policy` with the `--inject` schedule (may be empty) and its log.
pub fn wrap_policy(policy: Box<dyn Policy>, specs: &[String]) -> anyhow::Result<(Box<dyn Policy>, RigEvents)> {
    let schedule =
        super::parse_all(specs, super::Consumer::RunInject)?.iter().filter_map(super::FaultAt::injection).collect();
    // 64 k entries each: an hour of mode changes at 100 Hz flapping, and
    // ~2 h of requests at 10 Hz; beyond that events are counted as lost.
    let events = RigEvents { modes: EventQueue::new(1 << 16), infers: EventQueue::new(1 << 16) };
    Ok((Box::new(FaultyPolicy::new(policy, schedule, events.infers.clone())), events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_queue_counts_what_it_cannot_hold() {
        let q = EventQueue::new(2);
        for i in 0..5u64 {
            q.push(i);
        }
        assert_eq!(q.lost(), 3);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(0), Some(1), None));
    }
}
