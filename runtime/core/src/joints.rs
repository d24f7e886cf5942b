//! Joint vectors, joint states and joint limits.

use std::ops::{Deref, DerefMut};

/// The most joints a robot profile may declare. Joint vectors are fixed-size
/// arrays of this capacity so they are `Copy` and never allocate.
pub const MAX_JOINTS: usize = 16;

/// A joint's calibrated range on the arm, which LeRobot's range units
/// (`range_m100_100`, `range_0_100`) are relative to: the calibration's
/// `range_min` and `range_max` in the robot's radians (Ganglion's servo
/// driver: `Joint::radians` of each), and whether its `drive_mode` mirrors
/// them. A policy in those units needs the arm's (a policy server: each
/// robot's, sent with its requests).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JointRange {
    /// `range_min`, rad.
    pub min_rad: f64,
    /// `range_max`, rad.
    pub max_rad: f64,
    /// LeRobot's `drive_mode` is set.
    pub inverted: bool,
}

/// A vector of per-joint values (radians, rad/s, ...) with a runtime length
/// of at most [`MAX_JOINTS`]. Dereferences to a slice of `len` values.
#[derive(Clone, Copy, PartialEq)]
pub struct JointVec {
    len: u8,
    data: [f64; MAX_JOINTS],
}

impl JointVec {
    /// `n` zeros. `n` is clamped to [`MAX_JOINTS`] (profiles are validated
    /// against it before any vector is built).
    pub fn zeros(n: usize) -> Self {
        JointVec { len: n.min(MAX_JOINTS) as u8, data: [0.0; MAX_JOINTS] }
    }

    /// `n` copies of `value`.
    pub fn splat(n: usize, value: f64) -> Self {
        let mut v = Self::zeros(n);
        v.fill(value);
        v
    }

    /// Copies `values`; `None` when there are more than [`MAX_JOINTS`].
    pub fn from_slice(values: &[f64]) -> Option<Self> {
        if values.len() > MAX_JOINTS {
            return None;
        }
        let mut v = Self::zeros(values.len());
        v.copy_from_slice(values);
        Some(v)
    }

    /// Copies `values` converting from f32; `None` when too many.
    pub fn from_f32(values: &[f32]) -> Option<Self> {
        if values.len() > MAX_JOINTS {
            return None;
        }
        let mut v = Self::zeros(values.len());
        for (d, s) in v.iter_mut().zip(values) {
            *d = f64::from(*s);
        }
        Some(v)
    }

    /// Whether every value is finite.
    pub fn is_finite(&self) -> bool {
        self.iter().all(|x| x.is_finite())
    }

    /// Largest absolute difference to `other` over the common joints.
    pub fn max_abs_diff(&self, other: &JointVec) -> f64 {
        self.iter().zip(other.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
    }
}

impl Deref for JointVec {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.data[..self.len as usize]
    }
}

impl DerefMut for JointVec {
    fn deref_mut(&mut self) -> &mut [f64] {
        &mut self.data[..self.len as usize]
    }
}

impl std::fmt::Debug for JointVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for JointVec {
    fn default() -> Self {
        Self::zeros(0)
    }
}

/// Measured state of the robot's joints, in profile joint order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JointState {
    /// Positions (rad for revolute joints).
    pub position: JointVec,
    /// Velocities (rad/s); zeros when the robot does not report them.
    pub velocity: JointVec,
    /// Efforts (N·m); zeros when the robot does not report them.
    pub effort: JointVec,
}

impl JointState {
    /// All zeros for `n` joints.
    pub fn zeros(n: usize) -> Self {
        JointState { position: JointVec::zeros(n), velocity: JointVec::zeros(n), effort: JointVec::zeros(n) }
    }

    /// Number of joints.
    pub fn len(&self) -> usize {
        self.position.len()
    }

    /// Whether there are no joints.
    pub fn is_empty(&self) -> bool {
        self.position.is_empty()
    }

    /// Whether every field is finite.
    pub fn is_finite(&self) -> bool {
        self.position.is_finite() && self.velocity.is_finite() && self.effort.is_finite()
    }
}

/// Limits of one joint, as configured in the robot profile.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointLimit {
    /// Lowest allowed position (rad).
    pub position_min: f64,
    /// Highest allowed position (rad).
    pub position_max: f64,
    /// Largest allowed speed (rad/s), > 0.
    pub velocity: f64,
    /// Largest allowed acceleration magnitude (rad/s²), > 0.
    pub acceleration: f64,
    /// Largest allowed jerk magnitude (rad/s³), > 0.
    pub jerk: f64,
}

impl JointLimit {
    /// Checks the limit is usable: finite, ordered, positive rates.
    /// Returns the name of the first offending field.
    pub fn validate(&self) -> Result<(), &'static str> {
        let fields = [
            ("position_min", self.position_min),
            ("position_max", self.position_max),
            ("velocity", self.velocity),
            ("acceleration", self.acceleration),
            ("jerk", self.jerk),
        ];
        for (name, v) in fields {
            if !v.is_finite() {
                return Err(name);
            }
        }
        if self.position_min >= self.position_max {
            return Err("position_max");
        }
        for (name, v) in &fields[2..] {
            if *v <= 0.0 {
                return Err(name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joint_vec_behaves_like_a_slice() {
        let mut v = JointVec::from_slice(&[1.0, 2.0, 3.0]).expect("fits");
        assert_eq!(v.len(), 3);
        v[1] = 5.0;
        assert_eq!(&*v, &[1.0, 5.0, 3.0]);
        assert!(JointVec::from_slice(&[0.0; MAX_JOINTS + 1]).is_none());
        assert!(!JointVec::from_slice(&[f64::NAN]).expect("fits").is_finite());
    }

    #[test]
    fn limit_validation_names_the_field() {
        let ok = JointLimit { position_min: -1.0, position_max: 1.0, velocity: 1.0, acceleration: 2.0, jerk: 10.0 };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(JointLimit { position_max: -2.0, ..ok }.validate(), Err("position_max"));
        assert_eq!(JointLimit { jerk: 0.0, ..ok }.validate(), Err("jerk"));
        assert_eq!(JointLimit { velocity: f64::NAN, ..ok }.validate(), Err("velocity"));
    }
}
