//! FAB, the fast adaptive boundary attack (Croce and Hein, ICML 2020, "Minimally distorted
//! adversarial examples with a fast adaptive boundary attack"), Linf and L2, untargeted (FAB)
//! and targeted (FAB-T), as in the authors' code (github.com/fra31/auto-attack,
//! `autoattack/fab_base.py`, `fab_pt.py`, `fab_projections.py`), network in eval mode, on logits.
//!
//! FAB looks for the adversarial example of smallest norm; AutoAttack counts it only when its
//! norm is at most eps. One run (`n_iter` steps) on the batch x_orig (labels y), from x^(0) =
//! x_orig (first run) or a random start (later restarts):
//!
//! 1. Linearise the logit differences at x = x^(k): for each class l != y (FAB) or for the target
//!    t only (FAB-T), f_l = z_l(x) - z_y(x) and w_l = grad_x f_l (one backward pass per class).
//! 2. Pick the closest linearised boundary, l* = argmin_l |f_l| / (||w_l||_q + 1e-12), q the dual
//!    norm (q = 1 for Linf, q = 2 for L2); its hyperplane is H = { u : <w, u> = b } with w = w_l*
//!    and b = <w, x> - f_l*.
//! 3. Project both the iterate and the original point onto H within the [0, 1] box:
//!    d1 = proj_p(x, H), d2 = proj_p(x_orig, H) (the minimal-norm displacement onto H with the
//!    endpoint in the box; when H misses the box, the box corner closest to it).
//! 4. Biased step, alpha = min(max(a1 / (a1 + a2), 0), alpha_max), a1 = max(||d1||_p, 1e-8),
//!    a2 = max(||d2||_p, 1e-8):
//!    `x^(k+1) = clip_[0,1]((1 - alpha) (x + eta d1) + alpha (x_orig + eta d2))`.
//! 5. If x^(k+1) is misclassified: keep it when its norm ||x^(k+1) - x_orig||_p is the smallest
//!    found so far, and step back towards the original point,
//!    `x^(k+1) <- x_orig + beta (x^(k+1) - x_orig)`.
//!
//! Defaults (the authors' code and AutoAttack's `standard` version, [`FabConfig::autoattack`]):
//! n_iter = 100, n_restarts = 1, alpha_max = 0.1, eta = 1.05 (overshoot), beta = 0.9 (backward
//! step); FAB-T targets, one after the other, the classes with the 2nd, 3rd, ..., (k+1)-th
//! largest clean logit (k = n_target_classes = 9), each on the examples still robust.
//!
//! Random restarts use the code's starting rule (restart r > 0 of a run; the first starts at
//! x_orig): x^(0) = clip_[0,1](x_orig + eps/2 t / ||t||_p), t ~ U(-1, 1)^n (Linf) or N(0, I)
//! (L2). Restarts and target classes attack only the examples no earlier one broke.
//!
//! The projections are the authors' sort-based algorithms (`projection_linf`, `projection_l2`),
//! transcribed per example on the host in f64: [`projection_linf`], [`projection_l2`]. Where
//! the code divides by a zero sum of weights (a hyperplane that no free coordinate can reach)
//! it would produce NaN; here the step length is 0 instead.
//!
//! Outcome: an example is broken when a misclassified point with ||x_adv - x||_p <= eps was
//! found (checked again at the end, as AutoAttack does); its `x_adv` is the smallest-norm such
//! point. Robust examples get the clean input as `x_adv`. Every `x_adv` is in the eps-ball and
//! the [0, 1] box. L1 (the code's `projection_l1`) is not offered: [`salient_ir::Norm`] has no L1.
//!
//! `tests/attack_fab.rs` checks the outcome against the authors' code run on a small network
//! (`tests/fixtures/fab/make_fixture.py`): the same robust flags, the same norms to 2.5e-5.
use super::rows::{bucket, bucket_fine, padded, put_rows, take_rows, AttackError, AttackOutcome};
use crate::grad::input_gradient;
use crate::losses::argmax_rows;
use crate::ops::Mat;
use crate::saliency::noise::standard_normal;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use salient_ir::Norm;
use salient_nn::{Mode, Network};

