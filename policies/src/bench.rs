//! `ganglion policy bench`: load time, first inference and steady-state
//! inference latency of a bundle through the full [`BundlePolicy`] pipeline.

use std::path::Path;
use std::time::Instant;

use ganglion_core::alloc_count::{is_installed, thread_allocations};
use ganglion_core::stats::Summary;
use ganglion_core::{ActionChunk, Instruction, Observation, Policy, Stamp};

use crate::error::BundleError;
use crate::policy::{load_policy, BundlePolicy, LoadOptions};

/// The JSON `ganglion policy bench --report` writes (fields documented in
/// `policies/README.md`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchReport {
    /// Bundle path.
    pub bundle: String,
    /// `name version` of the policy.
    pub policy: String,
    /// `tract` or `ort`.
    pub backend: String,
    /// Execution provider actually in use.
    pub execution_provider: String,
    /// Why this backend.
    pub backend_reason: String,
    /// Timed inferences.
    pub iterations: usize,
    /// Verify + load + optimize, ms.
    pub load_ms: f64,
    /// Warm-up inference, ms.
    pub first_inference_ms: f64,
    /// Full pipeline per observation (preprocess, graphs, postprocess), ms.
    pub inference_ms: Summary,
    /// CPUs visible to the process.
    pub cpus: usize,
    /// Format 2: each stage over the timed inferences, ms: `tokenize`,
    /// `preprocess`, `graph <name>` per once-per-inference graph, `step` (each
    /// head step; `count` = steps × iterations), `postprocess`. Empty for
    /// format 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages_ms: Vec<(String, Summary)>,
    /// Format 2 with `[text]`: the prompt's length the graphs ran at (its
    /// token count with `padding = "longest"`, else `max_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<usize>,
    /// Heap allocations per timed inference on the inferring thread (the
    /// whole pipeline: tokenizer, backends), when the process counts them
    /// (`ganglion` installs the counting allocator); `None` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocations_per_inference: Option<Summary>,
}

/// A synthetic observation with a deterministic, non-constant image and
/// `instruction`.
fn bench_observation(policy: &BundlePolicy, instruction: &str) -> Result<Observation, BundleError> {
    let spec = policy.spec();
    let mut obs = Observation::for_spec(spec);
    for (k, (frame, cam)) in obs.frames.iter_mut().zip(&spec.cameras).enumerate() {
        // Frame buffers are sized for the declared camera, so this cannot fail.
        let _ = frame.set_with(cam.width, cam.height, cam.format, |b| {
            for (i, px) in b.iter_mut().enumerate() {
                *px = ((i * 7 + k * 13) % 251) as u8;
            }
        });
    }
    let n = obs.joints.position.len();
    let center = policy.manifest().state_normalizer(policy.joint_ranges())?.center(n);
    for (i, (p, c)) in obs.joints.position.iter_mut().zip(center).enumerate() {
        *p = c + 0.01 * i as f64;
    }
    // Sequence 1: a new instruction after the warm-up inference at load
    // (sequence 0, empty), so the first timed inference tokenizes it.
    obs.instruction = Instruction::new(1, instruction);
    Ok(obs)
}

/// Loads `bundle` with `opts` and times `iterations` inferences of one
/// observation, `instruction` its task (a bundle with `[text]` tokenizes it
/// on the first inference, and every inference when its prompt holds the
/// state).
pub fn bench_policy(
    bundle: &Path,
    opts: &LoadOptions,
    iterations: usize,
    instruction: &str,
) -> Result<BenchReport, BundleError> {
    let mut policy = load_policy(bundle, opts)?;
    let mut obs = bench_observation(&policy, instruction)?;
    let mut out = ActionChunk::for_spec(policy.spec());
    let step = policy.spec().step_ns;
    let mut samples = Vec::with_capacity(iterations);
    let mut allocations = Vec::with_capacity(iterations);
    let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
    let ms = |ns: u64| ns as f64 / 1e6;
    for i in 0..iterations {
        obs.request_id = i as u64;
        obs.stamp = Stamp::from_nanos(i as u64 * step);
        let before = thread_allocations();
        let t = Instant::now();
        policy.infer(&obs, &mut out).map_err(|e| BundleError::Backend(format!("inference {i}: {e}")))?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        allocations.push((thread_allocations() - before) as f64);
        // The stages the runtime's inference worker reports too.
        policy.stage_times(&mut |name, ns| match stages.iter_mut().find(|(n, _)| n == name) {
            Some((_, all)) => all.push(ms(ns)),
            None => stages.push((name.to_string(), vec![ms(ns)])),
        });
    }
    let r = policy.load_report();
    Ok(BenchReport {
        bundle: bundle.display().to_string(),
        policy: policy.spec().name.clone(),
        backend: r.backend.as_str().to_string(),
        execution_provider: r.execution_provider.clone(),
        backend_reason: r.backend_reason.clone(),
        iterations,
        load_ms: r.load_ms,
        first_inference_ms: r.first_inference_ms,
        inference_ms: Summary::of(&samples),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stages_ms: stages.into_iter().map(|(name, v)| (name, Summary::of(&v))).collect(),
        allocations_per_inference: is_installed().then(|| Summary::of(&allocations)),
        prompt_tokens: policy.manifest().text.as_ref().and(policy.last_stages()).map(|s| s.prompt_tokens),
    })
}
