//! Feetech protocol 0 (STS/SMS series) framing, shared by the driver and the
//! emulator.
//!
//! Every packet is `0xFF 0xFF id len code params… checksum`, where `len` is
//! the number of bytes after it (`params.len() + 2`), `code` is the
//! instruction in an instruction packet and the error (alarm) byte in a
//! status packet, and `checksum = !(id + len + code + Σ params) & 0xFF`.
//! Multi-byte registers are little-endian.

use std::fmt;
use std::ops::Range;

/// Broadcast id: every servo acts, none answers.
pub const BROADCAST_ID: u8 = 0xFE;
/// Largest servo id.
pub const MAX_ID: u8 = 0xFC;
/// Bytes around the parameters: header (2), id, len, code, checksum.
pub const OVERHEAD: usize = 6;
/// Most parameter bytes one packet can carry (`len` is one byte).
pub const MAX_PARAMS: usize = 255 - 2;
/// The longest packet on the wire.
pub const MAX_PACKET: usize = MAX_PARAMS + OVERHEAD;

/// Instruction codes.
pub mod instruction {
    /// Ping: the servo answers with an empty status packet.
    pub const PING: u8 = 0x01;
    /// Read `len` bytes from `addr`: params `addr, len`.
    pub const READ: u8 = 0x02;
    /// Write bytes at `addr`: params `addr, data…`.
    pub const WRITE: u8 = 0x03;
    /// Register a write, applied on `ACTION`.
    pub const REG_WRITE: u8 = 0x04;
    /// Apply registered writes.
    pub const ACTION: u8 = 0x05;
    /// Sync read: params `addr, len, id…`; each servo answers in turn.
    pub const SYNC_READ: u8 = 0x82;
    /// Sync write: params `addr, len, (id, data[len])…`; nobody answers.
    pub const SYNC_WRITE: u8 = 0x83;
}

/// The alarm bits of a status packet's error byte (and of the `Status`
/// register), as the Feetech SDK names them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct StatusBits(pub u8);

impl StatusBits {
    /// Input voltage out of `Min/Max_Voltage_Limit`.
    pub const VOLTAGE: u8 = 0x01;
    /// Angle (magnetic encoder) sensor error.
    pub const ANGLE: u8 = 0x02;
    /// Temperature above `Max_Temperature_Limit`.
    pub const OVERHEAT: u8 = 0x04;
    /// Over current.
    pub const OVERCURRENT: u8 = 0x08;
    /// Overload: load above `Overload_Torque` for `Protection_Time`.
    pub const OVERLOAD: u8 = 0x20;
    /// Dynamixel's alert bit: a hardware error is set (read
    /// `Hardware_Error_Status` for which). Feetech servos never set it.
    pub const ALERT: u8 = 0x80;
    const NAMES: [(u8, &'static str); 6] = [
        (Self::VOLTAGE, "voltage"),
        (Self::ANGLE, "angle sensor"),
        (Self::OVERHEAT, "overheat"),
        (Self::OVERCURRENT, "overcurrent"),
        (Self::OVERLOAD, "overload"),
        (Self::ALERT, "hardware alert"),
    ];

    /// No bit set.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `mask` is set.
    pub fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

impl fmt::Display for StatusBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("no alarm");
        }
        let mut first = true;
        let mut rest = self.0;
        for (bit, name) in Self::NAMES {
            if self.0 & bit != 0 {
                f.write_str(if first { "" } else { "+" })?;
                f.write_str(name)?;
                first = false;
                rest &= !bit;
            }
        }
        if rest != 0 {
            write!(f, "{}bits 0x{rest:02x}", if first { "" } else { "+" })?;
        }
        Ok(())
    }
}

impl fmt::Debug for StatusBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusBits(0x{:02x}: {self})", self.0)
    }
}

/// `!(Σ bytes) & 0xFF` over `id, len, code, params`.
pub fn checksum(body: &[u8]) -> u8 {
    !body.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

/// Builds one packet into a reused buffer (no allocation when the buffer's
/// capacity suffices: the driver sizes it at open).
pub struct PacketWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> PacketWriter<'a> {
    /// Starts a packet to `id` with instruction (or error byte) `code`.
    pub fn new(buf: &'a mut Vec<u8>, id: u8, code: u8) -> Self {
        buf.clear();
        buf.extend_from_slice(&[0xFF, 0xFF, id, 0, code]);
        PacketWriter { buf }
    }

    /// Appends parameter bytes.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Sets the length and checksum; `None` when the parameters do not fit
    /// one packet.
    pub fn finish(&mut self) -> Option<usize> {
        let params = self.buf.len() - 5;
        if params > MAX_PARAMS {
            return None;
        }
        self.buf[3] = (params + 2) as u8;
        let sum = checksum(&self.buf[2..]);
        self.buf.push(sum);
        Some(self.buf.len())
    }
}

