//! Auto-PGD (Croce and Hein 2020, "Reliable evaluation of adversarial robustness with an
//! ensemble of diverse parameter-free attacks", Algorithm 1), Linf and L2, with the
//! cross-entropy or the DLR loss, on logits, network in eval mode.
//!
//! With P the projection onto the eps-ball around x intersected with the [0, 1] box, s(g) =
//! sign(g) (Linf) or g / ||g||_2 (L2), and per example a step size eta (start 2 eps):
//!
//!   z^(k+1) = P( x^(k) + eta^(k) s(grad f(x^(k))) )
//!   x^(k+1) = P( x^(k) + alpha (z^(k+1) - x^(k)) + (1 - alpha)(x^(k) - x^(k-1)) )
//!
//! with momentum alpha = 0.75 (alpha = 1 on the first step). The best point x_max (highest
//! loss) is tracked per example. At the checkpoints w_j = ceil(p_j N_iter), p_0 = 0, p_1 = 0.22,
//! p_(j+1) = p_j + max(p_j - p_(j-1) - 0.03, 0.06), the step size of an example is halved and
//! its iterate restarted from x_max (with the gradient there) when
//!   1. the loss increased in fewer than rho (w_j - w_(j-1)) of the steps since the last
//!      checkpoint, rho = 0.75: sum_(i=w_(j-1))^(w_j - 1) 1[f(x^(i+1)) > f(x^(i))] < rho (w_j - w_(j-1));
//!   2. or the step size was not halved at the last checkpoint and the best loss has not
//!      changed since it.
//!
//! Checkpoint windows are counted in whole steps as the authors' code does: the first window
//! is max(floor(0.22 N), 1) steps, each next one max(previous - max(floor(0.03 N), 1),
//! max(floor(0.06 N), 1)). Condition 2 is also checked at the first checkpoint (against the
//! start point), as Algorithm 1 states; the authors' code skips it there.
//!
//! Start: Linf, x + eps t / ||t||_inf with t ~ U(-1, 1)^n; L2, x + eps t / ||t||_2 with t ~
//! N(0, I); then clipped to [0, 1]. The Linf projection is exact (clip to [max(x - eps, 0),
//! min(x + eps, 1)]); the L2 one projects onto the ball, then clips to the box (which only
//! shortens the perturbation), as the authors do.
//!
//! DLR loss (per example, z the logits, pi the classes sorted by decreasing logit):
//!   DLR(z, y) = -(z_y - max_(i != y) z_i) / (z_pi1 - z_pi3 + 1e-12)
//! Its gradient is taken through the selected logits (the sort is piecewise constant), as
//! PyTorch's sort does. It needs at least 3 classes.
//!
//! Restarts attack only the examples earlier restarts left robust. A broken example keeps the
//! first adversarial iterate found; a robust one gets x_max.
use super::rows::{
    bucket_fine, in_stages, padded, put_rows, select_rows, take_rows, with_restarts, AttackOutcome,
    FirstAdversarial,
};
use crate::grad::input_gradient;
use crate::losses::{one_hot, Logits};
use crate::ops::{normalize_rows, project_l2, scale_rows, sign, Mat};
use crate::saliency::noise::standard_normal;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use salient_ir::{ApgdLoss, Norm};
use salient_nn::{Mode, Network};

/// Momentum weight alpha of Algorithm 1.
pub const MOMENTUM: f32 = 0.75;
/// Fraction rho of loss-increasing steps below which the step size is halved.
pub const RHO: f64 = 0.75;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ApgdConfig {
    pub norm: Norm,
    pub eps: f32,
    pub loss: ApgdLoss,
    /// Iterations N_iter per restart.
    pub steps: usize,
    pub restarts: usize,
    /// Expectation over transformation (AutoAttack's `rand` version): the gradient and loss
    /// of each step are the means over `eot` passes (1: one pass).
    pub eot: usize,
}

impl ApgdConfig {
    /// One pass per step (no EOT).
    pub fn new(norm: Norm, eps: f32, loss: ApgdLoss, steps: usize, restarts: usize) -> Self {
        ApgdConfig {
            norm,
            eps,
            loss,
            steps,
            restarts,
            eot: 1,
        }
    }
}

