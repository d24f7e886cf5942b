//! The emulator against the vendor's own Python SDK (`scservo_sdk` from the
//! PyPI package `feetech-servo-sdk`, installed by `.ci/setup`): the SDK pings,
//! reads, writes, sync-reads and sync-writes, and `scservo_peer.py` exits
//! non-zero on any answer it did not expect. Python is found as the other
//! interop tests find it (`GANGLION_PYTHON`, set by `source .ci/env`); in CI
//! (`CI` set) a missing interpreter or SDK fails the test, elsewhere it is
//! skipped with the reason printed.

mod vendor_sdk;

use ganglion_servo::emulator::{Emulator, EmulatorConfig, Fault};
use ganglion_servo::{sts, StatusBits};

#[test]
fn vendor_sdk_pings_reads_writes_and_syncs_with_the_emulator() {
    let Some(py) = vendor_sdk::FEETECH.python("vendor_sdk_pings_reads_writes_and_syncs_with_the_emulator") else {
        return;
    };
    let emulator = Emulator::start(EmulatorConfig::default()).expect("emulator");
    let out = vendor_sdk::FEETECH.peer(&py, emulator.path(), &["--ids", "1,2,3,4,5,6", "--phase", "basic"]);
    assert!(out.contains("\"failures\": []"), "{out}");
    // What the SDK wrote landed where LeRobot's table says.
    for id in 1..=6u8 {
        assert_eq!(emulator.register(id, sts::MIN_POSITION_LIMIT), Some(100 + i32::from(id)));
        assert_eq!(emulator.register(id, sts::MAX_POSITION_LIMIT), Some(4000 - i32::from(id)));
        assert_eq!(emulator.register(id, sts::TORQUE_ENABLE), Some(1));
        assert_eq!(emulator.register(id, sts::LOCK), Some(1));
        assert_eq!(emulator.register(id, sts::GOAL_POSITION), Some(1500 + 100 * (i32::from(id) - 1)));
    }
    assert_eq!(emulator.register(1, sts::HOMING_OFFSET), Some(-123));
    assert_eq!(emulator.register(6, sts::RETURN_DELAY_TIME), Some(50));
    let s = emulator.stats();
    assert!(s.sync_reads >= 3 && s.sync_writes == 1, "{s:?}");
    assert_eq!(s.bad_checksums, 0);
}

#[test]
fn vendor_sdk_reads_the_overload_bit_and_torque_stays_off() {
    let Some(py) = vendor_sdk::FEETECH.python("vendor_sdk_reads_the_overload_bit_and_torque_stays_off") else { return };
    let emulator = Emulator::start(EmulatorConfig::default()).expect("emulator");
    emulator.set_register(3, sts::TORQUE_ENABLE, 1);
    emulator.inject(Fault::Alarm { id: 3, bits: StatusBits(StatusBits::OVERLOAD) });
    vendor_sdk::FEETECH.peer(&py, emulator.path(), &["--ids", "1,2,3,4,5,6", "--phase", "alarm", "--target", "3"]);
}

#[test]
fn vendor_sdk_times_out_on_a_silent_servo() {
    let Some(py) = vendor_sdk::FEETECH.python("vendor_sdk_times_out_on_a_silent_servo") else { return };
    let emulator = Emulator::start(EmulatorConfig::default()).expect("emulator");
    emulator.inject(Fault::Silent { id: 4 });
    vendor_sdk::FEETECH.peer(&py, emulator.path(), &["--ids", "1,2,3,4,5,6", "--phase", "silent", "--target", "4"]);
}
