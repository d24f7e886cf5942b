//! Just enough of the safetensors format to read LeRobot's normalization
//! statistics: an 8-byte little-endian header length, a JSON header naming
//! each tensor's dtype, shape and byte range, then the data. Only `F32` and
//! `F64` tensors are read (LeRobot writes its statistics as `F32`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ImportError;

/// One tensor of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape as written.
    pub shape: Vec<usize>,
    /// Values, row-major, as f32 (F64 values are rounded).
    pub values: Vec<f32>,
}

/// The tensors of a safetensors file by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tensors {
    /// The file they came from (for errors).
    pub file: PathBuf,
    /// Name → tensor.
    pub tensors: BTreeMap<String, Tensor>,
}

#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// Reads every tensor of `file`.
pub fn read(file: &Path) -> Result<Tensors, ImportError> {
    let bytes = std::fs::read(file).map_err(|e| ImportError::io(file, format!("cannot read: {e}")))?;
    parse(&bytes, file)
}

/// Parses the bytes of a safetensors file (`file` names it in errors).
pub fn parse(bytes: &[u8], file: &Path) -> Result<Tensors, ImportError> {
    let bad =
        |problem: String| ImportError::Checkpoint { file: file.to_path_buf(), key: "(safetensors)".into(), problem };
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("shorter than its 8-byte header length".into()))?;
    let header_len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|_| bad("header too long".into()))?;
    let data_start = header_len.checked_add(8).filter(|&e| e <= bytes.len());
    let data_start = data_start.ok_or_else(|| bad(format!("header of {header_len} bytes runs past the file")))?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..data_start]).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let data = &bytes[data_start..];
    let mut tensors = BTreeMap::new();
    for (name, value) in header {
        if name == "__metadata__" {
            continue;
        }
        let entry: Entry =
            serde_json::from_value(value).map_err(|e| bad(format!("tensor `{name}`: malformed header entry: {e}")))?;
        let [begin, end] = entry.data_offsets;
        let raw = data
            .get(begin..end)
            .filter(|_| begin <= end)
            .ok_or_else(|| bad(format!("tensor `{name}`: byte range {begin}..{end} outside the data")))?;
        let count: usize = entry.shape.iter().product();
        let values: Vec<f32> = match entry.dtype.as_str() {
            "F32" if raw.len() == count * 4 => {
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            "F64" if raw.len() == count * 8 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                .collect(),
            "F32" | "F64" => {
                return Err(bad(format!(
                    "tensor `{name}`: {} bytes for shape {:?} of {}",
                    raw.len(),
                    entry.shape,
                    entry.dtype
                )))
            }
            other => return Err(bad(format!("tensor `{name}`: dtype {other}, expected F32 or F64"))),
        };
        tensors.insert(name, Tensor { shape: entry.shape, values });
    }
    Ok(Tensors { file: file.to_path_buf(), tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_f32_and_skips_metadata() {
        let mut data = Vec::new();
        for v in [1.0f32, -2.5] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let h = r#"{"__metadata__":{"a":"b"},"x.mean":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let t = parse(&file(h, &data), Path::new("s.safetensors")).unwrap();
        assert_eq!(t.tensors["x.mean"].values, vec![1.0, -2.5]);
        assert_eq!(t.tensors["x.mean"].shape, vec![2]);
    }

    #[test]
    fn refuses_out_of_range_and_other_dtypes() {
        let h = r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#;
        let e = parse(&file(h, &[0; 8]), Path::new("s.safetensors")).unwrap_err().to_string();
        assert!(e.contains("outside the data"), "{e}");
        let h = r#"{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
        let e = parse(&file(h, &[0; 4]), Path::new("s.safetensors")).unwrap_err().to_string();
        assert!(e.contains("dtype BF16"), "{e}");
        let e = parse(&[1, 2], Path::new("s.safetensors")).unwrap_err().to_string();
        assert!(e.contains("s.safetensors"), "{e}");
    }
}
