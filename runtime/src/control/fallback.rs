//! CPU-only fallback controllers: hold position, controlled stop, move home.
//!
//! A [`FallbackController`] takes over from the last command the loop sent
//! (bumpless: its first output is one limit-respecting step away from that
//! command) and produces one command per tick with a bounded amount of
//! arithmetic: no allocation, no I/O, no panics on any `f64`.
//!
//! - [`FallbackKind::Hold`]: keep the last commanded position.
//! - [`FallbackKind::Decelerate`]: a category-2 style controlled stop. All
//!   joints decelerate at constant rates chosen so they stop together (the
//!   path stays on the straight line the robot was moving along); the
//!   slowest-stopping joint uses its full acceleration limit, so the stop
//!   takes at most `max_j |v_j| / a_j` plus one period.
//! - [`FallbackKind::Home`]: the same stop, then a time-synchronized
//!   trapezoidal move of every joint to the configured home pose under
//!   velocity and acceleration limits.
//!
//! Jerk is not limited here: the shield after the controller limits it.
//! Every output respects position, velocity and acceleration limits measured
//! as finite differences of consecutive commands.

use ganglion_core::{JointLimit, JointVec, MAX_JOINTS};

use super::shield::{check_limits, LimitsError};

/// Which fallback controller runs when the supervisor leaves nominal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackKind {
    /// Keep the last commanded position (the shield bleeds off any speed).
    Hold,
    /// Decelerate to standstill within the acceleration limits, then hold.
    Decelerate,
    /// Stop, then move to [`FallbackConfig::home`] and hold there.
    Home,
}

/// `[fallback]` section of the robot profile.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// Which controller runs.
    pub kind: FallbackKind,
    /// Safe home pose (rad, profile joint order); required for `home`.
    pub home: Option<Vec<f64>>,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig { kind: FallbackKind::Decelerate, home: None }
    }
}

/// Why a [`FallbackConfig`] is unusable for a robot.
/// [`FallbackController::new`] refuses these rather than running a
/// different controller than the one configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackConfigError {
    /// `kind = "home"` but no `home` pose is given.
    MissingHome,
    /// `home` has a different number of values than the robot has joints.
    HomeLength {
        /// Values given.
        got: usize,
        /// Joints in the profile.
        expected: usize,
    },
    /// A `home` value is non-finite or outside its joint's position limits.
    HomeOutOfLimits {
        /// Index of the offending joint.
        joint: usize,
    },
    /// The joint limits or the period (the controller divides by the rates).
    Limits(LimitsError),
}

impl FallbackConfigError {
    /// The profile key at fault.
    pub fn key(&self) -> String {
        match self {
            FallbackConfigError::MissingHome | FallbackConfigError::HomeLength { .. } => "fallback.home".into(),
            FallbackConfigError::HomeOutOfLimits { joint } => format!("fallback.home[{joint}]"),
            FallbackConfigError::Limits(e) => e.key(),
        }
    }

    /// What would have been accepted.
    pub fn expected(&self) -> String {
        match self {
            FallbackConfigError::MissingHome => "a home pose when kind = \"home\"".into(),
            FallbackConfigError::HomeLength { got, expected } => {
                format!("one value per joint ({expected}), not {got}")
            }
            FallbackConfigError::HomeOutOfLimits { .. } => "a finite position inside that joint's limits".into(),
            FallbackConfigError::Limits(e) => e.expected().into(),
        }
    }
}

super::config_error!(FallbackConfigError);

impl FallbackConfig {
    /// Checks the config against the robot's joint limits (the limits
    /// themselves: [`check_limits`]).
    pub fn validate(&self, limits: &[JointLimit]) -> Result<(), FallbackConfigError> {
        let Some(home) = &self.home else {
            return if self.kind == FallbackKind::Home { Err(FallbackConfigError::MissingHome) } else { Ok(()) };
        };
        if home.len() != limits.len() {
            return Err(FallbackConfigError::HomeLength { got: home.len(), expected: limits.len() });
        }
        for (joint, (h, l)) in home.iter().zip(limits).enumerate() {
            if !h.is_finite() || *h < l.position_min || *h > l.position_max {
                return Err(FallbackConfigError::HomeOutOfLimits { joint });
            }
        }
        Ok(())
    }
}

