//! What a minimum-norm attack ([`super::cw`], [`super::deepfool`]) gives, and the two summaries
//! read from one run: the robust accuracy at every eps, and the median minimal perturbation.
//!
//! A minimum-norm attack looks, per example, for the smallest perturbation that changes the
//! prediction, instead of the worst loss inside a fixed eps-ball. One run thus answers every
//! eps at once (as Foolbox reports it, Rauber et al. 2017): an example is robust at eps when
//! the smallest adversarial perturbation the attack found is larger than eps,
//!
//!   robust_at(eps)_i = ||x_adv,i - x_i|| > eps,
//!
//! so the robust-accuracy-vs-eps curve is one minus the empirical CDF of the norms. Since the
//! attack only bounds the true minimal perturbation from above, the curve is an upper bound on
//! the true robust accuracy, like that of any attack.
//!
//! Examples the attack could not break have norm `f32::INFINITY` (robust at every eps). The
//! median counts them as infinite: it is finite only when the attack broke more than half of
//! the examples (see [`MinNormOutcome::median`]).
use super::rows::correct_rows;
use crate::ops::Mat;
use dfdx::prelude::*;
use salient_ir::Norm;
use salient_nn::{Mode, Network};

/// The result of a minimum-norm attack on a batch.
#[derive(Clone, Debug)]
pub struct MinNormOutcome<D: Device<f32>> {
    /// (B, N), in the [0, 1] box: the smallest adversarial example found for broken examples;
    /// the clean image for examples the attack could not break.
    pub x_adv: Mat<D>,
    /// Per example: `||x_adv - x||` in the attack's norm (computed on the host from `x_adv` as
    /// returned) when `x_adv` is misclassified; `f32::INFINITY` where no adversarial example
    /// was found.
    pub norms: Vec<f32>,
}

impl<D: Device<f32>> MinNormOutcome<D> {
    /// Per example: robust at budget `eps`, i.e. the smallest adversarial perturbation found is
    /// larger than `eps` (`norms[i] > eps`; an example at exactly `eps` is broken, as an attack
    /// with budget eps may use the whole budget).
    pub fn robust_at(&self, eps: f32) -> Vec<bool> {
        robust_at(&self.norms, eps)
    }

    /// The median of the per-example norms, infinite norms (unbroken examples) included as
    /// infinite: for B examples sorted ascending, the middle one (B odd) or the mean of the two
    /// middle ones (B even; infinite if either is). NaN for an empty batch.
    pub fn median(&self) -> f32 {
        median(&self.norms)
    }
}

/// [`MinNormOutcome::robust_at`] on a slice of norms.
pub fn robust_at(norms: &[f32], eps: f32) -> Vec<bool> {
    norms.iter().map(|&n| n > eps).collect()
}

/// [`MinNormOutcome::median`] on a slice of norms.
pub fn median(norms: &[f32]) -> f32 {
    let mut v = norms.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => f32::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => {
            let (a, b) = (v[n / 2 - 1], v[n / 2]);
            if a.is_infinite() || b.is_infinite() {
                f32::INFINITY
            } else {
                0.5 * (a + b)
            }
        }
    }
}

/// Per row: the norm of `a - b` (host rows of `n` values) in `norm`.
pub fn row_distances(a: &[f32], b: &[f32], n: usize, norm: Norm) -> Vec<f32> {
    a.chunks(n.max(1))
        .zip(b.chunks(n.max(1)))
        .map(|(r, s)| {
            let d = r.iter().zip(s).map(|(u, v)| (u - v) as f64);
            match norm {
                Norm::L2 => d.map(|t| t * t).sum::<f64>().sqrt() as f32,
                Norm::Linf => d.fold(0.0f64, |m, t| m.max(t.abs())) as f32,
            }
        })
        .collect()
}

/// The outcome of a minimum-norm attack from its candidates `cand` (B, N, in the box): one
/// forward pass in eval mode checks each candidate; misclassified ones are kept with their
/// distance to `x` in `norm`, the others are replaced by the clean image with an infinite norm.
pub fn finish<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    cand: Mat<D>,
    labels: &[usize],
    norm: Norm,
) -> MinNormOutcome<D> {
    let (b, n) = *x.shape();
    if b == 0 {
        return MinNormOutcome {
            x_adv: cand,
            norms: Vec::new(),
        };
    }
    let classes = net.def().output.numel();
    let logits = net.forward(cand.clone(), Mode::Eval).as_vec();
    let correct = correct_rows(&logits, classes, labels);
    let (xh, ch) = (x.as_vec(), cand.as_vec());
    let dist = row_distances(&ch, &xh, n, norm);
    let norms = dist
        .iter()
        .zip(&correct)
        .map(|(&d, &c)| if c { f32::INFINITY } else { d })
        .collect();
    let x_adv = super::rows::select_rows(&correct, x.clone(), cand);
    MinNormOutcome { x_adv, norms }
}

impl<D: Device<f32>> From<MinNormOutcome<D>> for super::AttackOutcome<D> {
    /// As an attack outcome: robust = no adversarial example found at any size; the norms
    /// travel in `min_norms` (robust accuracy at each eps is read off them).
    fn from(o: MinNormOutcome<D>) -> Self {
        let robust = o.norms.iter().map(|n| n.is_infinite()).collect();
        let mut out = super::AttackOutcome::new(o.x_adv, robust);
        out.min_norms = Some(o.norms);
        out
    }
}
