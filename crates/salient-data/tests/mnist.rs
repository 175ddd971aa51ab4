//! The real MNIST shipped in `data/mnist`: sizes, labels, pixels, gzip vs raw, subsets.

mod common;

use common::*;
use salient_data::{load, DataError};
use std::io::Read;
use std::time::Instant;

/// Label histograms of MNIST (decoded independently with Python's gzip module).
const TRAIN_COUNTS: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

#[test]
fn full_mnist_loads() {
    let t = Instant::now();
    let s = load(&mnist_spec()).expect("data/mnist loads");
    eprintln!(
        "full MNIST load (gz decode, checksums, u8->f32): {:?}",
        t.elapsed()
    );

    assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
    assert_eq!(s.train.images.len(), 60_000 * 784);
    assert_eq!(s.test.images.len(), 10_000 * 784);
    assert_eq!(s.train.class_counts(), TRAIN_COUNTS);
    assert_eq!(s.test.class_counts(), TEST_COUNTS);
    for d in [&s.train, &s.test] {
        let (lo, hi) = d
            .images
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert_eq!((lo, hi), (0.0, 1.0));
    }

    // First test image: a 7. Row 7 starts at column 6 with bytes 84 185 159 151 60 36 0.
    assert_eq!(s.test.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let first = s.test.image(0);
    let row7: Vec<f32> = first[7 * 28 + 6..7 * 28 + 13].to_vec();
    let want: Vec<f32> = [84u8, 185, 159, 151, 60, 36, 0]
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    assert_eq!(row7, want);
    assert_eq!(first[0], 0.0);
    let byte_sum: f32 = first.iter().map(|v| v * 255.0).sum();
    assert!((byte_sum - 18454.0).abs() < 0.5, "{byte_sum}");
    assert_eq!(s.train.labels[0], 5);

    // Four files, in reading order, with the hashes of data/mnist/SHA256SUMS.
    let names: Vec<&str> = s.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"
        ]
    );
    let sums = std::fs::read_to_string(mnist_dir().join("SHA256SUMS")).unwrap();
    for f in &s.files {
        assert!(sums.contains(&format!("{}  {}", f.sha256, f.name)), "{f:?}");
    }
    assert_eq!(s.fingerprint.len(), 64);
}

#[test]
fn subsets_are_prefixes_and_change_the_fingerprint() {
    let mut spec = mnist_spec();
    spec.train = Some(100);
    spec.test = Some(50);
    let small = load(&spec).unwrap();
    assert_eq!((small.train.len(), small.test.len()), (100, 50));
    spec.train = Some(200);
    let larger = load(&spec).unwrap();
    assert_eq!(larger.train.subset(100), small.train);
    assert_eq!(larger.test, small.test);
    assert_ne!(larger.fingerprint, small.fingerprint);
    // Same spec, same fingerprint.
    spec.train = Some(100);
    assert_eq!(load(&spec).unwrap().fingerprint, small.fingerprint);
}

#[test]
fn asking_for_more_than_the_files_hold_is_an_error() {
    let mut spec = mnist_spec();
    spec.test = Some(10_001);
    let (e, msg) = load_err(&spec);
    assert!(matches!(
        e,
        DataError::TooFew {
            requested: 10_001,
            available: 10_000,
            ..
        }
    ));
    assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");
}

#[test]
fn declared_shape_must_match_the_file() {
    let mut spec = mnist_spec();
    spec.shape.w = 27;
    let (e, msg) = load_err(&spec);
    assert!(matches!(e, DataError::ShapeMismatch { .. }), "{msg}");
    assert!(msg.contains("1x28x28") && msg.contains("1x28x27"), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
}

/// Decompressed copies of the four files load to exactly the same tensors, and pass the
/// built-in MNIST table's hashes of the raw files.
#[test]
fn raw_and_gz_are_equal() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let gz = std::fs::read(mnist_dir().join(format!("{name}.gz"))).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        std::fs::write(tmp.path().join(name), raw).unwrap();
    }
    let from_raw = load(&spec(
        salient_ir::DataKind::Mnist,
        tmp.path(),
        (1, 28, 28),
        10,
    ))
    .unwrap();
    let from_gz = load(&mnist_spec()).unwrap();
    assert_eq!(from_raw.train, from_gz.train);
    assert_eq!(from_raw.test, from_gz.test);
    assert!(from_raw.files.iter().all(|f| !f.name.ends_with(".gz")));
    // Different bytes on disk, so a different fingerprint.
    assert_ne!(from_raw.fingerprint, from_gz.fingerprint);
}
