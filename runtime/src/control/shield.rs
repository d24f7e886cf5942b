//! Safety shield: the last stage before a command leaves the loop.
//!
//! Every command passes through [`Shield::apply`], which guarantees, for
//! any input sequence (NaN and infinities included), that consecutive
//! outputs respect per-joint position, velocity, acceleration and jerk
//! limits as finite differences at the control period `T`:
//!
//! ```text
//! v_k = (p_k − p_{k−1})/T,  a_k = (v_k − v_{k−1})/T,  j_k = (a_k − a_{k−1})/T
//! ```
//!
//! **How.** Each joint is a discrete triple integrator whose input is the
//! next acceleration `a'`, boxed by the jerk and acceleration limits. A box
//! is not enough near a position limit: the joint must be able to *stop*
//! before it, with bounded jerk. So the shield only picks an `a'` whose
//! resulting state is *viable*: the maximal-braking sequence from it
//! (`a` ramps at full jerk to `∓A` and stays there until the speed changes
//! sign) keeps the position within limits and the speed within `V`. The peak
//! of that sequence has a closed form (arithmetic series), so checking a
//! candidate is O(1); the best viable `a'` is found by bisection only when
//! the desired one is not viable. Viability is invariant: the braking step
//! of a viable state leads to a viable state, so a viable choice always
//! exists for position ranges wider than the braking overshoot in both
//! directions (any realistic joint).
//!
//! **Tracking.** If the desired position is reachable in one period within
//! the limits the shield outputs it exactly (a smooth trajectory passes
//! through untouched). Otherwise it approaches the desired position (assumed
//! moving at its observed speed) near time-optimally without overshooting
//! it: the largest acceleration from which a jerk-limited stop still ends on
//! the target (continuous-time closed form, found by bisection).
//!
//! **Workspace.** With an arm model and a box, the shield plans against the
//! box shrunk by `workspace_margin`. A desired pose whose tool point leaves
//! it is pulled back along the joint-space segment from the previous
//! target. A candidate output is accepted only if the whole path its
//! maximal braking would sweep (closed form, sampled at
//! [`PATH_SAMPLES`] + 2 poses) stays inside; otherwise every joint brakes
//! along the path checked on the previous tick. Known gap: that path
//! assumes a joint holds where it stops, while the real braking reverses
//! slightly after the stop; the margin absorbs this (the property test
//! sees at most ~1 mm beyond the real box with a 10 mm margin).
//!
//! **Violations.** Clamping is the shield's normal job: a step at a chunk
//! seam, a plan that starts a little away from the robot, or the hand-over
//! from the fallback back to the policy are *saturated* (tracked as fast as
//! the limits allow) and only counted. A [`ShieldOutcome::violation`] (the
//! supervisor's `limit_violation`, which engages the fallback) means the
//! command itself asks for something unsafe:
//!
//! - a desired position beyond a joint's position range by more than
//!   `tolerance` (rad), at once;
//! - a desired tool point outside the workspace box by more than
//!   `workspace_tolerance` (m), at once;
//! - a desired command that itself moves faster than
//!   `velocity · (1 + velocity_tolerance)` on `violation_ticks` consecutive
//!   ticks (a sustained over-speed, not a one-tick step); the speed is that of
//!   the desired command between two ticks, not the distance from the
//!   shield's lagging output, so lag never counts as the policy's fault;
//! - a non-finite or wrongly sized command, at once.
//!
//! Why: the earlier rule (any desired step more than `tolerance` beyond
//! `velocity · T` from the current output) made every seam step and every
//! return from fallback a violation, so an imprecise but safe policy kept
//! the fallback engaged for most of an episode (measured on reach-v1: 92 %
//! of ticks in fallback, 5 % success), while the shield already kept every
//! output within limits.
//!
//! Every clamp is counted per kind ([`ClampCounts`]); nothing allocates
//! after [`Shield::new`].

use ganglion_core::{ArmModel, JointLimit, JointVec, MAX_JOINTS};

/// What the shield does with a desired command that breaks a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldMode {
    /// Track the nearest command the limits allow.
    Saturate,
    /// Refuse a desired command outside the position limits, faster than the
    /// velocity limit allows, or outside the workspace box, and keep
    /// tracking the last accepted one.
    Reject,
}

/// Axis-aligned box the tool point must stay in (base frame, m).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceBox {
    /// Lower corner (x, y, z).
    pub min: [f64; 3],
    /// Upper corner (x, y, z).
    pub max: [f64; 3],
}

impl WorkspaceBox {
    /// Whether `p` lies inside (boundary included).
    pub fn contains(&self, p: &[f64; 3]) -> bool {
        (0..3).all(|i| p[i] >= self.min[i] && p[i] <= self.max[i])
    }

    /// How far `p` lies outside, per axis maximum (0 inside), m.
    pub fn distance_outside(&self, p: &[f64; 3]) -> f64 {
        (0..3).map(|i| (self.min[i] - p[i]).max(p[i] - self.max[i]).max(0.0)).fold(0.0, f64::max)
    }
}

/// `[shield]` section of the robot profile.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShieldConfig {
    /// Saturate or reject.
    pub mode: ShieldMode,
    /// rad: a desired position beyond a position limit by more than this is
    /// a violation (the supervisor's `LimitViolation` trigger).
    pub tolerance: f64,
    /// Fraction: a desired command moving faster than `velocity · (1 +
    /// velocity_tolerance)` is over speed on that tick.
    pub velocity_tolerance: f64,
    /// Consecutive over-speed ticks that make a violation (≥ 1). A step at a
    /// chunk seam is one tick; a policy that asks for too much speed keeps
    /// asking.
    pub violation_ticks: u32,
    /// m: a desired tool point outside the workspace box by more than this
    /// is a violation.
    pub workspace_tolerance: f64,
    /// Box the tool point must stay in; needs an arm model.
    pub workspace: Option<WorkspaceBox>,
    /// m: the shield plans against the box shrunk by this much on every
    /// side, so the stretch of a braking path between two checked poses
    /// cannot cut a corner out of the real box.
    pub workspace_margin: f64,
}

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig {
            mode: ShieldMode::Saturate,
            tolerance: 0.05,
            velocity_tolerance: 0.1,
            violation_ticks: 5,
            workspace_tolerance: 0.02,
            workspace: None,
            workspace_margin: 0.01,
        }
    }
}

