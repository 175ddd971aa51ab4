//! Every kind of bad input gives its own error naming the file and the problem, never a panic.
//! Each test writes a small valid set into a temp dir, breaks one thing, and loads it.

mod common;

use common::*;
use salient_data::{load, DataError};
use salient_ir::DataKind;
use std::path::Path;

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A valid raw set of 5 + 4 images of 3x4 in a fresh temp dir.
fn valid_set(gz: bool) -> (tempfile::TempDir, IdxSet) {
    let tmp = tempfile::tempdir().unwrap();
    let set = IdxSet::new(5, 4, 3, 4);
    set.write(tmp.path(), gz);
    (tmp, set)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn the_valid_set_loads_raw_and_gz_alike() {
    let (raw_dir, set) = valid_set(false);
    let (gz_dir, _) = valid_set(true);
    let raw = load(&idx_spec(raw_dir.path(), 3, 4)).unwrap();
    let gz = load(&idx_spec(gz_dir.path(), 3, 4)).unwrap();
    assert_eq!((raw.train.len(), raw.test.len()), (5, 4));
    assert_eq!(raw.train, gz.train);
    assert_eq!(raw.test, gz.test);
    assert_eq!(raw.train.labels, [0, 1, 2, 0, 1]);
    // Image 2, pixel (y=1, x=3): byte (2 + 1 + 3) = 6.
    assert_eq!(raw.train.image(2)[4 + 3], 6.0 / 255.0);
    assert_eq!(set.train_images.len(), 16 + 5 * 12);
}

#[test]
fn gz_is_preferred_when_both_exist() {
    let (tmp, set) = valid_set(false);
    // A .gz test-label file with other labels: the loader must use it.
    let labels = idx_bytes(0x801, &[4], &[2, 2, 2, 2]);
    write(tmp.path(), &format!("{TEST_LABELS}.gz"), &gzip(&labels));
    let s = load(&idx_spec(tmp.path(), 3, 4)).unwrap();
    assert_eq!(s.test.labels, [2, 2, 2, 2]);
    assert_eq!(s.files[3].name, format!("{TEST_LABELS}.gz"));
    drop(set);
}

#[test]
fn missing_file_lists_the_names_looked_for() {
    let (tmp, _) = valid_set(false);
    std::fs::remove_file(tmp.path().join(TEST_IMAGES)).unwrap();
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(matches!(e, DataError::Missing { .. }), "{msg}");
    assert!(
        msg.contains(&format!("{TEST_IMAGES}.gz, {TEST_IMAGES}")),
        "{msg}"
    );
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
}

#[test]
fn missing_directory_is_named() {
    let (e, msg) = load_err(&idx_spec(Path::new("/nonexistent/salient-data-dir"), 3, 4));
    assert!(matches!(e, DataError::NoDir { .. }), "{msg}");
    assert!(msg.contains("/nonexistent/salient-data-dir"), "{msg}");
}

#[test]
fn truncated_images_report_expected_and_actual_length() {
    let (tmp, set) = valid_set(false);
    let cut = &set.train_images[..set.train_images.len() - 7];
    write(tmp.path(), TRAIN_IMAGES, cut);
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    match e {
        DataError::Truncated {
            path,
            expected,
            actual,
        } => {
            assert!(path.ends_with(TRAIN_IMAGES));
            assert_eq!((expected, actual), (76, 69));
        }
        other => panic!("{other:?}"),
    }
    assert!(msg.contains("expected 76 bytes, found 69"), "{msg}");
}

#[test]
fn truncated_header_is_truncated_too() {
    let (tmp, _) = valid_set(false);
    write(tmp.path(), TRAIN_LABELS, &[0, 0, 8, 1, 0]);
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 8,
                actual: 5,
                ..
            }
        ),
        "{msg}"
    );
}

#[test]
fn trailing_bytes_are_an_error() {
    let (tmp, set) = valid_set(false);
    let mut long = set.test_labels.clone();
    long.push(0);
    write(tmp.path(), TEST_LABELS, &long);
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(
        matches!(
            e,
            DataError::TrailingData {
                expected: 12,
                actual: 13,
                ..
            }
        ),
        "{msg}"
    );
}

#[test]
fn flipped_magic_reports_found_and_expected() {
    let (tmp, set) = valid_set(false);
    let mut bad = set.train_images.clone();
    bad[3] = 0x01; // claims to be a 1-d label file
    write(tmp.path(), TRAIN_IMAGES, &bad);
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                found: 0x801,
                expected: 0x803,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("0x00000801") && msg.contains("0x00000803"),
        "{msg}"
    );
    assert!(msg.contains(TRAIN_IMAGES), "{msg}");
}

