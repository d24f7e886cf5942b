//! A control-table register (address, size, encoding), shared by the
//! Feetech and Dynamixel tables, and the encodings LeRobot applies.

/// How a register's bytes hold a signed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Unsigned.
    Unsigned,
    /// Sign-magnitude with the sign at this bit (Feetech).
    SignMagnitude(u8),
    /// Two's complement over the register's size (Dynamixel).
    TwosComplement,
}

/// One register of a control table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// LeRobot's name for it.
    pub name: &'static str,
    /// Address.
    pub addr: u16,
    /// Size in bytes (1, 2 or 4).
    pub len: u8,
    /// How it holds a signed value (LeRobot's encodings tables).
    pub encoding: Encoding,
    /// Whether the servo ignores (Feetech) or refuses (Dynamixel) writes to it.
    pub read_only: bool,
}

pub(crate) const fn reg(name: &'static str, addr: u16, len: u8) -> Register {
    Register { name, addr, len, encoding: Encoding::Unsigned, read_only: false }
}
pub(crate) const fn ro(name: &'static str, addr: u16, len: u8) -> Register {
    Register { name, addr, len, encoding: Encoding::Unsigned, read_only: true }
}
pub(crate) const fn sign_magnitude(r: Register, bit: u8) -> Register {
    Register { encoding: Encoding::SignMagnitude(bit), ..r }
}
pub(crate) const fn twos_complement(r: Register) -> Register {
    Register { encoding: Encoding::TwosComplement, ..r }
}

/// Sign-magnitude encoding with the sign at `bit` (LeRobot's
/// `encode_sign_magnitude`); `None` when the magnitude does not fit.
pub fn encode_sign_magnitude(value: i32, bit: u8) -> Option<u32> {
    let max = (1u32 << bit) - 1;
    let magnitude = value.unsigned_abs();
    if magnitude > max {
        return None;
    }
    Some((u32::from(value < 0) << bit) | magnitude)
}

/// Sign-magnitude decoding with the sign at `bit` (LeRobot's
/// `decode_sign_magnitude`; bits above the sign are ignored).
pub fn decode_sign_magnitude(raw: u32, bit: u8) -> i32 {
    let magnitude = (raw & ((1u32 << bit) - 1)) as i32;
    if (raw >> bit) & 1 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

fn mask(len: u8) -> u32 {
    match len {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => u32::MAX,
    }
}

/// A register's raw value (its bytes, little-endian) as the number it holds.
pub fn decode(r: Register, raw: u32) -> i32 {
    let raw = raw & mask(r.len);
    match r.encoding {
        Encoding::SignMagnitude(bit) => decode_sign_magnitude(raw, bit),
        Encoding::TwosComplement => {
            let bits = 8 * u32::from(r.len.clamp(1, 4));
            ((raw << (32 - bits)) as i32) >> (32 - bits)
        }
        Encoding::Unsigned => raw as i32,
    }
}

/// A number as the raw value of register `r`; `None` when it does not fit.
pub fn encode(r: Register, value: i32) -> Option<u32> {
    match r.encoding {
        Encoding::SignMagnitude(bit) => encode_sign_magnitude(value, bit),
        Encoding::TwosComplement => {
            let bits = 8 * u32::from(r.len.clamp(1, 4));
            let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
            (lo..=hi).contains(&i64::from(value)).then_some(value as u32 & mask(r.len))
        }
        Encoding::Unsigned => u32::try_from(value).ok().filter(|v| *v <= mask(r.len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_complement_matches_lerobot() {
        let r = twos_complement(reg("Goal_Position", 116, 4));
        assert_eq!(encode(r, -131_073), Some(0xFFFD_FFFF));
        assert_eq!(decode(r, 0xFFFD_FFFF), -131_073);
        let c = twos_complement(reg("Goal_Current", 102, 2));
        assert_eq!(encode(c, -1), Some(0xFFFF));
        assert_eq!(decode(c, 0xFFFF), -1);
        assert_eq!(encode(c, 40_000), None);
        assert_eq!(encode(reg("ID", 7, 1), 256), None);
    }
}
