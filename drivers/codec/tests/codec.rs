//! Codec tests: golden bytes (hand-checked, and produced by Cyclone DDS's
//! independent Python CDR encoder), round trips, property tests and the
//! malformed corpus.

#[path = "../../interop/python.rs"]
mod python;

use ganglion_codec::msg::*;
use ganglion_codec::{
    decode_command, decode_heartbeat_into, decode_image_into, decode_instruction, decode_joint_state_into,
    encode_command, encode_heartbeat, CommandFormat, DecodeError, DecodeLimits, JointMap,
};
use ganglion_core::{hold_command, ExternalHeartbeat, Frame, JointState as CoreJointState, JointVec, Mode, Stamp};
use proptest::prelude::*;

const STAMP: Time = Time { sec: 1_700_000_000, nanosec: 123_456_789 };

fn header(frame: &str) -> Header {
    Header { stamp: STAMP, frame_id: frame.into() }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The same samples as `drivers/interop/cdr_golden.py`.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("time", STAMP.encode()),
        ("header", header("cam0").encode()),
        (
            "image",
            Image {
                header: header("cam0"),
                height: 2,
                width: 3,
                encoding: "rgb8".into(),
                is_bigendian: 0,
                step: 9,
                data: (0..18).collect(),
            }
            .encode(),
        ),
        (
            "joint_state",
            JointState {
                header: header(""),
                name: strings(&["shoulder", "elbow", "wrist"]),
                position: vec![0.5, -1.25, 3.0],
                velocity: vec![0.1, 0.2, 0.3],
                effort: vec![],
            }
            .encode(),
        ),
        (
            "joint_trajectory",
            JointTrajectory {
                header: header("base"),
                joint_names: strings(&["a", "bb"]),
                points: vec![
                    JointTrajectoryPoint {
                        positions: vec![1.0, 2.0],
                        velocities: vec![0.5, -0.5],
                        time_from_start: Duration { sec: 0, nanosec: 20_000_000 },
                        ..Default::default()
                    },
                    JointTrajectoryPoint {
                        positions: vec![3.0, 4.0],
                        time_from_start: Duration { sec: 1, nanosec: 0 },
                        ..Default::default()
                    },
                ],
            }
            .encode(),
        ),
        (
            "float64_multi_array",
            Float64MultiArray {
                layout: MultiArrayLayout {
                    dim: vec![MultiArrayDimension { label: "position".into(), size: 3, stride: 3 }],
                    data_offset: 0,
                },
                data: vec![1.5, -2.5, 1e-3],
            }
            .encode(),
        ),
        (
            "diagnostic_array",
            DiagnosticArray {
                header: header(""),
                status: vec![
                    DiagnosticStatus {
                        level: DiagnosticStatus::WARN,
                        name: "ganglion: loop".into(),
                        message: "degraded".into(),
                        hardware_id: "sim".into(),
                        values: vec![
                            KeyValue { key: "overruns".into(), value: "3".into() },
                            KeyValue { key: "mode".into(), value: "degraded".into() },
                        ],
                    },
                    DiagnosticStatus { level: 0, name: "x".into(), ..Default::default() },
                ],
            }
            .encode(),
        ),
        ("string", StringMsg { data: "reach the red target".into() }.encode()),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn encoder_matches_cyclone_dds_python_serializer() {
    let out = python::script("cdr_golden.py").output().expect("run python");
    assert!(out.status.success(), "cdr_golden.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf8");
    let cyclone: std::collections::HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    let ours = samples();
    assert_eq!(cyclone.len(), ours.len(), "sample sets differ: {text}");
    for (name, bytes) in &ours {
        assert_eq!(cyclone.get(name).copied(), Some(hex(bytes).as_str()), "{name}: our bytes differ from Cyclone's");
    }
}

#[test]
fn hand_checked_joint_state_bytes() {
    let msg = JointState {
        header: Header { stamp: Time { sec: 1, nanosec: 2 }, frame_id: "a".into() },
        name: strings(&["j1"]),
        position: vec![1.5],
        velocity: vec![],
        effort: vec![],
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 1, 0, 0,             // CDR_LE encapsulation
        1, 0, 0, 0, 2, 0, 0, 0, // stamp sec, nanosec
        2, 0, 0, 0, b'a', 0,    // frame_id "a" + NUL
        0, 0,                   // pad to 4
        1, 0, 0, 0,             // 1 name
        3, 0, 0, 0, b'j', b'1', 0, 0, // "j1" + NUL + pad
        1, 0, 0, 0,             // 1 position; offset 28+4 = 32 is 8-aligned: no pad
        0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // 1.5
        0, 0, 0, 0,             // no velocity
        0, 0, 0, 0,             // no effort
    ];
    assert_eq!(msg.encode(), expected);
    assert_eq!(JointState::decode(expected, &DecodeLimits::default()), Ok(msg));
}

#[test]
fn owned_decoders_round_trip_every_sample() {
    let lim = DecodeLimits::default();
    for (name, bytes) in samples() {
        let re = match name {
            "time" => Time::decode(&bytes, &lim).map(|m| m.encode()),
            "header" => Header::decode(&bytes, &lim).map(|m| m.encode()),
            "image" => Image::decode(&bytes, &lim).map(|m| m.encode()),
            "joint_state" => JointState::decode(&bytes, &lim).map(|m| m.encode()),
            "joint_trajectory" => JointTrajectory::decode(&bytes, &lim).map(|m| m.encode()),
            "float64_multi_array" => Float64MultiArray::decode(&bytes, &lim).map(|m| m.encode()),
            "diagnostic_array" => DiagnosticArray::decode(&bytes, &lim).map(|m| m.encode()),
            "string" => StringMsg::decode(&bytes, &lim).map(|m| m.encode()),
            other => panic!("unknown sample {other}"),
        };
        assert_eq!(re.as_deref(), Ok(bytes.as_slice()), "{name}");
    }
}

#[test]
fn big_endian_payloads_decode_too() {
    // Header stamp (sec=1, nanosec=2), frame_id "", big-endian encapsulation.
    let bytes = [0u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0];
    let h = Header::decode(&bytes, &DecodeLimits::default()).expect("decodes");
    assert_eq!(h.stamp, Time { sec: 1, nanosec: 2 });
}

#[test]
fn joint_state_maps_names_onto_profile_order() {
    let msg = JointState {
        header: header(""),
        name: strings(&["gripper", "wrist", "shoulder", "elbow"]),
        position: vec![9.0, 3.0, 1.0, 2.0],
        velocity: vec![],
        effort: vec![90.0, 30.0, 10.0, 20.0],
    }
    .encode();
    let map = JointMap::by_name(strings(&["shoulder", "elbow", "wrist"]));
    let mut out = CoreJointState::zeros(3);
    let stamp = decode_joint_state_into(&msg, &DecodeLimits::default(), &map, &mut out).expect("decodes");
    assert_eq!(stamp, STAMP);
    assert_eq!(&*out.position, &[1.0, 2.0, 3.0]);
    assert_eq!(&*out.velocity, &[0.0; 3]);
    assert_eq!(&*out.effort, &[10.0, 20.0, 30.0]);

    let missing = JointMap::by_name(strings(&["shoulder", "knee"]));
    let before = out;
    assert_eq!(
        decode_joint_state_into(&msg, &DecodeLimits::default(), &missing, &mut out),
        Err(DecodeError::JointMismatch)
    );
    assert_eq!(out, before, "a rejected message leaves the buffer alone");

    // Positional maps need exactly the robot's joint count.
    assert_eq!(
        decode_joint_state_into(&msg, &DecodeLimits::default(), &JointMap::positional(3), &mut out),
        Err(DecodeError::JointMismatch)
    );
    let mut four = CoreJointState::zeros(4);
    decode_joint_state_into(&msg, &DecodeLimits::default(), &JointMap::positional(4), &mut four).expect("decodes");
    assert_eq!(&*four.position, &[9.0, 3.0, 1.0, 2.0]);
}

#[test]
fn image_decodes_into_preallocated_frame_dropping_row_padding() {
    let img = Image {
        header: header("cam0"),
        height: 2,
        width: 2,
        encoding: "mono8".into(),
        is_bigendian: 0,
        step: 4,
        data: vec![1, 2, 0xee, 0xee, 3, 4, 0xee, 0xee],
    };
    let mut frame = Frame::with_capacity(4, 4);
    let ptr = frame.data().as_ptr();
    let stamp = decode_image_into(&img.encode(), &DecodeLimits::default(), &mut frame).expect("decodes");
    assert_eq!(stamp, STAMP);
    assert_eq!((frame.width, frame.height, frame.data()), (2, 2, &[1u8, 2, 3, 4][..]));
    assert_eq!(frame.data().as_ptr(), ptr, "decoded in place");

    let too_big = Image { width: 8, height: 8, step: 24, data: vec![0; 192], encoding: "rgb8".into(), ..img.clone() };
    assert_eq!(
        decode_image_into(&too_big.encode(), &DecodeLimits::default(), &mut frame),
        Err(DecodeError::BadDimensions)
    );
    let small_limits = DecodeLimits { max_width: 1, ..DecodeLimits::default() };
    assert_eq!(decode_image_into(&img.encode(), &small_limits, &mut frame), Err(DecodeError::BadDimensions));
}

#[test]
fn commands_encode_as_the_ros_messages_and_decode_back() {
    let names = strings(&["a", "b", "c"]);
    let mut cmd = hold_command(7, Stamp(5), Mode::Nominal, JointVec::from_slice(&[0.1, 0.2, 0.3]).expect("fits"));
    cmd.velocity = JointVec::from_slice(&[1.0, 2.0, 3.0]).expect("fits");
    let lim = DecodeLimits::default();
    let mut buf = Vec::new();
    for format in CommandFormat::ALL {
        encode_command(&cmd, format, &names, STAMP, 20_000_000, &mut buf);
        let t = decode_command(&buf, format, &lim).expect("decodes");
        assert_eq!(t.position, cmd.position, "{format:?}");
        let expected_vel = if format == CommandFormat::Float64MultiArray { JointVec::zeros(3) } else { cmd.velocity };
        assert_eq!(t.velocity, expected_vel, "{format:?}");
        // The same bytes as the owned ROS message.
        let owned = match format {
            CommandFormat::JointTrajectory => JointTrajectory {
                header: Header { stamp: STAMP, frame_id: String::new() },
                joint_names: names.clone(),
                points: vec![JointTrajectoryPoint {
                    positions: cmd.position.to_vec(),
                    velocities: cmd.velocity.to_vec(),
                    time_from_start: Duration { sec: 0, nanosec: 20_000_000 },
                    ..Default::default()
                }],
            }
            .encode(),
            CommandFormat::Float64MultiArray => Float64MultiArray {
                layout: MultiArrayLayout {
                    dim: vec![MultiArrayDimension { label: "position".into(), size: 3, stride: 3 }],
                    data_offset: 0,
                },
                data: cmd.position.to_vec(),
            }
            .encode(),
            CommandFormat::JointState => JointState {
                header: Header { stamp: STAMP, frame_id: String::new() },
                name: names.clone(),
                position: cmd.position.to_vec(),
                velocity: cmd.velocity.to_vec(),
                effort: vec![],
            }
            .encode(),
        };
        assert_eq!(buf, owned, "{format:?}");
        assert_eq!(CommandFormat::from_ros_type(format.ros_type()), Some(format));
    }
}

#[test]
fn heartbeat_and_instruction() {
    let lim = DecodeLimits::default();
    let mut buf = Vec::new();
    encode_heartbeat(Mode::Fallback, STAMP, &mut buf);
    assert_eq!(Header::decode(&buf, &lim), Ok(Header { stamp: STAMP, frame_id: "fallback".into() }));
    let mut hb = ExternalHeartbeat::default();
    let stop = Header { stamp: STAMP, frame_id: "stop".into() }.encode();
    assert_eq!(decode_heartbeat_into(&stop, &lim, &mut hb), Ok(STAMP));
    assert!(hb.stop);
    decode_heartbeat_into(&header("ok").encode(), &lim, &mut hb).expect("decodes");
    assert!(!hb.stop);

    let text = StringMsg { data: "pick up the cube".into() }.encode();
    assert_eq!(decode_instruction(&text, &lim), Ok("pick up the cube"));
    let long = StringMsg { data: "x".repeat(300) }.encode();
    assert_eq!(decode_instruction(&long, &lim), Err(DecodeError::TooLong));
}

/// Every decoder applied to `bytes`; returns whether any accepted it. Must
/// never panic.
fn decode_all(bytes: &[u8], lim: &DecodeLimits) -> bool {
    let mut frame = Frame::with_capacity(64, 64);
    let mut js = CoreJointState::zeros(3);
    let mut hb = ExternalHeartbeat::default();
    let map = JointMap::by_name(strings(&["shoulder", "elbow", "wrist"]));
    let results = [
        Image::decode(bytes, lim).is_ok(),
        JointState::decode(bytes, lim).is_ok(),
        JointTrajectory::decode(bytes, lim).is_ok(),
        Float64MultiArray::decode(bytes, lim).is_ok(),
        DiagnosticArray::decode(bytes, lim).is_ok(),
        StringMsg::decode(bytes, lim).is_ok(),
        decode_image_into(bytes, lim, &mut frame).is_ok(),
        decode_joint_state_into(bytes, lim, &map, &mut js).is_ok(),
        decode_heartbeat_into(bytes, lim, &mut hb).is_ok(),
        decode_instruction(bytes, lim).is_ok(),
        CommandFormat::ALL.iter().any(|f| decode_command(bytes, *f, lim).is_ok()),
    ];
    results.iter().any(|r| *r)
}

#[test]
fn malformed_corpus_is_rejected_without_panic() {
    let lim = DecodeLimits::default();
    let mut frame = Frame::with_capacity(64, 64);
    let mut js = CoreJointState::zeros(3);
    let map = JointMap::by_name(strings(&["shoulder", "elbow", "wrist"]));
    let samples = samples();
    let (_, image) = &samples[2];
    let (_, joints) = &samples[3];

    // Every strict prefix of every golden message is truncated.
    for (name, bytes) in &samples {
        for cut in 0..bytes.len() {
            let prefix = &bytes[..cut];
            decode_all(prefix, &lim);
            let r = match *name {
                "image" => decode_image_into(prefix, &lim, &mut frame).err(),
                "joint_state" => decode_joint_state_into(prefix, &lim, &map, &mut js).err(),
                "joint_trajectory" => JointTrajectory::decode(prefix, &lim).err(),
                "diagnostic_array" => DiagnosticArray::decode(prefix, &lim).err(),
                _ => Some(DecodeError::Truncated),
            };
            assert!(matches!(r, Some(DecodeError::Truncated | DecodeError::BadString)), "{name} cut at {cut}: {r:?}");
        }
    }

    // Wrong encapsulation.
    let mut bad = joints.clone();
    bad[1] = 7;
    assert_eq!(decode_joint_state_into(&bad, &lim, &map, &mut js), Err(DecodeError::BadEncapsulation));

    // Absurd string length (u32::MAX) in frame_id, and an absurd name count.
    let mut absurd = joints.clone();
    absurd[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decode_joint_state_into(&absurd, &lim, &map, &mut js), Err(DecodeError::TooLong));
    let mut absurd = joints.clone();
    // frame_id "" is 4 + 1 bytes + 3 pad: the name count sits at 20..24.
    absurd[20..24].copy_from_slice(&1_000_000u32.to_le_bytes());
    assert_eq!(JointState::decode(&absurd, &lim), Err(DecodeError::TooLong));

    // Images: oversized dimensions, wrong encoding string, lying step / data.
    let img = Image::decode(image, &lim).expect("golden decodes");
    let cases = [
        (Image { width: 100_000, ..img.clone() }, DecodeError::BadDimensions),
        (Image { width: 0, ..img.clone() }, DecodeError::BadDimensions),
        (Image { encoding: "rgb16".into(), ..img.clone() }, DecodeError::BadEncoding),
        (Image { encoding: "".into(), ..img.clone() }, DecodeError::BadEncoding),
        (Image { step: 8, ..img.clone() }, DecodeError::BadGeometry),
        (Image { data: vec![0; 17], ..img.clone() }, DecodeError::BadGeometry),
        (
            Image { width: 64, height: 65, step: 192, data: vec![0; 192 * 65], ..img.clone() },
            DecodeError::BadDimensions,
        ),
    ];
    for (case, expected) in cases {
        assert_eq!(decode_image_into(&case.encode(), &lim, &mut frame), Err(expected), "{case:?}");
    }
    // Joint arrays of inconsistent length.
    let mut m = JointState::decode(joints, &lim).expect("golden decodes");
    m.velocity.pop();
    assert_eq!(decode_joint_state_into(&m.encode(), &lim, &map, &mut js), Err(DecodeError::JointMismatch));
    // More joints than the cap.
    let many = JointState { position: vec![0.0; 17], ..Default::default() };
    assert_eq!(decode_joint_state_into(&many.encode(), &lim, &map, &mut js), Err(DecodeError::TooLong));
    // Non-UTF-8 and missing NUL.
    let mut s = StringMsg { data: "ab".into() }.encode();
    s[8] = 0xff;
    assert_eq!(StringMsg::decode(&s, &lim), Err(DecodeError::BadString));
    let mut s = StringMsg { data: "ab".into() }.encode();
    s[10] = b'c';
    assert_eq!(StringMsg::decode(&s, &lim), Err(DecodeError::BadString));
    // Whole payload beyond the cap.
    let tiny = DecodeLimits { max_message_bytes: 16, ..lim };
    assert_eq!(JointState::decode(joints, &tiny), Err(DecodeError::TooLong));
}

fn arb_string() -> impl Strategy<Value = String> {
    "[a-z_ /]{0,12}"
}

fn arb_f64s(max: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-1e6f64..1e6, 0..max)
}