/// One packet, or why there is none yet, found by [`next_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// No complete packet: the first `skip` bytes are junk (no header can
    /// start there) and may be dropped; wait for more bytes.
    Incomplete {
        /// Junk bytes before a possible header.
        skip: usize,
    },
    /// A complete packet with a good checksum.
    Packet {
        /// Junk bytes before its header.
        skip: usize,
        /// Servo id.
        id: u8,
        /// Instruction (instruction packet) or error byte (status packet).
        code: u8,
        /// Where its parameters are in the buffer.
        params: Range<usize>,
        /// One past its checksum byte: bytes to consume.
        end: usize,
    },
    /// A header and length whose checksum does not match: drop `skip + 2`
    /// bytes (the header) and look again, since the length may be corrupt too.
    BadChecksum {
        /// Junk bytes before its header.
        skip: usize,
    },
}

/// Finds the first packet in `buf`. A header whose id is not a valid id
/// (> 0xFD, i.e. 0xFF of a longer run) or whose length is below 2 is junk.
pub fn next_frame(buf: &[u8]) -> Frame {
    let mut i = 0;
    loop {
        // Find the next 0xFF 0xFF.
        while i + 1 < buf.len() && !(buf[i] == 0xFF && buf[i + 1] == 0xFF) {
            i += 1;
        }
        if i + 1 >= buf.len() {
            // A trailing 0xFF may start a header.
            let keep = usize::from(buf.last() == Some(&0xFF));
            return Frame::Incomplete { skip: buf.len() - keep };
        }
        if buf.len() < i + 4 {
            return Frame::Incomplete { skip: i };
        }
        let id = buf[i + 2];
        let len = buf[i + 3] as usize;
        if id > BROADCAST_ID || len < 2 {
            i += 1;
            continue;
        }
        let end = i + 4 + len;
        if buf.len() < end {
            return Frame::Incomplete { skip: i };
        }
        if checksum(&buf[i + 2..end - 1]) != buf[end - 1] {
            return Frame::BadChecksum { skip: i };
        }
        return Frame::Packet { skip: i, id, code: buf[i + 4], params: i + 5..end - 1, end };
    }
}

/// Bytes of a status packet carrying `params` bytes.
pub const fn status_len(params: usize) -> usize {
    params + OVERHEAD
}

/// Seconds on the wire for `bytes` bytes at `baud` (10 bits a byte: start,
/// 8 data, stop).
pub fn wire_seconds(bytes: usize, baud: u32) -> f64 {
    bytes as f64 * 10.0 / f64::from(baud.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_packet_matches_the_manual() {
        // The Feetech manual's example: ping id 1 is FF FF 01 02 01 FB.
        let mut buf = Vec::new();
        let n = PacketWriter::new(&mut buf, 1, instruction::PING).finish();
        assert_eq!(n, Some(6));
        assert_eq!(buf, [0xFF, 0xFF, 0x01, 0x02, 0x01, 0xFB]);
    }

    #[test]
    fn frames_resync_over_junk_and_bad_checksums() {
        let mut good = Vec::new();
        PacketWriter::new(&mut good, 3, 0).push(&[0x00, 0x08]).finish();
        let mut stream = vec![0x00, 0xFF, 0x13, 0xFF];
        stream.extend_from_slice(&good);
        match next_frame(&stream) {
            Frame::Packet { skip, id, code, params, end } => {
                assert_eq!((skip, id, code), (4, 3, 0));
                assert_eq!(&stream[params], &[0x00, 0x08]);
                assert_eq!(end, stream.len());
            }
            f => panic!("{f:?}"),
        }
        let mut bad = good.clone();
        bad[5] ^= 0x55;
        assert_eq!(next_frame(&bad), Frame::BadChecksum { skip: 0 });
        assert_eq!(next_frame(&good[..5]), Frame::Incomplete { skip: 0 });
        assert_eq!(next_frame(&[1, 2, 3, 0xFF]), Frame::Incomplete { skip: 3 });
        // Three 0xFF: the header is the last two.
        let mut triple = vec![0xFF];
        triple.extend_from_slice(&good);
        assert!(matches!(next_frame(&triple), Frame::Packet { skip: 1, .. }));
    }

    #[test]
    fn too_many_params_do_not_fit() {
        let mut buf = Vec::new();
        let mut w = PacketWriter::new(&mut buf, 1, instruction::WRITE);
        w.push(&[0; MAX_PARAMS + 1]);
        assert_eq!(w.finish(), None);
    }

    #[test]
    fn status_bits_name_themselves() {
        assert_eq!(StatusBits(0x21).to_string(), "voltage+overload");
        assert_eq!(StatusBits(0x40).to_string(), "bits 0x40");
        assert_eq!(StatusBits(0).to_string(), "no alarm");
    }
}
