//! The CIFAR-10 binary format (Krizhevsky 2009, <https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! A file is a sequence of 3073-byte records: one label byte (0-9), then the 32x32 image as three
//! colour planes, red, green, blue, each 1024 bytes in row-major order. The official set is
//! `data_batch_1.bin` .. `data_batch_5.bin` (10,000 records each) and `test_batch.bin`.
//!
//! Records are converted to channels-last, `(h, w, c)`: pixel `(y, x)` of channel `c` comes from
//! byte `1 + c * 1024 + y * 32 + x` of its record.

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::pixels::unit;
use crate::source::Source;
use salient_ir::{DataSpec, ImageShape};
use std::collections::HashMap;

/// Height and width of a CIFAR-10 image.
pub const SIDE: usize = 32;
/// Bytes of one colour plane.
pub const PLANE: usize = SIDE * SIDE;
/// Bytes of one record: a label byte and three planes.
pub const RECORD: usize = 1 + 3 * PLANE;
/// The only shape CIFAR-10 files hold.
pub const SHAPE: ImageShape = ImageShape {
    c: 3,
    h: SIDE,
    w: SIDE,
};

/// Load the training and test splits from the files the spec lists. A file named in both lists
/// (or twice in one) is read, hashed and checked once.
pub fn load(
    src: &mut Source,
    spec: &DataSpec,
    train_files: &[String],
    test_files: &[String],
) -> Result<(Dataset, Dataset), DataError> {
    if spec.shape != SHAPE {
        return Err(DataError::ShapeMismatch {
            path: src.dir().to_path_buf(),
            found: "3x32x32".into(),
            declared: format!("{}x{}x{}", spec.shape.c, spec.shape.h, spec.shape.w),
        });
    }
    for (list, split) in [(train_files, "training"), (test_files, "test")] {
        if list.is_empty() {
            return Err(DataError::Spec(format!(
                "cifar10 needs at least one {split} file"
            )));
        }
    }
    // Read every distinct file once, in order of first mention.
    let mut contents: HashMap<&str, Vec<u8>> = HashMap::new();
    for name in train_files.iter().chain(test_files) {
        if !contents.contains_key(name.as_str()) {
            let found = src.find("CIFAR-10 batch file", std::slice::from_ref(name))?;
            let bytes = src.read(&found)?;
            check_file(src, name, &bytes, spec.classes)?;
            contents.insert(name.as_str(), bytes);
        }
    }
    let train = assemble(&contents, train_files, spec.train, spec.classes, "training")?;
    let test = assemble(&contents, test_files, spec.test, spec.classes, "test")?;
    Ok((train, test))
}

/// Size and label checks of one file's content.
fn check_file(src: &Source, name: &str, bytes: &[u8], classes: usize) -> Result<(), DataError> {
    let path = src.path(name);
    if bytes.is_empty() {
        return Err(DataError::Empty { path });
    }
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::CifarSize {
            path,
            size: bytes.len() as u64,
        });
    }
    let bad = bytes
        .chunks_exact(RECORD)
        .enumerate()
        .find(|(_, r)| r[0] as usize >= classes);
    if let Some((index, record)) = bad {
        return Err(DataError::LabelOutOfRange {
            path,
            index,
            label: record[0],
            classes,
        });
    }
    Ok(())
}

/// Concatenate the records of `files` (already read and checked) and keep the first `limit`.
fn assemble(
    contents: &HashMap<&str, Vec<u8>>,
    files: &[String],
    limit: Option<usize>,
    classes: usize,
    split: &'static str,
) -> Result<Dataset, DataError> {
    let available: usize = files
        .iter()
        .map(|f| contents[f.as_str()].len() / RECORD)
        .sum();
    let take = limit.unwrap_or(available);
    if take > available {
        return Err(DataError::TooFew {
            split,
            requested: take,
            available,
            source_desc: files.join(" + "),
        });
    }
    let records = files
        .iter()
        .flat_map(|f| contents[f.as_str()].chunks_exact(RECORD))
        .take(take);
    let mut images = Vec::with_capacity(take * 3 * PLANE);
    let mut labels = Vec::with_capacity(take);
    for record in records {
        labels.push(record[0]);
        push_channels_last(&mut images, &record[1..]);
    }
    Ok(Dataset {
        images,
        labels,
        shape: SHAPE,
        classes,
    })
}

/// Append one image given as R, G, B planes in channels-last order.
fn push_channels_last(out: &mut Vec<f32>, planes: &[u8]) {
    let (r, rest) = planes.split_at(PLANE);
    let (g, b) = rest.split_at(PLANE);
    for i in 0..PLANE {
        out.extend([unit(r[i]), unit(g[i]), unit(b[i])]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_become_channels_last() {
        let mut planes = vec![0u8; 3 * PLANE];
        // Pixel (y=1, x=2): R=10, G=20, B=30.
        let at = 32 + 2;
        planes[at] = 10;
        planes[PLANE + at] = 20;
        planes[2 * PLANE + at] = 30;
        let mut out = Vec::new();
        push_channels_last(&mut out, &planes);
        assert_eq!(out.len(), 3 * PLANE);
        let px = &out[at * 3..at * 3 + 3];
        assert_eq!(px, [unit(10), unit(20), unit(30)]);
        assert_eq!(out.iter().filter(|&&v| v != 0.0).count(), 3);
    }
}
