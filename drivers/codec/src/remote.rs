//! The remote-inference wire format: what a robot sends a policy server
//! (`ganglion serve`) and what comes back, as plain CDR (the same reader
//! and writer as the ROS 2 messages, so one set of bounds checks).
//!
//! | message | key (zenoh query / reply) | contents |
//! |---------|---------------------------|----------|
//! | spec request | `<prefix>/<name>/spec` | empty |
//! | spec reply | | [`encode_spec`]: the policy's shapes, rates and cameras; the server's noise seed |
//! | infer request | `<prefix>/<name>/infer` | [`encode_request`]: robot id, request id, observation stamp, joints, instruction, committed actions, the robot's calibrated joint ranges (or none), frames (raw pixels, or JPEG: [`FramePayload`]), the earlier observations a policy history reads (stamp, joints, frames raw or JPEG) |
//! | infer reply | | [`encode_reply`]: request id, status, the chunk, surprise, server times |
//! | encode request | `<prefix>/<name>/encode` | an infer request (the robot's half of a split world model asks) |
//! | encode reply | | [`encode_latent_reply`]: request id, status, server times, the latent and the instruction embedding |
//!
//! Every decoder fills preallocated buffers (the robot's [`ActionChunk`],
//! the server's per-robot [`Observation`]) and refuses what does not fit
//! them or the [`DecodeLimits`], before copying: a malformed or oversized
//! message is an error, never a panic or an unbounded allocation.

use ganglion_core::{
    ActionChunk, ActionKind, CameraSpec, Frame, Instruction, JointRange, JointVec, Latent, Observation, PixelFormat,
    PolicySpec, Stamp, MAX_COMMITTED_STEPS, MAX_JOINTS,
};

use crate::cdr::{CdrReader, CdrWriter};
use crate::{DecodeError, DecodeLimits};

/// Longest robot id, bytes.
pub const MAX_ROBOT_ID: usize = 64;
/// Most cameras a request carries.
pub const MAX_CAMERAS: usize = 8;
/// Longest observation history a spec may declare ([`PolicySpec::history`]).
pub const MAX_HISTORY: usize = 16;

/// How the server answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// The chunk is valid.
    Ok = 0,
    /// The observation did not fit the policy (shapes, cameras, joints).
    BadObservation = 1,
    /// The policy failed while computing.
    Backend = 2,
    /// The server refused the robot (too many robots, malformed request).
    Refused = 3,
}

impl ReplyStatus {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => ReplyStatus::Ok,
            1 => ReplyStatus::BadObservation,
            2 => ReplyStatus::Backend,
            3 => ReplyStatus::Refused,
            _ => return Err(DecodeError::BadEncoding),
        })
    }
}

/// The pixel-format code of a JPEG-compressed frame (a baseline JFIF of
/// the frame's width and height; it decodes to RGB8).
pub const JPEG_CODE: u8 = 16;

/// How [`encode_request`] sends the frames.
#[derive(Debug, Clone, Copy)]
pub enum FramePayload<'a> {
    /// The pixels as they are.
    Raw,
    /// One JPEG per frame, compressed by the caller (same order, same width
    /// and height as the observation's frames): the newest observation's
    /// frames, then those of `past[0]`, `past[1]`, … (or the newest only:
    /// the earlier ones then go raw).
    Jpeg(&'a [Vec<u8>]),
}

