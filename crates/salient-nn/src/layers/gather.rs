//! The portable (any dfdx device) spatial ops: im2col and pooling built from `gather`.
//!
//! A channels-last batch `(B, H*W*C)` is viewed as `(B, H*W, C)`: one row of `C` values per
//! pixel. For convolution with padding a zero row is appended (`concat_along` axis 1), and a
//! precomputed index `(B, Ho*Wo*K*K)` picks, for every output position and window offset, the
//! pixel row it reads (the zero row where the window leaves the image). `gather` then yields
//! `(B, Ho*Wo*K*K, C)`, which reshapes for free into the im2col matrix `(B*Ho*Wo, K*K*C)`.
//! dfdx differentiates `gather`, `concat_along` and the reductions on every device, so the
//! gradients are exact. Used on CUDA, and on the CPU when portable kernels are forced (tests).

use super::kernels::Window;
use dfdx::prelude::*;

/// Pixel-row index for every (output position, window offset) of one image, in the order
/// (oy, ox, ky, kx); `h*w` (the appended zero row) where the window reads padding.
pub fn window_index(g: &Window) -> Vec<usize> {
    let (ho, wo) = (g.ho(), g.wo());
    let zero_row = g.h * g.w;
    let mut idx = Vec::with_capacity(ho * wo * g.k * g.k);
    for oy in 0..ho {
        for ox in 0..wo {
            for ky in 0..g.k {
                for kx in 0..g.k {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                        idx.push(zero_row);
                    } else {
                        idx.push(iy as usize * g.w + ix as usize);
                    }
                }
            }
        }
    }
    idx
}

/// A cache of the `(B, Ho*Wo*K*K)` gather index for the last batch size seen.
/// A `(B, M)` index tensor.
pub type Index<D> = Tensor<(usize, usize), usize, D>;

#[derive(Clone, Debug, Default)]
pub struct IndexCache<D: Device<f32>> {
    cached: Option<(usize, Index<D>)>,
}

impl<D: Device<f32>> IndexCache<D> {
    pub fn new() -> Self {
        Self { cached: None }
    }

    /// The index for `g` (whose `batch` is the current batch size), built on first use.
    pub fn get(&mut self, g: &Window, dev: &D) -> Tensor<(usize, usize), usize, D> {
        match &self.cached {
            Some((b, t)) if *b == g.batch => t.clone(),
            _ => {
                let one = window_index(g);
                let m = one.len();
                let mut all = Vec::with_capacity(g.batch * m);
                for _ in 0..g.batch {
                    all.extend_from_slice(&one);
                }
                let t = dev.tensor_from_vec(all, (g.batch, m));
                self.cached = Some((g.batch, t.clone()));
                t
            }
        }
    }
}

/// Gathers the windows: `(B, H*W*C)` -> `(B, Ho*Wo*K*K, C)`.
fn windows<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<(usize, usize), f32, D, T>,
    g: &Window,
    idx: Tensor<(usize, usize), usize, D>,
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let x = x.reshape_like(&(g.batch, g.h * g.w, g.c));
    let zero = x.device().zeros_like(&(g.batch, 1, g.c));
    let padded: Tensor<(usize, usize, usize), f32, D, T> = (x, zero).concat_along(Axis::<1>);
    padded.gather(idx)
}

/// im2col: `(B, H*W*C)` -> `(B*Ho*Wo, K*K*C)`, columns ordered (ky, kx, c).
pub fn im2col<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<(usize, usize), f32, D, T>,
    g: &Window,
    idx: Tensor<(usize, usize), usize, D>,
) -> Tensor<(usize, usize), f32, D, T> {
    let rows = g.batch * g.ho() * g.wo();
    windows(x, g, idx).reshape_like(&(rows, g.patch()))
}

/// Max (`max = true`) or average pooling: `(B, H*W*C)` -> `(B, Ho*Wo*C)`.
/// dfdx's max backward gives the gradient to every input equal to the maximum, so on exact ties
/// this path differs from PyTorch's first-maximum rule (the CPU kernel follows PyTorch).
pub fn pool<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<(usize, usize), f32, D, T>,
    g: &Window,
    idx: Tensor<(usize, usize), usize, D>,
    max: bool,
) -> Tensor<(usize, usize), f32, D, T> {
    let (hw, kk) = (g.ho() * g.wo(), g.k * g.k);
    let w = windows(x, g, idx).reshape_like(&(g.batch, hw, kk, g.c));
    let y: Tensor<(usize, usize, usize), f32, D, T> = if max {
        w.max::<_, Axis<2>>()
    } else {
        w.mean::<_, Axis<2>>()
    };
    y.reshape_like(&(g.batch, hw * g.c))
}
