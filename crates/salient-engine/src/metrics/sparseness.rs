//! Sparseness: the Gini index of the pixel scores |S| (Chalasani, Chen, Chowdhury, Wu, Jha 2020,
//! "Concise explanations of neural networks using adversarial training"), with the formula of
//! Hurley and Rickard (2009, "Comparing measures of sparsity"): for the N scores sorted
//! increasingly c_(1) <= ... <= c_(N),
//!
//!   G(c) = 1 - 2 sum_{k=1..N} (c_(k) / ||c||_1) * (N - k + 1/2) / N.
//!
//! G is 0 for a uniform map and 1 - 1/N for a map with one non-zero value. An all-zero map
//! (nothing attributed) is taken as uniform: G = 0.
use super::{MapBatch, MeanOverExamples};
use dfdx::prelude::*;
use salient_ir::results::SPARSENESS;

/// Gini index of |values|.
pub fn gini(values: &[f32]) -> f64 {
    let mut c: Vec<f64> = values.iter().map(|v| v.abs() as f64).collect();
    let total: f64 = c.iter().sum();
    if c.is_empty() || total == 0.0 || !total.is_finite() {
        return 0.0;
    }
    c.sort_by(|a, b| a.total_cmp(b));
    let n = c.len() as f64;
    let s: f64 = c
        .iter()
        .enumerate()
        .map(|(i, &v)| (v / total) * (n - (i as f64 + 1.0) + 0.5) / n)
        .sum();
    1.0 - 2.0 * s
}

/// Gini index of each row of `pixel` (B rows of P scores).
pub fn per_example(pixel: &[f32], batch: usize) -> Vec<f64> {
    if batch == 0 {
        return Vec::new();
    }
    pixel
        .chunks((pixel.len() / batch).max(1))
        .map(gini)
        .collect()
}

/// The metric: the mean Gini index over the evaluated examples (row `sparseness`).
pub fn metric<D: Device<f32>>() -> MeanOverExamples<D> {
    fn values<D: Device<f32>>(b: &MapBatch<'_, D>) -> Vec<f64> {
        per_example(b.pixel, b.labels.len())
    }
    MeanOverExamples::new(SPARSENESS, values::<D>)
}