fn arb_header() -> impl Strategy<Value = Header> {
    (any::<i32>(), any::<u32>(), arb_string())
        .prop_map(|(sec, nanosec, frame_id)| Header { stamp: Time { sec, nanosec }, frame_id })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn joint_state_round_trips(h in arb_header(), names in proptest::collection::vec(arb_string(), 0..16),
                               p in arb_f64s(16), v in arb_f64s(16), e in arb_f64s(16)) {
        let m = JointState { header: h, name: names, position: p, velocity: v, effort: e };
        prop_assert_eq!(JointState::decode(&m.encode(), &DecodeLimits::default()), Ok(m));
    }

    #[test]
    fn image_round_trips(h in arb_header(), w in 1u32..16, rows in 1u32..16, pad in 0u32..4, enc in arb_string(), seed: u8) {
        let step = w * 3 + pad;
        let data = (0..step * rows).map(|i| (i as u8).wrapping_add(seed)).collect();
        let m = Image { header: h, height: rows, width: w, encoding: enc, is_bigendian: seed & 1, step, data };
        prop_assert_eq!(Image::decode(&m.encode(), &DecodeLimits::default()), Ok(m));
    }

    #[test]
    fn trajectory_and_arrays_round_trip(h in arb_header(), names in proptest::collection::vec(arb_string(), 0..8),
                                        pts in proptest::collection::vec((arb_f64s(8), arb_f64s(8), any::<i32>(), any::<u32>()), 0..5),
                                        labels in proptest::collection::vec((arb_string(), any::<u32>(), any::<u32>()), 0..4),
                                        data in arb_f64s(64), off: u32) {
        let t = JointTrajectory {
            header: h.clone(),
            joint_names: names,
            points: pts.into_iter().map(|(p, v, sec, nanosec)| JointTrajectoryPoint {
                positions: p, velocities: v.clone(), accelerations: v, effort: vec![],
                time_from_start: Duration { sec, nanosec },
            }).collect(),
        };
        prop_assert_eq!(JointTrajectory::decode(&t.encode(), &DecodeLimits::default()), Ok(t));
        let a = Float64MultiArray {
            layout: MultiArrayLayout {
                dim: labels.into_iter().map(|(label, size, stride)| MultiArrayDimension { label, size, stride }).collect(),
                data_offset: off,
            },
            data,
        };
        prop_assert_eq!(Float64MultiArray::decode(&a.encode(), &DecodeLimits::default()), Ok(a));
    }

    #[test]
    fn diagnostics_round_trip(h in arb_header(), st in proptest::collection::vec((0u8..4, arb_string(), arb_string(),
                              proptest::collection::vec((arb_string(), arb_string()), 0..4)), 0..4)) {
        let d = DiagnosticArray {
            header: h,
            status: st.into_iter().map(|(level, name, message, kvs)| DiagnosticStatus {
                level, name, message, hardware_id: "hw".into(),
                values: kvs.into_iter().map(|(key, value)| KeyValue { key, value }).collect(),
            }).collect(),
        };
        prop_assert_eq!(DiagnosticArray::decode(&d.encode(), &DecodeLimits::default()), Ok(d));
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), le: bool) {
        if le && bytes.len() >= 2 {
            bytes[0] = 0;
            bytes[1] = 1;
        }
        decode_all(&bytes, &DecodeLimits::default());
    }

    #[test]
    fn mutated_golden_messages_never_panic(idx in 0usize..8, pos: prop::sample::Index, val: u8) {
        let samples = samples();
        let mut bytes = samples[idx].1.clone();
        let i = pos.index(bytes.len());
        bytes[i] = val;
        decode_all(&bytes, &DecodeLimits::default());
    }
}

