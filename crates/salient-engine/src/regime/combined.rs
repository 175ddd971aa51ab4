//! Saliency-guided training combined with adversarial training (Guesmi, Aswani, Shafique 2024,
//! arXiv 2405.06278).
//!
//! Per step:
//! 1. x_adv = PGD(x) (or FGSM: one step) climbing CE, with the network in eval mode
//!    ([`crate::attack::pgd`]);
//! 2. x~_adv = SGT mask of x_adv: the `k` fraction of pixel positions with the lowest saliency
//!    S = d log p_y(x_adv) / dx_adv (eval mode) replaced by the fill ([`super::sgt::mask_lowest`]);
//!    x_adv and x~_adv are constants (no gradient through the attack or the masking);
//! 3. the loss, every forward pass in train mode on one tape:
//!
//! ```text
//! L = clean_weight * CE(f(x), y) + adv_weight * CE(f(x_adv), y)
//!     + lambda * KL( softmax f(x) || softmax f(x~_adv) )
//! ```
//!
//! with gradients through all three passes (the KL's through both of its arguments). The paper
//! does not publish the exact loss; this reading and its weights are parameters (defaults 1, 1
//! and SGT's lambda = 1).
use super::adversarial::pgd_config;
use super::sgt::saliency_masked;
use super::{Regime, StepContext, StepOutput, Targets};
use crate::attack::{pgd, AttackLoss};
use crate::losses::{ce_mean, kl_mean};
use crate::ops::Mat;
use dfdx::prelude::*;
use salient_ir::CombinedParams;
use salient_nn::{Mode, Network};

pub struct Combined {
    pub params: CombinedParams,
    /// Per-channel dataset mean (for `Fill::Mean`).
    pub channel_mean: Vec<f32>,
}

/// The combined loss of a batch given its adversarial example `x_adv` and the masked adversarial
/// example `x_masked` (both constants), every pass in train mode (see the module docs).
/// Returns the loss with its tape and the clean logits.
pub fn combined_loss<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    x_adv: Mat<D>,
    x_masked: Mat<D>,
    onehot: &Mat<D>,
    p: &CombinedParams,
) -> StepOutput<D> {
    let clean = net.forward(x.clone().traced(Gradients::leaky()), Mode::Train);
    let (clean, tape) = clean.split_tape();
    let masked = net.forward(x_masked.put_tape(tape), Mode::Train);
    let kl = kl_mean(clean.clone(), masked) * p.sgt.lambda as f32;
    let (kl, tape) = kl.split_tape();
    // The adversarial pass is skipped when its weight is 0 (it would add nothing).
    let (adv_term, tape) = if p.adv_weight > 0.0 {
        let adv = net.forward(x_adv.put_tape(tape), Mode::Train);
        let term = ce_mean(adv, onehot) * p.adv_weight as f32;
        let (term, tape) = term.split_tape();
        (Some(term), tape)
    } else {
        (None, tape)
    };
    let clean_term = ce_mean(clean.clone().put_tape(tape), onehot) * p.clean_weight as f32;
    let mut loss = clean_term + kl.retaped::<OwnedTape<f32, D>>();
    if let Some(t) = adv_term {
        loss = loss + t.retaped::<OwnedTape<f32, D>>();
    }
    StepOutput {
        loss,
        logits: clean,
    }
}

impl<D: Device<f32>> Regime<D> for Combined {
    fn step(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        y: &Targets<D>,
        ctx: &mut StepContext,
    ) -> StepOutput<D> {
        let cfg = pgd_config(
            &super::ramped_attack(&self.params.attack, ctx),
            AttackLoss::Ce,
        );
        let x_adv = pgd(net, x, &y.onehot, &cfg, Mode::Eval, &mut ctx.rng);
        let x_masked = saliency_masked(
            net,
            &x_adv,
            &y.onehot,
            &self.params.sgt,
            &self.channel_mean,
            &mut ctx.rng,
        );
        combined_loss(net, x, x_adv, x_masked, &y.onehot, &self.params)
    }
}
