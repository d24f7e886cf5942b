//! CDR payloads of every recorded channel, on top of `ganglion-codec`'s
//! reader and writer (the same bytes the transports put on the wire for the
//! standard types).
//!
//! Stamps inside messages are loop-clock nanoseconds (monotonic, starting
//! wherever the loop's clock started), not wall time; the file's metadata
//! records the wall time of the recording's start.

use ganglion_codec::cdr::F64s;
use ganglion_codec::msg::{Image, JointState as JointStateMsg, Message, StringMsg};
use ganglion_codec::{CdrReader, CdrWriter, DecodeError, DecodeLimits};
use ganglion_core::{
    ActionChunk, ActionKind, CauseSet, ExternalHeartbeat, Frame, Instruction, JointState, JointVec, Mode, PixelFormat,
    Stamp, Stamped,
};

use super::row::{InferenceRow, ResultStatus, TickRow, STAGES};

// CDR lays a uint64 out exactly like a float64 (8-byte aligned, same byte
// order), and `ganglion-codec` only has the float accessors: go through the
// bits, which is exact.
fn put_u64(w: &mut CdrWriter<'_>, v: u64) {
    w.f64(f64::from_bits(v));
}

fn get_u64(r: &mut CdrReader<'_>) -> Result<u64, DecodeError> {
    Ok(r.f64()?.to_bits())
}

fn put_time(w: &mut CdrWriter<'_>, t: Stamp) {
    // Loop stamps fit i32 seconds for 68 years of uptime.
    w.i32((t.0 / 1_000_000_000).min(i32::MAX as u64) as i32);
    w.u32((t.0 % 1_000_000_000) as u32);
}

fn get_time(r: &mut CdrReader<'_>) -> Result<Stamp, DecodeError> {
    let sec = r.i32()?;
    let nanosec = r.u32()?;
    let sec = u64::try_from(sec).map_err(|_| DecodeError::Truncated)?;
    Ok(Stamp(sec * 1_000_000_000 + u64::from(nanosec)))
}

fn put_header(w: &mut CdrWriter<'_>, t: Stamp, frame_id: &str) {
    put_time(w, t);
    w.str(frame_id);
}

fn joint_vec(values: &[f64]) -> Result<JointVec, DecodeError> {
    JointVec::from_slice(values).ok_or(DecodeError::JointMismatch)
}

/// A joint vector from a wire array already bounded by `MAX_JOINTS`.
fn wire_joint_vec(values: F64s<'_>) -> JointVec {
    let mut v = JointVec::zeros(values.len());
    for (d, x) in v.iter_mut().zip(values.iter()) {
        *d = x;
    }
    v
}

/// `sensor_msgs/msg/JointState` of a measured state; header stamp = capture.
pub fn encode_joints(out: &mut Vec<u8>, s: &Stamped<JointState>, names: &[String]) {
    let mut w = CdrWriter::new(out);
    put_header(&mut w, s.capture, "");
    w.str_seq(names.iter().take(s.value.len()).map(String::as_str));
    w.f64_seq(s.value.position.iter().copied());
    w.f64_seq(s.value.velocity.iter().copied());
    w.f64_seq(s.value.effort.iter().copied());
}

/// Decodes a recorded joint state; the stamps and sequence come from the
/// MCAP message header (`capture` from the header stamp).
pub fn decode_joints(data: &[u8], receive: Stamp, seq: u64) -> Result<Stamped<JointState>, DecodeError> {
    let m = JointStateMsg::decode(data, &DecodeLimits::default())?;
    let capture = Stamp(m.header.stamp.as_nanos().ok_or(DecodeError::Truncated)?);
    let value = JointState {
        position: joint_vec(&m.position)?,
        velocity: joint_vec(&m.velocity)?,
        effort: joint_vec(&m.effort)?,
    };
    Ok(Stamped { capture, receive, seq, value })
}

/// `sensor_msgs/msg/Image` of a frame, tightly packed; header stamp = capture.
pub fn encode_frame(out: &mut Vec<u8>, s: &Stamped<Frame>, frame_id: &str) {
    let f = &s.value;
    let mut w = CdrWriter::new(out);
    put_header(&mut w, s.capture, frame_id);
    w.u32(f.height);
    w.u32(f.width);
    w.str(f.format.ros_encoding());
    w.u8(0);
    w.u32(f.width * f.format.bytes_per_pixel() as u32);
    w.bytes(f.data());
}

/// Decodes a recorded frame into a buffer of exactly its size.
pub fn decode_frame(data: &[u8], receive: Stamp, seq: u64) -> Result<Stamped<Frame>, DecodeError> {
    let m = Image::decode(data, &DecodeLimits::default())?;
    let format = PixelFormat::from_ros_encoding(&m.encoding).ok_or(DecodeError::BadEncoding)?;
    let capture = Stamp(m.header.stamp.as_nanos().ok_or(DecodeError::Truncated)?);
    let mut frame = Frame::with_capacity(m.width, m.height);
    frame.set(m.width, m.height, format, &m.data).map_err(|_| DecodeError::BadGeometry)?;
    Ok(Stamped { capture, receive, seq, value: frame })
}

