//! Zero allocations per tick after warm-up, counted by a global allocator.
//!
//! The full loop runs on the simulated arm with the scripted expert on the
//! real inference worker thread (pooled buffers through lock-free queues),
//! telemetry ring and input tap attached, and a sensor fault in the middle
//! so the fallback path and the recovery run too. Allocations are counted
//! on the control thread only, around each whole harness step (plant
//! publication, tick, plant integration).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ganglion::control::alloc_count::{self, CountingAlloc};
use ganglion::control::WorkerExecutor;
use ganglion::plant::SimHarness;
use ganglion::profile::Profile;
use ganglion_core::{Mode, SimClock, Stamp};
use ganglion_sim::{ExpertPolicy, FaultKind};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn ticks_allocate_nothing_after_warm_up() {
    ticks_allocate_nothing_with_history(1);
}

/// With a policy that reads three observations (Diffusion Policy's
/// `n_obs_steps`), the loop also keeps one observation per policy step and
/// copies two of them into every request: in place, still nothing allocated.
#[test]
fn keeping_the_observation_history_allocates_nothing() {
    ticks_allocate_nothing_with_history(3);
}

fn ticks_allocate_nothing_with_history(history: usize) {
    assert!(alloc_count::is_installed());
    let p = Profile::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../launch/sim.toml")).expect("profile");
    let sim = p.sim.clone().unwrap_or_default();
    let cfg = p.loop_config();
    let clock = SimClock::new(Stamp::ZERO);
    let policy = ExpertPolicy::new(&sim, 10, 20_000_000).expect("expert").with_history(history);
    let worker = WorkerExecutor::spawn(Box::new(policy), Arc::new(clock.clone())).expect("worker");
    let mut h = SimHarness::with_clock(&cfg, &sim, 1, Box::new(worker), clock).expect("harness");
    let telemetry = h.control_mut().attach_telemetry(256);
    let tap = h.control_mut().attach_input_tap(4);

    // The worker answers in real time while the simulated clock jumps a
    // period per step: pace the steps so answers arrive within a period or two.
    let pace = Duration::from_micros(700);
    let step = |h: &mut SimHarness| -> u64 {
        let before = alloc_count::thread_allocations();
        h.step();
        let n = alloc_count::thread_allocations() - before;
        // Drain like a recorder thread would (not counted: not the tick).
        telemetry.drain(|_| {});
        while let Some(s) = tap.pop() {
            tap.recycle(s);
        }
        std::thread::sleep(pace);
        n
    };

    for _ in 0..400 {
        step(&mut h);
    }
    assert!(h.control().counters().chunks_accepted > 0, "warm-up never got a chunk through");

    let fault_at = h.now().add_nanos(300 * cfg.period_ns);
    h.arm_mut().faults_mut().add(FaultKind::DropCamera, fault_at, fault_at.add_nanos(200_000_000));
    let accepted_before = h.control().counters().chunks_accepted;
    let mut allocations = 0;
    let mut modes = [0u64; 5];
    let ticks = 1200;
    for _ in 0..ticks {
        allocations += step(&mut h);
        modes[h.control().mode() as usize] += 1;
    }
    let accepted = h.control().counters().chunks_accepted - accepted_before;
    assert!(accepted > 20, "too few chunks in the measured window ({accepted}): the inference path was not exercised");
    assert!(modes[Mode::Nominal as usize] > 0, "never nominal while measuring: {modes:?}");
    assert!(modes[Mode::Fallback as usize] > 0, "the fault never engaged the fallback: {modes:?}");
    assert_eq!(allocations, 0, "{allocations} allocations in {ticks} ticks after warm-up (modes {modes:?})");
}
