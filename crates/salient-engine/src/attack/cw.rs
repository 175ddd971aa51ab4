//! The Carlini-Wagner L2 attack (Carlini and Wagner 2017, "Towards evaluating the robustness of
//! neural networks", IEEE S&P, Section V-A), untargeted, on logits, network in eval mode: a
//! minimum-norm attack (see [`super::min_norm`]).
//!
//! The box constraint is removed by the change of variables x'(w) = (tanh(w) + 1) / 2, which is
//! in [0, 1] for every w. For a constant c > 0, per example
//!
//!   minimise_w  ||x'(w) - x||_2^2 + c * max(z_y(x'(w)) - max_(j != y) z_j(x'(w)), -kappa)
//!
//! (implemented, as in the authors' code and Foolbox, as c * max(z_y - max_(j != y) z_j + kappa,
//! 0), which differs by the constant c kappa) with Adam (learning rate `lr`, beta 0.9 / 0.999,
//! epsilon 1e-8), from w_0 = atanh((2x - 1) * 0.999999) (the clean image, slightly pulled into
//! the open box), for `steps` steps. Every evaluated point x' that is adversarial with
//! confidence kappa (argmax_j (z_j + kappa [j = y]) != y) and closer to x than the best so far
//! is kept: the result is the smallest adversarial point over all steps and all searches.
//!
//! Binary search over c, per example, `binary_steps` times, starting at c = `initial_const`:
//! after a search that found an adversarial point, c becomes an upper bound, otherwise a lower
//! bound; then c <- 10 c while there is no upper bound, else c <- (lower + upper) / 2. With 10 or
//! more searches the last one repeats the smallest successful c (capped at 1e10). Adam's state
//! is reset for every search.
//!
//! Early abort (the authors' and Foolbox's `abort_early`, always on here): every ceil(steps /
//! 10) steps an example's loss is compared with its value at the previous check; unless it fell
//! by at least 0.01 %, the example stops for the rest of that search. The authors and Foolbox
//! check the loss summed over the batch; here each example is checked on its own loss, so an
//! example's result does not depend on the other examples of its batch.
//!
//! Defaults ([`CwConfig::default`]): binary_steps 9, lr 0.01, initial_const 1e-3, confidence
//! 0, as in the authors' code and Foolbox's `L2CarliniWagnerAttack`; steps 1000 (they use
//! 10 000: 1000 with early abort keeps a CPU evaluation affordable, and raising `steps` only
//! makes the attack stronger).
//!
//! The gradient in w is (grad_x' L + 2 (x' - x)) * dx'/dw with dx'/dw = (1 - tanh(w)^2) / 2 =
//! 2 x' (1 - x'), where grad_x' L is the input gradient of sum_i c_i max(z_y - z_r + kappa, 0)
//! (r the strongest rival at x', a piecewise-constant choice), one backward pass per step.
//! Examples that stop early leave the working batch, which is padded to few distinct sizes
//! ([`super::rows::bucket`]).
//!
//! [`cw_l2`] runs with any settings (no step: no adversarial example); [`CwConfig::check`]
//! reports the settings a spec must not have as an error.
use super::min_norm::{finish, MinNormOutcome};
use super::rows::{bucket, padded, put_rows_from, take_rows, AttackError};
use crate::grad::input_gradient;
use crate::ops::Mat;
use dfdx::prelude::*;
use salient_ir::Norm;
use salient_nn::{Mode, Network};

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CwConfig {
    /// Adam steps per binary-search step.
    pub steps: usize,
    /// Binary-search steps over the constant c.
    pub binary_steps: usize,
    /// Adam's learning rate (in tanh space).
    pub lr: f32,
    /// The first c.
    pub initial_const: f32,
    /// kappa: the margin by which the rival must beat the label.
    pub confidence: f32,
}

impl Default for CwConfig {
    /// binary_steps 9, lr 0.01, initial_const 1e-3, confidence 0 (the authors' and Foolbox's
    /// defaults); steps 1000 (theirs: 10 000; see the module docs).
    fn default() -> Self {
        CwConfig {
            steps: 1000,
            binary_steps: 9,
            lr: 0.01,
            initial_const: 1e-3,
            confidence: 0.0,
        }
    }
}

