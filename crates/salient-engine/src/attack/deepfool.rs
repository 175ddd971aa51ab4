//! DeepFool (Moosavi-Dezfooli, Fawzi, Frossard, CVPR 2016, "DeepFool: a simple and accurate
//! method to fool deep neural networks", Algorithm 2, multi-class), L2 and Linf, on logits,
//! network in eval mode: a minimum-norm attack (see [`super::min_norm`]).
//!
//! Each example's candidate classes are the `candidates - 1` classes other than its label y
//! with the largest clean logits (ties to the lower index); `candidates` is clamped to
//! [2, classes]. At step t, at the current point x_t, with f_k = z_k(x_t) - z_y(x_t) and
//! w_k = grad_x f_k(x_t) for every candidate k, every class boundary is linearised and the
//! closest one taken:
//!
//!   l = argmin_k |f_k| / ||w_k||_q        (q = 2 for L2; q = 1, the dual norm, for Linf)
//!   d = |f_l| / (||w_l||_q + 1e-8) + 1e-4
//!   r_t = d w_l / (||w_l||_2 + 1e-8)      (L2)
//!   r_t = d sign(w_l)                     (Linf)
//!   x_(t+1) = clip_[0,1]( x + (1 + overshoot) sum_(s<=t) r_s )
//!
//! An example stops at the first x_t the network misclassifies (argmax_j z_j != y, ties to the
//! lowest index), at most `steps` steps; its final point is checked once more, and it counts
//! as broken with norm ||x_t - x|| (after clipping) or as unbroken (infinite norm) if the last
//! point is still classified correctly. This is Foolbox's `L2DeepFoolAttack` /
//! `LinfDeepFoolAttack` with `loss="logits"` (defaults steps 50, candidates 10, overshoot 0.02;
//! the 1e-8 and 1e-4 terms as there and in the authors' code): the perturbations are
//! accumulated unclipped and the overshoot applies to their sum.
//!
//! On a linear model z = W^T x + b with two classes the first step lands exactly
//! (1 + overshoot) (|f| / ||w_y - w_o||_q + 1e-4) away from x in the attack's norm, past the
//! boundary (when the box does not bind), which the tests check.
//!
//! The gradients of the K - 1 candidates are K - 1 backward passes over the working batch,
//! each of sum_i (z_(i, k_i) - z_(i, y_i)) (in eval mode examples are independent, so every
//! example gets its own gradient). Examples that are broken leave the working batch, which is
//! padded to few distinct sizes ([`super::rows::bucket`]).
//!
//! [`deepfool`] runs with any settings (no step: no adversarial example; `candidates` clamped);
//! [`DeepFoolConfig::check`] reports the settings a spec must not have as an error.
use super::min_norm::{finish, MinNormOutcome};
use super::rows::{bucket, correct_rows, padded, put_rows, select_rows, take_rows, AttackError};
use crate::grad::input_gradient;
use crate::ops::{row_norms, scale_rows, sign, Mat};
use dfdx::prelude::*;
use salient_ir::Norm;
use salient_nn::{Mode, Network};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeepFoolConfig {
    pub norm: Norm,
    /// Maximum number of steps.
    pub steps: usize,
    /// The accumulated perturbation is scaled by 1 + overshoot.
    pub overshoot: f32,
    /// The label and the `candidates - 1` most likely other classes (clamped to [2, classes]).
    pub candidates: usize,
}

impl DeepFoolConfig {
    /// Foolbox's defaults (steps 50, overshoot 0.02, candidates 10) in `norm`.
    pub fn new(norm: Norm) -> Self {
        DeepFoolConfig {
            norm,
            steps: 50,
            overshoot: 0.02,
            candidates: 10,
        }
    }
}

impl DeepFoolConfig {
    /// Settings the attack cannot run with, for a model with `classes` classes: at least one
    /// step, `overshoot` finite and >= 0, `candidates` >= 2 (larger than `classes` is fine: all
    /// classes are used), at least 2 classes.
    pub fn check(&self, classes: usize) -> Result<(), AttackError> {
        let err = |m: String| Err(AttackError(format!("deepfool: {m}")));
        if self.steps == 0 {
            return err("steps must be at least 1".to_string());
        }
        if !(self.overshoot.is_finite() && self.overshoot >= 0.0) {
            return err(format!(
                "overshoot must be a finite number >= 0, got {}",
                self.overshoot
            ));
        }
        if self.candidates < 2 {
            return err(format!(
                "candidates must be at least 2 (the label and one rival), got {}",
                self.candidates
            ));
        }
        if classes < 2 {
            return err(format!("needs at least 2 classes, the model has {classes}"));
        }
        Ok(())
    }
}

impl Default for DeepFoolConfig {
    /// [`DeepFoolConfig::new`] in L2, the norm of the paper's experiments.
    fn default() -> Self {
        DeepFoolConfig::new(Norm::L2)
    }
}

/// The rivals of each example: the `k` classes other than its label with the largest logits
/// in `logits` (host rows of `classes` values), largest first, ties to the lower index.
pub fn candidate_classes(
    logits: &[f32],
    classes: usize,
    labels: &[usize],
    k: usize,
) -> Vec<Vec<usize>> {
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &y)| {
            let mut order: Vec<usize> = (0..classes).filter(|&j| j != y).collect();
            // A stable sort: equal logits keep the lower index first.
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order.truncate(k);
            order
        })
        .collect()
}

