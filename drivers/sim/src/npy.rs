//! A small writer of NumPy `.npy` arrays and `.npz` archives (a zip of
//! `.npy` files), readable by `numpy.load` without custom code.

use std::io::{Seek, Write};

/// Element types the writer knows, with their NumPy `descr`.
pub trait NpyElement: Copy {
    /// NumPy type string (little-endian).
    const DESCR: &'static str;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $d:literal) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(u8, "|u1");
element!(i32, "<i4");
element!(i64, "<i8");
element!(f32, "<f4");
element!(f64, "<f8");

/// Why an array could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The data length is not the product of the shape.
    #[error("array `{name}`: {len} values do not fill shape {shape:?}")]
    Shape {
        /// Array name.
        name: String,
        /// Values given.
        len: usize,
        /// Declared shape.
        shape: Vec<usize>,
    },
    /// Writing the archive failed.
    #[error("writing npz: {0}")]
    Io(#[from] std::io::Error),
    /// The zip layer failed.
    #[error("writing npz: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// The `.npy` (format 1.0) bytes of a C-order array of `shape`.
pub fn npy_bytes<T: NpyElement>(name: &str, shape: &[usize], data: &[T]) -> Result<Vec<u8>, NpyError> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(NpyError::Shape { name: name.to_string(), len: data.len(), shape: shape.to_vec() });
    }
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}", T::DESCR);
    // Magic (6) + version (2) + header length (2) + header + '\n' is a
    // multiple of 64, as the format asks.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        v.put(&mut out);
    }
    Ok(out)
}

/// An `.npz` archive being written: `add` arrays, then `finish`.
pub struct NpzWriter<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
}

impl<W: Write + Seek> NpzWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        NpzWriter { zip: zip::ZipWriter::new(out) }
    }

    /// Adds array `name` (stored as `name.npy`, deflate-compressed).
    pub fn add<T: NpyElement>(&mut self, name: &str, shape: &[usize], data: &[T]) -> Result<(), NpyError> {
        let bytes = npy_bytes(name, shape, data)?;
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(bytes.len() >= u32::MAX as usize);
        self.zip.start_file(format!("{name}.npy"), options)?;
        self.zip.write_all(&bytes)?;
        Ok(())
    }

    /// Writes the central directory and returns the output.
    pub fn finish(self) -> Result<W, NpyError> {
        Ok(self.zip.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_and_describes_the_array() {
        let b = npy_bytes("x", &[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("shape fits");
        let header_len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + header_len]).expect("ascii");
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!(b.len(), 10 + header_len + 24);
        assert_eq!(&b[10 + header_len..10 + header_len + 4], &1.0f32.to_le_bytes());
        assert!(npy_bytes("y", &[4], &[1u8, 2, 3]).is_err());
        let one = npy_bytes("z", &[1], &[7i64]).expect("fits");
        assert!(std::str::from_utf8(&one[10..]).unwrap_or("").contains("'shape': (1,)"));
    }
}
