//! Host-side random draws, copied to the device: Gaussian and uniform noise from a ChaCha8
//! generator, so that maps do not depend on the device or on its generator's state.
use crate::ops::Mat;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `n` draws of N(0, sigma^2) (Box-Muller on two uniforms).
pub fn normal(rng: &mut ChaCha8Rng, n: usize, sigma: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // u1 in (0, 1]: ln(u1) is finite.
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32 * sigma);
        out.push((r * t.sin()) as f32 * sigma);
    }
    out.truncate(n);
    out
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
