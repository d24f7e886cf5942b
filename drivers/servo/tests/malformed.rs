//! Malformed input is dropped and counted, never a panic: the framing of
//! both protocols on arbitrary bytes (property tests), and both emulators
//! fed garbage on their pty keep serving.

use std::io::Write;
use std::time::Duration;

use ganglion_servo::dxl_emulator::{DxlEmulator, DxlEmulatorConfig};
use ganglion_servo::emulator::{Emulator, EmulatorConfig};
use ganglion_servo::protocol::{self, Frame};
use ganglion_servo::{protocol2, DynamixelBus, DynamixelConfig, FeetechBus, FeetechConfig, ServoBus};
use proptest::prelude::*;

fn check_frame(buf: &[u8], f: Frame) {
    match f {
        Frame::Incomplete { skip } => assert!(skip <= buf.len()),
        Frame::BadChecksum { skip } => assert!(skip + 3 <= buf.len()),
        Frame::Packet { skip, params, end, .. } => {
            assert!(skip < end && end <= buf.len() && params.start <= params.end && params.end <= end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn framing_is_total_on_arbitrary_bytes(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_frame(&buf, protocol::next_frame(&buf));
        check_frame(&buf, protocol2::next_frame(&buf));
        let mut out = vec![0u8; buf.len()];
        prop_assert!(protocol2::unstuff(0x55, &buf, &mut out) <= buf.len());
    }

    #[test]
    fn packets_survive_noise_around_them(
        id in 0u8..=252,
        body in proptest::collection::vec(any::<u8>(), 0..200),
        noise in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        // Protocol 2.0: any body, stuffed and unstuffed back, behind noise
        // without a header in it.
        let mut pkt = Vec::new();
        protocol2::PacketWriter::new(&mut pkt, id, protocol2::instruction::STATUS).push(&body).finish();
        let noise: Vec<u8> = noise.into_iter().map(|b| if b == 0xFF { 0 } else { b }).collect();
        let mut stream = noise.clone();
        stream.extend_from_slice(&pkt);
        match protocol2::next_frame(&stream) {
            Frame::Packet { skip, id: got, params, end, .. } => {
                prop_assert_eq!((skip, got, end), (noise.len(), id, stream.len()));
                let mut out = vec![0u8; params.len()];
                let n = protocol2::unstuff(protocol2::instruction::STATUS, &stream[params], &mut out);
                prop_assert_eq!(&out[..n], &body[..]);
            }
            f => prop_assert!(false, "{:?}", f),
        }
        // Protocol 0: up to 253 parameter bytes.
        let mut p0 = Vec::new();
        let body0 = &body[..body.len().min(protocol::MAX_PARAMS)];
        protocol::PacketWriter::new(&mut p0, id, 0).push(body0).finish();
        let mut stream0 = noise.clone();
        stream0.extend_from_slice(&p0);
        match protocol::next_frame(&stream0) {
            Frame::Packet { skip, params, .. } => {
                prop_assert_eq!(skip, noise.len());
                prop_assert_eq!(&stream0[params], body0);
            }
            f => prop_assert!(false, "{:?}", f),
        }
    }
}

/// Bytes that look like the start of packets of both protocols, truncated,
/// with absurd lengths and bad checksums.
fn garbage() -> Vec<u8> {
    let mut g = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        g.push(x as u8);
    }
    for chunk in [
        &[0xFF, 0xFF, 0x01, 0xFF][..],
        &[0xFF, 0xFF, 0x01, 0x00],
        &[0xFF, 0xFF, 0xFE, 0x07, 0x83, 0x2A, 0x02, 0x01],
        &[0xFF, 0xFF, 0xFD, 0x00, 0x01, 0xFF, 0xFF, 0x02],
        &[0xFF, 0xFF, 0xFD, 0x00, 0xFE, 0x03, 0x00, 0x82],
        &[0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0x00],
    ] {
        g.extend_from_slice(chunk);
    }
    g
}

fn spray(path: &std::path::Path) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).expect("open pty");
    f.write_all(&garbage()).expect("write garbage");
    f.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn emulators_keep_serving_after_garbage() {
    let ids = [1u8, 2, 3];
    let e = Emulator::start(EmulatorConfig { ids: ids.to_vec(), ..EmulatorConfig::default() }).expect("emulator");
    spray(e.path());
    let cfg = FeetechConfig { timeout_margin: Duration::from_millis(150), ..FeetechConfig::default() };
    let mut bus = FeetechBus::open(e.path(), &ids, cfg).expect("still answers");
    let mut pos = [0; 3];
    bus.sync_read_positions(&mut pos).expect("read");
    assert_eq!(pos, [2048; 3]);
    assert!(e.stats().junk_bytes > 0);

    let d =
        DxlEmulator::start(DxlEmulatorConfig { ids: ids.to_vec(), ..DxlEmulatorConfig::default() }).expect("emulator");
    spray(d.path());
    let cfg = DynamixelConfig { timeout_margin: Duration::from_millis(150), ..DynamixelConfig::default() };
    let mut bus = DynamixelBus::open(d.path(), &ids, cfg).expect("still answers");
    bus.sync_read_positions(&mut pos).expect("read");
    assert_eq!(pos, [2048; 3]);
    assert!(d.stats().junk_bytes > 0);
}