/// `std_msgs/msg/String` of the instruction text. Its sequence number is
/// the MCAP message sequence; both stamps are the MCAP times.
pub fn encode_instruction(out: &mut Vec<u8>, i: &Instruction) {
    CdrWriter::new(out).str(&i.text);
}

/// Decodes a recorded instruction.
pub fn decode_instruction(
    data: &[u8],
    capture: Stamp,
    receive: Stamp,
    seq: u64,
    text_seq: u64,
) -> Result<Stamped<Instruction>, DecodeError> {
    let m = StringMsg::decode(data, &DecodeLimits::default())?;
    Ok(Stamped { capture, receive, seq, value: Instruction::new(text_seq, &m.data) })
}

/// `ganglion_msgs/msg/ExternalHeartbeat`.
pub fn encode_heartbeat(out: &mut Vec<u8>, s: &Stamped<ExternalHeartbeat>) {
    let mut w = CdrWriter::new(out);
    put_time(&mut w, s.capture);
    w.u8(u8::from(s.value.stop));
}

/// Decodes a recorded heartbeat.
pub fn decode_heartbeat(data: &[u8], receive: Stamp, seq: u64) -> Result<Stamped<ExternalHeartbeat>, DecodeError> {
    let limits = DecodeLimits::default();
    let mut r = CdrReader::new(data, &limits)?;
    let capture = get_time(&mut r)?;
    let stop = r.u8()? != 0;
    Ok(Stamped { capture, receive, seq, value: ExternalHeartbeat { stop } })
}

/// `ganglion_msgs/msg/InferenceResult`.
pub fn encode_inference(out: &mut Vec<u8>, status: ResultStatus, c: &ActionChunk) {
    let mut w = CdrWriter::new(out);
    put_u64(&mut w, c.request_id);
    put_time(&mut w, c.obs_stamp);
    put_u64(&mut w, c.step_ns);
    w.u8(match c.kind {
        ActionKind::AbsolutePosition => 0,
        ActionKind::DeltaPosition => 1,
    });
    w.u8(status as u8);
    w.u8(u8::from(c.surprise.is_some()));
    w.f64(c.surprise.map_or(0.0, f64::from));
    put_u64(&mut w, c.compute_ns);
    w.u32(c.n_joints() as u32);
    w.f64_seq(c.as_slice().iter().copied());
}

/// Decodes a recorded inference result; `collected` is the MCAP log time.
pub fn decode_inference(data: &[u8], collected: Stamp) -> Result<InferenceRow, DecodeError> {
    let limits = DecodeLimits::default();
    let mut r = CdrReader::new(data, &limits)?;
    let request_id = get_u64(&mut r)?;
    let obs_stamp = get_time(&mut r)?;
    let step_ns = get_u64(&mut r)?;
    let kind = match r.u8()? {
        0 => ActionKind::AbsolutePosition,
        1 => ActionKind::DeltaPosition,
        _ => return Err(DecodeError::BadEncoding),
    };
    let status = ResultStatus::from_u8(r.u8()?).ok_or(DecodeError::BadEncoding)?;
    let has_surprise = r.u8()? != 0;
    // Recorded from an f32, so the narrowing is exact.
    let surprise = r.f64()? as f32;
    let compute_ns = get_u64(&mut r)?;
    let n_joints = r.u32()? as usize;
    if n_joints == 0 || n_joints > ganglion_core::MAX_JOINTS {
        return Err(DecodeError::JointMismatch);
    }
    let actions = r.f64_seq(limits.max_array_len)?;
    if actions.len() % n_joints != 0 {
        return Err(DecodeError::JointMismatch);
    }
    let steps = actions.len() / n_joints;
    let mut chunk = ActionChunk::with_capacity(steps, n_joints);
    chunk.set_steps(steps);
    for (d, s) in chunk.as_mut_slice().iter_mut().zip(actions.iter()) {
        *d = s;
    }
    chunk.request_id = request_id;
    chunk.obs_stamp = obs_stamp;
    chunk.step_ns = step_ns;
    chunk.kind = kind;
    chunk.surprise = has_surprise.then_some(surprise);
    chunk.compute_ns = compute_ns;
    Ok(InferenceRow { collected, status, chunk })
}

/// `ganglion_msgs/msg/TickRecord`.
pub fn encode_tick(out: &mut Vec<u8>, t: &TickRow) {
    let mut w = CdrWriter::new(out);
    put_u64(&mut w, t.seq);
    put_time(&mut w, t.scheduled);
    put_time(&mut w, t.start);
    w.len(t.stage_ns.len());
    for v in t.stage_ns {
        w.u32(v);
    }
    w.u8(t.mode as u8);
    w.u32(t.causes.0);
    put_u64(&mut w, t.request_id);
    put_u64(&mut w, t.result_id);
    w.u32(t.action_index);
    w.u32(t.clamps);
    w.u8(t.flags);
    put_u64(&mut w, t.inference_latency_ns);
    w.f64_seq(t.position.iter().copied());
    w.f64_seq(t.velocity.iter().copied());
}