/// Why a shield cannot be built: a `[shield]` value, or a joint limit,
/// arm or period it would otherwise have had to guess around. [`Shield::new`] refuses
/// these rather than substituting a value (a crawl for a bad rate, an empty
/// range for unordered positions): a limit that is not what the robot
/// needs is a configuration error, not something to run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShieldConfigError {
    /// `tolerance` is not a finite number ≥ 0.
    Tolerance,
    /// `velocity_tolerance` is not a finite number ≥ 0.
    VelocityTolerance,
    /// `violation_ticks` is 0.
    ViolationTicks,
    /// `workspace_tolerance` is not a finite number ≥ 0.
    WorkspaceTolerance,
    /// `workspace.min`/`max` non-finite or not ordered on some axis.
    WorkspaceBounds,
    /// `workspace_margin` negative, non-finite, or leaving no room in the box.
    WorkspaceMargin,
    /// A workspace box without arm kinematics: the box could not be checked.
    WorkspaceWithoutArm,
    /// The arm model has a different number of joints than the limits.
    ArmJoints,
    /// The joint limits or the period.
    Limits(LimitsError),
}

/// Why joint limits at a control period cannot be used by the shield or the
/// fallback controller (both divide by the rates and plan within the range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsError {
    /// No joints, or more than [`MAX_JOINTS`].
    JointCount,
    /// A joint's limit is non-finite, its positions are not ordered, or a
    /// rate is not positive.
    JointLimit {
        /// Index of the joint (profile order).
        joint: usize,
        /// The [`JointLimit`] field at fault: `position_min`,
        /// `position_max`, `velocity`, `acceleration` or `jerk`.
        field: &'static str,
    },
    /// The control period is 0.
    Period,
}

impl LimitsError {
    /// The profile key at fault (`robot.joints[2].limit.velocity`, ...).
    pub fn key(&self) -> String {
        match self {
            LimitsError::JointCount => "robot.joints".into(),
            LimitsError::JointLimit { joint, field } => format!("robot.joints[{joint}].limit.{field}"),
            LimitsError::Period => "control.rate_hz".into(),
        }
    }

    /// What would have been accepted.
    pub fn expected(&self) -> &'static str {
        match self {
            LimitsError::JointCount => "between 1 and 16 joints",
            LimitsError::JointLimit { field: "position_min" | "position_max", .. } => {
                "finite positions with position_min < position_max (rad)"
            }
            LimitsError::JointLimit { field: "velocity", .. } => "a finite velocity > 0 (rad/s)",
            LimitsError::JointLimit { field: "acceleration", .. } => "a finite acceleration > 0 (rad/s²)",
            LimitsError::JointLimit { .. } => "a finite jerk > 0 (rad/s³)",
            LimitsError::Period => "a positive control period",
        }
    }
}

/// Checks `limits` (1..=[`MAX_JOINTS`] joints, each passing
/// [`JointLimit::validate`]) and `period_ns` (> 0).
pub fn check_limits(limits: &[JointLimit], period_ns: u64) -> Result<(), LimitsError> {
    if limits.is_empty() || limits.len() > MAX_JOINTS {
        return Err(LimitsError::JointCount);
    }
    for (joint, l) in limits.iter().enumerate() {
        l.validate().map_err(|field| LimitsError::JointLimit { joint, field })?;
    }
    if period_ns == 0 {
        return Err(LimitsError::Period);
    }
    Ok(())
}

impl ShieldConfigError {
    /// The profile key at fault (`shield.tolerance`,
    /// `robot.joints[2].limit.velocity`, ...).
    pub fn key(&self) -> String {
        let key = match self {
            ShieldConfigError::Tolerance => "shield.tolerance",
            ShieldConfigError::VelocityTolerance => "shield.velocity_tolerance",
            ShieldConfigError::ViolationTicks => "shield.violation_ticks",
            ShieldConfigError::WorkspaceTolerance => "shield.workspace_tolerance",
            ShieldConfigError::WorkspaceBounds => "shield.workspace",
            ShieldConfigError::WorkspaceMargin => "shield.workspace_margin",
            ShieldConfigError::WorkspaceWithoutArm => "robot.arm",
            ShieldConfigError::ArmJoints => "robot.arm.joints",
            ShieldConfigError::Limits(e) => return e.key(),
        };
        key.into()
    }

    /// What would have been accepted.
    pub fn expected(&self) -> &'static str {
        match self {
            ShieldConfigError::Tolerance => "a finite number >= 0 (rad)",
            ShieldConfigError::VelocityTolerance => "a finite number >= 0 (fraction of the velocity limit)",
            ShieldConfigError::ViolationTicks => "at least 1 tick",
            ShieldConfigError::WorkspaceTolerance => "a finite number >= 0 (m)",
            ShieldConfigError::WorkspaceBounds => "finite `min` below `max` on every axis (m)",
            ShieldConfigError::WorkspaceMargin => "a finite number >= 0 (m), less than half the box's smallest side",
            ShieldConfigError::WorkspaceWithoutArm => "arm kinematics when shield.workspace is set",
            ShieldConfigError::ArmJoints => "one arm joint per robot joint",
            ShieldConfigError::Limits(e) => e.expected(),
        }
    }
}

super::config_error!(ShieldConfigError, LimitsError);

