//! The sample stage: snapshot the input slots into the loop's preallocated
//! observation and judge them.
//!
//! Checks, each mapped to a cause code: joint state present, finite, of the
//! profile's joint count, not older than the limit (`StaleJointState`,
//! `InvalidObservation`); every camera present, of the policy's geometry and
//! format, not older than the limit (`StaleCamera`, `InvalidObservation`);
//! frames that repeat a sequence number or repeat identical pixels for too
//! many frames (`FrozenCamera`); frames whose content is flat — black,
//! white, a covered lens — over a subsample of their bytes (`BlankCamera`);
//! capture stamps ahead of their own receive time or going backwards
//! (`BadTimestamp`); the external heartbeat, when required, fresh
//! (`HeartbeatLost`) and not asking to stop (`OperatorStop`). Whether the
//! measured pose is inside the robot's envelope is the shield's judgement
//! (`OutOfEnvelope`, raised by the loop).
//!
//! Frames are copied into the observation only when a new one arrives, and
//! hashed (a word-wise multiply-xor hash, ~1 µs for 64×64 RGB) only then.

use ganglion_core::{
    Cause, CauseSet, ExternalHeartbeat, Frame, InputReaders, Instruction, JointState, Observation, PixelFormat,
    PolicySpec, Stamp, Stamped,
};

/// Freshness limits (`[staleness]` in the robot profile).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StalenessConfig {
    /// Oldest acceptable joint state, ms (capture stamp to tick start).
    pub joint_max_age_ms: f64,
    /// Oldest acceptable camera frame, ms.
    pub camera_max_age_ms: f64,
    /// A camera whose new frames carry identical pixels this many times in
    /// a row is frozen; 0 disables the content check (noise-free simulated
    /// cameras legitimately repeat pixels when nothing moves).
    pub frozen_identical_frames: u32,
    /// How far a capture stamp may lie ahead of the sample's own receive
    /// stamp, ms, before it counts as a future stamp (clock mapping slack of
    /// the drivers). Judged against the receive time, not the tick: a sample
    /// read a few ms after it arrived must not hide a stamp from the future.
    pub max_future_ms: f64,
    /// A new frame whose sampled bytes (about 1,000, spread over the frame)
    /// all lie within fewer than this many levels of each other is blank
    /// (`BlankCamera`); 0 disables the check. Real and rendered scenes
    /// spread far wider; a covered lens or a dead sensor does not.
    pub blank_frame_spread: u8,
    /// The external heartbeat must be newer than this, ms; 0 means no
    /// heartbeat is required (an operator stop in it still counts).
    pub heartbeat_timeout_ms: f64,
}

impl Default for StalenessConfig {
    fn default() -> Self {
        StalenessConfig {
            joint_max_age_ms: 50.0,
            camera_max_age_ms: 100.0,
            frozen_identical_frames: 10,
            max_future_ms: 2.0,
            blank_frame_spread: 4,
            heartbeat_timeout_ms: 0.0,
        }
    }
}

/// A `[staleness]` value that cannot work: an age limit that is not a
/// positive (or, where 0 means "off", non-negative) finite number of ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalenessConfigError {
    /// `joint_max_age_ms` is not a finite number > 0.
    JointMaxAge,
    /// `camera_max_age_ms` is not a finite number > 0.
    CameraMaxAge,
    /// `max_future_ms` is not a finite number >= 0.
    MaxFuture,
    /// `heartbeat_timeout_ms` is not a finite number >= 0.
    HeartbeatTimeout,
}

impl StalenessConfigError {
    /// The profile key at fault.
    pub fn key(&self) -> String {
        let key = match self {
            StalenessConfigError::JointMaxAge => "joint_max_age_ms",
            StalenessConfigError::CameraMaxAge => "camera_max_age_ms",
            StalenessConfigError::MaxFuture => "max_future_ms",
            StalenessConfigError::HeartbeatTimeout => "heartbeat_timeout_ms",
        };
        format!("staleness.{key}")
    }

    /// What would have been accepted.
    pub fn expected(&self) -> &'static str {
        match self {
            StalenessConfigError::JointMaxAge | StalenessConfigError::CameraMaxAge => "a positive number of ms",
            StalenessConfigError::MaxFuture | StalenessConfigError::HeartbeatTimeout => "a non-negative number of ms",
        }
    }
}

super::config_error!(StalenessConfigError);

