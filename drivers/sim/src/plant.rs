//! The simulated arm: actuator dynamics, sensor publication with faults,
//! and the camera.

use ganglion_core::{
    Command, Frame, FrameError, InputWriters, Instruction, JointState, JointVec, PixelFormat, Stamp, MAX_JOINTS,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SimConfig;
use crate::faults::Faults;
use crate::render::{PinholeCamera, Renderer};
use crate::scene::Scene;
use crate::SimError;

/// Which inputs one [`SimArm::publish_due`] call wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// A joint state was written.
    pub joints: bool,
    /// A camera frame was written.
    pub camera: bool,
    /// The instruction was written (first call after an episode reset).
    pub instruction: bool,
}

/// Stream of the joint-noise fault, kept apart from the scene stream so
/// faults never change the scene.
const NOISE_STREAM: u64 = 1 << 63;
/// Stream of the camera's sensor noise, apart from both.
const CAMERA_NOISE_STREAM: u64 = 1 << 62;

/// A deterministic, seeded simulated arm in a reach scene.
///
/// Everything it produces is a function of the configuration, the seed, the
/// episode number and the sequence of calls (commands, steps, publication
/// instants): no wall clock, no global randomness.
#[derive(Clone)]
pub struct SimArm {
    cfg: SimConfig,
    seed: u64,
    episode: u64,
    scene: Scene,
    instruction: Instruction,
    instruction_pending: bool,
    q: JointVec,
    v: JointVec,
    effort: JointVec,
    target_q: JointVec,
    target_v: JointVec,
    residual_ns: u64,
    time: Stamp,
    rejected_commands: u64,
    noise_rng: ChaCha8Rng,
    camera_noise_rng: ChaCha8Rng,
    faults: Faults,
    renderer: Renderer,
    joint_period_ns: u64,
    camera_period_ns: u64,
    next_joint: Stamp,
    next_camera: Stamp,
    joint_seq: u64,
    camera_seq: u64,
    instruction_slot_seq: u64,
    instruction_counter: u64,
    /// Pixels of the last frame published normally (what a frozen camera repeats).
    last_pixels: Vec<u8>,
    has_last_pixels: bool,
    render_errors: u64,
}

