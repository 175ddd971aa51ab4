//! The IDX format of the MNIST family (LeCun et al., <http://yann.lecun.com/exdb/mnist/>).
//!
//! An IDX file is a big-endian header followed by the data:
//! - magic: two zero bytes, a type byte (`0x08` = unsigned byte), and the number of dimensions;
//!   so `0x00000803` for a stack of images (N, rows, cols) and `0x00000801` for labels (N);
//! - one big-endian `u32` per dimension;
//! - the data, row-major, `prod(dims)` bytes for unsigned bytes.
//!
//! A split is two files, `{prefix}-images-idx3-ubyte` and `{prefix}-labels-idx1-ubyte` with the
//! prefix `train` or `t10k`, each raw or gzip-compressed (`.gz`, preferred when both exist).

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::pixels::extend_unit;
use crate::source::Source;
use salient_ir::DataSpec;
use std::path::Path;

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The two splits as MNIST names them.
pub const TRAIN_PREFIX: &str = "train";
pub const TEST_PREFIX: &str = "t10k";

/// A parsed IDX file: its dimensions and a view of its data.
#[derive(Debug, PartialEq, Eq)]
pub struct Idx<'a> {
    pub dims: Vec<usize>,
    pub data: &'a [u8],
}

/// Parse an IDX file of unsigned bytes, requiring the magic number `magic` (whose low byte is
/// the number of dimensions) and a data length equal to the product of the dimensions.
pub fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &'static str,
) -> Result<Idx<'a>, DataError> {
    let truncated = |expected: u64| DataError::Truncated {
        path: path.to_path_buf(),
        expected,
        actual: bytes.len() as u64,
    };
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or_else(|| truncated(4))?;
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 * (1 + ndims);
    let dims = (1..=ndims)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| truncated(header as u64))?;
    // In u64 with overflow checks: a corrupt header must not wrap around or allocate.
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|payload| payload.checked_add(header as u64))
        .unwrap_or(u64::MAX);
    let actual = bytes.len() as u64;
    if actual < expected {
        return Err(truncated(expected));
    }
    if actual > expected {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    Ok(Idx {
        dims,
        data: &bytes[header..],
    })
}

/// Load one split (`prefix` = `train` or `t10k`), keeping the first `limit` examples.
pub fn load_split(
    src: &mut Source,
    spec: &DataSpec,
    prefix: &str,
    split: &'static str,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let stem_images = format!("{prefix}-images-idx3-ubyte");
    let stem_labels = format!("{prefix}-labels-idx1-ubyte");
    let images_name = src.find(
        &format!("{split} images"),
        &[format!("{stem_images}.gz"), stem_images],
    )?;
    let labels_name = src.find(
        &format!("{split} labels"),
        &[format!("{stem_labels}.gz"), stem_labels],
    )?;
    let images_path = src.path(&images_name);
    let labels_path = src.path(&labels_name);

    let image_bytes = src.read(&images_name)?;
    let images = parse(
        &images_path,
        &image_bytes,
        IMAGES_MAGIC,
        "IDX unsigned-byte 3-d images",
    )?;
    let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if n == 0 {
        return Err(DataError::Empty { path: images_path });
    }
    let shape = spec.shape;
    if shape.c != 1 || shape.h != rows || shape.w != cols {
        return Err(DataError::ShapeMismatch {
            path: images_path,
            found: format!("1x{rows}x{cols}"),
            declared: format!("{}x{}x{}", shape.c, shape.h, shape.w),
        });
    }

    let label_bytes = src.read(&labels_name)?;
    let labels = parse(
        &labels_path,
        &label_bytes,
        LABELS_MAGIC,
        "IDX unsigned-byte 1-d labels",
    )?;
    if labels.dims[0] != n {
        return Err(DataError::CountMismatch {
            images: images_path,
            labels: labels_path,
            n_images: n,
            n_labels: labels.dims[0],
        });
    }
    if let Some((index, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= spec.classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: labels_path,
            index,
            label,
            classes: spec.classes,
        });
    }

    let take = limit.unwrap_or(n);
    if take > n {
        return Err(DataError::TooFew {
            split,
            requested: take,
            available: n,
            source_desc: images_path.display().to_string(),
        });
    }
    let numel = rows * cols;
    let mut pixels = Vec::with_capacity(take * numel);
    extend_unit(&mut pixels, &images.data[..take * numel]);
    Ok(Dataset {
        images: pixels,
        labels: labels.data[..take].to_vec(),
        shape,
        classes: spec.classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn parses_a_well_formed_file() {
        let mut bytes = header(IMAGES_MAGIC, &[2, 2, 3]);
        bytes.extend(0..12u8);
        let idx = parse(Path::new("f"), &bytes, IMAGES_MAGIC, "").unwrap();
        assert_eq!(idx.dims, vec![2, 2, 3]);
        assert_eq!(idx.data, &(0..12u8).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn zero_examples_is_just_a_header() {
        let bytes = header(LABELS_MAGIC, &[0]);
        let idx = parse(Path::new("f"), &bytes, LABELS_MAGIC, "").unwrap();
        assert_eq!(idx.dims, vec![0]);
        assert!(idx.data.is_empty());
    }

    #[test]
    fn short_header_is_truncated_not_a_panic() {
        for len in 0..16 {
            let bytes = &header(IMAGES_MAGIC, &[1, 1, 1])[..len];
            match parse(Path::new("f"), bytes, IMAGES_MAGIC, "") {
                Err(DataError::Truncated {
                    expected, actual, ..
                }) => {
                    assert_eq!(actual, len as u64);
                    assert!(expected > actual);
                }
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn huge_dimensions_do_not_overflow() {
        let bytes = header(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX]);
        match parse(Path::new("f"), &bytes, IMAGES_MAGIC, "") {
            Err(DataError::Truncated { expected, .. }) => assert_eq!(expected, u64::MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut bytes = header(LABELS_MAGIC, &[2]);
        bytes.extend([1, 2, 3]);
        match parse(Path::new("f"), &bytes, LABELS_MAGIC, "") {
            Err(DataError::TrailingData {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (10, 11)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gzip_data_under_a_raw_name_gets_a_hint() {
        let bytes = [0x1f, 0x8b, 0x08, 0x08, 0, 0, 0, 0];
        let err = parse(Path::new("f"), &bytes, IMAGES_MAGIC, "images").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("0x1f8b0808") && msg.contains(".gz suffix"),
            "{msg}"
        );
    }
}
