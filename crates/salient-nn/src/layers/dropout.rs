//! Inverted dropout: in training each element is kept with probability 1 - p and scaled by
//! 1 / (1 - p), so the expectation is unchanged and evaluation is the identity.
//!
//! The mask is drawn on the host from the network's own ChaCha8 generator and copied to the
//! device: training is bit-identical for the same seed, independent of the device's RNG and of
//! anything else that draws from it.

use super::Batch;
use crate::Mode;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub p: f32,
}

impl Dropout {
    pub fn forward<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        mode: Mode,
        rng: &mut ChaCha8Rng,
    ) -> Batch<D, T> {
        if mode == Mode::Eval || self.p <= 0.0 {
            return x;
        }
        let shape = *x.shape();
        let keep = 1.0 / (1.0 - self.p);
        let mask: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| if rng.gen::<f32>() < self.p { 0.0 } else { keep })
            .collect();
        let mask = x.device().tensor_from_vec(mask, shape);
        x * mask
    }
}
