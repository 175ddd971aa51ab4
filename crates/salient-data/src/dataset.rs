//! An in-memory dataset: images as `[0, 1]` floats, channels-last, with their labels.

use salient_ir::ImageShape;

/// N examples of one split.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// N images, channels-last `(N, H, W, C)`, pixels in `[0, 1]` (byte / 255). Not normalised:
    /// `(x - mean) / std` is applied inside the model.
    pub images: Vec<f32>,
    /// N labels, each below `classes`.
    pub labels: Vec<u8>,
    /// Shape of one image (channels, height, width).
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: usize,
}

/// Both splits of a loaded dataset and a fingerprint of exactly what was loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
    /// Lower-case hex SHA-256 identifying the data: the name, size and SHA-256 of every file
    /// read, in order, plus the spec fields that change the data (see `docs/data.md`). Equal
    /// fingerprints mean identical tensors; checkpoints store it to detect stale data.
    pub fingerprint: String,
    /// Every file read, in reading order, with its size and SHA-256 (empty for synthetic data);
    /// for provenance in run logs.
    pub files: Vec<crate::source::FileRecord>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of floats in one image (`c * h * w`).
    pub fn image_len(&self) -> usize {
        self.shape.numel()
    }

    /// The pixels of example `i`, channels-last.
    ///
    /// # Panics
    /// If `i >= self.len()` (like slice indexing).
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Copy the images and labels at `idx`, in that order, into contiguous buffers (a batch).
    /// The buffers are cleared first and reuse their allocation.
    ///
    /// # Panics
    /// If an index is `>= self.len()`.
    pub fn gather(&self, idx: &[usize], images: &mut Vec<f32>, labels: &mut Vec<usize>) {
        images.clear();
        labels.clear();
        images.reserve(idx.len() * self.image_len());
        labels.reserve(idx.len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i] as usize);
        }
    }

    /// The first `n` examples (all of them if `n >= len`).
    pub fn subset(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
            classes: self.classes,
        }
    }

    /// Mean pixel value of each channel over all examples and positions (accumulated in f64).
    /// Used for the `mean` fill of masked features and for baselines; zeros for an empty set.
    pub fn channel_mean(&self) -> Vec<f32> {
        let c = self.shape.c;
        let mut sums = vec![0f64; c];
        if c == 0 {
            return Vec::new();
        }
        for px in self.images.chunks_exact(c) {
            for (s, &v) in sums.iter_mut().zip(px) {
                *s += v as f64;
            }
        }
        let count = (self.images.len() / c).max(1) as f64;
        sums.into_iter().map(|s| (s / count) as f32).collect()
    }

    /// Number of examples of each class (length `classes`).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 examples of 1x1x2 (c=2): example i has pixels (i, 10 + i) / 100, label i.
    fn tiny() -> Dataset {
        let images = (0..3)
            .flat_map(|i| [i as f32 / 100.0, (10 + i) as f32 / 100.0])
            .collect();
        Dataset {
            images,
            labels: vec![0, 1, 2],
            shape: ImageShape { c: 2, h: 1, w: 1 },
            classes: 3,
        }
    }

    #[test]
    fn image_and_gather() {
        let d = tiny();
        assert_eq!(d.len(), 3);
        assert_eq!(d.image(1), [0.01, 0.11]);
        let (mut x, mut y) = (vec![9.0; 7], vec![9; 5]);
        d.gather(&[2, 0, 2], &mut x, &mut y);
        assert_eq!(x, [0.02, 0.12, 0.0, 0.10, 0.02, 0.12]);
        assert_eq!(y, [2, 0, 2]);
    }

    #[test]
    fn subset_keeps_the_first_n() {
        let d = tiny();
        let s = d.subset(2);
        assert_eq!(s.labels, [0, 1]);
        assert_eq!(s.images, d.images[..4]);
        assert_eq!(d.subset(10), d);
    }

    #[test]
    fn channel_mean_per_channel() {
        let m = tiny().channel_mean();
        assert!(
            (m[0] - 0.01).abs() < 1e-7 && (m[1] - 0.11).abs() < 1e-7,
            "{m:?}"
        );
        let empty = tiny().subset(0);
        assert_eq!(empty.channel_mean(), [0.0, 0.0]);
    }

    #[test]
    fn class_counts_histogram() {
        assert_eq!(tiny().class_counts(), [1, 1, 1]);
    }
}
