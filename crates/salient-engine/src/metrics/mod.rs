//! Interpretability metrics of saliency maps (formulas and sources in `docs/metrics.md`).
//!
//! Conventions shared by every metric:
//! - maps and inputs are (B, N) rows, channels-last, N = H*W*C;
//! - metrics that rank or weigh *pixels* use the pixel score `s_p = sum_c |S_{p,c}|` (one value
//!   per spatial position; equal to |S| for one channel), see [`pixel_scores`];
//! - removing or inserting a pixel sets all of its channels;
//! - per-example values are averaged over examples by the caller (`interpret.rs`).
//!
//! One module per metric; the pure per-example arithmetic is host code (sorting, small sums);
//! every forward pass and per-step masking runs on the device.
pub mod alignment;
pub mod complexity;
pub mod deletion;
pub mod masking;
pub mod max_sensitivity;
pub mod randomization;
pub mod sparseness;

use crate::ops::Mat;
use dfdx::prelude::*;

/// Per-pixel scores `sum_c |S_{p,c}|` of each example: (B, P) with P = N / channels, row-major.
pub fn pixel_scores(map: &[f32], batch: usize, channels: usize) -> Vec<f32> {
    let c = channels.max(1);
    let n = map.len().checked_div(batch).unwrap_or(0);
    let p = n / c;
    let mut out = Vec::with_capacity(batch * p);
    for b in 0..batch {
        let row = &map[b * n..(b + 1) * n];
        out.extend(
            row.chunks_exact(c)
                .map(|px| px.iter().map(|v| v.abs()).sum::<f32>()),
        );
    }
    out
}

/// Indices of `scores` in decreasing order; ties keep the lower index first (deterministic).
pub fn order_desc(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// For each example, the rank (0 = most salient) of every *feature*: the rank of its pixel in
/// decreasing pixel score, repeated over the pixel's channels. (B, N) on `dev`, as f32 (exact
/// for fewer than 2^24 pixels). Masking the top k pixels is then `rank < k` on the device.
pub fn feature_ranks<D: Device<f32>>(
    dev: &D,
    pixel: &[f32],
    batch: usize,
    channels: usize,
) -> Mat<D> {
    let c = channels.max(1);
    let p = pixel.len().checked_div(batch).unwrap_or(0);
    let mut ranks = vec![0f32; batch * p * c];
    for b in 0..batch {
        let order = order_desc(&pixel[b * p..(b + 1) * p]);
        for (r, &pos) in order.iter().enumerate() {
            for ch in 0..c {
                ranks[(b * p + pos) * c + ch] = r as f32;
            }
        }
    }
    dev.tensor_from_vec(ranks, (batch, p * c))
}

/// Number of pixels of `total` in a fraction `f` in [0, 1] (rounded to nearest).
pub fn count_of(fraction: f64, total: usize) -> usize {
    ((fraction.clamp(0.0, 1.0) * total as f64).round() as usize).min(total)
}

/// Area under a curve sampled at equally spaced x = 0, 1/T, ..., 1 (trapezoid rule):
/// `sum_{t=1..T} (y_{t-1} + y_t) / (2T)`. 0 for fewer than 2 points.
pub fn trapezoid_auc(y: &[f64]) -> f64 {
    if y.len() < 2 {
        return 0.0;
    }
    let t = (y.len() - 1) as f64;
    y.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / t
}

/// Mean of the values (0 for none).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// True-class probabilities softmax(z)_y of a batch (host).
pub fn true_class_probs<D: Device<f32>>(logits: Mat<D>, labels: &[usize]) -> Vec<f64> {
    let classes = logits.shape().1;
    let p = logits.softmax::<Axis<1>>().as_vec();
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| p[i * classes + y] as f64)
        .collect()
}