#[test]
fn gzip_data_without_gz_suffix_gets_a_hint() {
    let (tmp, set) = valid_set(false);
    write(tmp.path(), TRAIN_LABELS, &gzip(&set.train_labels));
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(matches!(e, DataError::BadMagic { .. }), "{msg}");
    assert!(msg.contains(".gz suffix"), "{msg}");
}

#[test]
fn bad_gzip_streams() {
    let (tmp, set) = valid_set(true);
    // Not gzip at all.
    write(tmp.path(), &format!("{TRAIN_IMAGES}.gz"), &set.train_images);
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(matches!(e, DataError::Gzip { .. }), "{msg}");
    assert!(
        msg.contains(&format!("{TRAIN_IMAGES}.gz: bad gzip stream")),
        "{msg}"
    );
    // A gzip stream cut short.
    let gz = gzip(&set.train_images);
    write(
        tmp.path(),
        &format!("{TRAIN_IMAGES}.gz"),
        &gz[..gz.len() / 2],
    );
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(matches!(e, DataError::Gzip { .. }), "{msg}");
    // A corrupted byte inside the deflate data (CRC or stream error).
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    write(tmp.path(), &format!("{TRAIN_IMAGES}.gz"), &flipped);
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(matches!(e, DataError::Gzip { .. }), "{msg}");
}

#[test]
fn label_count_must_equal_image_count() {
    let (tmp, _) = valid_set(false);
    write(tmp.path(), TEST_LABELS, &idx_bytes(0x801, &[3], &[0, 1, 2]));
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 4,
                n_labels: 3,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains(TEST_IMAGES) && msg.contains(TEST_LABELS),
        "{msg}"
    );
}

#[test]
fn labels_must_be_below_classes() {
    let (tmp, _) = valid_set(false);
    write(
        tmp.path(),
        TRAIN_LABELS,
        &idx_bytes(0x801, &[5], &[0, 1, 2, 3, 0]),
    );
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 3,
                label: 3,
                classes: 3,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(TRAIN_LABELS), "{msg}");
}

#[test]
fn dimensions_must_match_the_declared_shape() {
    let (tmp, _) = valid_set(false);
    let (e, msg) = load_err(&idx_spec(tmp.path(), 4, 3));
    assert!(matches!(e, DataError::ShapeMismatch { .. }), "{msg}");
    assert!(msg.contains("1x3x4") && msg.contains("1x4x3"), "{msg}");
    let mut rgb = idx_spec(tmp.path(), 3, 4);
    rgb.shape.c = 3;
    let (e, _) = load_err(&rgb);
    assert!(matches!(e, DataError::ShapeMismatch { .. }));
}

#[test]
fn an_empty_idx_file_is_an_error() {
    let (tmp, _) = valid_set(false);
    write(tmp.path(), TEST_IMAGES, &idx_bytes(0x803, &[0, 3, 4], &[]));
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(matches!(e, DataError::Empty { .. }), "{msg}");
}

#[test]
fn sha256sums_mismatch_names_file_expected_and_actual() {
    let (tmp, set) = valid_set(false);
    let good = sha256_hex(&set.test_labels);
    let wrong = "0".repeat(64);
    let sums = format!(
        "{}  {TRAIN_IMAGES}\n{wrong}  {TEST_LABELS}\n",
        sha256_hex(&set.train_images)
    );
    write(tmp.path(), "SHA256SUMS", sums.as_bytes());
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    match e {
        DataError::Checksum {
            path,
            expected,
            actual,
            origin,
        } => {
            assert!(path.ends_with(TEST_LABELS));
            assert_eq!(expected, std::slice::from_ref(&wrong));
            assert_eq!(actual, good);
            assert!(origin.ends_with("SHA256SUMS"));
        }
        other => panic!("{other:?}"),
    }
    assert!(msg.contains(&wrong) && msg.contains(&good), "{msg}");
    // With the right hash it loads (and unlisted files are not checked).
    let sums = format!("{good}  {TEST_LABELS}\n");
    write(tmp.path(), "SHA256SUMS", sums.as_bytes());
    assert!(load(&idx_spec(tmp.path(), 3, 4)).is_ok());
}

#[test]
fn a_malformed_sha256sums_is_reported_with_its_line() {
    let (tmp, _) = valid_set(false);
    write(tmp.path(), "SHA256SUMS", b"# ok\nnot a checksum line\n");
    let (e, msg) = load_err(&idx_spec(tmp.path(), 3, 4));
    assert!(matches!(e, DataError::SumsFormat { line: 2, .. }), "{msg}");
    assert!(msg.contains("SHA256SUMS:2"), "{msg}");
}