/// What an infer request says besides the observation.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead<'a> {
    /// The robot asking (its per-robot state on the server).
    pub robot: &'a str,
    /// Frames that came as JPEG: `(width, height, bytes)` per camera, left
    /// for the caller to decode into the observation's frame (which the
    /// decoder does not touch).
    pub jpeg: [Option<(u32, u32, &'a [u8])>; MAX_CAMERAS],
    /// The same for the earlier observations' frames: entry `p · cameras +
    /// i` is camera `i` of `past[p]`.
    pub past_jpeg: [Option<(u32, u32, &'a [u8])>; MAX_CAMERAS * (MAX_HISTORY - 1)],
    /// The robot's calibrated joint ranges (one per joint), or none.
    pub ranges: heapless::Vec<JointRange, MAX_JOINTS>,
}

/// What an infer reply says besides the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHead<'a> {
    /// The request answered.
    pub request_id: u64,
    /// Whether the chunk is valid.
    pub status: ReplyStatus,
    /// Why not, when it is not.
    pub message: &'a str,
    /// Time the request waited on the server before its policy ran, ns.
    pub queue_ns: u64,
    /// Time the policy computed, ns.
    pub infer_ns: u64,
}

fn format_code(f: PixelFormat) -> u8 {
    match f {
        PixelFormat::Rgb8 => 0,
        PixelFormat::Bgr8 => 1,
        PixelFormat::Mono8 => 2,
        PixelFormat::Yuyv => 3,
    }
}

fn format_from(code: u8) -> Result<PixelFormat, DecodeError> {
    Ok(match code {
        0 => PixelFormat::Rgb8,
        1 => PixelFormat::Bgr8,
        2 => PixelFormat::Mono8,
        3 => PixelFormat::Yuyv,
        _ => return Err(DecodeError::BadEncoding),
    })
}

fn kind_code(k: ActionKind) -> u8 {
    match k {
        ActionKind::AbsolutePosition => 0,
        ActionKind::DeltaPosition => 1,
    }
}

fn kind_from(code: u8) -> Result<ActionKind, DecodeError> {
    Ok(match code {
        0 => ActionKind::AbsolutePosition,
        1 => ActionKind::DeltaPosition,
        _ => return Err(DecodeError::BadEncoding),
    })
}

/// Encodes an infer request for `robot` from `obs` into `out`, its frames
/// as `frames` says (a JPEG list of another length sends the frames raw);
/// no calibrated joint ranges.
pub fn encode_request(robot: &str, obs: &Observation, frames: FramePayload<'_>, out: &mut Vec<u8>) {
    encode_request_with(robot, obs, frames, &[], out);
}

/// [`encode_request`] with the robot's calibrated joint ranges (profile
/// order; a bundle in LeRobot's range units on the server converts with
/// them, [`ganglion_core::Policy::set_joint_ranges`]).
pub fn encode_request_with(
    robot: &str,
    obs: &Observation,
    frames: FramePayload<'_>,
    ranges: &[JointRange],
    out: &mut Vec<u8>,
) {
    let mut w = CdrWriter::new(out);
    w.str(robot);
    w.u64(obs.request_id);
    w.u64(obs.stamp.0);
    w.u8(u8::from(obs.held));
    w.u64(obs.instruction.seq);
    w.str(obs.instruction.text.as_str());
    for v in [&obs.joints.position, &obs.joints.velocity, &obs.joints.effort] {
        w.f64_seq(v.iter().copied());
    }
    w.len(obs.committed.len());
    for c in &obs.committed {
        w.f64_seq(c.iter().copied());
    }
    w.len(ranges.len());
    for r in ranges {
        w.f64(r.min_rad);
        w.f64(r.max_rad);
        w.u8(u8::from(r.inverted));
    }
    // One JPEG per camera (the newest frames), or per camera of every
    // observation (the earlier ones too); else raw.
    let cams = obs.frames.len();
    let jpeg = match frames {
        FramePayload::Jpeg(j) if j.len() == cams || j.len() == cams * (1 + obs.past.len()) => Some(j),
        _ => None,
    };
    w.len(obs.frames.len());
    for (i, f) in obs.frames.iter().enumerate() {
        write_frame(&mut w, f, jpeg.and_then(|j| j.get(i)));
    }
    w.len(obs.past.len());
    for (k, p) in obs.past.iter().enumerate() {
        w.u64(p.stamp.0);
        for v in [&p.joints.position, &p.joints.velocity, &p.joints.effort] {
            w.f64_seq(v.iter().copied());
        }
        w.len(p.frames.len());
        for (i, f) in p.frames.iter().enumerate() {
            write_frame(&mut w, f, jpeg.and_then(|j| j.get((k + 1) * cams + i)));
        }
    }
}

/// A frame's geometry, then its JPEG when there is one, else its pixels.
fn write_frame(w: &mut CdrWriter<'_>, f: &Frame, jpeg: Option<&Vec<u8>>) {
    w.u32(f.width);
    w.u32(f.height);
    match jpeg {
        Some(bytes) => {
            w.u8(JPEG_CODE);
            w.bytes(bytes);
        }
        None => {
            w.u8(format_code(f.format));
            w.bytes(f.data());
        }
    }
}

fn joint_vec(r: &mut CdrReader<'_>, n: usize, into: &mut JointVec) -> Result<(), DecodeError> {
    let values = r.f64_seq(r.limits().max_joints)?;
    if values.len() != n {
        return Err(DecodeError::JointMismatch);
    }
    for (i, v) in values.iter().enumerate() {
        into[i] = v;
    }
    Ok(())
}

/// Decodes an infer request into `obs`, a buffer made for the served
/// policy's spec ([`Observation::with_history`]): joint count, camera count,
/// earlier observations and
/// frame capacities must match it, else the request is refused before
/// anything is copied past the failing field. A JPEG frame is bounded like
/// a raw one (no longer than the frame's raw capacity) and handed back in
/// [`RequestHead::jpeg`].
pub fn decode_request_into<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    obs: &mut Observation,
) -> Result<RequestHead<'a>, DecodeError> {
    let mut r = CdrReader::new(bytes, limits)?;
    let robot = r.str()?;
    if robot.is_empty() || robot.len() > MAX_ROBOT_ID {
        return Err(DecodeError::TooLong);
    }
    obs.request_id = r.u64()?;
    obs.stamp = Stamp(r.u64()?);
    obs.held = r.u8()? != 0;
    let seq = r.u64()?;
    let text = r.str()?;
    if seq != obs.instruction.seq {
        obs.instruction = Instruction::new(seq, text);
    }
    let n = obs.joints.position.len();
    joint_vec(&mut r, n, &mut obs.joints.position)?;
    joint_vec(&mut r, n, &mut obs.joints.velocity)?;
    joint_vec(&mut r, n, &mut obs.joints.effort)?;
    let committed = r.seq_len(MAX_COMMITTED_STEPS, 4)?;
    obs.committed.clear();
    for _ in 0..committed {
        let mut v = JointVec::zeros(n);
        joint_vec(&mut r, n, &mut v)?;
        // Cannot fail: `committed` is at most the capacity.
        let _ = obs.committed.push(v);
    }
    let n_ranges = r.seq_len(MAX_JOINTS, 17)?;
    if n_ranges != 0 && n_ranges != n {
        return Err(DecodeError::JointMismatch);
    }
    let mut ranges = heapless::Vec::new();
    for _ in 0..n_ranges {
        let (min_rad, max_rad, inverted) = (r.f64()?, r.f64()?, r.u8()? != 0);
        // Cannot fail: at most MAX_JOINTS.
        let _ = ranges.push(JointRange { min_rad, max_rad, inverted });
    }
    let frames = r.seq_len(MAX_CAMERAS, 13)?;
    if frames != obs.frames.len() {
        return Err(DecodeError::BadDimensions);
    }
    let mut jpeg = [None; MAX_CAMERAS];
    for (frame, slot) in obs.frames.iter_mut().zip(jpeg.iter_mut()) {
        let (width, height) = (r.u32()?, r.u32()?);
        let code = r.u8()?;
        if width == 0 || height == 0 || width > limits.max_width || height > limits.max_height {
            return Err(DecodeError::BadDimensions);
        }
        let data = r.bytes(frame.capacity())?;
        if code == JPEG_CODE {
            *slot = Some((width, height, data));
            continue;
        }
        frame.set(width, height, format_from(code)?, data).map_err(|_| DecodeError::BadGeometry)?;
    }
    // The earlier observations: as many as the served policy's history
    // reads (its spec told the robot), frames raw.
    if r.seq_len(MAX_HISTORY, 8)? != obs.past.len() {
        return Err(DecodeError::BadDimensions);
    }
    let mut past_jpeg = [None; MAX_CAMERAS * (MAX_HISTORY - 1)];
    let cams = obs.frames.len();
    for (k, p) in obs.past.iter_mut().enumerate() {
        p.stamp = Stamp(r.u64()?);
        joint_vec(&mut r, n, &mut p.joints.position)?;
        joint_vec(&mut r, n, &mut p.joints.velocity)?;
        joint_vec(&mut r, n, &mut p.joints.effort)?;
        if r.seq_len(MAX_CAMERAS, 13)? != p.frames.len() {
            return Err(DecodeError::BadDimensions);
        }
        for (i, frame) in p.frames.iter_mut().enumerate() {
            let (width, height, code) = (r.u32()?, r.u32()?, r.u8()?);
            if width == 0 || height == 0 || width > limits.max_width || height > limits.max_height {
                return Err(DecodeError::BadDimensions);
            }
            let data = r.bytes(frame.capacity())?;
            if code == JPEG_CODE {
                if let Some(slot) = past_jpeg.get_mut(k * cams + i) {
                    *slot = Some((width, height, data));
                }
                continue;
            }
            frame.set(width, height, format_from(code)?, data).map_err(|_| DecodeError::BadGeometry)?;
        }
    }
    Ok(RequestHead { robot, jpeg, past_jpeg, ranges })
}