impl CwConfig {
    /// Settings the attack cannot run with, for a model with `classes` classes: at least one
    /// step and one search, `lr` and `initial_const` finite and > 0, `confidence` finite and
    /// >= 0, at least 2 classes.
    pub fn check(&self, classes: usize) -> Result<(), AttackError> {
        let err = |m: String| Err(AttackError(format!("cw: {m}")));
        if self.steps == 0 || self.binary_steps == 0 {
            return err(format!(
                "steps ({}) and binary_steps ({}) must be at least 1",
                self.steps, self.binary_steps
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return err(format!("lr must be a finite number > 0, got {}", self.lr));
        }
        if !(self.initial_const.is_finite() && self.initial_const > 0.0) {
            return err(format!(
                "initial_const must be a finite number > 0, got {}",
                self.initial_const
            ));
        }
        if !(self.confidence.is_finite() && self.confidence >= 0.0) {
            return err(format!(
                "confidence must be a finite number >= 0, got {}",
                self.confidence
            ));
        }
        if classes < 2 {
            return err(format!("needs at least 2 classes, the model has {classes}"));
        }
        Ok(())
    }
}

/// Per example, the strongest rival class r = argmax_(j != y) z_j (ties to the lower index) of
/// host logits rows.
fn rivals(logits: &[f32], classes: usize, labels: &[usize]) -> Vec<usize> {
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &y)| {
            let mut best = if y == 0 { 1 } else { 0 };
            for (j, &v) in row.iter().enumerate() {
                if j != y && v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Adversarial with confidence kappa: argmax_j (z_j + kappa [j = y]) != y, ties to the lowest
/// index (as [`crate::losses::argmax_rows`]).
fn adversarial(row: &[f32], y: usize, kappa: f32) -> bool {
    let mut best = 0;
    let val = |j: usize| if j == y { row[j] + kappa } else { row[j] };
    for j in 1..row.len() {
        if val(j) > val(best) {
            best = j;
        }
    }
    best != y
}

/// Carlini-Wagner L2 on the batch `x` (B, N) of correctly classified examples with labels
/// `labels` (see the module docs). The network runs in eval mode.
pub fn cw_l2<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    cfg: &CwConfig,
) -> MinNormOutcome<D> {
    let (b, _) = *x.shape();
    let classes = net.def().output.numel();
    if b == 0 || classes < 2 {
        return finish(net, x, x.clone(), labels, Norm::L2);
    }
    let dev = x.device().clone();
    let kappa = cfg.confidence;
    // w_0 = atanh(u), u = (2x - 1) * 0.999999, as 0.5 * ln((1 + u) / (1 - u)).
    let u = (x.clone() * 2.0 - 1.0) * 0.999999;
    let w0 = ((u.clone() + 1.0) / (u.negate() + 1.0)).ln() * 0.5;

    let mut consts = vec![cfg.initial_const as f64; b];
    let mut lower = vec![0.0f64; b];
    let mut upper = vec![f64::INFINITY; b];
    let mut best_norm = vec![f32::INFINITY; b];
    let mut best_adv = x.clone();
    let check_every = cfg.steps.div_ceil(10).max(1);

    for search in 0..cfg.binary_steps {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        if search + 1 == cfg.binary_steps && cfg.binary_steps >= 10 {
            for (c, &u) in consts.iter_mut().zip(&upper) {
                *c = u.min(1e10);
            }
        }
        let mut found = vec![false; b];
        let mut prev_loss = vec![f32::INFINITY; b];
        // The working set: example indices `rows`, the leading rows of xs, w, m, v.
        let mut rows: Vec<usize> = (0..b).collect();
        let mut work = rows.clone();
        let mut xs = x.clone();
        let mut w = w0.clone();
        let mut m: Mat<D> = dev.zeros_like(x.shape());
        let mut v: Mat<D> = dev.zeros_like(x.shape());
        for step in 0..cfg.steps {
            if crate::stop::requested() {
                break; // the caller discards this batch (crate::stop)
            }
            let n_work = work.len();
            let xp = (w.clone().tanh() + 1.0) * 0.5;
            let ys: Vec<usize> = work.iter().map(|&i| labels[i]).collect();
            let cs = dev.tensor_from_vec(
                work.iter().map(|&i| consts[i] as f32).collect::<Vec<_>>(),
                (n_work,),
            );
            let (g, z) = input_gradient(net, &xp, Mode::Eval, |z| {
                let r = rivals(&z.as_vec(), classes, &ys);
                let mut coef = vec![0.0f32; n_work * classes];
                for (j, (&y, &r)) in ys.iter().zip(&r).enumerate() {
                    coef[j * classes + y] = 1.0;
                    coef[j * classes + r] = -1.0;
                }
                let coef = dev.tensor_from_vec(coef, (n_work, classes));
                let margin = (z * coef).sum::<(usize,), Axis<1>>();
                ((margin + kappa).relu() * cs).sum()
            });
            let diff = xp.clone() - xs.clone();
            let sq = diff.clone().square().sum::<(usize,), Axis<1>>().as_vec();
            let logits = z.as_vec();

            let mut newly = Vec::new();
            let mut stop = vec![false; rows.len()];
            let at_check = step % check_every == 0;
            for (j, &i) in rows.iter().enumerate() {
                let row = &logits[j * classes..(j + 1) * classes];
                let y = labels[i];
                let l2 = sq[j].sqrt();
                if adversarial(row, y, kappa) {
                    found[i] = true;
                    if l2 < best_norm[i] {
                        best_norm[i] = l2;
                        newly.push((i, j));
                    }
                }
                if at_check {
                    let r = rivals(row, classes, &[y])[0];
                    let hinge = (row[y] - row[r] + kappa).max(0.0);
                    let loss = sq[j] + consts[i] as f32 * hinge;
                    // Progress only if the loss fell by 0.01 % (a NaN loss stops the example).
                    if loss <= 0.9999 * prev_loss[i] {
                        prev_loss[i] = loss;
                    } else {
                        stop[j] = true;
                    }
                }
            }
            if !newly.is_empty() {
                best_adv = put_rows_from(best_adv, xp.clone(), &newly);
            }

            // Adam on w with the gradient through the change of variables.
            let t = (step + 1) as i32;
            let gw = (g + diff * 2.0) * (xp.clone() * (xp.negate() + 1.0)) * 2.0;
            m = m * BETA1 + gw.clone() * (1.0 - BETA1);
            v = v * BETA2 + gw.square() * (1.0 - BETA2);
            let m_hat = m.clone() / (1.0 - BETA1.powi(t));
            let v_hat = v.clone() / (1.0 - BETA2.powi(t));
            w = w - m_hat * cfg.lr / (v_hat.sqrt() + ADAM_EPS);

            if stop.iter().any(|&s| s) {
                let keep: Vec<usize> = (0..rows.len()).filter(|&j| !stop[j]).collect();
                if keep.is_empty() {
                    break;
                }
                let sub = padded(&keep, bucket(keep.len(), b));
                (xs, w, m, v) = (
                    take_rows(&xs, &sub),
                    take_rows(&w, &sub),
                    take_rows(&m, &sub),
                    take_rows(&v, &sub),
                );
                rows = keep.iter().map(|&j| rows[j]).collect();
                work = padded(&rows, sub.len());
            }
        }
        for i in 0..b {
            if found[i] {
                upper[i] = upper[i].min(consts[i]);
            } else {
                lower[i] = lower[i].max(consts[i]);
            }
            consts[i] = if upper[i].is_infinite() {
                consts[i] * 10.0
            } else {
                (lower[i] + upper[i]) / 2.0
            };
        }
    }
    finish(net, x, best_adv, labels, Norm::L2)
}

/// Carlini-Wagner L2 as an evaluation [`super::Attack`] (a minimum-norm attack: its outcome
/// carries the per-example norms).
#[derive(Clone, Debug)]
pub struct Cw {
    cfg: CwConfig,
}

impl Cw {
    pub fn new(cfg: CwConfig, classes: usize) -> Result<Self, AttackError> {
        cfg.check(classes)?;
        Ok(Cw { cfg })
    }
}

impl<D: Device<f32>> super::Attack<D> for Cw {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        _rng: &mut rand_chacha::ChaCha8Rng,
    ) -> super::AttackOutcome<D> {
        cw_l2(net, x, labels, &self.cfg).into()
    }
}
