//! Inverted dropout (Srivastava et al. 2014, "Dropout: a simple way to prevent neural networks
//! from overfitting", in its inverted form as in PyTorch's `nn.Dropout`): in training each
//! element is kept with probability 1 - p and scaled by 1 / (1 - p), so the expectation is
//! unchanged and evaluation is the identity:
//!
//! y_i = x_i * m_i,  m_i = 0 if u_i < p else 1 / (1 - p),  u_i ~ U[0, 1);  dL/dx_i = m_i dL/dy_i.
//!
//! The mask is drawn on the host from the network's own ChaCha8 generator, one `gen::<f32>()`
//! per element in row-major order: training is bit-identical for the same seed, independent of
//! the device's RNG and of anything else that draws from it.
//!
//! On the CPU ([`Ctx::fast_cpu`]) the layer is one fused op ([`dropout_forward`],
//! [`dropout_backward`]) that draws the mask in parallel chunks. This reproduces the
//! sequential draw exactly: in rand 0.8, `Standard`'s `f32` sample is
//! `(next_u32() >> 8) as f32 * 2^-24`, one 32-bit word, and ChaCha8Rng can seek to any word
//! (`set_word_pos`), so the chunk starting at element e draws from a copy of the generator set
//! to `start + e` words, and the generator is left at `start + n` words, where the sequential
//! loop leaves it. The mask is kept as one byte per element for the backward pass. Elsewhere
//! (CUDA, or the network's `portable` flag) the mask becomes a tensor multiplied with dfdx ops.

use super::{cpu_op, Batch, Ctx};
use crate::Mode;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Elements per parallel chunk of the CPU op (a multiple of ChaCha's 16-word block).
const CHUNK: usize = 1 << 14;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub p: f32,
}

impl Dropout {
    /// The layer's forward pass: the fused CPU op when [`Ctx::fast_cpu`], else dfdx ops.
    pub fn forward<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        ctx: &mut Ctx<D>,
    ) -> Batch<D, T> {
        let fast = ctx.fast_cpu();
        self.apply(x, ctx.mode, ctx.rng, fast)
    }

    /// Dropout of `x` with the mask drawn from `rng`; `fast` selects the fused CPU op (ignored
    /// unless the device is the CPU). Both paths give bit-identical outputs and gradients and
    /// leave `rng` in the same state. Identity in [`Mode::Eval`] or when p <= 0 (no draw).
    pub fn apply<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        mode: Mode,
        rng: &mut ChaCha8Rng,
        fast: bool,
    ) -> Batch<D, T> {
        if mode == Mode::Eval || self.p <= 0.0 {
            return x;
        }
        if fast && cpu_op::is_cpu::<D>() {
            let p = self.p;
            let shape = *x.shape();
            return cpu_op::cpu_op(
                x,
                shape,
                |x, y| dropout_forward(x, y, p, rng),
                move |keep, gy, gx| dropout_backward(keep, p, gy, gx),
            );
        }
        let shape = *x.shape();
        let mask = draw_mask(shape.0 * shape.1, self.p, rng);
        let mask = x.device().tensor_from_vec(mask, shape);
        x * mask
    }
}

/// The keep flags (1 = kept, i.e. `u >= p`) of `n` elements, drawn from `rng` in parallel
/// chunks yet identical to `n` sequential `gen::<f32>()` draws, leaving `rng` where those draws
/// would (see the module docs). The one place the mask is drawn, for both paths.
fn draw_keep(n: usize, p: f32, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let start = rng.get_word_pos();
    let mut keep = vec![0u8; n];
    let from: &ChaCha8Rng = rng;
    keep.par_chunks_mut(CHUNK).enumerate().for_each(|(i, k)| {
        let mut r = from.clone();
        r.set_word_pos(start + (i * CHUNK) as u128);
        for k in k.iter_mut() {
            *k = (r.gen::<f32>() >= p) as u8;
        }
    });
    rng.set_word_pos(start + n as u128);
    keep
}

/// The multipliers (0 or 1 / (1 - p)) of `n` elements from [`draw_keep`]: the mask the
/// portable path (CUDA) uploads.
pub fn draw_mask(n: usize, p: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    draw_keep(n, p, rng)
        .into_par_iter()
        .map(|k| multiplier(k != 0, scale))
        .collect()
}

/// The multiplier of a kept (`true`) or dropped element: 1 / (1 - p) or 0.
#[inline(always)]
fn multiplier(kept: bool, scale: f32) -> f32 {
    if kept {
        scale
    } else {
        0.0
    }
}

/// Forward kernel: draws the keep mask for `x.len()` elements ([`draw_keep`]), writes
/// y = x * m and returns the mask. Leaves `rng` exactly where `x.len()` sequential
/// `gen::<f32>()` calls would (see the module docs).
pub fn dropout_forward(x: &[f32], y: &mut [f32], p: f32, rng: &mut ChaCha8Rng) -> Vec<u8> {
    assert_eq!(x.len(), y.len(), "dropout: input and output lengths differ");
    let scale = 1.0 / (1.0 - p);
    let keep = draw_keep(x.len(), p, rng);
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(keep.par_chunks(CHUNK)))
        .for_each(|(y, (x, keep))| {
            for ((y, &x), &k) in y.iter_mut().zip(x).zip(keep) {
                *y = x * multiplier(k != 0, scale);
            }
        });
    keep
}