/// What the controller is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not engaged yet, or holding a position.
    Hold,
    /// Decelerating at `decel` per joint towards standstill.
    Stopping,
    /// Following the trapezoid to home; `tick` counts periods since its start.
    Homing { tick: u64 },
}

/// Per-joint trapezoid from rest to rest: accelerate at `accel` for
/// `t_acc`, cruise at `v_peak`, decelerate; total duration shared by all joints.
#[derive(Debug, Clone, Copy, Default)]
struct Trapezoid {
    start: f64,
    dir: f64,
    accel: f64,
    v_peak: f64,
    t_acc: f64,
}

impl Trapezoid {
    /// Position and velocity at time `t` of a profile lasting `total` seconds.
    fn eval(&self, t: f64, total: f64) -> (f64, f64) {
        if self.accel <= 0.0 || self.v_peak <= 0.0 {
            return (self.start, 0.0);
        }
        let t = t.clamp(0.0, total);
        let d_acc = 0.5 * self.accel * self.t_acc * self.t_acc;
        let t_dec = total - self.t_acc;
        let (s, v) = if t < self.t_acc {
            (0.5 * self.accel * t * t, self.accel * t)
        } else if t < t_dec {
            (d_acc + self.v_peak * (t - self.t_acc), self.v_peak)
        } else {
            let r = total - t;
            let full = 2.0 * d_acc + self.v_peak * (t_dec - self.t_acc);
            (full - 0.5 * self.accel * r * r, self.accel * r)
        };
        (self.start + self.dir * s, self.dir * v)
    }
}

/// One of the fallback controllers of [`FallbackKind`], preallocated.
///
/// Invariants: after [`engage`](Self::engage), consecutive outputs of
/// [`step`](Self::step) (starting from the engage command) differ by at most
/// `velocity · T` per joint, their finite-difference velocities by at most
/// `acceleration · T`, and positions stay within the joint limits when the
/// engage command did; `step` does a bounded amount of work and never panics.
#[derive(Debug, Clone)]
pub struct FallbackController {
    kind: FallbackKind,
    n: usize,
    period_s: f64,
    home: JointVec,
    vmax: JointVec,
    amax: JointVec,
    pmin: JointVec,
    pmax: JointVec,
    pos: JointVec,
    vel: JointVec,
    decel: JointVec,
    phase: Phase,
    traps: [Trapezoid; MAX_JOINTS],
    trap_total_s: f64,
}

impl FallbackController {
    /// A controller for the joints of `limits`, running every `period_ns`.
    /// Refuses unusable limits ([`check_limits`]) and what
    /// [`FallbackConfig::validate`] refuses.
    pub fn new(cfg: &FallbackConfig, limits: &[JointLimit], period_ns: u64) -> Result<Self, FallbackConfigError> {
        check_limits(limits, period_ns).map_err(FallbackConfigError::Limits)?;
        cfg.validate(limits)?;
        let n = limits.len();
        let mut vmax = JointVec::zeros(n);
        let mut amax = JointVec::zeros(n);
        let mut pmin = JointVec::zeros(n);
        let mut pmax = JointVec::zeros(n);
        for (j, l) in limits.iter().enumerate() {
            vmax[j] = l.velocity;
            amax[j] = l.acceleration;
            pmin[j] = l.position_min;
            pmax[j] = l.position_max;
        }
        let mut home = JointVec::zeros(n);
        for (j, h) in cfg.home.iter().flatten().enumerate() {
            home[j] = *h;
        }
        Ok(FallbackController {
            kind: cfg.kind,
            n,
            period_s: period_ns as f64 * 1e-9,
            home,
            vmax,
            amax,
            pmin,
            pmax,
            pos: JointVec::zeros(n),
            vel: JointVec::zeros(n),
            decel: JointVec::zeros(n),
            phase: Phase::Hold,
            traps: [Trapezoid::default(); MAX_JOINTS],
            trap_total_s: 0.0,
        })
    }

    /// The controller running: the configured one.
    pub fn kind(&self) -> FallbackKind {
        self.kind
    }

