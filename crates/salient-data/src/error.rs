//! Every way loading a dataset can fail. Each variant names the file (or directory) and says what
//! is wrong with it, so that the message alone is enough to fix the problem.

use std::io;
use std::path::PathBuf;

/// An error while locating, verifying or decoding a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The `DataSpec` itself is unusable (e.g. zero classes); the checker normally prevents this.
    #[error("invalid data spec: {0}")]
    Spec(String),

    /// The data directory does not exist.
    #[error("data directory {} does not exist (relative paths are relative to the current directory{})", .dir.display(), cwd_note())]
    NoDir { dir: PathBuf },

    /// None of the accepted names of a file exists.
    #[error("missing {what} in {}: looked for {}", .dir.display(), .names.join(", "))]
    Missing {
        /// What the file holds, e.g. "MNIST training images".
        what: String,
        dir: PathBuf,
        /// Every file name that would have been accepted, in order of preference.
        names: Vec<String>,
    },

    /// The operating system refused to read a file.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A `.gz` file is not a valid gzip stream (corrupt, truncated, or not gzip at all).
    #[error("{}: bad gzip stream: {source}", .path.display())]
    Gzip {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file is shorter than its header (or the format) requires.
    #[error("{}: truncated: expected {expected} bytes, found {actual}", .path.display())]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// A file is longer than its header says; the header or the data is wrong.
    #[error("{}: {actual} bytes, but its header describes {expected}: unexpected trailing data", .path.display())]
    TrailingData {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// An IDX file starts with the wrong magic number.
    #[error("{}: wrong magic number 0x{found:08x}, expected 0x{expected:08x} ({what}){}", .path.display(), gzip_hint(*.found))]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        /// What the expected magic means, e.g. "IDX unsigned-byte 3-d images".
        what: &'static str,
    },

    /// The image and label files of one split disagree on the number of examples.
    #[error("{} holds {n_images} images but {} holds {n_labels} labels", .images.display(), .labels.display())]
    CountMismatch {
        images: PathBuf,
        labels: PathBuf,
        n_images: usize,
        n_labels: usize,
    },

    /// A label is not below the declared number of classes.
    #[error("{}: example {index} has label {label}, but the data declares {classes} classes (labels 0..={})", .path.display(), .classes.saturating_sub(1))]
    LabelOutOfRange {
        path: PathBuf,
        /// 0-based index of the example within the file.
        index: usize,
        label: u8,
        classes: usize,
    },

    /// The images in a file do not have the shape the spec declares.
    #[error("{}: images are {found} (channels x height x width), but the data declares {declared}", .path.display())]
    ShapeMismatch {
        path: PathBuf,
        found: String,
        declared: String,
    },

    /// A CIFAR-10 binary file is not a whole number of 3073-byte records.
    #[error("{}: size {size} bytes is not a multiple of the 3073-byte CIFAR-10 record (1 label byte + 3x32x32 pixels): {} bytes left over", .path.display(), .size % 3073)]
    CifarSize { path: PathBuf, size: u64 },

    /// A data file holds no examples at all.
    #[error("{}: the file holds no examples", .path.display())]
    Empty { path: PathBuf },

    /// The spec asks for more examples than the data holds.
    #[error("the data asks for the first {requested} {split} examples, but {source_desc} holds only {available}")]
    TooFew {
        split: &'static str,
        requested: usize,
        available: usize,
        /// Where the examples come from (file names, or "the synthetic set").
        source_desc: String,
    },

    /// A file's SHA-256 differs from the one recorded for it.
    #[error("{}: checksum mismatch: SHA-256 is {actual}, expected {} (from {origin})", .path.display(), .expected.join(" or "))]
    Checksum {
        path: PathBuf,
        /// The accepted hashes (lower-case hex).
        expected: Vec<String>,
        actual: String,
        /// Where the expected hash comes from: a `SHA256SUMS` path or the built-in table.
        origin: String,
    },

    /// A `SHA256SUMS` file has a line that is not `<64 hex digits> <space><space or *><name>`.
    #[error("{}:{line}: malformed checksum line: {message}", .path.display())]
    SumsFormat {
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        message: String,
    },
}

/// The current directory, for messages about relative paths.
fn cwd_note() -> String {
    match std::env::current_dir() {
        Ok(dir) => format!(", here {}", dir.display()),
        Err(_) => String::new(),
    }
}

/// A hint when an IDX file turns out to be gzip data under a name without `.gz`.
fn gzip_hint(found: u32) -> &'static str {
    if found >> 16 == 0x1f8b {
        "; the file looks gzip-compressed: give it a .gz suffix"
    } else {
        ""
    }
}