impl StalenessConfig {
    /// Checks every age limit (a NaN or negative one would otherwise be
    /// read as 0 ns: every input stale, or no future-stamp slack).
    pub fn validate(&self) -> Result<(), StalenessConfigError> {
        use StalenessConfigError as E;
        let positive = [(E::JointMaxAge, self.joint_max_age_ms), (E::CameraMaxAge, self.camera_max_age_ms)];
        if let Some((e, _)) = positive.into_iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(e);
        }
        let non_negative = [(E::MaxFuture, self.max_future_ms), (E::HeartbeatTimeout, self.heartbeat_timeout_ms)];
        if let Some((e, _)) = non_negative.into_iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(e);
        }
        Ok(())
    }
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6).max(0.0) as u64
}

/// A fast content hash of pixel bytes (not cryptographic; equal pixels give
/// equal hashes, which is all the frozen-frame check needs).
pub fn frame_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = K ^ data.len() as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K).rotate_left(29);
    }
    h
}

/// Whether `data` is flat: about 1,000 bytes sampled across it (a stride
/// that is not a multiple of 3, so every channel of packed RGB is seen) all
/// lie within fewer than `spread` levels. `spread` 0: never.
pub fn is_blank(data: &[u8], spread: u8) -> bool {
    if spread == 0 || data.is_empty() {
        return false;
    }
    let mut stride = (data.len() / 1024).max(1);
    if stride % 3 == 0 {
        stride += 1;
    }
    let (mut lo, mut hi) = (u8::MAX, u8::MIN);
    for &b in data.iter().step_by(stride) {
        lo = lo.min(b);
        hi = hi.max(b);
        if hi - lo >= spread {
            return false;
        }
    }
    true
}

#[derive(Debug, Clone, Copy)]
struct CameraState {
    width: u32,
    height: u32,
    format: PixelFormat,
    last_seq: u64,
    last_capture: Stamp,
    last_hash: u64,
    identical_run: u32,
    blank: bool,
    frozen_seq: bool,
    bad_geometry: bool,
    bad_stamp: bool,
}

/// What one sample stage found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleReport {
    /// Triggers raised by the inputs.
    pub causes: CauseSet,
    /// Whether the observation may be sent to the policy (no input trigger).
    pub obs_valid: bool,
    /// Whether a new joint state arrived this tick.
    pub new_joints: bool,
    /// Bit `i` set: camera `i` delivered a new frame this tick.
    pub new_frames: u32,
    /// Whether a new instruction arrived this tick.
    pub new_instruction: bool,
}

/// Owns the input slot readers and the loop's observation buffer.
pub struct Sampler {
    readers: InputReaders,
    obs: Observation,
    n_joints: usize,
    joint_max_age_ns: u64,
    camera_max_age_ns: u64,
    max_future_ns: u64,
    heartbeat_timeout_ns: u64,
    frozen_identical_frames: u32,
    blank_frame_spread: u8,
    last_joint_seq: u64,
    last_joint_capture: Stamp,
    joint_bad_stamp: bool,
    cameras: Vec<CameraState>,
}

/// Why a sampler could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    /// The input slots have a different number of cameras than the policy.
    #[error("{slots} camera slots but the policy expects {policy} cameras")]
    CameraCount {
        /// Camera slots.
        slots: usize,
        /// Cameras in the policy spec.
        policy: usize,
    },
}

impl Sampler {
    /// A sampler for `spec`'s joints and cameras (slot `i` feeds
    /// `spec.cameras[i]`).
    pub fn new(readers: InputReaders, spec: &PolicySpec, cfg: &StalenessConfig) -> Result<Sampler, SamplerError> {
        if readers.cameras.len() != spec.cameras.len() {
            return Err(SamplerError::CameraCount { slots: readers.cameras.len(), policy: spec.cameras.len() });
        }
        let cameras = spec
            .cameras
            .iter()
            .map(|c| CameraState {
                width: c.width,
                height: c.height,
                format: c.format,
                last_seq: 0,
                last_capture: Stamp::ZERO,
                last_hash: 0,
                identical_run: 0,
                blank: false,
                frozen_seq: false,
                bad_geometry: false,
                bad_stamp: false,
            })
            .collect();
        Ok(Sampler {
            readers,
            obs: Observation::with_history(spec),
            n_joints: spec.n_joints,
            joint_max_age_ns: ms_to_ns(cfg.joint_max_age_ms),
            camera_max_age_ns: ms_to_ns(cfg.camera_max_age_ms),
            max_future_ns: ms_to_ns(cfg.max_future_ms),
            heartbeat_timeout_ns: ms_to_ns(cfg.heartbeat_timeout_ms),
            frozen_identical_frames: cfg.frozen_identical_frames,
            blank_frame_spread: cfg.blank_frame_spread,
            last_joint_seq: 0,
            last_joint_capture: Stamp::ZERO,
            joint_bad_stamp: false,
            cameras,
        })
    }

