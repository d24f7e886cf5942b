//! The malformed-input corpus: payloads every input decoder must reject
//! (count and drop, never panic, never allocate beyond the limits), with the
//! error each must produce. Used by the codec tests and by
//! `ganglion bench transport --malformed`, which sends it across a real
//! transport and reports the counters.

use crate::msg::{Header, Image, JointState, Message, StringMsg, Time};
use crate::DecodeError;

/// The input topic a corpus payload is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorpusTopic {
    /// `sensor_msgs/JointState` (decoded with `decode_joint_state_into`).
    JointStates,
    /// `sensor_msgs/Image` on camera 0 (`decode_image_into`).
    Camera,
    /// `std_msgs/String` (`decode_instruction`).
    Instruction,
}

/// One malformed payload.
#[derive(Debug, Clone)]
pub struct MalformedSample {
    /// What is wrong with it.
    pub name: &'static str,
    /// Where it goes.
    pub topic: CorpusTopic,
    /// The bytes, CDR encapsulation header included.
    pub payload: Vec<u8>,
    /// The error the decoder must return.
    pub expected: DecodeError,
    /// Whether the defect survives DDS framing. Two do not: (1) DDS carries
    /// the encapsulation in its own DATA submessage (RustDDS rewrites it from
    /// the representation identifier), so a bad encapsulation header cannot
    /// be sent; (2) RTPS pads every serialized payload with zeros to a
    /// multiple of 4 bytes and RustDDS sets no padding count, so a payload cut
    /// 1-3 bytes short of a 4-byte boundary arrives zero-filled to full
    /// length and may decode. Over zenoh the bytes arrive exactly as sent.
    pub survives_dds: bool,
}

/// The wall-clock-free stamp corpus payloads carry.
const STAMP: Time = Time { sec: 1_700_000_000, nanosec: 1 };

/// A valid joint state for `joints` (positions 0.1·k).
pub fn valid_joint_state(joints: &[String]) -> JointState {
    let n = joints.len();
    JointState {
        header: Header { stamp: STAMP, frame_id: String::new() },
        name: joints.to_vec(),
        position: (0..n).map(|k| 0.1 * k as f64).collect(),
        velocity: vec![0.0; n],
        effort: Vec::new(),
    }
}

/// A valid tightly packed rgb8 image of `width × height`.
pub fn valid_image(width: u32, height: u32) -> Image {
    Image {
        header: Header { stamp: STAMP, frame_id: "cam".into() },
        height,
        width,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: width * 3,
        data: (0..width * height * 3).map(|i| i as u8).collect(),
    }
}

fn sample(name: &'static str, topic: CorpusTopic, payload: Vec<u8>, expected: DecodeError) -> MalformedSample {
    MalformedSample { name, topic, payload, expected, survives_dds: true }
}