/// The loss one APGD run climbs, per example.
#[derive(Clone, Debug, PartialEq)]
enum Objective {
    Ce,
    Dlr,
    /// Targeted DLR with one target class per example (APGD-T).
    DlrTargeted(Vec<usize>),
}

/// APGD with restarts on the batch `x` (correct labels `labels`), network in eval mode.
pub fn apgd<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    cfg: &ApgdConfig,
    rng: &mut ChaCha8Rng,
) -> AttackOutcome<D> {
    let objective = match cfg.loss {
        ApgdLoss::Ce => Objective::Ce,
        ApgdLoss::Dlr => Objective::Dlr,
    };
    with_restarts(x, labels, cfg.restarts, |x, labels| {
        single_run(net, x, labels, cfg, &objective, rng)
    })
}

/// APGD-T (Croce and Hein 2020, section 3.2): for t = 2 .. `targets` + 1, APGD on the targeted
/// DLR loss towards the class with the t-th highest clean logit of each example, `restarts`
/// runs per target, each on the examples no earlier run broke (an example counts as broken
/// when misclassified, whatever the class). `cfg.loss` is ignored.
///
///   DLR-T(z, y, t) = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)
///
/// It needs at least 4 classes; `targets` is at most classes - 1.
pub fn apgd_targeted<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    cfg: &ApgdConfig,
    targets: usize,
    rng: &mut ChaCha8Rng,
) -> AttackOutcome<D> {
    let classes = net.def().output.numel();
    let clean = net.forward(x.clone(), Mode::Eval).as_vec();
    let ranked: Vec<Vec<usize>> = clean.chunks(classes).map(ranking).collect();
    let restarts = cfg.restarts.max(1);
    let stages = targets.min(classes - 1) * restarts;
    // Restarts and targets alike attack only the examples still robust.
    let mut out = in_stages(x, labels, stages, |k, xs, ys, work| {
        let t = 1 + k / restarts;
        let tg: Vec<usize> = work.iter().map(|&i| ranked[i][t]).collect();
        single_run(net, xs, ys, cfg, &Objective::DlrTargeted(tg), rng)
    });
    out.broken_by.iter_mut().for_each(|b| *b = None);
    out
}

/// Classes by decreasing value (ties to the lower index).
fn ranking(row: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    order
}

/// The checkpoint windows of Algorithm 1 for `n` iterations, as step counts: the iterations
/// (1-based) after which the step-size conditions are checked.
pub fn checkpoints(n: usize) -> Vec<usize> {
    let first = ((0.22 * n as f64) as usize).max(1);
    let decrease = ((0.03 * n as f64) as usize).max(1);
    let min = ((0.06 * n as f64) as usize).max(1);
    let (mut out, mut at, mut window) = (Vec::new(), first, first);
    while at <= n {
        out.push(at);
        window = window.saturating_sub(decrease).max(min);
        at += window;
    }
    out
}

/// The per-example state of one APGD run, for the examples still being attacked.
struct State<D: Device<f32>> {
    /// Indices (into the run's batch) of the examples still attacked, one per leading row of
    /// the working set below; further rows are padding (see [`bucket_fine`]).
    rows: Vec<usize>,
    /// The run's batch size.
    full: usize,
    /// Labels of every working row, padding included.
    ys: Vec<usize>,
    /// Target classes of every working row (APGD-T; the labels otherwise).
    targets: Vec<usize>,
    x: Mat<D>,
    onehot: Mat<D>,
    /// Bounds of the Linf projection: max(x - eps, 0) and min(x + eps, 1).
    lo: Mat<D>,
    hi: Mat<D>,
    x_cur: Mat<D>,
    x_prev: Mat<D>,
    g: Mat<D>,
    x_best: Mat<D>,
    g_best: Mat<D>,
    loss: Vec<f32>,
    loss_best: Vec<f32>,
    eta: Vec<f32>,
    /// Steps since the last checkpoint at which the loss increased.
    increases: Vec<usize>,
    reduced_last: Vec<bool>,
    best_at_last_mark: Vec<f32>,
}

impl<D: Device<f32>> State<D> {
    /// Rows of the working set, padding included.
    fn size(&self) -> usize {
        self.eta.len()
    }

