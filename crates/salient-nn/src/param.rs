//! Parameters and buffers of a network, stored flat on the device.
//!
//! Every trainable tensor is one flat `Tensor<(usize,), f32, D>`; layers reshape it in their
//! forward pass after `retaped::<T>()`, so gradients land on the flat tensor's id and optimizers
//! treat every parameter alike. Each parameter knows its PyTorch name and layout so checkpoints
//! load directly with `safetensors.torch.load_file` into the equivalent `nn.Module`.

use dfdx::prelude::*;

/// One named tensor of a network: a trainable parameter or a buffer (batchnorm running stats).
#[derive(Clone, Debug)]
pub struct Param<D: Device<f32>> {
    /// PyTorch state-dict name, e.g. `layers.0.weight`, `layers.3.running_mean`.
    pub name: String,
    /// Logical shape in the engine's layout, e.g. conv weight `[k, k, c_in, c_out]`,
    /// dense weight `[in, out]`, bias `[out]`.
    pub shape: Vec<usize>,
    /// Axis permutation from the engine's layout to PyTorch's: the PyTorch tensor is
    /// `engine.permute(to_torch)`, e.g. `[3, 2, 0, 1]` for a conv weight
    /// (k, k, c_in, c_out) -> (c_out, c_in, k, k), `[1, 0]` for a dense weight.
    pub to_torch: Vec<usize>,
    /// Flat storage, row-major in the engine's layout; length = product of `shape`.
    pub value: Tensor<(usize,), f32, D>,
    /// False for buffers, which optimizers leave alone.
    pub trainable: bool,
}

impl<D: Device<f32>> Param<D> {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The shape PyTorch sees: `shape` permuted by `to_torch`.
    pub fn torch_shape(&self) -> Vec<usize> {
        self.to_torch.iter().map(|&a| self.shape[a]).collect()
    }
}
