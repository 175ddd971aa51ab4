//! Parameter creation and PyTorch-default initialisation.
//!
//! PyTorch initialises `nn.Conv2d` and `nn.Linear` weights with
//! `kaiming_uniform_(a = sqrt(5))`: bound = gain * sqrt(3 / fan_in) with
//! gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), i.e. bound = 1 / sqrt(fan_in); biases are
//! U(-1/sqrt(fan_in), 1/sqrt(fan_in)) too. `fan_in` = in_channels * k * k (conv) or in (dense).
//! BatchNorm starts at weight 1, bias 0, running mean 0, running var 1.

use crate::Param;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `n` draws from U(-bound, bound).
pub fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * bound)
        .collect()
}

/// The PyTorch default bound 1/sqrt(fan_in) for weights and biases of conv and dense layers.
pub fn torch_bound(fan_in: usize) -> f32 {
    1.0 / (fan_in.max(1) as f32).sqrt()
}

/// Appends a zero-filled parameter to `params` and returns its index.
pub fn push_param<D: Device<f32>>(
    params: &mut Vec<Param<D>>,
    dev: &D,
    name: String,
    shape: Vec<usize>,
    to_torch: Vec<usize>,
    trainable: bool,
) -> usize {
    let n: usize = shape.iter().product();
    params.push(Param {
        name,
        shape,
        to_torch,
        value: dev.zeros_like(&(n,)),
        trainable,
    });
    params.len() - 1
}

/// Overwrites the values of a parameter in place (its tensor id is kept, so optimizer state
/// keyed by id stays attached).
pub fn set_values<D: Device<f32>>(p: &mut Param<D>, values: &[f32]) {
    debug_assert_eq!(values.len(), p.numel());
    p.value.copy_from(values);
}
