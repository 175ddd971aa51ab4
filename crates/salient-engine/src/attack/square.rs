//! Square attack (Andriushchenko, Croce, Flammarion, Hein 2020, "Square Attack: a
//! query-efficient black-box adversarial attack via random search"), Linf and L2.
//!
//! Score-based and gradient-free: the network is only queried for its logits (eval mode). It
//! minimises the margin loss L(x') = z_y(x') - max_(j != y) z_j(x') by random search: each
//! iteration proposes a change of x_best confined to a random s x s square (the same square for
//! every channel) and keeps it if the margin decreases. An example stops as soon as it is
//! misclassified (its x_best is then the first adversarial example found) or when its query
//! budget is spent. Every forward pass of an example counts as one query, the initial point's
//! included, so no example uses more than `queries` queries.
//!
//! Square size: s = round(sqrt(p * n_features / c)) (at least 1; L2: at least 3 and odd),
//! capped at the image side, with p halved at iterations 10, 50, 200, 500, 1000, 2000, 4000,
//! 6000, 8000 of a 10000-query schedule rescaled to the budget (`p_selection`, the authors'
//! schedule), starting from `p_init`. Square positions are uniform over all positions that
//! fit.
//!
//! Linf: start from vertical stripes, x + eps * r with r = +-1 per (channel, column); a
//! proposal sets the square of each channel to x +- eps (one random sign per channel), all
//! clipped to [max(x - eps, 0), min(x + eps, 1)].
//!
//! L2 (the authors' construction): start from a grid of (h/5) x (h/5) tiles each holding a
//! random-signed "eta" pattern (nested rectangles of weight 1/(k+1)^2, positive on one half and
//! negative on the other), scaled to norm eps. A proposal takes two random squares W1 and W2,
//! moves the perturbation's mass out of W2 into W1, where it puts a fresh random-signed eta
//! pattern plus the old content of W1 (normalised per channel) with norm
//! sqrt(max(eps^2 - ||delta||^2, 0) / c + ||delta on W1 u W2||^2), then rescales the whole
//! perturbation to norm eps and clips x + delta to [0, 1].
//!
//! Proposals are built on the host: they are sparse edits of one square per example, and the
//! forward pass (the only model work) runs on the device.
use super::rows::{bucket_fine, correct_rows, AttackOutcome};
use crate::ops::Mat;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use salient_ir::{Norm, Shape};
use salient_nn::{Mode, Network};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SquareConfig {
    pub norm: Norm,
    pub eps: f32,
    /// Query budget per example (forward passes, the first one included).
    pub queries: usize,
    /// Initial fraction p of the pixels a square covers, in (0, 1].
    pub p_init: f64,
}

/// Layout of one example: channels-last (h, w, c), as the engine stores images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageDims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl ImageDims {
    /// The model's input shape; a flat input of n features is a 1 x n single-channel image.
    pub fn of(shape: Shape) -> Self {
        match shape {
            Shape::Image { c, h, w } => ImageDims { c, h, w },
            Shape::Flat(n) => ImageDims { c: 1, h: 1, w: n },
        }
    }

    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }

    fn at(&self, y: usize, x: usize, ch: usize) -> usize {
        (y * self.w + x) * self.c + ch
    }
}

/// Square's outcome and the number of queries each example used.
#[derive(Clone, Debug)]
pub struct SquareOutcome<D: Device<f32>> {
    pub outcome: AttackOutcome<D>,
    pub queries: Vec<usize>,
}

/// The authors' schedule of p: `p_init` halved at fixed points of a 10000-iteration run,
/// rescaled to `total` iterations.
pub fn p_selection(p_init: f64, it: usize, total: usize) -> f64 {
    let it = (it as f64 / total.max(1) as f64 * 10000.0) as usize;
    let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
        .iter()
        .filter(|&&m| it > m)
        .count();
    p_init / (1u32 << halvings) as f64
}