/// FAB's settings (the authors' names in parentheses).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FabConfig {
    pub norm: Norm,
    /// The budget an adversarial example must meet to count (`eps`); also sets the radius
    /// eps / 2 of random restarts.
    pub eps: f32,
    /// Iterations per run (`n_iter`).
    pub steps: usize,
    /// Runs per target (`n_restarts`); runs after the first start from a random point.
    pub restarts: usize,
    /// 0: untargeted FAB; k: FAB-T over the k classes with the highest clean logits after the
    /// true one (`n_target_classes`), at most classes - 1 (larger values are cut to that).
    pub targets: usize,
    /// Largest weight of the original point in the biased step (`alpha_max`).
    pub alpha_max: f32,
    /// Overshoot of the projection step (`eta`).
    pub eta: f32,
    /// Backward step towards the original point after a success (`beta`).
    pub beta: f32,
}

impl FabConfig {
    /// AutoAttack's `standard` settings: 100 iterations, 1 restart, alpha_max 0.1, eta 1.05,
    /// beta 0.9, and for FAB-T the 9 classes after the true one. (AutoAttack's `plus` version
    /// runs the untargeted FAB with 5 restarts: set `restarts` for that.)
    pub fn autoattack(norm: Norm, eps: f32, targeted: bool) -> Self {
        FabConfig {
            norm,
            eps,
            steps: 100,
            restarts: 1,
            targets: if targeted { 9 } else { 0 },
            alpha_max: 0.1,
            eta: 1.05,
            beta: 0.9,
        }
    }

    /// Check the settings for a model with `classes` outputs.
    pub fn validate(&self, classes: usize) -> Result<(), AttackError> {
        let err = |m: String| Err(AttackError(format!("FAB: {m}")));
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return err(format!(
                "eps must be a finite number >= 0, got {}",
                self.eps
            ));
        }
        if self.steps == 0 || self.restarts == 0 {
            return err(format!(
                "steps ({}) and restarts ({}) must be at least 1",
                self.steps, self.restarts
            ));
        }
        if !(0.0..=1.0).contains(&self.alpha_max) {
            return err(format!(
                "alpha_max must be in [0, 1], got {}",
                self.alpha_max
            ));
        }
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return err(format!("eta must be a finite number > 0, got {}", self.eta));
        }
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            return err(format!("beta must be in (0, 1], got {}", self.beta));
        }
        if classes < 2 {
            return err(format!(
                "it needs at least 2 classes; the model has {classes}"
            ));
        }
        if self.targets > classes - 1 {
            return err(format!(
                "{} target classes asked for, but a model with {classes} classes has only {} \
                 classes besides the true one",
                self.targets,
                classes - 1
            ));
        }
        Ok(())
    }
}

/// FAB or FAB-T as an evaluation [`super::Attack`], its settings checked for the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fab {
    cfg: FabConfig,
}

impl Fab {
    pub fn new(cfg: FabConfig, classes: usize) -> Result<Self, AttackError> {
        cfg.validate(classes)?;
        Ok(Fab { cfg })
    }

    pub fn config(&self) -> &FabConfig {
        &self.cfg
    }
}

impl<D: Device<f32>> super::Attack<D> for Fab {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> AttackOutcome<D> {
        fab(net, x, labels, &self.cfg, rng)
    }
}

/// FAB (`cfg.targets == 0`) or FAB-T on the batch `x` (B, N) of correctly classified examples
/// (possibly padded with copies of its first row) with labels `labels` (B entries), network in
/// eval mode. `rng` draws the random restarts only. See the module docs for the outcome.
pub fn fab<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    cfg: &FabConfig,
    rng: &mut ChaCha8Rng,
) -> AttackOutcome<D> {
    let classes = net.def().output.numel();
    let b = x.shape().0;
    let mut out = AttackOutcome::new(x.clone(), vec![true; b]);
    if b == 0 || classes < 2 {
        return out;
    }
    let ranks: Vec<Option<usize>> = if cfg.targets == 0 {
        vec![None]
    } else {
        (1..=cfg.targets.min(classes - 1)).map(Some).collect()
    };
    for rank in ranks {
        for restart in 0..cfg.restarts.max(1) {
            if crate::stop::requested() {
                break; // the caller discards this batch (crate::stop)
            }
            let rows: Vec<usize> = (0..b).filter(|&i| out.robust[i]).collect();
            if rows.is_empty() {
                return out;
            }
            // Random restarts draw a start for every row, padding included: with them, the
            // padding (and so the random stream) stays as it always was.
            let size = match restart {
                0 => bucket_fine(rows.len(), b),
                _ => bucket(rows.len(), b),
            };
            let work = padded(&rows, size);
            let xs = if rows.len() == b {
                x.clone()
            } else {
                take_rows(x, &work)
            };
            let ys: Vec<usize> = work.iter().map(|&i| labels[i]).collect();
            let run = single_run(net, &xs, &ys, cfg, rank, restart > 0, rng);
            for (j, &i) in rows.iter().enumerate() {
                out.robust[i] = run.robust[j];
            }
            out.x_adv = put_rows(out.x_adv, run.x_adv, &rows);
        }
    }
    out
}

