//! Direct convolution for a single input channel (a network's first layer on grey images), on
//! the CPU.
//!
//! With one input channel the im2col matrix has rows of only k*k values, so building it costs
//! more than the GEMM that reads it. Here each output pixel is computed directly, vectorised over
//! the output channels:
//!
//!   y[oy, ox, :] = b + Σ_{ky, kx} x[oy + ky - pad, ox + kx - pad] · w[ky, kx, :]
//!   dW[ky, kx, :] += Σ_{oy, ox} x[oy + ky - pad, ox + kx - pad] · G[oy, ox, :],
//!   db += Σ_{oy, ox} G[oy, ox, :]
//!
//! over a zero-padded copy of the image, 8 output channels (one AVX register) at a time with the
//! sums in registers: 4 output pixels per pass in the forward, 4 partial sums in dW. dX is left to the im2col
//! path (it is needed only when the input itself needs a gradient). The weight-gradient sums are
//! deterministic: per image group in image order, then the group partials in group order.

use super::kernels::{add_partials, avx2, Window};
use rayon::prelude::*;

/// Whether the direct path applies: one input channel, stride 1.
pub fn supports(g: &Window) -> bool {
    g.c == 1 && g.stride == 1 && g.ho() > 0 && g.wo() > 0
}

/// Calls `f(c0, W)` over the channel blocks `c0 .. c0 + W` of `n` channels: blocks of 8 (one
/// AVX register, kept in registers by the kernels below), then single channels.
macro_rules! blocks {
    ($n:expr, $f:ident $(::<$k:tt>)? ( $($arg:expr),* )) => {{
        let mut c0 = 0;
        while c0 + 8 <= $n {
            $f::<$($k,)? 8>($($arg,)* c0);
            c0 += 8;
        }
        while c0 < $n {
            $f::<$($k,)? 1>($($arg,)* c0);
            c0 += 1;
        }
    }};
}

thread_local! {
    /// This thread's zero-padded copy of the image being processed.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies image `xn` into `xp` with `pad` zeros on every side; returns the padded width.
#[inline(always)]
fn pad_image(xn: &[f32], g: &Window, xp: &mut Vec<f32>) -> usize {
    let (ph, pw) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    xp.clear();
    xp.resize(ph * pw, 0.0);
    for (y, row) in xn.chunks_exact(g.w).enumerate() {
        let o = (y + g.pad) * pw + g.pad;
        xp[o..o + g.w].copy_from_slice(row);
    }
    pw
}

/// Forward of one image: `yn` (ho x wo x out) fully overwritten.
#[inline(always)]
fn forward_image(
    xn: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    g: &Window,
    out: usize,
    yn: &mut [f32],
    xp: &mut Vec<f32>,
) {
    let pw = pad_image(xn, g, xp);
    let xp = &xp[..];
    blocks!(out, forward_block(xp, pw, w, b, g, out, yn));
}

/// [`forward_image`] for output channels `c0 .. c0 + W`: 4 pixels at a time, with the sums in
/// registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_block<const W: usize>(
    xp: &[f32],
    pw: usize,
    w: &[f32],
    b: Option<&[f32]>,
    g: &Window,
    out: usize,
    yn: &mut [f32],
    c0: usize,
) {
    let (ho, wo) = (g.ho(), g.wo());
    for oy in 0..ho {
        let mut ox = 0;
        while ox + 4 <= wo {
            pixels::<W, 4>(xp, pw, w, b, g.k, out, yn, (wo, oy, ox), c0);
            ox += 4;
        }
        while ox < wo {
            pixels::<W, 1>(xp, pw, w, b, g.k, out, yn, (wo, oy, ox), c0);
            ox += 1;
        }
    }
}

