//! Norm-regularised adversarial training (Gong, Dou, Farnia, CVPR 2024, arXiv 2404.04647).
//!
//! Train on CE(f(x + d*), y) with
//!
//!   d* = argmax_d  L(x + d) - R(d),     L = CE of the true label,
//!
//! whose first-order value is L(x) + R*(grad_x L): the penalty R on the perturbation picks,
//! through its convex conjugate R*, the regulariser of the gradient map. No double backward is
//! needed: the adversarial step is the finite-difference form of the gradient penalty.
//!
//! | mode | R(d) | R*(g) | fast step (steps = 1) |
//! |---|---|---|---|
//! | `l1_box` | 0 if ‖d‖∞ ≤ eps, else ∞ | eps ‖g‖₁ | d = eps sign(g) |
//! | `elastic_net` | ‖(\|d\| − eps1)₊‖² / (4 eps2) | eps1 ‖g‖₁ + eps2 ‖g‖² | d = eps1 sign(g) + 2 eps2 g |
//! | `group` | 0 if every ‖d_G‖₂ ≤ eps, else ∞ | eps Σ_G ‖g_G‖₂ | d_G = eps g_G / ‖g_G‖₂ |
//!
//! The fast step is the exact maximiser of the linearisation g·d − R(d) (g = grad_x L(x)).
//! Iterative mode (steps > 1) starts from d = 0 and climbs L(x + d) − R(d), g_t = grad L(x + d_t):
//! - `l1_box`: projected signed ascent (PGD-Linf), d ← clip(d + a sign(g), −eps, eps), a =
//!   step_fraction · eps;
//! - `group`: projected normalised ascent per group, d_G ← P_G(d_G + a g_G / ‖g_G‖), with P_G the
//!   projection onto the ball ‖d_G‖ ≤ eps, a = step_fraction · eps;
//! - `elastic_net`: proximal gradient ascent, d ← prox_{aR}(d + a g). R is separable; per
//!   coordinate, minimising (u − y)² / (2a) + (|u| − eps1)₊² / (4 eps2) gives
//!   u = y if |y| ≤ eps1, else u = sign(y) (2 eps2 |y| + a eps1) / (2 eps2 + a), i.e.
//!   u = y − sign(y) a (|y| − eps1)₊ / (2 eps2 + a). Its fixed points are the stationary points
//!   g ∈ ∂R(d); for a linear loss the iteration converges to the fast step. The raw gradient has
//!   no natural unit, so the step is set per example to move the largest coordinate by
//!   step_fraction times the fast step's largest coordinate: a = step_fraction ·
//!   (eps1 + 2 eps2 ‖g‖∞) / ‖g‖∞.
//!
//! L is the per-example cross-entropy (summed over the batch, so each example's gradient is its
//! own, unscaled by the batch size; this matters for elastic_net, whose step uses the raw
//! gradient). The inner steps run with the network in eval mode, the training pass in train
//! mode. After every step x + d is clipped to [0, 1] (d = clip(x + d, 0, 1) − x).
//!
//! Groups: the input is channels-last (B, H·W·C); a group is a `group` × `group` spatial patch
//! of one channel, patches tiling the image from the top-left corner. When H or W is not a
//! multiple of the group size the last row / column of patches is partial (smaller groups,
//! same radius eps). A flat input of n features is taken as a 1 × n single-channel image, so
//! its groups are runs of `group` consecutive features.
use super::{Regime, StepContext, StepOutput, Targets};
use crate::grad::input_gradient;
use crate::losses::{ce_mean, ce_sum};
use crate::ops::{sign, Mat};
use dfdx::prelude::*;
use salient_ir::{LpDualMode, LpDualParams, ModelDef, Shape};
use salient_nn::{Mode, Network};

/// Guard against division by zero in norms (a zero gradient gives a zero step).
const TINY: f32 = 1e-12;

/// Spatial layout of one example: channels-last H x W x C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Layout {
    /// The layout of a model's input; a flat input of n features is a 1 x n single-channel image.
    pub fn of(def: &ModelDef) -> Self {
        match def.input {
            Shape::Image { c, h, w } => Layout { c, h, w },
            Shape::Flat(n) => Layout { c: 1, h: 1, w: n },
        }
    }

    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// The group of every feature (channels-last index (y·W + x)·C + c) and the number of groups:
/// group(y, x, c) = ((y / s) · ceil(W / s) + x / s) · C + c for patches of side `s`.
pub fn group_index(layout: Layout, size: usize) -> (Vec<usize>, usize) {
    let s = size.max(1);
    let (gh, gw) = (layout.h.div_ceil(s), layout.w.div_ceil(s));
    let mut idx = Vec::with_capacity(layout.numel());
    for y in 0..layout.h {
        for x in 0..layout.w {
            for c in 0..layout.c {
                idx.push(((y / s) * gw + x / s) * layout.c + c);
            }
        }
    }
    (idx, gh * gw * layout.c)
}

