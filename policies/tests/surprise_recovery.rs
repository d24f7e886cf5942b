//! The surprise monitor's recovery rule on a world model whose predictions
//! are exact, without a text encoder (so no new instruction ever resets it).
//!
//! The bundle, built here: the latent is the joint positions plus the mean
//! image brightness; the dynamics move the joints to the commanded target
//! and keep the brightness; the head always plans a move to (0.5, 0.5).
//! While the fallback holds the arm, predicting over that unexecuted plan
//! would keep every observation surprising (the latch); predicting over a
//! hold at the measured position lets a sane observation become the
//! reference again, while a blind camera keeps disagreeing with the last
//! trusted reference and never becomes it.

mod common;

use common::*;
use ganglion_core::{ActionChunk, Observation, Policy, Stamp};
use ganglion_policies::{load_policy, BackendKind, BundlePolicy};
use prost::Message;
use tract_onnx::pb::{
    attribute_proto, tensor_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

const STEP_NS: u64 = 100_000_000;
const THRESHOLD: f32 = 0.05;

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: tensor_proto::DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension { value: Some(dimension::Value::DimValue(*d)), denotation: String::new() })
                        .collect(),
                }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..AttributeProto::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_proto::AttributeType::Int as i32,
        i: v,
        ..AttributeProto::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: outputs[0].into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..NodeProto::default()
    }
}

