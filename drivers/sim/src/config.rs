//! Configuration of the simulated arm and its reach scene.

use ganglion_core::{ArmModel, JointLimit, MAX_JOINTS};

use crate::SimError;

/// Everything that defines the simulated arm, its camera and its reach task.
///
/// Every field has a default (the 3-DoF arm with a 64×64 front camera), so a
/// TOML table may set only what differs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Kinematics; default [`ArmModel::three_dof`].
    pub arm: ArmModel,
    /// Per-joint limits; positions are hard stops of the simulated joints.
    pub limits: Vec<JointLimit>,
    /// Camera name the frames are written under (the first camera slot is
    /// used when no slot has this name).
    pub camera_name: String,
    /// Camera image width in pixels.
    pub camera_width: u32,
    /// Camera image height in pixels.
    pub camera_height: u32,
    /// Camera centre in the base frame (m).
    pub camera_position: [f64; 3],
    /// Point the camera looks at (m); the image's up is world +z.
    pub camera_look_at: [f64; 3],
    /// Vertical field of view (degrees).
    pub camera_fov_deg: f64,
    /// Joint-state publication rate (Hz).
    pub joint_rate_hz: f64,
    /// Camera frame rate (Hz).
    pub camera_rate_hz: f64,
    /// Sensor noise: pixels of each rendered frame whose lowest bit flips
    /// (seeded, deterministic). Real sensors never repeat a frame bit for
    /// bit, so with noise a frozen camera (which does) is detectable by
    /// content while the arm rests; 0 renders noise-free frames.
    pub camera_noise_pixels: u32,
    /// Physics substep (ns); `step` always integrates in whole substeps.
    pub physics_dt_ns: u64,
    /// Natural frequency of each joint's position servo (rad/s).
    pub actuator_omega_rad_s: f64,
    /// Damping ratio of the position servo (1 = critically damped).
    pub actuator_damping: f64,
    /// Velocity saturation of every joint (rad/s).
    pub max_velocity_rad_s: f64,
    /// Effort saturation of every joint (N·m).
    pub max_effort_nm: f64,
    /// Rotor + link inertia seen by each joint (kg·m²): acceleration =
    /// effort / inertia.
    pub joint_inertia_kg_m2: f64,
    /// Number of targets in the scene (1..=3, distinct colours). With one
    /// target the instruction carries no information the image lacks, so
    /// policies without a language input (LeRobot's ACT) can solve the task.
    pub n_targets: usize,
    /// The tip counts as on the target within this distance (m).
    pub success_radius_m: f64,
    /// Radius of the target spheres (m).
    pub target_radius_m: f64,
    /// Height of every target centre above the floor (m).
    pub target_height_m: f64,
    /// Horizontal distance of targets from the base axis, `[min, max]` (m).
    pub target_distance_m: [f64; 2],
    /// Bearing of targets around the base axis, `[min, max]` (rad, 0 = +x).
    pub target_bearing_rad: [f64; 2],
    /// Smallest distance between two target centres (m).
    pub target_separation_m: f64,
    /// Lowest initial joint positions of an episode (rad), one per joint.
    pub initial_pose_min: Vec<f64>,
    /// Highest initial joint positions of an episode (rad), one per joint.
    pub initial_pose_max: Vec<f64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        let limit = |min: f64, max: f64| JointLimit {
            position_min: min,
            position_max: max,
            velocity: 2.5,
            acceleration: 20.0,
            jerk: 400.0,
        };
        SimConfig {
            arm: ArmModel::three_dof(),
            limits: vec![limit(-2.6, 2.6), limit(-2.2, 1.2), limit(-2.6, 2.6)],
            camera_name: "front".to_string(),
            camera_width: 64,
            camera_height: 64,
            camera_position: [0.9, 0.0, 0.9],
            camera_look_at: [0.25, 0.0, 0.12],
            camera_fov_deg: 55.0,
            joint_rate_hz: 100.0,
            camera_rate_hz: 30.0,
            camera_noise_pixels: 16,
            physics_dt_ns: 1_000_000,
            actuator_omega_rad_s: 25.0,
            actuator_damping: 1.0,
            max_velocity_rad_s: 2.5,
            max_effort_nm: 1.0,
            joint_inertia_kg_m2: 0.05,
            n_targets: 3,
            success_radius_m: 0.03,
            target_radius_m: 0.04,
            target_height_m: 0.05,
            target_distance_m: [0.25, 0.45],
            target_bearing_rad: [-0.8, 0.8],
            target_separation_m: 0.12,
            initial_pose_min: vec![-0.6, -1.3, 0.6],
            initial_pose_max: vec![0.6, -0.5, 1.6],
        }
    }
}

