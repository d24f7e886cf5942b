//! Bad manifests and bad bundles: precise errors naming file and key, no
//! panics.

mod common;

use std::path::Path;

use common::*;
use ganglion_policies::{BackendKind, BundleError, LoadOptions, Manifest};

fn fixture_manifest(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name).join("policy.toml")).expect("manifest")
}

/// Parses `text`; returns the (key, problem) of the error.
fn parse_err(text: &str) -> (String, String) {
    match Manifest::parse(text.as_bytes(), Path::new("bundle/policy.toml")) {
        Ok(_) => panic!("manifest accepted:\n{text}"),
        Err(BundleError::Manifest { file, key, problem }) => {
            assert_eq!(file, Path::new("bundle/policy.toml"));
            (key, problem)
        }
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
}

fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "fixture manifest lacks {from:?}");
    text.replacen(from, to, 1)
}

#[test]
fn fixture_manifests_parse_and_canonical_form_round_trips() {
    for name in ["wm", "single"] {
        let text = fixture_manifest(name);
        let m = Manifest::parse(text.as_bytes(), Path::new("policy.toml")).expect("valid");
        let again = Manifest::parse(m.to_canonical_toml().as_bytes(), Path::new("policy.toml")).expect("canonical");
        assert_eq!(m, again);
    }
}

#[test]
fn unknown_keys_are_named() {
    let wm = fixture_manifest("wm");
    let (key, problem) = parse_err(&edit(&wm, "chunk_len = 8", "chunk_len = 8\nchunk_length = 8"));
    assert!(problem.contains("chunk_length"), "{key}: {problem}");
    assert!(key.starts_with("action"), "{key}");
    let (_, problem) = parse_err(&format!("colour = \"red\"\n{wm}"));
    assert!(problem.contains("colour"), "{problem}");
}

#[test]
fn wrong_shapes_are_named() {
    let wm = fixture_manifest("wm");
    // Chunk output that disagrees with chunk_len.
    let bad = wm.replace("chunk_len = 8", "chunk_len = 6");
    let (key, problem) = parse_err(&bad);
    assert_eq!(key, "graphs.action_head.outputs[0].shape", "{problem}");
    assert!(problem.contains("[1, 6, 3]"), "{problem}");
    // Dynamics latent that disagrees with the encoder's.
    let from = "[[graphs.dynamics.inputs]]\nname = \"latent\"\nshape = [1, 16]";
    let bad = edit(&wm, from, &from.replace("[1, 16]", "[1, 15]"));
    let (key, _) = parse_err(&bad);
    assert_eq!(key, "graphs.dynamics.inputs[0].shape");
    // Resize that disagrees with the image input.
    let (key, problem) = parse_err(&edit(&wm, "resize = [16, 16]", "resize = [16, 12]"));
    assert_eq!(key, "cameras[0].resize", "{problem}");
    // Batch other than 1.
    let (key, _) = parse_err(&edit(&wm, "shape = [1, 6]\ndtype = \"i64\"", "shape = [2, 6]\ndtype = \"i64\""));
    assert_eq!(key, "graphs.text_encoder.inputs[0].shape");
    // Joint stats of the wrong length.
    let (key, _) = parse_err(&edit(&wm, "std = [0.8, 0.6, 0.5]", "std = [0.8, 0.6]"));
    assert_eq!(key, "joints.std");
}

#[test]
fn wrong_dtypes_are_named() {
    let wm = fixture_manifest("wm");
    let (key, problem) = parse_err(&edit(&wm, "shape = [1, 6]\ndtype = \"i64\"", "shape = [1, 6]\ndtype = \"f32\""));
    assert_eq!(key, "graphs.text_encoder.inputs[0].dtype", "{problem}");
    assert!(problem.contains("expected i64"), "{problem}");
    let (key, problem) = parse_err(&edit(&wm, "dtype = \"i64\"", "dtype = \"int64\""));
    assert!(problem.contains("int64"), "{key}: {problem}");
}

#[test]
fn inconsistent_graph_sets_and_files_are_named() {
    let wm = fixture_manifest("wm");
    let (key, _) = parse_err(&wm.replace("surprise_threshold = 0.5\n", ""));
    assert_eq!(key, "surprise_threshold");
    let (key, _) = parse_err(&wm.replace("vocab = \"vocab.txt\"\n", ""));
    assert_eq!(key, "vocab");
    // A graph file not covered by [[files]] (so not by the signature).
    let (key, problem) = parse_err(&edit(&wm, "path = \"dynamics.onnx\"", "path = \"other.onnx\""));
    assert_eq!(key, "graphs.dynamics.file", "{problem}");
    let (key, _) = parse_err(&edit(&wm, "path = \"vocab.txt\"", "path = \"../vocab.txt\""));
    assert_eq!(key, "files[4].path");
    let (key, _) = parse_err(&edit(&wm, "x = 4\ny = 0\nwidth = 32", "x = 10\ny = 0\nwidth = 32"));
    assert_eq!(key, "cameras[0].crop");
    let (key, _) = parse_err(&edit(&wm, "format = 1", "format = 3"));
    assert_eq!(key, "format");
    // Format 2 keeps its graphs in [dataflow.graphs] (tests/iterative_heads.rs).
    let (key, problem) = parse_err(&edit(&wm, "format = 1", "format = 2"));
    assert_eq!(key, "graphs", "{problem}");
    let (key, _) = parse_err(&edit(&wm, "format = \"rgb8\"", "format = \"rgb16\""));
    assert!(key.starts_with("cameras"), "{key}");
}

