//! Reading the files of one data directory: locate, read once, hash, verify, decompress.
//!
//! Every file goes through [`Source::read`], which reads it into memory in one pass, computes its
//! SHA-256 from those same bytes (no second read), checks the hash against the directory's
//! `SHA256SUMS` and the built-in table, records it for the dataset fingerprint, and finally
//! inflates it if its name ends in `.gz`.

use crate::checksum::{hex, Family, Sha256Sums, SUMS_FILE};
use crate::error::DataError;
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A file that was read: what the fingerprint is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// File name within the data directory.
    pub name: String,
    /// Size on disk in bytes (compressed size for `.gz`).
    pub len: u64,
    /// Lower-case hex SHA-256 of the bytes on disk.
    pub sha256: String,
}

/// One data directory being read.
pub struct Source {
    dir: PathBuf,
    family: Family,
    sums: Option<Sha256Sums>,
    records: Vec<FileRecord>,
}

impl Source {
    /// Open `dir` (which must exist) and read its `SHA256SUMS`, if it has one.
    pub fn open(dir: &Path, family: Family) -> Result<Self, DataError> {
        if !dir.is_dir() {
            return Err(DataError::NoDir {
                dir: dir.to_path_buf(),
            });
        }
        let sums_path = dir.join(SUMS_FILE);
        let sums = match std::fs::read_to_string(&sums_path) {
            Ok(text) => Some(Sha256Sums::parse(&sums_path, &text)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(DataError::Io {
                    path: sums_path,
                    source,
                })
            }
        };
        Ok(Source {
            dir: dir.to_path_buf(),
            family,
            sums,
            records: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Full path of a file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The first of `names` that exists in the directory, else a [`DataError::Missing`] listing
    /// all of them.
    pub fn find(&self, what: &str, names: &[String]) -> Result<String, DataError> {
        names
            .iter()
            .find(|n| self.path(n).is_file())
            .cloned()
            .ok_or_else(|| DataError::Missing {
                what: what.to_string(),
                dir: self.dir.clone(),
                names: names.to_vec(),
            })
    }

    /// Read `name`, verify its checksums, record it, and return its content (inflated if the
    /// name ends in `.gz`).
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, DataError> {
        let path = self.path(name);
        let raw = read_file(&path)?;
        let sha256 = hex(&Sha256::digest(&raw));
        self.verify(name, &path, &sha256)?;
        self.records.push(FileRecord {
            name: name.to_string(),
            len: raw.len() as u64,
            sha256,
        });
        if name.ends_with(".gz") {
            gunzip(&path, &raw)
        } else {
            Ok(raw)
        }
    }

    /// Every file read so far, in order.
    pub fn records(&self) -> &[FileRecord] {
        &self.records
    }

    /// Compare `actual` with the `SHA256SUMS` entry and the built-in entry for `name`.
    fn verify(&self, name: &str, path: &Path, actual: &str) -> Result<(), DataError> {
        if let Some(expected) = self.sums.as_ref().and_then(|s| s.get(name)) {
            if expected != actual {
                return Err(DataError::Checksum {
                    path: path.to_path_buf(),
                    expected: vec![expected.to_string()],
                    actual: actual.to_string(),
                    origin: self
                        .sums
                        .as_ref()
                        .map(|s| s.path.display().to_string())
                        .unwrap_or_default(),
                });
            }
        }
        let base = Path::new(name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(name);
        if let Some(known) = self.family.known(base) {
            if !known.sha256.contains(&actual) {
                return Err(DataError::Checksum {
                    path: path.to_path_buf(),
                    expected: known.sha256.iter().map(|h| h.to_string()).collect(),
                    actual: actual.to_string(),
                    origin: self.family.table_name().to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Read a whole file into memory in one pass.
fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(io_err)?;
    Ok(bytes)
}

/// Inflate a (possibly multi-member) gzip stream.
fn gunzip(path: &Path, compressed: &[u8]) -> Result<Vec<u8>, DataError> {
    // The last 4 bytes of a gzip member hold the uncompressed size mod 2^32: a capacity hint only,
    // bounded so that a corrupt trailer cannot request an absurd allocation.
    let hint = compressed
        .len()
        .checked_sub(4)
        .and_then(|at| compressed.get(at..))
        .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize)
        .unwrap_or(0)
        .min(compressed.len().saturating_mul(64).max(1 << 16))
        .min(1 << 30);
    let mut out = Vec::with_capacity(hint);
    MultiGzDecoder::new(compressed)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}
