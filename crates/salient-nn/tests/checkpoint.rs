//! Safetensors checkpoints: round trip, PyTorch layout, atomic writes, and clear errors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use salient_nn::{checkpoint, NnError, Param};

/// The device under test: Cpu, or Cuda with the `cuda` feature (needs a GPU).
#[cfg(not(feature = "cuda"))]
type Dev = Cpu;
#[cfg(feature = "cuda")]
type Dev = Cuda;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("salient-nn-ckpt-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn param(
    dev: &Dev,
    name: &str,
    shape: &[usize],
    to_torch: &[usize],
    values: Vec<f32>,
    trainable: bool,
) -> Param<Dev> {
    let n = values.len();
    Param {
        name: name.into(),
        shape: shape.to_vec(),
        to_torch: to_torch.to_vec(),
        value: dev.tensor_from_vec(values, (n,)),
        trainable,
    }
}

const K: usize = 3;
const CIN: usize = 2;
const COUT: usize = 4;
const IN: usize = 5;
const OUT: usize = 3;

/// Engine-layout conv weight value at (y, x, i, o).
fn conv_value(y: usize, x: usize, i: usize, o: usize) -> f32 {
    (1000 * o + 100 * i + 10 * y + x) as f32
}

/// Engine-layout dense weight value at (i, o).
fn dense_value(i: usize, o: usize) -> f32 {
    (100 * o + i) as f32
}

/// A small network's parameters with recognisable values: conv (k,k,cin,cout) -> torch
/// (cout,cin,k,k), dense (in,out) -> torch (out,in), a bias, a buffer and a 0-d tensor.
fn network(dev: &Dev) -> Vec<Param<Dev>> {
    let mut conv = Vec::new();
    for y in 0..K {
        for x in 0..K {
            for i in 0..CIN {
                for o in 0..COUT {
                    conv.push(conv_value(y, x, i, o));
                }
            }
        }
    }
    let mut dense = Vec::new();
    for i in 0..IN {
        for o in 0..OUT {
            dense.push(dense_value(i, o));
        }
    }
    vec![
        param(
            dev,
            "layers.0.weight",
            &[K, K, CIN, COUT],
            &[3, 2, 0, 1],
            conv,
            true,
        ),
        param(
            dev,
            "layers.0.bias",
            &[COUT],
            &[0],
            vec![0.5, -1.5, 2.5, -0.0],
            true,
        ),
        param(
            dev,
            "layers.1.running_var",
            &[COUT],
            &[0],
            vec![1.0, 2.0, 3.0, 4.0],
            false,
        ),
        param(dev, "layers.3.weight", &[IN, OUT], &[1, 0], dense, true),
        param(dev, "layers.3.scale", &[], &[], vec![7.25], true),
    ]
}