/// ||v||_p for the attack's norm (Linf or L2), in f64.
fn norm_p(norm: Norm, v: impl Iterator<Item = f64>) -> f64 {
    match norm {
        Norm::Linf => v.fold(0.0, |m, a| m.max(a.abs())),
        Norm::L2 => v.map(|a| a * a).sum::<f64>().sqrt(),
    }
}

/// ||v||_q for the dual norm (L1 for Linf, L2 for L2), in f64.
fn norm_dual(norm: Norm, v: &[f32]) -> f64 {
    match norm {
        Norm::Linf => v.iter().map(|a| (*a as f64).abs()).sum(),
        Norm::L2 => v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt(),
    }
}

/// One FAB run on `x0` (all rows attacked for `cfg.steps` iterations; no example interacts with
/// another in eval mode). `rank`: FAB-T's target, the rank-th largest clean logit other than
/// the label. Returns the outcome of this run alone.
fn single_run<D: Device<f32>>(
    net: &mut Network<D>,
    x0: &Mat<D>,
    labels: &[usize],
    cfg: &FabConfig,
    rank: Option<usize>,
    random_start: bool,
    rng: &mut ChaCha8Rng,
) -> AttackOutcome<D> {
    let dev = x0.device().clone();
    let (b, n) = *x0.shape();
    let classes = net.def().output.numel();
    let orig = x0.as_vec();
    let targets: Option<Vec<usize>> = rank.map(|r| {
        let clean = net.forward(x0.clone(), Mode::Eval).as_vec();
        clean
            .chunks(classes)
            .zip(labels)
            .map(|(z, &y)| {
                let mut order: Vec<usize> = (0..classes).filter(|&k| k != y).collect();
                order.sort_by(|&p, &q| z[q].total_cmp(&z[p]));
                order[(r - 1).min(order.len() - 1)]
            })
            .collect()
    });
    let mut cur = if random_start {
        start(&orig, n, cfg, rng)
    } else {
        orig.clone()
    };
    let mut adv = orig.clone();
    let mut best = vec![f64::INFINITY; b];
    for _ in 0..cfg.steps {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        let xc: Mat<D> = dev.tensor_from_vec(cur.clone(), (b, n));
        let (w, f) = match &targets {
            Some(t) => linearise_targeted(net, &xc, labels, t),
            None => linearise_closest(net, &xc, labels, cfg.norm),
        };
        host_steps(&mut cur, &orig, &w, &f, n, cfg);
        let xc: Mat<D> = dev.tensor_from_vec(cur.clone(), (b, n));
        let logits = net.forward(xc, Mode::Eval).as_vec();
        let pred = argmax_rows(&logits, classes);
        for i in 0..b {
            if pred[i] == labels[i] {
                continue;
            }
            let (xi, oi) = (&mut cur[i * n..(i + 1) * n], &orig[i * n..(i + 1) * n]);
            let t = norm_p(cfg.norm, xi.iter().zip(oi).map(|(a, o)| (a - o) as f64));
            if t < best[i] {
                best[i] = t;
                adv[i * n..(i + 1) * n].copy_from_slice(xi);
            }
            for (a, o) in xi.iter_mut().zip(oi) {
                *a = (*o as f64 + (*a - *o) as f64 * cfg.beta as f64) as f32;
            }
        }
    }
    // AutoAttack's check: misclassified (predicted again) and within eps.
    let found: Mat<D> = dev.tensor_from_vec(adv.clone(), (b, n));
    let pred = argmax_rows(&net.forward(found, Mode::Eval).as_vec(), classes);
    let robust: Vec<bool> = (0..b)
        .map(|i| !(best[i] <= cfg.eps as f64 && pred[i] != labels[i]))
        .collect();
    for i in (0..b).filter(|&i| robust[i]) {
        adv[i * n..(i + 1) * n].copy_from_slice(&orig[i * n..(i + 1) * n]);
    }
    AttackOutcome::new(dev.tensor_from_vec(adv, (b, n)), robust)
}

