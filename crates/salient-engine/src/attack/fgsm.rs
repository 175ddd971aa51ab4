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
