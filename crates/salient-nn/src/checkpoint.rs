//! Safetensors checkpoints of a network's parameters, in PyTorch's layout.
//!
//! [`save`] writes every [`Param`] (trainable parameters and buffers alike) as an F32 tensor
//! named by its PyTorch state-dict name and permuted into PyTorch's layout (`to_torch`), so
//! `safetensors.torch.load_file(path)` gives a state dict the equivalent `nn.Module` loads
//! directly. String metadata (the engine stores the IR and a spec+data hash there) goes in
//! the safetensors header's `__metadata__`. The file is written to a temporary sibling,
//! synced and renamed over `path`, so a killed run leaves either the old file or the new one,
//! never half of one.
//!
//! [`load`] is the inverse: it checks that every parameter is present with PyTorch's shape and
//! F32 dtype and that the file holds nothing else, and only then writes the values (inverse
//! permutation) into the parameters; on any error the parameters are left untouched. Errors
//! ([`NnError::Checkpoint`]) name the file and, where one is at fault, the tensor.

mod layout;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dfdx::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::{NnError, Param};

/// PyTorch's BatchNorm keeps this buffer, which has no counterpart here; a file holding it
/// (exported from PyTorch) still loads.
const IGNORED_SUFFIX: &str = "num_batches_tracked";

fn error(path: &Path, reason: impl Into<String>) -> NnError {
    NnError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Checks a parameter's own consistency: `to_torch` permutes `shape`, the value has
/// `numel()` elements.
fn check_param<D: Device<f32>>(path: &Path, p: &Param<D>) -> Result<(), NnError> {
    layout::check_permutation(&p.to_torch, p.shape.len())
        .map_err(|e| error(path, format!("parameter `{}`: to_torch {e}", p.name)))?;
    let len = p.value.shape().0;
    if len != p.numel() {
        return Err(error(
            path,
            format!(
                "parameter `{}` holds {len} values but its shape {:?} has {}",
                p.name,
                p.shape,
                p.numel()
            ),
        ));
    }
    Ok(())
}

/// Checks that no two parameters share a name (a safetensors file is keyed by name).
fn check_unique_names<D: Device<f32>>(path: &Path, params: &[Param<D>]) -> Result<(), NnError> {
    let mut seen = BTreeSet::new();
    for p in params {
        if !seen.insert(p.name.as_str()) {
            return Err(error(
                path,
                format!("two parameters are named `{}`", p.name),
            ));
        }
    }
    Ok(())
}

/// Writes `params` (PyTorch layout, F32) and `metadata` to `path` atomically.
pub fn save<D: Device<f32>>(
    params: &[Param<D>],
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<(), NnError> {
    check_unique_names(path, params)?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(params.len());
    for p in params {
        check_param(path, p)?;
        let torch = layout::permute(&p.value.as_vec(), &p.shape, &p.to_torch);
        let bytes = torch.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((p.name.clone(), p.torch_shape(), bytes));
    }
    write_tensors(path, &tensors, metadata)
}

/// Writes flat F32 tensors by name (no layout: e.g. an optimizer's state, keyed as
/// `Optimizer::state` keys it) and `metadata` to `path` atomically, as [`save`] writes a
/// network.
pub fn save_flat(
    path: &Path,
    tensors: &BTreeMap<String, Vec<f32>>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), NnError> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, v)| {
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.clone(), vec![v.len()], bytes)
        })
        .collect();
    write_tensors(path, &tensors, metadata)
}

/// Reads a file written by [`save_flat`]: every tensor (F32, any shape) flattened, by name,
/// and the metadata.
#[allow(clippy::type_complexity)]
pub fn load_flat(
    path: &Path,
) -> Result<(BTreeMap<String, Vec<f32>>, BTreeMap<String, String>), NnError> {
    let bytes = read_file(path)?;
    let file = parse(path, &bytes)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(error(
                path,
                format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        tensors.insert(name, f32s(view.data()));
    }
    Ok((tensors, metadata_of(path, &bytes)?))
}

/// Little-endian F32 bytes as values.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Serialize `(name, shape, F32 bytes)` tensors with `metadata` (header in key order, see
/// [`canonical_header`]) and write them to `path` atomically.
fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), NnError> {
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.as_str(), view))
                .map_err(|e| error(path, format!("tensor `{name}`: {}", describe(&e))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let header: Option<HashMap<String, String>> = if metadata.is_empty() {
        None
    } else {
        Some(metadata.clone().into_iter().collect())
    };
    let bytes = safetensors::serialize(views, &header)
        .map_err(|e| error(path, format!("cannot serialize: {}", describe(&e))))?;
    write_atomically(path, &canonical_header(bytes))
}

/// The same safetensors file with its JSON header's keys in order. `safetensors::serialize`
/// writes the metadata from a `HashMap`, whose order changes from process to process, so two
/// saves of the same weights and metadata differed in the header's bytes; with the keys
/// sorted (`serde_json`'s map is ordered by key) the file is a function of its content, and a
/// run resumed from an epoch checkpoint writes a file byte-identical to an uninterrupted run's.
/// The header keeps its length (the same keys and values, compact), padded with spaces as
/// safetensors pads it; if anything does not parse, the bytes are returned unchanged.
fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
    else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8 + len) else {
        return bytes;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return bytes;
    };
    let Ok(sorted) = serde_json::to_vec(&value) else {
        return bytes;
    };
    if sorted.len() <= len {
        let slot = &mut bytes[8..8 + len];
        slot[..sorted.len()].copy_from_slice(&sorted);
        slot[sorted.len()..].fill(b' ');
    }
    bytes
}

