//! `decode_joint_state_into` (by name and positional) on arbitrary bytes.
#![no_main]
use ganglion_codec::{decode_joint_state_into, DecodeLimits, JointMap};
use ganglion_core::JointState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lim = DecodeLimits::default();
    let mut js = JointState::zeros(3);
    let named = JointMap::by_name(vec!["a".into(), "b".into(), "c".into()]);
    if decode_joint_state_into(data, &lim, &named, &mut js).is_ok() {
        assert_eq!(js.len(), 3);
    }
    let _ = decode_joint_state_into(data, &lim, &JointMap::positional(3), &mut js);
});