/// Backward kernel: gx += m * gy, with m from the forward's mask.
pub fn dropout_backward(keep: &[u8], p: f32, gy: &[f32], gx: &mut [f32]) {
    assert!(keep.len() == gy.len() && gy.len() == gx.len());
    let scale = 1.0 / (1.0 - p);
    gx.par_chunks_mut(CHUNK)
        .zip(gy.par_chunks(CHUNK))
        .zip(keep.par_chunks(CHUNK))
        .for_each(|((gx, gy), keep)| {
            for ((gx, &gy), &k) in gx.iter_mut().zip(gy).zip(keep) {
                *gx += multiplier(k != 0, scale) * gy;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    /// Output, input gradient of sum(y * w) and the generator after the pass, for the fused
    /// (`fast`) or the portable path.
    fn run(
        p: f32,
        (b, f): (usize, usize),
        x: &[f32],
        w: &[f32],
        rng: &mut ChaCha8Rng,
        fast: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(x.to_vec(), (b, f));
        let w = dev.tensor_from_vec(w.to_vec(), (b, f));
        let y = Dropout { p }.apply(x.leaky_trace(), Mode::Train, rng, fast);
        let yv = y.retaped::<NoneTape>().as_vec();
        let grads = (y * w).sum().backward();
        (yv, grads.get(&x).as_vec())
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn fused_op_is_bit_identical_to_the_sequential_mask() {
        // 3 chunks and a partial one; the draw starts mid-block (5 words already used).
        let (b, f) = (7, (3 * CHUNK + 1234) / 7);
        assert_ne!((b * f) % CHUNK, 0);
        let mut data = ChaCha8Rng::seed_from_u64(11);
        let x = uniform(&mut data, b * f);
        let w = uniform(&mut data, b * f);
        for p in [0.25f32, 0.5] {
            let mut seq = ChaCha8Rng::seed_from_u64(3);
            seq.set_stream(1);
            for _ in 0..5 {
                seq.gen::<u32>();
            }
            let mut par = seq.clone();
            let (y_seq, g_seq) = run(p, (b, f), &x, &w, &mut seq, false);
            let (y_par, g_par) = run(p, (b, f), &x, &w, &mut par, true);
            assert_eq!(bits(&y_seq), bits(&y_par), "output, p = {p}");
            assert_eq!(bits(&g_seq), bits(&g_par), "input gradient, p = {p}");
            assert_eq!(seq.get_word_pos(), 5 + (b * f) as u128);
            assert_eq!(seq, par, "generator state, p = {p}");
            let next: Vec<u32> = (0..40).map(|_| seq.gen()).collect();
            let next_par: Vec<u32> = (0..40).map(|_| par.gen()).collect();
            assert_eq!(next, next_par, "draws after the pass, p = {p}");
            // The mask is a real dropout mask: about p of the elements are zero, and the kept
            // ones are scaled by 1 / (1 - p) (x * scale, exactly).
            let dropped = y_par.iter().filter(|v| **v == 0.0).count() as f64 / (b * f) as f64;
            assert!(
                (dropped - p as f64).abs() < 0.02,
                "dropped {dropped}, p = {p}"
            );
            let scale = 1.0 / (1.0 - p);
            assert!(y_par
                .iter()
                .zip(&x)
                .all(|(y, x)| *y == 0.0 || *y == x * scale));
        }
    }

    /// The portable path's mask: the same values as the sequential draw, the generator left at
    /// the same place.
    #[test]
    fn parallel_mask_is_the_sequential_mask() {
        for (p, n) in [(0.25f32, 3 * CHUNK + 17), (0.5, 5)] {
            let mut seq = ChaCha8Rng::seed_from_u64(9);
            let _ = seq.gen::<u32>();
            let mut par = seq.clone();
            let scale = 1.0 / (1.0 - p);
            let want: Vec<f32> = (0..n)
                .map(|_| if seq.gen::<f32>() < p { 0.0 } else { scale })
                .collect();
            assert_eq!(draw_mask(n, p, &mut par), want);
            assert_eq!(par, seq, "generator state after {n} draws");
        }
    }

    #[test]
    fn eval_mode_is_the_identity_and_draws_nothing() {
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(vec![1.0, -2.0, 3.0, 4.0], (2, 2));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let before = rng.clone();
        for fast in [false, true] {
            let y = Dropout { p: 0.5 }.apply(x.clone(), Mode::Eval, &mut rng, fast);
            assert_eq!(y.as_vec(), x.as_vec());
        }
        assert_eq!(rng, before);
    }

    #[test]
    fn backward_kernel_hand_computed() {
        // p = 0.5: kept elements get 2 * gy, added to what gx held.
        let mut gx = vec![1.0, 1.0, 1.0];
        dropout_backward(&[1, 0, 1], 0.5, &[0.5, 7.0, -1.0], &mut gx);
        assert_eq!(gx, vec![2.0, 1.0, -1.0]);
    }
}