/// What both replies start with.
fn write_reply_head(w: &mut CdrWriter<'_>, head: &ReplyHead<'_>) {
    w.u64(head.request_id);
    w.u8(head.status as u8);
    w.str(head.message);
    w.u64(head.queue_ns);
    w.u64(head.infer_ns);
}

fn read_reply_head<'a>(r: &mut CdrReader<'a>) -> Result<ReplyHead<'a>, DecodeError> {
    let request_id = r.u64()?;
    let status = ReplyStatus::from_u8(r.u8()?)?;
    let message = r.str()?;
    let queue_ns = r.u64()?;
    let infer_ns = r.u64()?;
    Ok(ReplyHead { request_id, status, message, queue_ns, infer_ns })
}

/// Encodes an infer reply: `chunk` is sent only when `status` is
/// [`ReplyStatus::Ok`].
pub fn encode_reply(
    request_id: u64,
    status: ReplyStatus,
    message: &str,
    chunk: &ActionChunk,
    queue_ns: u64,
    infer_ns: u64,
    out: &mut Vec<u8>,
) {
    let mut w = CdrWriter::new(out);
    write_reply_head(&mut w, &ReplyHead { request_id, status, message, queue_ns, infer_ns });
    match chunk.surprise {
        Some(s) => {
            w.u8(1);
            w.f64(f64::from(s));
        }
        None => w.u8(0),
    }
    let ok = status == ReplyStatus::Ok;
    w.u32(if ok { chunk.steps() as u32 } else { 0 });
    w.u32(chunk.n_joints() as u32);
    if ok {
        w.f64_seq(chunk.as_slice().iter().copied());
    } else {
        w.f64_seq(std::iter::empty());
    }
}

