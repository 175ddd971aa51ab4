//! Small tensor helpers on (B, N) batches, on the device: signs, per-row norms, projections.
use dfdx::prelude::*;

pub type Mat<D> = Tensor<(usize, usize), f32, D>;

/// Elementwise sign: +1 where t > 0, -1 where t < 0, 0 where t == 0 (exact, no division).
pub fn sign<D: Device<f32>>(t: &Mat<D>) -> Mat<D> {
    let dev = t.device().clone();
    let ones: Mat<D> = dev.ones_like(t.shape());
    let zeros: Mat<D> = dev.zeros_like(t.shape());
    let pos = t.gt(0.0).choose(ones.clone(), zeros.clone());
    let neg = t.lt(0.0).choose(ones, zeros);
    pos - neg
}

/// L2 norm of every row: (B,).
pub fn row_norms<D: Device<f32>>(t: &Mat<D>) -> Tensor<(usize,), f32, D> {
    t.clone().square().sum::<(usize,), Axis<1>>().sqrt()
}

/// Multiply row i of `t` by `s[i]`.
pub fn scale_rows<D: Device<f32>>(t: Mat<D>, s: Tensor<(usize,), f32, D>) -> Mat<D> {
    let shape = *t.shape();
    t * s.broadcast_like::<(usize, usize), Axis<1>>(&shape)
}

/// Each row divided by its L2 norm (rows of zeros stay zero).
pub fn normalize_rows<D: Device<f32>>(t: &Mat<D>) -> Mat<D> {
    let inv = (row_norms(t) + 1e-12).recip();
    scale_rows(t.clone(), inv)
}

/// Project each row of `delta` onto the L2 ball of radius `eps`: delta * min(1, eps / ||delta||).
pub fn project_l2<D: Device<f32>>(delta: Mat<D>, eps: f32) -> Mat<D> {
    let factor = ((row_norms(&delta) + 1e-12).recip() * eps).clamp(0.0, 1.0);
    scale_rows(delta, factor)
}

/// Host copy of a tensor as rows.
pub fn to_host<D: Device<f32>>(t: &Mat<D>) -> Vec<f32> {
    t.as_vec()
}