impl ShieldConfig {
    /// Checks the section's own values.
    pub fn validate(&self) -> Result<(), ShieldConfigError> {
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(ShieldConfigError::Tolerance);
        }
        if !(self.velocity_tolerance.is_finite() && self.velocity_tolerance >= 0.0) {
            return Err(ShieldConfigError::VelocityTolerance);
        }
        if self.violation_ticks == 0 {
            return Err(ShieldConfigError::ViolationTicks);
        }
        if !(self.workspace_tolerance.is_finite() && self.workspace_tolerance >= 0.0) {
            return Err(ShieldConfigError::WorkspaceTolerance);
        }
        if let Some(b) = &self.workspace {
            if !(0..3).all(|i| b.min[i].is_finite() && b.max[i].is_finite() && b.min[i] < b.max[i]) {
                return Err(ShieldConfigError::WorkspaceBounds);
            }
            let m = self.workspace_margin;
            if !(m.is_finite() && m >= 0.0 && (0..3).all(|i| 2.0 * m < b.max[i] - b.min[i])) {
                return Err(ShieldConfigError::WorkspaceMargin);
            }
        }
        Ok(())
    }

    /// Checks everything [`Shield::new`] needs: the section, then the
    /// joints' limits, the arm against them and the period.
    pub fn validate_for(
        &self,
        limits: &[JointLimit],
        arm: Option<&ArmModel>,
        period_ns: u64,
    ) -> Result<(), ShieldConfigError> {
        self.validate()?;
        check_limits(limits, period_ns).map_err(ShieldConfigError::Limits)?;
        match arm {
            Some(arm) if arm.dof() != limits.len() => Err(ShieldConfigError::ArmJoints),
            None if self.workspace.is_some() => Err(ShieldConfigError::WorkspaceWithoutArm),
            _ => Ok(()),
        }
    }
}

/// Ticks on which each kind of limit shaped the output (a tick counts once
/// per kind however many joints were affected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClampCounts {
    /// Desired position outside the joint's position range.
    pub position: u64,
    /// Desired step faster than the velocity limit.
    pub velocity: u64,
    /// Reaching the desired position needed more than the acceleration limit.
    pub acceleration: u64,
    /// Reaching the desired position needed more than the jerk limit.
    pub jerk: u64,
    /// Desired or planned tool point outside the workspace box.
    pub workspace: u64,
    /// Desired command with NaN, infinite or missing values.
    pub non_finite: u64,
}

/// What [`Shield::apply`] did with one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldOutcome {
    /// The output differs from the desired command.
    pub clamped: bool,
    /// The desired command lies beyond a position limit or the workspace by
    /// more than the tolerance, has been over speed for `violation_ticks`
    /// ticks, or was non-finite: the supervisor's `LimitViolation` (see the
    /// module docs).
    pub violation: bool,
    /// The desired command was refused (reject mode, or non-finite).
    pub rejected: bool,
    /// The desired command had NaN, infinite or missing values.
    pub non_finite: bool,
}

/// Limits of one joint in the form the math needs.
#[derive(Debug, Clone, Copy, Default)]
struct Lim {
    pmin: f64,
    pmax: f64,
    v: f64,
    a: f64,
    /// Largest acceleration change per period (`jerk · T`).
    d: f64,
}

/// Largest position and speed along the maximal-braking sequence from
/// `(p, v, a)` in the positive direction: `a_k = max(a − k·d, −A)`,
/// `v_k = v_{k−1} + a_k·T`, `p_k = p_{k−1} + v_k·T`, until the speed turns
/// non-positive. Closed forms of the arithmetic series; the position peak
/// is at the last step with positive speed, evaluated with its neighbours
/// to absorb rounding in locating it.
fn braking_peak(p: f64, v: f64, a: f64, t: f64, l: &Lim) -> (f64, f64) {
    let b = Braking::new(p, v, a, t, l);
    (b.peak, b.v_peak)
}

/// The maximal-braking sequence of [`braking_peak`] in closed form.
#[derive(Debug, Clone, Copy)]
struct Braking {
    p: f64,
    v: f64,
    a: f64,
    t: f64,
    amax: f64,
    d: f64,
    /// Last step of the jerk ramp (−1 when there is none).
    last: f64,
    /// State at the start of the constant −A phase (step `last + 1`).
    p2: f64,
    v2: f64,
    /// Highest position, the step where it is reached, highest speed.
    peak: f64,
    k_peak: f64,
    v_peak: f64,
}

impl Braking {
    fn new(p: f64, v: f64, a: f64, t: f64, l: &Lim) -> Self {
        let (amax, d) = (l.a, l.d);
        let a = a.max(-amax);
        // Steps whose acceleration still ramps (the next one reaches −A).
        let n1 = ((a + amax) / d).ceil().max(0.0);
        let mut b = Braking { p, v, a, t, amax, d, last: n1 - 1.0, p2: p, v2: v, peak: p, k_peak: 0.0, v_peak: v };
        let consider = |b: &mut Braking, k: f64| {
            let x = b.at_unclamped(k);
            if x > b.peak {
                b.peak = x;
                b.k_peak = k;
            }
        };
        let last = b.last;
        if last >= 0.0 {
            let kv = (a / d - 0.5).floor();
            for c in [kv, kv + 1.0] {
                b.v_peak = b.v_peak.max(b.vl(c.clamp(0.0, last)));
            }
            let bq = 2.0 * a / d - 1.0;
            let disc = bq * bq * 0.25 + 2.0 * v / (d * t);
            if disc >= 0.0 {
                let root = bq * 0.5 + disc.sqrt();
                if root >= 0.0 {
                    let m = root.ceil() - 1.0;
                    for c in [m - 1.0, m, m + 1.0] {
                        consider(&mut b, c.clamp(0.0, last));
                    }
                }
            }
            consider(&mut b, last);
            let vn = b.vl(last) - amax * t;
            b.p2 = b.pl(last) + t * vn;
            b.v2 = vn;
        }
        consider(&mut b, n1);
        b.v_peak = b.v_peak.max(b.v2);
        if b.v2 > 0.0 {
            let r = (b.v2 / (amax * t)).ceil() - 1.0;
            for c in [r - 1.0, r, r + 1.0] {
                consider(&mut b, n1 + c.max(0.0));
            }
        }
        b
    }