/// The shared corpus (`ganglion_codec::corpus`, also sent over the
/// transports by `ganglion bench transport --malformed`): each payload fails
/// its decoder with the documented error, and through [`Inputs`] every one is
/// counted as received and as a decode error while the slots stay untouched;
/// a valid message afterwards still lands.
#[test]
fn malformed_corpus_is_counted_and_dropped_by_ingest() {
    use ganglion_codec::corpus::{malformed_corpus, valid_image, valid_joint_state, CorpusTopic};
    use ganglion_codec::{CaptureStamp, IngestConfig, Inputs};
    use std::sync::atomic::Ordering;

    let joints = strings(&["j0", "j1", "j2", "j3", "j4", "j5"]);
    for (w, h) in [(64, 64), (224, 224), (8, 6)] {
        let lim = DecodeLimits { max_width: w, max_height: h, ..DecodeLimits::default() };
        let corpus = malformed_corpus(&joints, w, h);
        let map = JointMap::by_name(joints.clone());
        let mut frame = Frame::with_capacity(w, h);
        let mut js = CoreJointState::zeros(joints.len());
        for s in &corpus {
            let got = match s.topic {
                CorpusTopic::JointStates => decode_joint_state_into(&s.payload, &lim, &map, &mut js).err(),
                CorpusTopic::Camera => decode_image_into(&s.payload, &lim, &mut frame).err(),
                CorpusTopic::Instruction => decode_instruction(&s.payload, &lim).err(),
            };
            assert_eq!(got, Some(s.expected), "{} ({w}x{h})", s.name);
            decode_all(&s.payload, &lim);
        }
        let per = |t: CorpusTopic| corpus.iter().filter(|s| s.topic == t).count() as u64;
        assert!(
            per(CorpusTopic::JointStates) >= 10 && per(CorpusTopic::Camera) >= 10 && per(CorpusTopic::Instruction) >= 4
        );

        let (writers, mut readers) = ganglion_core::input_slots(joints.len(), &[("cam".to_string(), w, h)]);
        let cfg = IngestConfig {
            clock: std::sync::Arc::new(ganglion_core::MonotonicClock::new()),
            limits: lim,
            capture: CaptureStamp::Header,
            joints: map.clone(),
        };
        let mut inputs = Inputs::new(writers, &cfg);
        for s in &corpus {
            let accepted = match s.topic {
                CorpusTopic::JointStates => inputs.joints.on_payload(&s.payload),
                CorpusTopic::Camera => inputs.cameras[0].on_payload(&s.payload),
                CorpusTopic::Instruction => inputs.instruction.on_payload(&s.payload),
            };
            assert!(!accepted, "{}", s.name);
        }
        assert!(!readers.joints.update() && !readers.cameras[0].update() && !readers.instruction.update());
        for (ingest, topic) in [
            (&inputs.joints, CorpusTopic::JointStates),
            (&inputs.cameras[0], CorpusTopic::Camera),
            (&inputs.instruction, CorpusTopic::Instruction),
        ] {
            let c = ingest.counters();
            assert_eq!(c.received.load(Ordering::Relaxed), per(topic), "{}", ingest.name());
            assert_eq!(c.decode_errors.load(Ordering::Relaxed), per(topic), "{}", ingest.name());
        }
        assert!(inputs.joints.on_payload(&valid_joint_state(&joints).encode()));
        assert!(inputs.cameras[0].on_payload(&valid_image(w, h).encode()));
        assert!(readers.joints.update() && readers.cameras[0].update());
        assert_eq!(readers.cameras[0].latest().value.width, w);
        assert!((readers.joints.latest().value.position[5] - 0.5).abs() < 1e-12);
    }
}