/// Decodes a recorded tick.
pub fn decode_tick(data: &[u8]) -> Result<TickRow, DecodeError> {
    let limits = DecodeLimits::default();
    let mut r = CdrReader::new(data, &limits)?;
    let seq = get_u64(&mut r)?;
    let scheduled = get_time(&mut r)?;
    let start = get_time(&mut r)?;
    let n = r.seq_len(STAGES.len(), 4)?;
    let mut stage_ns = [0u32; STAGES.len()];
    for v in stage_ns.iter_mut().take(n) {
        *v = r.u32()?;
    }
    let mode = Mode::from_u8(r.u8()?).ok_or(DecodeError::BadEncoding)?;
    let causes = CauseSet(r.u32()?);
    let request_id = get_u64(&mut r)?;
    let result_id = get_u64(&mut r)?;
    let action_index = r.u32()?;
    let clamps = r.u32()?;
    let flags = r.u8()?;
    let inference_latency_ns = get_u64(&mut r)?;
    let position = wire_joint_vec(r.f64_seq(ganglion_core::MAX_JOINTS)?);
    let velocity = wire_joint_vec(r.f64_seq(ganglion_core::MAX_JOINTS)?);
    Ok(TickRow {
        seq,
        scheduled,
        start,
        stage_ns,
        mode,
        causes,
        request_id,
        result_id,
        action_index,
        clamps,
        flags,
        inference_latency_ns,
        position,
        velocity,
    })
}

/// `sensor_msgs/msg/JointState` of a tick's command (positions and
/// velocities; efforts empty), stamped with the tick's scheduled start.
pub fn encode_command(out: &mut Vec<u8>, t: &TickRow, names: &[String]) {
    let mut w = CdrWriter::new(out);
    put_header(&mut w, t.scheduled, t.mode.name());
    w.str_seq(names.iter().take(t.position.len()).map(String::as_str));
    w.f64_seq(t.position.iter().copied());
    w.f64_seq(t.velocity.iter().copied());
    w.f64_seq(std::iter::empty::<f64>());
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganglion_core::Cause;

    #[test]
    fn every_payload_round_trips_bit_exactly() {
        let mut buf = Vec::new();
        let mut js = JointState::zeros(3);
        js.position.copy_from_slice(&[0.1, f64::NAN, -3.0]);
        let s = Stamped { capture: Stamp(1_500_000_001), receive: Stamp(1_600_000_000), seq: 9, value: js };
        encode_joints(&mut buf, &s, &["a".into(), "b".into(), "c".into()]);
        let d = decode_joints(&buf, s.receive, 9).expect("decodes");
        assert_eq!(d.capture, s.capture);
        assert_eq!(d.value.position[1].to_bits(), f64::NAN.to_bits());

        let mut f = Frame::with_capacity(4, 2);
        f.set(4, 2, PixelFormat::Rgb8, &[5; 24]).expect("fits");
        let s = Stamped { capture: Stamp(7), receive: Stamp(8), seq: 1, value: f };
        encode_frame(&mut buf, &s, "cam");
        assert_eq!(decode_frame(&buf, Stamp(8), 1).expect("decodes"), s);

        let mut chunk = ActionChunk::with_capacity(4, 2);
        chunk.set_steps(3);
        chunk.as_mut_slice().copy_from_slice(&[1.0, 2.0, 3.0, f64::INFINITY, 5.0, 6.0]);
        chunk.request_id = 1 << 40;
        chunk.obs_stamp = Stamp(123_456_789_012);
        chunk.surprise = Some(0.3);
        let row = InferenceRow { collected: Stamp(99), status: ResultStatus::Ok, chunk };
        encode_inference(&mut buf, row.status, &row.chunk);
        let back = decode_inference(&buf, Stamp(99)).expect("decodes");
        assert_eq!(back.chunk.as_slice(), row.chunk.as_slice());
        assert_eq!(
            (back.chunk.request_id, back.chunk.obs_stamp, back.chunk.surprise),
            (1 << 40, Stamp(123_456_789_012), Some(0.3))
        );

        let cmd = ganglion_core::hold_command(u64::MAX - 1, Stamp(5), Mode::Fallback, JointVec::splat(3, -0.25));
        let mut t = TickRow::from_command(&cmd);
        t.causes.insert(Cause::InferenceLate);
        t.stage_ns[7] = 12_345;
        encode_tick(&mut buf, &t);
        assert_eq!(decode_tick(&buf).expect("decodes"), t);

        let hb = Stamped { capture: Stamp(3), receive: Stamp(4), seq: 2, value: ExternalHeartbeat { stop: true } };
        encode_heartbeat(&mut buf, &hb);
        assert_eq!(decode_heartbeat(&buf, Stamp(4), 2).expect("decodes"), hb);
    }

    #[test]
    fn truncated_payloads_are_errors_not_panics() {
        let mut buf = Vec::new();
        let t =
            TickRow::from_command(&ganglion_core::hold_command(1, Stamp(5), Mode::Nominal, JointVec::splat(2, 0.0)));
        encode_tick(&mut buf, &t);
        for n in 0..buf.len() {
            assert!(decode_tick(&buf[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }
}