fn check(ok: bool, key: &'static str, expected: &'static str) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::InvalidConfig { key, expected })
    }
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

impl SimConfig {
    /// Checks every field; the error names the key and what was expected.
    pub fn validate(&self) -> Result<(), SimError> {
        let dof = self.arm.dof();
        check((1..=MAX_JOINTS).contains(&dof), "arm.joints", "between 1 and 16 joints")?;
        check(self.limits.len() == dof, "limits", "one entry per arm joint")?;
        for l in &self.limits {
            check(l.validate().is_ok(), "limits", "finite, ordered positions and positive rates")?;
        }
        check(!self.camera_name.is_empty(), "camera_name", "a non-empty name")?;
        check((8..=1024).contains(&self.camera_width), "camera_width", "8..=1024 pixels")?;
        check((8..=1024).contains(&self.camera_height), "camera_height", "8..=1024 pixels")?;
        let finite3 = |p: &[f64; 3]| p.iter().all(|v| v.is_finite());
        check(finite3(&self.camera_position), "camera_position", "finite coordinates")?;
        check(finite3(&self.camera_look_at), "camera_look_at", "finite coordinates")?;
        let d: Vec<f64> = (0..3).map(|i| self.camera_look_at[i] - self.camera_position[i]).collect();
        let horizontal = (d[0] * d[0] + d[1] * d[1]).sqrt();
        check(horizontal > 1e-6, "camera_look_at", "a point not straight above or below the camera")?;
        check(
            self.camera_fov_deg.is_finite() && self.camera_fov_deg > 1.0 && self.camera_fov_deg < 170.0,
            "camera_fov_deg",
            "between 1 and 170 degrees",
        )?;
        check(positive(self.joint_rate_hz) && self.joint_rate_hz <= 1e6, "joint_rate_hz", "a rate in (0, 1e6] Hz")?;
        check(positive(self.camera_rate_hz) && self.camera_rate_hz <= 1e6, "camera_rate_hz", "a rate in (0, 1e6] Hz")?;
        check(self.physics_dt_ns > 0 && self.physics_dt_ns <= 10_000_000, "physics_dt_ns", "1..=10_000_000 ns")?;
        check(positive(self.actuator_omega_rad_s), "actuator_omega_rad_s", "a positive number")?;
        check(positive(self.actuator_damping), "actuator_damping", "a positive number")?;
        check(positive(self.max_velocity_rad_s), "max_velocity_rad_s", "a positive number")?;
        check(positive(self.max_effort_nm), "max_effort_nm", "a positive number")?;
        check(positive(self.joint_inertia_kg_m2), "joint_inertia_kg_m2", "a positive number")?;
        check((1..=3).contains(&self.n_targets), "n_targets", "1, 2 or 3")?;
        check(positive(self.success_radius_m), "success_radius_m", "a positive number")?;
        check(positive(self.target_radius_m), "target_radius_m", "a positive number")?;
        check(self.target_height_m.is_finite(), "target_height_m", "a finite number")?;
        let [dmin, dmax] = self.target_distance_m;
        check(positive(dmin) && dmax.is_finite() && dmax >= dmin, "target_distance_m", "0 < min <= max")?;
        let [bmin, bmax] = self.target_bearing_rad;
        check(bmin.is_finite() && bmax.is_finite() && bmax >= bmin, "target_bearing_rad", "finite min <= max")?;
        check(
            self.target_separation_m.is_finite() && self.target_separation_m >= 0.0,
            "target_separation_m",
            "a non-negative number",
        )?;
        check(self.initial_pose_min.len() == dof, "initial_pose_min", "one value per arm joint")?;
        check(self.initial_pose_max.len() == dof, "initial_pose_max", "one value per arm joint")?;
        for (i, (lo, hi)) in self.initial_pose_min.iter().zip(&self.initial_pose_max).enumerate() {
            let l = &self.limits[i];
            check(lo.is_finite() && hi.is_finite() && lo <= hi, "initial_pose_max", "finite and >= initial_pose_min")?;
            check(
                *lo >= l.position_min && *hi <= l.position_max,
                "initial_pose_min",
                "initial poses within the joint limits",
            )?;
        }
        Ok(())
    }

    /// Joint-state period (ns).
    pub fn joint_period_ns(&self) -> u64 {
        (1e9 / self.joint_rate_hz).round().max(1.0) as u64
    }

    /// Camera period (ns).
    pub fn camera_period_ns(&self) -> u64 {
        (1e9 / self.camera_rate_hz).round().max(1.0) as u64
    }

    /// Bytes of one rgb8 camera frame.
    pub fn frame_bytes(&self) -> usize {
        self.camera_width as usize * self.camera_height as usize * 3
    }
}
