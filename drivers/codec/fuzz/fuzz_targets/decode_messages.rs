//! Every owned message decoder; accepted messages re-encode and decode to
//! the same value.
#![no_main]
use ganglion_codec::msg::*;
use ganglion_codec::DecodeLimits;
use libfuzzer_sys::fuzz_target;

fn check<M: Message + PartialEq + std::fmt::Debug>(data: &[u8], lim: &DecodeLimits) {
    if let Ok(m) = M::decode(data, lim) {
        assert_eq!(M::decode(&m.encode(), lim).as_ref(), Ok(&m));
    }
}

fuzz_target!(|data: &[u8]| {
    let lim = DecodeLimits::default();
    check::<Image>(data, &lim);
    check::<JointState>(data, &lim);
    check::<JointTrajectory>(data, &lim);
    check::<DiagnosticArray>(data, &lim);
    check::<StringMsg>(data, &lim);
    check::<Header>(data, &lim);
    // Float64MultiArray: NaN payloads compare unequal, so only decode.
    let _ = Float64MultiArray::decode(data, &lim);
});
