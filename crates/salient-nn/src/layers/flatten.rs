//! Flatten: image -> flat vector in PyTorch's (c, h, w) order.
//!
//! Activations are stored channels-last (h, w, c), but `nn.Flatten` on an NCHW tensor yields
//! (c, h, w). Flatten therefore permutes before reshaping, so the following dense layer's weight
//! has exactly PyTorch's layout and checkpoints need no row shuffling. When c == 1 or h*w == 1 the
//! two orders coincide and Flatten is free.

use super::Batch;
use dfdx::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// Input (c, h, w); `None` when the input is already flat (identity).
    pub image: Option<(usize, usize, usize)>,
}

impl Flatten {
    pub fn forward<D: Device<f32>, T: Tape<f32, D>>(&self, x: Batch<D, T>) -> Batch<D, T> {
        match self.image {
            Some((c, h, w)) if c > 1 && h * w > 1 => {
                let b = x.shape().0;
                x.reshape_like(&(b, h, w, c))
                    .permute::<_, Axes4<0, 3, 1, 2>>()
                    .reshape_like(&(b, c * h * w))
            }
            _ => x,
        }
    }
}
