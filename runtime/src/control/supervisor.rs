//! The supervisor: the mode machine (Simplex-style runtime assurance;
//! docs/ARCHITECTURE.md, "The tick", step 4).
//!
//! ```text
//! Startup ──► Nominal ⇄ Degraded
//!    │           │         │
//!    └───────────┴────┬────┘
//!                     ▼
//!                 Fallback ──► SafeStop (latched; leaves only by rearm())
//! ```
//!
//! The loop calls [`Supervisor::update`] once per tick, after sampling and
//! collecting inference results, with every trigger active this tick. The
//! returned mode applies to the same tick, so a trigger detected in tick k
//! gets the fallback command in tick k: the first tick boundary after its
//! detection. Everything here is `Copy` state and integer arithmetic.

use ganglion_core::{Cause, CauseSet, Mode};

/// Supervisor settings (`[supervisor]` in the robot profile).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// Ticks every hard trigger must stay clear (with a policy action
    /// available) before Fallback hands control back to the policy.
    pub recover_after_ticks: u32,
    /// Ticks every trigger must stay clear before [`Supervisor::rearm`] may
    /// leave SafeStop.
    pub safe_stop_clear_ticks: u32,
    /// Causes that latch SafeStop at once.
    pub latch: Vec<Cause>,
    /// Causes that only degrade (the policy keeps driving, the mode says
    /// Degraded); every other cause engages the fallback.
    pub degrade_on: Vec<Cause>,
    /// Consecutive ticks in Fallback after which the supervisor gives up and
    /// latches SafeStop; 0 never escalates.
    pub escalate_after_ticks: u32,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            recover_after_ticks: 10,
            safe_stop_clear_ticks: 30,
            latch: vec![Cause::OperatorStop, Cause::HeartbeatLost],
            degrade_on: Vec::new(),
            escalate_after_ticks: 0,
        }
    }
}

/// A `[supervisor]` value that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorConfigError {
    /// `recover_after_ticks` is 0: Fallback would hand back on the tick a
    /// cause clears, before it is known to stay clear.
    RecoverAfterTicks,
    /// `degrade_on[index]` also latches SafeStop (`latch`): it cannot do both.
    DegradeLatched {
        /// Index into `degrade_on`.
        index: usize,
    },
}

impl SupervisorConfigError {
    /// The profile key at fault.
    pub fn key(&self) -> String {
        match self {
            SupervisorConfigError::RecoverAfterTicks => "supervisor.recover_after_ticks".into(),
            SupervisorConfigError::DegradeLatched { index } => format!("supervisor.degrade_on[{index}]"),
        }
    }

    /// What would have been accepted.
    pub fn expected(&self) -> &'static str {
        match self {
            SupervisorConfigError::RecoverAfterTicks => "at least 1 tick",
            SupervisorConfigError::DegradeLatched { .. } => "a cause that does not also latch SafeStop",
        }
    }
}

super::config_error!(SupervisorConfigError);

impl SupervisorConfig {
    /// Checks the tick counts and that no cause both degrades and latches.
    pub fn validate(&self) -> Result<(), SupervisorConfigError> {
        if self.recover_after_ticks == 0 {
            return Err(SupervisorConfigError::RecoverAfterTicks);
        }
        match self.degrade_on.iter().position(|c| self.latch.contains(c)) {
            Some(index) => Err(SupervisorConfigError::DegradeLatched { index }),
            None => Ok(()),
        }
    }
}

/// Why [`Supervisor::rearm`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RearmError {
    /// The supervisor is not in SafeStop; nothing to re-arm.
    #[error("not in safe stop")]
    NotLatched,
    /// Triggers were active too recently.
    #[error("triggers clear for {clear_ticks} ticks, {needed} needed")]
    NotClear {
        /// Ticks all triggers have been clear.
        clear_ticks: u32,
        /// Ticks required by `safe_stop_clear_ticks`.
        needed: u32,
    },
}

/// Per-cause counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CauseCounts {
    /// Ticks each cause was active, indexed by [`Cause::code`].
    pub active_ticks: [u64; Cause::COUNT],
    /// Times each cause became active (rising edges).
    pub onsets: [u64; Cause::COUNT],
}

impl CauseCounts {
    /// Ticks `cause` was active.
    pub fn ticks(&self, cause: Cause) -> u64 {
        self.active_ticks[cause.code() as usize]
    }

    /// Times `cause` became active.
    pub fn onsets(&self, cause: Cause) -> u64 {
        self.onsets[cause.code() as usize]
    }

    /// Whether `cause` was ever active.
    pub fn seen(&self, cause: Cause) -> bool {
        self.ticks(cause) > 0
    }

    /// Ticks each cause was active, by name, for the causes that were
    /// (what the run and demo reports show). Allocates: not for the tick.
    pub fn ticks_by_name(&self) -> std::collections::BTreeMap<String, u64> {
        Cause::ALL.iter().filter(|c| self.seen(**c)).map(|c| (c.name().to_string(), self.ticks(*c))).collect()
    }
}