#[test]
fn garbage_manifests_do_not_panic() {
    let wm = fixture_manifest("wm");
    for cut in (0..wm.len()).step_by(97) {
        let _ = Manifest::parse(&wm.as_bytes()[..cut], Path::new("policy.toml"));
    }
    let _ = Manifest::parse(&[0xff, 0xfe, 0x00], Path::new("policy.toml"));
}

/// A bundle whose manifest is consistent but disagrees with its ONNX graph:
/// refused at load with the ONNX file named.
#[test]
fn manifest_that_disagrees_with_the_graph_is_refused_at_load() {
    let (_t, dir) = copy_bundle("wm");
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("read");
    let loose = LoadOptions { backend: BackendKind::Tract, allow_unsigned: true, ..LoadOptions::default() };
    // Renamed tensor.
    std::fs::write(dir.join("policy.toml"), text.replace("name = \"next_latent\"", "name = \"next\"")).expect("w");
    std::fs::remove_file(dir.join("signature.ed25519")).expect("rm");
    let err = ganglion_policies::load_policy(&dir, &loose).expect_err("accepted");
    assert!(matches!(err, BundleError::Model { .. }), "{err:?}");
    assert!(err.to_string().contains("dynamics.onnx") && err.to_string().contains("next_latent"), "{err}");
    // Image size the graph cannot take (conv/flatten/gemm shapes break).
    let small =
        text.replace("shape = [1, 3, 16, 16]", "shape = [1, 3, 8, 8]").replace("resize = [16, 16]", "resize = [8, 8]");
    std::fs::write(dir.join("policy.toml"), small).expect("w");
    let err = ganglion_policies::load_policy(&dir, &loose).expect_err("accepted");
    assert!(matches!(err, BundleError::Model { .. }), "{err:?}");
    assert!(err.to_string().contains("encoder.onnx"), "{err}");
}

#[test]
fn unsigned_bundle_without_digests_is_refused_by_default() {
    let (_t, dir) = copy_bundle("single");
    std::fs::remove_file(dir.join("signature.ed25519")).expect("rm");
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("read");
    let stripped: String = text.lines().filter(|l| !l.starts_with("sha256")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("policy.toml"), stripped).expect("write");
    let err = ganglion_policies::load_policy(&dir, &opts(BackendKind::Tract)).expect_err("accepted");
    assert!(matches!(err, BundleError::Signature { .. }), "{err:?}");
    let loose = LoadOptions { allow_unsigned: true, ..opts(BackendKind::Tract) };
    // Signature missing, digests missing: allowed only with allow_unsigned.
    ganglion_policies::load_policy(&dir, &loose).expect("allow_unsigned loads");
}

#[test]
fn normalization_modes_name_the_statistic_they_miss_or_do_not_use() {
    let text = fixture_manifest("single");
    let joints = "names = [\"pan\", \"tilt\"]\nmean = [0.0, 0.0]\nstd = [1.0, 1.0]\n";
    // Quantiles with q01/q99: valid, and canonical form keeps the mode.
    let q = edit(
        &text,
        joints,
        "names = [\"pan\", \"tilt\"]\nnormalization = \"quantiles\"\nq01 = [-1.0, -2.0]\nq99 = [1.0, 2.0]\n",
    );
    let m = Manifest::parse(q.as_bytes(), Path::new("policy.toml")).expect("quantiles");
    let again = Manifest::parse(m.to_canonical_toml().as_bytes(), Path::new("policy.toml")).expect("canonical");
    assert_eq!(m, again);
    // Quantiles without q99.
    let (key, problem) = parse_err(&edit(
        &text,
        joints,
        "names = [\"pan\", \"tilt\"]\nnormalization = \"quantiles\"\nq01 = [-1.0, -2.0]\n",
    ));
    assert_eq!(key, "joints.q99");
    assert!(problem.contains("2 values") && problem.contains("quantiles"), "{problem}");
    // mean/std left in with min_max.
    let (key, problem) = parse_err(&edit(&text, joints, "names = [\"pan\", \"tilt\"]\nnormalization = \"min_max\"\nmin = [-1.0, -1.0]\nmax = [1.0, 1.0]\nmean = [0.0, 0.0]\n"));
    assert_eq!(key, "joints.mean");
    assert!(problem.contains("not used") && problem.contains("min_max"), "{problem}");
    // A range upside down.
    let (key, _) = parse_err(&edit(
        &text,
        joints,
        "names = [\"pan\", \"tilt\"]\nnormalization = \"min_max\"\nmin = [-1.0, 1.0]\nmax = [1.0, -1.0]\n",
    ));
    assert_eq!(key, "joints.max[1]");
    // An unknown mode is a TOML error naming the key.
    let (key, _) = parse_err(&edit(&text, joints, "names = [\"pan\", \"tilt\"]\nnormalization = \"quantile10\"\n"));
    assert!(key.contains("normalization"), "{key}");
}
