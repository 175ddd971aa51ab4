//! Saved saliency maps for the report's grid figure. Layout of `DIR/maps/`:
//!
//! - `maps/<run>/<method>.npy`: float32 (n, H, W, C), the method's maps of the first n test
//!   images for that run;
//! - `maps/images.npy` (or `maps/<run>/images.npy`): float32 (n, H, W, C) in [0, 1], the images;
//! - `maps/labels.npy` (or `maps/<run>/labels.npy`), optional: the n true labels (any numeric
//!   dtype).
//!
//! Maps whose image shape differs from `images.npy` are skipped with a note, never a panic.
use crate::error::ReportError;
use crate::npy::{self, Array};
use std::path::Path;

/// The maps of one run and method.
#[derive(Clone, Debug)]
pub struct RunMap {
    pub run: String,
    pub method: String,
    pub maps: Array,
}

/// Everything under `DIR/maps/`.
#[derive(Clone, Debug)]
pub struct MapSet {
    /// (n, H, W, C) in [0, 1].
    pub images: Array,
    pub labels: Option<Vec<i64>>,
    /// Sorted by run, then method.
    pub maps: Vec<RunMap>,
    /// Files that were skipped, with the reason.
    pub notes: Vec<String>,
}

impl MapSet {
    pub fn height(&self) -> usize {
        self.images.shape[1]
    }
    pub fn width(&self) -> usize {
        self.images.shape[2]
    }
    pub fn channels(&self) -> usize {
        self.images.shape[3]
    }
    /// Method names, sorted, without duplicates.
    pub fn methods(&self) -> Vec<String> {
        let mut m: Vec<String> = self.maps.iter().map(|m| m.method.clone()).collect();
        m.sort();
        m.dedup();
        m
    }
}

const RESERVED: [&str; 2] = ["images", "labels"];

/// Read `dir/maps`. `Ok(None)` when there are no maps or no images to show them beside.
pub fn load(dir: &Path) -> Result<Option<MapSet>, ReportError> {
    let root = dir.join("maps");
    if !root.is_dir() {
        return Ok(None);
    }
    let mut run_dirs: Vec<_> = read_dir(&root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    run_dirs.sort();
    // images.npy / labels.npy: at the top, else in the first run directory that has them.
    let find = |name: &str| {
        std::iter::once(root.join(name))
            .chain(run_dirs.iter().map(|d| d.join(name)))
            .find(|p| p.is_file())
    };
    let Some(images_path) = find("images.npy") else {
        return Ok(None);
    };
    let images = npy::read(&images_path)?;
    if images.shape.len() != 4 || images.shape[0] == 0 {
        return Err(ReportError::Npy {
            path: images_path,
            reason: format!(
                "expected shape (n, H, W, C) with n > 0, found {:?}",
                images.shape
            ),
        });
    }
    let labels = match find("labels.npy") {
        Some(p) => Some(npy::read(&p)?.data.iter().map(|&v| v as i64).collect()),
        None => None,
    };
    let mut maps = Vec::new();
    let mut notes = Vec::new();
    for run_dir in &run_dirs {
        let run = run_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut files: Vec<_> = read_dir(run_dir)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "npy"))
            .collect();
        files.sort();
        for file in files {
            let method = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if RESERVED.contains(&method.as_str()) {
                continue;
            }
            let array = npy::read(&file)?;
            if array.shape.len() != 4
                || array.shape[1..] != images.shape[1..]
                || array.shape[0] == 0
            {
                notes.push(format!(
                    "{}: shape {:?} does not match the images {:?}; skipped",
                    file.display(),
                    array.shape,
                    images.shape
                ));
                continue;
            }
            maps.push(RunMap {
                run: run.clone(),
                method,
                maps: array,
            });
        }
    }
    if maps.is_empty() {
        return Ok(None);
    }
    Ok(Some(MapSet {
        images,
        labels,
        maps,
        notes,
    }))
}

fn read_dir(dir: &Path) -> Result<Vec<std::path::PathBuf>, ReportError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ReportError::io(dir, e))?;
    entries
        .map(|e| e.map(|e| e.path()).map_err(|err| ReportError::io(dir, err)))
        .collect()
}

/// Reduce one (H, W, C) map to (H, W) magnitudes: `m[h, w] = sum_c |s[h, w, c]|`.
pub fn magnitude(map: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
    (0..h * w)
        .map(|i| map[i * c..(i + 1) * c].iter().map(|v| v.abs()).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_sums_absolute_channels() {
        // 1 x 2 pixels, 3 channels.
        let m = magnitude(&[1.0, -2.0, 0.5, 0.0, -0.25, 0.25], 1, 2, 3);
        assert_eq!(m, [3.5, 0.5]);
    }

    #[test]
    fn loads_the_layout_and_skips_mismatched_maps() {
        let dir = std::env::temp_dir().join(format!("salient-report-maps-{}", std::process::id()));
        let run = dir.join("maps/r0");
        std::fs::create_dir_all(&run).unwrap();
        npy::write_f32(
            &dir.join("maps/images.npy"),
            &[2, 2, 2, 1],
            &[0.0, 0.5, 1.0, 0.5, 0.1, 0.2, 0.3, 0.4],
        )
        .unwrap();
        npy::write_f32(&dir.join("maps/labels.npy"), &[2], &[7.0, 1.0]).unwrap();
        npy::write_f32(&run.join("gradient.npy"), &[2, 2, 2, 1], &[1.0; 8]).unwrap();
        npy::write_f32(&run.join("bad.npy"), &[2, 3, 2, 1], &[1.0; 12]).unwrap();
        let set = load(&dir).unwrap().unwrap();
        assert_eq!(set.labels, Some(vec![7, 1]));
        assert_eq!(set.methods(), ["gradient"]);
        assert_eq!((set.height(), set.width(), set.channels()), (2, 2, 1));
        assert_eq!(set.notes.len(), 1);
        assert!(set.notes[0].contains("bad.npy"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load(&dir).unwrap().is_none());
    }
}