    /// P: the projection onto the eps-ball around x intersected with the box.
    fn project(&self, t: Mat<D>, cfg: &ApgdConfig) -> Mat<D> {
        match cfg.norm {
            Norm::Linf => t.maximum(self.lo.clone()).minimum(self.hi.clone()),
            Norm::L2 => (self.x.clone() + project_l2(t - self.x.clone(), cfg.eps)).clamp(0.0, 1.0),
        }
    }

    /// Keep only the working rows `keep` (examples that left the batch are dropped), padded.
    fn retain(&mut self, keep: &[usize]) {
        self.rows = keep.iter().map(|&j| self.rows[j]).collect();
        let work = padded(keep, bucket_fine(keep.len(), self.full));
        let keep = &work[..];
        let pick = |t: &Mat<D>| take_rows(t, keep);
        (self.x, self.onehot, self.lo, self.hi) = (
            pick(&self.x),
            pick(&self.onehot),
            pick(&self.lo),
            pick(&self.hi),
        );
        (self.x_cur, self.x_prev, self.g) = (pick(&self.x_cur), pick(&self.x_prev), pick(&self.g));
        (self.x_best, self.g_best) = (pick(&self.x_best), pick(&self.g_best));
        fn host<T: Copy>(v: &[T], keep: &[usize]) -> Vec<T> {
            keep.iter().map(|&j| v[j]).collect()
        }
        self.ys = host(&self.ys, keep);
        self.targets = host(&self.targets, keep);
        (self.loss, self.loss_best, self.eta) = (
            host(&self.loss, keep),
            host(&self.loss_best, keep),
            host(&self.eta, keep),
        );
        (self.increases, self.reduced_last) =
            (host(&self.increases, keep), host(&self.reduced_last, keep));
        self.best_at_last_mark = host(&self.best_at_last_mark, keep);
    }
}

/// One APGD run from a random start. An example leaves the batch once misclassified (in eval
/// mode examples do not interact, so the others' iterates are unchanged).
fn single_run<D: Device<f32>>(
    net: &mut Network<D>,
    x0: &Mat<D>,
    labels: &[usize],
    cfg: &ApgdConfig,
    objective: &Objective,
    rng: &mut ChaCha8Rng,
) -> AttackOutcome<D> {
    let classes = net.def().output.numel();
    let dev = x0.device().clone();
    let shape = *x0.shape();
    let b = shape.0;
    let mut seen = FirstAdversarial::new(x0, classes);
    let lo = (x0.clone() - cfg.eps).clamp(0.0, 1.0);
    let hi = (x0.clone() + cfg.eps).clamp(0.0, 1.0);
    let zeros: Mat<D> = dev.zeros_like(&shape);
    let mut st = State {
        rows: (0..b).collect(),
        full: b,
        ys: labels.to_vec(),
        targets: match objective {
            Objective::DlrTargeted(t) => t.clone(),
            _ => labels.to_vec(),
        },
        x: x0.clone(),
        onehot: one_hot(&dev, labels, classes),
        lo,
        hi,
        x_cur: zeros.clone(),
        x_prev: zeros.clone(),
        g: zeros.clone(),
        x_best: zeros.clone(),
        g_best: zeros,
        loss: Vec::new(),
        loss_best: Vec::new(),
        eta: vec![2.0 * cfg.eps; b],
        increases: vec![0; b],
        reduced_last: vec![false; b],
        best_at_last_mark: Vec::new(),
    };
    st.x_cur = st.project(x0.clone() + start(&dev, shape, cfg.norm, cfg.eps, rng), cfg);
    let (g, loss, wrong) = loss_and_gradient(net, &st, labels, cfg, objective, &mut seen);
    (st.g, st.loss) = (g, loss);
    (st.x_prev, st.x_best, st.g_best) = (st.x_cur.clone(), st.x_cur.clone(), st.g.clone());
    (st.loss_best, st.best_at_last_mark) = (st.loss.clone(), st.loss.clone());
    if !drop_broken(&mut st, &wrong) {
        return seen.finish(x0.clone());
    }
    let marks = checkpoints(cfg.steps);
    let (mut window_start, mut next_mark) = (0usize, 0usize);
    for k in 0..cfg.steps {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        let alpha = if k == 0 { 1.0 } else { MOMENTUM };
        let momentum = st.x_cur.clone() - st.x_prev.clone();
        st.x_prev = st.x_cur.clone();
        let eta = dev.tensor_from_vec(st.eta.clone(), (st.size(),));
        let dir = match cfg.norm {
            Norm::Linf => sign(&st.g),
            Norm::L2 => normalize_rows(&st.g),
        };
        let z = st.project(st.x_cur.clone() + scale_rows(dir, eta), cfg);
        st.x_cur = st.project(
            st.x_cur.clone() + (z - st.x_cur.clone()) * alpha + momentum * (1.0 - alpha),
            cfg,
        );
        let (g, loss, wrong) = loss_and_gradient(net, &st, labels, cfg, objective, &mut seen);
        st.g = g;
        for (i, l) in loss.iter().enumerate() {
            st.increases[i] += (*l > st.loss[i]) as usize;
        }
        st.loss = loss;
        let improved: Vec<bool> = (0..st.size())
            .map(|i| st.loss[i] > st.loss_best[i])
            .collect();
        if improved.iter().any(|&v| v) {
            st.x_best = select_rows(&improved, st.x_cur.clone(), st.x_best.clone());
            st.g_best = select_rows(&improved, st.g.clone(), st.g_best.clone());
            for i in (0..st.size()).filter(|&i| improved[i]) {
                st.loss_best[i] = st.loss[i];
            }
        }
        if next_mark < marks.len() && k + 1 == marks[next_mark] {
            checkpoint(&mut st, (k + 1 - window_start) as f64);
            window_start = k + 1;
            next_mark += 1;
        }
        if !drop_broken(&mut st, &wrong) {
            return seen.finish(x0.clone());
        }
    }
    let fallback = put_rows(x0.clone(), st.x_best, &st.rows);
    seen.finish(fallback)
}