    /// The observation assembled by the last [`sample`](Self::sample).
    pub fn observation(&self) -> &Observation {
        &self.obs
    }

    /// Mutable observation (the loop fills `committed` before a request).
    pub fn observation_mut(&mut self) -> &mut Observation {
        &mut self.obs
    }

    /// The newest joint state sample (may be stale or invalid; check the
    /// report). Sequence 0 means none ever arrived.
    pub fn joints(&self) -> &Stamped<JointState> {
        self.readers.joints.latest()
    }

    /// The newest frame of camera `i`, if that camera exists.
    pub fn frame(&self, i: usize) -> Option<&Stamped<Frame>> {
        self.readers.cameras.get(i).map(|r| r.latest())
    }

    /// The newest instruction sample (its stamps and slot sequence number;
    /// the observation holds only the text and its change counter).
    pub fn instruction(&self) -> &Stamped<Instruction> {
        self.readers.instruction.latest()
    }

    /// The newest heartbeat sample.
    pub fn heartbeat(&self) -> &Stamped<ExternalHeartbeat> {
        self.readers.heartbeat.latest()
    }

    /// Takes the newest inputs and judges them at `now`.
    pub fn sample(&mut self, now: Stamp) -> SampleReport {
        let mut r = SampleReport::default();
        let max_future = self.max_future_ns;
        let from_future = |capture: Stamp, receive: Stamp| capture > receive.add_nanos(max_future);

        // Joint state.
        r.new_joints = self.readers.joints.update();
        let js = self.readers.joints.latest();
        if r.new_joints {
            self.joint_bad_stamp = from_future(js.capture, js.receive)
                || (js.seq <= self.last_joint_seq && self.last_joint_seq != 0)
                || js.capture < self.last_joint_capture;
            self.last_joint_seq = js.seq;
            // A bad stamp must not become the reference the next sample is
            // judged against.
            if !self.joint_bad_stamp {
                self.last_joint_capture = js.capture;
            }
        }
        if !js.is_present() || now.saturating_since(js.capture) > self.joint_max_age_ns {
            r.causes.insert(Cause::StaleJointState);
        }
        if js.is_present() && (js.value.len() != self.n_joints || !js.value.is_finite()) {
            r.causes.insert(Cause::InvalidObservation);
        }
        if self.joint_bad_stamp {
            r.causes.insert(Cause::BadTimestamp);
        }
        self.obs.stamp = js.capture;
        self.obs.joints = js.value;

        // Cameras.
        for (i, (reader, cam)) in self.readers.cameras.iter_mut().zip(self.cameras.iter_mut()).enumerate() {
            if reader.update() {
                r.new_frames |= 1 << i;
                let s = reader.latest();
                cam.frozen_seq = s.seq == cam.last_seq;
                cam.bad_stamp = from_future(s.capture, s.receive) || s.capture < cam.last_capture;
                cam.last_seq = s.seq;
                if !cam.bad_stamp {
                    cam.last_capture = s.capture;
                }
                let f = &s.value;
                cam.bad_geometry = f.width != cam.width || f.height != cam.height || f.format != cam.format;
                // Content hashing costs a pass over every frame: only when the
                // identical-frames check is on.
                if !cam.bad_geometry && self.frozen_identical_frames > 0 {
                    let h = frame_hash(f.data());
                    cam.identical_run = if h == cam.last_hash { cam.identical_run.saturating_add(1) } else { 0 };
                    cam.last_hash = h;
                }
                cam.blank = !cam.bad_geometry && is_blank(f.data(), self.blank_frame_spread);
                if !cam.bad_geometry {
                    // Geometry matches the policy spec, so it fits the buffer.
                    cam.bad_geometry = self.obs.frames[i].set(f.width, f.height, f.format, f.data()).is_err();
                }
            }
            let s = reader.latest();
            if !s.is_present() || now.saturating_since(s.capture) > self.camera_max_age_ns {
                r.causes.insert(Cause::StaleCamera);
            }
            if cam.bad_geometry {
                r.causes.insert(Cause::InvalidObservation);
            }
            if cam.bad_stamp {
                r.causes.insert(Cause::BadTimestamp);
            }
            if cam.blank {
                r.causes.insert(Cause::BlankCamera);
            }
            if cam.frozen_seq || (self.frozen_identical_frames > 0 && cam.identical_run >= self.frozen_identical_frames)
            {
                r.causes.insert(Cause::FrozenCamera);
            }
        }

        // Instruction: copied only when it changes.
        if self.readers.instruction.update() {
            r.new_instruction = true;
            let ins = &self.readers.instruction.latest().value;
            self.obs.instruction.clone_from(ins);
        }

        // External heartbeat.
        self.readers.heartbeat.update();
        let hb = self.readers.heartbeat.latest();
        if hb.is_present() && hb.value.stop {
            r.causes.insert(Cause::OperatorStop);
        }
        if self.heartbeat_timeout_ns > 0
            && (!hb.is_present() || now.saturating_since(hb.receive) > self.heartbeat_timeout_ns)
        {
            r.causes.insert(Cause::HeartbeatLost);
        }

        r.obs_valid = r.causes.is_empty();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganglion_core::{input_slots, ActionKind, CameraSpec, InputWriters, JointVec};

    const MS: u64 = 1_000_000;

    fn spec() -> PolicySpec {
        PolicySpec {
            name: "t".into(),
            n_joints: 2,
            chunk_len: 4,
            step_ns: 10 * MS,
            action_kind: ActionKind::AbsolutePosition,
            cameras: vec![CameraSpec { name: "front".into(), width: 4, height: 2, format: PixelFormat::Rgb8 }],
            expected_latency_ns: MS,
            surprise_threshold: None,
            history: 1,
            rolls_at_reply: false,
        }
    }

    fn setup(cfg: StalenessConfig) -> (InputWriters, Sampler) {
        let (w, r) = input_slots(2, &[("front".into(), 4, 2)]);
        (w, Sampler::new(r, &spec(), &cfg).expect("sampler"))
    }

    fn write_joints(w: &mut InputWriters, seq: u64, t: Stamp, q: [f64; 2]) {
        w.joints.write_with(|s| {
            s.seq = seq;
            s.capture = t;
            s.receive = t;
            s.value.position = JointVec::from_slice(&q).expect("fits");
        });
    }

    /// A textured frame (a ramp starting at `fill`): not blank.
    fn pixels(fill: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| fill.wrapping_add(i as u8 * 10)).collect()
    }

