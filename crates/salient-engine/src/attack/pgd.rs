//! Projected gradient descent (Madry et al. 2018) under Linf or L2, on the [0, 1] box.
//!
//! Linf: x_{t+1} = clip_[0,1]( x + clip_[-eps,eps]( x_t + a * sign(g_t) - x ) )
//! L2:   x_{t+1} = clip_[0,1]( x + P_eps( x_t + a * g_t / ||g_t||_2 - x ) )
//! where g_t is the input gradient of the attack loss at x_t and P_eps projects each example's
//! perturbation onto the L2 ball of radius eps. With one step of size a = 1.25 eps and a random
//! start this is the fast FGSM-RS of Wong et al. (2020); with no random start and a = eps, FGSM.
//!
//! Random start: Linf, delta ~ U(-eps, eps)^n; L2, delta = eps * u * z / ||z|| with z ~ N(0, I)
//! and u ~ U(0, 1) (a random direction at a random radius inside the ball).
//!
//! Evaluation ([`pgd_restarts`]): the network in eval mode, cross-entropy, `restarts` runs, each
//! iterate checked, an example broken as soon as any iterate of any restart misclassifies it.
use super::rows::{
    bucket, padded, put_rows, take_rows, with_restarts, AttackOutcome, FirstAdversarial,
};
use crate::grad::input_gradient;
use crate::losses::{ce_sum, one_hot, Logits};
use crate::ops::{normalize_rows, project_l2, sign, Mat};
use crate::saliency::noise::standard_normal;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use salient_ir::{InnerLoss, Norm};
use salient_nn::{Mode, Network};

/// The loss an attack climbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackLoss {
    /// Cross-entropy of the true label.
    Ce,
    /// Carlini-Wagner margin max_{j != y} z_j - z_y (on logits).
    CwMargin,
}

