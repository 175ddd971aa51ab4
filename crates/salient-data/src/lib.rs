//! salient-data: the datasets of an experiment, loaded into memory as `[0, 1]` floats.
//!
//! [`load`] turns a checked [`DataSpec`] into training and test [`Dataset`]s:
//! - MNIST, Fashion-MNIST and any MNIST-shaped set from IDX files, raw or gzip ([`idx`]);
//! - CIFAR-10 from its binary batch files ([`cifar`]);
//! - a seeded synthetic set for tests ([`synthetic`]).
//!
//! Every file is read once, hashed while in memory, and checked against the directory's
//! `SHA256SUMS` and a built-in table of known files ([`checksum`]); the hashes make up the
//! [`Splits::fingerprint`]. Bad files give a [`DataError`] naming the file and the problem.
//!
//! Images are channels-last `(N, H, W, C)` with pixels `byte / 255`; normalisation
//! `(x - mean) / std` belongs to the model, so attack budgets stay in pixel units.
//!
//! [`epoch_order`] and [`batches`] give the seeded, machine-independent visiting order.
//! The formats and rules are documented in `docs/data.md`.

pub mod checksum;
pub mod cifar;
mod dataset;
mod error;
mod fingerprint;
pub mod idx;
mod order;
mod pixels;
mod source;
pub mod synthetic;

pub use dataset::{Dataset, Splits};
pub use error::DataError;
pub use order::{batches, epoch_order, num_batches};
pub use source::FileRecord;

use checksum::Family;
use salient_ir::{DataKind, DataSpec};
use source::Source;
use std::path::Path;
use synthetic::SyntheticSpec;

/// Load both splits of the dataset `spec` describes.
///
/// Relative `spec.dir` paths are relative to the current directory. `spec.train` / `spec.test`
/// keep the first N examples of each split (an error if the data holds fewer).
pub fn load(spec: &DataSpec) -> Result<Splits, DataError> {
    check_spec(spec)?;
    let (train, test, files) = match &spec.kind {
        DataKind::Mnist => load_idx(spec, Family::Mnist)?,
        DataKind::FashionMnist => load_idx(spec, Family::FashionMnist)?,
        DataKind::Idx => load_idx(spec, Family::Unknown)?,
        DataKind::Cifar10 {
            train_files,
            test_files,
        } => {
            let mut src = Source::open(Path::new(&spec.dir), Family::Cifar10)?;
            let (train, test) = cifar::load(&mut src, spec, train_files, test_files)?;
            (train, test, src.records().to_vec())
        }
        DataKind::Synthetic {
            train,
            test,
            noise,
            seed,
        } => {
            let syn = SyntheticSpec {
                shape: spec.shape,
                classes: spec.classes,
                noise: *noise,
                seed: *seed,
            };
            syn.validate()?;
            let n_train = take(spec.train, *train, "training")?;
            let n_test = take(spec.test, *test, "test")?;
            let templates = syn.templates();
            let train = syn.examples(&templates, n_train, 1);
            let test = syn.examples(&templates, n_test, 2);
            (train, test, Vec::new())
        }
    };
    Ok(Splits {
        train,
        test,
        fingerprint: fingerprint::fingerprint(spec, &files),
        files,
    })
}

/// Both IDX splits from `spec.dir`, training files first.
fn load_idx(
    spec: &DataSpec,
    family: Family,
) -> Result<(Dataset, Dataset, Vec<FileRecord>), DataError> {
    let mut src = Source::open(Path::new(&spec.dir), family)?;
    let train = idx::load_split(&mut src, spec, idx::TRAIN_PREFIX, "training", spec.train)?;
    let test = idx::load_split(&mut src, spec, idx::TEST_PREFIX, "test", spec.test)?;
    Ok((train, test, src.records().to_vec()))
}

/// The number of synthetic examples to generate: `limit` if given (at most `available`).
fn take(limit: Option<usize>, available: usize, split: &'static str) -> Result<usize, DataError> {
    match limit {
        Some(n) if n > available => Err(DataError::TooFew {
            split,
            requested: n,
            available,
            source_desc: "the synthetic set".into(),
        }),
        Some(n) => Ok(n),
        None => Ok(available),
    }
}

/// Reject specs no loader can honour (the checker normally prevents these).
fn check_spec(spec: &DataSpec) -> Result<(), DataError> {
    let s = spec.shape;
    if s.numel() == 0 {
        return Err(DataError::Spec(format!(
            "image shape {}x{}x{} has no pixels",
            s.c, s.h, s.w
        )));
    }
    if spec.classes == 0 || spec.classes > 256 {
        return Err(DataError::Spec(format!(
            "classes must be in 1..=256 (labels are bytes), got {}",
            spec.classes
        )));
    }
    Ok(())
}
