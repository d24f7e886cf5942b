//! The scripted expert behind the [`Policy`] trait, seeing the scene only
//! through the camera, so it works across a transport as any policy would.

use ganglion_core::{
    ActionChunk, ActionKind, CameraSpec, Frame, Observation, PixelFormat, Policy, PolicyError, PolicySpec,
};

use crate::config::SimConfig;
use crate::expert::ScriptedExpert;
use crate::render::PinholeCamera;
use crate::scene::TargetColor;
use crate::SimError;

/// Fewest pixels of the instructed colour that count as seeing the target.
const MIN_PIXELS: u32 = 3;

/// The scripted expert as a [`Policy`]: absolute joint targets, `chunk_len`
/// steps at `step_ns`.
///
/// It reads the colour word of the instruction, segments that colour in the
/// camera image, back-projects the blob's centroid onto the plane of the
/// target centres (known camera model and target height from the
/// [`SimConfig`]), solves IK and follows a minimum-jerk plan started at the
/// first observation of each instruction (`Instruction::seq`). The estimate
/// from the frame showing the most target pixels wins, so the arm occluding
/// the target late in the reach does not disturb it. Until the target has
/// been seen, it holds the observed position.
#[derive(Debug)]
pub struct ExpertPolicy {
    spec: PolicySpec,
    expert: ScriptedExpert,
    camera: PinholeCamera,
    target_height_m: f64,
    instruction_seq: u64,
    color: Option<TargetColor>,
    best_pixels: u32,
    planned: bool,
}

impl ExpertPolicy {
    /// An expert policy for the arm and camera of `cfg`.
    pub fn new(cfg: &SimConfig, chunk_len: usize, step_ns: u64) -> Result<ExpertPolicy, SimError> {
        cfg.validate()?;
        let spec = PolicySpec {
            name: "scripted-expert (analytic IK, camera target localisation)".to_string(),
            n_joints: cfg.arm.dof(),
            chunk_len: chunk_len.max(1),
            step_ns: step_ns.max(1),
            action_kind: ActionKind::AbsolutePosition,
            cameras: vec![CameraSpec {
                name: cfg.camera_name.clone(),
                width: cfg.camera_width,
                height: cfg.camera_height,
                format: PixelFormat::Rgb8,
            }],
            expected_latency_ns: 1_000_000,
            surprise_threshold: None,
            history: 1,
            rolls_at_reply: false,
        };
        Ok(ExpertPolicy {
            spec,
            expert: ScriptedExpert::new(cfg)?,
            camera: PinholeCamera::new(cfg),
            target_height_m: cfg.target_height_m,
            instruction_seq: 0,
            color: None,
            best_pixels: 0,
            planned: false,
        })
    }

    /// Declares a history of `k` observations one policy step apart
    /// ([`PolicySpec::history`]); the expert still reads only the newest.
    /// For tests of what the loop hands a policy with a history.
    pub fn with_history(mut self, k: usize) -> Self {
        self.spec.history = k.max(1);
        self
    }

    /// Where the target of `color` is, from `frame`: the back-projected
    /// centroid and the number of pixels it rests on.
    fn locate(&self, frame: &Frame, color: TargetColor) -> Option<([f64; 3], u32)> {
        let (w, h) = self.camera.size();
        if frame.width != w || frame.height != h || frame.format != PixelFormat::Rgb8 {
            return None;
        }
        let (mut n, mut su, mut sv) = (0u32, 0.0, 0.0);
        for (k, px) in frame.data().chunks_exact(3).enumerate() {
            if TargetColor::classify([px[0], px[1], px[2]]) == Some(color) {
                n += 1;
                su += (k % w as usize) as f64 + 0.5;
                sv += (k / w as usize) as f64 + 0.5;
            }
        }
        if n < MIN_PIXELS {
            return None;
        }
        let (p, _) = self.camera.back_project_to_height(su / n as f64, sv / n as f64, self.target_height_m)?;
        Some((p, n))
    }

    fn hold(&self, obs: &Observation, out: &mut ActionChunk) {
        let steps = out.set_steps(self.spec.chunk_len);
        for i in 0..steps {
            out.step_mut(i).copy_from_slice(&obs.joints.position);
        }
    }
}

impl Policy for ExpertPolicy {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        if obs.joints.len() != self.spec.n_joints || out.n_joints() != self.spec.n_joints {
            return Err(PolicyError::BadObservation(format!(
                "expected {} joints, observation has {}",
                self.spec.n_joints,
                obs.joints.len()
            )));
        }
        let frame = obs
            .frames
            .first()
            .ok_or_else(|| PolicyError::BadObservation("the expert needs one camera frame".to_string()))?;
        out.request_id = obs.request_id;
        out.obs_stamp = obs.stamp;
        out.step_ns = self.spec.step_ns;
        out.kind = ActionKind::AbsolutePosition;
        out.surprise = None;
        if obs.instruction.seq != self.instruction_seq {
            self.instruction_seq = obs.instruction.seq;
            let Some(color) = TargetColor::from_instruction(&obs.instruction.text) else {
                // The previous instruction stays in force (trait contract).
                return Err(PolicyError::InstructionRejected(format!(
                    "no target colour in {:?}; known: red, green, blue",
                    obs.instruction.text.as_str()
                )));
            };
            self.color = Some(color);
            self.best_pixels = 0;
            self.planned = false;
            self.expert.clear();
        }
        let Some(color) = self.color else {
            self.hold(obs, out);
            return Ok(());
        };
        if let Some((p, n)) = self.locate(frame, color) {
            if n > self.best_pixels {
                let result = if self.planned {
                    self.expert.retarget(p)
                } else {
                    self.expert.plan(&obs.joints.position, p, obs.stamp).map(|_| ())
                };
                // An unreachable estimate (a mis-segmented blob) is not used.
                if result.is_ok() {
                    self.best_pixels = n;
                    self.planned = true;
                }
            }
        }
        if !self.expert.chunk_into(obs.stamp, self.spec.step_ns, out) {
            self.hold(obs, out);
        }
        out.set_steps(self.spec.chunk_len);
        Ok(())
    }
}
