//! Episodes on a running plant (`ganglion demo`): when the tip has stayed
//! on the instructed target for a moment while the policy drives, or after
//! a timeout, the next episode starts (new scene, new instruction).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ganglion_core::{InputWriters, Instruction, Mode, Stamp};
use ganglion_sim::{SimArm, TargetColor};

use super::{Flow, LocalPort, PlantPort};

/// Time the tip must stay within the success radius to count (ns).
const SUCCESS_HOLD_NS: u64 = 300_000_000;
/// An episode that has not succeeded by then starts over (ns).
const EPISODE_TIMEOUT_NS: u64 = 6_000_000_000;

/// Episode counters, shared with whoever shows them.
#[derive(Debug, Default)]
pub struct EpisodeCounters {
    /// Episodes started.
    pub episodes: AtomicU64,
    /// Episodes in which the tip held on the instructed target.
    pub successes: AtomicU64,
}

/// A [`LocalPort`] that rotates episodes.
pub struct Episodes {
    local: LocalPort,
    /// Instruction for every episode (default: the scene's own).
    instruction: Option<String>,
    target_color: Option<TargetColor>,
    counters: Arc<EpisodeCounters>,
    episode: u64,
    episode_start: Option<Stamp>,
    on_target_since: Option<Stamp>,
    instruction_seq: u64,
}

impl Episodes {
    /// Episodes around `local`; `instruction` overrides every scene's.
    pub fn new(local: LocalPort, instruction: Option<String>, counters: Arc<EpisodeCounters>) -> Episodes {
        let target_color = instruction.as_deref().and_then(TargetColor::from_instruction);
        Episodes {
            local,
            instruction,
            target_color,
            counters,
            episode: 0,
            episode_start: None,
            on_target_since: None,
            // Above any sequence number the arm writes itself.
            instruction_seq: 1 << 32,
        }
    }

    fn write_instruction(&mut self, writers: &mut InputWriters, now: Stamp) {
        if let Some(text) = &self.instruction {
            self.instruction_seq += 1;
            let seq = self.instruction_seq;
            writers.instruction.write_with(|s| {
                s.capture = now;
                s.receive = now;
                s.seq = seq;
                s.value = Instruction::new(seq, text);
            });
        }
    }

    /// Whether the policy drove the last command: only then does an
    /// episode count or end (a fallback holding the arm on the target is
    /// not the policy's success, and a new episode would give the world
    /// model a new instruction, releasing its surprise over a lasting
    /// camera fault).
    fn policy_drives(&self) -> bool {
        self.local.last_command().is_some_and(|c| matches!(c.mode, Mode::Nominal | Mode::Degraded))
    }

    /// Distance from the tip to the instructed target: the scene's, or the
    /// one the override names.
    fn error_m(&self, arm: &SimArm) -> f64 {
        let Some(color) = self.target_color else { return arm.tip_error_m() };
        let p = arm.tip_position();
        arm.scene().targets().iter().find(|x| x.color == color).map_or(f64::INFINITY, |x| {
            let d = [p[0] - x.position[0], p[1] - x.position[1], p[2] - x.position[2]];
            (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
        })
    }
}

impl PlantPort for Episodes {
    fn commands(&mut self, arm: &mut SimArm, now: Stamp, wait: Option<Duration>) -> anyhow::Result<Flow> {
        self.local.commands(arm, now, wait)
    }

    fn published(&mut self, arm: &mut SimArm, writers: &mut InputWriters, now: Stamp) -> anyhow::Result<Flow> {
        let Some(start) = self.episode_start else {
            self.episode_start = Some(now);
            self.counters.episodes.store(1, Ordering::Relaxed);
            self.write_instruction(writers, now);
            return Ok(Flow::Continue);
        };
        if self.error_m(arm) <= arm.config().success_radius_m {
            self.on_target_since.get_or_insert(now);
        } else {
            self.on_target_since = None;
        }
        let drives = self.policy_drives();
        let held = drives && self.on_target_since.is_some_and(|s| now.saturating_since(s) >= SUCCESS_HOLD_NS);
        let timed_out = drives && now.saturating_since(start) > EPISODE_TIMEOUT_NS;
        if held || timed_out {
            if held {
                self.counters.successes.fetch_add(1, Ordering::Relaxed);
            }
            self.episode += 1;
            self.episode_start = Some(now);
            self.on_target_since = None;
            arm.reset_episode(self.episode);
            arm.publish_due(now, writers);
            self.write_instruction(writers, now);
            self.counters.episodes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Flow::Continue)
    }
}