/// Whether the policy (through the chunk executor) or the fallback
/// controller drives in `mode`.
pub const fn policy_drives(mode: Mode) -> bool {
    matches!(mode, Mode::Nominal | Mode::Degraded)
}

/// The mode machine. See the module docs for the transitions.
#[derive(Debug, Clone)]
pub struct Supervisor {
    recover_after_ticks: u32,
    safe_stop_clear_ticks: u32,
    escalate_after_ticks: u32,
    latch: CauseSet,
    soft: CauseSet,
    mode: Mode,
    previous: CauseSet,
    clear_ticks: u32,
    fallback_ticks: u32,
    counts: CauseCounts,
    mode_ticks: [u64; 5],
    transitions: u64,
}

impl Supervisor {
    /// A supervisor in Startup.
    pub fn new(cfg: &SupervisorConfig) -> Self {
        Supervisor {
            recover_after_ticks: cfg.recover_after_ticks,
            safe_stop_clear_ticks: cfg.safe_stop_clear_ticks,
            escalate_after_ticks: cfg.escalate_after_ticks,
            latch: cfg.latch.iter().copied().collect(),
            soft: cfg.degrade_on.iter().copied().collect(),
            mode: Mode::Startup,
            previous: CauseSet::EMPTY,
            clear_ticks: 0,
            fallback_ticks: 0,
            counts: CauseCounts::default(),
            mode_ticks: [0; 5],
            transitions: 0,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Per-cause counters since construction.
    pub fn counts(&self) -> &CauseCounts {
        &self.counts
    }

    /// Ticks spent in each mode, indexed by `Mode as usize`.
    pub fn mode_ticks(&self) -> &[u64; 5] {
        &self.mode_ticks
    }

    /// Number of mode changes.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Consecutive ticks with no trigger at all.
    pub fn clear_ticks(&self) -> u32 {
        self.clear_ticks
    }

    /// One tick: `causes` are every trigger active now, `action_ready` says
    /// whether the chunk executor has a valid action for this tick.
    /// `Degraded` means a soft cause (`[supervisor] degrade_on`) is active —
    /// a cause the report names. Shield shaping (a clamped seam step) is the
    /// shield's normal job: counted (`clamped_ticks`, tick `clamps`), not a
    /// mode.
    ///
    /// `InferenceLate` while in Startup is expected (no chunk yet) and does
    /// not count as a trigger there.
    pub fn update(&mut self, causes: CauseSet, action_ready: bool) -> Mode {
        let causes =
            if self.mode == Mode::Startup { CauseSet(causes.0 & !(1 << Cause::InferenceLate.code())) } else { causes };
        for c in causes.iter() {
            let i = c.code() as usize;
            self.counts.active_ticks[i] += 1;
            if !self.previous.contains(c) {
                self.counts.onsets[i] += 1;
            }
        }
        self.previous = causes;
        self.clear_ticks = if causes.is_empty() { self.clear_ticks.saturating_add(1) } else { 0 };
        let hard = CauseSet(causes.0 & !self.soft.0);
        let soft_active = !CauseSet(causes.0 & self.soft.0).is_empty();

        let next = if self.mode == Mode::SafeStop || causes.0 & self.latch.0 != 0 {
            Mode::SafeStop
        } else if !hard.is_empty() {
            Mode::Fallback
        } else {
            match self.mode {
                Mode::Startup if action_ready => Mode::Nominal,
                Mode::Startup => Mode::Startup,
                Mode::Fallback if action_ready && self.clear_ticks >= self.recover_after_ticks => Mode::Nominal,
                Mode::Fallback => Mode::Fallback,
                // The policy drives but has nothing for this tick: the
                // loop reports InferenceLate, so this arm is reached only
                // when the loop says a fresh chunk is pending.
                Mode::Nominal | Mode::Degraded if !action_ready => Mode::Fallback,
                Mode::Nominal | Mode::Degraded => {
                    if soft_active {
                        Mode::Degraded
                    } else {
                        Mode::Nominal
                    }
                }
                Mode::SafeStop => Mode::SafeStop,
            }
        };
        let next = if next == Mode::Fallback {
            self.fallback_ticks = self.fallback_ticks.saturating_add(1);
            if self.escalate_after_ticks > 0 && self.fallback_ticks > self.escalate_after_ticks {
                Mode::SafeStop
            } else {
                Mode::Fallback
            }
        } else {
            self.fallback_ticks = 0;
            next
        };
        if next != self.mode {
            self.transitions += 1;
        }
        self.mode = next;
        self.mode_ticks[next as usize] += 1;
        next
    }

    /// Engages the fallback within the current tick, after the shield found
    /// a limit violation in the policy's command. Returns the new mode.
    pub fn escalate(&mut self, cause: Cause) -> Mode {
        let i = cause.code() as usize;
        self.counts.active_ticks[i] += 1;
        if !self.previous.contains(cause) {
            self.counts.onsets[i] += 1;
        }
        self.previous.insert(cause);
        self.clear_ticks = 0;
        let next =
            if self.mode == Mode::SafeStop || self.latch.contains(cause) { Mode::SafeStop } else { Mode::Fallback };
        if next != self.mode {
            self.transitions += 1;
            self.mode_ticks[self.mode as usize] = self.mode_ticks[self.mode as usize].saturating_sub(1);
            self.mode_ticks[next as usize] += 1;
        }
        self.mode = next;
        next
    }

    /// Leaves SafeStop for Startup (the policy must deliver a fresh chunk
    /// before it drives again). Allowed only when every trigger has been
    /// clear for `safe_stop_clear_ticks` ticks.
    pub fn rearm(&mut self) -> Result<(), RearmError> {
        if self.mode != Mode::SafeStop {
            return Err(RearmError::NotLatched);
        }
        if self.clear_ticks < self.safe_stop_clear_ticks {
            return Err(RearmError::NotClear { clear_ticks: self.clear_ticks, needed: self.safe_stop_clear_ticks });
        }
        self.mode = Mode::Startup;
        self.fallback_ticks = 0;
        self.transitions += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(causes: &[Cause]) -> CauseSet {
        causes.iter().copied().collect()
    }

    #[test]
    fn startup_waits_for_a_first_action_and_ignores_inference_late() {
        let mut s = Supervisor::new(&SupervisorConfig::default());
        assert_eq!(s.update(set(&[Cause::InferenceLate]), false), Mode::Startup);
        assert_eq!(s.update(CauseSet::EMPTY, true), Mode::Nominal);
        assert_eq!(s.counts().ticks(Cause::InferenceLate), 0);
    }

    #[test]
    fn every_non_latching_trigger_engages_fallback_in_the_same_tick() {
        let cfg = SupervisorConfig::default();
        for cause in Cause::ALL {
            let mut s = Supervisor::new(&cfg);
            s.update(CauseSet::EMPTY, true);
            assert_eq!(s.mode(), Mode::Nominal);
            let expected = if cfg.latch.contains(&cause) { Mode::SafeStop } else { Mode::Fallback };
            assert_eq!(s.update(set(&[cause]), true), expected, "{cause:?}");
            assert_eq!(s.counts().onsets(cause), 1);
        }
    }

    #[test]
    fn fallback_recovers_after_clear_ticks_with_an_action() {
        let cfg = SupervisorConfig { recover_after_ticks: 3, ..Default::default() };
        let mut s = Supervisor::new(&cfg);
        s.update(CauseSet::EMPTY, true);
        s.update(set(&[Cause::StaleCamera]), true);
        assert_eq!(s.update(CauseSet::EMPTY, true), Mode::Fallback);
        assert_eq!(s.update(CauseSet::EMPTY, false), Mode::Fallback);
        assert_eq!(s.update(CauseSet::EMPTY, true), Mode::Nominal);
        // Shield shaping alone is the shield's normal job, not a degradation.
        assert_eq!(s.update(CauseSet::EMPTY, true), Mode::Nominal);
        assert_eq!(s.update(CauseSet::EMPTY, true), Mode::Nominal);
    }

    #[test]
    fn safe_stop_stays_latched_without_rearm() {
        let cfg = SupervisorConfig { safe_stop_clear_ticks: 5, ..Default::default() };
        let mut s = Supervisor::new(&cfg);
        s.update(CauseSet::EMPTY, true);
        assert_eq!(s.update(set(&[Cause::OperatorStop]), true), Mode::SafeStop);
        assert_eq!(s.rearm(), Err(RearmError::NotClear { clear_ticks: 0, needed: 5 }));
        for _ in 0..1000 {
            assert_eq!(s.update(CauseSet::EMPTY, true), Mode::SafeStop);
        }
        assert_eq!(s.rearm(), Ok(()));
        assert_eq!(s.mode(), Mode::Startup);
        assert_eq!(s.rearm(), Err(RearmError::NotLatched));
        assert_eq!(s.update(CauseSet::EMPTY, true), Mode::Nominal);
    }

    #[test]
    fn fallback_escalates_to_safe_stop_when_configured() {
        let cfg = SupervisorConfig { escalate_after_ticks: 2, ..Default::default() };
        let mut s = Supervisor::new(&cfg);
        s.update(CauseSet::EMPTY, true);
        let late = set(&[Cause::InferenceLate]);
        assert_eq!(s.update(late, false), Mode::Fallback);
        assert_eq!(s.update(late, false), Mode::Fallback);
        assert_eq!(s.update(late, false), Mode::SafeStop);
    }

    #[test]
    fn soft_causes_only_degrade() {
        let cfg = SupervisorConfig { degrade_on: vec![Cause::WorldModelSurprise], ..Default::default() };
        let mut s = Supervisor::new(&cfg);
        s.update(CauseSet::EMPTY, true);
        assert_eq!(s.update(set(&[Cause::WorldModelSurprise]), true), Mode::Degraded);
        assert_eq!(s.update(CauseSet::EMPTY, true), Mode::Nominal);
    }

    #[test]
    fn in_tick_escalation_for_limit_violation() {
        let mut s = Supervisor::new(&SupervisorConfig::default());
        s.update(CauseSet::EMPTY, true);
        assert_eq!(s.escalate(Cause::LimitViolation), Mode::Fallback);
        assert_eq!(s.counts().onsets(Cause::LimitViolation), 1);
    }
}
