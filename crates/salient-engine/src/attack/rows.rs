//! The per-example bookkeeping every attack shares (a leaf module: it uses no attack).
//!
//! - [`AttackOutcome`]: what attacking a batch gives, per example;
//! - working sets: [`bucket`], [`bucket_fine`], [`padded`], [`take_rows`], [`put_rows`],
//!   [`select_rows`] keep only the examples still being attacked, padded to few distinct sizes;
//! - [`FirstAdversarial`]: an example is broken by the first iterate that misclassifies it;
//! - [`with_restarts`]: restarts attack only the examples earlier restarts left robust.
use crate::losses::argmax_rows;
use crate::ops::Mat;
use dfdx::prelude::*;
use thiserror::Error;

/// The result of attacking a batch.
#[derive(Clone, Debug)]
pub struct AttackOutcome<D: Device<f32>> {
    /// (B, N): the first adversarial example found for broken examples; for robust examples the
    /// attack's last (PGD, FGSM) or highest-loss (APGD, Square) point; the clean image for
    /// examples misclassified to begin with.
    pub x_adv: Mat<D>,
    /// Per example: still correctly classified after the attack.
    pub robust: Vec<bool>,
    /// Ensembles (AutoAttack): per example, the index of the component that broke it (`None`
    /// for robust examples and for single attacks).
    pub broken_by: Vec<Option<usize>>,
    /// Minimum-norm attacks: per example, the size of the smallest adversarial perturbation
    /// found in the attack's norm (`f32::INFINITY` where none was found). `None` otherwise.
    pub min_norms: Option<Vec<f32>>,
}

impl<D: Device<f32>> AttackOutcome<D> {
    /// An outcome without component attribution.
    pub fn new(x_adv: Mat<D>, robust: Vec<bool>) -> Self {
        let broken_by = vec![None; robust.len()];
        AttackOutcome {
            x_adv,
            robust,
            broken_by,
            min_norms: None,
        }
    }

    /// Number of robust examples.
    pub fn robust_count(&self) -> usize {
        self.robust.iter().filter(|&&r| r).count()
    }
}

/// A batch or an attack setting the attacks cannot run on. Checked specs and loaded datasets
/// never produce one; hand-built calls can.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{0}")]
pub struct AttackError(pub String);

/// Per row of host logits (B x classes): is the argmax the label?
pub fn correct_rows(logits: &[f32], classes: usize, labels: &[usize]) -> Vec<bool> {
    argmax_rows(logits, classes)
        .iter()
        .zip(labels)
        .map(|(p, y)| p == y)
        .collect()
}

/// The size a working set of `m` examples out of a batch of `full` is padded to: the next
/// power of two, at most `full`.
///
/// dfdx's allocation cache keeps freed buffers per exact size and never frees them, so a working
/// set that shrinks one example at a time would fill memory with buffers of sizes never used
/// again (an MNIST evaluation reached 20 GB). Working sets padded to these sizes take at most
/// log2(full) + 2 distinct sizes, and the cache at most about twice the full batch's buffers.
pub fn bucket(m: usize, full: usize) -> usize {
    if m == 0 {
        0
    } else {
        m.next_power_of_two().min(full.max(m))
    }
}

/// The size a working set of `m` examples out of `full` is padded to where the padding rows
/// draw no random numbers (APGD's iterations after its random start, FAB without random
/// restarts, Square's queries): as [`bucket`] up to 16, then rounded up to a quarter of the
/// power of two below `m` (20, 24, 28, 32, 40, 48, ...), at most `full`.
///
/// [`bucket`]'s powers of two pad a working set of 257 examples out of 500 to 500, and padding
/// rows cost as much as real ones. Four sizes per doubling waste at most 25% (about 12% on
/// average) and keep the sizes few: at most 4 log2(full) of them, so dfdx's allocation cache
/// holds at most about 1 / (1 - 2^(-1/4)) = 6.3 times the full batch's buffers (instead of 2);
/// `robustness::evaluate_attacks` empties it after every batch. Rows do not interact in eval
/// mode (the CPU GEMMs split only the output between threads, never the reduction), so this
/// padding changes no example's result. Where padding rows do draw random numbers ([`in_stages`]
/// hands them to attacks that treat them as examples) the size decides the generator's stream
/// for every later draw, so those places keep [`bucket`]: the results stay bit-identical.
pub fn bucket_fine(m: usize, full: usize) -> usize {
    if m <= 16 {
        return bucket(m, full);
    }
    let step = (m.next_power_of_two() / 2) / 4;
    m.div_ceil(step).saturating_mul(step).min(full.max(m))
}