/// Decodes an infer reply into `out` (a buffer for the policy's spec): the
/// chunk's actions, step count and surprise; request id and stamp are the
/// caller's to check and set.
pub fn decode_reply_into<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    out: &mut ActionChunk,
) -> Result<ReplyHead<'a>, DecodeError> {
    let mut r = CdrReader::new(bytes, limits)?;
    let head = read_reply_head(&mut r)?;
    let surprise = match r.u8()? {
        0 => None,
        _ => Some(r.f64()? as f32),
    };
    let steps = r.u32()? as usize;
    let n_joints = r.u32()? as usize;
    let data = r.f64_seq(out.max_steps() * out.n_joints())?;
    if head.status == ReplyStatus::Ok {
        if n_joints != out.n_joints() || steps == 0 || steps > out.max_steps() || data.len() != steps * n_joints {
            return Err(DecodeError::JointMismatch);
        }
        out.set_steps(steps);
        for (dst, v) in out.as_mut_slice().iter_mut().zip(data.iter()) {
            *dst = v;
        }
        out.surprise = surprise;
    }
    Ok(head)
}

/// Encodes an encode reply (the server half of a split world model,
/// [`ganglion_core::Policy::infer_latent`]): the request's id, status,
/// message and server times, then the latent and the instruction embedding
/// when `status` is [`ReplyStatus::Ok`].
pub fn encode_latent_reply(
    request_id: u64,
    status: ReplyStatus,
    message: &str,
    latent: &Latent,
    queue_ns: u64,
    infer_ns: u64,
    out: &mut Vec<u8>,
) {
    let mut w = CdrWriter::new(out);
    write_reply_head(&mut w, &ReplyHead { request_id, status, message, queue_ns, infer_ns });
    let ok = status == ReplyStatus::Ok;
    // Both lengths first, so a decoder checks them before it copies.
    for v in [&latent.state, &latent.embedding] {
        w.u32(if ok { v.len() as u32 } else { 0 });
    }
    // float32 in CDR: the IEEE bits, 4-byte aligned like a u32.
    for x in [&latent.state, &latent.embedding].into_iter().flatten().filter(|_| ok) {
        w.u32(x.to_bits());
    }
}