impl From<InnerLoss> for AttackLoss {
    fn from(l: InnerLoss) -> Self {
        match l {
            InnerLoss::Ce => AttackLoss::Ce,
            InnerLoss::CwMargin => AttackLoss::CwMargin,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PgdConfig {
    pub norm: Norm,
    pub eps: f32,
    pub step_size: f32,
    pub steps: usize,
    pub random_start: bool,
    pub loss: AttackLoss,
}

/// The attack loss summed over the batch (so each example's gradient is its own).
pub fn attack_loss<D: Device<f32>>(
    loss: AttackLoss,
    logits: Logits<D, OwnedTape<f32, D>>,
    onehot: &Mat<D>,
) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>> {
    match loss {
        AttackLoss::Ce => ce_sum(logits, onehot),
        AttackLoss::CwMargin => {
            // z_y and the largest other logit (the true class pushed down by a large constant).
            let (z, tape) = logits.split_tape();
            let zy = (z.clone().put_tape(tape) * onehot.clone()).sum::<(usize,), Axis<1>>();
            let (zy, tape) = zy.split_tape();
            let other = (z.put_tape(tape) - onehot.clone() * 1e4).max::<(usize,), Axis<1>>();
            (other - zy.retaped::<OwnedTape<f32, D>>()).sum()
        }
    }
}

/// A random starting perturbation inside the eps-ball (see the module docs), on the device.
pub fn random_start<D: Device<f32>>(
    dev: &D,
    shape: (usize, usize),
    norm: Norm,
    eps: f32,
    rng: &mut ChaCha8Rng,
) -> Mat<D> {
    let (b, n) = shape;
    let mut v = vec![0.0f32; b * n];
    match norm {
        Norm::Linf => v.iter_mut().for_each(|d| *d = rng.gen_range(-eps..=eps)),
        Norm::L2 => {
            for row in v.chunks_mut(n) {
                let mut ss = 0.0f64;
                for d in row.iter_mut() {
                    let z = standard_normal(rng);
                    *d = z as f32;
                    ss += z * z;
                }
                let r = eps as f64 * rng.gen::<f64>() / ss.sqrt().max(1e-12);
                row.iter_mut().for_each(|d| *d = (*d as f64 * r) as f32);
            }
        }
    }
    dev.tensor_from_vec(v, shape)
}

/// Run PGD from the clean batch `x` (pixels in [0, 1]) with labels `onehot`. The network is used
/// in `mode` (eval for evaluation attacks; training regimes choose). Returns the adversarial batch.
pub fn pgd<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    onehot: &Mat<D>,
    cfg: &PgdConfig,
    mode: Mode,
    rng: &mut ChaCha8Rng,
) -> Mat<D> {
    let dev = x.device().clone();
    let shape = *x.shape();
    let mut delta: Mat<D> = if cfg.random_start {
        random_start(&dev, shape, cfg.norm, cfg.eps, rng)
    } else {
        dev.zeros_like(&shape)
    };
    // Keep x + delta inside the box from the start.
    delta = (x.clone() + delta).clamp(0.0, 1.0) - x.clone();
    for _ in 0..cfg.steps {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        let xa = x.clone() + delta.clone();
        let (g, _) = input_gradient(net, &xa, mode, |z| attack_loss(cfg.loss, z, onehot));
        delta = pgd_step(x, delta, &g, cfg);
    }
    (x.clone() + delta).clamp(0.0, 1.0)
}

/// One PGD update of the perturbation `delta` given the gradient `g` at `x + delta`: the ascent
/// step, the projection onto the eps-ball, then onto the box (so that x + delta is in [0, 1]).
pub fn pgd_step<D: Device<f32>>(x: &Mat<D>, delta: Mat<D>, g: &Mat<D>, cfg: &PgdConfig) -> Mat<D> {
    let delta = match cfg.norm {
        Norm::Linf => (delta + sign(g) * cfg.step_size).clamp(-cfg.eps, cfg.eps),
        Norm::L2 => project_l2(delta + normalize_rows(g) * cfg.step_size, cfg.eps),
    };
    (x.clone() + delta).clamp(0.0, 1.0) - x.clone()
}

/// PGD for evaluation: `restarts` runs (each from its own random start; one run when there is
/// no random start, since every run would be the same), network in eval mode, labels on the
/// host. Each iterate is checked: an example is broken as soon as any iterate of any restart
/// misclassifies it, keeps that first adversarial example, and leaves the batch (in eval mode
/// examples do not interact, so the others' iterates are unchanged). Robust examples get the
/// last iterate of the last restart.
pub fn pgd_restarts<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    cfg: &PgdConfig,
    restarts: usize,
    rng: &mut ChaCha8Rng,
) -> AttackOutcome<D> {
    let classes = net.def().output.numel();
    let restarts = if cfg.random_start { restarts } else { 1 };
    with_restarts(x, labels, restarts, |x0, labels| {
        let dev = x0.device().clone();
        let shape = *x0.shape();
        let mut seen = FirstAdversarial::new(x0, classes);
        // The examples still attacked (indices into x0), one per leading row of the working set
        // (x, delta, onehot); further rows are padding (see `bucket`).
        let mut rows: Vec<usize> = (0..shape.0).collect();
        let mut x = x0.clone();
        let mut onehot = one_hot(&dev, labels, classes);
        let mut delta: Mat<D> = if cfg.random_start {
            random_start(&dev, shape, cfg.norm, cfg.eps, rng)
        } else {
            dev.zeros_like(&shape)
        };
        delta = (x.clone() + delta).clamp(0.0, 1.0) - x.clone();
        for _ in 0..cfg.steps {
            if crate::stop::requested() {
                break; // the caller discards this batch (crate::stop)
            }
            let xa = x.clone() + delta.clone();
            let (g, logits) =
                input_gradient(net, &xa, Mode::Eval, |z| attack_loss(cfg.loss, z, &onehot));
            let wrong = seen.observe_rows(&xa, &logits.as_vec(), &rows, labels);
            delta = pgd_step(&x, delta, &g, cfg);
            if wrong.iter().any(|&w| w) {
                let keep: Vec<usize> = (0..rows.len()).filter(|&j| !wrong[j]).collect();
                if keep.is_empty() {
                    return seen.finish(x0.clone());
                }
                let work = padded(&keep, bucket(keep.len(), shape.0));
                (x, delta, onehot) = (
                    take_rows(&x, &work),
                    take_rows(&delta, &work),
                    take_rows(&onehot, &work),
                );
                rows = keep.iter().map(|&j| rows[j]).collect();
            }
        }
        let last = (x + delta).clamp(0.0, 1.0);
        let logits = net.forward(last.clone(), Mode::Eval).as_vec();
        seen.observe_rows(&last, &logits, &rows, labels);
        seen.finish(put_rows(x0.clone(), last, &rows))
    })
}

/// PGD as an evaluation [`super::Attack`] ([`pgd_restarts`], cross-entropy).
#[derive(Clone, Debug)]
pub struct Pgd {
    cfg: PgdConfig,
    restarts: usize,
}

impl Pgd {
    pub fn new(cfg: PgdConfig, restarts: usize) -> Result<Self, super::AttackError> {
        let a = cfg.step_size;
        if !(a.is_finite() && a >= 0.0) {
            return super::invalid(format!("step_size must be a finite number >= 0, got {a}"));
        }
        super::check_counts(cfg.steps, restarts)?;
        Ok(Pgd { cfg, restarts })
    }
}

impl<D: Device<f32>> super::Attack<D> for Pgd {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> AttackOutcome<D> {
        pgd_restarts(net, x, labels, &self.cfg, self.restarts, rng)
    }
}
