//! After warm-up, publishing, stepping and commanding the simulated arm
//! allocate nothing (a counting global allocator proves it). One test in
//! this binary, so no other test's allocations are counted.

mod common;

use std::collections::BTreeSet;

use common::slots;
use ganglion_core::alloc_count::{thread_allocations, CountingAlloc};
use ganglion_core::{hold_command, InputReaders, InputWriters, JointVec, Mode, Stamp};
use ganglion_sim::{FaultKind, SimArm, SimConfig};

// Counts per thread: the test harness's own threads allocate as they like.
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn publish_step_and_command_do_not_allocate_after_warm_up() {
    let cfg = SimConfig { camera_rate_hz: 50.0, joint_rate_hz: 100.0, ..SimConfig::default() };
    let mut arm = SimArm::new(&cfg, 9).expect("valid");
    let f = arm.faults_mut();
    // Every fault path runs inside the measured window.
    f.add(FaultKind::BlackFrame, Stamp(400_000_000), Stamp(450_000_000));
    f.add(FaultKind::FreezeCamera, Stamp(500_000_000), Stamp(550_000_000));
    f.add(FaultKind::FreezeCameraSameSeq, Stamp(600_000_000), Stamp(650_000_000));
    f.add(FaultKind::JointNoise { std_rad: 0.01 }, Stamp(700_000_000), Stamp(800_000_000));
    f.add(FaultKind::NanJoint, Stamp(800_000_000), Stamp(850_000_000));
    f.add(FaultKind::DelayCamera { lag_ns: 30_000_000 }, Stamp(850_000_000), Stamp(900_000_000));
    let (mut w, mut r) = slots(&cfg);
    let cmd = hold_command(0, Stamp::ZERO, Mode::Nominal, JointVec::from_slice(&[0.8, -0.7, 1.4]).unwrap());
    // Warm-up: the slot's three frame buffers each get written once at full
    // size (cloned empty frames start without capacity).
    let mut k = 0u64;
    while k < 200 {
        let now = Stamp(k * 1_000_000);
        arm.publish_due(now, &mut w);
        r.cameras[0].update();
        arm.step(1_000_000);
        k += 1;
    }
    let buffers = frame_buffers(&mut w, &mut r);
    assert_eq!(buffers.len(), 3, "the slot's three frame buffers");
    let before = thread_allocations();
    let mut frames = 0;
    while k < 1000 {
        let now = Stamp(k * 1_000_000);
        frames += usize::from(arm.publish_due(now, &mut w).camera);
        r.cameras[0].update();
        r.joints.update();
        arm.apply_command(&cmd);
        arm.step(1_000_000);
        k += 1;
    }
    let after = thread_allocations();
    assert!(frames >= 39, "{frames} frames published in the measured window");
    assert_eq!(after - before, 0, "allocations while publishing {frames} frames");
    assert_eq!(frame_buffers(&mut w, &mut r), buffers, "a frame buffer moved");
}

/// Addresses of the camera slot's pixel buffers, found by rotating the
/// triple buffer through writer and reader (republishing old samples).
fn frame_buffers(w: &mut InputWriters, r: &mut InputReaders) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        seen.insert(w.cameras[0].slot.buffer_mut().value.data().as_ptr() as usize);
        w.cameras[0].slot.publish();
        r.cameras[0].update();
        seen.insert(r.cameras[0].latest().value.data().as_ptr() as usize);
    }
    seen
}
