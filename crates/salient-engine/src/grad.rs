//! Input gradients: the first-order building block of every regime, attack and saliency method.
//!
//! dfdx has no double backward, so anything that needs a gradient of a gradient is written in
//! first-order form: an input gradient is computed here, then treated as a constant.
use crate::losses::Logits;
use dfdx::prelude::*;
use salient_nn::{Mode, Network};

/// Gradient of `loss(f(x))` with respect to the input `x` (B, N), with the network in `mode`,
/// together with the logits f(x) (no tape). The parameters' gradients of this pass are discarded.
pub fn input_gradient<D, L>(
    net: &mut Network<D>,
    x: &Tensor<(usize, usize), f32, D>,
    mode: Mode,
    loss: L,
) -> (Tensor<(usize, usize), f32, D>, Logits<D, NoneTape>)
where
    D: Device<f32>,
    L: FnOnce(Logits<D, OwnedTape<f32, D>>) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>>,
{
    let xt = x.clone().traced(Gradients::leaky());
    let logits = net.forward(xt, mode);
    let plain = logits.retaped::<NoneTape>();
    let grads = loss(logits).backward();
    (grads.get(x), plain)
}
