//! Flatten: image -> flat vector in PyTorch's (c, h, w) order.
//!
//! Activations are stored channels-last (h, w, c), but `nn.Flatten` on an NCHW tensor yields
//! (c, h, w). Flatten therefore permutes before reshaping, so the following dense layer's weight
//! has exactly PyTorch's layout and checkpoints need no row shuffling. When c == 1 or h*w == 1 the
//! two orders coincide and Flatten is free.
//!
//! Per image, with s = y*w + x the pixel index: out[ch * h*w + s] = in[s * c + ch] (a transpose
//! of the (h*w, c) matrix), and the backward pass is the inverse permutation,
//! g_in[s * c + ch] += g_out[ch * h*w + s]. On the CPU ([`Ctx::fast_cpu`]) this runs as one op,
//! one image per rayon task ([`to_chw`], [`from_chw`]); elsewhere as dfdx's permute.

use super::{cpu_op, Batch, Ctx};
use dfdx::prelude::*;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// Input (c, h, w); `None` when the input is already flat (identity).
    pub image: Option<(usize, usize, usize)>,
}

impl Flatten {
    /// The layer's forward pass: the CPU permute op when [`Ctx::fast_cpu`], else dfdx ops.
    pub fn forward<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        ctx: &Ctx<D>,
    ) -> Batch<D, T> {
        self.apply(x, ctx.fast_cpu())
    }

    /// Flattens `x` into (c, h, w) order; `fast` selects the CPU op (ignored unless the device
    /// is the CPU). Both paths are bit-identical, forward and backward.
    pub fn apply<D: Device<f32>, T: Tape<f32, D>>(
        &self,
        x: Batch<D, T>,
        fast: bool,
    ) -> Batch<D, T> {
        match self.image {
            Some((c, h, w)) if c > 1 && h * w > 1 => {
                let b = x.shape().0;
                if fast && cpu_op::is_cpu::<D>() {
                    let shape = *x.shape();
                    return cpu_op::cpu_op(
                        x,
                        shape,
                        |x, y| to_chw(x, y, h * w, c),
                        move |_, gy, gx| from_chw(gy, gx, h * w, c),
                    );
                }
                x.reshape_like(&(b, h, w, c))
                    .permute::<_, Axes4<0, 3, 1, 2>>()
                    .reshape_like(&(b, c * h * w))
            }
            _ => x,
        }
    }
}

/// Forward kernel: per image, out[ch * hw + s] = x[s * c + ch] (channels-last to (c, h, w)).
pub fn to_chw(x: &[f32], out: &mut [f32], hw: usize, c: usize) {
    let image = hw * c;
    assert!(image > 0 && x.len() == out.len() && x.len().is_multiple_of(image));
    out.par_chunks_mut(image)
        .zip(x.par_chunks(image))
        .for_each(|(out, x)| {
            for (s, pixel) in x.chunks_exact(c).enumerate() {
                for (ch, &v) in pixel.iter().enumerate() {
                    out[ch * hw + s] = v;
                }
            }
        });
}

/// Backward kernel: per image, gx[s * c + ch] += gy[ch * hw + s] (the inverse of [`to_chw`]).
pub fn from_chw(gy: &[f32], gx: &mut [f32], hw: usize, c: usize) {
    let image = hw * c;
    assert!(image > 0 && gy.len() == gx.len() && gx.len().is_multiple_of(image));
    gx.par_chunks_mut(image)
        .zip(gy.par_chunks(image))
        .for_each(|(gx, gy)| {
            for (s, pixel) in gx.chunks_exact_mut(c).enumerate() {
                for (ch, g) in pixel.iter_mut().enumerate() {
                    *g += gy[ch * hw + s];
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn cpu_op_is_bit_identical_to_the_dfdx_permute() {
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (b, c, h, w) = (3, 5, 4, 3);
        let n = b * c * h * w;
        let xv = uniform(&mut rng, n);
        let wv = uniform(&mut rng, n);
        let flatten = Flatten {
            image: Some((c, h, w)),
        };
        let run = |fast: bool| {
            let x = dev.tensor_from_vec(xv.clone(), (b, h * w * c));
            let weight = dev.tensor_from_vec(wv.clone(), (b, c * h * w));
            let y = flatten.apply(x.leaky_trace(), fast);
            let yv = y.retaped::<NoneTape>().as_vec();
            let grads = (y * weight).sum().backward();
            (yv, grads.get(&x).as_vec())
        };
        let (y_ref, g_ref) = run(false);
        let (y, g) = run(true);
        assert_eq!(bits(&y), bits(&y_ref));
        assert_eq!(bits(&g), bits(&g_ref));
        // And the layout itself: out[n][ch][yy][xx] = in[n][yy][xx][ch].
        for (i, v) in y.iter().enumerate() {
            let (img, rest) = (i / (c * h * w), i % (c * h * w));
            let (ch, s) = (rest / (h * w), rest % (h * w));
            assert_eq!(*v, xv[img * h * w * c + s * c + ch]);
        }
    }

    #[test]
    fn kernels_hand_computed() {
        // One 1x2 image with 3 channels: pixels (a0 a1 a2), (b0 b1 b2) -> a0 b0 a1 b1 a2 b2.
        let x = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        let mut y = [0.0; 6];
        to_chw(&x, &mut y, 2, 3);
        assert_eq!(y, [1.0, 10.0, 2.0, 20.0, 3.0, 30.0]);
        let mut gx = [1.0; 6];
        from_chw(&y, &mut gx, 2, 3);
        assert_eq!(gx, [2.0, 3.0, 4.0, 11.0, 21.0, 31.0]);
    }

    #[test]
    fn single_channel_is_the_identity() {
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (1, 4));
        let y = Flatten {
            image: Some((1, 2, 2)),
        }
        .apply(x.clone(), true);
        assert_eq!(y.as_vec(), x.as_vec());
    }
}