    fn vl(&self, k: f64) -> f64 {
        self.v + self.t * (k * self.a - self.d * k * (k + 1.0) * 0.5)
    }

    fn pl(&self, k: f64) -> f64 {
        let (a, d, t) = (self.a, self.d, self.t);
        self.p + t * (k * self.v + t * (a * k * (k + 1.0) * 0.5 - d * k * (k + 1.0) * (k + 2.0) / 6.0))
    }

    /// Position after `k` steps of the sequence (continued past the peak).
    fn at_unclamped(&self, k: f64) -> f64 {
        if k <= self.last {
            self.pl(k)
        } else {
            let r = k - (self.last + 1.0);
            self.p2 + self.t * (r * self.v2 - self.amax * self.t * r * (r + 1.0) * 0.5)
        }
    }

    /// Position after `k` steps, holding the peak once reached: the path
    /// a braking joint sweeps.
    fn at(&self, k: f64) -> f64 {
        if k >= self.k_peak {
            self.peak
        } else {
            self.at_unclamped(k)
        }
    }
}

/// Where a continuous-time jerk-limited stop that brings both speed and
/// acceleration to zero ends, from `(p, v, a)` with jerk `j` and
/// acceleration limit `amax`: jerk −j down to the needed deceleration
/// (capped at `amax`, then held), then +j back to zero.
fn rest_position(p: f64, v: f64, a: f64, j: f64, amax: f64) -> f64 {
    if v + a * a.abs() / (2.0 * j) < 0.0 {
        return -rest_position(-p, -v, -a, j, amax);
    }
    let seg = |p: &mut f64, v: &mut f64, a: &mut f64, jj: f64, tau: f64| {
        let tau = tau.max(0.0);
        *p += *v * tau + *a * tau * tau * 0.5 + jj * tau * tau * tau / 6.0;
        *v += *a * tau + jj * tau * tau * 0.5;
        *a += jj * tau;
    };
    let (mut p, mut v, mut a) = (p, v, a.min(amax));
    let a_min = -(a * a * 0.5 + j * v).max(0.0).sqrt();
    if a_min >= -amax {
        let tau = (a - a_min) / j;
        seg(&mut p, &mut v, &mut a, -j, tau);
        seg(&mut p, &mut v, &mut a, j, -a_min / j);
    } else {
        let tau = (a + amax) / j;
        seg(&mut p, &mut v, &mut a, -j, tau);
        let t_hold = (v - amax * amax / (2.0 * j)) / amax;
        seg(&mut p, &mut v, &mut a, 0.0, t_hold);
        seg(&mut p, &mut v, &mut a, j, amax / j);
    }
    p
}

/// Bisection iterations: the search interval is at most `2·jerk·T` wide,
/// so 30 halvings leave ~1e-9 of it.
const BISECT: usize = 30;

