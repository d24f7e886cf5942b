//! Forward kinematics of a serial arm of revolute joints.
//!
//! Used by the shield (workspace box), the simulated arm (rendering) and the
//! scripted expert. Plain `f64` math: no allocation, no dependencies.

/// A joint's rotation axis in its own frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    /// Rotation about x.
    X,
    /// Rotation about y.
    Y,
    /// Rotation about z.
    Z,
}

/// One revolute joint: where it sits relative to the previous joint's
/// frame (after that joint's rotation), and what it rotates about.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmJoint {
    /// Translation from the previous frame to this joint (m).
    pub offset: [f64; 3],
    /// Rotation axis.
    pub axis: Axis,
}

/// A serial arm: joints from the base outwards and the tool point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmModel {
    /// Joints from the base outwards.
    pub joints: Vec<ArmJoint>,
    /// Tool point in the last joint's frame (m).
    pub tool: [f64; 3],
}

type Mat3 = [[f64; 3]; 3];

fn rotation(axis: Axis, angle: f64) -> Mat3 {
    let (s, c) = angle.sin_cos();
    match axis {
        Axis::X => [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]],
        Axis::Y => [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]],
        Axis::Z => [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]],
    }
}

fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

fn mat_vec(a: &Mat3, v: &[f64; 3]) -> [f64; 3] {
    [
        a[0][0] * v[0] + a[0][1] * v[1] + a[0][2] * v[2],
        a[1][0] * v[0] + a[1][1] * v[1] + a[1][2] * v[2],
        a[2][0] * v[0] + a[2][1] * v[1] + a[2][2] * v[2],
    ]
}

impl ArmModel {
    /// The default simulated arm: base yaw, shoulder pitch, elbow pitch;
    /// a 0.1 m base column, 0.3 m upper arm, 0.25 m forearm.
    pub fn three_dof() -> Self {
        ArmModel {
            joints: vec![
                ArmJoint { offset: [0.0, 0.0, 0.1], axis: Axis::Z },
                ArmJoint { offset: [0.0, 0.0, 0.0], axis: Axis::Y },
                ArmJoint { offset: [0.3, 0.0, 0.0], axis: Axis::Y },
            ],
            tool: [0.25, 0.0, 0.0],
        }
    }

    /// Number of joints.
    pub fn dof(&self) -> usize {
        self.joints.len()
    }

    /// Positions of every joint origin and finally the tool point, in the
    /// base frame, written into `out` (which must hold `dof() + 1` points;
    /// extra joints in `q` are ignored, missing ones count as 0).
    /// Returns the number of points written.
    pub fn chain_points(&self, q: &[f64], out: &mut [[f64; 3]]) -> usize {
        let mut rot: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut pos = [0.0; 3];
        let mut n = 0;
        for (i, joint) in self.joints.iter().enumerate() {
            let d = mat_vec(&rot, &joint.offset);
            pos = [pos[0] + d[0], pos[1] + d[1], pos[2] + d[2]];
            if n < out.len() {
                out[n] = pos;
                n += 1;
            }
            rot = mat_mul(&rot, &rotation(joint.axis, q.get(i).copied().unwrap_or(0.0)));
        }
        let d = mat_vec(&rot, &self.tool);
        if n < out.len() {
            out[n] = [pos[0] + d[0], pos[1] + d[1], pos[2] + d[2]];
            n += 1;
        }
        n
    }

    /// The tool point in the base frame.
    pub fn tool_position(&self, q: &[f64]) -> [f64; 3] {
        let mut rot: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut pos = [0.0; 3];
        for (i, joint) in self.joints.iter().enumerate() {
            let d = mat_vec(&rot, &joint.offset);
            pos = [pos[0] + d[0], pos[1] + d[1], pos[2] + d[2]];
            rot = mat_mul(&rot, &rotation(joint.axis, q.get(i).copied().unwrap_or(0.0)));
        }
        let d = mat_vec(&rot, &self.tool);
        [pos[0] + d[0], pos[1] + d[1], pos[2] + d[2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_dof_reaches_forward_and_up() {
        let arm = ArmModel::three_dof();
        let p = arm.tool_position(&[0.0, 0.0, 0.0]);
        assert!((p[0] - 0.55).abs() < 1e-12 && p[1].abs() < 1e-12 && (p[2] - 0.1).abs() < 1e-12);
        // Yaw by 90°: the arm points along +y.
        let p = arm.tool_position(&[std::f64::consts::FRAC_PI_2, 0.0, 0.0]);
        assert!(p[0].abs() < 1e-12 && (p[1] - 0.55).abs() < 1e-12);
        // Pitch about +y by -90°: the arm points straight up.
        let p = arm.tool_position(&[0.0, -std::f64::consts::FRAC_PI_2, 0.0]);
        assert!(p[0].abs() < 1e-12 && (p[2] - 0.65).abs() < 1e-12);
        let mut pts = [[0.0; 3]; 4];
        assert_eq!(arm.chain_points(&[0.3, 0.2, 0.1], &mut pts), 4);
        assert_eq!(pts[3], arm.tool_position(&[0.3, 0.2, 0.1]));
    }
}