/// Outputs (oy, ox .. ox + P), channels c0 .. c0 + W.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pixels<const W: usize, const P: usize>(
    xp: &[f32],
    pw: usize,
    w: &[f32],
    b: Option<&[f32]>,
    k: usize,
    out: usize,
    yn: &mut [f32],
    (wo, oy, ox): (usize, usize, usize),
    c0: usize,
) {
    let mut acc = [[0.0f32; W]; P];
    if let Some(b) = b {
        for a in acc.iter_mut() {
            a.copy_from_slice(&b[c0..c0 + W]);
        }
    }
    for ky in 0..k {
        let row = &xp[(oy + ky) * pw + ox..][..k - 1 + P];
        for kx in 0..k {
            let wr = &w[(ky * k + kx) * out + c0..][..W];
            for (p, a) in acc.iter_mut().enumerate() {
                let v = row[kx + p];
                for (a, wv) in a.iter_mut().zip(wr) {
                    *a += v * *wv;
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        yn[(oy * wo + ox + p) * out + c0..][..W].copy_from_slice(a);
    }
}

/// dW and db contributions of one image, added into `gw` / `gb` (when not empty).
#[inline(always)]
fn backward_image(
    xn: &[f32],
    g: &Window,
    out: usize,
    gyn: &[f32],
    gw: &mut [f32],
    gb: &mut [f32],
    xp: &mut Vec<f32>,
) {
    if !gb.is_empty() {
        blocks!(out, bias_block(out, gyn, gb));
    }
    if !gw.is_empty() {
        let pw = pad_image(xn, g, xp);
        let xp = &xp[..];
        for ky in 0..g.k {
            match g.k {
                3 => blocks!(out, weight_row::<3>(xp, pw, g, out, gyn, gw, ky)),
                5 => blocks!(out, weight_row::<5>(xp, pw, g, out, gyn, gw, ky)),
                7 => blocks!(out, weight_row::<7>(xp, pw, g, out, gyn, gw, ky)),
                _ => {
                    for kx in 0..g.k {
                        blocks!(out, weight_block(xp, pw, g, out, gyn, gw, (ky, kx)));
                    }
                }
            }
        }
    }
}

/// dW[ky, 0 .. K, c0 .. c0 + W] += Σ_{oy, ox} xp[oy + ky, ox + kx] G[oy, ox, c0 ..] for a whole
/// kernel row at once: one load of G feeds K independent sums in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn weight_row<const K: usize, const W: usize>(
    xp: &[f32],
    pw: usize,
    g: &Window,
    out: usize,
    gyn: &[f32],
    gw: &mut [f32],
    ky: usize,
    c0: usize,
) {
    let (ho, wo) = (g.ho(), g.wo());
    let mut acc = [[0.0f32; W]; K];
    for oy in 0..ho {
        let row = &xp[(oy + ky) * pw..][..wo + K - 1];
        let grow = &gyn[oy * wo * out..(oy + 1) * wo * out];
        for ox in 0..wo {
            let gr = &grow[ox * out + c0..][..W];
            for (kx, a) in acc.iter_mut().enumerate() {
                let v = row[ox + kx];
                for (a, gv) in a.iter_mut().zip(gr) {
                    *a += v * *gv;
                }
            }
        }
    }
    for (kx, part) in acc.iter().enumerate() {
        let dst = &mut gw[(ky * K + kx) * out + c0..][..W];
        for (d, v) in dst.iter_mut().zip(part) {
            *d += *v;
        }
    }
}

/// db[c0 .. c0 + W] += Σ_pixels G[pixel, c0 .. c0 + W].
#[inline(always)]
fn bias_block<const W: usize>(out: usize, gyn: &[f32], gb: &mut [f32], c0: usize) {
    let mut acc = [0.0f32; W];
    for gyo in gyn.chunks_exact(out) {
        for (a, v) in acc.iter_mut().zip(&gyo[c0..c0 + W]) {
            *a += *v;
        }
    }
    for (a, v) in gb[c0..c0 + W].iter_mut().zip(&acc) {
        *a += *v;
    }
}

/// dW[ky, kx, c0 .. c0 + W] += Σ_{oy, ox} xp[oy + ky, ox + kx] G[oy, ox, c0 ..] (padded input,
/// so every tap is inside), with 4 partial sums (pixels ox mod 4) added at the end.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn weight_block<const W: usize>(
    xp: &[f32],
    pw: usize,
    g: &Window,
    out: usize,
    gyn: &[f32],
    gw: &mut [f32],
    (ky, kx): (usize, usize),
    c0: usize,
) {
    let (ho, wo) = (g.ho(), g.wo());
    let mut acc = [[0.0f32; W]; 4];
    for oy in 0..ho {
        let row = &xp[(oy + ky) * pw + kx..][..wo];
        let grow = &gyn[oy * wo * out..(oy + 1) * wo * out];
        for (ox, v) in row.iter().enumerate() {
            let gr = &grow[ox * out + c0..][..W];
            for (a, gv) in acc[ox % 4].iter_mut().zip(gr) {
                *a += *v * *gv;
            }
        }
    }
    let dst = &mut gw[(ky * g.k + kx) * out + c0..][..W];
    for part in &acc {
        for (d, v) in dst.iter_mut().zip(part) {
            *d += *v;
        }
    }
}

/// The per-image kernels compiled for AVX2 (same source, same results: Rust never fuses a
/// multiply and an add on its own).
#[cfg(target_arch = "x86_64")]
mod avx2_build {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_image(
        xn: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        g: &Window,
        out: usize,
        yn: &mut [f32],
        xp: &mut Vec<f32>,
    ) {
        super::forward_image(xn, w, b, g, out, yn, xp)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_image(
        xn: &[f32],
        g: &Window,
        out: usize,
        gyn: &[f32],
        gw: &mut [f32],
        gb: &mut [f32],
        xp: &mut Vec<f32>,
    ) {
        super::backward_image(xn, g, out, gyn, gw, gb, xp)
    }
}

/// Forward: `y[n] = conv(x[n], w) + b` for every image (`y` fully overwritten), with `w`
/// (k*k, out) row-major. Only for windows where [`supports`] holds.
pub fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, g: &Window, out: usize, y: &mut [f32]) {
    debug_assert!(supports(g));
    let fast = avx2();
    y.par_chunks_mut(g.ho() * g.wo() * out)
        .zip(x.par_chunks(g.in_image()))
        .for_each(|(yn, xn)| {
            PADDED.with(|xp| {
                let xp = &mut *xp.borrow_mut();
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: avx2() checked that the CPU has AVX2 and FMA.
                    return unsafe { avx2_build::forward_image(xn, w, b, g, out, yn, xp) };
                }
                let _ = fast;
                forward_image(xn, w, b, g, out, yn, xp)
            })
        });
}