/// The random start of restarts (see the module docs), on the host.
fn start(orig: &[f32], n: usize, cfg: &FabConfig, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = orig.to_vec();
    for row in out.chunks_mut(n.max(1)) {
        let t: Vec<f64> = match cfg.norm {
            Norm::Linf => (0..n).map(|_| rng.gen_range(-1.0f64..1.0)).collect(),
            Norm::L2 => (0..n).map(|_| standard_normal(rng)).collect(),
        };
        let scale = norm_p(cfg.norm, t.iter().copied());
        let s = 0.5 * cfg.eps as f64 / scale.max(1e-12);
        for (p, v) in row.iter_mut().zip(&t) {
            *p = (*p as f64 + s * v).clamp(0.0, 1.0) as f32;
        }
    }
    out
}

/// Untargeted linearisation (the code's `get_diff_logits_grads_batch`, one backward pass per
/// class): per row, the gradient w (B x N, host) and value f of z_l - z_y for the class l whose
/// linearised boundary is closest in the dual norm.
fn linearise_closest<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    norm: Norm,
) -> (Vec<f32>, Vec<f32>) {
    let (b, n) = *x.shape();
    let classes = net.def().output.numel();
    let dev = x.device().clone();
    let mut w = vec![0.0f32; b * n];
    let mut f = vec![0.0f32; b];
    let mut closest = vec![f64::INFINITY; b];
    let mut chosen = vec![false; b];
    for k in 0..classes {
        if labels.iter().all(|&y| y == k) {
            continue;
        }
        let mut sel = vec![0.0f32; b * classes];
        for (i, &y) in labels.iter().enumerate() {
            if y != k {
                sel[i * classes + k] = 1.0;
                sel[i * classes + y] = -1.0;
            }
        }
        let sel: Mat<D> = dev.tensor_from_vec(sel, (b, classes));
        let (g, z) = input_gradient(net, x, Mode::Eval, |z| (z * sel).sum());
        let (g, z) = (g.as_vec(), z.as_vec());
        for (i, &y) in labels.iter().enumerate() {
            if y == k {
                continue;
            }
            let gi = &g[i * n..(i + 1) * n];
            let fi = z[i * classes + k] - z[i * classes + y];
            let dist = (fi as f64).abs() / (1e-12 + norm_dual(norm, gi));
            if !chosen[i] || dist < closest[i] {
                (chosen[i], closest[i], f[i]) = (true, dist, fi);
                w[i * n..(i + 1) * n].copy_from_slice(gi);
            }
        }
    }
    (w, f)
}

/// Targeted linearisation (`get_diff_logits_grads_batch_targeted`): per row, the gradient and
/// value of z_t - z_y for the row's target t, in one backward pass.
fn linearise_targeted<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    targets: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let b = x.shape().0;
    let classes = net.def().output.numel();
    let mut sel = vec![0.0f32; b * classes];
    for (i, (&y, &t)) in labels.iter().zip(targets).enumerate() {
        sel[i * classes + t] += 1.0;
        sel[i * classes + y] -= 1.0;
    }
    let sel: Mat<D> = x.device().tensor_from_vec(sel, (b, classes));
    let (g, z) = input_gradient(net, x, Mode::Eval, |z| (z * sel).sum());
    let z = z.as_vec();
    let f = (0..b)
        .map(|i| z[i * classes + targets[i]] - z[i * classes + labels[i]])
        .collect();
    (g.as_vec(), f)
}

/// Steps 2-4 of the module docs for every row of `cur` (B x N, host), rows split over threads
/// unless the batch is tiny. Each row's update is computed alone, so the split does not change
/// the result. (Two sorts of N values per row, about 0.1 ms per MNIST row and step, a tenth of
/// the row's network passes; on one thread the other cores would idle meanwhile.)
fn host_steps(cur: &mut [f32], orig: &[f32], w: &[f32], f: &[f32], n: usize, cfg: &FabConfig) {
    let b = f.len();
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(b);
    if threads <= 1 || b * n < 1 << 12 {
        for (i, &fi) in f.iter().enumerate() {
            let r = i * n..(i + 1) * n;
            step_row(&mut cur[r.clone()], &orig[r.clone()], &w[r], fi, cfg);
        }
        return;
    }
    let per = b.div_ceil(threads);
    std::thread::scope(|s| {
        for (c, chunk) in cur.chunks_mut(per * n).enumerate() {
            s.spawn(move || {
                for (j, row) in chunk.chunks_mut(n).enumerate() {
                    let i = c * per + j;
                    let r = i * n..(i + 1) * n;
                    step_row(row, &orig[r.clone()], &w[r], f[i], cfg);
                }
            });
        }
    });
}