/// Decodes an encode reply into `out`, whose buffers have the sizes the
/// robot's half expects (from its own copy of the bundle): a reply of
/// other sizes is refused before anything is copied.
pub fn decode_latent_reply_into<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    out: &mut Latent,
) -> Result<ReplyHead<'a>, DecodeError> {
    let mut r = CdrReader::new(bytes, limits)?;
    let head = read_reply_head(&mut r)?;
    let (n_state, n_embedding) = (r.u32()? as usize, r.u32()? as usize);
    if head.status == ReplyStatus::Ok {
        if n_state != out.state.len() || n_embedding != out.embedding.len() {
            return Err(DecodeError::BadDimensions);
        }
        if r.remaining() < 4 * (n_state + n_embedding) {
            return Err(DecodeError::Truncated);
        }
        for x in out.state.iter_mut().chain(out.embedding.iter_mut()) {
            *x = f32::from_bits(r.u32()?);
        }
    }
    Ok(head)
}

/// What a server announces in its spec reply.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecReply {
    /// The served policy's spec.
    pub spec: PolicySpec,
    /// The seed of the server's noise (an iterative head's initial and
    /// per-step noise, stream = the request id), which the robot records so
    /// a replay re-creates the server's chunks; `None` when the server has
    /// none to tell.
    pub noise_seed: Option<u64>,
}

/// Encodes a policy's spec and the server's noise seed (the reply to a
/// spec request).
pub fn encode_spec(spec: &PolicySpec, noise_seed: Option<u64>, out: &mut Vec<u8>) {
    let mut w = CdrWriter::new(out);
    w.str(&spec.name);
    w.u32(spec.n_joints as u32);
    w.u32(spec.chunk_len as u32);
    w.u64(spec.step_ns);
    w.u8(kind_code(spec.action_kind));
    w.u64(spec.expected_latency_ns);
    match spec.surprise_threshold {
        Some(t) => {
            w.u8(1);
            w.f64(f64::from(t));
        }
        None => w.u8(0),
    }
    w.len(spec.cameras.len());
    for c in &spec.cameras {
        w.str(&c.name);
        w.u32(c.width);
        w.u32(c.height);
        w.u8(format_code(c.format));
    }
    w.u32(spec.history as u32);
    match noise_seed {
        Some(seed) => {
            w.u8(1);
            w.u64(seed);
        }
        None => w.u8(0),
    }
}

/// Largest chunk a spec may declare (actions), so a robot never allocates
/// a server's whim.
pub const MAX_CHUNK_LEN: usize = 1024;

