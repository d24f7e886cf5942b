//! `decode_image_into` on arbitrary bytes: never panics, and an accepted
//! frame always fits its geometry.
#![no_main]
use ganglion_codec::{decode_image_into, DecodeLimits};
use ganglion_core::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut frame = Frame::with_capacity(64, 64);
    if decode_image_into(data, &DecodeLimits::default(), &mut frame).is_ok() {
        let need = frame.width as usize * frame.height as usize * frame.format.bytes_per_pixel();
        assert_eq!(frame.data().len(), need);
    }
});