/// `rows` followed by copies of `rows[0]` up to `size` entries: the padding rows of a working
/// set, whose results are ignored.
pub fn padded(rows: &[usize], size: usize) -> Vec<usize> {
    let mut out = rows.to_vec();
    if let Some(&first) = rows.first() {
        out.resize(size.max(rows.len()), first);
    }
    out
}

/// The rows `rows` of `t`, in that order (on the device).
pub fn take_rows<D: Device<f32>>(t: &Mat<D>, rows: &[usize]) -> Mat<D> {
    let idx = t.device().tensor_from_vec(rows.to_vec(), (rows.len(),));
    t.clone().gather(idx)
}

/// `base` with its row `rows[j]` replaced by row j of `sub`, for j < rows.len() (`sub` may hold
/// more rows: padding). On the device: concatenation, then a gather.
pub fn put_rows<D: Device<f32>>(base: Mat<D>, sub: Mat<D>, rows: &[usize]) -> Mat<D> {
    let pairs: Vec<(usize, usize)> = rows.iter().enumerate().map(|(j, &r)| (r, j)).collect();
    put_rows_from(base, sub, &pairs)
}

/// `base` with row `to` replaced by row `from` of `sub` for each pair `(to, from)`.
pub fn put_rows_from<D: Device<f32>>(
    base: Mat<D>,
    sub: Mat<D>,
    pairs: &[(usize, usize)],
) -> Mat<D> {
    let b = base.shape().0;
    if pairs.is_empty() {
        return base;
    }
    if sub.shape().0 == b
        && pairs.len() == b
        && pairs
            .iter()
            .enumerate()
            .all(|(j, &(to, from))| to == j && from == j)
    {
        return sub;
    }
    let mut index: Vec<usize> = (0..b).collect();
    for &(to, from) in pairs {
        index[to] = b + from;
    }
    let idx = base.device().tensor_from_vec(index, (b,));
    let ext: Mat<D> = (base, sub).concat_along(Axis::<0>);
    ext.gather(idx)
}

/// Row i from `on_true` where `mask[i]`, else from `on_false` (exact, on the device).
pub fn select_rows<D: Device<f32>>(mask: &[bool], on_true: Mat<D>, on_false: Mat<D>) -> Mat<D> {
    if mask.iter().all(|&m| m) {
        return on_true;
    }
    if !mask.iter().any(|&m| m) {
        return on_false;
    }
    let shape = *on_true.shape();
    let m = on_true.device().tensor_from_vec(
        mask.iter().map(|&m| if m { 1.0f32 } else { 0.0 }).collect(),
        (shape.0,),
    );
    m.broadcast_like::<(usize, usize), Axis<1>>(&shape)
        .gt(0.5)
        .choose(on_true, on_false)
}

/// Per-example record of the first adversarial example found during one attack run.
pub struct FirstAdversarial<D: Device<f32>> {
    /// Rows found adversarial hold the first such point; the others the clean input.
    x_adv: Mat<D>,
    robust: Vec<bool>,
    classes: usize,
}

impl<D: Device<f32>> FirstAdversarial<D> {
    pub fn new(x: &Mat<D>, classes: usize) -> Self {
        FirstAdversarial {
            x_adv: x.clone(),
            robust: vec![true; x.shape().0],
            classes,
        }
    }

    /// Look at candidate points `xc` (all B rows) with their logits (host, B x classes): rows
    /// misclassified for the first time are kept. Returns whether each row is misclassified.
    pub fn observe(&mut self, xc: &Mat<D>, logits: &[f32], labels: &[usize]) -> Vec<bool> {
        let all: Vec<usize> = (0..self.robust.len()).collect();
        self.observe_rows(xc, logits, &all, labels)
    }

    /// As [`FirstAdversarial::observe`] for candidates of the examples `rows` only: row j of
    /// `xc` and of `logits` belongs to example `rows[j]`; rows of `xc` and `logits` past
    /// `rows.len()` are padding and ignored; `labels` are all B labels. Returns whether each of
    /// the `rows.len()` candidates is misclassified.
    pub fn observe_rows(
        &mut self,
        xc: &Mat<D>,
        logits: &[f32],
        rows: &[usize],
        labels: &[usize],
    ) -> Vec<bool> {
        let ys: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
        let wrong: Vec<bool> =
            correct_rows(&logits[..rows.len() * self.classes], self.classes, &ys)
                .iter()
                .map(|c| !c)
                .collect();
        let newly: Vec<(usize, usize)> = (0..rows.len())
            .filter(|&j| wrong[j] && self.robust[rows[j]])
            .map(|j| (rows[j], j))
            .collect();
        if !newly.is_empty() {
            self.x_adv = put_rows_from(self.x_adv.clone(), xc.clone(), &newly);
            for &(i, _) in &newly {
                self.robust[i] = false;
            }
        }
        wrong
    }

