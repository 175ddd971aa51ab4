//! The fast gradient sign method (Goodfellow, Shlens, Szegedy 2015, "Explaining and harnessing
//! adversarial examples"), Linf only:
//!
//!   x_adv = clip_[0,1]( x + eps * sign( grad_x CE(f(x), y) ) )
//!
//! One gradient of the cross-entropy of the logits, the network in eval mode. Since
//! |sign(.)| <= 1 and clipping to the box only moves pixels back towards x, ||x_adv - x||_inf
//! <= eps.
use crate::grad::input_gradient;
use crate::losses::ce_sum;
use crate::ops::{sign, Mat};
use dfdx::prelude::*;
use salient_nn::{Mode, Network};

/// FGSM from the clean batch `x` (pixels in [0, 1]) with one-hot labels `onehot`.
pub fn fgsm<D: Device<f32>>(net: &mut Network<D>, x: &Mat<D>, onehot: &Mat<D>, eps: f32) -> Mat<D> {
    let (g, _) = input_gradient(net, x, Mode::Eval, |z| ce_sum(z, onehot));
    (x.clone() + sign(&g) * eps).clamp(0.0, 1.0)
}

/// FGSM as an evaluation [`super::Attack`]: one step, then the per-example verdict.
#[derive(Clone, Debug)]
pub struct Fgsm {
    eps: f32,
}

impl Fgsm {
    pub fn new(eps: f64) -> Result<Self, super::AttackError> {
        if !(eps.is_finite() && eps >= 0.0) {
            return super::invalid(format!("eps must be a finite number >= 0, got {eps}"));
        }
        Ok(Fgsm { eps: eps as f32 })
    }
}

impl<D: Device<f32>> super::Attack<D> for Fgsm {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        _rng: &mut rand_chacha::ChaCha8Rng,
    ) -> super::AttackOutcome<D> {
        let classes = net.def().output.numel();
        let onehot = crate::losses::one_hot(x.device(), labels, classes);
        let x_adv = fgsm(net, x, &onehot, self.eps);
        let logits = net.forward(x_adv.clone(), Mode::Eval).as_vec();
        let robust = super::rows::correct_rows(&logits, classes, labels);
        super::AttackOutcome::new(x_adv, robust)
    }
}