fn i64s(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: tensor_proto::DataType::Int64 as i32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

fn f32s(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: tensor_proto::DataType::Float as i32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

fn graph(
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    inputs: &[(&str, &[i64])],
    outputs: &[(&str, &[i64])],
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(GraphProto {
            name: "g".into(),
            node: nodes,
            initializer,
            input: inputs.iter().map(|(n, d)| value_info(n, d)).collect(),
            output: outputs.iter().map(|(n, d)| value_info(n, d)).collect(),
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

const MANIFEST: &str = r#"
format = 1
name = "servo-wm"
version = "0.1.0"
precision = "fp32"
expected_latency_ms = 1.0
parity_tolerance = 0.0001
surprise_threshold = 0.05

[graphs.encoder]
file = "encoder.onnx"
inputs = [{ name = "image", shape = [1, 1, 4, 4], dtype = "f32" }, { name = "joints", shape = [1, 2], dtype = "f32" }]
outputs = [{ name = "latent", shape = [1, 3], dtype = "f32" }]

[graphs.dynamics]
file = "dynamics.onnx"
inputs = [{ name = "latent", shape = [1, 3], dtype = "f32" }, { name = "action", shape = [1, 2], dtype = "f32" }]
outputs = [{ name = "next_latent", shape = [1, 3], dtype = "f32" }]

[graphs.action_head]
file = "action_head.onnx"
inputs = [{ name = "latent", shape = [1, 3], dtype = "f32" }]
outputs = [{ name = "chunk", shape = [1, 4, 2], dtype = "f32" }]

[joints]
names = ["a", "b"]
mean = [0.0, 0.0]
std = [1.0, 1.0]

[action]
kind = "absolute"
chunk_len = 4
rate_hz = 10.0
mean = [0.0, 0.0]
std = [1.0, 1.0]

[[cameras]]
name = "front"
width = 4
height = 4
format = "mono8"
resize = [4, 4]
mean = [0.0]
std = [1.0]

[[files]]
path = "encoder.onnx"

[[files]]
path = "dynamics.onnx"

[[files]]
path = "action_head.onnx"
"#;

/// Builds and signs the bundle; returns the loaded policy.
fn servo_world_model() -> (tempfile::TempDir, BundlePolicy) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let encoder = graph(
        vec![
            node("ReduceMean", &["image"], &["m"], vec![ints("axes", &[1, 2, 3]), int("keepdims", 1)]),
            node("Flatten", &["m"], &["mf"], vec![int("axis", 1)]),
            node("Concat", &["joints", "mf"], &["latent"], vec![int("axis", 1)]),
        ],
        vec![],
        &[("image", &[1, 1, 4, 4]), ("joints", &[1, 2])],
        &[("latent", &[1, 3])],
    );
    let dynamics = graph(
        vec![
            node("Slice", &["latent", "s2", "s3", "ax1"], &["brightness"], vec![]),
            node("Concat", &["action", "brightness"], &["next_latent"], vec![int("axis", 1)]),
        ],
        vec![i64s("s2", &[2]), i64s("s3", &[3]), i64s("ax1", &[1])],
        &[("latent", &[1, 3]), ("action", &[1, 2])],
        &[("next_latent", &[1, 3])],
    );
    let head = graph(
        vec![
            node("Slice", &["latent", "s0", "s2", "ax1"], &["q"], vec![]),
            node("Mul", &["q", "zero"], &["z"], vec![]),
            node("Add", &["z", "target"], &["a"], vec![]),
            node("Concat", &["a", "a", "a", "a"], &["flat"], vec![int("axis", 1)]),
            node("Reshape", &["flat", "shape"], &["chunk"], vec![]),
        ],
        vec![
            i64s("s0", &[0]),
            i64s("s2", &[2]),
            i64s("ax1", &[1]),
            f32s("zero", &[1, 2], &[0.0, 0.0]),
            f32s("target", &[1, 2], &[0.5, 0.5]),
            i64s("shape", &[1, 4, 2]),
        ],
        &[("latent", &[1, 3])],
        &[("chunk", &[1, 4, 2])],
    );
    for (name, bytes) in [("encoder.onnx", encoder), ("dynamics.onnx", dynamics), ("action_head.onnx", head)] {
        std::fs::write(dir.join(name), bytes).expect("write graph");
    }
    std::fs::write(dir.join("policy.toml"), MANIFEST).expect("write manifest");
    ganglion_policies::sign_bundle(dir, &test_secret_key()).expect("sign");
    let p = load_policy(dir, &opts(BackendKind::Tract)).unwrap_or_else(|e| panic!("servo world model: {e}"));
    (tmp, p)
}

/// An observation `steps` policy steps in, the arm at `q`, the camera at
/// `brightness` (0 = black), `held` by the fallback or not.
fn obs(p: &BundlePolicy, steps: u64, q: f64, brightness: u8, held: bool) -> Observation {
    let mut o = Observation::for_spec(p.spec());
    o.frames[0].set_with(4, 4, p.spec().cameras[0].format, |b| b.fill(brightness)).expect("frame");
    o.joints.position.iter_mut().for_each(|x| *x = q);
    o.stamp = Stamp::from_nanos(steps * STEP_NS);
    o.request_id = steps;
    o.held = held;
    o
}

#[test]
fn the_world_model_recovers_over_a_hold_and_never_trusts_a_blind_camera() {
    let (_t, mut p) = servo_world_model();
    assert_eq!(p.spec().surprise_threshold, Some(THRESHOLD));
    let mut out = ActionChunk::for_spec(p.spec());
    let mut surprise = |p: &mut BundlePolicy, steps: u64, q: f64, brightness: u8, held: bool| {
        let o = obs(p, steps, q, brightness, held);
        p.infer(&o, &mut out).expect("infer");
        out.surprise
    };

    // The policy drives from q = 0: the reference; its plan goes to 0.5.
    assert_eq!(surprise(&mut p, 0, 0.0, 128, false), None);
    // A fault: the fallback holds the arm at 0. Predicted over the plan
    // nobody executes, every later observation is surprising — the latch.
    for k in [3, 4] {
        let s = surprise(&mut p, k, 0.0, 128, false).expect("compared");
        assert!(s > 0.3, "predicted over the unexecuted plan: {s}");
    }
    // Told the arm is held, the world model predicts a hold at the measured
    // position: the sane observation is calm and becomes the reference.
    let s = surprise(&mut p, 6, 0.0, 128, true).expect("compared");
    assert!(s < 1e-6, "a hold where the arm is: {s}");
    // The camera goes blind while held: compared with the last trusted
    // reference (bright), it stays surprising, frame after frame.
    for k in [7, 8, 9] {
        let s = surprise(&mut p, k, 0.0, 0, true).expect("compared");
        assert!(s > THRESHOLD, "a black frame became the reference at step {k}: {s}");
    }
    // The image is back: calm again.
    let s = surprise(&mut p, 10, 0.0, 128, true).expect("compared");
    assert!(s < THRESHOLD, "{s}");
    // The policy takes over: its plan starts now, no comparison yet; then
    // the arm following the plan is predicted exactly.
    assert_eq!(surprise(&mut p, 11, 0.0, 128, false), None);
    let s = surprise(&mut p, 12, 0.5, 128, false).expect("compared");
    assert!(s < 1e-6, "the arm followed the plan: {s}");
}
