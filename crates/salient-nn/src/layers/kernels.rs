//! Plain-slice CPU kernels for the spatial layers: per-image im2col / col2im (used by
//! [`super::conv_cpu`]), max and average pooling.
//!
//! Every activation is channels-last, `(B, H, W, C)` row-major. These functions know nothing of
//! dfdx; [`super::cpu_op`] wraps them as differentiable tensor ops. They run one image per rayon
//! task, so the forward and the backward parallelise over the batch without atomics (each image
//! writes only its own slice).

use rayon::prelude::*;

/// `dst (m x n, row-major) = [dst +] A B`, with A and B given by (row stride, column stride):
/// `gemm::gemm` called exactly as dfdx's `Cpu` matmul calls it, with the caller's parallelism
/// (`None` where the caller already parallelises, e.g. over images).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    parallelism: gemm::Parallelism,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n, "gemm: destination too short");
    assert!(
        m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs,
        "gemm: left operand too short"
    );
    assert!(
        n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs,
        "gemm: right operand too short"
    );
    // SAFETY: the asserts above bound every index the GEMM reads or writes; dst is exclusively
    // borrowed and does not alias a or b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// relu in place with its derivative: `y = max(y, 0)` (0 for NaN, like dfdx) and
/// `mask = (y > 0)`, one byte per value (dfdx's relu derivative, 0 at 0).
#[inline(always)]
pub fn relu_mask(y: &mut [f32], mask: &mut [u8]) {
    for (v, m) in y.iter_mut().zip(mask.iter_mut()) {
        let pos = *v > 0.0;
        *v = if pos { *v } else { 0.0 };
        *m = pos as u8;
    }
}

/// The gradient through that relu: `d = g` where `mask` is set, else 0.
#[inline(always)]
pub fn masked_grad(g: &[f32], mask: &[u8], d: &mut [f32]) {
    for ((d, v), m) in d.iter_mut().zip(g).zip(mask) {
        *d = if *m != 0 { *v } else { 0.0 };
    }
}

/// Adds per-group partial sums, in group order, into the destinations given: each partial is
/// `[dW (w_len floats) | db]`. The fixed order makes the sums bit-identical for any thread
/// count.
pub fn add_partials(
    partials: &[Vec<f32>],
    w_len: usize,
    mut gw: Option<&mut [f32]>,
    mut gb: Option<&mut [f32]>,
) {
    for p in partials {
        let (pw, pb) = p.split_at(w_len);
        if let Some(gw) = gw.as_deref_mut() {
            gw.iter_mut().zip(pw).for_each(|(a, v)| *a += *v);
        }
        if let Some(gb) = gb.as_deref_mut() {
            gb.iter_mut().zip(pb).for_each(|(a, v)| *a += *v);
        }
    }
}

/// Whether this CPU runs the AVX2 + FMA builds of the convolution kernels (the standard
/// library caches the answer). [`force_plain_build`] turns them off (for tests).
pub fn avx2() -> bool {
    if PLAIN.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

static PLAIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`avx2`] answer false (`true`) or ask the CPU again (`false`): the plain build of the
/// kernels then runs everywhere. For tests that compare the two builds; process-wide.
pub fn force_plain_build(on: bool) {
    PLAIN.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Geometry of a convolution or pooling window sliding over a channels-last batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub batch: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    /// Window side (square windows).
    pub k: usize,
    pub stride: usize,
    /// Zero padding on each side (always 0 for pooling).
    pub pad: usize,
}