/// The step-size conditions at a checkpoint closing a window of `window` steps: halve eta and
/// restart from x_max (with its gradient) where the loss rose in fewer than rho * window steps,
/// or where eta was not halved at the last checkpoint and the best loss has not moved since.
fn checkpoint<D: Device<f32>>(st: &mut State<D>, window: f64) {
    let reduce: Vec<bool> = (0..st.size())
        .map(|i| {
            let oscillating = (st.increases[i] as f64) < RHO * window;
            let stalled = !st.reduced_last[i] && st.loss_best[i] <= st.best_at_last_mark[i];
            oscillating || stalled
        })
        .collect();
    if reduce.iter().any(|&r| r) {
        st.x_cur = select_rows(&reduce, st.x_best.clone(), st.x_cur.clone());
        st.g = select_rows(&reduce, st.g_best.clone(), st.g.clone());
        for i in (0..st.size()).filter(|&i| reduce[i]) {
            st.eta[i] /= 2.0;
            st.loss[i] = st.loss_best[i];
        }
    }
    st.reduced_last = reduce;
    st.best_at_last_mark = st.loss_best.clone();
    st.increases.iter_mut().for_each(|c| *c = 0);
}

/// Remove the examples misclassified at the current iterate; false when none is left.
fn drop_broken<D: Device<f32>>(st: &mut State<D>, wrong: &[bool]) -> bool {
    if wrong.iter().any(|&w| w) {
        let keep: Vec<usize> = (0..wrong.len()).filter(|&j| !wrong[j]).collect();
        if keep.is_empty() {
            return false;
        }
        st.retain(&keep);
    }
    true
}

/// A random start inside the ball (see the module docs), on the device.
fn start<D: Device<f32>>(
    dev: &D,
    shape: (usize, usize),
    norm: Norm,
    eps: f32,
    rng: &mut ChaCha8Rng,
) -> Mat<D> {
    let (b, n) = shape;
    let mut v = vec![0.0f32; b * n];
    for row in v.chunks_mut(n.max(1)) {
        let scale = match norm {
            Norm::Linf => {
                row.iter_mut()
                    .for_each(|t| *t = rng.gen_range(-1.0f32..1.0));
                row.iter().fold(0.0f32, |m, t| m.max(t.abs()))
            }
            Norm::L2 => {
                row.iter_mut()
                    .for_each(|t| *t = standard_normal(rng) as f32);
                row.iter().map(|t| t * t).sum::<f32>().sqrt()
            }
        };
        let s = eps / (scale + 1e-12);
        row.iter_mut().for_each(|t| *t *= s);
    }
    dev.tensor_from_vec(v, shape)
}