/// DeepFool on the batch `x` (B, N) of correctly classified examples with labels `labels`
/// (see the module docs). The network runs in eval mode.
pub fn deepfool<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    cfg: &DeepFoolConfig,
) -> MinNormOutcome<D> {
    let (b, _) = *x.shape();
    let classes = net.def().output.numel();
    if b == 0 || classes < 2 {
        // Nothing to attack (with one class nothing can be misclassified).
        return finish(net, x, x.clone(), labels, cfg.norm);
    }
    let dev = x.device().clone();
    let k = cfg.candidates.clamp(2, classes) - 1;
    let clean = net.forward(x.clone(), Mode::Eval).as_vec();
    let rivals = candidate_classes(&clean, classes, labels, k);
    let scale = 1.0 + cfg.overshoot;

    // The final points of every example; rows still attacked are updated as they finish.
    let mut out = x.clone();
    // The working set: example indices `rows` (leading rows of x0, xt, total; the rest is padding).
    let mut rows: Vec<usize> = (0..b).collect();
    let mut work = rows.clone();
    let mut x0 = x.clone();
    let mut xt = x.clone();
    let mut total: Mat<D> = dev.zeros_like(x.shape());
    for _ in 0..cfg.steps {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        let w = work.len();
        let mut best_dist = vec![f32::INFINITY; w];
        let mut best_l2 = vec![0.0f32; w];
        let mut best_g: Option<Mat<D>> = None;
        let mut logits: Vec<f32> = Vec::new();
        let mut kk = 0;
        while kk < k {
            let coef = coefficients(&dev, &work, labels, &rivals, kk, classes);
            let (g, z) = input_gradient(net, &xt, Mode::Eval, |z| (z * coef).sum());
            if kk == 0 {
                logits = z.as_vec();
                // Examples already misclassified at x_t are done.
                let ys: Vec<usize> = work.iter().map(|&i| labels[i]).collect();
                let correct = correct_rows(&logits, classes, &ys);
                let keep: Vec<usize> = (0..rows.len()).filter(|&j| correct[j]).collect();
                if keep.len() < rows.len() {
                    out = put_rows(out, xt.clone(), &rows);
                    if keep.is_empty() {
                        return finish(net, x, out, labels, cfg.norm);
                    }
                    let sub = padded(&keep, bucket(keep.len(), b));
                    (x0, xt, total) = (
                        take_rows(&x0, &sub),
                        take_rows(&xt, &sub),
                        take_rows(&total, &sub),
                    );
                    logits = sub
                        .iter()
                        .flat_map(|&j| logits[j * classes..(j + 1) * classes].to_vec())
                        .collect();
                    rows = keep.iter().map(|&j| rows[j]).collect();
                    work = padded(&rows, sub.len());
                    best_dist = vec![f32::INFINITY; work.len()];
                    best_l2 = vec![0.0; work.len()];
                    // The gradient of the dropped rows' candidate is recomputed on the new set.
                    continue;
                }
            }
            let l2 = row_norms(&g).as_vec();
            let qn = match cfg.norm {
                Norm::L2 => l2.clone(),
                Norm::Linf => g.clone().abs().sum::<(usize,), Axis<1>>().as_vec(),
            };
            let mut better = vec![false; work.len()];
            for (j, &i) in work.iter().enumerate() {
                let row = &logits[j * classes..(j + 1) * classes];
                let f = row[rivals[i][kk]] - row[labels[i]];
                let dist = f.abs() / (qn[j] + 1e-8);
                // Strictly smaller: ties keep the earlier (more likely) rival, as argmin does.
                if dist < best_dist[j] {
                    best_dist[j] = dist;
                    best_l2[j] = l2[j];
                    better[j] = true;
                }
            }
            best_g = Some(match best_g {
                None => g,
                Some(prev) => select_rows(&better, g, prev),
            });
            kk += 1;
        }
        let g = best_g.expect("at least one rival class");
        let d: Vec<f32> = best_dist.iter().map(|&t| t + 1e-4).collect();
        let step = match cfg.norm {
            Norm::L2 => {
                let s: Vec<f32> = d
                    .iter()
                    .zip(&best_l2)
                    .map(|(&d, &n)| d / (n + 1e-8))
                    .collect();
                scale_rows(g, dev.tensor_from_vec(s, (d.len(),)))
            }
            Norm::Linf => scale_rows(sign(&g), dev.tensor_from_vec(d.clone(), (d.len(),))),
        };
        total = total + step;
        xt = (x0.clone() + total.clone() * scale).clamp(0.0, 1.0);
    }
    out = put_rows(out, xt, &rows);
    finish(net, x, out, labels, cfg.norm)
}

/// The (W, classes) matrix whose row j is e_(k-th rival) - e_y for example `work[j]`, so that
/// sum(z * coef) = sum_j (z_(j, k_j) - z_(j, y_j)).
fn coefficients<D: Device<f32>>(
    dev: &D,
    work: &[usize],
    labels: &[usize],
    rivals: &[Vec<usize>],
    kk: usize,
    classes: usize,
) -> Mat<D> {
    let mut v = vec![0.0f32; work.len() * classes];
    for (j, &i) in work.iter().enumerate() {
        v[j * classes + rivals[i][kk]] += 1.0;
        v[j * classes + labels[i]] -= 1.0;
    }
    dev.tensor_from_vec(v, (work.len(), classes))
}

/// DeepFool as an evaluation [`super::Attack`] (a minimum-norm attack: its outcome carries the
/// per-example norms).
#[derive(Clone, Debug)]
pub struct DeepFool {
    cfg: DeepFoolConfig,
}

impl DeepFool {
    pub fn new(cfg: DeepFoolConfig, classes: usize) -> Result<Self, AttackError> {
        cfg.check(classes)?;
        Ok(DeepFool { cfg })
    }
}

impl<D: Device<f32>> super::Attack<D> for DeepFool {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        _rng: &mut rand_chacha::ChaCha8Rng,
    ) -> super::AttackOutcome<D> {
        deepfool(net, x, labels, &self.cfg).into()
    }
}
