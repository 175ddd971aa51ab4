//! CIFAR-10 binary files: the real samples shipped in `data/cifar10-sample` (see
//! data/README.md) and small files written here. The samples are part of the repository, so
//! these tests never skip: a missing sample is a failure.

mod common;

use common::*;
use salient_data::load;

/// `data/cifar10-sample` of the repository; panics (fails the test) when it is absent.
fn sample_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar10-sample");
    assert!(
        dir.join("SHA256SUMS").is_file(),
        "the CIFAR-10 sample is missing: {} should be in the repository (data/README.md)",
        dir.display()
    );
    dir
}

/// Labels of the first 20 CIFAR-10 test images (data/README.md).
const FIRST20: [u8; 20] = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6];

fn px(rgb: [u8; 3]) -> [f32; 3] {
    rgb.map(|b| b as f32 / 255.0)
}

#[test]
fn first_test_images_load_with_their_labels_and_colours() {
    let dir = sample_dir();
    let s = load(&cifar_spec(
        &dir,
        &["test_batch_first20.bin"],
        &["test_batch_first20.bin"],
    ))
    .unwrap();
    assert_eq!(s.train.labels, FIRST20);
    assert_eq!(s.test.labels, FIRST20);
    assert_eq!(s.train.images.len(), 20 * 3072);
    // One file named in both lists is read (and recorded) once.
    assert_eq!(s.files.len(), 1);

    // Pixels decoded independently (Python: byte 1 + c*1024 + y*32 + x of each record).
    let at = |i: usize, y: usize, x: usize| -> [f32; 3] {
        let img = s.test.image(i);
        let o = (y * 32 + x) * 3;
        [img[o], img[o + 1], img[o + 2]]
    };
    assert_eq!(at(0, 0, 0), px([158, 112, 49]));
    assert_eq!(at(0, 10, 20), px([175, 165, 154]));
    assert_eq!(at(0, 31, 31), px([21, 67, 110]));
    assert_eq!(at(5, 16, 16), px([191, 154, 132]));
}

#[test]
fn cats_and_dogs_sample_as_one_file_for_both_splits() {
    let dir = sample_dir();
    let mut spec = cifar_spec(&dir, &["cats_dogs_2000.bin"], &["cats_dogs_2000.bin"]);
    spec.train = Some(1500);
    spec.test = Some(500);
    let s = load(&spec).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (1500, 500));
    let all = load(&cifar_spec(
        &dir,
        &["cats_dogs_2000.bin"],
        &["cats_dogs_2000.bin"],
    ))
    .unwrap();
    let counts = all.train.class_counts();
    assert_eq!((counts[3], counts[5]), (1000, 1000));
    assert_eq!(counts.iter().sum::<usize>(), 2000);
    assert_eq!(all.train.labels[..10], [5, 5, 5, 5, 5, 3, 5, 3, 3, 5]);
    // Both splits take their first N from the same records.
    assert_eq!(s.test, all.train.subset(500));
    let mean = all.train.channel_mean();
    assert!(mean.iter().all(|m| (0.2..0.8).contains(m)), "{mean:?}");
}

#[test]
fn several_files_are_concatenated_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.bin"), cifar_records(3, &[1])).unwrap();
    std::fs::write(tmp.path().join("b.bin"), cifar_records(2, &[2])).unwrap();
    let mut spec = cifar_spec(tmp.path(), &["a.bin", "b.bin"], &["b.bin"]);
    let s = load(&spec).unwrap();
    assert_eq!(s.train.labels, [1, 1, 1, 2, 2]);
    assert_eq!(s.test.labels, [2, 2]);
    // Record i of a file has every byte of plane c equal to 10 c + i.
    assert_eq!(&s.train.image(4)[..3], px([1, 11, 21]));
    assert_eq!(s.files.len(), 2);
    spec.train = Some(4);
    assert_eq!(load(&spec).unwrap().train.labels, [1, 1, 1, 2]);
    spec.train = Some(6);
    let (_, msg) = load_err(&spec);
    assert!(
        msg.contains("first 6 training") && msg.contains("only 5"),
        "{msg}"
    );
    assert!(msg.contains("a.bin + b.bin"), "{msg}");
}