/// Under kind `mnist` the built-in table applies by file name: a file called
/// `train-images-idx3-ubyte.gz` that is not MNIST is rejected, even with no SHA256SUMS; the same
/// bytes under kind `idx` are fine.
#[test]
fn builtin_table_rejects_a_fake_mnist_file() {
    let tmp = tempfile::tempdir().unwrap();
    let set = IdxSet::new(5, 4, 28, 28);
    set.write(tmp.path(), true);
    let mnist = spec(DataKind::Mnist, tmp.path(), (1, 28, 28), 10);
    let (e, msg) = load_err(&mnist);
    match e {
        DataError::Checksum {
            expected, origin, ..
        } => {
            assert_eq!(expected.len(), 2, "shipped and original compressions");
            assert!(
                origin.contains("built-in") && origin.contains("MNIST"),
                "{origin}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
    let mut idx = mnist.clone();
    idx.kind = DataKind::Idx;
    assert!(load(&idx).is_ok());
}

#[test]
fn builtin_table_checks_the_cifar_samples_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "test_batch_first20.bin",
        &cifar_records(20, &[1]),
    );
    let (e, msg) = load_err(&cifar_spec(
        tmp.path(),
        &["test_batch_first20.bin"],
        &["test_batch_first20.bin"],
    ));
    assert!(matches!(e, DataError::Checksum { .. }), "{msg}");
    assert!(msg.contains("7a75c7f3d741a45b5f79cc341c8607a874c6f441de815b9d426ace5249b5c733"));
}

#[test]
fn cifar_size_must_be_whole_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = cifar_records(2, &[0]);
    bytes.truncate(2 * 3073 - 100);
    write(tmp.path(), "b.bin", &bytes);
    let (e, msg) = load_err(&cifar_spec(tmp.path(), &["b.bin"], &["b.bin"]));
    assert!(
        matches!(e, DataError::CifarSize { size: 6046, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("b.bin") && msg.contains("2973 bytes left over"),
        "{msg}"
    );
}

#[test]
fn cifar_empty_missing_and_bad_label() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "empty.bin", &[]);
    let (e, _) = load_err(&cifar_spec(tmp.path(), &["empty.bin"], &["empty.bin"]));
    assert!(matches!(e, DataError::Empty { .. }));

    write(tmp.path(), "ok.bin", &cifar_records(2, &[0]));
    let (e, msg) = load_err(&cifar_spec(tmp.path(), &["ok.bin"], &["test_batch.bin"]));
    assert!(matches!(e, DataError::Missing { .. }), "{msg}");
    assert!(msg.contains("test_batch.bin"), "{msg}");

    write(tmp.path(), "labels.bin", &cifar_records(3, &[9, 10]));
    let (e, msg) = load_err(&cifar_spec(tmp.path(), &["labels.bin"], &["ok.bin"]));
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{msg}"
    );

    let mut grey = cifar_spec(tmp.path(), &["ok.bin"], &["ok.bin"]);
    grey.shape.c = 1;
    let (e, _) = load_err(&grey);
    assert!(matches!(e, DataError::ShapeMismatch { .. }));
}

/// Random damage (byte flips, truncations, garbage) to any of the four files, raw or gz, never
/// panics: every outcome is a load or an error.
#[test]
fn random_damage_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let names = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];
    let set = IdxSet::new(5, 4, 3, 4);
    let pristine = tempfile::tempdir().unwrap();
    set.write(pristine.path(), false);
    set.write(pristine.path(), true);
    let root = tempfile::tempdir().unwrap();
    let (mut ok, mut errors) = (0, 0);
    for round in 0..120 {
        // A fresh directory per round: creating files is much cheaper than overwriting them.
        let dir = root.path().join(round.to_string());
        std::fs::create_dir(&dir).unwrap();
        let gz = round % 2 == 1;
        let suffix = if gz { ".gz" } else { "" };
        let damaged = names[rng.gen_range(0..4)];
        for name in names {
            let file = format!("{name}{suffix}");
            let mut bytes = std::fs::read(pristine.path().join(&file)).unwrap();
            if name == damaged {
                match rng.gen_range(0..3) {
                    0 => {
                        for _ in 0..rng.gen_range(1..4) {
                            let i = rng.gen_range(0..bytes.len());
                            bytes[i] ^= 1 << rng.gen_range(0..8);
                        }
                    }
                    1 => bytes.truncate(rng.gen_range(0..bytes.len())),
                    _ => bytes = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
                }
            }
            write(&dir, &file, &bytes);
        }
        match load(&idx_spec(&dir, 3, 4)) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                errors += 1;
            }
        }
    }
    // Most damage must be detected (a flipped pixel or label bit can still load).
    assert!(errors > 80, "ok {ok}, errors {errors}");
}
