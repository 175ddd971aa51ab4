//! Helpers shared by the integration tests: locating the project's data, building specs, and
//! writing small IDX / CIFAR files into temporary directories.
#![allow(dead_code)]

use flate2::write::GzEncoder;
use flate2::Compression;
use salient_data::DataError;
use salient_ir::{DataKind, DataSpec, ImageShape};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `data/mnist` of the repository (shipped with it).
pub fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

/// `shared/data/cifar10-sample` beside the repository, if present.
pub fn cifar_sample_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10-sample");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "NOTICE: skipping: CIFAR-10 sample not found at {} (expected shared/ beside the repository)",
            dir.display()
        );
        None
    }
}

pub fn spec(kind: DataKind, dir: &Path, shape: (usize, usize, usize), classes: usize) -> DataSpec {
    DataSpec {
        kind,
        dir: dir.to_string_lossy().into_owned(),
        train: None,
        test: None,
        mean: vec![0.0; shape.0],
        std: vec![1.0; shape.0],
        shape: ImageShape {
            c: shape.0,
            h: shape.1,
            w: shape.2,
        },
        classes,
    }
}

pub fn mnist_spec() -> DataSpec {
    spec(DataKind::Mnist, &mnist_dir(), (1, 28, 28), 10)
}

/// An IDX file: big-endian magic, dims, then data.
pub fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A small valid IDX set: `n` images of `h x w` (pixel = (i + y + x) mod 256) and labels
/// `i mod 3`, for both splits.
pub struct IdxSet {
    pub train_images: Vec<u8>,
    pub train_labels: Vec<u8>,
    pub test_images: Vec<u8>,
    pub test_labels: Vec<u8>,
}

impl IdxSet {
    pub fn new(n_train: u32, n_test: u32, h: u32, w: u32) -> Self {
        let images = |n: u32| {
            let data: Vec<u8> = (0..n)
                .flat_map(|i| (0..h * w).map(move |p| ((i + p / w + p % w) % 256) as u8))
                .collect();
            idx_bytes(0x803, &[n, h, w], &data)
        };
        let labels = |n: u32| {
            let data: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
            idx_bytes(0x801, &[n], &data)
        };
        IdxSet {
            train_images: images(n_train),
            train_labels: labels(n_train),
            test_images: images(n_test),
            test_labels: labels(n_test),
        }
    }

    /// Write the four files (gzip-compressed when `gz`) into `dir`.
    pub fn write(&self, dir: &Path, gz: bool) {
        for (name, bytes) in [
            ("train-images-idx3-ubyte", &self.train_images),
            ("train-labels-idx1-ubyte", &self.train_labels),
            ("t10k-images-idx3-ubyte", &self.test_images),
            ("t10k-labels-idx1-ubyte", &self.test_labels),
        ] {
            if gz {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

/// The spec of an [`IdxSet`] of `h x w` images in `dir`, 3 classes.
pub fn idx_spec(dir: &Path, h: usize, w: usize) -> DataSpec {
    spec(DataKind::Idx, dir, (1, h, w), 3)
}

/// `n` CIFAR records: label `labels[i % len]`, every byte of plane c = 10 * c + i.
pub fn cifar_records(n: usize, labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(labels[i % labels.len()]);
        for c in 0..3 {
            v.extend(std::iter::repeat_n((10 * c + i) as u8, 1024));
        }
    }
    v
}

pub fn cifar_spec(dir: &Path, train: &[&str], test: &[&str]) -> DataSpec {
    spec(
        DataKind::Cifar10 {
            train_files: train.iter().map(|s| s.to_string()).collect(),
            test_files: test.iter().map(|s| s.to_string()).collect(),
        },
        dir,
        (3, 32, 32),
        10,
    )
}

/// Load and expect an error; return it with its message.
pub fn load_err(spec: &DataSpec) -> (DataError, String) {
    match salient_data::load(spec) {
        Ok(_) => panic!("expected an error loading {spec:?}"),
        Err(e) => {
            let msg = e.to_string();
            (e, msg)
        }
    }
}

/// SHA-256 hex of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    salient_data::checksum::hex(&sha2::Sha256::digest(bytes))
}
