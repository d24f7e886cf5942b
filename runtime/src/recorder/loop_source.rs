//! The control loop's own rings as a recorder [`Source`]: tick records from
//! [`TelemetryReader`], the inputs and answers each tick consumed from
//! [`InputTapReader`] (snapshots are recycled at once, so the loop's pool
//! never runs dry because of the recorder).

use ganglion_core::{ActionChunk, Stamp};

use super::flight::{Item, Source};
use super::row::{ResultStatus, TickFlags, TickRow, STAGES};
use crate::control::{CollectOutcome, InferenceFailure, InputSnapshot, InputTapReader, TelemetryReader, TickRecord};

/// Converts the loop's tick record into the recorded row (`total` = end − start).
pub fn tick_row(r: &TickRecord) -> TickRow {
    let mut stage_ns = [0u32; STAGES.len()];
    for (d, s) in stage_ns.iter_mut().zip(r.stage_ns.iter()) {
        *d = *s;
    }
    stage_ns[STAGES.len() - 1] = u32::try_from(r.end.saturating_since(r.start)).unwrap_or(u32::MAX);
    let flag = |on: bool, bit: u8| if on { bit } else { 0 };
    TickRow {
        seq: r.seq,
        scheduled: r.scheduled,
        start: r.start,
        stage_ns,
        mode: r.mode,
        causes: r.causes,
        request_id: r.submitted,
        result_id: r.completed,
        action_index: r.action_index,
        clamps: r.clamped_joints,
        flags: flag(r.published, TickFlags::PUBLISHED)
            | flag(r.overrun, TickFlags::OVERRUN)
            | flag(r.clamped, TickFlags::CLAMPED)
            | flag(r.violation, TickFlags::VIOLATION)
            | flag(r.starved, TickFlags::STARVED),
        inference_latency_ns: r.chunk_age_ns,
        position: r.command.position,
        velocity: r.command.velocity,
    }
}

/// The recorded status of a collect outcome.
pub fn result_status(c: &CollectOutcome) -> ResultStatus {
    match c {
        CollectOutcome::Failed(InferenceFailure::BadObservation) => ResultStatus::BadObservation,
        CollectOutcome::Failed(InferenceFailure::Backend) => ResultStatus::Backend,
        CollectOutcome::Failed(InferenceFailure::Panicked) => ResultStatus::Panicked,
        CollectOutcome::Failed(InferenceFailure::WorkerStopped) => ResultStatus::WorkerStopped,
        _ => ResultStatus::Ok,
    }
}

/// Drains a [`ControlLoop`](crate::control::ControlLoop)'s telemetry and input tap.
pub struct LoopSource {
    telemetry: TelemetryReader,
    inputs: Option<InputTapReader>,
    last_joint_seq: u64,
    last_heartbeat_seq: u64,
    no_chunk: ActionChunk,
}

impl LoopSource {
    /// A source over the loop's rings (`inputs` absent: ticks only).
    pub fn new(telemetry: TelemetryReader, inputs: Option<InputTapReader>) -> Self {
        LoopSource {
            telemetry,
            inputs,
            last_joint_seq: 0,
            last_heartbeat_seq: 0,
            no_chunk: ActionChunk::with_capacity(0, 1),
        }
    }

    /// Records dropped by the loop's rings (tick records + snapshots).
    pub fn dropped(&self) -> u64 {
        self.telemetry.dropped() + self.inputs.as_ref().map_or(0, InputTapReader::dropped)
    }

    fn snapshot(&mut self, s: &InputSnapshot, f: &mut dyn FnMut(Item<'_>)) {
        let tick: Stamp = s.scheduled;
        if s.joints.is_present() && s.joints.seq != self.last_joint_seq {
            self.last_joint_seq = s.joints.seq;
            f(Item::Joints(tick, &s.joints));
        }
        for (i, frame) in s.frames.iter().enumerate() {
            if i < 32 && s.report.new_frames & (1 << i) != 0 {
                f(Item::Frame(tick, i, frame));
            }
        }
        if s.report.new_instruction {
            f(Item::Instruction(tick, &s.instruction));
        }
        if s.heartbeat.is_present() && s.heartbeat.seq != self.last_heartbeat_seq {
            self.last_heartbeat_seq = s.heartbeat.seq;
            f(Item::Heartbeat(tick, &s.heartbeat));
        }
        if s.completed != 0 {
            let status = result_status(&s.collect);
            if s.chunk_valid {
                f(Item::Result(tick, status, &s.chunk));
            } else {
                self.no_chunk.request_id = s.completed;
                f(Item::Result(tick, status, &self.no_chunk));
            }
        }
    }
}

impl LoopSource {
    /// [`Source::drain`], also handing every raw tick record to `on_tick`.
    pub fn drain_with(&mut self, f: &mut dyn FnMut(Item<'_>), on_tick: &mut dyn FnMut(&TickRecord)) {
        if let Some(tap) = self.inputs.take() {
            while let Some(snap) = tap.pop() {
                self.snapshot(&snap, f);
                tap.recycle(snap);
            }
            self.inputs = Some(tap);
        }
        self.telemetry.drain(|r| {
            on_tick(r);
            f(Item::Tick(&tick_row(r)));
        });
    }
}

impl Source for LoopSource {
    fn drain(&mut self, f: &mut dyn FnMut(Item<'_>)) {
        self.drain_with(f, &mut |_| {});
    }

    fn dropped(&self) -> u64 {
        LoopSource::dropped(self)
    }
}