/// Group membership as two 0/1 matrices on the device, so that per-group sums and their
/// broadcast back are matrix products: `sum_G t = t · M` (B, groups), `expand(s) = s · Mᵀ`.
#[derive(Clone, Debug)]
pub struct Groups<D: Device<f32>> {
    /// (N, groups).
    m: Mat<D>,
    /// (groups, N).
    mt: Mat<D>,
}

impl<D: Device<f32>> Groups<D> {
    pub fn new(dev: &D, layout: Layout, size: usize) -> Self {
        let (idx, count) = group_index(layout, size);
        let n = idx.len();
        let mut m = vec![0.0f32; n * count];
        let mut mt = vec![0.0f32; n * count];
        for (i, &g) in idx.iter().enumerate() {
            m[i * count + g] = 1.0;
            mt[g * n + i] = 1.0;
        }
        Groups {
            m: dev.tensor_from_vec(m, (n, count)),
            mt: dev.tensor_from_vec(mt, (count, n)),
        }
    }

    /// L2 norm of every group of every row: (B, groups).
    pub fn norms(&self, t: &Mat<D>) -> Mat<D> {
        t.clone().square().matmul(self.m.clone()).sqrt()
    }

    /// A per-group value broadcast back to the group's features: (B, groups) -> (B, N).
    pub fn expand(&self, per_group: Mat<D>) -> Mat<D> {
        per_group.matmul(self.mt.clone())
    }

    /// Each group scaled to L2 norm `eps`: t_G * eps / ||t_G|| (groups of zeros stay zero).
    pub fn scale_to(&self, t: &Mat<D>, eps: f32) -> Mat<D> {
        let factor = (self.norms(t) + TINY).recip() * eps;
        t.clone() * self.expand(factor)
    }

    /// Each group projected onto the L2 ball of radius `eps`: t_G * min(1, eps / ||t_G||).
    pub fn project(&self, t: &Mat<D>, eps: f32) -> Mat<D> {
        let factor = ((self.norms(t) + TINY).recip() * eps).clamp(0.0, 1.0);
        t.clone() * self.expand(factor)
    }
}

/// The closed-form (fast) perturbation of a gradient `g` (B, N): the maximiser of g·d − R(d)
/// (see the module table). `groups` is needed for the group mode only.
///
/// Panics in group mode without `groups` (a caller bug: build them with [`Groups::new`]).
pub fn fast_step<D: Device<f32>>(
    mode: &LpDualMode,
    g: &Mat<D>,
    groups: Option<&Groups<D>>,
) -> Mat<D> {
    match *mode {
        LpDualMode::L1Box { eps } => sign(g) * eps as f32,
        LpDualMode::ElasticNet { eps1, eps2 } => {
            sign(g) * eps1 as f32 + g.clone() * (2.0 * eps2) as f32
        }
        LpDualMode::Group { eps, .. } => groups
            .expect("group mode needs its groups")
            .scale_to(g, eps as f32),
    }
}

/// One iterative ascent step from `d` along the gradient `g` with step fraction `fraction`
/// (see the module docs): projected for l1_box and group, proximal for elastic_net.
///
/// Panics in group mode without `groups` (a caller bug).
pub fn ascent_step<D: Device<f32>>(
    mode: &LpDualMode,
    d: Mat<D>,
    g: &Mat<D>,
    fraction: f32,
    groups: Option<&Groups<D>>,
) -> Mat<D> {
    match *mode {
        LpDualMode::L1Box { eps } => {
            let eps = eps as f32;
            (d + sign(g) * (fraction * eps)).clamp(-eps, eps)
        }
        LpDualMode::Group { eps, .. } => {
            let eps = eps as f32;
            let groups = groups.expect("group mode needs its groups");
            groups.project(&(d + groups.scale_to(g, fraction * eps)), eps)
        }
        LpDualMode::ElasticNet { eps1, eps2 } => {
            let (eps1, eps2) = (eps1 as f32, eps2 as f32);
            let shape = *g.shape();
            // a = fraction * (eps1 / ||g||_inf + 2 eps2), per example.
            let ginf = g.clone().abs().max::<(usize,), Axis<1>>();
            let a = ((ginf + TINY).recip() * eps1 + 2.0 * eps2) * fraction;
            let a = a.broadcast_like::<(usize, usize), Axis<1>>(&shape);
            let y = d + g.clone() * a.clone();
            elastic_prox(y, a, eps1, eps2)
        }
    }
}

