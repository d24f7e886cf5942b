//! Plain CDR (OMG XCDR1, as ROS 2 uses it) with the 4-byte encapsulation
//! header: a bounded, zero-copy reader and an appending writer.
//!
//! Alignment: every primitive is aligned to its own size (8 for `f64`),
//! counted from the first byte *after* the encapsulation header. Strings are
//! a `u32` length that includes the terminating NUL, the bytes, then the NUL.
//! Sequences are a `u32` element count, then the elements.

use crate::{DecodeError, DecodeLimits};

/// Encapsulation header of little-endian plain CDR (`CDR_LE`).
pub const CDR_LE_HEADER: [u8; 4] = [0x00, 0x01, 0x00, 0x00];
/// Encapsulation header of big-endian plain CDR (`CDR_BE`), accepted on input.
pub const CDR_BE_HEADER: [u8; 4] = [0x00, 0x00, 0x00, 0x00];

/// Reads one CDR message from a borrowed byte slice.
///
/// Every read checks the remaining length first, so a truncated or lying
/// payload yields an error, never a panic; strings and byte sequences are
/// borrowed, never copied, so reading allocates nothing.
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    body: &'a [u8],
    pos: usize,
    little_endian: bool,
    limits: DecodeLimits,
}

impl<'a> CdrReader<'a> {
    /// Checks the encapsulation header and positions the reader after it.
    pub fn new(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        if bytes.len() < 4 {
            return Err(DecodeError::Truncated);
        }
        // Byte 2..4 are options (ignored by readers per the XTypes spec).
        let little_endian = match [bytes[0], bytes[1]] {
            [0x00, 0x01] => true,
            [0x00, 0x00] => false,
            _ => return Err(DecodeError::BadEncapsulation),
        };
        if bytes.len() > limits.max_message_bytes {
            return Err(DecodeError::TooLong);
        }
        Ok(CdrReader { body: &bytes[4..], pos: 0, little_endian, limits: *limits })
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Bytes left after the current position.
    pub fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    fn align(&mut self, n: usize) -> Result<(), DecodeError> {
        let pad = (n - self.pos % n) % n;
        if pad > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        self.pos += pad;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.body[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.align(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// An octet / `uint8` / `byte`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A `uint32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let a = self.array::<4>()?;
        Ok(if self.little_endian { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) })
    }

    /// An `int32`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        let a = self.array::<4>()?;
        Ok(if self.little_endian { i32::from_le_bytes(a) } else { i32::from_be_bytes(a) })
    }

    /// A `uint64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let a = self.array::<8>()?;
        Ok(if self.little_endian { u64::from_le_bytes(a) } else { u64::from_be_bytes(a) })
    }

    /// A `float64`.
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let a = self.array::<8>()?;
        Ok(if self.little_endian { f64::from_le_bytes(a) } else { f64::from_be_bytes(a) })
    }

    /// A string, borrowed; at most `limits.max_string_len` bytes.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u32()? as usize;
        if len == 0 {
            // Some writers send 0 for the empty string (no NUL); accept it.
            return Ok("");
        }
        if len - 1 > self.limits.max_string_len {
            return Err(DecodeError::TooLong);
        }
        let raw = self.take(len)?;
        let (text, nul) = raw.split_at(len - 1);
        if nul != [0] {
            return Err(DecodeError::BadString);
        }
        std::str::from_utf8(text).map_err(|_| DecodeError::BadString)
    }

    /// A sequence length for elements of `elem_min_bytes` bytes each: checked
    /// against `max` and against the bytes actually left, so a lying length
    /// can never make the caller allocate or loop beyond the payload.
    pub fn seq_len(&mut self, max: usize, elem_min_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::TooLong);
        }
        if n.saturating_mul(elem_min_bytes) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    /// A `float64[]`, borrowed as its raw bytes (`8 × len`, already aligned);
    /// read values with [`F64s::get`].
    pub fn f64_seq(&mut self, max: usize) -> Result<F64s<'a>, DecodeError> {
        let n = self.seq_len(max, 8)?;
        if n > 0 {
            self.align(8)?;
        }
        let raw = self.take(n * 8)?;
        Ok(F64s { raw, little_endian: self.little_endian })
    }

    /// A `uint8[]` / `byte[]`, borrowed; at most `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.seq_len(max, 1)?;
        self.take(n)
    }
}

/// A borrowed `float64[]` as read from the wire.
#[derive(Debug, Clone, Copy)]
pub struct F64s<'a> {
    raw: &'a [u8],
    little_endian: bool,
}

impl F64s<'_> {
    /// No values.
    pub const EMPTY: F64s<'static> = F64s { raw: &[], little_endian: true };

    /// Number of values.
    pub fn len(&self) -> usize {
        self.raw.len() / 8
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Value `i`; `0.0` beyond the end (callers iterate within `len`).
    pub fn get(&self, i: usize) -> f64 {
        let Some(chunk) = self.raw.get(i * 8..i * 8 + 8) else { return 0.0 };
        let mut a = [0u8; 8];
        a.copy_from_slice(chunk);
        if self.little_endian {
            f64::from_le_bytes(a)
        } else {
            f64::from_be_bytes(a)
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Appends one little-endian CDR message to a reusable buffer.
///
/// The writer clears the buffer and writes the header on creation; after
/// the first message of a given size, reusing the buffer allocates nothing.
#[derive(Debug)]
pub struct CdrWriter<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> CdrWriter<'b> {
    /// Starts a message in `out` (cleared first).
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        out.clear();
        out.extend_from_slice(&CDR_LE_HEADER);
        CdrWriter { out }
    }

    fn align(&mut self, n: usize) {
        let pos = self.out.len() - 4;
        let pad = (n - pos % n) % n;
        self.out.resize(self.out.len() + pad, 0);
    }

    /// An octet.
    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// A `uint32`.
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// An `int32`.
    pub fn i32(&mut self, v: i32) {
        self.align(4);
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// A `uint64`.
    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// A `float64`.
    pub fn f64(&mut self, v: f64) {
        self.align(8);
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// A sequence length. Lengths beyond `u32::MAX` cannot be expressed in
    /// CDR; they are saturated (and such messages are far beyond any limit).
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// A string (length with NUL, bytes, NUL).
    pub fn str(&mut self, s: &str) {
        self.len(s.len() + 1);
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(0);
    }

    /// A `float64[]`.
    pub fn f64_seq(&mut self, values: impl ExactSizeIterator<Item = f64>) {
        self.len(values.len());
        for v in values {
            self.f64(v);
        }
    }

    /// A `uint8[]`.
    pub fn bytes(&mut self, data: &[u8]) {
        self.len(data.len());
        self.out.extend_from_slice(data);
    }

    /// A `uint8[]` of `len` bytes filled in place by `fill` (e.g. copying
    /// image rows without an intermediate buffer).
    pub fn bytes_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) {
        self.len(len);
        let start = self.out.len();
        self.out.resize(start + len, 0);
        fill(&mut self.out[start..]);
    }

    /// A string sequence.
    pub fn str_seq<'s>(&mut self, items: impl ExactSizeIterator<Item = &'s str>) {
        self.len(items.len());
        for s in items {
            self.str(s);
        }
    }
}