impl std::fmt::Debug for SimArm {
    // Pixel buffers are noise in a debug print; show the state that matters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimArm")
            .field("seed", &self.seed)
            .field("episode", &self.episode)
            .field("time", &self.time)
            .field("scene", &self.scene)
            .field("q", &self.q)
            .field("v", &self.v)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl SimArm {
    /// A validated arm, reset to episode 0.
    pub fn new(cfg: &SimConfig, seed: u64) -> Result<SimArm, SimError> {
        cfg.validate()?;
        let n = cfg.arm.dof();
        let mut arm = SimArm {
            cfg: cfg.clone(),
            seed,
            episode: 0,
            scene: Scene::generate(cfg, &mut ChaCha8Rng::seed_from_u64(seed)),
            instruction: Instruction::default(),
            instruction_pending: false,
            q: JointVec::zeros(n),
            v: JointVec::zeros(n),
            effort: JointVec::zeros(n),
            target_q: JointVec::zeros(n),
            target_v: JointVec::zeros(n),
            residual_ns: 0,
            time: Stamp::ZERO,
            rejected_commands: 0,
            noise_rng: ChaCha8Rng::seed_from_u64(seed),
            camera_noise_rng: ChaCha8Rng::seed_from_u64(seed),
            faults: Faults::default(),
            renderer: Renderer::new(cfg),
            joint_period_ns: cfg.joint_period_ns(),
            camera_period_ns: cfg.camera_period_ns(),
            next_joint: Stamp::ZERO,
            next_camera: Stamp::ZERO,
            joint_seq: 0,
            camera_seq: 0,
            instruction_slot_seq: 0,
            instruction_counter: 0,
            last_pixels: vec![0; cfg.frame_bytes()],
            has_last_pixels: false,
            render_errors: 0,
        };
        arm.reset_episode(0);
        Ok(arm)
    }

    /// Starts episode `episode`: scene, instruction and initial pose (at
    /// rest, commanded to hold) are a function of `(seed, episode)` only.
    /// Sequence numbers and faults carry on; the next `publish_due` writes
    /// the instruction, a joint state and a frame.
    pub fn reset_episode(&mut self, episode: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(episode);
        self.episode = episode;
        self.scene = Scene::generate(&self.cfg, &mut rng);
        for i in 0..self.q.len() {
            let (lo, hi) = (self.cfg.initial_pose_min[i], self.cfg.initial_pose_max[i]);
            self.q[i] = if hi > lo { rng.random_range(lo..=hi) } else { lo };
        }
        self.v.fill(0.0);
        self.effort.fill(0.0);
        self.target_q = self.q;
        self.target_v.fill(0.0);
        self.residual_ns = 0;
        self.noise_rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.noise_rng.set_stream(NOISE_STREAM | episode);
        self.camera_noise_rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.camera_noise_rng.set_stream(CAMERA_NOISE_STREAM | episode);
        self.instruction_counter += 1;
        self.instruction = Instruction::new(self.instruction_counter, self.scene.instructed().color.instruction());
        self.instruction_pending = true;
        let mut chain = [[0.0; 3]; MAX_JOINTS + 1];
        let n = self.cfg.arm.chain_points(&[], &mut chain);
        let base_top = if n > 0 { chain[0] } else { [0.0; 3] };
        self.renderer.set_scene(base_top, self.scene.targets(), self.cfg.target_radius_m);
        self.has_last_pixels = false;
        // The first publication of an episode carries a fresh joint state
        // and frame along with the new instruction, so no consumer pairs the
        // new instruction with the previous episode's image.
        self.next_joint = Stamp::ZERO;
        self.next_camera = Stamp::ZERO;
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current episode.
    pub fn episode(&self) -> u64 {
        self.episode
    }

    /// The current scene (targets and which one is instructed).
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// The camera model the frames are rendered with.
    pub fn camera(&self) -> &PinholeCamera {
        self.renderer.camera()
    }

    /// The instruction text of this episode, e.g. "reach the red target".
    pub fn instruction(&self) -> &str {
        &self.instruction.text
    }

    /// Simulated time integrated by [`step`](Self::step) since creation.
    pub fn time(&self) -> Stamp {
        self.time
    }

    /// Commands ignored because a position was not finite.
    pub fn rejected_commands(&self) -> u64 {
        self.rejected_commands
    }

    /// Frames that could not be written because a slot's buffer was too small.
    pub fn render_errors(&self) -> u64 {
        self.render_errors
    }

    /// Sets the actuators' position and velocity targets. Extra joints in
    /// `cmd` are ignored, missing velocities count as 0; a command with any
    /// non-finite position or velocity is ignored (and counted) so the
    /// previous targets stay in force.
    pub fn apply_command(&mut self, cmd: &Command) {
        let n = self.q.len().min(cmd.position.len());
        let finite =
            cmd.position[..n].iter().all(|x| x.is_finite()) && cmd.velocity.iter().take(n).all(|x| x.is_finite());
        if !finite {
            self.rejected_commands += 1;
            return;
        }
        for i in 0..n {
            self.target_q[i] = cmd.position[i];
            self.target_v[i] = cmd.velocity.get(i).copied().unwrap_or(0.0);
        }
    }

    /// Advances the physics by `dt_ns` in whole fixed substeps (a remainder
    /// carries over to the next call, so splitting a duration into several
    /// calls gives the same trajectory).
    ///
    /// Each joint is a position servo with velocity feed-forward, a
    /// second-order system of the configured natural frequency and damping,
    /// whose effort saturates at `max_effort_nm` (acceleration = effort /
    /// inertia) and whose speed saturates at `max_velocity_rad_s`; positions
    /// stop hard at the joint limits. Semi-implicit Euler.
    pub fn step(&mut self, dt_ns: u64) {
        self.time = self.time.add_nanos(dt_ns);
        self.residual_ns += dt_ns;
        let dt_phys = self.cfg.physics_dt_ns;
        let h = dt_phys as f64 * 1e-9;
        let (w, z) = (self.cfg.actuator_omega_rad_s, self.cfg.actuator_damping);
        let (inertia, max_effort, vmax) =
            (self.cfg.joint_inertia_kg_m2, self.cfg.max_effort_nm, self.cfg.max_velocity_rad_s);
        while self.residual_ns >= dt_phys {
            self.residual_ns -= dt_phys;
            for i in 0..self.q.len() {
                let acc = w * w * (self.target_q[i] - self.q[i]) + 2.0 * z * w * (self.target_v[i] - self.v[i]);
                let effort = (inertia * acc).clamp(-max_effort, max_effort);
                let v = (self.v[i] + effort / inertia * h).clamp(-vmax, vmax);
                let limit = &self.cfg.limits[i];
                let q = self.q[i] + v * h;
                let (q, v) = if q < limit.position_min {
                    (limit.position_min, 0.0)
                } else if q > limit.position_max {
                    (limit.position_max, 0.0)
                } else {
                    (q, v)
                };
                self.q[i] = q;
                self.v[i] = v;
                self.effort[i] = effort;
            }
        }
    }

    /// Places the arm at `q` at rest, holding it (tests, scripted starts).
    pub fn set_pose(&mut self, q: &[f64]) {
        let n = self.q.len().min(q.len());
        self.q[..n].copy_from_slice(&q[..n]);
        self.v.fill(0.0);
        self.effort.fill(0.0);
        self.target_q = self.q;
        self.target_v.fill(0.0);
    }

    /// The true joint state (no faults applied).
    pub fn joint_state(&self) -> JointState {
        JointState { position: self.q, velocity: self.v, effort: self.effort }
    }

    /// The tool point in the base frame (m).
    pub fn tip_position(&self) -> [f64; 3] {
        self.cfg.arm.tool_position(&self.q)
    }

    /// The instructed target's centre (m).
    pub fn target_position(&self) -> [f64; 3] {
        self.scene.instructed().position
    }

    /// Distance from the tool point to the instructed target's centre (m).
    pub fn tip_error_m(&self) -> f64 {
        let (p, t) = (self.tip_position(), self.target_position());
        ((p[0] - t[0]).powi(2) + (p[1] - t[1]).powi(2) + (p[2] - t[2]).powi(2)).sqrt()
    }

    /// Whether the tool point is within the success radius of the
    /// instructed target.
    pub fn success(&self) -> bool {
        self.tip_error_m() <= self.cfg.success_radius_m
    }

    /// The fault schedule.
    pub fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    /// The fault schedule (read only).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Renders the current state (no faults) into `frame`, in place.
    pub fn render_into(&mut self, frame: &mut Frame) -> Result<(), FrameError> {
        let (w, h) = (self.cfg.camera_width, self.cfg.camera_height);
        let mut chain = [[0.0; 3]; MAX_JOINTS + 1];
        let n = self.cfg.arm.chain_points(&self.q, &mut chain);
        let renderer = &mut self.renderer;
        frame.set_with(w, h, PixelFormat::Rgb8, |buf| renderer.render(&chain[..n], buf))
    }

    /// Writes what is due at `now` into the input slots: the instruction
    /// once after each episode reset, a joint state every joint period and a
    /// frame every camera period (into the camera slot named
    /// `camera_name`, else the first one), with capture and receive stamps
    /// `now`, each slot's sequence number + 1, and the active faults applied.
    ///
    /// The frame is rendered straight into the slot's buffer; once each
    /// slot buffer has been written at full size, this call does not
    /// allocate. A missed period is skipped, not caught up.
    pub fn publish_due(&mut self, now: Stamp, inputs: &mut InputWriters) -> Published {
        let mut out = Published::default();
        let active = self.faults.active(now);
        if self.instruction_pending {
            self.instruction_pending = false;
            self.instruction_slot_seq += 1;
            let (seq, instruction) = (self.instruction_slot_seq, &self.instruction);
            inputs.instruction.write_with(|s| {
                s.capture = now;
                s.receive = now;
                s.seq = seq;
                s.value.clone_from(instruction);
            });
            out.instruction = true;
        }
        if now >= self.next_joint {
            self.next_joint = next_due(self.next_joint, now, self.joint_period_ns);
            if !active.drop_joints {
                let mut state = self.joint_state();
                if active.noise_std_rad > 0.0 {
                    for p in state.position.iter_mut() {
                        *p += active.noise_std_rad * gaussian(&mut self.noise_rng);
                    }
                }
                if let Some(p) = state.position.first_mut() {
                    *p += active.offset_rad;
                }
                if active.nan {
                    if let Some(p) = state.position.first_mut() {
                        *p = f64::NAN;
                    }
                }
                self.joint_seq += 1;
                let seq = self.joint_seq;
                let capture = Stamp(now.0.saturating_sub(active.joint_lag_ns));
                inputs.joints.write_with(|s| {
                    s.capture = capture;
                    s.receive = now;
                    s.seq = seq;
                    s.value = state;
                });
                out.joints = true;
            }
        }
        if now >= self.next_camera {
            self.next_camera = next_due(self.next_camera, now, self.camera_period_ns);
            let slot = inputs
                .cameras
                .iter()
                .position(|c| c.name == self.cfg.camera_name)
                .or(if inputs.cameras.is_empty() { None } else { Some(0) });
            if let (Some(slot), false) = (slot, active.drop_camera) {
                out.camera = self.publish_frame(now, &active, &mut inputs.cameras[slot].slot);
            }
        }
        out
    }

    fn publish_frame(
        &mut self,
        now: Stamp,
        active: &crate::faults::ActiveFaults,
        slot: &mut ganglion_core::SlotWriter<ganglion_core::Stamped<Frame>>,
    ) -> bool {
        let (w, h) = (self.cfg.camera_width, self.cfg.camera_height);
        let frozen = (active.freeze || active.freeze_same_seq) && self.has_last_pixels;
        let sample = slot.buffer_mut();
        let written = if active.black {
            sample.value.set_with(w, h, PixelFormat::Rgb8, |buf| buf.fill(0))
        } else if frozen {
            sample.value.set(w, h, PixelFormat::Rgb8, &self.last_pixels)
        } else {
            let mut chain = [[0.0; 3]; MAX_JOINTS + 1];
            let n = self.cfg.arm.chain_points(&self.q, &mut chain);
            let (renderer, last, rng) = (&mut self.renderer, &mut self.last_pixels, &mut self.camera_noise_rng);
            let noise = self.cfg.camera_noise_pixels;
            let r = sample.value.set_with(w, h, PixelFormat::Rgb8, |buf| {
                renderer.render(&chain[..n], buf);
                // Sensor noise before the copy a frozen camera repeats.
                if !buf.is_empty() {
                    for _ in 0..noise {
                        let i = rng.random_range(0..buf.len());
                        buf[i] ^= 1;
                    }
                }
                last.copy_from_slice(buf);
            });
            self.has_last_pixels = r.is_ok();
            r
        };
        if written.is_err() {
            self.render_errors += 1;
            return false;
        }
        if !(frozen && active.freeze_same_seq) {
            self.camera_seq += 1;
        }
        sample.capture = Stamp(now.0.saturating_sub(active.camera_lag_ns));
        sample.receive = now;
        sample.seq = self.camera_seq;
        slot.publish();
        true
    }
}

/// The next due instant after publishing at `now` for a schedule last due
/// at `due`: one period on, or one period after `now` when calls were
/// missed (skip, never burst).
fn next_due(due: Stamp, now: Stamp, period_ns: u64) -> Stamp {
    let next = due.add_nanos(period_ns);
    if next > now {
        next
    } else {
        now.add_nanos(period_ns)
    }
}

/// A standard normal sample (Box-Muller), deterministic for the stream.
pub(crate) fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
