//! What the backends accept of a graph's real inputs and outputs, against
//! the manifest: extra graph outputs are ignored (the declared ones are read
//! by name), a declared output the graph lacks or a dtype the graph
//! disagrees with is refused naming the tensor, and stale symbolic shape
//! annotations (ONNX Runtime's quantizer leaves the export's batch `N` in
//! `value_info`) do not stop tract.

mod common;

use common::*;
use ganglion_policies::backend::{BackendChoice, Graph};
use ganglion_policies::manifest::{DType, GraphRole, GraphSpec, Manifest};
use ganglion_policies::{open_verified, GraphModel, VerifyOptions};
use prost::Message;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{type_proto, ModelProto, TensorShapeProto, TypeProto, ValueInfoProto};

fn backends(test: &str) -> Vec<BackendChoice> {
    let mut b = vec![BackendChoice::Tract];
    if ort_or_skip(test) {
        b.push(ort_cpu());
    }
    b
}

/// The fixture's single policy graph and its manifest.
fn fixture() -> (Manifest, ModelProto) {
    let b = open_verified(
        &fixtures().join("single"),
        &VerifyOptions { trusted_keys: vec![test_public_key()], allow_unsigned: false },
    )
    .expect("fixture");
    let model = ModelProto::decode(b.file("policy.onnx").expect("graph")).expect("decode");
    (b.manifest, model)
}

fn spec(m: &Manifest) -> GraphSpec {
    m.graphs.policy.clone().expect("policy graph")
}

/// Name of the input of the graph's last node: an intermediate tensor.
fn intermediate(model: &ModelProto) -> String {
    let g = model.graph.as_ref().expect("graph");
    g.node.last().expect("nodes").input[0].clone()
}

fn value_info(name: &str, dims: Vec<dimension::Value>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: dims.into_iter().map(|v| Dimension { value: Some(v), denotation: String::new() }).collect(),
                }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

fn load(spec: &GraphSpec, bytes: &[u8], choice: &BackendChoice) -> Result<Graph, String> {
    Graph::load(GraphRole::Policy, spec, GraphModel::inline(bytes), std::path::Path::new("policy.onnx"), choice)
        .map_err(|e| e.to_string())
}

#[test]
fn extra_graph_outputs_are_ignored_and_the_declared_one_is_read() {
    let (m, model) = fixture();
    let original = model.encode_to_vec();
    let mut extra = model.clone();
    let name = intermediate(&extra);
    // The auxiliary output comes first, so reading by position would be wrong.
    let g = extra.graph.as_mut().expect("graph");
    g.output.insert(0, ValueInfoProto { name, ..ValueInfoProto::default() });
    let bytes = extra.encode_to_vec();
    for choice in backends("extra_graph_outputs_are_ignored_and_the_declared_one_is_read") {
        let want = run_on_fixed_inputs(load(&spec(&m), &original, &choice).expect("original"));
        let got = run_on_fixed_inputs(load(&spec(&m), &bytes, &choice).unwrap_or_else(|e| panic!("{choice:?}: {e}")));
        assert_eq!(got, want, "{choice:?}: not the declared output");
    }
}

#[test]
fn a_declared_output_the_graph_lacks_is_refused_by_name() {
    let (m, model) = fixture();
    let mut s = spec(&m);
    s.outputs[0].name = "actions".into();
    for choice in backends("a_declared_output_the_graph_lacks_is_refused_by_name") {
        let err = load(&s, &model.encode_to_vec(), &choice).expect_err("missing output accepted");
        assert!(err.contains("`actions`") && err.contains("policy.onnx"), "{choice:?}: {err}");
    }
}

#[test]
fn a_dtype_the_graph_disagrees_with_is_refused_by_name() {
    let (m, model) = fixture();
    let mut s = spec(&m);
    let i = s.inputs.iter().position(|t| t.dtype == DType::F32).expect("an f32 input");
    s.inputs[i].dtype = DType::I64;
    let name = s.inputs[i].name.clone();
    for choice in backends("a_dtype_the_graph_disagrees_with_is_refused_by_name") {
        let err = load(&s, &model.encode_to_vec(), &choice).expect_err("wrong dtype accepted");
        assert!(err.contains(&format!("`{name}`")) || err.contains(&name), "{choice:?}: {err}");
    }
}