/// Backward for the parameters: accumulates `gw += dW` and `gb += db` (each when given) for
/// the output gradient `gy`, with the batch cut into `groups` groups (see the module doc).
pub fn backward_params(
    x: &[f32],
    g: &Window,
    out: usize,
    gy: &[f32],
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    groups: usize,
) {
    debug_assert!(supports(g));
    if g.batch == 0 || (gw.is_none() && gb.is_none()) {
        return;
    }
    let hw = g.ho() * g.wo();
    let per = g.batch.div_ceil(groups.clamp(1, g.batch));
    let w_len = if gw.is_some() { g.k * g.k * out } else { 0 };
    let b_len = if gb.is_some() { out } else { 0 };
    let fast = avx2();
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(per))
        .into_par_iter()
        .map(|gi| {
            let mut acc = vec![0.0f32; w_len + b_len];
            let (aw, ab) = acc.split_at_mut(w_len);
            let mut xp = Vec::new();
            for n in gi * per..((gi + 1) * per).min(g.batch) {
                let xn = &x[n * g.in_image()..(n + 1) * g.in_image()];
                let gyn = &gy[n * hw * out..(n + 1) * hw * out];
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: avx2() checked that the CPU has AVX2 and FMA.
                    unsafe { avx2_build::backward_image(xn, g, out, gyn, aw, ab, &mut xp) };
                    continue;
                }
                let _ = fast;
                backward_image(xn, g, out, gyn, aw, ab, &mut xp);
            }
            acc
        })
        .collect();
    add_partials(&partials, w_len, gw, gb);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_surrounds_the_image_with_zeros() {
        let g = Window {
            batch: 1,
            h: 2,
            w: 3,
            c: 1,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let mut xp = vec![9.0; 3];
        let pw = pad_image(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &g, &mut xp);
        assert_eq!(pw, 5);
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 3.0, 0.0,
            0.0, 4.0, 5.0, 6.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(xp, want);
    }

    /// A hand-computed 1-channel case: x = [[1, 2], [3, 4]], a 2x2 kernel with one output
    /// channel w = [[1, 0], [0, -1]], b = 0.5, pad 1 -> 3x3 output.
    #[test]
    fn hand_computed_forward_and_weight_gradient() {
        let g = Window {
            batch: 1,
            h: 2,
            w: 2,
            c: 1,
            k: 2,
            stride: 1,
            pad: 1,
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        let w = [1.0, 0.0, 0.0, -1.0];
        let mut y = [0.0; 9];
        forward(&x, &w, Some(&[0.5]), &g, 1, &mut y);
        // y[oy, ox] = 0.5 + x[oy-1, ox-1] - x[oy, ox] (zero outside).
        let want = [-0.5, -1.5, 0.5, -2.5, -2.5, 2.5, 0.5, 3.5, 4.5];
        assert_eq!(y, want);
        // G = 1 at (1, 1) only: dW[ky, kx] = x[ky, kx], db = 1.
        let mut gy = [0.0; 9];
        gy[4] = 1.0;
        let (mut gw, mut gb) = ([0.0; 4], [0.0; 1]);
        backward_params(&x, &g, 1, &gy, Some(&mut gw), Some(&mut gb), 4);
        assert_eq!(gw, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(gb, [1.0]);
    }
}
