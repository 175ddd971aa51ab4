//! Host-side random draws, copied to the device: Gaussian and uniform noise from a ChaCha8
//! generator, so that maps do not depend on the device or on its generator's state.
use crate::ops::Mat;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// One N(0, 1) deviate: `rand_distr`'s `StandardNormal` (a ziggurat sampler). The engine's one
/// normal sampler: attacks' random starts, regimes' noise and SmoothGrad all draw through it.
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// `n` draws of N(0, sigma^2), in order from `rng` (see [`standard_normal`]).
pub fn normal(rng: &mut ChaCha8Rng, n: usize, sigma: f32) -> Vec<f32> {
    (0..n)
        .map(|_| standard_normal(rng) as f32 * sigma)
        .collect()
}

/// `n` draws of U(lo, hi) (lo itself when hi <= lo).
pub fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    if hi <= lo {
        return vec![lo; n];
    }
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

/// A (B, N) tensor of N(0, sigma^2) noise on `dev`.
pub fn normal_like<D: Device<f32>>(
    dev: &D,
    rng: &mut ChaCha8Rng,
    shape: (usize, usize),
    sigma: f32,
) -> Mat<D> {
    dev.tensor_from_vec(normal(rng, shape.0 * shape.1, sigma), shape)
}

/// A (B, N) tensor of U(lo, hi) noise on `dev`.
pub fn uniform_like<D: Device<f32>>(
    dev: &D,
    rng: &mut ChaCha8Rng,
    shape: (usize, usize),
    lo: f32,
    hi: f32,
) -> Mat<D> {
    dev.tensor_from_vec(uniform(rng, shape.0 * shape.1, lo, hi), shape)
}
