//! The scripted expert: analytic inverse kinematics of the yaw-pitch-pitch
//! arm and minimum-jerk joint trajectories to the instructed target.

use ganglion_core::{ActionChunk, ActionKind, ArmModel, Axis, JointLimit, JointVec, Stamp};

use crate::config::SimConfig;

/// Why the expert cannot help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExpertError {
    /// The arm is not the yaw-pitch-pitch shape the analytic IK solves: three
    /// joints about z, y, y; the first two on the base axis; the third and
    /// the tool along the links' x axes.
    #[error("the scripted expert solves only yaw-pitch-pitch 3-DoF arms")]
    UnsupportedArm,
    /// The point is out of reach, or its solution breaks a joint limit.
    #[error("target out of reach or outside the joint limits")]
    Unreachable,
}

/// Fraction of the velocity limit a planned trajectory may use at its peak.
const SPEED_MARGIN: f64 = 0.7;
/// Shortest and longest planned reach (s): long enough to stay smooth,
/// short enough that the tip settles within 3 s.
const MIN_DURATION_S: f64 = 1.0;
const MAX_DURATION_S: f64 = 2.2;

/// Geometry of the yaw-pitch-pitch arm, read from its [`ArmModel`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Geometry {
    shoulder_z: f64,
    upper: f64,
    fore: f64,
}

impl Geometry {
    fn of(arm: &ArmModel) -> Result<Geometry, ExpertError> {
        let j = &arm.joints;
        let shape_ok = j.len() == 3
            && j[0].axis == Axis::Z
            && j[1].axis == Axis::Y
            && j[2].axis == Axis::Y
            && j[0].offset[0] == 0.0
            && j[0].offset[1] == 0.0
            && j[1].offset[0] == 0.0
            && j[1].offset[1] == 0.0
            && j[2].offset[1] == 0.0
            && j[2].offset[2] == 0.0
            && j[2].offset[0] > 0.0
            && arm.tool[1] == 0.0
            && arm.tool[2] == 0.0
            && arm.tool[0] > 0.0;
        if !shape_ok {
            return Err(ExpertError::UnsupportedArm);
        }
        Ok(Geometry { shoulder_z: j[0].offset[2] + j[1].offset[2], upper: j[2].offset[0], fore: arm.tool[0] })
    }
}

/// A minimum-jerk move from `start` to `goal` beginning at `t0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Joint positions at `t0`.
    pub start: JointVec,
    /// Joint positions at the end (held afterwards).
    pub goal: JointVec,
    /// Start time.
    pub t0: Stamp,
    /// Duration, ns.
    pub duration_ns: u64,
}

impl Plan {
    /// Position and velocity targets at `t` (the start before `t0`, the
    /// goal after the end).
    pub fn sample(&self, t: Stamp) -> (JointVec, JointVec) {
        let duration = self.duration_ns as f64 * 1e-9;
        let tau = (t.signed_since(self.t0) as f64 * 1e-9 / duration).clamp(0.0, 1.0);
        // s(τ) = 10τ³ − 15τ⁴ + 6τ⁵: zero velocity and acceleration at both ends.
        let s = tau * tau * tau * (10.0 + tau * (-15.0 + 6.0 * tau));
        let ds = 30.0 * tau * tau * (1.0 - tau) * (1.0 - tau) / duration;
        let mut q = self.start;
        let mut v = JointVec::zeros(self.start.len());
        for i in 0..q.len() {
            let d = self.goal[i] - self.start[i];
            q[i] = self.start[i] + d * s;
            v[i] = d * ds;
        }
        (q, v)
    }

    /// End time.
    pub fn end(&self) -> Stamp {
        self.t0.add_nanos(self.duration_ns)
    }
}

/// Analytic-IK reach expert for the configured 3-DoF arm.
///
/// It plans a minimum-jerk joint trajectory from the current pose to the IK
/// solution (elbow up) of the target, lasting long enough that the peak speed
/// stays within 70 % of the velocity limit (1 s to 2.2 s), so the tip is
/// within a few millimetres of the target well inside 3 s.
#[derive(Debug, Clone)]
pub struct ScriptedExpert {
    geometry: Geometry,
    limits: Vec<JointLimit>,
    max_velocity: f64,
    plan: Option<Plan>,
}

impl ScriptedExpert {
    /// An expert for `cfg`'s arm.
    pub fn new(cfg: &SimConfig) -> Result<ScriptedExpert, ExpertError> {
        let max_velocity = cfg.limits.iter().map(|l| l.velocity).fold(cfg.max_velocity_rad_s, f64::min);
        Ok(ScriptedExpert { geometry: Geometry::of(&cfg.arm)?, limits: cfg.limits.clone(), max_velocity, plan: None })
    }