/// One FAB update of the iterate `x` (one example): project x and the original point `o` onto
/// the linearised boundary { u : <w, u - x> + f = 0 } within the box, then the biased step.
fn step_row(x: &mut [f32], o: &[f32], w: &[f32], f: f32, cfg: &FabConfig) {
    let b = -(f as f64)
        + w.iter()
            .zip(x.iter())
            .map(|(a, v)| *a as f64 * *v as f64)
            .sum::<f64>();
    let b = b as f32;
    let (d1, d2) = match cfg.norm {
        Norm::Linf => (projection_linf(x, w, b), projection_linf(o, w, b)),
        Norm::L2 => (projection_l2(x, w, b), projection_l2(o, w, b)),
    };
    let size = |d: &[f32]| norm_p(cfg.norm, d.iter().map(|v| *v as f64)).max(1e-8);
    let (a1, a2) = (size(&d1), size(&d2));
    let alpha = (a1 / (a1 + a2)).max(0.0).min(cfg.alpha_max as f64);
    let eta = cfg.eta as f64;
    for j in 0..x.len() {
        let from_x = x[j] as f64 + eta * d1[j] as f64;
        let from_o = o[j] as f64 + eta * d2[j] as f64;
        x[j] = (from_x * (1.0 - alpha) + from_o * alpha).clamp(0.0, 1.0) as f32;
    }
}

/// Indices that sort `v` in increasing order (stable).
fn argsort(v: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&p, &q| v[p].total_cmp(&v[q]));
    idx
}

/// The Linf projection of the point `t` onto the hyperplane { u : <w, u> = b } intersected with
/// the [0, 1] box: the displacement d of smallest ||d||_inf with <w, t + d> = b and t + d in the
/// box; when the hyperplane misses the box, the move to the box corner closest to it. The
/// authors' `projection_linf`, for one point, in f64: moving every free coordinate by lambda
/// towards the corner that lowers <w, u> changes <w, u> by -sum_j |w_j| min(lambda, p_j) (p_j
/// the room coordinate j has), a piecewise linear function whose pieces are found by sorting
/// p and a binary search.
pub fn projection_linf(t: &[f32], w: &[f32], b: f32) -> Vec<f32> {
    let n = t.len();
    if n == 0 {
        return Vec::new();
    }
    let t: Vec<f64> = t.iter().map(|v| *v as f64).collect();
    let mut w: Vec<f64> = w.iter().map(|v| *v as f64).collect();
    let dot = |a: &[f64], c: &[f64]| a.iter().zip(c).map(|(u, v)| u * v).sum::<f64>();
    let mut b = b as f64;
    let sign = if dot(&w, &t) - b >= 0.0 { 1.0 } else { -1.0 };
    w.iter_mut().for_each(|v| *v *= sign);
    b *= sign;
    let a: Vec<f64> = w.iter().map(|v| (*v < 0.0) as u8 as f64).collect();
    let mut d: Vec<f64> = (0..n)
        .map(|j| if w[j] != 0.0 { a[j] - t[j] } else { 0.0 })
        .collect();
    let p: Vec<f64> = (0..n).map(|j| a[j] - t[j] * (2.0 * a[j] - 1.0)).collect();
    let indp = argsort(&p);
    let b = b - dot(&w, &t);
    let b0 = dot(&w, &d);
    // Coordinates by decreasing room: s = cumulative |w|, sb = b0 minus the cumulative full moves.
    let (mut s, mut sb) = (vec![0.0; n], vec![0.0; n]);
    let (mut acc_s, mut acc_b) = (0.0, 0.0);
    for k in 0..n {
        let j = indp[n - 1 - k];
        acc_s += w[j].abs();
        acc_b += -w[j] * d[j];
        s[k] = acc_s;
        sb[k] = acc_b + b0;
    }
    let b2 = sb[n - 1] - s[n - 1] * p[indp[0]];
    let c_l = b - b2 > 0.0;
    let c2 = b - b0 > 0.0 && !c_l;
    if c_l {
        let lambda = ((b - sb[n - 1]) / (-s[n - 1])).max(0.0);
        for j in 0..n {
            d[j] = (2.0 * a[j] - 1.0) * lambda;
        }
    } else if c2 {
        let (mut lb, mut ub) = (0usize, n - 1);
        for _ in 0..ceil_log2(n) {
            let mid = (lb + ub) / 2;
            let cur = indp[n - 1 - mid];
            let b2 = sb[mid] - s[mid] * p[cur];
            if b - b2 > 0.0 {
                lb = mid;
            } else {
                ub = mid;
            }
        }
        let lambda = ((b - sb[lb]) / (-s[lb])).max(0.0);
        for j in 0..n {
            d[j] = lambda.min(d[j]) * a[j] + (-lambda).max(d[j]) * (1.0 - a[j]);
        }
    }
    (0..n)
        .map(|j| if w[j] != 0.0 { d[j] as f32 } else { 0.0 })
        .collect()
}

