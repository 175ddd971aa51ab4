//! Elementwise activations: relu, leaky relu, tanh, sigmoid (dfdx ops, exact derivatives;
//! at 0 relu's derivative is 0 and leaky relu's is 1, as in dfdx).

use super::Batch;
use dfdx::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(0, x)
    Relu,
    /// x if x >= 0 else slope * x
    LeakyRelu(f32),
    /// tanh(x)
    Tanh,
    /// 1 / (1 + exp(-x))
    Sigmoid,
}

impl Activation {
    pub fn forward<D: Device<f32>, T: Tape<f32, D>>(&self, x: Batch<D, T>) -> Batch<D, T> {
        match *self {
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => leakyrelu(x, slope),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
        }
    }
}
