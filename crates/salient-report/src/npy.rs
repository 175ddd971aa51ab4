//! NumPy `.npy` arrays (format versions 1.0-3.0), read as `f32`: the saved saliency maps
//! (float32, shape (n, H, W, C)), test images (float32 in [0, 1]) and labels (int64, int32,
//! uint8 or float). Only C-order arrays of little-endian (or single-byte) numbers are read.
//!
//! Layout: the magic `\x93NUMPY`, major and minor version bytes, the header length (u16 for
//! v1, u32 for v2/v3, little-endian), an ASCII/UTF-8 Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (8, 28, 28, 1), }` padded with spaces to
//! a multiple of 64 bytes and ending in `\n`, then the raw data.
use crate::error::ReportError;
use std::path::Path;

/// A dense array in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Array {
    /// Number of elements of one entry along the first axis (e.g. H*W*C for (n, H, W, C)).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The i-th entry along the first axis.
    pub fn row(&self, i: usize) -> &[f32] {
        let len = self.row_len();
        &self.data[i * len..(i + 1) * len]
    }
}

/// Read an `.npy` file.
pub fn read(path: &Path) -> Result<Array, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, e))?;
    parse(&bytes).map_err(|reason| ReportError::Npy {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parse the bytes of an `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<Array, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported format version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("the header is cut short")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let descr = dict_value(header, "descr")
        .and_then(quoted)
        .ok_or("the header has no 'descr' string")?;
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape = parse_shape(dict_value(header, "shape").ok_or("the header has no 'shape'")?)?;
    let count: usize = shape.iter().product();
    let body = &bytes[start + header_len..];
    let data = decode(descr, body, count)?;
    Ok(Array { shape, data })
}

/// The raw text after `'key':` in the header dict, up to the end of the header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// The string literal at the start of `text` (`'<f4', ...` gives `<f4`).
fn quoted(text: &str) -> Option<&str> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &text[1..];
    rest.find(quote).map(|end| &rest[..end])
}

fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.split(')').next())
        .ok_or("'shape' is not a tuple")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension {s:?} in 'shape'"))
        })
        .collect()
}

fn decode(descr: &str, body: &[u8], count: usize) -> Result<Vec<f32>, String> {
    let (width, convert): (usize, fn(&[u8]) -> f32) = match descr {
        "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "<f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap()) as f32),
        "<i8" => (8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f32),
        "<u8" => (8, |b| u64::from_le_bytes(b.try_into().unwrap()) as f32),
        "<i4" => (4, |b| i32::from_le_bytes(b.try_into().unwrap()) as f32),
        "<u4" => (4, |b| u32::from_le_bytes(b.try_into().unwrap()) as f32),
        "|u1" | "<u1" => (1, |b| b[0] as f32),
        "|i1" | "<i1" => (1, |b| b[0] as i8 as f32),
        other => {
            return Err(format!(
                "unsupported dtype {other:?} (expected little-endian float, int or uint8)"
            ))
        }
    };
    let need = count.checked_mul(width).ok_or("the shape is too large")?;
    if body.len() < need {
        return Err(format!(
            "expected {need} bytes of data for {count} values, found {}",
            body.len()
        ));
    }
    Ok(body[..need].chunks_exact(width).map(convert).collect())
}

/// Write a float32 array as NPY v1.0 (used by tests and fixtures; the run writes its own).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ReportError> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Pad so that magic (6) + version (2) + length (2) + header is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| ReportError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_hand_made_int64_file() {
        // What numpy.save writes for np.array([3, -1], dtype=np.int64).
        let mut header = String::from("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&3i64.to_le_bytes());
        bytes.extend_from_slice(&(-1i64).to_le_bytes());
        let a = parse(&bytes).unwrap();
        assert_eq!(a.shape, [2]);
        assert_eq!(a.data, [3.0, -1.0]);
    }

    #[test]
    fn write_then_read_round_trips() {
        let path =
            std::env::temp_dir().join(format!("salient-report-npy-{}.npy", std::process::id()));
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_f32(&path, &[2, 3, 4, 1], &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // The data starts on a 64-byte boundary, as the format requires.
        assert_eq!((bytes.len() - data.len() * 4) % 64, 0);
        let a = read(&path).unwrap();
        assert_eq!(a.shape, [2, 3, 4, 1]);
        assert_eq!(a.row_len(), 12);
        assert_eq!(a.row(1)[0], data[12]);
        assert_eq!(a.data, data);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        assert!(parse(b"hello").unwrap_err().contains("magic"));
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n";
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        assert!(parse(&bytes).unwrap_err().contains("unsupported dtype"));
        let truncated = {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n";
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(&[0; 8]);
            b
        };
        assert!(parse(&truncated).unwrap_err().contains("expected 16 bytes"));
    }
}