/// Largest `x` in `[lo, hi]` with `ok(x)`, given `ok` is monotone
/// (true below some threshold); `lo` when even `lo` fails.
fn largest_ok(lo: f64, hi: f64, ok: impl Fn(f64) -> bool) -> f64 {
    if ok(hi) {
        return hi;
    }
    if !ok(lo) {
        return lo;
    }
    let (mut good, mut bad) = (lo, hi);
    for _ in 0..BISECT {
        let mid = 0.5 * (good + bad);
        if ok(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
}

/// One joint's state: last output position, its finite-difference velocity
/// and acceleration.
#[derive(Debug, Clone, Copy, Default)]
struct JointState1 {
    p: f64,
    v: f64,
    a: f64,
}

impl JointState1 {
    /// The state after choosing next acceleration `x`.
    fn next(&self, x: f64, t: f64) -> (f64, f64) {
        let v = self.v + x * t;
        (self.p + v * t, v)
    }
}

/// Whether choosing `x` keeps the joint viable in both directions.
fn viable_fwd(s: &JointState1, x: f64, t: f64, l: &Lim) -> bool {
    let (p, v) = s.next(x, t);
    let (pp, vp) = braking_peak(p, v, x, t, l);
    pp <= l.pmax && vp <= l.v
}

fn viable_bwd(s: &JointState1, x: f64, t: f64, l: &Lim) -> bool {
    let (p, v) = s.next(x, t);
    let (pp, vp) = braking_peak(-p, -v, -x, t, l);
    pp <= -l.pmin && vp <= l.v
}

/// Direction of a joint's maximal braking: +1 when it is moving (or about
/// to move) up, −1 down, 0 at rest.
fn braking_dir(s: &JointState1) -> f64 {
    if s.v > 0.0 || (s.v == 0.0 && s.a > 0.0) {
        1.0
    } else if s.v < 0.0 || s.a < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The maximal-braking path of a joint, in its own direction of motion.
#[derive(Debug, Clone, Copy)]
struct StopPath {
    dir: f64,
    b: Braking,
}

impl StopPath {
    fn new(s: &JointState1, t: f64, l: &Lim) -> Self {
        let dir = braking_dir(s);
        let sign = if dir < 0.0 { -1.0 } else { 1.0 };
        StopPath { dir, b: Braking::new(sign * s.p, sign * s.v, sign * s.a, t, l) }
    }

    /// Steps until the joint stops.
    fn steps(&self) -> f64 {
        if self.dir == 0.0 {
            0.0
        } else {
            self.b.k_peak
        }
    }

    /// Position after `k` steps of braking.
    fn at(&self, k: f64) -> f64 {
        if self.dir < 0.0 {
            -self.b.at(k)
        } else {
            self.b.at(k)
        }
    }

    /// The next acceleration of the braking sequence.
    fn next_accel(&self, s: &JointState1, l: &Lim) -> f64 {
        if self.dir > 0.0 {
            (s.a - l.d).max(-l.a)
        } else if self.dir < 0.0 {
            (s.a + l.d).min(l.a)
        } else {
            0.0
        }
    }
}

/// Poses sampled along the braking paths (besides the start and the end).
pub const PATH_SAMPLES: usize = 8;

/// Which limits a joint's desired motion exceeded this tick.
#[derive(Debug, Clone, Copy, Default)]
struct Hits {
    position: bool,
    velocity: bool,
    acceleration: bool,
    jerk: bool,
    workspace: bool,
}

/// The safety shield (see the module docs).
///
/// Invariants: every output of [`apply`](Self::apply) is finite and within
/// the position limits; consecutive outputs (starting from the state set
/// by [`reset`](Self::reset)) respect the velocity, acceleration and jerk
/// limits as finite differences; with a workspace box, the tool point of
/// every output is inside it when it was at reset. `apply` never allocates
/// and never panics.
#[derive(Debug, Clone)]
pub struct Shield {
    cfg: ShieldConfig,
    n: usize,
    t: f64,
    lims: [Lim; MAX_JOINTS],
    arm: Option<ArmModel>,
    /// The workspace box shrunk by the margin: what the shield plans against.
    plan_box: Option<WorkspaceBox>,
    state: [JointState1; MAX_JOINTS],
    /// Last accepted desired command (the hold target in reject mode).
    target: JointVec,
    /// Speed of the desired command, from its last two samples.
    target_vel: JointVec,
    /// Acceleration of the desired command, from its last three samples.
    target_acc: JointVec,
    /// The last finite desired command, for its speed.
    last_desired: JointVec,
    /// Consecutive ticks the desired command was over speed.
    overspeed_run: u32,
    initialized: bool,
    counts: ClampCounts,
}

impl Shield {
    /// A shield for the joints of `limits` at control period `period_ns`.
    /// `arm` is needed for (and only used with) the workspace box. Refuses
    /// what [`ShieldConfig::validate_for`] refuses.
    pub fn new(
        cfg: &ShieldConfig,
        limits: &[JointLimit],
        arm: Option<ArmModel>,
        period_ns: u64,
    ) -> Result<Self, ShieldConfigError> {
        cfg.validate_for(limits, arm.as_ref(), period_ns)?;
        let n = limits.len();
        let t = period_ns as f64 * 1e-9;
        // A hair inside the configured rates, so rounding in the
        // finite-difference reconstruction never shows as a violation.
        const SHRINK: f64 = 1.0 - 1e-9;
        let mut lims = [Lim::default(); MAX_JOINTS];
        for (l, j) in lims.iter_mut().zip(limits) {
            *l = Lim {
                pmin: j.position_min,
                pmax: j.position_max,
                v: j.velocity * SHRINK,
                a: j.acceleration * SHRINK,
                d: j.jerk * SHRINK * t,
            };
        }
        let plan_box = cfg.workspace.map(|b| {
            let m = cfg.workspace_margin;
            WorkspaceBox { min: b.min.map(|x| x + m), max: b.max.map(|x| x - m) }
        });
        Ok(Shield {
            plan_box,
            cfg: cfg.clone(),
            n,
            t,
            lims,
            arm,
            state: [JointState1::default(); MAX_JOINTS],
            target: JointVec::zeros(n),
            target_vel: JointVec::zeros(n),
            target_acc: JointVec::zeros(n),
            last_desired: JointVec::zeros(n),
            overspeed_run: 0,
            initialized: false,
            counts: ClampCounts::default(),
        })
    }

    /// Bumpless (re)start at the measured position: zero velocity and
    /// acceleration. Non-finite values are replaced by the limit midpoint,
    /// out-of-range ones clamped into the limits.
    pub fn reset(&mut self, measured: &JointVec) {
        for j in 0..self.n {
            let l = &self.lims[j];
            let m = measured.get(j).copied().unwrap_or(f64::NAN);
            let p = if m.is_finite() { m.clamp(l.pmin, l.pmax) } else { 0.5 * (l.pmin + l.pmax) };
            self.state[j] = JointState1 { p, v: 0.0, a: 0.0 };
            self.target[j] = p;
            self.target_vel[j] = 0.0;
            self.target_acc[j] = 0.0;
            self.last_desired[j] = p;
        }
        self.overspeed_run = 0;
        self.initialized = true;
    }

    /// Whether a *measured* pose lies outside the envelope this shield
    /// enforces on commands: a joint beyond its position range by more than
    /// `tolerance`, or (with an arm model and a box) the tool point outside
    /// the box by more than `workspace_tolerance`. The loop raises
    /// [`Cause::OutOfEnvelope`](ganglion_core::Cause::OutOfEnvelope) for it.
    /// Non-finite or wrongly sized poses are not judged here (they are
    /// invalid observations). Allocation-free.
    pub fn outside_envelope(&self, measured: &JointVec) -> bool {
        if measured.len() != self.n || !measured.is_finite() {
            return false;
        }
        let beyond = (0..self.n).any(|j| {
            let l = &self.lims[j];
            (l.pmin - measured[j]).max(measured[j] - l.pmax) > self.cfg.tolerance
        });
        let outside_box = match (&self.arm, &self.cfg.workspace) {
            (Some(arm), Some(bx)) => bx.distance_outside(&arm.tool_position(measured)) > self.cfg.workspace_tolerance,
            _ => false,
        };
        beyond || outside_box
    }

    /// Current output state: position, velocity (rad/s).
    pub fn state(&self, pos: &mut JointVec, vel: &mut JointVec) {
        *pos = JointVec::zeros(self.n);
        *vel = JointVec::zeros(self.n);
        for j in 0..self.n {
            pos[j] = self.state[j].p;
            vel[j] = self.state[j].v;
        }
    }

    /// Filters `desired` into the next command (`pos`, and its velocity
    /// `vel`). A non-finite or wrongly sized `desired` is refused and the
    /// previous target kept (the robot comes to rest there within limits).
    /// Without a prior [`reset`](Self::reset), the first call resets at `desired`.
    pub fn apply(&mut self, desired: &JointVec, pos: &mut JointVec, vel: &mut JointVec) -> ShieldOutcome {
        let n = self.n;
        let mut out = ShieldOutcome::default();
        let finite = desired.len() == n && desired.is_finite();
        if !self.initialized {
            self.reset(desired);
        }
        let mut want = self.target;
        if !finite {
            self.counts.non_finite += 1;
            out = ShieldOutcome { clamped: true, violation: true, rejected: true, non_finite: true };
        } else {
            want.copy_from_slice(desired);
        }

        // Desired-side checks: position range, speed, workspace.
        let mut hits = Hits::default();
        let mut violation = false;
        if finite {
            let mut overspeed = false;
            for j in 0..n {
                let (l, s) = (&self.lims[j], &self.state[j]);
                let w = want[j];
                // The command's own speed (not the distance from our lagging output).
                overspeed |= (w - self.last_desired[j]).abs() > l.v * self.t * (1.0 + self.cfg.velocity_tolerance);
                self.last_desired[j] = w;
                let excess = (l.pmin - w).max(w - l.pmax);
                if excess > 0.0 {
                    hits.position = true;
                    violation |= excess > self.cfg.tolerance;
                    want[j] = w.clamp(l.pmin, l.pmax);
                }
                let step_excess = (want[j] - s.p).abs() - l.v * self.t;
                if step_excess > 1e-12 {
                    hits.velocity = true;
                }
            }
            self.overspeed_run = if overspeed { self.overspeed_run.saturating_add(1) } else { 0 };
            violation |= self.overspeed_run >= self.cfg.violation_ticks;
            if let (Some(arm), Some(bx)) = (&self.arm, &self.plan_box) {
                let tool = arm.tool_position(&want);
                if !bx.contains(&tool) {
                    hits.workspace = true;
                    out.clamped = true;
                    if let Some(real) = &self.cfg.workspace {
                        violation |= real.distance_outside(&arm.tool_position(desired)) > self.cfg.workspace_tolerance;
                    }
                    // Pull back along the segment from the last target (inside).
                    let from = self.target;
                    let (mut lo, mut hi) = (0.0f64, 1.0f64);
                    let mut probe = want;
                    for _ in 0..BISECT {
                        let mid = 0.5 * (lo + hi);
                        for j in 0..n {
                            probe[j] = from[j] + mid * (want[j] - from[j]);
                        }
                        if bx.contains(&arm.tool_position(&probe)) {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                    for j in 0..n {
                        want[j] = from[j] + lo * (want[j] - from[j]);
                    }
                    if self.cfg.mode == ShieldMode::Reject {
                        out.rejected = true;
                    }
                }
            }
            if self.cfg.mode == ShieldMode::Reject && (hits.position || hits.velocity || out.rejected) {
                out.rejected = true;
                want = self.target;
            }
            if !out.rejected {
                // A jump is not a motion to predict: only speeds the joint
                // could follow count.
                for j in 0..n {
                    let l = &self.lims[j];
                    let tv = (want[j] - self.target[j]) / self.t;
                    let tv = if tv.abs() <= l.v { tv } else { 0.0 };
                    let ta = (tv - self.target_vel[j]) / self.t;
                    self.target_acc[j] = if ta.abs() <= l.a { ta } else { 0.0 };
                    self.target_vel[j] = tv;
                }
                self.target = want;
            } else {
                self.target_vel.fill(0.0);
                self.target_acc.fill(0.0);
            }
        } else {
            self.target_vel.fill(0.0);
            self.target_acc.fill(0.0);
        }
        out.violation |= violation;
        let target = self.target;

        // Per-joint filtering.
        let mut next = [JointState1::default(); MAX_JOINTS];
        for j in 0..n {
            next[j] = self.filter_joint(j, target[j], self.target_vel[j], self.target_acc[j], &mut hits);
        }

        // Workspace check of the candidate and of the whole path its
        // maximal braking would sweep: if that leaves the box, brake now
        // along the path checked on the previous tick instead.
        if let (Some(arm), Some(bx)) = (&self.arm, &self.plan_box) {
            let mut paths = [None; MAX_JOINTS];
            let mut horizon: f64 = 0.0;
            for j in 0..n {
                let p = StopPath::new(&next[j], self.t, &self.lims[j]);
                horizon = horizon.max(p.steps());
                paths[j] = Some(p);
            }
            let mut q = JointVec::zeros(n);
            let mut inside = true;
            for i in 0..=PATH_SAMPLES + 1 {
                let k = horizon * i as f64 / (PATH_SAMPLES + 1) as f64;
                for j in 0..n {
                    q[j] = paths[j].map_or(next[j].p, |p| p.at(k));
                }
                if !bx.contains(&arm.tool_position(&q)) {
                    inside = false;
                    break;
                }
            }
            if !inside {
                hits.workspace = true;
                out.clamped = true;
                for (j, nx) in next.iter_mut().enumerate().take(n) {
                    let s = self.state[j];
                    let path = StopPath::new(&s, self.t, &self.lims[j]);
                    *nx = if path.dir == 0.0 {
                        s
                    } else {
                        let x = path.next_accel(&s, &self.lims[j]);
                        let (p, v) = s.next(x, self.t);
                        JointState1 { p, v, a: x }
                    };
                }
            }
        }

        // Commit, output, count.
        *pos = JointVec::zeros(n);
        *vel = JointVec::zeros(n);
        for j in 0..n {
            let prev = self.state[j];
            let mut s = next[j];
            // Reconstruct velocity and acceleration from the stored positions
            // so the internal state is exactly the finite differences.
            s.v = (s.p - prev.p) / self.t;
            s.a = (s.v - prev.v) / self.t;
            self.state[j] = s;
            pos[j] = s.p;
            vel[j] = s.v;
            out.clamped |= finite && (s.p - desired[j]).abs() > 1e-12;
        }
        self.counts.position += u64::from(hits.position);
        self.counts.velocity += u64::from(hits.velocity);
        self.counts.acceleration += u64::from(hits.acceleration);
        self.counts.jerk += u64::from(hits.jerk);
        self.counts.workspace += u64::from(hits.workspace);
        out
    }

    /// Next state of joint `j` heading for `target` (moving at `target_vel`,
    /// accelerating at `target_acc`).
    fn filter_joint(&self, j: usize, target: f64, target_vel: f64, target_acc: f64, hits: &mut Hits) -> JointState1 {
        let (l, s, t) = (&self.lims[j], &self.state[j], self.t);
        let lo = (s.a - l.d).max(-l.a);
        let hi = (s.a + l.d).min(l.a);
        let a_des = ((target - s.p) / t - s.v) / t;
        let mut x = a_des.clamp(lo, hi);
        if a_des.abs() > l.a {
            hits.acceleration = true;
        } else if x != a_des {
            hits.jerk = true;
        }
        if x != a_des {
            // Cannot land on the target this period: approach it as fast as
            // the limits allow while a jerk-limited stop (speed and
            // acceleration both back to zero) still ends on it, relative to
            // the target's own motion. Only a preference: safety is below.
            let jerk = l.d / t;
            let (e, ve) = (s.p - target, s.v - target_vel);
            // `target` is already where the desired command is at the time
            // of this output: the error after the step is measured against
            // it; from then on the target keeps its speed and acceleration.
            let rest = |y: f64| {
                let e1 = e + (s.v + y * t) * t;
                let v1 = ve + y * t;
                rest_position(e1, v1, y - target_acc, jerk, l.a)
            };
            x = if e <= 0.0 {
                x.min(largest_ok(lo, hi, |y| rest(y) <= 0.0))
            } else {
                x.max(-largest_ok(-hi, -lo, |y| rest(-y) >= 0.0))
            };
        }
        if !viable_fwd(s, x, t, l) {
            x = largest_ok(lo, x, |y| viable_fwd(s, y, t, l));
        }
        if !viable_bwd(s, x, t, l) {
            x = -largest_ok(-hi, -x, |y| viable_bwd(s, -y, t, l));
        }
        let (p, v) = s.next(x, t);
        // Last line of defence, reached only when both braking directions
        // conflict (a position range narrower than the braking overshoot).
        JointState1 { p: p.clamp(l.pmin, l.pmax), v, a: x }
    }

    /// Clamp counters since construction.
    pub fn clamp_counts(&self) -> &ClampCounts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: usize) -> Vec<JointLimit> {
        (0..n)
            .map(|_| JointLimit {
                position_min: -2.0,
                position_max: 2.0,
                velocity: 2.5,
                acceleration: 20.0,
                jerk: 400.0,
            })
            .collect()
    }

    /// A seam step is saturated, not a violation; a command that keeps
    /// asking for more than the velocity limit becomes one after exactly
    /// `violation_ticks` ticks; a position far beyond a limit is one at once.
    #[test]
    fn violations_mean_unsafe_commands_not_steps() {
        let cfg = ShieldConfig::default();
        let mut sh = Shield::new(&cfg, &limits(2), None, 10_000_000).expect("valid");
        let (mut p, mut v) = (JointVec::zeros(2), JointVec::zeros(2));
        sh.reset(&JointVec::from_slice(&[0.0, 0.0]).unwrap());
        // A 0.2 rad step (8x what the joint may move in one 10 ms tick), held.
        let step = JointVec::from_slice(&[0.2, 0.0]).unwrap();
        for k in 0..100 {
            let o = sh.apply(&step, &mut p, &mut v);
            assert!(!o.violation, "tick {k}: a held step is no violation");
            assert!(k > 0 || o.clamped, "the step is clamped");
        }
        assert!((p[0] - 0.2).abs() < 1e-6, "the step is reached: {}", p[0]);
        // A ramp at 2x the velocity limit: over speed on every tick.
        let mut first = None;
        for k in 0..20u32 {
            let d = JointVec::from_slice(&[0.2 + 0.05 * f64::from(k + 1), 0.0]).unwrap();
            if sh.apply(&d, &mut p, &mut v).violation && first.is_none() {
                first = Some(k + 1);
            }
        }
        assert_eq!(first, Some(cfg.violation_ticks), "sustained over-speed trips after violation_ticks ticks");
        // Far beyond the position limit: at once.
        let mut sh = Shield::new(&cfg, &limits(2), None, 10_000_000).expect("valid");
        sh.reset(&JointVec::from_slice(&[1.9, 0.0]).unwrap());
        let o = sh.apply(&JointVec::from_slice(&[2.2, 0.0]).unwrap(), &mut p, &mut v);
        assert!(o.violation && o.clamped);
        assert!(p[0] <= 2.0);
    }

    /// A measured pose beyond a joint's range by more than the tolerance,
    /// or with the tool outside the workspace box, is out of the envelope;
    /// within tolerance, or non-finite (an invalid observation, judged
    /// elsewhere), it is not.
    #[test]
    fn measured_poses_outside_the_envelope_are_told_apart() {
        let cfg = ShieldConfig::default();
        let sh = Shield::new(&cfg, &limits(2), None, 10_000_000).expect("valid");
        let q = |a: f64, b: f64| JointVec::from_slice(&[a, b]).unwrap();
        assert!(!sh.outside_envelope(&q(0.0, 1.99)));
        assert!(!sh.outside_envelope(&q(2.0 + 0.9 * cfg.tolerance, 0.0)), "within tolerance");
        assert!(sh.outside_envelope(&q(3.0, 0.0)), "3 rad where the limit is 2");
        assert!(sh.outside_envelope(&q(0.0, -2.1)));
        assert!(!sh.outside_envelope(&q(f64::NAN, 0.0)));
        // A box that excludes the start pose.
        let arm = ArmModel::three_dof();
        let start = JointVec::from_slice(&[0.0, -0.3, 0.6]).unwrap();
        let tool = arm.tool_position(&start);
        let inside = WorkspaceBox { min: tool.map(|x| x - 0.1), max: tool.map(|x| x + 0.1) };
        let beside = WorkspaceBox { min: tool.map(|x| x + 0.05), max: tool.map(|x| x + 0.3) };
        for (bx, out) in [(inside, false), (beside, true)] {
            let cfg = ShieldConfig { workspace: Some(bx), ..ShieldConfig::default() };
            let sh = Shield::new(&cfg, &limits(3), Some(arm.clone()), 10_000_000).expect("valid");
            assert_eq!(sh.outside_envelope(&start), out, "box {bx:?}");
        }
    }

    /// Every unusable limit, arm, period or `[shield]` value is refused at
    /// construction, naming the key; nothing is substituted.
    #[test]
    fn new_refuses_each_bad_limit() {
        use ShieldConfigError as E;
        let ok = ShieldConfig::default();
        type Edit = fn(&mut JointLimit);
        let bad_limit = |joint: usize, edit: Edit| {
            let mut l = limits(3);
            edit(&mut l[joint]);
            Shield::new(&ok, &l, None, 10_000_000).map(|_| ()).expect_err("refused")
        };
        let cases: [(Edit, &str); 11] = [
            (|l| l.position_min = f64::NAN, "position_min"),
            (|l| l.position_max = f64::INFINITY, "position_max"),
            (|l| l.position_min = 3.0, "position_max"),
            (|l| l.position_max = l.position_min, "position_max"),
            (|l| l.velocity = 0.0, "velocity"),
            (|l| l.velocity = -1.0, "velocity"),
            (|l| l.velocity = f64::NAN, "velocity"),
            (|l| l.acceleration = 0.0, "acceleration"),
            (|l| l.acceleration = f64::INFINITY, "acceleration"),
            (|l| l.jerk = -400.0, "jerk"),
            (|l| l.jerk = f64::NAN, "jerk"),
        ];
        for (edit, field) in cases {
            let e = bad_limit(1, edit);
            assert_eq!(e, E::Limits(LimitsError::JointLimit { joint: 1, field }), "{e}");
            assert!(e.to_string().starts_with(&format!("`robot.joints[1].limit.{field}`: expected ")), "{e}");
        }

        let refuse = |cfg: &ShieldConfig, lims: &[JointLimit], arm: Option<ArmModel>, period: u64| {
            Shield::new(cfg, lims, arm, period).map(|_| ()).expect_err("refused")
        };
        assert_eq!(refuse(&ok, &[], None, 10_000_000), E::Limits(LimitsError::JointCount));
        assert_eq!(refuse(&ok, &limits(MAX_JOINTS + 1), None, 10_000_000), E::Limits(LimitsError::JointCount));
        assert_eq!(refuse(&ok, &limits(3), None, 0), E::Limits(LimitsError::Period));
        assert_eq!(refuse(&ok, &limits(2), Some(ArmModel::three_dof()), 10_000_000), E::ArmJoints);
        let bx = WorkspaceBox { min: [-0.5; 3], max: [0.5; 3] };
        let boxed = ShieldConfig { workspace: Some(bx), ..ok.clone() };
        assert_eq!(refuse(&boxed, &limits(3), None, 10_000_000), E::WorkspaceWithoutArm);
        let section: [(ShieldConfig, E); 7] = [
            (ShieldConfig { tolerance: -0.1, ..ok.clone() }, E::Tolerance),
            (ShieldConfig { velocity_tolerance: f64::NAN, ..ok.clone() }, E::VelocityTolerance),
            (ShieldConfig { violation_ticks: 0, ..ok.clone() }, E::ViolationTicks),
            (ShieldConfig { workspace_tolerance: f64::INFINITY, ..ok.clone() }, E::WorkspaceTolerance),
            (ShieldConfig { workspace: Some(WorkspaceBox { min: [0.6; 3], ..bx }), ..ok.clone() }, E::WorkspaceBounds),
            (ShieldConfig { workspace_margin: 0.5, ..boxed.clone() }, E::WorkspaceMargin),
            (ShieldConfig { workspace_margin: -0.01, ..boxed.clone() }, E::WorkspaceMargin),
        ];
        for (cfg, want) in section {
            assert_eq!(refuse(&cfg, &limits(3), Some(ArmModel::three_dof()), 10_000_000), want);
        }
        Shield::new(&boxed, &limits(3), Some(ArmModel::three_dof()), 10_000_000).expect("a valid setup builds");
    }

    /// The closed form agrees with stepping the braking sequence.
    #[test]
    fn braking_peak_matches_simulation() {
        let t = 1e-3;
        let l = Lim { pmin: -10.0, pmax: 10.0, v: 5.0, a: 8.0, d: 150.0 * t };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        for _ in 0..2000 {
            let (p, v, a) = (rnd(), 3.0 * rnd(), l.a * rnd());
            let (mut sp, mut sv, mut sa) = (p, v, a);
            let (mut pp, mut vp) = (p, v);
            for _ in 0..100_000 {
                sa = (sa - l.d).max(-l.a);
                sv += sa * t;
                sp += sv * t;
                pp = pp.max(sp);
                vp = vp.max(sv);
                if sv <= 0.0 && sa <= 0.0 {
                    break;
                }
            }
            let (cp, cv) = braking_peak(p, v, a, t, &l);
            assert!((cp - pp).abs() < 1e-9, "p {p} v {v} a {a}: closed {cp} vs sim {pp}");
            assert!((cv - vp).abs() < 1e-9, "p {p} v {v} a {a}: closed {cv} vs sim {vp}");
        }
    }
}
