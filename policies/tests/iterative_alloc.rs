//! Heap allocations of a format-2 inference with an iterative head, counted
//! on the inferring thread: what the pipeline allocates itself (nothing per
//! step) and what the backends still allocate per step-graph run. Prints the
//! numbers; fails if an inference allocates more on its second run than its
//! first (growth) or if the per-step count is not constant.

mod common;

use common::{opts, ort_or_skip};
use ganglion_core::alloc_count::{thread_allocations, CountingAlloc};
use ganglion_core::{ActionChunk, JointVec, Observation, Policy};
use ganglion_policies::{load_policy, BackendKind, LoadOptions};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations of one inference of the flow bundle with `steps` steps
/// (first and second inference), `committed` actions inpainted, or with
/// `guided` the second inference guided towards the first's chunk
/// (LeRobot's RTC).
fn allocations_with(backend: BackendKind, steps: usize, committed: usize, guided: bool) -> (u64, u64) {
    let (_tmp, dir) = common::copy_bundle("iterative/flow-mlp");
    let path = dir.join("policy.toml");
    let mut text =
        std::fs::read_to_string(&path).expect("manifest").replacen("steps = 10", &format!("steps = {steps}"), 1);
    if guided {
        text = text.replacen("[dataflow.head]\n", "[dataflow.head]\ncommitted = \"guided\"\n", 1);
    }
    std::fs::write(&path, text).expect("write");
    std::fs::remove_file(dir.join("signature.ed25519")).expect("unsign");
    let o = LoadOptions { allow_unsigned: true, ..opts(backend) };
    let mut policy = load_policy(&dir, &o).expect("load");
    let mut obs = Observation::for_spec(policy.spec());
    for (frame, cam) in obs.frames.iter_mut().zip(&policy.spec().cameras) {
        frame.set_with(cam.width, cam.height, cam.format, |b| b.fill(90)).expect("frame");
    }
    for i in 0..committed {
        obs.committed.push(JointVec::splat(policy.spec().n_joints, 0.1 * i as f64)).expect("room");
    }
    let mut out = ActionChunk::for_spec(policy.spec());
    let mut count = || {
        let before = thread_allocations();
        policy.infer(&obs, &mut out).expect("infer");
        thread_allocations() - before
    };
    let counts = (count(), count());
    let inpainted = policy.last_stages().map_or(0, |s| s.inpainted_actions);
    assert_eq!(inpainted, committed + usize::from(guided), "actions held to the executing plan");
    counts
}

fn allocations(backend: BackendKind, steps: usize) -> (u64, u64) {
    allocations_with(backend, steps, 0, false)
}

fn report(backend: BackendKind) {
    let (a10, b10) = allocations(backend, 10);
    let (a20, b20) = allocations(backend, 20);
    assert!(b10 <= a10 && b20 <= a20, "{}: allocations grow between inferences", backend.as_str());
    let per_step = (b20 - b10) as f64 / 10.0;
    let (_, b30) = allocations(backend, 30);
    assert_eq!(b30 - b20, b20 - b10, "{}: per-step allocations not constant", backend.as_str());
    // Real-time chunking's inpainting runs in buffers sized at load.
    let (_, inpainting) = allocations_with(backend, 10, 3, false);
    assert_eq!(inpainting, b10, "{}: inpainting 3 committed actions allocates", backend.as_str());
    // So does guidance (the previous chunk, its shift and weights).
    let (_, guided) = allocations_with(backend, 10, 3, true);
    assert_eq!(guided, b10, "{}: guidance allocates", backend.as_str());
    eprintln!(
        "{}: {b10} allocations per inference at 10 steps, {b20} at 20: {per_step} per step (the backend's run), {} outside the steps",
        backend.as_str(),
        b10 as f64 - 10.0 * per_step
    );
}

#[test]
fn allocations_per_step_are_the_backends_and_constant_on_tract() {
    report(BackendKind::Tract);
}

#[test]
fn allocations_per_step_are_the_backends_and_constant_on_ort() {
    if ort_or_skip("allocations_per_step_are_the_backends_and_constant_on_ort") {
        report(BackendKind::Ort);
    }
}