/// Gradient of the summed loss at the current iterate, the per-example losses (host) and
/// whether each example is misclassified there (recorded in `seen`). With EOT the gradient and
/// the losses are means over `cfg.eot` passes, each pass's iterate checked.
fn loss_and_gradient<D: Device<f32>>(
    net: &mut Network<D>,
    st: &State<D>,
    labels: &[usize],
    cfg: &ApgdConfig,
    objective: &Objective,
    seen: &mut FirstAdversarial<D>,
) -> (Mat<D>, Vec<f32>, Vec<bool>) {
    let passes = cfg.eot.max(1);
    let mut g_sum: Option<Mat<D>> = None;
    let mut loss_sum = vec![0.0f32; st.size()];
    let mut wrong_any = vec![false; st.rows.len()];
    for _ in 0..passes {
        let mut per_example = Vec::new();
        let (g, logits) = input_gradient(net, &st.x_cur, Mode::Eval, |z| {
            let l = match objective {
                Objective::Ce => ce_rows(z, &st.onehot),
                Objective::Dlr => dlr_rows(z, &st.ys),
                Objective::DlrTargeted(_) => dlr_targeted_rows(z, &st.ys, &st.targets),
            };
            per_example = l.retaped::<NoneTape>().as_vec();
            l.sum()
        });
        let wrong = seen.observe_rows(&st.x_cur, &logits.as_vec(), &st.rows, labels);
        for (a, w) in wrong_any.iter_mut().zip(&wrong) {
            *a |= *w;
        }
        for (a, l) in loss_sum.iter_mut().zip(&per_example) {
            *a += *l;
        }
        g_sum = Some(match g_sum {
            None => g,
            Some(s) => s + g,
        });
    }
    let g = g_sum.expect("at least one pass");
    if passes == 1 {
        return (g, loss_sum, wrong_any);
    }
    let k = passes as f32;
    (g / k, loss_sum.iter().map(|l| l / k).collect(), wrong_any)
}

/// Per-example cross-entropy -log softmax(z)_y, (B,).
pub fn ce_rows<D: Device<f32>, T: Tape<f32, D>>(
    z: Logits<D, T>,
    onehot: &Mat<D>,
) -> Tensor<(usize,), f32, D, T> {
    (z.log_softmax::<Axis<1>>() * onehot.clone())
        .sum::<(usize,), Axis<1>>()
        .negate()
}

/// Per-example DLR loss (see the module docs), (B,), differentiable in the logits. The classes
/// picked by the sort (y's strongest rival, pi1, pi3) are read from the logits' values.
///
/// # Panics
/// With fewer than 3 classes ([`crate::attack::attack_batch`] refuses those with an error).
pub fn dlr_rows<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    z: Logits<D, T>,
    labels: &[usize],
) -> Tensor<(usize,), f32, D, T> {
    let (b, c) = *z.shape();
    let values = z.as_vec();
    let (mut num, mut den) = (vec![0.0f32; b * c], vec![0.0f32; b * c]);
    for (i, row) in values.chunks(c).enumerate() {
        let y = labels[i];
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let rival = *order.iter().find(|&&j| j != y).expect("at least 2 classes");
        num[i * c + y] += 1.0;
        num[i * c + rival] -= 1.0;
        den[i * c + order[0]] += 1.0;
        den[i * c + order[2]] -= 1.0;
    }
    ratio_rows(z, num, den)
}

/// Per-example targeted DLR loss of APGD-T, (B,), differentiable in the logits:
/// `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`, the sort read from the logits'
/// values as in [`dlr_rows`].
///
/// # Panics
/// With fewer than 4 classes (the attack's constructor refuses those with an error).
pub fn dlr_targeted_rows<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    z: Logits<D, T>,
    labels: &[usize],
    targets: &[usize],
) -> Tensor<(usize,), f32, D, T> {
    let (b, c) = *z.shape();
    let values = z.as_vec();
    let (mut num, mut den) = (vec![0.0f32; b * c], vec![0.0f32; b * c]);
    for (i, row) in values.chunks(c).enumerate() {
        let order = ranking(row);
        num[i * c + labels[i]] += 1.0;
        num[i * c + targets[i]] -= 1.0;
        den[i * c + order[0]] += 1.0;
        den[i * c + order[2]] -= 0.5;
        den[i * c + order[3]] -= 0.5;
    }
    ratio_rows(z, num, den)
}