    /// Takes over from the last command sent (`last_pos`, `last_vel`).
    ///
    /// Non-finite values (a shielded command never has them) are replaced:
    /// a velocity by 0, a position by the previous one this controller held.
    pub fn engage(&mut self, last_pos: &JointVec, last_vel: &JointVec) {
        for j in 0..self.n {
            let p = last_pos.get(j).copied().unwrap_or(f64::NAN);
            if p.is_finite() {
                self.pos[j] = p;
            }
            let v = last_vel.get(j).copied().unwrap_or(0.0);
            self.vel[j] = if v.is_finite() { v.clamp(-self.vmax[j], self.vmax[j]) } else { 0.0 };
        }
        self.phase = match self.kind {
            FallbackKind::Hold => {
                self.vel.fill(0.0);
                Phase::Hold
            }
            FallbackKind::Decelerate | FallbackKind::Home => {
                self.plan_stop();
                Phase::Stopping
            }
        };
        if self.phase == Phase::Stopping && self.vel.iter().all(|v| *v == 0.0) {
            self.after_stop();
        }
    }

    /// Synchronized stop: every joint reaches zero speed at the same time,
    /// the one that needs longest braking at its full acceleration limit.
    fn plan_stop(&mut self) {
        let mut t_stop: f64 = 0.0;
        for j in 0..self.n {
            t_stop = t_stop.max(self.vel[j].abs() / self.amax[j]);
        }
        for j in 0..self.n {
            self.decel[j] = if t_stop > 0.0 { (self.vel[j].abs() / t_stop).min(self.amax[j]) } else { 0.0 };
        }
    }

    /// What follows standstill: hold, or plan the move home.
    fn after_stop(&mut self) {
        self.vel.fill(0.0);
        if self.kind != FallbackKind::Home {
            self.phase = Phase::Hold;
            return;
        }
        // Slowest joint's time-optimal rest-to-rest duration sets the pace.
        let mut total: f64 = 0.0;
        for j in 0..self.n {
            let d = (self.home[j] - self.pos[j]).abs();
            let (v, a) = (self.vmax[j], self.amax[j]);
            let t = if d >= v * v / a { d / v + v / a } else { 2.0 * (d / a).sqrt() };
            total = total.max(t);
        }
        // Whole periods, so the last sample lands exactly on home.
        let ticks = (total / self.period_s).ceil();
        let total = ticks * self.period_s;
        for j in 0..self.n {
            let d = (self.home[j] - self.pos[j]).abs();
            let a = self.amax[j];
            // Lowest cruise speed that covers d in `total` with acceleration a:
            // v²/a − v·T + d = 0, smaller root (≤ the joint's own optimum ≤ vmax).
            let disc = (a * a * total * total - 4.0 * a * d).max(0.0);
            let v_peak = if d > 0.0 { 0.5 * (a * total - disc.sqrt()) } else { 0.0 };
            self.traps[j] = Trapezoid {
                start: self.pos[j],
                dir: if self.home[j] >= self.pos[j] { 1.0 } else { -1.0 },
                accel: a,
                v_peak: v_peak.min(self.vmax[j]),
                t_acc: if a > 0.0 { v_peak / a } else { 0.0 },
            };
        }
        self.trap_total_s = total;
        self.phase = Phase::Homing { tick: 0 };
    }

    /// The next command (one period after the previous one).
    pub fn step(&mut self, pos: &mut JointVec, vel: &mut JointVec) {
        match self.phase {
            Phase::Hold => {}
            Phase::Stopping => {
                let t = self.period_s;
                let mut moving = false;
                for j in 0..self.n {
                    let v = self.vel[j];
                    let dv = self.decel[j] * t;
                    let v_next = if v.abs() <= dv { 0.0 } else { v - dv.copysign(v) };
                    self.vel[j] = v_next;
                    self.pos[j] = (self.pos[j] + v_next * t).max(self.pmin[j]).min(self.pmax[j]);
                    moving |= v_next != 0.0;
                }
                if !moving {
                    self.after_stop();
                }
            }
            Phase::Homing { tick } => {
                let tick = tick + 1;
                let t = tick as f64 * self.period_s;
                for j in 0..self.n {
                    let (p, v) = self.traps[j].eval(t, self.trap_total_s);
                    self.pos[j] = p;
                    self.vel[j] = v;
                }
                if t >= self.trap_total_s - 0.5 * self.period_s {
                    self.pos.copy_from_slice(&self.home);
                    self.vel.fill(0.0);
                    self.phase = Phase::Hold;
                } else {
                    self.phase = Phase::Homing { tick };
                }
            }
        }
        *pos = self.pos;
        *vel = self.vel;
    }

    /// Whether the robot is commanded to stand still where it will stay
    /// (held, stopped, or arrived home).
    pub fn is_settled(&self) -> bool {
        self.phase == Phase::Hold
    }
}
