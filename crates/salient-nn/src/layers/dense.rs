//! Fully connected layer: y = x W + b, with W stored (in, out) (`to_torch = [1, 0]` gives
//! PyTorch's (out, in) `nn.Linear.weight`).
//!
//! On the CPU, [`super::dense_cpu`] runs it as one op whose backward computes dX = G W^T only
//! when the input needs a gradient and dW = X^T G, db = 1^T G only when parameter gradients are
//! on (bit-identical to the dfdx ops). Elsewhere it is dfdx's matmul plus a broadcast add,
//! which always computes all three.

use super::{dense_cpu, init, Batch, Ctx};
use crate::Param;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
pub struct Dense {
    pub inp: usize,
    pub out: usize,
    pub weight: usize,
    pub bias: usize,
}

impl Dense {
    pub fn new<D: Device<f32>>(
        inp: usize,
        out: usize,
        prefix: &str,
        params: &mut Vec<Param<D>>,
        dev: &D,
    ) -> Self {
        let weight = init::push_param(
            params,
            dev,
            format!("{prefix}.weight"),
            vec![inp, out],
            vec![1, 0],
            true,
        );
        let bias = init::push_param(
            params,
            dev,
            format!("{prefix}.bias"),
            vec![out],
            vec![0],
            true,
        );
        Self {
            inp,
            out,
            weight,
            bias,
        }
    }

    /// PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    pub fn reset<D: Device<f32>>(&self, params: &mut [Param<D>], rng: &mut ChaCha8Rng) {
        let bound = init::torch_bound(self.inp);
        init::set_values(
            &mut params[self.weight],
            &init::uniform(rng, self.inp * self.out, bound),
        );
        init::set_values(&mut params[self.bias], &init::uniform(rng, self.out, bound));
    }

    pub fn forward<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        ctx: &Ctx<D>,
    ) -> Batch<D, T> {
        if ctx.fast_cpu() {
            let (w, b) = (&ctx.params[self.weight].value, &ctx.params[self.bias].value);
            return dense_cpu::dense(x, w, b, (self.inp, self.out), ctx.needs());
        }
        let batch = x.shape().0;
        let w = ctx.params[self.weight]
            .value
            .retaped::<T>()
            .reshape_like(&(self.inp, self.out));
        let b = ctx.params[self.bias].value.retaped::<T>();
        x.matmul(w) + b.broadcast_like::<_, Axis<0>>(&(batch, self.out))
    }
}
