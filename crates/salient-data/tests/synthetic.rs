//! The synthetic dataset: deterministic, balanced, and learnable by a linear rule.

mod common;

use common::*;
use salient_data::{load, Dataset, Splits};
use salient_ir::{DataKind, DataSpec};
use std::path::Path;

fn synthetic(
    shape: (usize, usize, usize),
    classes: usize,
    n: (usize, usize),
    noise: f32,
    seed: u64,
) -> DataSpec {
    spec(
        DataKind::Synthetic {
            train: n.0,
            test: n.1,
            noise,
            seed,
        },
        Path::new("unused"),
        shape,
        classes,
    )
}

/// Accuracy on `test` of the nearest-class-mean rule fitted on `train`: a linear classifier
/// (argmin ||x - m_k||^2 = argmax 2 m_k.x - ||m_k||^2).
fn nearest_mean_accuracy(train: &Dataset, test: &Dataset) -> f64 {
    let d = train.image_len();
    let mut means = vec![vec![0f64; d]; train.classes];
    let counts = train.class_counts();
    for i in 0..train.len() {
        let k = train.labels[i] as usize;
        for (m, &v) in means[k].iter_mut().zip(train.image(i)) {
            *m += v as f64 / counts[k] as f64;
        }
    }
    let correct = (0..test.len())
        .filter(|&i| {
            let x = test.image(i);
            let dist = |m: &Vec<f64>| -> f64 {
                m.iter().zip(x).map(|(a, &b)| (a - b as f64).powi(2)).sum()
            };
            let best = (0..means.len())
                .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                .unwrap();
            best == test.labels[i] as usize
        })
        .count();
    correct as f64 / test.len() as f64
}

fn load_ok(spec: &DataSpec) -> Splits {
    load(spec).unwrap()
}

#[test]
fn deterministic_from_the_seed() {
    let spec = synthetic((1, 28, 28), 10, (200, 50), 0.3, 7);
    let a = load_ok(&spec);
    let b = load_ok(&spec);
    assert_eq!(a, b);
    assert!(a.files.is_empty());
    let other = load_ok(&synthetic((1, 28, 28), 10, (200, 50), 0.3, 8));
    assert_ne!(a.train.images, other.train.images);
    assert_ne!(a.fingerprint, other.fingerprint);
    // The training set does not depend on the test size, and a prefix is a smaller set.
    let bigger = load_ok(&synthetic((1, 28, 28), 10, (300, 10), 0.3, 7));
    assert_eq!(bigger.train.subset(200), a.train);
    let mut limited = spec.clone();
    limited.train = Some(120);
    assert_eq!(load_ok(&limited).train, a.train.subset(120));
}

#[test]
fn balanced_and_in_range() {
    let s = load_ok(&synthetic((3, 8, 8), 7, (700, 71), 0.5, 1));
    assert_eq!(s.train.class_counts(), [100; 7]);
    let test_counts = s.test.class_counts();
    assert!(
        test_counts.iter().all(|&c| c == 10 || c == 11),
        "{test_counts:?}"
    );
    assert!(s.train.images.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(s.train.images.len(), 700 * 3 * 8 * 8);
}

#[test]
fn learnable_by_a_linear_rule() {
    for (shape, classes, noise) in [
        ((1, 28, 28), 10, 0.3),
        ((3, 8, 8), 5, 0.2),
        ((1, 6, 6), 3, 0.2),
    ] {
        let s = load_ok(&synthetic(shape, classes, (500, 200), noise, 11));
        let acc = nearest_mean_accuracy(&s.train, &s.test);
        eprintln!("{shape:?} x{classes}, noise {noise}: nearest-mean test accuracy {acc}");
        assert!(
            acc >= 0.9,
            "{shape:?} x{classes}, noise {noise}: accuracy {acc}"
        );
    }
}

#[test]
fn too_many_or_bad_noise_is_an_error() {
    let mut spec = synthetic((1, 4, 4), 2, (10, 10), 0.1, 0);
    spec.test = Some(11);
    let (_, msg) = load_err(&spec);
    assert!(
        msg.contains("first 11 test") && msg.contains("synthetic"),
        "{msg}"
    );
    let (_, msg) = load_err(&synthetic((1, 4, 4), 2, (10, 10), -1.0, 0));
    assert!(msg.contains("noise"), "{msg}");
    let (_, msg) = load_err(&synthetic((1, 4, 4), 0, (10, 10), 0.1, 0));
    assert!(msg.contains("classes"), "{msg}");
}