/// The L2 projection of the point `t` onto { u : <w, u> = b } intersected with the [0, 1] box
/// (as [`projection_linf`], in the L2 norm): the authors' `projection_l2`, for one point, in
/// f64. The minimiser is clip_[0,1](t - lambda w) - t for the lambda >= 0 (after orienting w)
/// that reaches the hyperplane; the breakpoints r_j where coordinate j hits the box are sorted
/// and the piece holding lambda found by a binary search. Coordinates with |w_j| < 1e-8 stay.
pub fn projection_l2(t: &[f32], w: &[f32], b: f32) -> Vec<f32> {
    const BIG: f64 = 1e12;
    let n = t.len();
    if n == 0 {
        return Vec::new();
    }
    let t: Vec<f64> = t.iter().map(|v| *v as f64).collect();
    let mut w: Vec<f64> = w.iter().map(|v| *v as f64).collect();
    let mut c = w.iter().zip(&t).map(|(u, v)| u * v).sum::<f64>() - b as f64;
    if c < 0.0 {
        w.iter_mut().for_each(|v| *v = -*v);
        c = -c;
    }
    let live: Vec<bool> = w.iter().map(|v| v.abs() > 1e-8).collect();
    let r: Vec<f64> = (0..n)
        .map(|j| {
            if w[j].abs() < 1e-8 {
                return BIG;
            }
            let v = (t[j] / w[j]).max((t[j] - 1.0) / w[j]).clamp(-BIG, BIG);
            if v == -BIG {
                BIG
            } else {
                v
            }
        })
        .collect();
    let indr = argsort(&r);
    let zero_big = |v: f64| if v == BIG { 0.0 } else { v };
    let rs: Vec<f64> = indr.iter().map(|&j| zero_big(r[j])).collect();
    let rs2: Vec<f64> = (0..n)
        .map(|k| {
            if k + 1 < n {
                zero_big(r[indr[k + 1]])
            } else {
                0.0
            }
        })
        .collect();
    let w3s: Vec<f64> = indr.iter().map(|&j| w[j] * w[j]).collect();
    let w5: f64 = w3s.iter().sum();
    let mut ws = vec![0.0; n];
    let mut acc = 0.0;
    for k in 0..n {
        acc += w3s[k];
        ws[k] = w5 - acc;
    }
    let mut d: Vec<f64> = (0..n)
        .map(|j| if live[j] { -(r[j] * w[j]) } else { 0.0 })
        .collect();
    // s[k]: <w, d(lambda)> at lambda = rs[k], for k = 0..n (s has n + 1 entries).
    let mut s = vec![-w5 * rs[0]; n + 1];
    let mut acc = 0.0;
    for k in 0..n {
        acc += (rs[k] - rs2[k]) * ws[k];
        s[k + 1] = acc - w5 * rs[0];
    }
    let c4 = s[0] + c < 0.0;
    let c3 = d.iter().zip(&w).map(|(u, v)| u * v).sum::<f64>() + c > 0.0;
    if c4 {
        let alpha = c / w5;
        for j in 0..n {
            d[j] = -alpha * w[j];
        }
    } else if !c3 {
        let (mut lb, mut ub) = (0usize, n - 1);
        for _ in 0..ceil_log2(n) {
            let mid = (lb + ub) / 2;
            if s[mid] + c > 0.0 {
                lb = mid;
            } else {
                ub = mid;
            }
        }
        let alpha = if ws[lb] == 0.0 {
            0.0
        } else {
            (s[lb] + c) / ws[lb] + rs[lb]
        };
        for j in 0..n {
            if alpha <= r[j] {
                d[j] = -alpha * w[j];
            }
        }
    }
    (0..n)
        .map(|j| if live[j] { d[j] as f32 } else { 0.0 })
        .collect()
}

/// ceil(log2(n)) for n >= 1 (the number of binary-search rounds of the authors' code).
fn ceil_log2(n: usize) -> usize {
    (usize::BITS - (n.max(1) - 1).leading_zeros()) as usize
}
