//! ONNX external data: a signed bundle never runs weights nobody signed.
//!
//! The fixture policy graph is rewritten to keep its weights in
//! `policy.onnx.data` (as `onnx`'s `convert_model_to_external_data` and the
//! PyTorch exporters do for large models). Unlisted, that file is refused by
//! verification, inspection, signing and loading; listed and signed, the
//! bundle loads on tract and ONNX Runtime from the verified bytes, even when
//! the file on disk is swapped after verification.

mod common;

use common::*;
use ganglion_policies::backend::{BackendChoice, Graph};
use ganglion_policies::manifest::{FileEntry, GraphRole, Manifest};
use ganglion_policies::signing::{sha256_hex, sign_bytes};
use ganglion_policies::{open_verified, BundleError, GraphModel, VerifyOptions};
use prost::Message;
use tract_onnx::pb::{ModelProto, StringStringEntryProto};

const DATA: &str = "policy.onnx.data";

fn trusted() -> VerifyOptions {
    VerifyOptions { trusted_keys: vec![test_public_key()], allow_unsigned: false }
}

/// Moves every initializer of the bundle's `policy.onnx` of 1 KiB or more
/// into `policy.onnx.data`, as `onnx.save_model(..., save_as_external_data=True)`
/// does with its default `size_threshold=1024` (small tensors such as a
/// Reshape's target shape stay inline: ONNX Runtime's shape inference reads
/// them before external data is attached, and refuses external ones with
/// "Cannot parse data from external tensors"); returns how many were moved.
fn externalize(dir: &std::path::Path) -> usize {
    externalize_graph(dir, "policy.onnx", DATA)
}

/// [`externalize`] for any graph of a bundle: `graph`'s weights go to `data`.
fn externalize_graph(dir: &std::path::Path, graph: &str, data_file: &str) -> usize {
    let mut model = ModelProto::decode(&std::fs::read(dir.join(graph)).expect("read")[..]).expect("decode");
    let mut data = Vec::new();
    let mut moved = 0;
    for t in &mut model.graph.as_mut().expect("graph").initializer {
        if t.raw_data.is_empty() && !t.float_data.is_empty() {
            t.raw_data = t.float_data.drain(..).flat_map(f32::to_le_bytes).collect();
        }
        if t.raw_data.len() < 1024 {
            continue;
        }
        let kv = |key: &str, value: String| StringStringEntryProto { key: key.into(), value };
        t.external_data = vec![
            kv("location", data_file.into()),
            kv("offset", data.len().to_string()),
            kv("length", t.raw_data.len().to_string()),
        ];
        t.data_location = Some(1);
        data.append(&mut t.raw_data);
        moved += 1;
    }
    std::fs::write(dir.join(graph), model.encode_to_vec()).expect("write graph");
    std::fs::write(dir.join(data_file), data).expect("write data");
    moved
}

/// Writes the manifest with `files` digested and signs it with the test key,
/// bypassing `sign_bundle`'s checks (an older signer, or a careless one).
fn sign_as_listed(dir: &std::path::Path, paths: &[&str]) {
    let path = dir.join("policy.toml");
    let mut m = Manifest::parse(&std::fs::read(&path).expect("read"), &path).expect("manifest");
    m.files = paths
        .iter()
        .map(|p| FileEntry { path: p.to_string(), sha256: sha256_hex(&std::fs::read(dir.join(p)).expect("read")) })
        .collect();
    let text = m.to_canonical_toml();
    std::fs::write(&path, &text).expect("write manifest");
    std::fs::write(dir.join("signature.ed25519"), sign_bytes(&test_secret_key(), text.as_bytes())).expect("sign");
}

/// Output of the bundle's policy graph, loaded from `model`, on fixed inputs.
fn run(manifest: &Manifest, model: GraphModel<'_>, choice: &BackendChoice) -> Vec<f32> {
    let spec = manifest.graphs.policy.as_ref().expect("policy graph");
    let g = Graph::load(GraphRole::Policy, spec, model, std::path::Path::new("policy.onnx"), choice)
        .unwrap_or_else(|e| panic!("load: {e}"));
    run_on_fixed_inputs(g)
}

/// What the untouched fixture computes.
fn reference_output(choice: &BackendChoice) -> Vec<f32> {
    let b = open_verified(&fixtures().join("single"), &trusted()).expect("fixture");
    let out = run(&b.manifest, GraphModel::inline(b.file("policy.onnx").expect("graph")), choice);
    assert!(out.iter().any(|v| v.abs() > 1e-4), "trivial reference output");
    out
}