/// The corpus for a robot with `joints` (1..=16 names) and a camera of
/// `width × height`, checked against `DecodeLimits` whose `max_width` /
/// `max_height` are that camera's size and whose other caps are the
/// defaults. Every payload must be rejected with its `expected` error.
// One push per case, each built from the previous lines, reads better than one vec![] literal.
#[allow(clippy::vec_init_then_push)]
pub fn malformed_corpus(joints: &[String], width: u32, height: u32) -> Vec<MalformedSample> {
    use CorpusTopic::*;
    use DecodeError::*;
    let js = valid_joint_state(joints);
    let js_bytes = js.encode();
    let img = valid_image(width, height);
    let img_bytes = img.encode();
    let mut v = Vec::new();

    // Joint states. Offsets: 4 encapsulation + 8 stamp = 12 is the
    // frame_id length; "" is 4 + 1 (+3 pad), so the name count is at 20.
    v.push(sample("joint_state: empty payload", JointStates, Vec::new(), Truncated));
    v.push(sample("joint_state: header only", JointStates, js_bytes[..4].to_vec(), Truncated));
    v.push(sample("joint_state: cut inside the stamp", JointStates, js_bytes[..9].to_vec(), Truncated));
    v.push(sample("joint_state: last value missing", JointStates, js_bytes[..js_bytes.len() - 8].to_vec(), Truncated));
    v.push(MalformedSample {
        survives_dds: false,
        ..sample("joint_state: one byte short", JointStates, js_bytes[..js_bytes.len() - 1].to_vec(), Truncated)
    });
    let mut bad = js_bytes.clone();
    bad[1] = 7;
    v.push(MalformedSample {
        survives_dds: false,
        ..sample("joint_state: unknown encapsulation", JointStates, bad, BadEncapsulation)
    });
    let mut bad = js_bytes.clone();
    bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    v.push(sample("joint_state: frame_id length 2^32-1", JointStates, bad, TooLong));
    let mut bad = js_bytes.clone();
    bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    v.push(sample("joint_state: name count 2^32-1", JointStates, bad, TooLong));
    let many = JointState { position: vec![0.0; 64], ..JointState::default() };
    v.push(sample("joint_state: 64 joints (over the cap)", JointStates, many.encode(), TooLong));
    let mut m = js.clone();
    m.velocity.push(0.0);
    v.push(sample("joint_state: velocity longer than position", JointStates, m.encode(), JointMismatch));
    let mut m = js.clone();
    m.name[0] = "not_a_joint_of_this_robot".into();
    v.push(sample("joint_state: a configured joint is missing", JointStates, m.encode(), JointMismatch));
    let mut m = js.clone();
    m.position.pop();
    v.push(sample("joint_state: fewer positions than names", JointStates, m.encode(), JointMismatch));
    let mut bad = Header { stamp: STAMP, frame_id: "ab".into() }.encode();
    bad[16] = 0xff; // 'a' -> invalid UTF-8
    bad.extend_from_slice(&js_bytes[20..]);
    v.push(sample("joint_state: frame_id not UTF-8", JointStates, bad, BadString));

    // Images.
    // Cut by 4: zero padding to a 4-byte boundary (DDS) cannot complete it.
    v.push(sample("image: last 4 pixel bytes missing", Camera, img_bytes[..img_bytes.len() - 4].to_vec(), Truncated));
    v.push(sample("image: header only", Camera, img_bytes[..4].to_vec(), Truncated));
    let oversized = |w: u32, h: u32| Image { width: w, height: h, step: w * 3, data: Vec::new(), ..img.clone() };
    v.push(sample("image: width over the limit", Camera, oversized(width + 1, height).encode(), BadDimensions));
    v.push(sample("image: height over the limit", Camera, oversized(width, height + 1).encode(), BadDimensions));
    v.push(sample("image: 100000 x 100000", Camera, oversized(100_000, 100_000).encode(), BadDimensions));
    v.push(sample("image: width 0", Camera, Image { width: 0, ..img.clone() }.encode(), BadDimensions));
    v.push(sample(
        "image: encoding rgb16",
        Camera,
        Image { encoding: "rgb16".into(), ..img.clone() }.encode(),
        BadEncoding,
    ));
    v.push(sample(
        "image: encoding empty",
        Camera,
        Image { encoding: String::new(), ..img.clone() }.encode(),
        BadEncoding,
    ));
    v.push(sample("image: step shorter than a row", Camera, Image { step: 3, ..img.clone() }.encode(), BadGeometry));
    v.push(sample(
        "image: data shorter than step x height",
        Camera,
        Image { data: vec![0; 17], ..img.clone() }.encode(),
        BadGeometry,
    ));
    let mut bad = img_bytes.clone();
    // frame_id "cam": length at 12..16, text at 16..20; then height,
    // width, encoding "rgb8" (4 + 5), is_bigendian (1), step (aligned to
    // 36 in the body, 40 in the payload): the pixel count is at 44.
    bad[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
    v.push(sample("image: pixel count 2^32-1", Camera, bad, TooLong));

    // Instructions.
    let text = StringMsg { data: "ab".into() }.encode();
    v.push(sample("instruction: text missing", Instruction, text[..8].to_vec(), Truncated));
    v.push(MalformedSample {
        survives_dds: false,
        ..sample("instruction: cut inside the text", Instruction, text[..9].to_vec(), Truncated)
    });
    let mut bad = text.clone();
    bad[8] = 0xff;
    v.push(sample("instruction: not UTF-8", Instruction, bad, BadString));
    let mut bad = text.clone();
    bad[10] = b'c';
    v.push(sample("instruction: missing NUL", Instruction, bad, BadString));
    let long = StringMsg { data: "x".repeat(ganglion_core::MAX_INSTRUCTION_LEN + 1) }.encode();
    v.push(sample("instruction: longer than the instruction cap", Instruction, long, TooLong));
    v
}