/// The same layout with every value zero (a freshly built network to load into).
fn zeroed(dev: &Dev, like: &[Param<Dev>]) -> Vec<Param<Dev>> {
    like.iter()
        .map(|p| {
            param(
                dev,
                &p.name,
                &p.shape,
                &p.to_torch,
                vec![0.0; p.numel()],
                p.trainable,
            )
        })
        .collect()
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn bits(p: &Param<Dev>) -> Vec<u32> {
    p.value.as_vec().iter().map(|v| v.to_bits()).collect()
}

fn checkpoint_error(result: Result<impl std::fmt::Debug, NnError>) -> String {
    match result {
        Err(e @ NnError::Checkpoint { .. }) => e.to_string(),
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn round_trip_is_bit_identical_with_metadata() {
    let dev = Dev::default();
    let dir = TempDir::new("roundtrip");
    let path = dir.path("model.safetensors");
    let mut params = network(&dev);
    // Special values must survive bit for bit: -0, subnormal, infinities, a NaN payload.
    params[3].value.copy_from(&[
        -0.0,
        f32::MIN_POSITIVE / 3.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234),
        f32::MAX,
        f32::EPSILON,
        1.0 / 3.0,
        -2.5e-30,
        6.0,
        7.0,
        8.0,
        9.0,
        10.0,
        11.0,
    ]);
    let metadata = meta(&[("ir", "{\"models\": []}"), ("hash", "abc123")]);
    checkpoint::save(&params, &path, &metadata).unwrap();

    let mut loaded = zeroed(&dev, &params);
    let read = checkpoint::load(&mut loaded, &path).unwrap();
    assert_eq!(read, metadata);
    assert_eq!(checkpoint::read_metadata(&path).unwrap(), metadata);
    for (a, b) in params.iter().zip(&loaded) {
        assert_eq!(bits(a), bits(b), "{}", a.name);
    }
}

/// The header's metadata comes from a `HashMap` inside `safetensors::serialize`, in an order
/// that changes from map to map; `save` rewrites it in key order, so that the same weights and
/// metadata always give the same bytes (a resumed run's checkpoint equals an uninterrupted
/// run's, `cmp` and all).
#[test]
fn the_same_content_gives_the_same_bytes() {
    let dev = Dev::default();
    let dir = TempDir::new("canonical");
    let params = network(&dev);
    let pairs: Vec<(String, String)> = (0..12)
        .map(|i| (format!("key{i:02}"), format!("value {i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let metadata = meta(&pairs);
    let first = dir.path("first.safetensors");
    checkpoint::save(&params, &first, &metadata).unwrap();
    let reference = std::fs::read(&first).unwrap();
    for i in 0..10 {
        let path = dir.path(&format!("again{i}.safetensors"));
        checkpoint::save(&params, &path, &metadata).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == reference,
            "save #{i} differs"
        );
    }
    let n = u64::from_le_bytes(reference[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&reference[8..8 + n]).unwrap();
    let positions: Vec<usize> = pairs
        .iter()
        .map(|(k, _)| header.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{header}");
    let mut loaded = zeroed(&dev, &params);
    assert_eq!(checkpoint::load(&mut loaded, &first).unwrap(), metadata);
}

#[test]
fn file_is_in_pytorch_layout() {
    let dev = Dev::default();
    let dir = TempDir::new("layout");
    let path = dir.path("model.safetensors");
    checkpoint::save(&network(&dev), &path, &BTreeMap::new()).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let floats = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let view = file.tensor(name).unwrap();
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (view.shape().to_vec(), data)
    };

    let (shape, conv) = floats("layers.0.weight");
    assert_eq!(shape, [COUT, CIN, K, K]);
    for o in 0..COUT {
        for i in 0..CIN {
            for y in 0..K {
                for x in 0..K {
                    let at = ((o * CIN + i) * K + y) * K + x;
                    assert_eq!(conv[at], conv_value(y, x, i, o), "[{o}][{i}][{y}][{x}]");
                }
            }
        }
    }
    let (shape, dense) = floats("layers.3.weight");
    assert_eq!(shape, [OUT, IN]);
    for o in 0..OUT {
        for i in 0..IN {
            assert_eq!(dense[o * IN + i], dense_value(i, o), "[{o}][{i}]");
        }
    }
    assert_eq!(
        floats("layers.0.bias"),
        (vec![COUT], vec![0.5, -1.5, 2.5, -0.0])
    );
    assert_eq!(floats("layers.1.running_var").0, [COUT]);
    assert_eq!(floats("layers.3.scale"), (vec![], vec![7.25]));
    assert_eq!(file.len(), 5);
}

/// The checkpoint read back by an independent implementation: the network is saved to a
/// temporary file and `tests/torch_layout.py` checks it with Python's `safetensors.numpy`
/// (PyTorch layout of every tensor, values, dtype, metadata).
///
/// Python: `$SALIENT_PYTHON` if set, else `bench/.venv/bin/python` (bench/setup.sh, plus
/// `pip install --no-deps -r crates/salient-nn/tests/requirements-layout.txt`), else `python3`;
/// the first one that imports safetensors and numpy. Without one the test cannot check
/// anything: under CI (`CI` set and not `false`/`0`) that is a failure (`.ci/run` installs
/// them); elsewhere the test prints `SKIPPED: ...` to stderr and passes.
#[test]
fn layout_fixture_for_python() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates: Vec<PathBuf> = std::env::var_os("SALIENT_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("bench/.venv/bin/python"),
            PathBuf::from("python3"),
        ])
        .collect();
    let usable = |py: &PathBuf| {
        std::process::Command::new(py)
            .args(["-c", "import safetensors.numpy, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let Some(python) = candidates.iter().find(|p| usable(p)) else {
        let why = format!(
            "no Python with safetensors and numpy (tried {}); run bench/setup.sh and \
             bench/.venv/bin/pip install --no-deps -r crates/salient-nn/tests/requirements-layout.txt, \
             or set SALIENT_PYTHON",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let ci = std::env::var("CI").unwrap_or_default();
        assert!(
            ci.is_empty() || ci == "false" || ci == "0",
            "layout_fixture_for_python cannot run under CI: {why}"
        );
        eprintln!("SKIPPED: layout_fixture_for_python checks nothing here: {why}");
        return;
    };
    let dev = Dev::default();
    let dir = TempDir::new("python");
    let path = dir.path("layout.safetensors");
    checkpoint::save(
        &network(&dev),
        &path,
        &meta(&[("written_by", "salient-nn tests")]),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torch_layout.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} {} failed:\n{stdout}\n{}",
        python.display(),
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
}

#[test]
fn save_replaces_atomically_and_leaves_no_temporary_file() {
    let dev = Dev::default();
    let dir = TempDir::new("atomic");
    let path = dir.path("model.safetensors");
    std::fs::write(&path, b"an older checkpoint").unwrap();
    let params = network(&dev);
    checkpoint::save(&params, &path, &meta(&[("epoch", "1")])).unwrap();
    checkpoint::save(&params, &path, &meta(&[("epoch", "2")])).unwrap();
    assert_eq!(
        checkpoint::read_metadata(&path).unwrap(),
        meta(&[("epoch", "2")])
    );
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
}

#[test]
fn save_into_a_missing_directory_is_an_error() {
    let dev = Dev::default();
    let dir = TempDir::new("nodir");
    let path = dir.path("no/such/dir/model.safetensors");
    let msg = checkpoint_error(checkpoint::save(&network(&dev), &path, &BTreeMap::new()));
    assert!(
        msg.contains("no/such/dir/model.safetensors") && msg.contains("cannot write"),
        "{msg}"
    );
}

#[test]
fn save_rejects_inconsistent_parameters() {
    let dev = Dev::default();
    let dir = TempDir::new("badparam");
    let path = dir.path("model.safetensors");

    let mut params = network(&dev);
    params[3].to_torch = vec![0, 0];
    let msg = checkpoint_error(checkpoint::save(&params, &path, &BTreeMap::new()));
    assert!(
        msg.contains("`layers.3.weight`") && msg.contains("permutation"),
        "{msg}"
    );

    let mut params = network(&dev);
    params[1].shape = vec![5];
    let msg = checkpoint_error(checkpoint::save(&params, &path, &BTreeMap::new()));
    assert!(
        msg.contains("`layers.0.bias`") && msg.contains("holds 4 values"),
        "{msg}"
    );

    let mut params = network(&dev);
    params[4].name = "layers.0.weight".into();
    let msg = checkpoint_error(checkpoint::save(&params, &path, &BTreeMap::new()));
    assert!(
        msg.contains("two parameters are named `layers.0.weight`"),
        "{msg}"
    );
    assert!(!path.exists(), "nothing may be written on error");
}

/// Saves the test network and returns (dir guard, path, fresh params to load into).
fn saved(test: &str) -> (TempDir, PathBuf, Vec<Param<Dev>>) {
    let dev = Dev::default();
    let dir = TempDir::new(test);
    let path = dir.path("model.safetensors");
    let params = network(&dev);
    checkpoint::save(&params, &path, &meta(&[("k", "v")])).unwrap();
    let fresh = zeroed(&dev, &params);
    (dir, path, fresh)
}

fn assert_untouched(params: &[Param<Dev>]) {
    for p in params {
        assert!(
            p.value.as_vec().iter().all(|&v| v == 0.0),
            "{} was modified by a failed load",
            p.name
        );
    }
}

#[test]
fn missing_file_is_an_error() {
    let (dir, _, mut fresh) = saved("missing");
    let path = dir.path("absent.safetensors");
    let msg = checkpoint_error(checkpoint::load(&mut fresh, &path));
    assert!(
        msg.contains("absent.safetensors") && msg.contains("not found"),
        "{msg}"
    );
    let msg = checkpoint_error(checkpoint::read_metadata(&path));
    assert!(msg.contains("not found"), "{msg}");
}

#[test]
fn truncated_or_foreign_files_are_errors() {
    let (_dir, path, mut fresh) = saved("truncated");
    let bytes = std::fs::read(&path).unwrap();
    for (cut, needle) in [
        (bytes.len() - 7, "truncated"), // tensor data cut short
        (bytes.len() / 3, "truncated"), // inside the header
        (5, "truncated"),               // not even the header size
        (0, "truncated"),
    ] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let msg = checkpoint_error(checkpoint::load(&mut fresh, &path));
        assert!(
            msg.contains("model.safetensors") && msg.contains("not a valid safetensors file"),
            "{msg}"
        );
        assert!(msg.contains(needle), "{cut} bytes: {msg}");
        assert!(checkpoint::read_metadata(&path).is_err());
        assert_untouched(&fresh);
    }
    std::fs::write(&path, b"this is a text file, not safetensors at all").unwrap();
    let msg = checkpoint_error(checkpoint::load(&mut fresh, &path));
    assert!(msg.contains("not a valid safetensors file"), "{msg}");
    assert_untouched(&fresh);
}

#[test]
fn missing_tensor_is_an_error_naming_it() {
    let (_dir, path, mut fresh) = saved("missing_tensor");
    let dev = Dev::default();
    fresh.push(param(
        &dev,
        "layers.5.bias",
        &[2],
        &[0],
        vec![0.0, 0.0],
        true,
    ));
    let msg = checkpoint_error(checkpoint::load(&mut fresh, &path));
    assert!(msg.contains("missing tensor `layers.5.bias`"), "{msg}");
    assert!(
        msg.contains("`layers.0.weight`"),
        "should list what the file has: {msg}"
    );
    assert_untouched(&fresh);
}

#[test]
fn renamed_parameter_is_reported_as_missing() {
    let (_dir, path, mut fresh) = saved("renamed");
    fresh[3].name = "layers.4.weight".into();
    let msg = checkpoint_error(checkpoint::load(&mut fresh, &path));
    assert!(msg.contains("missing tensor `layers.4.weight`"), "{msg}");
    assert_untouched(&fresh);
}

#[test]
fn wrong_shape_is_an_error_naming_the_tensor() {
    let (_dir, path, mut fresh) = saved("wrong_shape");
    let dev = Dev::default();
    // Same name, a network with 6 output channels.
    fresh[0] = param(
        &dev,
        "layers.0.weight",
        &[K, K, CIN, 6],
        &[3, 2, 0, 1],
        vec![0.0; K * K * CIN * 6],
        true,
    );
    let msg = checkpoint_error(checkpoint::load(&mut fresh, &path));
    assert!(
        msg.contains("tensor `layers.0.weight` has shape [4, 2, 3, 3]"),
        "{msg}"
    );
    assert!(msg.contains("[6, 2, 3, 3]"), "{msg}");
    assert_untouched(&fresh);
}

#[test]
fn unexpected_tensor_is_an_error() {
    let (_dir, path, mut fresh) = saved("unexpected");
    fresh.remove(2);
    let msg = checkpoint_error(checkpoint::load(&mut fresh, &path));
    assert!(
        msg.contains("does not have: `layers.1.running_var`"),
        "{msg}"
    );
    assert_untouched(&fresh);
}

/// Writes a safetensors file from (name, dtype, shape, raw bytes) entries.
fn write_raw(path: &Path, entries: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(&str, TensorView)> = entries
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta: Option<HashMap<String, String>> = None;
    std::fs::write(path, safetensors::serialize(views, &meta).unwrap()).unwrap();
}

#[test]
fn wrong_dtype_is_an_error() {
    let dev = Dev::default();
    let dir = TempDir::new("dtype");
    let path = dir.path("model.safetensors");
    let f64s: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(&path, &[("b", Dtype::F64, vec![2], f64s)]);
    let mut params = vec![param(&dev, "b", &[2], &[0], vec![0.0, 0.0], true)];
    let msg = checkpoint_error(checkpoint::load(&mut params, &path));
    assert!(
        msg.contains("tensor `b` has dtype F64, expected F32"),
        "{msg}"
    );
    assert_untouched(&params);
    assert!(checkpoint::read_metadata(&path).unwrap().is_empty());
}

#[test]
fn pytorch_batchnorm_counter_is_ignored() {
    // A state dict exported from PyTorch carries `num_batches_tracked` (int64, 0-d).
    let dev = Dev::default();
    let dir = TempDir::new("torch_export");
    let path = dir.path("model.safetensors");
    let weight: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_raw(
        &path,
        &[
            ("fc.weight", Dtype::F32, vec![3, 2], weight), // torch (out=3, in=2)
            (
                "bn.num_batches_tracked",
                Dtype::I64,
                vec![],
                7i64.to_le_bytes().to_vec(),
            ),
        ],
    );
    let mut params = vec![param(
        &dev,
        "fc.weight",
        &[2, 3],
        &[1, 0],
        vec![0.0; 6],
        true,
    )];
    checkpoint::load(&mut params, &path).unwrap();
    // engine (in, out): E[i][o] = T[o][i]
    assert_eq!(params[0].value.as_vec(), [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
}

#[test]
fn loading_keeps_the_parameter_identity() {
    // The loaded values are written into the existing tensors (same id), so gradients of a
    // graph built from the loaded params land where optimizers look for them.
    let (_dir, path, mut fresh) = saved("identity");
    let before = fresh[1].value.clone();
    checkpoint::load(&mut fresh, &path).unwrap();
    let loss = (fresh[1].value.retaped::<OwnedTape<f32, Dev>>() * 2.0).sum();
    let grads = loss.backward();
    // `before` shares the id of the loaded tensor, so its gradient is found.
    assert_eq!(grads.get(&before).as_vec(), [2.0; COUT]);
    assert_eq!(fresh[1].value.as_vec(), [0.5, -1.5, 2.5, -0.0]);
}
