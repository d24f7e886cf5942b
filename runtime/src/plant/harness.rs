//! The deterministic harness: the control loop closed around the simulated
//! arm on a [`SimClock`], one thread, no wall time.
//!
//! Each [`SimHarness::step`] is one control period: the arm publishes what
//! is due at t_k into the input slots, the loop ticks at t_k, the arm takes
//! the command and integrates one period, the clock moves on. With a
//! [`SimLatencyExecutor`] the whole run is a function of the seed, the
//! configuration and the latency model: same inputs, bit-identical command
//! stream. Tests, `ganglion eval` and replay build on this.

use std::sync::Arc;

use ganglion_core::{input_slots, Clock, Command, CommandSink, InputWriters, Policy, SimClock, SinkError, Stamp};
use ganglion_sim::{SimArm, SimConfig, SimError};

use crate::control::control_loop::{ControlLoop, LoopConfig, LoopError};
use crate::control::inference::{InferenceExecutor, InjectedDelay, LatencyModel, SimLatencyExecutor};

/// A sink that only counts; the harness applies the returned command itself.
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Commands received.
    pub sent: u64,
}

impl CommandSink for CountingSink {
    fn send(&mut self, _cmd: &Command) -> Result<(), SinkError> {
        self.sent += 1;
        Ok(())
    }
}

/// Why a harness could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HarnessError {
    /// The simulated arm's configuration is unusable.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The loop could not be built.
    #[error(transparent)]
    Loop(#[from] LoopError),
}

/// How an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EpisodeOutcome {
    /// Episode number (selects scene and start pose).
    pub episode: u64,
    /// The tip reached the instructed target.
    pub success: bool,
    /// Ticks run.
    pub ticks: u64,
    /// Simulated seconds until the first tick on target, if reached.
    pub time_to_success_s: Option<f64>,
    /// Tip-to-target distance at the end (m).
    pub final_error_m: f64,
}

/// The control loop closed around a simulated arm on a simulated clock.
pub struct SimHarness {
    clock: SimClock,
    arm: SimArm,
    writers: InputWriters,
    control: ControlLoop,
    delay: InjectedDelay,
    period_ns: u64,
}

impl SimHarness {
    /// A harness whose policy runs on a [`SimLatencyExecutor`] with
    /// `latency` (fully deterministic).
    pub fn new(
        cfg: &LoopConfig,
        sim: &SimConfig,
        seed: u64,
        policy: Box<dyn Policy>,
        latency: LatencyModel,
    ) -> Result<SimHarness, HarnessError> {
        Self::new_on_clock(cfg, sim, seed, policy, latency, SimClock::new(Stamp::ZERO))
    }

    /// [`new`](Self::new) on a given clock (share it with a policy that
    /// reads the time, e.g. a split world model).
    pub fn new_on_clock(
        cfg: &LoopConfig,
        sim: &SimConfig,
        seed: u64,
        policy: Box<dyn Policy>,
        latency: LatencyModel,
        clock: SimClock,
    ) -> Result<SimHarness, HarnessError> {
        let delay = InjectedDelay::new();
        let inference = Box::new(SimLatencyExecutor::new(policy, latency, delay.clone()));
        let mut h = Self::with_clock(cfg, sim, seed, inference, clock)?;
        h.delay = delay;
        Ok(h)
    }

    /// A harness with any inference executor (e.g. a [`WorkerExecutor`]
    /// spawned with [`SimHarness::clock`]'s clock; such runs are not
    /// deterministic, since the worker answers in real time).
    ///
    /// [`WorkerExecutor`]: crate::control::inference::WorkerExecutor
    pub fn with_inference(
        cfg: &LoopConfig,
        sim: &SimConfig,
        seed: u64,
        inference: Box<dyn InferenceExecutor>,
    ) -> Result<SimHarness, HarnessError> {
        Self::with_clock(cfg, sim, seed, inference, SimClock::new(Stamp::ZERO))
    }

    /// Like [`with_inference`](Self::with_inference) on a given clock (share
    /// it with a worker so its compute stamps use the same time line).
    pub fn with_clock(
        cfg: &LoopConfig,
        sim: &SimConfig,
        seed: u64,
        inference: Box<dyn InferenceExecutor>,
        clock: SimClock,
    ) -> Result<SimHarness, HarnessError> {
        let arm = SimArm::new(sim, seed)?;
        let cameras: Vec<(String, u32, u32)> =
            inference.spec().cameras.iter().map(|c| (c.name.clone(), c.width, c.height)).collect();
        let (writers, readers) = input_slots(cfg.limits.len(), &cameras);
        let control = ControlLoop::new(cfg, readers, inference, Box::new(CountingSink::default()))?;
        Ok(SimHarness { clock, arm, writers, control, delay: InjectedDelay::new(), period_ns: cfg.period_ns })
    }

    /// The simulated clock (clone it to share the time line).
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// A clock handle for a worker thread.
    pub fn shared_clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }

    /// The current simulated time.
    pub fn now(&self) -> Stamp {
        self.clock.now()
    }

    /// The arm.
    pub fn arm(&self) -> &SimArm {
        &self.arm
    }

    /// The arm, e.g. to schedule faults or reset an episode.
    pub fn arm_mut(&mut self) -> &mut SimArm {
        &mut self.arm
    }

    /// The loop.
    pub fn control(&self) -> &ControlLoop {
        &self.control
    }

    /// The loop, e.g. to re-arm or attach telemetry.
    pub fn control_mut(&mut self) -> &mut ControlLoop {
        &mut self.control
    }

    /// The input writers (tests write faulty inputs here directly).
    pub fn writers_mut(&mut self) -> &mut InputWriters {
        &mut self.writers
    }

    /// The slow/stalled-inference hook of the simulated-latency executor
    /// (inert for harnesses built with another executor).
    pub fn injected_delay(&self) -> &InjectedDelay {
        &self.delay
    }

    /// Control period, ns.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// One control period; returns the command of this tick.
    pub fn step(&mut self) -> &Command {
        let now = self.clock.now();
        self.arm.publish_due(now, &mut self.writers);
        let cmd = self.control.tick(&self.clock, now);
        self.arm.apply_command(cmd);
        self.arm.step(self.period_ns);
        self.clock.advance(self.period_ns);
        self.control.last_command()
    }

    /// Runs `ticks` periods, handing each command to `on_command`.
    pub fn run(&mut self, ticks: u64, mut on_command: impl FnMut(&Command)) {
        for _ in 0..ticks {
            let cmd = *self.step();
            on_command(&cmd);
        }
    }

    /// Resets the arm to `episode` and runs until the tip has stayed on the
    /// target for `hold_ticks` ticks or `max_ticks` have passed.
    pub fn run_episode(&mut self, episode: u64, max_ticks: u64, hold_ticks: u64) -> EpisodeOutcome {
        self.arm.reset_episode(episode);
        let start = self.clock.now();
        let mut first_success = None;
        let mut on_target = 0;
        let mut ticks = 0;
        while ticks < max_ticks {
            self.step();
            ticks += 1;
            if self.arm.success() {
                first_success.get_or_insert(self.clock.now());
                on_target += 1;
                if on_target >= hold_ticks {
                    break;
                }
            } else {
                on_target = 0;
            }
        }
        EpisodeOutcome {
            episode,
            success: on_target >= hold_ticks.max(1),
            ticks,
            time_to_success_s: first_success.map(|t| t.saturating_since(start) as f64 * 1e-9),
            final_error_m: self.arm.tip_error_m(),
        }
    }
}