#[test]
fn stale_symbolic_batch_annotations_do_not_stop_tract() {
    let (m, model) = fixture();
    let want = run_on_fixed_inputs(load(&spec(&m), &model.encode_to_vec(), &BackendChoice::Tract).expect("original"));
    let mut annotated = model.clone();
    let name = intermediate(&annotated);
    // What onnxruntime.quantization leaves behind: the export's symbolic
    // batch on an intermediate tensor, while the manifest fixes the batch to 1.
    let rank = 2; // the fixture's last node takes a [batch, features] tensor
    let mut dims = vec![dimension::Value::DimParam("N".into())];
    dims.extend((1..rank).map(|_| dimension::Value::DimParam("F".into())));
    annotated.graph.as_mut().expect("graph").value_info.push(value_info(&name, dims));
    let bytes = annotated.encode_to_vec();
    let got = run_on_fixed_inputs(load(&spec(&m), &bytes, &BackendChoice::Tract).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(got, want);
}

/// `inspect` shows the graph's own inputs and outputs beside the
/// manifest's, so a mismatch is visible without loading a backend.
#[test]
fn inspect_shows_the_graphs_real_inputs_and_outputs() {
    let (_t, dir) = copy_bundle("single");
    let (_, model) = fixture();
    let mut extra = model.clone();
    let name = intermediate(&extra);
    extra
        .graph
        .as_mut()
        .expect("graph")
        .output
        .push(ValueInfoProto { name: name.clone(), ..ValueInfoProto::default() });
    std::fs::write(dir.join("policy.onnx"), extra.encode_to_vec()).expect("write");
    ganglion_policies::sign_bundle(&dir, &test_secret_key()).expect("sign");
    let r = ganglion_policies::inspect(&dir, &[test_public_key()]).expect("inspect");
    let g = &r.graphs[0];
    assert_eq!(g.graph_inputs, vec!["image uint8 [1, 1, 12, 12]".to_string(), "joints float [1, 2]".to_string()]);
    assert_eq!(g.graph_outputs.len(), 2, "{:?}", g.graph_outputs);
    assert!(g.graph_outputs[0].starts_with("chunk float"), "{:?}", g.graph_outputs);
    assert!(g.graph_outputs[1].starts_with(&format!("{name} ")), "{:?}", g.graph_outputs);
    assert!(r.to_string().contains("onnx out"), "{r}");
}

/// An INT8 QDQ graph exactly as `onnxruntime.quantization` writes it from an
/// export with a symbolic batch (fixture: make_qdq_symbolic_batch.py) loads
/// unedited on tract with the manifest's batch of 1, and agrees with ONNX
/// Runtime to within one quantization step of the output.
#[test]
fn onnx_runtime_quantizer_output_loads_unedited_on_both_backends() {
    let file = fixtures().join("graphs/qdq_symbolic_batch.onnx");
    let bytes = std::fs::read(&file).expect("fixture");
    let spec: GraphSpec = toml::from_str(
        r#"
        file = "qdq_symbolic_batch.onnx"
        inputs = [{ name = "x", shape = [1, 1, 8, 8], dtype = "f32" }]
        outputs = [{ name = "y", shape = [1, 6], dtype = "f32" }]
        "#,
    )
    .expect("spec");
    let mut outs = Vec::new();
    for choice in backends("onnx_runtime_quantizer_output_loads_unedited_on_both_backends") {
        let g = load(&spec, &bytes, &choice).unwrap_or_else(|e| panic!("{choice:?}: {e}"));
        outs.push(run_on_fixed_inputs(g));
    }
    assert!(outs[0].iter().any(|v| v.abs() > 1e-3), "trivial output {:?}", outs[0]);
    if let [tract, ort] = &outs[..] {
        let worst = tract.iter().zip(ort).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let step = tract.iter().chain(ort).fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
        assert!(worst <= 2.0 * step + 1e-6, "max |tract - ort| = {worst}, one step {step}");
    }
}
