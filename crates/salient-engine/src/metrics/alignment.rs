//! Alignment between the input and its saliency map (Etmann, Lunz, Maass, Schoenlieb 2019, "On
//! the connection between adversarial robustness and saliency map interpretability"). They
//! define alpha(x) = |<x, g>| / ||g||; we report the scale-free cosine form
//!
//!   alpha(x) = |<x, S(x)>| / (||x||_2 ||S(x)||_2)   in [0, 1],
//!
//! i.e. theirs divided by ||x||, so that images of different brightness compare. x is the raw
//! [0, 1] pixel input (the normalisation is inside the model), S the method's map as produced
//! (the signed gradient gives Etmann's alignment with the log p_y gradient). A zero x or S
//! gives 0.
use super::{MapBatch, MeanOverExamples};
use crate::ops::{row_norms, Mat};
use dfdx::prelude::*;
use salient_ir::results::ALIGNMENT;

/// Per-example alignment of the rows of `x` and `s` (both (B, N)), computed on the device.
pub fn per_example<D: Device<f32>>(x: &Mat<D>, s: &Mat<D>) -> Vec<f64> {
    let dot = (x.clone() * s.clone()).sum::<(usize,), Axis<1>>().as_vec();
    let nx = row_norms(x).as_vec();
    let ns = row_norms(s).as_vec();
    dot.iter()
        .zip(nx.iter().zip(&ns))
        .map(|(&d, (&a, &b))| {
            let den = a as f64 * b as f64;
            if den > 0.0 && den.is_finite() {
                (d as f64).abs() / den
            } else {
                0.0
            }
        })
        .collect()
}

/// The metric: the mean alignment of inputs and maps over the evaluated examples (row `alignment`).
pub fn metric<D: Device<f32>>() -> MeanOverExamples<D> {
    fn values<D: Device<f32>>(b: &MapBatch<'_, D>) -> Vec<f64> {
        per_example(b.x, b.maps)
    }
    MeanOverExamples::new(ALIGNMENT, values::<D>)
}
