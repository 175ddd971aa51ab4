//! Integrated gradients (Sundararajan, Taly, Yan 2017, "Axiomatic attribution for deep
//! networks"):
//!
//!   IG(x) = (x - x0) * int_0^1 g(x0 + a (x - x0)) da,   g = d obj_y / dx,
//!
//! approximated on `steps` points of [0, 1]:
//! - [`Rule::Midpoint`] (the default, what `salient run` uses): a_k = (k + 1/2) / m,
//!   k = 0..m-1, weights 1/m; `m` gradient passes, error O(1/m^2) for smooth integrands;
//! - [`Rule::Trapezoid`]: a_k = k / m, k = 0..m, weights 1/m with the two ends halved; `m + 1`
//!   passes, error O(1/m^2).
//!
//! Completeness: sum_i IG_i(x) = obj_y(x) - obj_y(x0) up to the quadrature error.
//!
//! Baselines x0: all zeros (black); the dataset's per-channel mean pixel; or uniform noise
//! U(0, 1) drawn per example and per call from the method's seeded generator.
use super::noise::uniform_like;
use super::{check_batch, class_gradient, input_channels, Objective, Saliency, SaliencyError};
use crate::ops::Mat;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_ir::Baseline;
use salient_nn::Network;

/// Quadrature rule on [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Midpoint,
    Trapezoid,
}

impl Rule {
    /// The (a_k, w_k) pairs of the rule with `steps` intervals.
    pub fn points(self, steps: usize) -> Vec<(f32, f32)> {
        let m = steps as f64;
        match self {
            Rule::Midpoint => (0..steps)
                .map(|k| (((k as f64 + 0.5) / m) as f32, (1.0 / m) as f32))
                .collect(),
            Rule::Trapezoid => (0..=steps)
                .map(|k| {
                    let w = if k == 0 || k == steps {
                        0.5 / m
                    } else {
                        1.0 / m
                    };
                    ((k as f64 / m) as f32, w as f32)
                })
                .collect(),
        }
    }
}

pub struct IntegratedGradients {
    pub steps: usize,
    pub baseline: Baseline,
    pub rule: Rule,
    pub objective: Objective,
    channel_mean: Vec<f32>,
    rng: ChaCha8Rng,
}

impl IntegratedGradients {
    /// `steps` >= 1; `channel_mean` (one value per input channel, or one for all) is needed by
    /// the mean baseline only.
    pub fn new(
        steps: usize,
        baseline: Baseline,
        rule: Rule,
        objective: Objective,
        channel_mean: Vec<f32>,
        seed: u64,
    ) -> Result<Self, SaliencyError> {
        if steps == 0 {
            return Err(SaliencyError::param(
                "integrated gradients: steps must be at least 1",
            ));
        }
        if baseline == Baseline::Mean && channel_mean.is_empty() {
            return Err(SaliencyError::param(
                "integrated gradients: the mean baseline needs the dataset's channel mean",
            ));
        }
        Ok(IntegratedGradients {
            steps,
            baseline,
            rule,
            objective,
            channel_mean,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The baseline batch x0 for `x` (B, N).
    pub fn baseline_for<D: Device<f32>>(
        &mut self,
        net: &Network<D>,
        x: &Mat<D>,
    ) -> Result<Mat<D>, SaliencyError> {
        let shape = *x.shape();
        let dev = x.device().clone();
        Ok(match self.baseline {
            Baseline::Zero => dev.zeros_like(&shape),
            Baseline::Uniform => uniform_like(&dev, &mut self.rng, shape, 0.0, 1.0),
            Baseline::Mean => {
                let c = input_channels(net.def().input);
                let m = &self.channel_mean;
                if m.len() != c && m.len() != 1 {
                    return Err(SaliencyError::Shape {
                        what: "integrated gradients mean baseline".into(),
                        expected: format!("{c} channel mean(s)"),
                        got: format!("{}", m.len()),
                    });
                }
                // Channels-last: feature i belongs to channel i % c.
                let row: Vec<f32> = (0..shape.1)
                    .map(|i| if m.len() == 1 { m[0] } else { m[i % c] })
                    .collect();
                let all: Vec<f32> = (0..shape.0).flat_map(|_| row.iter().copied()).collect();
                dev.tensor_from_vec(all, shape)
            }
        })
    }

    /// IG against an explicit baseline `x0` (same shape as `x`).
    pub fn map_from<D: Device<f32>>(
        &self,
        net: &mut Network<D>,
        x: &Mat<D>,
        x0: &Mat<D>,
        labels: &[usize],
    ) -> Result<Mat<D>, SaliencyError> {
        check_batch(net, x, labels)?;
        if x0.shape() != x.shape() {
            return Err(SaliencyError::Shape {
                what: "baseline".into(),
                expected: format!("{:?}", x.shape()),
                got: format!("{:?}", x0.shape()),
            });
        }
        let diff = x.clone() - x0.clone();
        let mut acc: Option<Mat<D>> = None;
        for (a, w) in self.rule.points(self.steps) {
            let xa = x0.clone() + diff.clone() * a;
            let (g, _) = class_gradient(net, &xa, labels, self.objective)?;
            let g = g * w;
            acc = Some(match acc {
                Some(s) => s + g,
                None => g,
            });
        }
        let avg = acc.expect("a rule has at least one point");
        Ok(diff * avg)
    }
}

impl<D: Device<f32>> Saliency<D> for IntegratedGradients {
    fn map(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
    ) -> Result<Mat<D>, SaliencyError> {
        check_batch(net, x, labels)?;
        let x0 = self.baseline_for(net, x)?;
        self.map_from(net, x, &x0, labels)
    }
}
