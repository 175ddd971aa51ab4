//! 2-D convolution as im2col + matmul, channels-last.
//!
//! y[n, oy, ox, co] = b[co] + sum_{ky, kx, ci} x[n, oy*s+ky-p, ox*s+kx-p, ci] * W[ky, kx, ci, co]
//! (zero outside the image): PyTorch's `nn.Conv2d` (cross-correlation). The weight is stored
//! (k, k, c_in, c_out) so that, flattened, it is the (k*k*c_in, c_out) matrix the im2col rows
//! multiply; `to_torch = [3, 2, 0, 1]` gives PyTorch's (c_out, c_in, k, k).
//!
//! On the CPU, [`super::conv_cpu`] runs forward and backward as one fused op (per-image im2col
//! in cache + GEMM, the im2col recomputed in the backward pass, dX skipped when
//! `Ctx::input_grad` is false, dW and db skipped when `Ctx::param_grad` is false). Elsewhere the im2col comes from `gather`, the product is a
//! dfdx matmul and the bias a broadcast add.

use super::conv_cpu::{self, Act};
use super::kernels::Window;
use super::{gather, init, Batch, Ctx};
use crate::Param;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
pub struct Conv<D: Device<f32>> {
    /// Input (c, h, w).
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    /// Index of the weight in the network's parameter list.
    pub weight: usize,
    /// Index of the bias, if any (residual projections have none).
    pub bias: Option<usize>,
    index: gather::IndexCache<D>,
}

impl<D: Device<f32>> Conv<D> {
    /// Registers the parameters `{prefix}.weight` (and `{prefix}.bias`) and returns the layer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        (c, h, w): (usize, usize, usize),
        out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
        prefix: &str,
        params: &mut Vec<Param<D>>,
        dev: &D,
    ) -> Self {
        let weight = init::push_param(
            params,
            dev,
            format!("{prefix}.weight"),
            vec![k, k, c, out],
            vec![3, 2, 0, 1],
            true,
        );
        let bias = bias.then(|| {
            init::push_param(
                params,
                dev,
                format!("{prefix}.bias"),
                vec![out],
                vec![0],
                true,
            )
        });
        Self {
            c,
            h,
            w,
            out,
            k,
            stride,
            pad,
            weight,
            bias,
            index: gather::IndexCache::new(),
        }
    }

    /// PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = c k k.
    pub fn reset(&self, params: &mut [Param<D>], rng: &mut ChaCha8Rng) {
        let bound = init::torch_bound(self.c * self.k * self.k);
        let n = params[self.weight].numel();
        init::set_values(&mut params[self.weight], &init::uniform(rng, n, bound));
        if let Some(b) = self.bias {
            init::set_values(&mut params[b], &init::uniform(rng, self.out, bound));
        }
    }

    pub fn param_indices(&self) -> Vec<usize> {
        std::iter::once(self.weight).chain(self.bias).collect()
    }

    fn window(&self, batch: usize) -> Window {
        Window {
            batch,
            h: self.h,
            w: self.w,
            c: self.c,
            k: self.k,
            stride: self.stride,
            pad: self.pad,
        }
    }

    /// (B, h*w*c) -> (B, ho*wo*out).
    pub fn forward<T: Tape<f32, D>>(&mut self, x: Batch<D, T>, ctx: &mut Ctx<D>) -> Batch<D, T> {
        self.forward_act(x, ctx, Act::Linear)
    }

    /// [`Conv::forward`], followed by `act` (relu, or relu and 2x2/2 max pooling), fused into
    /// the CPU op. Off the CPU the pooled form is not offered (see [`super::Layer::forward_fused`]).
    pub fn forward_act<T: Tape<f32, D>>(
        &mut self,
        x: Batch<D, T>,
        ctx: &mut Ctx<D>,
        act: Act,
    ) -> Batch<D, T> {
        let batch = x.shape().0;
        let g = self.window(batch);
        let (rows, patch) = (batch * g.ho() * g.wo(), g.patch());
        if ctx.fast_cpu() {
            let w = &ctx.params[self.weight].value;
            let b = self.bias.map(|b| &ctx.params[b].value);
            return conv_cpu::conv(x, w, b, g, self.out, ctx.needs(), act, ctx.exact_ties);
        }
        let w = ctx.params[self.weight]
            .value
            .retaped::<T>()
            .reshape_like(&(patch, self.out));
        let idx = self.index.get(&g, x.device());
        let y = gather::im2col(x, &g, idx).matmul(w);
        let y = match self.bias {
            Some(b) => {
                let b = ctx.params[b].value.retaped::<T>();
                y + b.broadcast_like::<_, Axis<0>>(&(rows, self.out))
            }
            None => y,
        };
        let y = y.reshape_like(&(batch, g.ho() * g.wo() * self.out));
        match act {
            Act::Linear => y,
            Act::Relu => y.relu(),
            Act::ReluMaxPool2 => unreachable!("pooling is fused on the CPU only"),
        }
    }
}
