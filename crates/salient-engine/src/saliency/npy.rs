//! A minimal NPY v1.0 writer (the format of `numpy.save`): `\x93NUMPY`, version 1.0, a
//! little-endian u16 header length, an ASCII dict header
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (n, h, w, c), }` padded with spaces and a
//! final newline so that the data starts at a multiple of 64 bytes, then the data, C order.
use std::io::Write;
use std::path::Path;

/// Element types this writer supports.
pub trait NpyElement: Copy {
    /// NumPy's type descriptor, e.g. `<f4`.
    const DESCR: &'static str;
    fn write_le(self, out: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for i64 {
    const DESCR: &'static str = "<i8";
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// The bytes of an NPY v1.0 file holding `data` with `shape` (C order).
/// `Err` when the shape does not match the data length.
pub fn encode<T: NpyElement>(data: &[T], shape: &[usize]) -> Result<Vec<u8>, String> {
    let numel: usize = shape.iter().product();
    if numel != data.len() {
        return Err(format!(
            "npy: shape {shape:?} holds {numel} values but {} were given",
            data.len()
        ));
    }
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        T::DESCR
    );
    // magic (6) + version (2) + header length (2) + header, ending in '\n', multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    if header.len() > u16::MAX as usize {
        return Err("npy: header too long for format 1.0".into());
    }
    let mut out = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        v.write_le(&mut out);
    }
    Ok(out)
}

/// Write `data` with `shape` to `path` (through a temporary file and a rename).
pub fn write<T: NpyElement>(path: &Path, data: &[T], shape: &[usize]) -> std::io::Result<()> {
    let bytes = encode(data, shape)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tmp = path.with_extension("npy.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.flush()?;
    }
    std::fs::rename(&tmp, path)
}
