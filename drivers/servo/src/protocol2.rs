//! Dynamixel protocol 2.0 framing, shared by the driver and the emulator.
//!
//! Every packet is `FF FF FD 00 id len_lo len_hi instr body… crc_lo crc_hi`,
//! where `len` counts the bytes after it (instruction, body, CRC), a status
//! packet's instruction is 0x55 and its body starts with the error byte, and
//! the CRC is CRC-16/BUYPASS (polynomial 0x8005, initial 0, not reflected)
//! over everything before it. Inside instruction and body, `FF FF FD` is
//! followed by a stuffed `FD` that the receiver removes (the length and the
//! CRC count the stuffed bytes).

use crate::protocol::Frame;

/// Broadcast id.
pub const BROADCAST_ID: u8 = 0xFE;
/// Bytes of a status packet around its data: header (4), id, len (2),
/// instruction, error, CRC (2).
pub const STATUS_OVERHEAD: usize = 11;
/// Bytes of an instruction packet around its parameters.
pub const INSTRUCTION_OVERHEAD: usize = 10;
/// The longest packet either side accepts (the SDK's buffers).
pub const MAX_PACKET: usize = 1024;

/// Instruction codes.
pub mod instruction {
    /// Ping: answered with model number and firmware version.
    pub const PING: u8 = 0x01;
    /// Read: params `addr(2) len(2)`.
    pub const READ: u8 = 0x02;
    /// Write: params `addr(2) data…`.
    pub const WRITE: u8 = 0x03;
    /// Register a write for `ACTION`.
    pub const REG_WRITE: u8 = 0x04;
    /// Apply registered writes.
    pub const ACTION: u8 = 0x05;
    /// Status packet.
    pub const STATUS: u8 = 0x55;
    /// Sync read: params `addr(2) len(2) id…`.
    pub const SYNC_READ: u8 = 0x82;
    /// Sync write: params `addr(2) len(2) (id data[len])…`.
    pub const SYNC_WRITE: u8 = 0x83;
    /// Bulk read: params `(id addr(2) len(2))…`.
    pub const BULK_READ: u8 = 0x92;
}

/// Error numbers of a status packet's error byte (low 7 bits).
pub mod error {
    /// Failed to process the instruction.
    pub const RESULT_FAIL: u8 = 1;
    /// Undefined or wrong instruction.
    pub const INSTRUCTION: u8 = 2;
    /// CRC mismatch.
    pub const CRC: u8 = 3;
    /// Value out of range.
    pub const DATA_RANGE: u8 = 4;
    /// Wrong data length.
    pub const DATA_LENGTH: u8 = 5;
    /// Value beyond a limit.
    pub const DATA_LIMIT: u8 = 6;
    /// Not writable/readable (read-only, EEPROM with torque on, no such address).
    pub const ACCESS: u8 = 7;
    /// Bit 7: a hardware error is set (see `Hardware_Error_Status`).
    pub const ALERT: u8 = 0x80;

    /// The SDK's words for an error number.
    pub fn describe(code: u8) -> &'static str {
        match code & 0x7F {
            0 => "no error",
            RESULT_FAIL => "failed to process the instruction",
            INSTRUCTION => "undefined or incorrect instruction",
            CRC => "CRC does not match",
            DATA_RANGE => "data value out of range",
            DATA_LENGTH => "data length does not match",
            DATA_LIMIT => "data value exceeds the limit",
            ACCESS => "address not writable or readable",
            _ => "unknown error",
        }
    }
}

const fn crc_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u16) << 8;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000 != 0 { (c << 1) ^ 0x8005 } else { c << 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u16; 256] = crc_table();

/// CRC-16 (polynomial 0x8005) of `data`, continuing from `crc`.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        let i = ((crc >> 8) as u8 ^ b) as usize;
        crc = (crc << 8) ^ CRC_TABLE[i];
    }
    crc
}

/// Builds one packet into a reused buffer, stuffing as it goes.
pub struct PacketWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> PacketWriter<'a> {
    /// Starts a packet to `id` with instruction `instr`.
    pub fn new(buf: &'a mut Vec<u8>, id: u8, instr: u8) -> Self {
        buf.clear();
        buf.extend_from_slice(&[0xFF, 0xFF, 0xFD, 0x00, id, 0, 0, instr]);
        PacketWriter { buf }
    }

    /// Appends body bytes (parameters, or a status's error and data),
    /// stuffing an `FD` after every `FF FF FD`.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.buf.push(b);
            let n = self.buf.len();
            if b == 0xFD && n >= 10 && self.buf[n - 3] == 0xFF && self.buf[n - 2] == 0xFF {
                self.buf.push(0xFD);
            }
        }
        self
    }

    /// Sets the length and CRC; `None` when the packet is too long.
    pub fn finish(&mut self) -> Option<usize> {
        let len = self.buf.len() - 7 + 2;
        if self.buf.len() + 2 > MAX_PACKET {
            return None;
        }
        self.buf[5..7].copy_from_slice(&(len as u16).to_le_bytes());
        let crc = crc16(0, self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        Some(self.buf.len())
    }
}