    fn write_frame(w: &mut InputWriters, seq: u64, t: Stamp, fill: u8, width: u32) {
        w.cameras[0].slot.write_with(|s| {
            s.seq = seq;
            s.capture = t;
            s.receive = t;
            s.value.set_with(width, 2, PixelFormat::Rgb8, |b| b.copy_from_slice(&pixels(fill, b.len()))).expect("fits");
        });
    }

    #[test]
    fn fresh_inputs_are_valid_and_copied() {
        let (mut w, mut s) = setup(StalenessConfig::default());
        let r = s.sample(Stamp(100 * MS));
        assert!(r.causes.contains(Cause::StaleJointState) && r.causes.contains(Cause::StaleCamera));
        write_joints(&mut w, 1, Stamp(100 * MS), [0.1, 0.2]);
        write_frame(&mut w, 1, Stamp(100 * MS), 7, 4);
        let r = s.sample(Stamp(101 * MS));
        assert_eq!(r.causes, CauseSet::EMPTY);
        assert!(r.obs_valid && r.new_joints && r.new_frames == 1);
        assert_eq!(&*s.observation().joints.position, &[0.1, 0.2]);
        assert_eq!(s.observation().frames[0].data(), &pixels(7, 24)[..]);
        assert_eq!(s.observation().stamp, Stamp(100 * MS));
        // Nothing new for 60 ms: joints stale, camera still fresh.
        let r = s.sample(Stamp(160 * MS));
        assert_eq!(r.causes, [Cause::StaleJointState].into_iter().collect());
    }