/// Square attack on the batch `x` (correct labels `labels`), images laid out as `dims`.
pub fn square<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    cfg: &SquareConfig,
    dims: ImageDims,
    rng: &mut ChaCha8Rng,
) -> SquareOutcome<D> {
    let (b, n) = *x.shape();
    let dims = if dims.numel() == n {
        dims
    } else {
        ImageDims { c: 1, h: 1, w: n }
    };
    let classes = net.def().output.numel();
    let xs = x.as_vec();
    let eps = cfg.eps;
    if b == 0 || n == 0 || cfg.queries == 0 {
        let outcome = AttackOutcome::new(x.clone(), vec![true; b]);
        return SquareOutcome {
            outcome,
            queries: vec![0; b],
        };
    }
    let mut best = Vec::with_capacity(b * n);
    for row in xs.chunks(n.max(1)) {
        best.extend(match cfg.norm {
            Norm::Linf => stripes(row, dims, eps, rng),
            Norm::L2 => tiles(row, dims, eps, rng),
        });
    }
    let mut queries = vec![0usize; b];
    let mut broken = vec![false; b];
    let mut margin_min = vec![f32::INFINITY; b];
    let all: Vec<usize> = (0..b).collect();
    evaluate(
        net,
        &all,
        best.clone(),
        n,
        classes,
        labels,
        |i, _, m, wrong| {
            queries[i] += 1;
            margin_min[i] = m;
            broken[i] = wrong;
        },
    );
    for it in 0..cfg.queries - 1 {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        let active: Vec<usize> = (0..b).filter(|&i| !broken[i]).collect();
        if active.is_empty() {
            break;
        }
        let p = p_selection(cfg.p_init, it, cfg.queries);
        let size = bucket_fine(active.len(), b);
        let mut cand = Vec::with_capacity(size * n);
        for &i in &active {
            let (x0, xb) = (&xs[i * n..(i + 1) * n], &best[i * n..(i + 1) * n]);
            cand.extend(match cfg.norm {
                Norm::Linf => propose_linf(x0, xb, dims, eps, p, rng),
                Norm::L2 => propose_l2(x0, xb, dims, eps, p, rng),
            });
        }
        // Padding rows (copies of the first candidate; see `bucket_fine`) keep the sizes few.
        let first = cand[..n].to_vec();
        for _ in active.len()..size {
            cand.extend_from_slice(&first);
        }
        evaluate(
            net,
            &active,
            cand,
            n,
            classes,
            labels,
            |i, row, m, wrong| {
                queries[i] += 1;
                if m < margin_min[i] || wrong {
                    best[i * n..(i + 1) * n].copy_from_slice(row);
                    margin_min[i] = m;
                }
                broken[i] = wrong;
            },
        );
    }
    let x_adv = x.device().tensor_from_vec(best, (b, n));
    SquareOutcome {
        outcome: AttackOutcome::new(x_adv, broken.iter().map(|&w| !w).collect()),
        queries,
    }
}

/// Query the network on the candidate rows `cand` of the examples `rows` (rows of `cand` past
/// `rows.len()` are padding); `update(i, row, margin, misclassified)` is called for each.
fn evaluate<D: Device<f32>>(
    net: &mut Network<D>,
    rows: &[usize],
    cand: Vec<f32>,
    n: usize,
    classes: usize,
    labels: &[usize],
    mut update: impl FnMut(usize, &[f32], f32, bool),
) {
    let t = net
        .device()
        .tensor_from_vec(cand.clone(), (cand.len() / n, n));
    let logits = net.forward(t, Mode::Eval).as_vec();
    let ys: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
    let correct = correct_rows(&logits[..rows.len() * classes], classes, &ys);
    for (j, &i) in rows.iter().enumerate() {
        let z = &logits[j * classes..(j + 1) * classes];
        update(i, &cand[j * n..(j + 1) * n], margin(z, ys[j]), !correct[j]);
    }
}

/// The margin z_y - max_(j != y) z_j (negative when misclassified).
pub fn margin(z: &[f32], y: usize) -> f32 {
    let rival = z
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max);
    z[y] - rival
}