/// Finds the first protocol-2 packet in `buf`. The `params` range of a
/// [`Frame::Packet`] is the stuffed body (after the instruction, before
/// the CRC); pass `buf[params]` to [`unstuff`]. `code` is the instruction.
pub fn next_frame(buf: &[u8]) -> Frame {
    let mut i = 0;
    loop {
        while i + 2 < buf.len() && !(buf[i] == 0xFF && buf[i + 1] == 0xFF && buf[i + 2] == 0xFD) {
            i += 1;
        }
        if i + 2 >= buf.len() {
            // Keep a possible header start (FF or FF FF) at the end.
            let tail = buf.iter().rev().take(2).take_while(|b| **b == 0xFF).count();
            return Frame::Incomplete { skip: buf.len() - tail };
        }
        if buf.len() < i + 8 {
            return Frame::Incomplete { skip: i };
        }
        let id = buf[i + 4];
        let len = u16::from_le_bytes([buf[i + 5], buf[i + 6]]) as usize;
        if buf[i + 3] != 0x00 || id > BROADCAST_ID || len < 3 || len + 7 > MAX_PACKET {
            i += 1;
            continue;
        }
        let end = i + 7 + len;
        if buf.len() < end {
            return Frame::Incomplete { skip: i };
        }
        let crc = u16::from_le_bytes([buf[end - 2], buf[end - 1]]);
        if crc16(0, &buf[i..end - 2]) != crc {
            return Frame::BadChecksum { skip: i };
        }
        return Frame::Packet { skip: i, id, code: buf[i + 7], params: i + 8..end - 2, end };
    }
}

/// Copies a stuffed body into `out` without the stuffed `FD`s; the number
/// of bytes written (at most `src.len()`; `out` must be that long). The
/// pattern may start in the instruction byte before `src`, so `prev` gives
/// the byte before it.
pub fn unstuff(prev: u8, src: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    let (mut a, mut b, mut c) = (0u8, 0u8, prev); // the last three bytes kept
    for &x in src {
        if x == 0xFD && a == 0xFF && b == 0xFF && c == 0xFD {
            // The stuffed FD: dropped, and it starts no new pattern.
            a = 0;
            b = 0;
            c = 0;
            continue;
        }
        if n < out.len() {
            out[n] = x;
            n += 1;
        }
        a = b;
        b = c;
        c = x;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_packet_matches_the_e_manual() {
        // ROBOTIS e-Manual, protocol 2.0 ping example: id 1.
        let mut buf = Vec::new();
        PacketWriter::new(&mut buf, 1, instruction::PING).finish();
        assert_eq!(buf, [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01, 0x19, 0x4E]);
        // Its status: model 1060 (0x0424), firmware 0x26.
        let mut st = Vec::new();
        PacketWriter::new(&mut st, 1, instruction::STATUS).push(&[0x00, 0x06, 0x04, 0x26]).finish();
        assert_eq!(st, [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x07, 0x00, 0x55, 0x00, 0x06, 0x04, 0x26, 0x65, 0x5D]);
    }

    #[test]
    fn stuffing_round_trips() {
        let body = [0x74, 0x00, 0xFF, 0xFF, 0xFD, 0xFF, 0xFF, 0xFD, 0xFD, 0x01];
        let mut buf = Vec::new();
        PacketWriter::new(&mut buf, 3, instruction::WRITE).push(&body).finish();
        assert_eq!(buf.len(), 10 + body.len() + 2, "two stuffed bytes");
        match next_frame(&buf) {
            Frame::Packet { skip: 0, id: 3, code, params, end } => {
                assert_eq!((code, end), (instruction::WRITE, buf.len()));
                let mut out = [0u8; 32];
                let n = unstuff(code, &buf[params], &mut out);
                assert_eq!(&out[..n], &body);
            }
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn frames_resync_and_checksums_fail() {
        let mut good = Vec::new();
        PacketWriter::new(&mut good, 2, instruction::STATUS).push(&[0, 1, 2]).finish();
        let mut stream = vec![0xFF, 0xFF, 0x00, 0x13];
        stream.extend_from_slice(&good);
        assert!(matches!(next_frame(&stream), Frame::Packet { skip: 4, id: 2, .. }));
        let mut bad = good.clone();
        bad[9] ^= 0x40;
        assert_eq!(next_frame(&bad), Frame::BadChecksum { skip: 0 });
        assert_eq!(next_frame(&good[..9]), Frame::Incomplete { skip: 0 });
        assert_eq!(next_frame(&[1, 2, 0xFF, 0xFF]), Frame::Incomplete { skip: 2 });
    }
}