impl Window {
    /// Output height: floor((h + 2 pad - k) / stride) + 1.
    pub fn ho(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Output width: floor((w + 2 pad - k) / stride) + 1.
    pub fn wo(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Elements of one input image.
    pub fn in_image(&self) -> usize {
        self.h * self.w * self.c
    }
    /// Length of one im2col row: k*k*c values, ordered (ky, kx, c).
    pub fn patch(&self) -> usize {
        self.k * self.k * self.c
    }
}

/// im2col of one image `img` (h*w*c values): `out[(oy, ox), (ky, kx, ci)] =
/// img[oy*s+ky-pad, ox*s+kx-pad, ci]`, zero outside the image, (ho*wo) rows of `patch + ones`;
/// with `ones` every row ends with an extra 1.0. Every element of `out` is written.
pub fn im2col_image(img: &[f32], g: &Window, ones: bool, out: &mut [f32]) {
    let (ho, wo, patch) = (g.ho(), g.wo(), g.patch());
    let row = patch + ones as usize;
    let kc = g.k * g.c;
    for oy in 0..ho {
        for ox in 0..wo {
            let r = &mut out[(oy * wo + ox) * row..(oy * wo + ox + 1) * row];
            // Valid kx range for this ox: 0 <= ox*s + kx - pad < w.
            let x0 = (ox * g.stride) as isize - g.pad as isize;
            let kx_lo = (-x0).max(0) as usize;
            let kx_hi = ((g.w as isize - x0).min(g.k as isize)).max(0) as usize;
            for ky in 0..g.k {
                let seg = &mut r[ky * kc..(ky + 1) * kc];
                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                if iy < 0 || iy >= g.h as isize || kx_lo >= kx_hi {
                    seg.fill(0.0);
                    continue;
                }
                seg[..kx_lo * g.c].fill(0.0);
                seg[kx_hi * g.c..].fill(0.0);
                let src = (iy as usize * g.w + (x0 + kx_lo as isize) as usize) * g.c;
                let n = (kx_hi - kx_lo) * g.c;
                seg[kx_lo * g.c..kx_hi * g.c].copy_from_slice(&img[src..src + n]);
            }
            if ones {
                r[patch] = 1.0;
            }
        }
    }
}

/// col2im of one image, the adjoint of [`im2col_image`]: `img[iy, ix, ci] += gc[(oy, ox),
/// (ky, kx, ci)]` over every window position that read that pixel (padding and the ones column
/// are dropped).
pub fn col2im_image(gc: &[f32], g: &Window, ones: bool, img: &mut [f32]) {
    let (ho, wo, patch) = (g.ho(), g.wo(), g.patch());
    let row = patch + ones as usize;
    let kc = g.k * g.c;
    for oy in 0..ho {
        for ox in 0..wo {
            let r = &gc[(oy * wo + ox) * row..(oy * wo + ox + 1) * row];
            let x0 = (ox * g.stride) as isize - g.pad as isize;
            let kx_lo = (-x0).max(0) as usize;
            let kx_hi = ((g.w as isize - x0).min(g.k as isize)).max(0) as usize;
            if kx_lo >= kx_hi {
                continue;
            }
            for ky in 0..g.k {
                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                if iy < 0 || iy >= g.h as isize {
                    continue;
                }
                let dst = (iy as usize * g.w + (x0 + kx_lo as isize) as usize) * g.c;
                let n = (kx_hi - kx_lo) * g.c;
                let src = &r[ky * kc + kx_lo * g.c..ky * kc + kx_lo * g.c + n];
                for (d, s) in img[dst..dst + n].iter_mut().zip(src) {
                    *d += *s;
                }
            }
        }
    }
}

/// Max pooling (no padding): `y[n, oy, ox, c] = max_{ky,kx} x[n, oy*s+ky, ox*s+kx, c]`.
/// Returns, per output, the flat index (within its image) of the first maximal input in
/// (ky, kx) scan order; a NaN wins, as in PyTorch. The backward sends each output gradient to that
/// one input only, exactly PyTorch's rule.
pub fn maxpool(x: &[f32], g: &Window, y: &mut [f32], arg: &mut [u32]) {
    let (ho, wo, c) = (g.ho(), g.wo(), g.c);
    let out_img = ho * wo * c;
    y.par_chunks_mut(out_img)
        .zip(arg.par_chunks_mut(out_img))
        .zip(x.par_chunks(g.in_image()))
        .for_each(|((yo, ao), img)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let o = (oy * wo + ox) * c;
                    let first = ((oy * g.stride) * g.w + ox * g.stride) * c;
                    yo[o..o + c].copy_from_slice(&img[first..first + c]);
                    for (ci, a) in ao[o..o + c].iter_mut().enumerate() {
                        *a = (first + ci) as u32;
                    }
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            if ky == 0 && kx == 0 {
                                continue;
                            }
                            let base = ((oy * g.stride + ky) * g.w + ox * g.stride + kx) * c;
                            // Branch-free select over the channels (vectorises).
                            for (ci, ((best, a), &v)) in yo[o..o + c]
                                .iter_mut()
                                .zip(ao[o..o + c].iter_mut())
                                .zip(&img[base..base + c])
                                .enumerate()
                            {
                                let take = v > *best || (v.is_nan() && !best.is_nan());
                                *best = if take { v } else { *best };
                                *a = if take { (base + ci) as u32 } else { *a };
                            }
                        }
                    }
                }
            }
        });
}

/// Backward of [`maxpool`]: `gx[arg[o]] += gy[o]`.
pub fn maxpool_backward(gy: &[f32], arg: &[u32], g: &Window, gx: &mut [f32]) {
    let out_img = g.ho() * g.wo() * g.c;
    gx.par_chunks_mut(g.in_image())
        .zip(gy.par_chunks(out_img).zip(arg.par_chunks(out_img)))
        .for_each(|(img, (gyo, ao))| {
            for (v, &a) in gyo.iter().zip(ao) {
                img[a as usize] += *v;
            }
        });
}

/// Average pooling (no padding): `y[n, oy, ox, c] = mean_{ky,kx} x[n, oy*s+ky, ox*s+kx, c]`.
pub fn avgpool(x: &[f32], g: &Window, y: &mut [f32]) {
    let (ho, wo, c) = (g.ho(), g.wo(), g.c);
    let scale = 1.0 / (g.k * g.k) as f32;
    y.par_chunks_mut(ho * wo * c)
        .zip(x.par_chunks(g.in_image()))
        .for_each(|(yo, img)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let o = &mut yo[(oy * wo + ox) * c..(oy * wo + ox + 1) * c];
                    o.fill(0.0);
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let base = ((oy * g.stride + ky) * g.w + ox * g.stride + kx) * c;
                            for (d, s) in o.iter_mut().zip(&img[base..base + c]) {
                                *d += *s;
                            }
                        }
                    }
                    o.iter_mut().for_each(|v| *v *= scale);
                }
            }
        });
}

/// Backward of [`avgpool`]: every input of a window gets `gy / (k*k)`.
pub fn avgpool_backward(gy: &[f32], g: &Window, gx: &mut [f32]) {
    let (ho, wo, c) = (g.ho(), g.wo(), g.c);
    let scale = 1.0 / (g.k * g.k) as f32;
    gx.par_chunks_mut(g.in_image())
        .zip(gy.par_chunks(ho * wo * c))
        .for_each(|(img, gyo)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let o = &gyo[(oy * wo + ox) * c..(oy * wo + ox + 1) * c];
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let base = ((oy * g.stride + ky) * g.w + ox * g.stride + kx) * c;
                            for (d, s) in img[base..base + c].iter_mut().zip(o) {
                                *d += *s * scale;
                            }
                        }
                    }
                }
            }
        });
}