/// prox_{aR}(y) for R(d) = ||(|d| - eps1)_+||^2 / (4 eps2), elementwise with step `a` (B, N):
/// y - sign(y) a (|y| - eps1)_+ / (2 eps2 + a).
pub fn elastic_prox<D: Device<f32>>(y: Mat<D>, a: Mat<D>, eps1: f32, eps2: f32) -> Mat<D> {
    let excess = (y.clone().abs() - eps1).relu();
    let shrink = excess * a.clone() / (a + 2.0 * eps2);
    y.clone() - sign(&y) * shrink
}

/// The perturbation d* of the batch `x` (eval-mode gradients; module docs), with x + d* in
/// [0, 1].
pub fn perturbation<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    onehot: &Mat<D>,
    p: &LpDualParams,
    groups: Option<&Groups<D>>,
) -> Mat<D> {
    let box_clip = |d: Mat<D>| (x.clone() + d).clamp(0.0, 1.0) - x.clone();
    if p.steps <= 1 {
        let (g, _) = input_gradient(net, x, Mode::Eval, |z| ce_sum(z, onehot));
        return box_clip(fast_step(&p.mode, &g, groups));
    }
    let mut d: Mat<D> = x.device().zeros_like(x.shape());
    for _ in 0..p.steps {
        if crate::stop::requested() {
            break; // the caller discards this batch (crate::stop)
        }
        let (g, _) = input_gradient(net, &(x.clone() + d.clone()), Mode::Eval, |z| {
            ce_sum(z, onehot)
        });
        d = box_clip(ascent_step(&p.mode, d, &g, p.step_fraction as f32, groups));
    }
    d
}

/// Whether `size` x `size` patches fit the input (a flat input of n features: runs of `size`
/// consecutive features, size <= n).
fn group_fits(input: Shape, size: usize) -> bool {
    match input {
        Shape::Image { h, w, .. } => size >= 1 && size <= h && size <= w,
        Shape::Flat(n) => size >= 1 && size <= n,
    }
}

/// The `lp_dual` regime: L = CE(f(x + d*), y), train mode.
pub struct LpDual<D: Device<f32>> {
    pub params: LpDualParams,
    pub layout: Layout,
    groups: Option<Groups<D>>,
}

impl<D: Device<f32>> LpDual<D> {
    /// Check the parameters against the model's input; `Err` says what does not fit.
    pub fn new(params: LpDualParams, model: &ModelDef) -> Result<Self, String> {
        let layout = Layout::of(model);
        let bad =
            |what: &str, v: f64| format!("lp_dual: {what} must be a finite number > 0, got {v}");
        match params.mode {
            LpDualMode::L1Box { eps } if !(eps.is_finite() && eps > 0.0) => return Err(bad("eps", eps)),
            LpDualMode::ElasticNet { eps1, .. } if !(eps1.is_finite() && eps1 >= 0.0) => {
                return Err(format!("lp_dual: eps1 must be a finite number >= 0, got {eps1}"))
            }
            LpDualMode::ElasticNet { eps2, .. } if !(eps2.is_finite() && eps2 > 0.0) => return Err(bad("eps2", eps2)),
            LpDualMode::Group { eps, .. } if !(eps.is_finite() && eps > 0.0) => return Err(bad("eps", eps)),
            LpDualMode::Group { group, .. } if !group_fits(model.input, group) => {
                return Err(format!(
                    "lp_dual: a group of {group}x{group} pixels does not fit the {}x{} input of model `{}`",
                    layout.h, layout.w, model.name
                ))
            }
            _ => {}
        }
        if params.steps > 1 && !(params.step_fraction.is_finite() && params.step_fraction > 0.0) {
            return Err(bad("step_fraction", params.step_fraction));
        }
        Ok(LpDual {
            params,
            layout,
            groups: None,
        })
    }
}

impl<D: Device<f32>> Regime<D> for LpDual<D> {
    fn step(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        y: &Targets<D>,
        _ctx: &mut StepContext,
    ) -> StepOutput<D> {
        if let (LpDualMode::Group { group, .. }, None) = (&self.params.mode, &self.groups) {
            self.groups = Some(Groups::new(x.device(), self.layout, *group));
        }
        let d = perturbation(net, x, &y.onehot, &self.params, self.groups.as_ref());
        let adv = net.forward((x.clone() + d).traced(Gradients::leaky()), Mode::Train);
        let logits = adv.retaped::<NoneTape>();
        StepOutput {
            loss: ce_mean(adv, &y.onehot),
            logits,
        }
    }
}