    #[test]
    fn each_input_fault_maps_to_its_cause() {
        let cfg = StalenessConfig { frozen_identical_frames: 3, heartbeat_timeout_ms: 20.0, ..Default::default() };
        let (mut w, mut s) = setup(cfg);
        let t = Stamp(1000 * MS);
        w.heartbeat.write_with(|h| {
            h.seq = 1;
            h.receive = t;
        });
        write_joints(&mut w, 1, t, [f64::NAN, 0.0]);
        write_frame(&mut w, 1, t, 1, 4);
        assert!(s.sample(t).causes.contains(Cause::InvalidObservation));
        w.joints.write_with(|j| {
            j.seq = 2;
            j.capture = Stamp(t.0 + 10 * MS);
            j.receive = t;
            j.value.position = JointVec::from_slice(&[0.0, 0.0]).expect("fits");
        });
        assert!(s.sample(t).causes.contains(Cause::BadTimestamp), "future stamp");
        write_joints(&mut w, 3, Stamp(t.0 - 5 * MS), [0.0, 0.0]);
        assert!(s.sample(t).causes.contains(Cause::BadTimestamp), "backwards stamp");
        write_joints(&mut w, 4, t, [0.0, 0.0]);
        let r = s.sample(t);
        assert!(!r.causes.contains(Cause::BadTimestamp));
        assert!(r.obs_valid, "{:?}", r.causes);
        write_frame(&mut w, 1, t, 1, 4);
        assert!(s.sample(t).causes.contains(Cause::FrozenCamera), "same sequence");
        for seq in 2..=4 {
            write_frame(&mut w, seq, t, 1, 4);
            let frozen = s.sample(t).causes.contains(Cause::FrozenCamera);
            // The same-sequence repeat above already showed these pixels once.
            assert_eq!(frozen, seq >= 3, "identical pixels at seq {seq}");
        }
        write_frame(&mut w, 5, t, 2, 2);
        assert!(s.sample(t).causes.contains(Cause::InvalidObservation), "wrong geometry");
        w.heartbeat.write_with(|h| {
            h.seq = 2;
            h.receive = t;
            h.value.stop = true;
        });
        assert!(s.sample(t).causes.contains(Cause::OperatorStop));
        assert!(s.sample(Stamp(t.0 + 30 * MS)).causes.contains(Cause::HeartbeatLost));
    }

    /// A stamp 5 ms ahead of its own arrival is from the future with a 2 ms
    /// limit, even when the tick reads it 4 ms later (judged against the
    /// tick, it passed).
    #[test]
    fn future_stamps_are_judged_against_the_receive_time() {
        let (mut w, mut s) = setup(StalenessConfig::default());
        let t = Stamp(1000 * MS);
        w.joints.write_with(|j| {
            j.seq = 1;
            j.capture = Stamp(t.0 + 5 * MS);
            j.receive = t;
            j.value.position = JointVec::from_slice(&[0.0, 0.0]).expect("fits");
        });
        write_frame(&mut w, 1, t, 1, 4);
        assert!(s.sample(Stamp(t.0 + 4 * MS)).causes.contains(Cause::BadTimestamp));
        w.joints.write_with(|j| {
            j.seq = 2;
            j.capture = Stamp(t.0 + 6 * MS);
            j.receive = Stamp(t.0 + 5 * MS);
            j.value.position = JointVec::from_slice(&[0.0, 0.0]).expect("fits");
        });
        assert!(!s.sample(Stamp(t.0 + 6 * MS)).causes.contains(Cause::BadTimestamp), "1 ms ahead is slack");
    }

    /// Black, white and flat frames are blank; a textured or noisy one is
    /// not, nor is anything with the check off.
    #[test]
    fn blank_frames_raise_their_cause() {
        let (mut w, mut s) = setup(StalenessConfig::default());
        let t = Stamp(1000 * MS);
        write_joints(&mut w, 1, t, [0.0, 0.0]);
        for (seq, fill) in [(1, 0u8), (2, 255), (3, 90)] {
            w.cameras[0].slot.write_with(|f| {
                f.seq = seq;
                f.capture = t;
                f.receive = t;
                f.value.set_with(4, 2, PixelFormat::Rgb8, |b| b.fill(fill)).expect("fits");
            });
            let r = s.sample(t);
            assert!(r.causes.contains(Cause::BlankCamera) && !r.obs_valid, "fill {fill}");
        }
        write_frame(&mut w, 4, t, 3, 4);
        assert!(!s.sample(t).causes.contains(Cause::BlankCamera), "textured frame");
        // Sensor noise of a few levels over black is still a covered lens.
        assert!(is_blank(&[0, 1, 2, 3, 1, 0, 2, 3], 4));
        assert!(!is_blank(&[0, 1, 2, 4], 4));
        assert!(!is_blank(&[0; 64], 0), "0 disables the check");
        // Every channel of packed RGB is sampled: a frame flat in R and G but
        // not in B is not blank.
        let rgb: Vec<u8> = (0..30_000).map(|i| if i % 3 == 2 { (i / 3 % 200) as u8 } else { 0 }).collect();
        assert!(!is_blank(&rgb, 4));
    }

    #[test]
    fn frame_hash_tells_contents_apart() {
        assert_eq!(frame_hash(&[1; 13]), frame_hash(&[1; 13]));
        assert_ne!(frame_hash(&[1; 13]), frame_hash(&[1; 12]));
        let mut a = [0u8; 64];
        let h0 = frame_hash(&a);
        a[63] = 1;
        assert_ne!(frame_hash(&a), h0);
    }
}
