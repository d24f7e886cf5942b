//! Every owned message decoder; an accepted message re-encodes to bytes
//! that decode and re-encode to the same bytes. (Bytes, not values: a NaN
//! field makes value equality fail although nothing changed.)
#![no_main]
use ganglion_codec::msg::*;
use ganglion_codec::DecodeLimits;
use libfuzzer_sys::fuzz_target;

fn check<M: Message>(data: &[u8], lim: &DecodeLimits) {
    if let Ok(m) = M::decode(data, lim) {
        let bytes = m.encode();
        let again = M::decode(&bytes, lim).expect("a re-encoded message decodes");
        assert!(again.encode() == bytes, "re-encoding changed the bytes");
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
    check::<Float64MultiArray>(data, &lim);
});
