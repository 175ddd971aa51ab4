//! Batch normalisation (PyTorch's `nn.BatchNorm2d` / `nn.BatchNorm1d`).
//!
//! Statistics are per channel over (B, H, W) for images, per feature over B for flat inputs.
//! Channels-last makes both the same computation on the (rows, C) view of the batch.
//! Train: mu = mean(x), var = mean((x - mu)^2) (biased),
//! y = gamma (x - mu) / sqrt(var + eps) + beta, differentiated through mu and var; running stats
//! updated as r <- (1 - momentum) r + momentum stat, with the unbiased variance var n / (n - 1)
//! (n = rows; with n = 1 the biased one).
//! Eval: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta, computed as
//! y = x s + t with s = gamma / sqrt(running_var + eps), t = beta - s running_mean. On the CPU
//! with parameter gradients off (input-gradient passes) this is one op whose backward is only
//! dx = dy s (bit-identical to the dfdx ops, which also compute d gamma and d beta).

use super::{cpu_op, init, Batch, Ctx};
use crate::{Mode, Param};
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Channels (image) or features (flat).
    pub c: usize,
    pub momentum: f32,
    pub eps: f32,
    pub weight: usize,
    pub bias: usize,
    pub running_mean: usize,
    pub running_var: usize,
}

impl BatchNorm {
    pub fn new<D: Device<f32>>(
        c: usize,
        momentum: f32,
        eps: f32,
        prefix: &str,
        params: &mut Vec<Param<D>>,
        dev: &D,
    ) -> Self {
        let mut p = |name: &str, trainable| {
            init::push_param(
                params,
                dev,
                format!("{prefix}.{name}"),
                vec![c],
                vec![0],
                trainable,
            )
        };
        let weight = p("weight", true);
        let bias = p("bias", true);
        let running_mean = p("running_mean", false);
        let running_var = p("running_var", false);
        Self {
            c,
            momentum,
            eps,
            weight,
            bias,
            running_mean,
            running_var,
        }
    }

    /// PyTorch's `reset_parameters`: gamma 1, beta 0, running mean 0, running var 1.
    pub fn reset<D: Device<f32>>(&self, params: &mut [Param<D>]) {
        let (ones, zeros) = (vec![1.0; self.c], vec![0.0; self.c]);
        init::set_values(&mut params[self.weight], &ones);
        init::set_values(&mut params[self.bias], &zeros);
        init::set_values(&mut params[self.running_mean], &zeros);
        init::set_values(&mut params[self.running_var], &ones);
    }

    pub fn param_indices(&self) -> Vec<usize> {
        vec![self.weight, self.bias, self.running_mean, self.running_var]
    }

    pub fn forward<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        ctx: &mut Ctx<D>,
    ) -> Batch<D, T> {
        let (batch, n) = *x.shape();
        if ctx.mode == Mode::Eval && !ctx.param_grad && ctx.fast_cpu() {
            return self.eval_input_only(x, ctx);
        }
        let rows = batch * n / self.c;
        let shape = (rows, self.c);
        let x = x.reshape_like(&shape);
        let gamma = ctx.params[self.weight].value.retaped::<T>();
        let beta = ctx.params[self.bias].value.retaped::<T>();
        let y = match ctx.mode {
            Mode::Train => {
                let mean = x.with_empty_tape().mean::<(usize,), Axis<0>>();
                let mean_value = mean.retaped::<NoneTape>();
                let centered = x - mean.broadcast_like::<_, Axis<0>>(&shape);
                let var = centered
                    .with_empty_tape()
                    .square()
                    .mean::<(usize,), Axis<0>>();
                let var_value = var.retaped::<NoneTape>();
                let scale = (var + self.eps).sqrt().recip() * gamma;
                let y = centered * scale.broadcast_like::<_, Axis<0>>(&shape)
                    + beta.broadcast_like::<_, Axis<0>>(&shape);
                self.update_running(ctx.params, mean_value, var_value, rows);
                y
            }
            Mode::Eval => {
                let rm = ctx.params[self.running_mean].value.clone();
                let rv = ctx.params[self.running_var].value.clone();
                let scale = gamma * (rv + self.eps).sqrt().recip();
                let shift = beta - scale.with_empty_tape() * rm;
                x * scale.broadcast_like::<_, Axis<0>>(&shape)
                    + shift.broadcast_like::<_, Axis<0>>(&shape)
            }
        };
        y.reshape_like(&(batch, n))
    }

    /// Eval mode without parameter gradients on the CPU: y = x s + t per channel (channel of
    /// feature i is i % c) as one op with backward dx += dy s; s and t are computed with the
    /// same dfdx ops as the general path, so the values are bit-identical.
    fn eval_input_only<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        ctx: &Ctx<D>,
    ) -> Batch<D, T> {
        let shape = *x.shape();
        let p = |i: usize| ctx.params[i].value.clone();
        let scale = p(self.weight) * (p(self.running_var) + self.eps).sqrt().recip();
        let shift = p(self.bias) - scale.clone() * p(self.running_mean);
        let (s, t) = (scale.as_vec(), shift.as_vec());
        let c = self.c;
        cpu_op::cpu_op(
            x,
            shape,
            move |x, y| {
                for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for (((yv, xv), sv), tv) in yr.iter_mut().zip(xr).zip(&s).zip(&t) {
                        *yv = *xv * *sv + *tv;
                    }
                }
                s
            },
            move |s, gy, gx| {
                for (gxr, gyr) in gx.chunks_exact_mut(c).zip(gy.chunks_exact(c)) {
                    for ((gxv, gyv), sv) in gxr.iter_mut().zip(gyr).zip(s) {
                        *gxv += *sv * *gyv;
                    }
                }
            },
        )
    }

    fn update_running<D: Device<f32>>(
        &self,
        params: &mut [Param<D>],
        mean: Tensor<(usize,), f32, D>,
        var: Tensor<(usize,), f32, D>,
        rows: usize,
    ) {
        let m = self.momentum;
        let unbias = if rows > 1 {
            rows as f32 / (rows as f32 - 1.0)
        } else {
            1.0
        };
        let rm = params[self.running_mean].value.clone() * (1.0 - m) + mean * m;
        let rv = params[self.running_var].value.clone() * (1.0 - m) + var * (m * unbias);
        params[self.running_mean].value = rm;
        params[self.running_var].value = rv;
    }
}
