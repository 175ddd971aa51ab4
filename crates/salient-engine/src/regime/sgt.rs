//! Saliency-guided training (Ismail, Corrada Bravo, Feizi, NeurIPS 2021).
//!
//! Per step: S = d log p_y(x) / dx with the network in eval mode, averaged over channels; per
//! image, the `k` fraction of pixel positions with the smallest S (signed, as the authors' code
//! does by default, or |S|) are replaced (every channel) by the fill: uniform random in
//! [min(x), max(x)] of that image, the dataset's per-channel mean, or a constant. The masked
//! input x~ is a constant (no gradient through the masking). Loss, both passes in train mode:
//!
//!   L = CE(f(x), y) + lambda * KL( softmax f(x) || softmax f(x~) )
//!
//! with gradients through both forward passes.
use super::{input_channels, Regime, StepContext, StepOutput, Targets};
use crate::grad::input_gradient;
use crate::losses::{ce_mean, ce_sum, kl_mean};
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use salient_ir::{Fill, SaliencySign, SgtParams};
use salient_nn::{Mode, Network};

pub struct Sgt {
    pub params: SgtParams,
    /// Per-channel dataset mean (for `Fill::Mean`).
    pub channel_mean: Vec<f32>,
}

/// Mask the `k` fraction of lowest-saliency pixel positions of each image (host side).
///
/// `x` and `saliency` are (B, H*W*C) channels-last; `channels` is C. Returns x~.
pub fn mask_lowest(
    x: &[f32],
    saliency: &[f32],
    batch: usize,
    channels: usize,
    p: &SgtParams,
    channel_mean: &[f32],
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let channels = channels.max(1);
    let n = x.len() / batch.max(1);
    let positions = n / channels;
    let count = ((p.k * positions as f64).round() as usize).min(positions);
    let mut out = x.to_vec();
    let mut score = vec![0.0f32; positions];
    let mut order: Vec<usize> = (0..positions).collect();
    for b in 0..batch {
        let xi = &x[b * n..(b + 1) * n];
        let si = &saliency[b * n..(b + 1) * n];
        for (pos, s) in score.iter_mut().enumerate() {
            let mean =
                si[pos * channels..(pos + 1) * channels].iter().sum::<f32>() / channels as f32;
            *s = match p.saliency {
                SaliencySign::Signed => mean,
                SaliencySign::Absolute => mean.abs(),
            };
        }
        order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
        // Stable order: ties broken by position, so the mask is deterministic.
        order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
        let (lo, hi) = xi
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let oi = &mut out[b * n..(b + 1) * n];
        for &pos in &order[..count] {
            for c in 0..channels {
                oi[pos * channels + c] = match p.fill {
                    Fill::Random => {
                        if hi > lo {
                            rng.gen_range(lo..=hi)
                        } else {
                            lo
                        }
                    }
                    Fill::Mean => channel_mean.get(c).copied().unwrap_or(0.0),
                    Fill::Constant(v) => v,
                };
            }
        }
    }
    out
}

/// The SGT-masked copy of `x` (a constant): the saliency S = d log p_y / dx of `x` with the
/// network in eval mode, then [`mask_lowest`] of it. Shared by `sgt` and `combined` (which masks
/// the adversarial example).
pub fn saliency_masked<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Tensor<(usize, usize), f32, D>,
    onehot: &Tensor<(usize, usize), f32, D>,
    p: &SgtParams,
    channel_mean: &[f32],
    rng: &mut ChaCha8Rng,
) -> Tensor<(usize, usize), f32, D> {
    let (b, _) = *x.shape();
    // grad of log p_y = - grad of CE (summed, so each example's gradient is its own).
    let (g, _) = input_gradient(net, x, Mode::Eval, |z| ce_sum(z, onehot).negate());
    let channels = input_channels(net.def());
    let masked = mask_lowest(&x.as_vec(), &g.as_vec(), b, channels, p, channel_mean, rng);
    x.device().tensor_from_vec(masked, *x.shape())
}

impl<D: Device<f32>> Regime<D> for Sgt {
    fn step(
        &mut self,
        net: &mut Network<D>,
        x: &Tensor<(usize, usize), f32, D>,
        y: &Targets<D>,
        ctx: &mut StepContext,
    ) -> StepOutput<D> {
        let x_masked = saliency_masked(
            net,
            x,
            &y.onehot,
            &self.params,
            &self.channel_mean,
            &mut ctx.rng,
        );

        let clean = net.forward(x.clone().traced(Gradients::leaky()), Mode::Train);
        let (clean, tape) = clean.split_tape();
        let masked_logits = net.forward(x_masked.put_tape(tape), Mode::Train);
        let kl = kl_mean(clean.clone(), masked_logits);
        let (kl, tape) = kl.split_tape();
        let ce = ce_mean(clean.clone().put_tape(tape), &y.onehot);
        let loss = ce + kl.retaped::<OwnedTape<f32, D>>() * self.params.lambda as f32;
        StepOutput {
            loss,
            logits: clean,
        }
    }
}
