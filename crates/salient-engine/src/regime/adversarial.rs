//! Adversarial training.
//!
//! - Madry et al. (2018) PGD-AT, and Kim et al. (2019) on adversarial examples only:
//!   L = (1 - mix) * CE(f(x_adv), y) + mix * CE(f(x), y), x_adv = PGD(x) climbing CE (or the CW
//!   margin, Kim et al.'s option). mix = 0 trains on adversarial examples only.
//! - Fast adversarial training (Wong, Rice, Kolter 2020): the same with one FGSM step of size
//!   ~1.25 eps from a random start.
//! - TRADES (Zhang et al. 2019): L = CE(f(x), y) + beta * KL(p(x) || p(x_adv)), x_adv climbing
//!   KL(p(x) || p(x')) from x + 0.001 N(0, I).
//!
//! The inner attack runs with the network in eval mode (batchnorm running statistics are not
//! touched by attack passes; dropout off), a documented choice; the outer loss in train mode.
use super::sensitivity::noise;
use super::{Regime, StepContext, StepOutput, Targets};
use crate::attack::{pgd, AttackLoss, PgdConfig};
use crate::grad::input_gradient;
use crate::losses::{ce_mean, kl_mean};
use crate::ops::{normalize_rows, project_l2, sign};
use dfdx::prelude::*;
use salient_ir::{AdversarialParams, Noise, Norm, TrainAttack};
use salient_nn::{Mode, Network};

pub struct Adversarial {
    pub params: AdversarialParams,
}

pub fn pgd_config(a: &TrainAttack, loss: AttackLoss) -> PgdConfig {
    PgdConfig {
        norm: a.norm,
        eps: a.eps as f32,
        step_size: a.step_size as f32,
        steps: a.steps,
        random_start: a.random_start,
        loss,
    }
}

impl<D: Device<f32>> Regime<D> for Adversarial {
    fn step(
        &mut self,
        net: &mut Network<D>,
        x: &Tensor<(usize, usize), f32, D>,
        y: &Targets<D>,
        ctx: &mut StepContext,
    ) -> StepOutput<D> {
        let p = &self.params;
        let attack = super::ramped_attack(&p.attack, ctx);
        if let Some(beta) = p.trades_beta {
            return trades(net, x, y, &attack, beta as f32, ctx);
        }
        let cfg = pgd_config(&attack, p.loss.into());
        let x_adv = pgd(net, x, &y.onehot, &cfg, Mode::Eval, &mut ctx.rng);
        if p.mix <= 0.0 {
            let adv = net.forward(x_adv.traced(Gradients::leaky()), Mode::Train);
            let logits = adv.retaped::<NoneTape>();
            return StepOutput {
                loss: ce_mean(adv, &y.onehot),
                logits,
            };
        }
        let clean = net.forward(x.clone().traced(Gradients::leaky()), Mode::Train);
        let (clean, tape) = clean.split_tape();
        let adv = net.forward(x_adv.put_tape(tape), Mode::Train);
        let adv_loss = ce_mean(adv, &y.onehot) * (1.0 - p.mix as f32);
        let (adv_loss, tape) = adv_loss.split_tape();
        let clean_loss = ce_mean(clean.clone().put_tape(tape), &y.onehot) * p.mix as f32;
        StepOutput {
            loss: clean_loss + adv_loss.retaped::<OwnedTape<f32, D>>(),
            logits: clean,
        }
    }
}

/// TRADES: inner maximisation of KL(p(x) || p(x')) by signed (Linf) or normalised (L2) steps.
fn trades<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Tensor<(usize, usize), f32, D>,
    y: &Targets<D>,
    a: &TrainAttack,
    beta: f32,
    ctx: &mut StepContext,
) -> StepOutput<D> {
    let dev = x.device().clone();
    let shape = *x.shape();
    let p_clean = net.forward(x.clone(), Mode::Eval);
    // TRADES's start (Zhang et al.'s code): x + 0.001 * N(0, I).
    let start = noise(&dev, shape, Noise::Gaussian, 0.001, &mut ctx.rng);
    let mut xa = (x.clone() + start).clamp(0.0, 1.0);
    for _ in 0..a.steps {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        let (g, _) = input_gradient(net, &xa, Mode::Eval, |z| kl_mean(p_clean.clone(), z));
        let delta = match a.norm {
            Norm::Linf => (xa.clone() + sign(&g) * a.step_size as f32 - x.clone())
                .clamp(-a.eps as f32, a.eps as f32),
            Norm::L2 => project_l2(
                xa.clone() + normalize_rows(&g) * a.step_size as f32 - x.clone(),
                a.eps as f32,
            ),
        };
        xa = (x.clone() + delta).clamp(0.0, 1.0);
    }
    let clean = net.forward(x.clone().traced(Gradients::leaky()), Mode::Train);
    let (clean, tape) = clean.split_tape();
    let adv = net.forward(xa.put_tape(tape), Mode::Train);
    let kl = kl_mean(clean.clone(), adv) * beta;
    let (kl, tape) = kl.split_tape();
    let ce = ce_mean(clean.clone().put_tape(tape), &y.onehot);
    StepOutput {
        loss: ce + kl.retaped::<OwnedTape<f32, D>>(),
        logits: clean,
    }
}
