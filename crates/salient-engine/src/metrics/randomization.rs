//! Model-parameter randomisation test (Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim 2018,
//! "Sanity checks for saliency maps"), cascading: starting from a copy of the trained network,
//! the layers with parameters are re-initialised one after another from the top (logits) down
//! (`Network::reinit_layer`, PyTorch's default initialisation), and after each one the map of
//! the partly random network is compared with the trained network's map.
//!
//! Similarity: the Spearman rank correlation of the pixel scores (|S| summed over channels),
//! Adebayo et al.'s "absolute value" variant:
//!
//!   rho = Pearson(rank(a), rank(b)),  ties get their average rank.
//!
//! A method that passes the check shows rho falling towards 0 as more layers are randomised. A
//! constant map (zero variance) has no rank correlation: it is reported as 0.
use super::pixel_scores;
use super::{Env, MapBatch, Metric, RunInfo};
use crate::error::EngineError;
use crate::ops::Mat;
use crate::results::ResultRow;
use crate::saliency::{check_batch, input_channels, Saliency, SaliencyError};
use dfdx::prelude::*;
use salient_ir::results::RANDOMIZATION;
use salient_nn::Network;

/// Fractional ranks (1-based, ties averaged).
pub fn ranks(v: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0f64; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) share the average of ranks i+1..=j+1.
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation; 0 when either side has zero variance or the lengths differ.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Spearman rank correlation of two score vectors.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Indices of the top-level layers that have parameters, from the top (last) down.
pub fn cascade_order<D: Device<f32>>(net: &Network<D>) -> Vec<usize> {
    (0..net.def().layers.len())
        .rev()
        .filter(|&i| !net.layer_params(i).is_empty())
        .collect()
}

/// One step of the cascade: the layer just re-initialised (index into the model's layers), its
/// name, and the per-example Spearman correlation with the trained map.
#[derive(Clone, Debug, PartialEq)]
pub struct CascadeStep {
    pub layer: usize,
    pub name: String,
    pub similarity: Vec<f64>,
}

/// Run the cascade on a copy of `net` (left untouched) for the batch `x`, whose trained map is
/// `trained` (B, N). `seed` seeds the re-initialisation.
pub fn cascade<D: Device<f32>>(
    method: &mut dyn Saliency<D>,
    net: &Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    trained: &Mat<D>,
    seed: u64,
) -> Result<Vec<CascadeStep>, SaliencyError> {
    check_batch(net, x, labels)?;
    if trained.shape() != x.shape() {
        return Err(SaliencyError::Shape {
            what: "saliency map".into(),
            expected: format!("{:?}", x.shape()),
            got: format!("{:?}", trained.shape()),
        });
    }
    let b = x.shape().0;
    let c = input_channels(net.def().input);
    let reference = pixel_scores(&trained.as_vec(), b, c);
    let p = reference.len() / b;
    // dfdx tensors are copy-on-write: re-initialising the copy leaves `net` as it is.
    let mut random = net.clone();
    let mut out = Vec::new();
    for layer in cascade_order(net) {
        random.reinit_layer(layer, seed);
        let s = method.map(&mut random, x, labels)?;
        let scores = pixel_scores(&s.as_vec(), b, c);
        let similarity = (0..b)
            .map(|i| spearman(&reference[i * p..(i + 1) * p], &scores[i * p..(i + 1) * p]))
            .collect();
        out.push(CascadeStep {
            layer,
            name: net.def().layers[layer].name.clone(),
            similarity,
        });
    }
    Ok(out)
}

/// The metric: per layer of the cascade (top down), the mean Spearman rho between the trained
/// map and the map after re-initialising it (rows `randomization`, `point` = layer index).
#[derive(Debug)]
pub struct Randomization {
    seed: u64,
    /// (layer index, per-example rho) in cascade order.
    layers: Vec<(usize, Vec<f64>)>,
}

impl Randomization {
    /// `seed` seeds the re-initialisation (the experiment's `eval.seed`).
    pub fn new(seed: u64) -> Self {
        Randomization {
            seed,
            layers: Vec::new(),
        }
    }
}

impl<D: Device<f32>> Metric<D> for Randomization {
    fn name(&self) -> &'static str {
        RANDOMIZATION
    }

    fn update(&mut self, env: &mut Env<'_, D>, b: &MapBatch<'_, D>) -> Result<(), EngineError> {
        for step in cascade(env.method, env.net, b.x, b.labels, b.maps, self.seed)? {
            match self.layers.iter_mut().find(|(l, _)| *l == step.layer) {
                Some((_, v)) => v.extend(step.similarity),
                None => self.layers.push((step.layer, step.similarity)),
            }
        }
        Ok(())
    }

    fn finish(
        &mut self,
        _: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError> {
        Ok(self
            .layers
            .iter()
            .map(|(layer, v)| super::point_row(info, RANDOMIZATION, *layer as f64, super::mean(v)))
            .collect())
    }
}