/// Decodes a spec reply; counts and sizes are checked against `limits`
/// (joints, frame size) and [`MAX_CHUNK_LEN`], [`MAX_CAMERAS`].
pub fn decode_spec(bytes: &[u8], limits: &DecodeLimits) -> Result<SpecReply, DecodeError> {
    let mut r = CdrReader::new(bytes, limits)?;
    let name = r.str()?.to_owned();
    let n_joints = r.u32()? as usize;
    let chunk_len = r.u32()? as usize;
    if n_joints == 0 || n_joints > limits.max_joints.min(ganglion_core::MAX_JOINTS) {
        return Err(DecodeError::JointMismatch);
    }
    if chunk_len == 0 || chunk_len > MAX_CHUNK_LEN {
        return Err(DecodeError::TooLong);
    }
    let step_ns = r.u64()?;
    let action_kind = kind_from(r.u8()?)?;
    let expected_latency_ns = r.u64()?;
    let surprise_threshold = match r.u8()? {
        0 => None,
        _ => Some(r.f64()? as f32),
    };
    let n_cameras = r.seq_len(MAX_CAMERAS, 13)?;
    let mut cameras = Vec::with_capacity(n_cameras);
    for _ in 0..n_cameras {
        let name = r.str()?.to_owned();
        let (width, height) = (r.u32()?, r.u32()?);
        let format = format_from(r.u8()?)?;
        if width == 0 || height == 0 || width > limits.max_width || height > limits.max_height {
            return Err(DecodeError::BadDimensions);
        }
        cameras.push(CameraSpec { name, width, height, format });
    }
    let history = r.u32()? as usize;
    if history == 0 || history > MAX_HISTORY {
        return Err(DecodeError::TooLong);
    }
    let noise_seed = match r.u8()? {
        0 => None,
        _ => Some(r.u64()?),
    };
    let spec = PolicySpec {
        name,
        n_joints,
        chunk_len,
        step_ns,
        action_kind,
        cameras,
        expected_latency_ns,
        surprise_threshold,
        history,
        // A server's policy answers with its chunk: only the robot's half
        // of a split policy rolls at the reply.
        rolls_at_reply: false,
    };
    Ok(SpecReply { spec, noise_seed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PolicySpec {
        PolicySpec {
            name: "reach-v1 1.0.0".into(),
            n_joints: 3,
            chunk_len: 8,
            step_ns: 20_000_000,
            action_kind: ActionKind::AbsolutePosition,
            cameras: vec![CameraSpec { name: "front".into(), width: 4, height: 2, format: PixelFormat::Rgb8 }],
            expected_latency_ns: 5_000_000,
            surprise_threshold: Some(2.5),
            history: 2,
            rolls_at_reply: false,
        }
    }

    fn observation(spec: &PolicySpec) -> Observation {
        let mut obs = Observation::with_history(spec);
        obs.request_id = 42;
        obs.stamp = Stamp(123_456_789);
        obs.held = true;
        obs.instruction = Instruction::new(3, "reach the blue target");
        obs.joints.position.copy_from_slice(&[0.1, -0.2, 0.3]);
        obs.joints.velocity.copy_from_slice(&[1.0, 2.0, 3.0]);
        let _ = obs.committed.push(JointVec::splat(3, 0.5));
        let pixels: Vec<u8> = (0..24).collect();
        obs.frames[0].set(4, 2, PixelFormat::Rgb8, &pixels).expect("fits");
        // The observation one policy step before (history 2).
        obs.past[0].stamp = Stamp(103_456_789);
        obs.past[0].joints.position.copy_from_slice(&[0.0, -0.1, 0.2]);
        let older: Vec<u8> = (100..124).collect();
        obs.past[0].frames[0].set(4, 2, PixelFormat::Rgb8, &older).expect("fits");
        obs
    }

    #[test]
    fn a_request_round_trips_into_the_servers_buffer() {
        let spec = spec();
        let obs = observation(&spec);
        let mut bytes = Vec::new();
        encode_request("arm-1", &obs, FramePayload::Raw, &mut bytes);
        let mut got = Observation::with_history(&spec);
        let head = decode_request_into(&bytes, &DecodeLimits::default(), &mut got).expect("decodes");
        assert_eq!(head.robot, "arm-1");
        assert_eq!((got.request_id, got.stamp, got.held), (42, Stamp(123_456_789), true));
        assert_eq!(got.instruction, obs.instruction);
        assert_eq!(got.joints, obs.joints);
        assert_eq!(got.committed, obs.committed);
        assert_eq!(got.frames, obs.frames);
        assert_eq!(got.past.len(), 1);
        assert_eq!((got.past[0].stamp, got.past[0].joints), (obs.past[0].stamp, obs.past[0].joints));
        assert_eq!(got.past[0].frames, obs.past[0].frames);
        // A server whose policy reads another history refuses the request.
        let mut other = Observation::with_history(&PolicySpec { history: 3, ..spec });
        let e = decode_request_into(&bytes, &DecodeLimits::default(), &mut other).expect_err("2 past expected");
        assert_eq!(e, DecodeError::BadDimensions);
    }

    #[test]
    fn jpeg_frames_are_handed_back_undecoded_and_bounded() {
        let spec = spec();
        let obs = observation(&spec);
        let jpeg = vec![vec![0xff, 0xd8, 1, 2, 3, 0xff, 0xd9]];
        let mut bytes = Vec::new();
        encode_request("arm-1", &obs, FramePayload::Jpeg(&jpeg), &mut bytes);
        let mut got = Observation::with_history(&spec);
        let head = decode_request_into(&bytes, &DecodeLimits::default(), &mut got).expect("decodes");
        assert_eq!(head.jpeg[0], Some((4, 2, jpeg[0].as_slice())));
        assert!(head.jpeg[1..].iter().all(Option::is_none));
        assert!(got.frames[0].data().is_empty(), "the frame is left for the caller");
        // Longer than the frame's raw capacity (the spec's camera): refused.
        let big = vec![vec![0u8; got.frames[0].capacity() + 1]];
        encode_request("arm-1", &obs, FramePayload::Jpeg(&big), &mut bytes);
        assert_eq!(decode_request_into(&bytes, &DecodeLimits::default(), &mut got), Err(DecodeError::TooLong));
        // A list of another length sends the frames raw.
        encode_request("arm-1", &obs, FramePayload::Jpeg(&[]), &mut bytes);
        let head = decode_request_into(&bytes, &DecodeLimits::default(), &mut got).expect("decodes");
        assert!(head.jpeg[0].is_none());
        assert_eq!(got.frames, obs.frames);
    }

    #[test]
    fn a_reply_round_trips_and_errors_carry_no_chunk() {
        let spec = spec();
        let mut chunk = ActionChunk::for_spec(&spec);
        chunk.set_steps(2);
        chunk.as_mut_slice().copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        chunk.surprise = Some(0.75);
        let mut bytes = Vec::new();
        encode_reply(42, ReplyStatus::Ok, "", &chunk, 10, 20, &mut bytes);
        let mut got = ActionChunk::for_spec(&spec);
        let head = decode_reply_into(&bytes, &DecodeLimits::default(), &mut got).expect("decodes");
        assert_eq!((head.request_id, head.status, head.queue_ns, head.infer_ns), (42, ReplyStatus::Ok, 10, 20));
        assert_eq!(got.as_slice(), chunk.as_slice());
        assert_eq!(got.surprise, Some(0.75));

        encode_reply(43, ReplyStatus::Backend, "graph failed", &chunk, 0, 0, &mut bytes);
        let mut untouched = ActionChunk::for_spec(&spec);
        let head = decode_reply_into(&bytes, &DecodeLimits::default(), &mut untouched).expect("decodes");
        assert_eq!((head.status, head.message), (ReplyStatus::Backend, "graph failed"));
        assert_eq!(untouched.steps(), 0);
    }

    /// A request carries the robot's calibrated joint ranges (one per
    /// joint) or none; another count is refused.
    #[test]
    fn a_request_carries_the_arms_joint_ranges() {
        let spec = spec();
        let obs = observation(&spec);
        let ranges: Vec<JointRange> = (0..3)
            .map(|k| JointRange { min_rad: -1.0 - k as f64, max_rad: 1.5 + k as f64, inverted: k == 2 })
            .collect();
        let mut bytes = Vec::new();
        encode_request_with("arm-1", &obs, FramePayload::Raw, &ranges, &mut bytes);
        let mut got = Observation::with_history(&spec);
        let head = decode_request_into(&bytes, &DecodeLimits::default(), &mut got).expect("decodes");
        assert_eq!(head.ranges.as_slice(), ranges.as_slice());
        assert_eq!(got.committed.len(), obs.committed.len(), "what follows the ranges still decodes");
        encode_request("arm-1", &obs, FramePayload::Raw, &mut bytes);
        assert!(decode_request_into(&bytes, &DecodeLimits::default(), &mut got).expect("decodes").ranges.is_empty());
        encode_request_with("arm-1", &obs, FramePayload::Raw, &ranges[..2], &mut bytes);
        assert_eq!(decode_request_into(&bytes, &DecodeLimits::default(), &mut got), Err(DecodeError::JointMismatch));
    }

    /// The encode reply carries the latent and the embedding bit for bit;
    /// one of other sizes than the robot's buffers is refused untouched.
    #[test]
    fn a_latent_reply_round_trips_and_a_misfit_is_refused() {
        let latent = Latent { state: vec![0.5, -1.25, f32::MIN_POSITIVE], embedding: vec![3.0; 4] };
        let mut bytes = Vec::new();
        encode_latent_reply(9, ReplyStatus::Ok, "", &latent, 11, 22, &mut bytes);
        let mut got = Latent { state: vec![0.0; 3], embedding: vec![0.0; 4] };
        let head = decode_latent_reply_into(&bytes, &DecodeLimits::default(), &mut got).expect("decodes");
        assert_eq!((head.request_id, head.status, head.queue_ns, head.infer_ns), (9, ReplyStatus::Ok, 11, 22));
        assert_eq!(got, latent);

        let mut small = Latent { state: vec![7.0; 2], embedding: vec![0.0; 4] };
        assert_eq!(
            decode_latent_reply_into(&bytes, &DecodeLimits::default(), &mut small),
            Err(DecodeError::BadDimensions)
        );
        assert_eq!(small.state, vec![7.0; 2], "nothing copied");

        encode_latent_reply(10, ReplyStatus::Backend, "no encoder", &latent, 0, 0, &mut bytes);
        let head = decode_latent_reply_into(&bytes, &DecodeLimits::default(), &mut small).expect("decodes");
        assert_eq!((head.status, head.message), (ReplyStatus::Backend, "no encoder"));
    }

    #[test]
    fn a_spec_round_trips() {
        let spec = spec();
        let mut bytes = Vec::new();
        for noise_seed in [None, Some(u64::MAX - 3)] {
            bytes.clear();
            encode_spec(&spec, noise_seed, &mut bytes);
            let got = decode_spec(&bytes, &DecodeLimits::default()).expect("decodes");
            assert_eq!((got.spec, got.noise_seed), (spec.clone(), noise_seed));
        }
    }

    #[test]
    fn what_does_not_fit_the_buffers_is_refused() {
        let spec = spec();
        let obs = observation(&spec);
        let mut bytes = Vec::new();
        encode_request("arm-1", &obs, FramePayload::Raw, &mut bytes);
        // A server serving a 4-joint policy refuses a 3-joint request.
        let mut four = spec.clone();
        four.n_joints = 4;
        let mut other = Observation::for_spec(&four);
        assert_eq!(decode_request_into(&bytes, &DecodeLimits::default(), &mut other), Err(DecodeError::JointMismatch));
        // No camera on the server's side.
        let mut blind = spec.clone();
        blind.cameras.clear();
        let mut other = Observation::for_spec(&blind);
        assert_eq!(decode_request_into(&bytes, &DecodeLimits::default(), &mut other), Err(DecodeError::BadDimensions));
        // A chunk longer than the robot's buffer.
        let mut long = ActionChunk::with_capacity(16, 3);
        long.set_steps(16);
        encode_reply(1, ReplyStatus::Ok, "", &long, 0, 0, &mut bytes);
        let mut short = ActionChunk::for_spec(&spec);
        assert!(decode_reply_into(&bytes, &DecodeLimits::default(), &mut short).is_err());
    }

    /// Every truncation and every single-byte corruption of valid messages
    /// decodes to a value or an error, never a panic.
    #[test]
    fn truncated_and_corrupted_messages_never_panic() {
        let spec = spec();
        let obs = observation(&spec);
        let mut request = Vec::new();
        encode_request("arm-1", &obs, FramePayload::Raw, &mut request);
        let mut chunk = ActionChunk::for_spec(&spec);
        chunk.set_steps(8);
        let mut reply = Vec::new();
        encode_reply(7, ReplyStatus::Ok, "", &chunk, 1, 2, &mut reply);
        let mut spec_bytes = Vec::new();
        encode_spec(&spec, Some(42), &mut spec_bytes);
        let mut latent_reply = Vec::new();
        let latent = Latent { state: vec![1.0; 4], embedding: vec![2.0; 2] };
        encode_latent_reply(8, ReplyStatus::Ok, "", &latent, 1, 2, &mut latent_reply);
        let limits = DecodeLimits::default();
        let mut obs_buf = Observation::with_history(&spec);
        let mut chunk_buf = ActionChunk::for_spec(&spec);
        let mut latent_buf = latent.clone();
        for msg in [&request, &reply, &spec_bytes, &latent_reply] {
            for cut in 0..msg.len() {
                let _ = decode_request_into(&msg[..cut], &limits, &mut obs_buf);
                let _ = decode_reply_into(&msg[..cut], &limits, &mut chunk_buf);
                let _ = decode_spec(&msg[..cut], &limits);
                let _ = decode_latent_reply_into(&msg[..cut], &limits, &mut latent_buf);
            }
            for i in 0..msg.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut m = msg.clone();
                    m[i] ^= flip;
                    let _ = decode_request_into(&m, &limits, &mut obs_buf);
                    let _ = decode_reply_into(&m, &limits, &mut chunk_buf);
                    let _ = decode_spec(&m, &limits);
                    let _ = decode_latent_reply_into(&m, &limits, &mut latent_buf);
                }
            }
        }
    }
}