fn sign(rng: &mut ChaCha8Rng) -> f32 {
    if rng.gen::<bool>() {
        1.0
    } else {
        -1.0
    }
}

/// Side of the square for the fraction p: round(sqrt(p n / c)), at least `min`, at most the
/// image side.
fn side(p: f64, dims: ImageDims, min: usize) -> usize {
    let s = ((p * dims.numel() as f64 / dims.c as f64).sqrt().round() as usize).max(min);
    s.min(dims.h.min(dims.w)).max(1)
}

/// A random top-left corner of an s x s square inside the image.
fn corner(dims: ImageDims, s: usize, rng: &mut ChaCha8Rng) -> (usize, usize) {
    (rng.gen_range(0..=dims.h - s), rng.gen_range(0..=dims.w - s))
}

/// Linf start: x + eps * r, r = +-1 per (channel, column), clipped to the box.
fn stripes(x: &[f32], dims: ImageDims, eps: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = x.to_vec();
    for col in 0..dims.w {
        for ch in 0..dims.c {
            let r = sign(rng);
            for row in 0..dims.h {
                let k = dims.at(row, col, ch);
                out[k] = (x[k] + eps * r).clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// Linf proposal: the square of each channel set to x + eps or x - eps (clipped to the box).
fn propose_linf(
    x: &[f32],
    best: &[f32],
    dims: ImageDims,
    eps: f32,
    p: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let s = side(p, dims, 1);
    let (vh, vw) = corner(dims, s, rng);
    let mut out = best.to_vec();
    for ch in 0..dims.c {
        let r = sign(rng);
        for row in vh..vh + s {
            for col in vw..vw + s {
                let k = dims.at(row, col, ch);
                out[k] = if r > 0.0 {
                    (x[k] + eps).min(1.0)
                } else {
                    (x[k] - eps).max(0.0)
                };
            }
        }
    }
    out
}

/// The nested-rectangles pattern of an x-by-y block (the authors' `eta_rectangles`), unit norm.
fn eta_rectangles(rows: usize, cols: usize) -> Vec<f32> {
    let mut d = vec![0.0f32; rows * cols];
    let (mut r0, mut c0) = ((rows / 2) as isize, (cols / 2) as isize);
    for k in 0..(rows / 2 + 1).max(cols / 2 + 1) {
        let weight = 1.0 / ((k + 1) * (k + 1)) as f32;
        let (r1, c1) = (
            (r0 + 2 * k as isize + 1).min(rows as isize),
            (c0 + 2 * k as isize + 1).min(cols as isize),
        );
        for r in r0.max(0)..r1 {
            for c in c0.max(0)..c1 {
                d[r as usize * cols + c as usize] += weight;
            }
        }
        r0 -= 1;
        c0 -= 1;
    }
    let norm = d.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        d.iter_mut().for_each(|v| *v /= norm);
    }
    d
}

/// The s x s L2 pattern (the authors' `eta`): nested rectangles, positive on the top half and
/// negative on the bottom one, unit norm, transposed with probability 1/2.
fn eta(s: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let top = s / 2;
    let mut d = eta_rectangles(top, s);
    d.extend(eta_rectangles(s - top, s).iter().map(|v| -v));
    let norm = d.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        d.iter_mut().for_each(|v| *v /= norm);
    }
    if rng.gen::<bool>() {
        let t: Vec<f32> = (0..s * s).map(|i| d[(i % s) * s + i / s]).collect();
        return t;
    }
    d
}

/// x + eps * delta / ||delta||, clipped to [0, 1].
fn scaled(x: &[f32], delta: &[f32], eps: f32) -> Vec<f32> {
    let norm = delta.iter().map(|v| v * v).sum::<f32>().sqrt();
    let k = eps / (norm + 1e-12);
    x.iter()
        .zip(delta)
        .map(|(a, d)| (a + d * k).clamp(0.0, 1.0))
        .collect()
}

/// L2 start: a grid of random-signed eta tiles of side max(h / 5, 1), scaled to norm eps.
fn tiles(x: &[f32], dims: ImageDims, eps: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let s = (dims.h / 5).max(1);
    let mut delta = vec![0.0f32; x.len()];
    let mut vh = dims.h.saturating_sub(5 * s) / 2;
    for _ in 0..dims.h / s {
        let mut vw = dims.w.saturating_sub(5 * s) / 2;
        for _ in 0..dims.w / s {
            if vh + s <= dims.h && vw + s <= dims.w {
                for ch in 0..dims.c {
                    let (e, r) = (eta(s, rng), sign(rng));
                    for a in 0..s {
                        for b in 0..s {
                            delta[dims.at(vh + a, vw + b, ch)] += e[a * s + b] * r;
                        }
                    }
                }
            }
            vw += s;
        }
        vh += s;
    }
    scaled(x, &delta, eps)
}

/// L2 proposal (see the module docs).
fn propose_l2(
    x: &[f32],
    best: &[f32],
    dims: ImageDims,
    eps: f32,
    p: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let mut s = side(p, dims, 3);
    if s < dims.h.min(dims.w) {
        s |= 1; // odd, as the authors' code makes it
    }
    let (h1, w1) = corner(dims, s, rng);
    let (h2, w2) = corner(dims, s, rng);
    let mut delta: Vec<f32> = best.iter().zip(x).map(|(b, a)| b - a).collect();
    let in1 = |r: usize, c: usize| r >= h1 && r < h1 + s && c >= w1 && c < w1 + s;
    let in2 = |r: usize, c: usize| r >= h2 && r < h2 + s && c >= w2 && c < w2 + s;
    let norm_image_sq: f32 = delta.iter().map(|v| v * v).sum();
    let mut windows_sq = 0.0f32;
    for r in 0..dims.h {
        for c in 0..dims.w {
            if in1(r, c) || in2(r, c) {
                windows_sq += (0..dims.c)
                    .map(|ch| delta[dims.at(r, c, ch)].powi(2))
                    .sum::<f32>();
            }
        }
    }
    let target = ((eps * eps - norm_image_sq).max(0.0) / dims.c as f32 + windows_sq).sqrt();
    let mut fresh = Vec::with_capacity(dims.c);
    for ch in 0..dims.c {
        let old_norm = (0..s * s)
            .map(|k| delta[dims.at(h1 + k / s, w1 + k % s, ch)].powi(2))
            .sum::<f32>()
            .sqrt();
        let (e, r) = (eta(s, rng), sign(rng));
        let mut block: Vec<f32> = (0..s * s)
            .map(|k| e[k] * r + delta[dims.at(h1 + k / s, w1 + k % s, ch)] / (old_norm + 1e-12))
            .collect();
        let norm = block.iter().map(|v| v * v).sum::<f32>().sqrt();
        block.iter_mut().for_each(|v| *v *= target / (norm + 1e-12));
        fresh.push(block);
    }
    for a in 0..s {
        for b in 0..s {
            for ch in 0..dims.c {
                delta[dims.at(h2 + a, w2 + b, ch)] = 0.0;
            }
        }
    }
    for (ch, block) in fresh.iter().enumerate() {
        for k in 0..s * s {
            delta[dims.at(h1 + k / s, w1 + k % s, ch)] = block[k];
        }
    }
    scaled(x, &delta, eps)
}

/// Square as an evaluation [`super::Attack`].
#[derive(Clone, Debug)]
pub struct Square {
    cfg: SquareConfig,
    dims: ImageDims,
}

impl Square {
    pub fn new(cfg: SquareConfig, dims: ImageDims) -> Result<Self, super::AttackError> {
        if cfg.queries == 0 {
            return super::invalid("queries must be at least 1");
        }
        if !(cfg.p_init > 0.0 && cfg.p_init <= 1.0) {
            return super::invalid(format!("p_init must be in (0, 1], got {}", cfg.p_init));
        }
        Ok(Square { cfg, dims })
    }
}

impl<D: Device<f32>> super::Attack<D> for Square {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> AttackOutcome<D> {
        square(net, x, labels, &self.cfg, self.dims, rng).outcome
    }
}
