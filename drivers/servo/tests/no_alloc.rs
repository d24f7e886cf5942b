//! After open, the per-tick calls (sync read of positions, sync read of the
//! state block, sync write of goals) and their retries allocate nothing, on
//! the Feetech and the Dynamixel bus (a
//! counting global allocator proves it, counting only on the test's thread:
//! the emulator's thread allocates as it likes). One test in this binary.

use std::time::Duration;

use ganglion_core::alloc_count::{thread_allocations, CountingAlloc};
use ganglion_servo::dxl_emulator::{DxlEmulator, DxlEmulatorConfig};
use ganglion_servo::emulator::{Emulator, EmulatorConfig, Fault};
use ganglion_servo::{DynamixelBus, DynamixelConfig, FeetechBus, FeetechConfig, ServoBus, ServoState};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// 200 ticks on `bus` with the counter on; the allocations counted.
fn ticks(bus: &mut impl ServoBus) -> u64 {
    let mut pos = [0i32; 6];
    let mut state = [ServoState::default(); 6];
    let mut goals = [2048i32; 6];
    let before = thread_allocations();
    for k in 0..200 {
        bus.sync_read_positions(&mut pos).expect("read");
        if k % 10 == 0 {
            bus.sync_read_state(&mut state).expect("state");
        }
        for (i, g) in goals.iter_mut().enumerate() {
            *g = 2048 + ((k + i) % 50) as i32;
        }
        bus.sync_write_goals(&goals).expect("write");
    }
    thread_allocations() - before
}

#[test]
fn tick_calls_do_not_allocate_after_open() {
    let ids = [1u8, 2, 3, 4, 5, 6];
    let emulator = Emulator::start(EmulatorConfig::default()).expect("emulator");
    let cfg = FeetechConfig { timeout_margin: Duration::from_millis(150), ..FeetechConfig::default() };
    let mut bus = FeetechBus::open(emulator.path(), &ids, cfg).expect("open");
    bus.set_torque(true).expect("arm");
    // A corrupt answer and noise inside the window: the retry path too.
    emulator.inject(Fault::CorruptAnswers { count: 1 });
    emulator.inject(Fault::NoiseBeforeAnswers { count: 3 });
    let n = ticks(&mut bus);
    let c = bus.counters();
    assert!(c.retries >= 1, "the retry path ran: {c:?}");
    assert_eq!(n, 0, "Feetech: {n} allocations in 200 ticks");

    let dxl = DxlEmulator::start(DxlEmulatorConfig::default()).expect("emulator");
    let cfg = DynamixelConfig { timeout_margin: Duration::from_millis(150), ..DynamixelConfig::default() };
    let mut bus = DynamixelBus::open(dxl.path(), &ids, cfg).expect("open");
    bus.set_torque(true).expect("arm");
    dxl.inject(Fault::CorruptAnswers { count: 1 });
    dxl.inject(Fault::NoiseBeforeAnswers { count: 3 });
    let n = ticks(&mut bus);
    let c = bus.counters();
    assert!(c.retries >= 1, "the retry path ran: {c:?}");
    assert_eq!(n, 0, "Dynamixel: {n} allocations in 200 ticks");
}