    /// Joint positions that put the tool point at `p` (base frame), elbow up.
    pub fn inverse_kinematics(&self, p: [f64; 3]) -> Result<JointVec, ExpertError> {
        let g = &self.geometry;
        let r = p[0].hypot(p[1]);
        let h = p[2] - g.shoulder_z;
        let c2 = (r * r + h * h - g.upper * g.upper - g.fore * g.fore) / (2.0 * g.upper * g.fore);
        if !c2.is_finite() || !(-1.0..=1.0).contains(&c2) {
            return Err(ExpertError::Unreachable);
        }
        // Elevation angles in the arm's vertical plane; a positive pitch
        // about +y points the link down, so joint angle = -elevation.
        let elbow_elev = -c2.acos();
        let shoulder_elev = h.atan2(r) - (g.fore * elbow_elev.sin()).atan2(g.upper + g.fore * elbow_elev.cos());
        let q =
            JointVec::from_slice(&[p[1].atan2(p[0]), -shoulder_elev, -elbow_elev]).ok_or(ExpertError::Unreachable)?;
        let within = q.iter().zip(&self.limits).all(|(v, l)| (l.position_min..=l.position_max).contains(v));
        if within && q.is_finite() {
            Ok(q)
        } else {
            Err(ExpertError::Unreachable)
        }
    }

    /// Plans a move from `start` (joint positions at `t0`) to the tool point
    /// `target`, replacing any previous plan.
    pub fn plan(&mut self, start: &[f64], target: [f64; 3], t0: Stamp) -> Result<Plan, ExpertError> {
        let goal = self.inverse_kinematics(target)?;
        let start = JointVec::from_slice(start).filter(|s| s.len() == goal.len()).ok_or(ExpertError::UnsupportedArm)?;
        let travel = start.max_abs_diff(&goal);
        // Minimum jerk peaks at 1.875 × travel / duration.
        let duration = (1.875 * travel / (SPEED_MARGIN * self.max_velocity)).clamp(MIN_DURATION_S, MAX_DURATION_S);
        let plan = Plan { start, goal, t0, duration_ns: (duration * 1e9) as u64 };
        self.plan = Some(plan);
        Ok(plan)
    }

    /// Moves the current plan's goal to the IK solution of `target`, keeping
    /// its start and timing (for a refined estimate of the same target).
    pub fn retarget(&mut self, target: [f64; 3]) -> Result<(), ExpertError> {
        let goal = self.inverse_kinematics(target)?;
        if let Some(plan) = &mut self.plan {
            plan.goal = goal;
        }
        Ok(())
    }

    /// The current plan.
    pub fn current_plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// Forgets the plan.
    pub fn clear(&mut self) {
        self.plan = None;
    }

    /// Position and velocity targets of the plan at `t`; `None` without a plan.
    pub fn sample(&self, t: Stamp) -> Option<(JointVec, JointVec)> {
        self.plan.map(|p| p.sample(t))
    }

    /// Fills `out` with the plan's absolute targets for `t + i·step_ns`,
    /// `i = 0..max_steps` (the [`ActionChunk`] convention: action `i` is meant
    /// for `obs_stamp + i·step_ns`). Returns false (leaving `out` alone)
    /// without a plan or when joint counts differ.
    pub fn chunk_into(&self, t: Stamp, step_ns: u64, out: &mut ActionChunk) -> bool {
        let Some(plan) = &self.plan else { return false };
        if out.n_joints() != plan.start.len() {
            return false;
        }
        out.obs_stamp = t;
        out.step_ns = step_ns;
        out.kind = ActionKind::AbsolutePosition;
        let steps = out.set_steps(out.max_steps());
        for i in 0..steps {
            let (q, _) = plan.sample(t.add_nanos(i as u64 * step_ns));
            out.step_mut(i).copy_from_slice(&q);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_kinematics_inverts_forward_kinematics() {
        let cfg = SimConfig::default();
        let e = ScriptedExpert::new(&cfg).expect("3-DoF arm");
        for p in [[0.3, 0.0, 0.05], [0.25, 0.2, 0.05], [0.2, -0.35, 0.1], [0.45, 0.05, 0.3]] {
            let q = e.inverse_kinematics(p).expect("reachable");
            let tip = cfg.arm.tool_position(&q);
            assert!((0..3).all(|i| (tip[i] - p[i]).abs() < 1e-9), "{p:?} -> {q:?} -> {tip:?}");
            assert!(q[2] > 0.0, "elbow up");
        }
        assert_eq!(e.inverse_kinematics([2.0, 0.0, 0.0]), Err(ExpertError::Unreachable));
        let mut other = cfg.clone();
        other.arm.joints[1].axis = Axis::X;
        assert_eq!(ScriptedExpert::new(&other).err(), Some(ExpertError::UnsupportedArm));
    }

    #[test]
    fn plan_is_smooth_and_ends_at_the_goal() {
        let mut e = ScriptedExpert::new(&SimConfig::default()).expect("3-DoF arm");
        let plan = e.plan(&[0.0, -1.0, 1.0], [0.35, 0.1, 0.05], Stamp(1_000)).expect("reachable");
        let (q0, v0) = plan.sample(Stamp(0));
        assert_eq!(q0, plan.start);
        assert!(v0.iter().all(|v| *v == 0.0));
        let (q1, v1) = plan.sample(plan.end().add_nanos(5));
        assert_eq!(q1, plan.goal);
        assert!(v1.iter().all(|v| v.abs() < 1e-12));
        let mid = plan.sample(Stamp(1_000 + plan.duration_ns / 2)).1;
        assert!(mid.iter().all(|v| v.abs() <= 0.7 * 2.5 + 1e-9));
        let mut chunk = ActionChunk::with_capacity(8, 3);
        assert!(e.chunk_into(Stamp(1_000), 100_000_000, &mut chunk));
        assert_eq!(chunk.steps(), 8);
        assert_eq!(chunk.step(0), &*plan.start);
    }
}