#[test]
fn unlisted_external_data_is_refused_by_verify_inspect_sign_and_load() {
    let (_t, dir) = copy_bundle("single");
    assert!(externalize(&dir) >= 1, "fixture has no weights to move");
    // The reported hole: the manifest lists the graph only, and is signed.
    sign_as_listed(&dir, &["policy.onnx"]);

    let err = open_verified(&dir, &trusted()).expect_err("unsigned weights accepted by verify");
    assert!(matches!(err, BundleError::ExternalData { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("policy.onnx") && msg.contains(DATA) && msg.contains("does not list"), "{msg}");

    let err = ganglion_policies::load_policy(&dir, &opts(ganglion_policies::BackendKind::Tract))
        .expect_err("unsigned weights accepted by load");
    assert!(matches!(err, BundleError::ExternalData { .. }), "{err:?}");

    let report = ganglion_policies::inspect(&dir, &[test_public_key()]).expect("inspect");
    assert!(!report.intact, "inspect calls the bundle intact");
    assert!(report.graphs[0].external_data_status.contains(DATA), "{:?}", report.graphs[0]);
    assert!(report.to_string().contains("REFUSED"), "{report}");

    let err = ganglion_policies::sign_bundle(&dir, &test_secret_key()).expect_err("sign accepted unlisted data");
    assert!(err.to_string().contains(DATA), "{err}");
}

#[test]
fn external_data_outside_the_bundle_is_refused() {
    let (_t, dir) = copy_bundle("single");
    externalize(&dir);
    let graph = dir.join("policy.onnx");
    let mut model = ModelProto::decode(&std::fs::read(&graph).expect("read")[..]).expect("decode");
    let t = model.graph.as_mut().expect("graph").initializer.iter_mut().find(|t| !t.external_data.is_empty());
    t.expect("external tensor").external_data[0].value = format!("../single/{DATA}");
    std::fs::write(&graph, model.encode_to_vec()).expect("write");
    sign_as_listed(&dir, &["policy.onnx", DATA]);
    let err = open_verified(&dir, &trusted()).expect_err("`..` location accepted");
    assert!(err.to_string().contains("not a plain relative path"), "{err}");
}

#[test]
fn listed_external_data_loads_from_the_verified_bytes_on_tract() {
    listed_external_data_loads_from_the_verified_bytes(&BackendChoice::Tract);
}

#[test]
fn listed_external_data_loads_from_the_verified_bytes_on_ort() {
    if !ort_or_skip("listed_external_data_loads_from_the_verified_bytes_on_ort") {
        return;
    }
    listed_external_data_loads_from_the_verified_bytes(&ort_cpu());
}

fn listed_external_data_loads_from_the_verified_bytes(choice: &BackendChoice) {
    let expected = reference_output(choice);
    let (_t, dir) = copy_bundle("single");
    externalize(&dir);
    let path = dir.join("policy.toml");
    let mut m = Manifest::parse(&std::fs::read(&path).expect("read"), &path).expect("manifest");
    m.files.push(FileEntry { path: DATA.into(), sha256: String::new() });
    std::fs::write(&path, m.to_canonical_toml()).expect("write");
    ganglion_policies::sign_bundle(&dir, &test_secret_key()).expect("sign with the data listed");
    let report = ganglion_policies::inspect(&dir, &[test_public_key()]).expect("inspect");
    assert!(report.intact, "{report}");
    assert_eq!(report.graphs[0].external_data, vec![DATA.to_string()]);

    let bundle = open_verified(&dir, &trusted()).expect("verified");
    // Time of check to time of use: the weights on disk change after
    // verification (zeros of the same size). ONNX Runtime resolves a memory
    // graph's locations against the working directory, so the swapped file
    // is put there too.
    let size = std::fs::metadata(dir.join(DATA)).expect("data").len() as usize;
    std::fs::write(dir.join(DATA), vec![0u8; size]).expect("swap");
    std::env::set_current_dir(&dir).expect("cd into the bundle");

    let mut scratch = Vec::new();
    let model = bundle.graph_model("policy.onnx", &mut scratch).expect("graph model");
    assert_eq!(model.external.len(), 1);
    let got = run(&bundle.manifest, model, choice);
    assert_eq!(got, expected, "not the signed weights");

    // And with the file gone altogether.
    std::fs::remove_file(dir.join(DATA)).expect("remove");
    let mut scratch = Vec::new();
    let got = run(&bundle.manifest, bundle.graph_model("policy.onnx", &mut scratch).expect("model"), choice);
    assert_eq!(got, expected);
}

#[test]
fn a_format_2_graphs_external_data_is_checked_like_format_1() {
    use ganglion_core::{ActionChunk, Observation, Policy};
    let data = "step.onnx.data";
    let (_t, dir) = copy_bundle("iterative/flow-mlp");
    assert!(externalize_graph(&dir, "step.onnx", data) >= 1, "step graph has no weights to move");
    sign_as_listed(&dir, &["encoder.onnx", "step.onnx"]);
    let err = open_verified(&dir, &trusted()).expect_err("unsigned weights of a dataflow graph accepted");
    assert!(matches!(err, BundleError::ExternalData { .. }), "{err:?}");
    assert!(err.to_string().contains("step.onnx") && err.to_string().contains(data), "{err}");

    // Listed and signed: the bundle runs, and computes what the inline one does.
    sign_as_listed(&dir, &["encoder.onnx", "step.onnx", data]);
    let tract = opts(ganglion_policies::BackendKind::Tract);
    let mut external = ganglion_policies::load_policy(&dir, &tract).expect("load");
    let mut inline = ganglion_policies::load_policy(&fixtures().join("iterative/flow-mlp"), &tract).expect("load");
    let mut obs = Observation::for_spec(inline.spec());
    for (frame, cam) in obs.frames.iter_mut().zip(&inline.spec().cameras) {
        frame.set_with(cam.width, cam.height, cam.format, |b| b.fill(77)).expect("frame");
    }
    let chunk = |p: &mut ganglion_policies::BundlePolicy| {
        let mut out = ActionChunk::for_spec(p.spec());
        p.infer(&obs, &mut out).expect("infer");
        out.as_slice().to_vec()
    };
    assert_eq!(chunk(&mut external), chunk(&mut inline));
}
