//! Complexity: the Shannon entropy of the normalised pixel scores (Bhatt, Weller, Moura 2020,
//! "Evaluating and aggregating feature-based model explanations"):
//!
//!   P_i = |S_i| / sum_j |S_j|,   H(S) = - sum_i P_i ln P_i   (natural log, 0 ln 0 = 0).
//!
//! H ranges from 0 (one pixel carries everything) to ln N (uniform). An all-zero map is taken
//! as uniform: H = ln N.
use super::{MapBatch, MeanOverExamples};
use dfdx::prelude::*;
use salient_ir::results::COMPLEXITY;

/// Entropy (nats) of |values| normalised to sum 1.
pub fn entropy(values: &[f32]) -> f64 {
    let total: f64 = values.iter().map(|v| v.abs() as f64).sum();
    if values.is_empty() {
        return 0.0;
    }
    if total == 0.0 || !total.is_finite() {
        return (values.len() as f64).ln();
    }
    -values
        .iter()
        .map(|v| v.abs() as f64 / total)
        .filter(|&p| p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>()
}

/// Entropy of each row of `pixel` (B rows of P scores).
pub fn per_example(pixel: &[f32], batch: usize) -> Vec<f64> {
    if batch == 0 {
        return Vec::new();
    }
    pixel
        .chunks((pixel.len() / batch).max(1))
        .map(entropy)
        .collect()
}

/// The metric: the mean entropy over the evaluated examples (row `complexity`).
pub fn metric<D: Device<f32>>() -> MeanOverExamples<D> {
    fn values<D: Device<f32>>(b: &MapBatch<'_, D>) -> Vec<f64> {
        per_example(b.pixel, b.labels.len())
    }
    MeanOverExamples::new(COMPLEXITY, values::<D>)
}
