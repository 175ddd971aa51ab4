//! The dataset fingerprint: one SHA-256 that changes whenever the loaded tensors could change.
//!
//! It hashes a canonical text:
//! ```text
//! salient-data fingerprint v1
//! kind <mnist|fashion_mnist|idx|cifar10|synthetic> [parameters]
//! shape <c>x<h>x<w>
//! classes <n>
//! train <n|all>
//! test <n|all>
//! file <name> <bytes> <sha256>      (one line per file read, in reading order)
//! ```
//! The per-file SHA-256 is the hash of the file's bytes computed while reading it, so the
//! fingerprint covers every byte read without hashing anything twice. The directory, the
//! normalisation mean/std and the `SHA256SUMS` file are left out: they do not change the data.

use crate::checksum::hex;
use crate::source::FileRecord;
use salient_ir::{DataKind, DataSpec};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Version of the canonical text; bump when its layout or the loaders' output changes.
const VERSION: u32 = 1;

/// The fingerprint of `spec` loaded from `files`.
pub fn fingerprint(spec: &DataSpec, files: &[FileRecord]) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "salient-data fingerprint v{VERSION}");
    let _ = match &spec.kind {
        DataKind::Mnist => writeln!(text, "kind mnist"),
        DataKind::FashionMnist => writeln!(text, "kind fashion_mnist"),
        DataKind::Idx => writeln!(text, "kind idx"),
        DataKind::Cifar10 {
            train_files,
            test_files,
        } => writeln!(
            text,
            "kind cifar10 train_files {:?} test_files {:?}",
            train_files, test_files
        ),
        DataKind::Synthetic {
            train,
            test,
            noise,
            seed,
        } => writeln!(
            text,
            "kind synthetic train {train} test {test} noise {:08x} seed {seed}",
            noise.to_bits()
        ),
    };
    let s = spec.shape;
    let _ = writeln!(text, "shape {}x{}x{}", s.c, s.h, s.w);
    let _ = writeln!(text, "classes {}", spec.classes);
    let count = |n: Option<usize>| n.map_or("all".to_string(), |n| n.to_string());
    let _ = writeln!(text, "train {}", count(spec.train));
    let _ = writeln!(text, "test {}", count(spec.test));
    for f in files {
        let _ = writeln!(text, "file {} {} {}", f.name, f.len, f.sha256);
    }
    hex(&Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use salient_ir::ImageShape;

    fn spec() -> DataSpec {
        DataSpec {
            kind: DataKind::Idx,
            dir: "a".into(),
            train: Some(10),
            test: None,
            mean: vec![0.0],
            std: vec![1.0],
            shape: ImageShape { c: 1, h: 2, w: 2 },
            classes: 3,
        }
    }

    fn file(h: &str) -> FileRecord {
        FileRecord {
            name: "f".into(),
            len: 4,
            sha256: h.into(),
        }
    }

    #[test]
    fn changes_with_data_not_with_dir_or_normalisation() {
        let base = fingerprint(&spec(), &[file("aa")]);
        assert_eq!(base.len(), 64);
        let mut moved = spec();
        moved.dir = "elsewhere".into();
        moved.mean = vec![0.5];
        assert_eq!(fingerprint(&moved, &[file("aa")]), base);
        assert_ne!(fingerprint(&spec(), &[file("ab")]), base);
        let mut fewer = spec();
        fewer.train = Some(9);
        assert_ne!(fingerprint(&fewer, &[file("aa")]), base);
        let mut other_kind = spec();
        other_kind.kind = DataKind::Mnist;
        assert_ne!(fingerprint(&other_kind, &[file("aa")]), base);
    }
}
