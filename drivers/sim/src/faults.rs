//! Fault hooks of the simulated arm: scheduled windows in which its sensor
//! outputs are dropped, delayed, frozen, blacked out, noisy or non-finite.
//! Their command-line names live in one registry with the wire and policy
//! faults (`ganglion::faults`), not here.

use ganglion_core::Stamp;

/// One kind of sensor fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// Joint states are not published (the slot sequence does not advance).
    DropJoints,
    /// Camera frames are not published.
    DropCamera,
    /// Joint-state capture stamps lag `now` by `lag_ns` (the content is the
    /// current state; the stamp says it is older, as after a slow link).
    DelayJoints {
        /// How far the capture stamp lags, ns.
        lag_ns: u64,
    },
    /// Camera capture stamps lag `now` by `lag_ns`.
    DelayCamera {
        /// How far the capture stamp lags, ns.
        lag_ns: u64,
    },
    /// Frames repeat the last pixels published before the fault, with new
    /// stamps and new sequence numbers (a camera stuck on one image).
    FreezeCamera,
    /// Frames repeat the last pixels *and* its sequence number, with new
    /// stamps (a driver re-sending one message).
    FreezeCameraSameSeq,
    /// Frames are all zeros (lens cap, dead sensor).
    BlackFrame,
    /// Seeded Gaussian noise of `std_rad` on every published joint position.
    JointNoise {
        /// Standard deviation (rad).
        std_rad: f64,
    },
    /// The first joint's published position is NaN.
    NanJoint,
    /// The first joint's published position is off by `rad` (a calibration
    /// error, or an arm outside its envelope).
    JointOffset {
        /// Offset (rad).
        rad: f64,
    },
}

/// A fault active on `[start, end)` of the simulation clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultWindow {
    /// What goes wrong.
    pub kind: FaultKind,
    /// First instant it applies.
    pub start: Stamp,
    /// First instant it no longer applies ([`Stamp`]`(u64::MAX)`: never ends).
    pub end: Stamp,
}

impl FaultWindow {
    /// Whether the window covers `now`.
    pub fn covers(&self, now: Stamp) -> bool {
        self.start <= now && now < self.end
    }
}

/// The faults scheduled on one simulated arm.
///
/// Scheduling (`add`, `clear`) happens outside the real-time path; the arm
/// only reads the schedule while publishing, which never allocates.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    windows: Vec<FaultWindow>,
}

/// The combined effect of every window active at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ActiveFaults {
    /// Joint states are dropped.
    pub drop_joints: bool,
    /// Frames are dropped.
    pub drop_camera: bool,
    /// Joint capture-stamp lag (ns, the largest active).
    pub joint_lag_ns: u64,
    /// Camera capture-stamp lag (ns, the largest active).
    pub camera_lag_ns: u64,
    /// Frames repeat pixels.
    pub freeze: bool,
    /// Frames repeat pixels and sequence number.
    pub freeze_same_seq: bool,
    /// Frames are black.
    pub black: bool,
    /// Joint-position noise (rad, root of the summed variances).
    pub noise_std_rad: f64,
    /// The first joint position is NaN.
    pub nan: bool,
    /// Added to the first joint's published position (rad).
    pub offset_rad: f64,
}

impl Faults {
    /// Schedules `kind` on `[start, end)`.
    pub fn add(&mut self, kind: FaultKind, start: Stamp, end: Stamp) {
        self.windows.push(FaultWindow { kind, start, end });
    }

    /// Schedules `kind` from `start` on, for good.
    pub fn add_from(&mut self, kind: FaultKind, start: Stamp) {
        self.add(kind, start, Stamp(u64::MAX));
    }

    /// Removes every scheduled fault.
    pub fn clear(&mut self) {
        self.windows.clear();
    }

    /// The scheduled windows, in the order they were added.
    pub fn windows(&self) -> &[FaultWindow] {
        &self.windows
    }

    /// What applies at `now`.
    pub fn active(&self, now: Stamp) -> ActiveFaults {
        let mut a = ActiveFaults::default();
        let mut variance = 0.0;
        for w in self.windows.iter().filter(|w| w.covers(now)) {
            match w.kind {
                FaultKind::DropJoints => a.drop_joints = true,
                FaultKind::DropCamera => a.drop_camera = true,
                FaultKind::DelayJoints { lag_ns } => a.joint_lag_ns = a.joint_lag_ns.max(lag_ns),
                FaultKind::DelayCamera { lag_ns } => a.camera_lag_ns = a.camera_lag_ns.max(lag_ns),
                FaultKind::FreezeCamera => a.freeze = true,
                FaultKind::FreezeCameraSameSeq => a.freeze_same_seq = true,
                FaultKind::BlackFrame => a.black = true,
                FaultKind::JointNoise { std_rad } => variance += std_rad * std_rad,
                FaultKind::NanJoint => a.nan = true,
                FaultKind::JointOffset { rad } => a.offset_rad += rad,
            }
        }
        a.noise_std_rad = variance.sqrt();
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_apply_on_half_open_intervals_and_combine() {
        let mut f = Faults::default();
        f.add(FaultKind::BlackFrame, Stamp(10), Stamp(20));
        f.add(FaultKind::DelayCamera { lag_ns: 5 }, Stamp(0), Stamp(15));
        f.add(FaultKind::DelayCamera { lag_ns: 7 }, Stamp(12), Stamp(30));
        f.add_from(FaultKind::JointNoise { std_rad: 0.3 }, Stamp(25));
        f.add_from(FaultKind::JointNoise { std_rad: 0.4 }, Stamp(25));
        assert_eq!(f.active(Stamp(9)), ActiveFaults { camera_lag_ns: 5, ..Default::default() });
        let a = f.active(Stamp(12));
        assert!(a.black && a.camera_lag_ns == 7 && !a.drop_camera);
        assert!(!f.active(Stamp(20)).black, "end is exclusive");
        assert!((f.active(Stamp(u64::MAX - 1)).noise_std_rad - 0.5).abs() < 1e-12);
        f.clear();
        assert_eq!(f.active(Stamp(12)), ActiveFaults::default());
    }
}