/// Distinguishes temporary files of concurrent saves within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to a hidden temporary file beside `path`, syncs it, and renames it over
/// `path` (atomic on POSIX file systems); the temporary file is removed on failure.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    let name = path
        .file_name()
        .ok_or_else(|| error(path, "the path does not name a file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(error(path, format!("cannot write: {e}")));
    }
    // Make the rename itself durable; not every platform can sync a directory, and the
    // checkpoint is complete either way, so a failure here is not an error.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a whole checkpoint file, with a clear error for a missing or unreadable file.
fn read_file(path: &Path) -> Result<Vec<u8>, NnError> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => error(path, "file not found"),
        _ => error(path, format!("cannot read: {e}")),
    })
}

/// A readable account of a safetensors parse error.
fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => {
            "shorter than the 8-byte header size (truncated, or not a safetensors file)".into()
        }
        SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooLarge => {
            "the header size at the start exceeds the file (truncated, or not a safetensors file)"
                .into()
        }
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not safetensors JSON (corrupt, or not a safetensors file)".into()
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensor data does not match the header's offsets (truncated or corrupt file)".into()
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor `{name}` has invalid data offsets (corrupt file)")
        }
        SafeTensorError::TensorInvalidInfo | SafeTensorError::ValidationOverflow => {
            "a tensor's shape, dtype and offsets disagree (corrupt file)".into()
        }
        other => format!("{other:?}"),
    }
}

/// Parses `bytes` as safetensors, naming the file in the error.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>, NnError> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        error(
            path,
            format!("not a valid safetensors file: {}", describe(&e)),
        )
    })
}

/// The header metadata of a parsed file as a sorted map (empty when there is none).
fn metadata_of(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>, NnError> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
        error(
            path,
            format!("not a valid safetensors file: {}", describe(&e)),
        )
    })?;
    Ok(meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// A few names from a list, for error messages.
fn some_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(shown.len());
    match (shown.is_empty(), more) {
        (true, _) => "none".into(),
        (false, 0) => shown.join(", "),
        (false, m) => format!("{} and {m} more", shown.join(", ")),
    }
}

/// The engine-layout values of `p` read from the parsed file, fully validated.
fn read_param<D: Device<f32>>(
    path: &Path,
    file: &SafeTensors<'_>,
    p: &Param<D>,
) -> Result<Vec<f32>, NnError> {
    let view = file.tensor(&p.name).map_err(|_| {
        let mut names: Vec<String> = file.names().into_iter().cloned().collect();
        names.sort();
        error(
            path,
            format!(
                "missing tensor `{}` (the file has {})",
                p.name,
                some_names(names.iter().map(String::as_str))
            ),
        )
    })?;
    if view.dtype() != Dtype::F32 {
        return Err(error(
            path,
            format!(
                "tensor `{}` has dtype {:?}, expected F32",
                p.name,
                view.dtype()
            ),
        ));
    }
    let torch_shape = p.torch_shape();
    if view.shape() != torch_shape.as_slice() {
        return Err(error(
            path,
            format!(
                "tensor `{}` has shape {:?} but the network expects {:?} (PyTorch layout; \
                 {:?} in the engine's)",
                p.name,
                view.shape(),
                torch_shape,
                p.shape
            ),
        ));
    }
    let torch = f32s(view.data());
    Ok(layout::permute(
        &torch,
        &torch_shape,
        &layout::inverse(&p.to_torch),
    ))
}

/// Reads the checkpoint at `path` into `params` (inverse permutation from PyTorch's layout)
/// and returns its metadata. Every parameter must be in the file with PyTorch's shape and
/// dtype F32, and the file may hold no other tensor (except PyTorch's `num_batches_tracked`);
/// otherwise an error names the file and tensor and `params` are left unchanged.
pub fn load<D: Device<f32>>(
    params: &mut [Param<D>],
    path: &Path,
) -> Result<BTreeMap<String, String>, NnError> {
    let bytes = read_file(path)?;
    let file = parse(path, &bytes)?;
    check_unique_names(path, params)?;

    let mut values = Vec::with_capacity(params.len());
    for p in params.iter() {
        check_param(path, p)?;
        values.push(read_param(path, &file, p)?);
    }
    let expected: BTreeSet<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let mut unexpected: Vec<&str> = file
        .names()
        .into_iter()
        .map(String::as_str)
        .filter(|n| !expected.contains(n) && !n.ends_with(IGNORED_SUFFIX))
        .collect();
    unexpected.sort_unstable();
    if !unexpected.is_empty() {
        return Err(error(
            path,
            format!(
                "the file holds tensors this network does not have: {} (a checkpoint of \
                 another model?)",
                some_names(unexpected)
            ),
        ));
    }

    let metadata = metadata_of(path, &bytes)?;
    for (p, v) in params.iter_mut().zip(&values) {
        p.value.copy_from(v);
    }
    Ok(metadata)
}

/// The metadata stored in the header of the checkpoint at `path` (the whole file is
/// validated as safetensors).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, NnError> {
    let bytes = read_file(path)?;
    metadata_of(path, &bytes)
}