/// `-(z . num_i) / (z . den_i + 1e-12)` per row i, differentiable in the logits `z`: the DLR
/// losses with their coefficient rows `num`, `den` (B x classes, host) read off the sort.
fn ratio_rows<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    z: Logits<D, T>,
    num: Vec<f32>,
    den: Vec<f32>,
) -> Tensor<(usize,), f32, D, T> {
    let shape = *z.shape();
    let dev = z.device().clone();
    let num: Mat<D> = dev.tensor_from_vec(num, shape);
    let den: Mat<D> = dev.tensor_from_vec(den, shape);
    let (z, tape) = z.split_tape();
    let margin = (z.clone().put_tape(tape) * num).sum::<(usize,), Axis<1>>();
    let (margin, tape) = margin.split_tape();
    let spread = (z.put_tape(tape) * den).sum::<(usize,), Axis<1>>() + 1e-12;
    let (spread, tape) = spread.split_tape();
    (margin.put_tape(tape) / spread.retaped::<T>()).negate()
}

/// The targeted DLR loss of one row of logits (host, in f64), for tests.
///
/// # Panics
/// With fewer than 4 logits.
pub fn dlr_targeted(logits: &[f32], y: usize, t: usize) -> f64 {
    let mut sorted: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    -(logits[y] as f64 - logits[t] as f64) / (sorted[0] - 0.5 * (sorted[2] + sorted[3]) + 1e-12)
}

/// The DLR loss of one row of logits (host, in f64), for tests and reports.
///
/// # Panics
/// With fewer than 3 logits.
pub fn dlr(logits: &[f32], y: usize) -> f64 {
    let mut sorted: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let rival = logits
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .map(|(_, &v)| v as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    -(logits[y] as f64 - rival) / (sorted[0] - sorted[2] + 1e-12)
}

/// APGD-CE / APGD-DLR as an evaluation [`super::Attack`].
#[derive(Clone, Debug)]
pub struct Apgd {
    cfg: ApgdConfig,
}

impl Apgd {
    pub fn new(cfg: ApgdConfig, classes: usize) -> Result<Self, super::AttackError> {
        super::check_counts(cfg.steps, cfg.restarts)?;
        if cfg.loss == ApgdLoss::Dlr && classes < 3 {
            return super::invalid(format!("the DLR loss needs at least 3 classes (it divides by z_pi1 - z_pi3); the model has {classes}"));
        }
        Ok(Apgd { cfg })
    }
}

impl<D: Device<f32>> super::Attack<D> for Apgd {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> AttackOutcome<D> {
        apgd(net, x, labels, &self.cfg, rng)
    }
}

/// APGD-T as an evaluation [`super::Attack`] ([`apgd_targeted`]).
#[derive(Clone, Debug)]
pub struct ApgdT {
    cfg: ApgdConfig,
    targets: usize,
}

impl ApgdT {
    pub fn new(
        cfg: ApgdConfig,
        targets: usize,
        classes: usize,
    ) -> Result<Self, super::AttackError> {
        super::check_counts(cfg.steps, cfg.restarts)?;
        if classes < 4 {
            return super::invalid(format!("APGD-T's targeted DLR loss needs at least 4 classes (it divides by z_pi1 - (z_pi3 + z_pi4)/2); the model has {classes}"));
        }
        if targets == 0 || targets >= classes {
            return super::invalid(format!(
                "targets must be between 1 and {} (the classes other than the true one), got {targets}",
                classes - 1
            ));
        }
        Ok(ApgdT { cfg, targets })
    }
}

impl<D: Device<f32>> super::Attack<D> for ApgdT {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> AttackOutcome<D> {
        apgd_targeted(net, x, labels, &self.cfg, self.targets, rng)
    }
}
