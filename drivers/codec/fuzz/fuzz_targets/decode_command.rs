//! `decode_command`, `decode_instruction` and `decode_heartbeat_into`.
#![no_main]
use ganglion_codec::{decode_command, decode_heartbeat_into, decode_instruction, CommandFormat, DecodeLimits};
use ganglion_core::ExternalHeartbeat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lim = DecodeLimits::default();
    for f in CommandFormat::ALL {
        let _ = decode_command(data, f, &lim);
    }
    let _ = decode_instruction(data, &lim);
    let _ = decode_heartbeat_into(data, &lim, &mut ExternalHeartbeat::default());
});