/// Malformed commands (what a plant decodes), heartbeats and diagnostics:
/// each rejected with the documented error, never a panic.
#[test]
fn malformed_commands_heartbeats_and_diagnostics_are_rejected() {
    let lim = DecodeLimits::default();
    let names = strings(&["a", "b", "c"]);
    let cmd = hold_command(1, Stamp(1), Mode::Nominal, JointVec::from_slice(&[0.1, 0.2, 0.3]).expect("fits"));
    for f in CommandFormat::ALL {
        let mut good = Vec::new();
        encode_command(&cmd, f, &names, STAMP, 10_000_000, &mut good);
        assert!(decode_command(&good, f, &lim).is_ok(), "{f:?}");
        let mut bad = good.clone();
        bad[1] = 9;
        assert_eq!(decode_command(&bad, f, &lim), Err(DecodeError::BadEncapsulation), "{f:?}");
        assert_eq!(decode_command(&good[..good.len() - 8], f, &lim), Err(DecodeError::Truncated), "{f:?}");
        assert_eq!(decode_command(&good[..3], f, &lim), Err(DecodeError::Truncated), "{f:?}");
    }
    // A trajectory without points, names that disagree with the positions,
    // more joints than the cap, velocities of another length.
    let point = |p: Vec<f64>, v: Vec<f64>| JointTrajectoryPoint { positions: p, velocities: v, ..Default::default() };
    let traj = |names: &[&str], points| JointTrajectory { header: header(""), joint_names: strings(names), points };
    let jt = CommandFormat::JointTrajectory;
    let cases = [
        (traj(&["a", "b"], vec![]), DecodeError::JointMismatch),
        (traj(&["a", "b"], vec![point(vec![0.0; 3], vec![])]), DecodeError::JointMismatch),
        (traj(&[], vec![point(vec![0.0; 17], vec![])]), DecodeError::TooLong),
        (traj(&[], vec![point(vec![0.0; 3], vec![0.0; 2])]), DecodeError::JointMismatch),
    ];
    for (m, expected) in cases {
        assert_eq!(decode_command(&m.encode(), jt, &lim), Err(expected), "{m:?}");
    }
    let many = Float64MultiArray { data: vec![0.0; 17], ..Default::default() };
    assert_eq!(decode_command(&many.encode(), CommandFormat::Float64MultiArray, &lim), Err(DecodeError::TooLong));
    let mut absurd = many.encode();
    absurd[4..8].copy_from_slice(&u32::MAX.to_le_bytes()); // dimension count
    assert_eq!(decode_command(&absurd, CommandFormat::Float64MultiArray, &lim), Err(DecodeError::TooLong));

    // Heartbeat: a frame_id over the string cap, a cut stamp, no NUL.
    let mut hb = ExternalHeartbeat::default();
    let long = header(&"s".repeat(lim.max_string_len + 1)).encode();
    assert_eq!(decode_heartbeat_into(&long, &lim, &mut hb), Err(DecodeError::TooLong));
    assert_eq!(decode_heartbeat_into(&header("ok").encode()[..7], &lim, &mut hb), Err(DecodeError::Truncated));
    let mut no_nul = header("ok").encode();
    no_nul[18] = b'!';
    assert_eq!(decode_heartbeat_into(&no_nul, &lim, &mut hb), Err(DecodeError::BadString));
    assert!(!hb.stop, "a rejected heartbeat must not change the state");

    // Diagnostics: an absurd status count, a status list over the cap.
    let diag = DiagnosticArray { header: header(""), status: vec![] };
    let mut absurd = diag.encode();
    absurd[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(DiagnosticArray::decode(&absurd, &lim), Err(DecodeError::TooLong));
    let tiny = DecodeLimits { max_array_len: 2, ..lim };
    let three = DiagnosticArray { header: header(""), status: vec![DiagnosticStatus::default(); 3] };
    assert_eq!(DiagnosticArray::decode(&three.encode(), &tiny), Err(DecodeError::TooLong));
}

/// A flood of identical messages (same header stamp), and headers a few
/// microseconds apart, never map to capture stamps that go backwards (the
/// wall/monotonic mapping jitters); a header that really goes back does.
#[test]
fn capture_stamps_are_monotone_in_the_header() {
    use ganglion_codec::corpus::valid_joint_state;
    use ganglion_codec::{CaptureStamp, IngestConfig, Inputs};
    let joints = strings(&["a", "b", "c"]);
    let (writers, mut readers) = ganglion_core::input_slots(joints.len(), &[]);
    let cfg = IngestConfig {
        clock: std::sync::Arc::new(ganglion_core::MonotonicClock::new()),
        limits: DecodeLimits::default(),
        capture: CaptureStamp::Header,
        joints: JointMap::by_name(joints.clone()),
    };
    let mut inputs = Inputs::new(writers, &cfg);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    let mut msg = valid_joint_state(&joints);
    let at = |ns: u64| Time { sec: ((ns / 1_000_000_000) as i32), nanosec: (ns % 1_000_000_000) as u32 };
    let base = now.as_nanos() as u64 - 5_000_000;
    let mut last = Stamp::ZERO;
    // 1,000 copies of one header, then 1,000 headers 1 µs apart.
    for k in 0..2_000u64 {
        msg.header.stamp = at(base + k.saturating_sub(999) * 1_000);
        assert!(inputs.joints.on_payload(&msg.encode()));
        assert!(readers.joints.update());
        let capture = readers.joints.latest().capture;
        assert!(capture >= last, "message {k}: capture went back from {last:?} to {capture:?}");
        last = capture;
    }
    // A header 1 ms before the previous one maps before it: the loop's
    // bad_timestamp check must still see real backward jumps.
    msg.header.stamp = at(base + 1_000 * 1_000 - 1_000_000);
    assert!(inputs.joints.on_payload(&msg.encode()));
    assert!(readers.joints.update());
    assert!(readers.joints.latest().capture < last);
}
