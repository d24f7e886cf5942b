//! tract and ONNX Runtime produce the same outputs on the same inputs:
//! single graphs (conv, gemm, softmax, static QDQ INT8) and the whole
//! world-model pipeline. Skips with a printed reason where ONNX Runtime is
//! not installed (CI installs it).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use ganglion_core::{ActionChunk, Instruction, Observation, Policy, Stamp};
use ganglion_policies::backend::{BackendChoice, Graph, GraphModel, Provider, TensorBuf, TensorRtOptions};
use ganglion_policies::manifest::{GraphRole, GraphSpec, Precision};
use ganglion_policies::{load_policy, BackendKind};

fn load(spec: &GraphSpec, choice: &BackendChoice) -> Graph {
    let file = fixtures().join("graphs").join(&spec.file);
    let bytes = std::fs::read(&file).expect("fixture graph");
    Graph::load(GraphRole::Policy, spec, GraphModel::inline(&bytes), &file, choice)
        .unwrap_or_else(|e| panic!("{}: {e}", spec.file))
}

#[test]
fn single_graphs_agree_between_tract_and_ort() {
    if !ort_or_skip("single_graphs_agree_between_tract_and_ort") {
        return;
    }
    let text = std::fs::read_to_string(fixtures().join("graphs/graphs.toml")).expect("graphs.toml");
    let specs: BTreeMap<String, GraphSpec> = toml::from_str(&text).expect("graphs.toml parses");
    assert_eq!(specs.len(), 4, "conv, gemm, softmax, qdq_int8");
    for (name, spec) in &specs {
        let mut tract = load(spec, &BackendChoice::Tract);
        let mut ort = load(spec, &ort_cpu());
        assert_eq!(tract.execution_provider(), "tract-cpu");
        assert_eq!(ort.execution_provider(), "CPUExecutionProvider");
        // One quantization step of the output for the INT8 graph (rounding
        // ties may land on either side), float rounding for the others.
        let tol = if name == "qdq_int8" { 8.0 / 255.0 + 1e-5 } else { 1e-4 };
        for seed in 0..5u64 {
            for g in [&mut tract, &mut ort] {
                let TensorBuf::F32(x) = &mut g.io_mut().inputs[0] else { panic!("f32 input") };
                let r = pseudo_random(x.len(), seed);
                x.copy_from_slice(&r);
                g.run().expect("run");
            }
            let (a, b) = (tract.output(0), ort.output(0));
            assert_eq!(a.len(), b.len());
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst <= tol, "{name} seed {seed}: max |tract - ort| = {worst} > {tol}");
            assert!(a.iter().any(|v| v.abs() > 1e-3), "{name}: trivial output");
        }
    }
}

fn observation(policy: &dyn Policy, step: u64, committed: usize, instruction: (u64, &str)) -> Observation {
    let spec = policy.spec();
    let mut obs = Observation::for_spec(spec);
    for (frame, cam) in obs.frames.iter_mut().zip(&spec.cameras) {
        frame
            .set_with(cam.width, cam.height, cam.format, |b| {
                for (i, px) in b.iter_mut().enumerate() {
                    *px = ((i as u64 * 37 + step * 11) % 256) as u8;
                }
            })
            .expect("frame");
    }
    for (i, p) in obs.joints.position.iter_mut().enumerate() {
        *p = 0.1 * i as f64 - 0.05 * step as f64;
    }
    obs.stamp = Stamp::from_nanos(step * spec.step_ns);
    obs.request_id = step;
    obs.instruction = Instruction::new(instruction.0, instruction.1);
    for k in 0..committed {
        let mut a = obs.joints.position;
        a.iter_mut().for_each(|v| *v += 0.02 * (k + 1) as f64);
        obs.committed.push(a).expect("capacity");
    }
    obs
}

#[test]
fn world_model_pipeline_agrees_between_tract_and_ort() {
    if !ort_or_skip("world_model_pipeline_agrees_between_tract_and_ort") {
        return;
    }
    let dir = fixtures().join("wm");
    let mut tract = load_policy(&dir, &opts(BackendKind::Tract)).expect("tract");
    let mut ort = load_policy(&dir, &opts(BackendKind::Ort)).expect("ort");
    assert_eq!(ort.load_report().execution_provider, "CPUExecutionProvider");
    let tol = f64::from(tract.manifest().parity_tolerance);
    let mut a = ActionChunk::for_spec(tract.spec());
    let mut b = ActionChunk::for_spec(ort.spec());
    let script =
        [(0, 0, (1, "reach the red cube")), (1, 2, (1, "reach the red cube")), (2, 3, (2, "move to the left target"))];
    let mut last_instruction = 0;
    for (step, committed, instr) in script {
        // The world model's history (and with it surprise) starts afresh at
        // the first observation and whenever the instruction changes.
        let fresh = instr.0 != last_instruction;
        last_instruction = instr.0;
        let obs = observation(&tract, step, committed, instr);
        tract.infer(&obs, &mut a).expect("tract infer");
        ort.infer(&obs, &mut b).expect("ort infer");
        assert_eq!(a.obs_stamp, b.obs_stamp);
        let worst = a.as_slice().iter().zip(b.as_slice()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(worst <= tol, "step {step}: max |tract - ort| = {worst} > {tol}");
        match (a.surprise, b.surprise) {
            (None, None) => assert!(fresh, "step {step}: no surprise without a new instruction"),
            (Some(x), Some(y)) => {
                assert!(!fresh, "step {step}: surprise right after a new instruction");
                assert!((x - y).abs() <= 1e-3, "surprise {x} vs {y}")
            }
            other => panic!("surprise mismatch {other:?}"),
        }
    }
}

#[test]
fn ort_reports_missing_gpu_providers_instead_of_falling_back() {
    if !ort_or_skip("ort_reports_missing_gpu_providers_instead_of_falling_back") {
        return;
    }
    let spec: BTreeMap<String, GraphSpec> =
        toml::from_str(&std::fs::read_to_string(fixtures().join("graphs/graphs.toml")).expect("read")).expect("parse");
    let gemm = &spec["gemm"];
    let bytes = std::fs::read(fixtures().join("graphs/gemm.onnx")).expect("read");
    let cuda = BackendChoice::Ort {
        provider: Provider::Cuda,
        threads: 1,
        tensorrt: TensorRtOptions::default(),
        precision: Precision::Fp32,
        build_engines: false,
    };
    match Graph::load(GraphRole::Policy, gemm, GraphModel::inline(&bytes), Path::new("gemm.onnx"), &cuda) {
        // On a GPU machine with a CUDA build of ONNX Runtime the provider
        // must be the one reported.
        Ok(g) => assert_eq!(g.execution_provider(), "CUDAExecutionProvider"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("CUDA"), "error does not say CUDA: {msg}");
            eprintln!("CUDA unavailable here, as reported: {msg}");
        }
    }
    let trt = BackendChoice::Ort {
        provider: Provider::Tensorrt,
        threads: 1,
        tensorrt: TensorRtOptions {
            engine_cache_dir: Some(std::env::temp_dir().join("ganglion-no-engines")),
            precision: None,
        },
        precision: Precision::Fp16,
        build_engines: false,
    };
    let err = Graph::load(GraphRole::Policy, gemm, GraphModel::inline(&bytes), Path::new("gemm.onnx"), &trt)
        .expect_err("no engine built");
    let msg = err.to_string();
    assert!(msg.contains("TensorRT") || msg.contains("build-engine"), "{msg}");
}
