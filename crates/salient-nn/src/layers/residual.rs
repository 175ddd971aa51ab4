//! Residual block: y = body(x) + shortcut(x), the shortcut being the identity or a bias-free
//! 1x1 convolution with the body's stride (`projection`), named `{prefix}.body.{j}.*` and
//! `{prefix}.shortcut.weight` as in a PyTorch module with `body = nn.Sequential(...)` and
//! `shortcut = nn.Conv2d(c_in, out, 1, stride, bias=False)`.

use super::conv::Conv;
use super::{Batch, Ctx, Layer};
use dfdx::prelude::*;

#[derive(Clone, Debug)]
pub struct Residual<D: Device<f32>> {
    pub body: Vec<Layer<D>>,
    pub shortcut: Option<Conv<D>>,
}

impl<D: Device<f32>> Residual<D> {
    pub fn forward<T: Tape<f32, D>>(&mut self, x: Batch<D, T>, ctx: &mut Ctx<D>) -> Batch<D, T> {
        let input_grad = ctx.input_grad;
        let mut y = x.with_empty_tape();
        for layer in &mut self.body {
            y = layer.forward(y, ctx);
        }
        // The shortcut reads the block's input, whose gradient need is the block's own.
        let body_grad = ctx.input_grad;
        ctx.input_grad = input_grad;
        let s = match &mut self.shortcut {
            Some(conv) => conv.forward(x, ctx),
            None => x,
        };
        ctx.input_grad = body_grad;
        y + s
    }
}
