//! Max and average pooling over valid windows (no padding; output size floor((h - k)/s) + 1).
//!
//! Max: y = max over the window; the gradient goes to the first maximal input in (ky, kx) scan
//! order (PyTorch's rule) on the CPU kernel. Average: y = mean over the k*k window; each input
//! receives gy / (k*k) from every window that contains it.

use super::kernels::{avgpool, avgpool_backward, maxpool, maxpool_backward, Window};
use super::{cpu_op, gather, Batch, Ctx};
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub struct Pool<D: Device<f32>> {
    /// Input (c, h, w).
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub size: usize,
    pub stride: usize,
    /// Max pooling if true, average pooling otherwise.
    pub max: bool,
    index: gather::IndexCache<D>,
}

impl<D: Device<f32>> Pool<D> {
    pub fn new((c, h, w): (usize, usize, usize), size: usize, stride: usize, max: bool) -> Self {
        Self {
            c,
            h,
            w,
            size,
            stride,
            max,
            index: gather::IndexCache::new(),
        }
    }

    /// (B, h*w*c) -> (B, ho*wo*c).
    pub fn forward<T: Tape<f32, D>>(&mut self, x: Batch<D, T>, ctx: &Ctx<D>) -> Batch<D, T> {
        let batch = x.shape().0;
        let g = Window {
            batch,
            h: self.h,
            w: self.w,
            c: self.c,
            k: self.size,
            stride: self.stride,
            pad: 0,
        };
        if !ctx.fast_cpu() {
            let idx = self.index.get(&g, x.device());
            return gather::pool(x, &g, idx, self.max);
        }
        let out = (batch, g.ho() * g.wo() * self.c);
        if self.max {
            cpu_op::cpu_op(
                x,
                out,
                |x, y| {
                    let mut arg = vec![0u32; y.len()];
                    maxpool(x, &g, y, &mut arg);
                    arg
                },
                move |arg, gy, gx| maxpool_backward(gy, arg, &g, gx),
            )
        } else {
            cpu_op::cpu_op(
                x,
                out,
                |x, y| avgpool(x, &g, y),
                move |_, gy, gx| avgpool_backward(gy, &g, gx),
            )
        }
    }
}