    pub fn robust(&self) -> &[bool] {
        &self.robust
    }

    /// The outcome: robust rows take their row of `fallback` (the attack's last or best point).
    pub fn finish(self, fallback: Mat<D>) -> AttackOutcome<D> {
        let x_adv = select_rows(&self.robust, fallback, self.x_adv);
        AttackOutcome::new(x_adv, self.robust)
    }
}

/// Run `single` (one attack run from a fresh random start) `restarts` times; each restart
/// attacks only the examples no earlier restart broke, so a broken example keeps the first
/// adversarial example found (AutoAttack's protocol). Robust examples keep the last restart's
/// point. `single` may get a batch padded with copies of its first example (see [`bucket`]).
pub fn with_restarts<D, F>(
    x: &Mat<D>,
    labels: &[usize],
    restarts: usize,
    mut single: F,
) -> AttackOutcome<D>
where
    D: Device<f32>,
    F: FnMut(&Mat<D>, &[usize]) -> AttackOutcome<D>,
{
    let mut out = in_stages(x, labels, restarts.max(1), |_, xs, ys, _| single(xs, ys));
    out.broken_by.iter_mut().for_each(|b| *b = None);
    out
}

/// Run `stages` attack stages in order (restarts, target classes, the components of an
/// ensemble), each on the examples every earlier stage left robust: `stage(k, xs, ys, work)`
/// gets the working set (rows of `x` listed in `work`, padded with copies of the first, see
/// [`bucket`]) and their labels. A broken example keeps the first stage's adversarial example
/// and records that stage in `broken_by`; robust examples keep the last stage's point.
pub fn in_stages<D, F>(x: &Mat<D>, labels: &[usize], stages: usize, stage: F) -> AttackOutcome<D>
where
    D: Device<f32>,
    F: FnMut(usize, &Mat<D>, &[usize], &[usize]) -> AttackOutcome<D>,
{
    in_stages_padded(x, labels, stages, |_, m, b| bucket(m, b), stage)
}

/// [`in_stages`], stage k's working set of m examples out of b padded to `size(k, m, b)` rows
/// (at least m, at most b): [`bucket_fine`] for a stage whose padding rows draw no random
/// numbers, [`bucket`] where they do (the padded size then decides the random stream).
pub fn in_stages_padded<D, S, F>(
    x: &Mat<D>,
    labels: &[usize],
    stages: usize,
    size: S,
    mut stage: F,
) -> AttackOutcome<D>
where
    D: Device<f32>,
    S: Fn(usize, usize, usize) -> usize,
    F: FnMut(usize, &Mat<D>, &[usize], &[usize]) -> AttackOutcome<D>,
{
    let b = x.shape().0;
    let mut out = AttackOutcome::new(x.clone(), vec![true; b]);
    for k in 0..stages {
        let rows: Vec<usize> = (0..b).filter(|&i| out.robust[i]).collect();
        if rows.is_empty() {
            break;
        }
        let work = padded(&rows, size(k, rows.len(), b));
        let xs = if rows.len() == b {
            x.clone()
        } else {
            take_rows(x, &work)
        };
        let ys: Vec<usize> = work.iter().map(|&i| labels[i]).collect();
        let run = stage(k, &xs, &ys, &work);
        for (j, &i) in rows.iter().enumerate() {
            if !run.robust[j] {
                out.robust[i] = false;
                out.broken_by[i] = Some(k);
            }
        }
        out.x_adv = put_rows(out.x_adv, run.x_adv, &rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{bucket, bucket_fine};

    #[test]
    fn fine_buckets_are_powers_of_two_up_to_16_then_four_sizes_per_doubling() {
        // At most 25% padding above 16 rows, few distinct sizes, never above the batch.
        assert_eq!(bucket_fine(0, 500), 0);
        for m in 1..=16 {
            assert_eq!(bucket_fine(m, 500), bucket(m, 500));
        }
        assert_eq!(bucket_fine(17, 500), 20);
        assert_eq!(bucket_fine(66, 100), 80);
        assert_eq!(bucket_fine(257, 500), 320);
        assert_eq!(bucket_fine(320, 500), 320);
        assert_eq!(bucket_fine(449, 500), 500);
        let sizes: std::collections::BTreeSet<usize> =
            (1..=500).map(|m| bucket_fine(m, 500)).collect();
        assert_eq!(
            sizes.into_iter().collect::<Vec<_>>(),
            vec![
                1, 2, 4, 8, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
                256, 320, 384, 448, 500
            ]
        );
        for m in 1..=500 {
            let s = bucket_fine(m, 500);
            assert!(
                s >= m && (s <= 500) && (m <= 16 || 4 * s <= 5 * m),
                "{m} -> {s}"
            );
        }
    }
}
