//! SmoothGrad and its variants, on n noisy copies x + e_s, e_s ~ N(0, sigma^2 I), sigma in
//! pixel units of the [0, 1] image (the noisy inputs are not clipped), g_s = g(x + e_s):
//!
//! - SmoothGrad (Smilkov et al. 2017):   S = (1/n) sum_s g_s;
//! - SG-squared (Hooker et al. 2019, "A benchmark for interpretability methods in deep neural
//!   networks"): S = (1/n) sum_s g_s^2;
//! - VarGrad (Adebayo et al. 2018, "Local explanation methods for deep neural networks lack
//!   sensitivity to parameter values"): S = (1/n) sum_s (g_s - mean g)^2, the population
//!   variance, accumulated shifted by the first sample (K = g_1:
//!   var = mean (g - K)^2 - (mean (g - K))^2) so that equal gradients give exactly 0.
//!
//! With the logit objective a linear model has a constant gradient: SmoothGrad equals it and
//! VarGrad is 0. (With log p_y it is not constant: the softmax is not linear.)
use super::noise::normal_like;
use super::{check_batch, class_gradient, Objective, Saliency, SaliencyError};
use crate::ops::Mat;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_ir::SmoothGradVariant;
use salient_nn::Network;

pub struct SmoothGrad {
    pub samples: usize,
    pub sigma: f32,
    pub variant: SmoothGradVariant,
    pub objective: Objective,
    rng: ChaCha8Rng,
}

impl SmoothGrad {
    /// `samples` >= 1 (>= 2 for VarGrad), `sigma` finite and >= 0.
    pub fn new(
        samples: usize,
        sigma: f64,
        variant: SmoothGradVariant,
        objective: Objective,
        seed: u64,
    ) -> Result<Self, SaliencyError> {
        if samples == 0 {
            return Err(SaliencyError::param(
                "smoothgrad: samples must be at least 1",
            ));
        }
        if variant == SmoothGradVariant::VarGrad && samples < 2 {
            return Err(SaliencyError::param(
                "smoothgrad vargrad: a variance needs at least 2 samples",
            ));
        }
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(SaliencyError::param(format!(
                "smoothgrad: sigma must be finite and >= 0, got {sigma}"
            )));
        }
        Ok(SmoothGrad {
            samples,
            sigma: sigma as f32,
            variant,
            objective,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }
}

impl<D: Device<f32>> Saliency<D> for SmoothGrad {
    fn map(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
    ) -> Result<Mat<D>, SaliencyError> {
        check_batch(net, x, labels)?;
        let shape = *x.shape();
        let dev = x.device().clone();
        let n = self.samples as f32;
        let mut shift: Option<Mat<D>> = None;
        let mut sum: Mat<D> = dev.zeros_like(&shape);
        let mut sum_sq: Mat<D> = dev.zeros_like(&shape);
        for _ in 0..self.samples {
            let e = normal_like(&dev, &mut self.rng, shape, self.sigma);
            let (g, _) = class_gradient(net, &(x.clone() + e), labels, self.objective)?;
            match self.variant {
                SmoothGradVariant::Mean => sum = sum + g,
                SmoothGradVariant::Squared => sum = sum + g.square(),
                SmoothGradVariant::VarGrad => {
                    let k = shift.get_or_insert_with(|| g.clone()).clone();
                    let d = g - k;
                    sum = sum + d.clone();
                    sum_sq = sum_sq + d.square();
                }
            }
        }
        Ok(match self.variant {
            SmoothGradVariant::Mean | SmoothGradVariant::Squared => sum / n,
            // Rounding can leave a tiny negative: a variance is >= 0.
            SmoothGradVariant::VarGrad => (sum_sq / n - (sum / n).square()).relu(),
        })
    }
}
