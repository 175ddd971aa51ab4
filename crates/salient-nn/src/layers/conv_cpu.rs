//! Fused CPU convolution: per-image im2col + GEMM, forward and backward, as one tape op.
//!
//! Forward, per image n (its im2col matrix `C_n`, (ho*wo) x (k*k*c_in), built in a small
//! thread-local buffer that stays in cache):
//!
//!   Y_n = C_n W + 1 b^T                      (W: (k*k*c_in) x c_out, b: c_out)
//!
//! Backward, with G_n = dL/dY_n:
//!
//!   dW = sum_n C_n^T G_n,   db = sum_n 1^T G_n,   dX_n = col2im(G_n W^T)
//!
//! `C_n` is recomputed in the backward pass instead of being stored, so no batch-sized im2col
//! matrix (or its gradient) is ever allocated, zero-filled or streamed through memory; the
//! GEMMs (the `gemm` crate, which dfdx's CPU matmul also uses) run one image at a time with no
//! inner parallelism, and rayon parallelises over images. dX is skipped when the caller says
//! the input needs no gradient (the network's first layer in plain training).
//!
//! The weight-gradient sums are deterministic: the batch is cut into a fixed number of groups
//! (depending only on the batch size), each group sums its images in order, and the group
//! partials are added in order, so results are bit-identical for any thread count.

use super::cpu_op::{host_alloc, host_copy, host_vec};
use super::dense_cpu::Needs;
use super::kernels::{
    add_partials, col2im_image, gemm, im2col_image, masked_grad, relu_mask, Window,
};
use super::Batch;
use super::{conv_c1, winograd};
use ::gemm::Parallelism;
use dfdx::prelude::*;
use rayon::prelude::*;
use std::cell::RefCell;

/// Number of groups the batch is cut into for the deterministic weight-gradient reduction.
const GROUPS: usize = 16;

thread_local! {
    /// Per-thread im2col buffer of one image (and, in the backward pass, its gradient).
    static COLS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// Host copy of the op's input (main thread).
    static INPUT: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// True when im2col is the identity (1x1 kernel, stride 1, no padding): the image itself is
/// its im2col matrix.
fn identity(g: &Window) -> bool {
    g.k == 1 && g.stride == 1 && g.pad == 0
}

/// Runs `f` with this thread's two scratch buffers resized to `a` and `b` floats.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    COLS.with(|c| {
        let mut c = c.borrow_mut();
        let (ca, cb) = &mut *c;
        if ca.len() < a {
            ca.resize(a, 0.0);
        }
        if cb.len() < b {
            cb.resize(b, 0.0);
        }
        f(&mut ca[..a], &mut cb[..b])
    })
}

/// Forward: `y[n] = im2col(x[n]) w + b` for every image; `w` is (k*k*c_in, out) row-major,
/// `y` is (B, ho*wo*out) channels-last and fully overwritten.
pub fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, g: &Window, out: usize, y: &mut [f32]) {
    forward_relu(x, w, b, g, out, y, None);
}

/// How a convolution is computed on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Winograd where [`winograd::supports`] the window, im2col otherwise.
    Auto,
    /// Per-image im2col + GEMM (any window).
    Im2col,
    /// Winograd F(4x4, 3x3) / F(2x2, 5x5) (stride 1, 3x3 or 5x5, at least 4 input channels).
    Winograd,
    /// Direct loops for one input channel, stride 1 ([`conv_c1`]; dX through im2col).
    Direct,
}

impl Algo {
    /// The algorithm that runs for window `g`: `Auto` resolved (Winograd, else Direct, else
    /// im2col); an explicit choice is checked against `g`.
    fn resolve(self, g: &Window) -> Algo {
        match self {
            Algo::Auto if winograd::supports(g) => Algo::Winograd,
            Algo::Auto if conv_c1::supports(g) => Algo::Direct,
            Algo::Auto => Algo::Im2col,
            Algo::Winograd => {
                assert!(winograd::supports(g), "Winograd does not support {g:?}");
                Algo::Winograd
            }
            Algo::Direct => {
                assert!(
                    conv_c1::supports(g),
                    "the direct path does not support {g:?}"
                );
                Algo::Direct
            }
            Algo::Im2col => Algo::Im2col,
        }
    }
}

/// [`forward`], then, when `mask` is given (one byte per output), relu in place:
/// `y = max(y, 0)` (0 for NaN, like dfdx) and `mask = (y > 0)`, dfdx's relu derivative.
pub fn forward_relu(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    g: &Window,
    out: usize,
    y: &mut [f32],
    mask: Option<&mut [u8]>,
) {
    forward_impl(Algo::Auto, GROUPS, x, w, b, g, out, y, mask, true);
}

/// [`forward_relu`] with the algorithm and the number of image groups (the Winograd path's
/// tasks) chosen by the caller; `ties`: Winograd makes outputs with identical receptive fields
/// bit-identical ([`winograd::forward_relu`]; the other algorithms always do).
#[allow(clippy::too_many_arguments)]
fn forward_impl(
    algo: Algo,
    groups: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    g: &Window,
    out: usize,
    y: &mut [f32],
    mask: Option<&mut [u8]>,
    ties: bool,
) {
    match algo.resolve(g) {
        Algo::Winograd => return winograd::forward_relu(x, w, b, g, out, y, mask, groups, ties),
        Algo::Direct => {
            conv_c1::forward(x, w, b, g, out, y);
            if let Some(mask) = mask {
                y.par_chunks_mut(g.ho() * g.wo() * out)
                    .zip(mask.par_chunks_mut(g.ho() * g.wo() * out))
                    .for_each(|(yn, mn)| relu_mask(yn, mn));
            }
            return;
        }
        _ => {}
    }
    let (hw, patch) = (g.ho() * g.wo(), g.patch());
    debug_assert_eq!(x.len(), g.batch * g.in_image());
    debug_assert_eq!(w.len(), patch * out);
    debug_assert_eq!(y.len(), g.batch * hw * out);
    let masks: Vec<Option<&mut [u8]>> = match mask {
        Some(m) => m.chunks_mut(hw * out).map(Some).collect(),
        None => (0..g.batch).map(|_| None).collect(),
    };
    y.par_chunks_mut(hw * out)
        .zip(x.par_chunks(g.in_image()))
        .zip(masks)
        .for_each(|((yn, xn), mn)| {
            if let Some(b) = b {
                for row in yn.chunks_exact_mut(out) {
                    row.copy_from_slice(b);
                }
            }
            let acc = b.is_some();
            if identity(g) {
                gemm(
                    Parallelism::None,
                    (hw, out, patch),
                    yn,
                    acc,
                    xn,
                    (patch, 1),
                    w,
                    (out, 1),
                );
            } else {
                with_scratch(hw * patch, 0, |cols, _| {
                    im2col_image(xn, g, false, cols);
                    gemm(
                        Parallelism::None,
                        (hw, out, patch),
                        yn,
                        acc,
                        cols,
                        (patch, 1),
                        w,
                        (out, 1),
                    );
                });
            }
            if let Some(mn) = mn {
                relu_mask(yn, mn);
            }
        });
}

/// Backward: accumulates, for each buffer given, `gw += sum_n C_n^T gy_n`,
/// `gb += sum_n 1^T gy_n` and `gx_n += col2im(gy_n w^T)`. Deterministic for any number of
/// threads (see the module doc); dX does not depend on whether dW and db are computed.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    w: &[f32],
    g: &Window,
    out: usize,
    gy: &[f32],
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
) {
    backward_relu(x, w, g, out, gy, None, gw, gb, gx);
}

/// [`backward`] of [`forward_relu`]: with `mask`, the output gradient is first multiplied by
/// the relu derivative `mask` (per image, in cache).
#[allow(clippy::too_many_arguments)]
pub fn backward_relu(
    x: &[f32],
    w: &[f32],
    g: &Window,
    out: usize,
    gy: &[f32],
    mask: Option<&[u8]>,
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
) {
    backward_impl(Algo::Auto, GROUPS, x, w, g, out, gy, mask, gw, gb, gx);
}

/// [`backward_relu`] with the algorithm (the one the forward used) and the number of image
/// groups of the deterministic reduction chosen by the caller.
#[allow(clippy::too_many_arguments)]
fn backward_impl(
    algo: Algo,
    groups: usize,
    x: &[f32],
    w: &[f32],
    g: &Window,
    out: usize,
    gy: &[f32],
    mask: Option<&[u8]>,
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
) {
    match algo.resolve(g) {
        Algo::Winograd => {
            return winograd::backward_relu(x, w, g, out, gy, mask, gw, gb, gx, groups)
        }
        Algo::Direct => {
            let mut masked = Vec::new();
            let gy = match mask {
                Some(m) => {
                    masked.resize(gy.len(), 0.0);
                    let img = g.ho() * g.wo() * out;
                    masked
                        .par_chunks_mut(img)
                        .zip(gy.par_chunks(img).zip(m.par_chunks(img)))
                        .for_each(|(d, (gn, mn))| masked_grad(gn, mn, d));
                    &masked[..]
                }
                None => gy,
            };
            conv_c1::backward_params(x, g, out, gy, gw, gb, groups);
            if gx.is_some() {
                backward_impl(Algo::Im2col, groups, x, w, g, out, gy, None, None, None, gx);
            }
            return;
        }
        _ => {}
    }
    let (hw, patch, img) = (g.ho() * g.wo(), g.patch(), g.in_image());
    debug_assert_eq!(gy.len(), g.batch * hw * out);
    if g.batch == 0 || (gw.is_none() && gb.is_none() && gx.is_none()) {
        return;
    }
    let per = g.batch.div_ceil(groups.clamp(1, g.batch));
    let groups = g.batch.div_ceil(per);
    let gx_parts: Vec<Option<&mut [f32]>> = match gx {
        Some(gx) => gx.chunks_mut(per * img).map(Some).collect(),
        None => (0..groups).map(|_| None).collect(),
    };
    let (with_w, with_b) = (gw.is_some(), gb.is_some());
    // Per group: its dW (patch x out, when wanted) followed by its db (out, when wanted).
    let w_len = if with_w { patch * out } else { 0 };
    let b_len = if with_b { out } else { 0 };
    let partials: Vec<Vec<f32>> = gx_parts
        .into_par_iter()
        .enumerate()
        .map(|(gi, mut gxg)| {
            let mut acc = vec![0.0f32; w_len + b_len];
            let (aw, ab) = acc.split_at_mut(w_len);
            let mut masked = vec![0.0f32; if mask.is_some() { hw * out } else { 0 }];
            let first = gi * per;
            let last = (first + per).min(g.batch);
            for n in first..last {
                let xn = &x[n * img..(n + 1) * img];
                let mut gyn = &gy[n * hw * out..(n + 1) * hw * out];
                if let Some(mask) = mask {
                    masked_grad(gyn, &mask[n * hw * out..(n + 1) * hw * out], &mut masked);
                    gyn = &masked;
                }
                if with_b {
                    for row in gyn.chunks_exact(out) {
                        for (a, v) in ab.iter_mut().zip(row) {
                            *a += *v;
                        }
                    }
                }
                let gxn = gxg
                    .as_deref_mut()
                    .map(|p| &mut p[(n - first) * img..(n - first + 1) * img]);
                if identity(g) {
                    // C_n = X_n: dW += X_n^T G_n, dX_n += G_n W^T.
                    if with_w {
                        gemm(
                            Parallelism::None,
                            (patch, out, hw),
                            aw,
                            true,
                            xn,
                            (1, patch),
                            gyn,
                            (out, 1),
                        );
                    }
                    if let Some(gxn) = gxn {
                        gemm(
                            Parallelism::None,
                            (hw, patch, out),
                            gxn,
                            true,
                            gyn,
                            (out, 1),
                            w,
                            (1, out),
                        );
                    }
                    continue;
                }
                if !with_w && gxn.is_none() {
                    continue;
                }
                let cols_len = if with_w { hw * patch } else { 0 };
                let dcols_len = if gxn.is_some() { hw * patch } else { 0 };
                with_scratch(cols_len, dcols_len, |cols, dcols| {
                    if with_w {
                        im2col_image(xn, g, false, cols);
                        gemm(
                            Parallelism::None,
                            (patch, out, hw),
                            aw,
                            true,
                            cols,
                            (1, patch),
                            gyn,
                            (out, 1),
                        );
                    }
                    if let Some(gxn) = gxn {
                        gemm(
                            Parallelism::None,
                            (hw, patch, out),
                            dcols,
                            false,
                            gyn,
                            (out, 1),
                            w,
                            (1, out),
                        );
                        col2im_image(dcols, g, false, gxn);
                    }
                });
            }
            acc
        })
        .collect();
    add_partials(&partials, w_len, gw, gb);
}

/// What the fused CPU op applies after the convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Nothing: the convolution's output.
    Linear,
    /// relu.
    Relu,
    /// relu, then 2x2 max pooling with stride 2 (floor size, as [`super::pool`]).
    ReluMaxPool2,
}

/// relu then 2x2/2 max pooling of one image's convolution output `z` (ho x wo x out): `y` gets
/// (ho/2 x wo/2 x out) values, `code` per output the position (ky*2 + kx) of the first maximum
/// in scan order when that maximum is positive, else 255 (no gradient). Exactly what the
/// separate relu and [`super::kernels::maxpool`] compute, and where their backward sends the
/// gradient (a relu output of 0 passes none).
fn relu_maxpool2(z: &[f32], (ho, wo, out): (usize, usize, usize), y: &mut [f32], code: &mut [u8]) {
    let (ph, pw) = (ho / 2, wo / 2);
    for py in 0..ph {
        for px in 0..pw {
            let o = (py * pw + px) * out;
            let at = |k: usize| ((2 * py + k / 2) * wo + 2 * px + k % 2) * out;
            let (yo, co) = (&mut y[o..o + out], &mut code[o..o + out]);
            for (ci, (yv, cv)) in yo.iter_mut().zip(co.iter_mut()).enumerate() {
                let relu = |v: f32| if v > 0.0 { v } else { 0.0 };
                let (mut best, mut arg) = (relu(z[at(0) + ci]), 0u8);
                for k in 1..4 {
                    let v = relu(z[at(k) + ci]);
                    if v > best {
                        best = v;
                        arg = k as u8;
                    }
                }
                *yv = best;
                *cv = if best > 0.0 { arg } else { u8::MAX };
            }
        }
    }
}

/// The adjoint of [`relu_maxpool2`]: `gz` (ho x wo x out, overwritten) is zero except at each
/// pooled output's code position, which gets that output's gradient.
fn unpool2(gy: &[f32], code: &[u8], (ho, wo, out): (usize, usize, usize), gz: &mut [f32]) {
    let (ph, pw) = (ho / 2, wo / 2);
    gz.fill(0.0);
    for py in 0..ph {
        for px in 0..pw {
            let o = (py * pw + px) * out;
            for ci in 0..out {
                let k = code[o + ci];
                if k != u8::MAX {
                    let k = k as usize;
                    gz[((2 * py + k / 2) * wo + 2 * px + k % 2) * out + ci] = gy[o + ci];
                }
            }
        }
    }
}

/// Recycled host buffers for the pooled path's per-group convolution outputs (a mutex-guarded
/// free list rather than a thread-local: rayon may run another group on this thread while a
/// group waits inside the im2col forward's own parallel loop).
static FULL: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

fn take_full(len: usize) -> Vec<f32> {
    let mut v = FULL
        .lock()
        .ok()
        .and_then(|mut l| l.pop())
        .unwrap_or_default();
    v.resize(len, 0.0);
    v
}

fn give_full(v: Vec<f32>) {
    if let Ok(mut l) = FULL.lock() {
        if l.len() < 2 * GROUPS {
            l.push(v);
        }
    }
}

/// Forward of conv + relu + 2x2 max pooling: per image group, the convolution output is
/// computed into a recycled buffer (never a batch-sized tensor) and pooled into `y`
/// (B x (ho/2)(wo/2) out), with the backward's `code`s. With `ties`, positions with identical
/// receptive fields get bit-identical convolution outputs also on the Winograd path, so an
/// exact tie goes to the first maximum in scan order like PyTorch's (see [`forward_impl`]).
#[allow(clippy::too_many_arguments)]
pub fn forward_pooled(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    g: &Window,
    out: usize,
    y: &mut [f32],
    code: &mut [u8],
    ties: bool,
) {
    let (hw, img) = (g.ho() * g.wo(), g.in_image());
    let pimg = (g.ho() / 2) * (g.wo() / 2) * out;
    if g.batch == 0 {
        return;
    }
    let per = g.batch.div_ceil(GROUPS.min(g.batch));
    y.par_chunks_mut(per * pimg)
        .zip(code.par_chunks_mut(per * pimg))
        .zip(x.par_chunks(per * img))
        .for_each(|((yg, cg), xg)| {
            let images = xg.len() / img;
            let gs = Window {
                batch: images,
                ..*g
            };
            let mut z = take_full(images * hw * out);
            forward_impl(Algo::Auto, 1, xg, w, b, &gs, out, &mut z, None, ties);
            for n in 0..images {
                relu_maxpool2(
                    &z[n * hw * out..(n + 1) * hw * out],
                    (g.ho(), g.wo(), out),
                    &mut yg[n * pimg..(n + 1) * pimg],
                    &mut cg[n * pimg..(n + 1) * pimg],
                );
            }
            give_full(z);
        });
}

/// Backward of [`forward_pooled`]: accumulates `gw`, `gb`, `gx` (each when given) from the
/// pooled output gradient `gy`. Per image group the convolution-output gradient is rebuilt by
/// [`unpool2`] and the group's dW and db partials are added in group order (deterministic for
/// any thread count).
#[allow(clippy::too_many_arguments)]
pub fn backward_pooled(
    x: &[f32],
    w: &[f32],
    g: &Window,
    out: usize,
    gy: &[f32],
    code: &[u8],
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
) {
    let (hw, img) = (g.ho() * g.wo(), g.in_image());
    let pimg = (g.ho() / 2) * (g.wo() / 2) * out;
    if g.batch == 0 || (gw.is_none() && gb.is_none() && gx.is_none()) {
        return;
    }
    let per = g.batch.div_ceil(GROUPS.min(g.batch));
    let groups = g.batch.div_ceil(per);
    let gx_parts: Vec<Option<&mut [f32]>> = match gx {
        Some(gx) => gx.chunks_mut(per * img).map(Some).collect(),
        None => (0..groups).map(|_| None).collect(),
    };
    let w_len = if gw.is_some() { w.len() } else { 0 };
    let b_len = if gb.is_some() { out } else { 0 };
    let partials: Vec<Vec<f32>> = gx_parts
        .into_par_iter()
        .enumerate()
        .map(|(gi, gxg)| {
            let first = gi * per;
            let images = per.min(g.batch - first);
            let gs = Window {
                batch: images,
                ..*g
            };
            let mut gz = take_full(images * hw * out);
            for n in 0..images {
                let p = (first + n) * pimg..(first + n + 1) * pimg;
                unpool2(
                    &gy[p.clone()],
                    &code[p],
                    (g.ho(), g.wo(), out),
                    &mut gz[n * hw * out..(n + 1) * hw * out],
                );
            }
            let mut acc = vec![0.0f32; w_len + b_len];
            let (aw, ab) = acc.split_at_mut(w_len);
            backward_impl(
                Algo::Auto,
                1,
                &x[first * img..(first + images) * img],
                w,
                &gs,
                out,
                &gz,
                None,
                (w_len > 0).then_some(aw),
                (b_len > 0).then_some(ab),
                gxg,
            );
            give_full(gz);
            acc
        })
        .collect();
    add_partials(&partials, w_len, gw, gb);
}

/// The convolution as one differentiable op on the CPU: `x` (B, h*w*c_in) -> (B, ho*wo*out),
/// followed by `act` (relu; or relu and 2x2 max pooling, then (B, (ho/2)*(wo/2)*out)). `w` and
/// `b` are the flat parameter tensors (their gradients land on their ids unless `needs.params`
/// is false, which skips dW and db); `needs.input` false skips dX (x then gets no gradient
/// entry from this op). `ties`: see [`forward_pooled`] (the network passes
/// `Ctx::exact_ties`). Only call when `D` is `Cpu`.
#[allow(clippy::too_many_arguments)]
pub fn conv<D: Device<f32>, T: Tape<f32, D>>(
    x: Batch<D, T>,
    w: &Tensor<(usize,), f32, D>,
    b: Option<&Tensor<(usize,), f32, D>>,
    g: Window,
    out: usize,
    needs: Needs,
    act: Act,
    ties: bool,
) -> Batch<D, T> {
    debug_assert!(super::cpu_op::is_cpu::<D>());
    let (x, mut tape) = x.contiguous().split_tape();
    let dev = x.device().clone();
    let pooled = act == Act::ReluMaxPool2;
    let relu = act == Act::Relu;
    let shape = if pooled {
        (g.batch, (g.ho() / 2) * (g.wo() / 2) * out)
    } else {
        (g.batch, g.ho() * g.wo() * out)
    };
    let wh = host_copy(w);
    let bh = b.map(host_copy);
    let mut y = host_alloc::<D>(&dev, shape.0 * shape.1);
    // relu mask, or the pooled outputs' codes.
    let mut mask = if act == Act::Linear {
        Vec::new()
    } else {
        vec![0u8; shape.0 * shape.1]
    };
    INPUT.with(|buf| {
        let mut xh = buf.borrow_mut();
        xh.resize(x.shape().num_elements(), 0.0);
        x.copy_into(&mut xh);
        if pooled {
            forward_pooled(&xh, &wh, bh.as_deref(), &g, out, &mut y, &mut mask, ties);
        } else {
            let m = relu.then_some(&mut mask[..]);
            forward_impl(
                Algo::Auto,
                GROUPS,
                &xh,
                &wh,
                bh.as_deref(),
                &g,
                out,
                &mut y,
                m,
                ties,
            );
        }
    });
    let y = dev.tensor_from_vec(y, shape);
    if T::OWNS_TAPE && needs.any() {
        let (x_ghost, w_ghost, y_ghost) = (x.ghost(), w.ghost(), y.ghost());
        let b_ghost = b.map(|b| b.ghost());
        tape.add_backward_op(move |grads| {
            let gy = std::mem::take(host_vec::<D>(grads.get_or_alloc_mut(&y_ghost)?));
            let mut gw = if needs.params {
                Some(std::mem::take(host_vec::<D>(
                    grads.get_or_alloc_mut(&w_ghost)?,
                )))
            } else {
                None
            };
            let mut gb = match &b_ghost {
                Some(bg) if needs.params => {
                    Some(std::mem::take(host_vec::<D>(grads.get_or_alloc_mut(bg)?)))
                }
                _ => None,
            };
            let mut gx = if needs.input {
                Some(std::mem::take(host_vec::<D>(
                    grads.get_or_alloc_mut(&x_ghost)?,
                )))
            } else {
                None
            };
            INPUT.with(|buf| {
                let mut xh = buf.borrow_mut();
                xh.resize(x.shape().num_elements(), 0.0);
                x.copy_into(&mut xh);
                if pooled {
                    backward_pooled(
                        &xh,
                        &wh,
                        &g,
                        out,
                        &gy,
                        &mask,
                        gw.as_deref_mut(),
                        gb.as_deref_mut(),
                        gx.as_deref_mut(),
                    );
                } else {
                    backward_relu(
                        &xh,
                        &wh,
                        &g,
                        out,
                        &gy,
                        relu.then_some(&mask[..]),
                        gw.as_deref_mut(),
                        gb.as_deref_mut(),
                        gx.as_deref_mut(),
                    );
                }
            });
            *host_vec::<D>(grads.get_or_alloc_mut(&y_ghost)?) = gy;
            if let Some(gw) = gw {
                *host_vec::<D>(grads.get_or_alloc_mut(&w_ghost)?) = gw;
            }
            if let (Some(bg), Some(gb)) = (&b_ghost, gb) {
                *host_vec::<D>(grads.get_or_alloc_mut(bg)?) = gb;
            }
            if let Some(gx) = gx {
                *host_vec::<D>(grads.get_or_alloc_mut(&x_ghost)?) = gx;
            }
            Ok(())
        });
    }
    y.put_tape(tape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn uniform(seed: u64, n: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// The input pixel read by output (n, oy, ox) at window offset (ky, kx), if inside.
    fn pixel(g: &Window, n: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy * g.stride + ky) as isize - g.pad as isize;
        let ix = (ox * g.stride + kx) as isize - g.pad as isize;
        let inside = iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w;
        inside.then(|| n * g.in_image() + (iy as usize * g.w + ix as usize) * g.c)
    }

    /// Naive loops in f64: (y, dW, db, dX) for output gradient gy.
    fn reference(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        g: &Window,
        out: usize,
        gy: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (ho, wo) = (g.ho(), g.wo());
        let mut y = vec![0.0; g.batch * ho * wo * out];
        let mut gw = vec![0.0; w.len()];
        let mut gb = vec![0.0; out];
        let mut gx = vec![0.0; x.len()];
        for n in 0..g.batch {
            for oy in 0..ho {
                for ox in 0..wo {
                    for co in 0..out {
                        let o = ((n * ho + oy) * wo + ox) * out + co;
                        let mut acc = b[co] as f64;
                        gb[co] += gy[o] as f64;
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let Some(p) = pixel(g, n, oy, ox, ky, kx) else {
                                    continue;
                                };
                                for ci in 0..g.c {
                                    let wi = ((ky * g.k + kx) * g.c + ci) * out + co;
                                    acc += x[p + ci] as f64 * w[wi] as f64;
                                    gw[wi] += x[p + ci] as f64 * gy[o] as f64;
                                    gx[p + ci] += w[wi] as f64 * gy[o] as f64;
                                }
                            }
                        }
                        y[o] = acc;
                    }
                }
            }
        }
        (y, gw, gb, gx)
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            let tol = 1e-4 * (1.0 + b.abs());
            assert!((*a as f64 - b).abs() <= tol, "{what}[{i}]: {a} vs {b}");
        }
    }

    /// (c, h, w, out, k, stride, pad, batch).
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

    /// Padding, stride with leftovers, the 1x1 identity path, a batch not divisible into the
    /// 16 reduction groups, c_in = 1.
    /// Cases 6-9 take the Winograd path under `Algo::Auto`: 3x3 with padding and partial
    /// tiles, 5x5 with padding, 3x3 without padding (the Ismail network's second layer
    /// shape, smaller), 5x5 giving a single output per image; cases 1 and 10 (one input
    /// channel, stride 1) the direct path.
    const CASES: [Case; 11] = [
        (3, 7, 6, 4, 3, 2, 1, 2),
        (1, 8, 8, 5, 5, 1, 2, 3),
        (4, 5, 5, 3, 1, 1, 0, 2),
        (2, 6, 5, 3, 1, 2, 0, 2),
        (2, 5, 5, 2, 3, 1, 0, 37),
        (3, 4, 4, 2, 4, 1, 0, 1),
        (4, 9, 9, 5, 3, 1, 1, 3),
        (8, 10, 7, 6, 5, 1, 2, 19),
        (32, 12, 12, 16, 3, 1, 0, 5),
        (6, 5, 5, 4, 5, 1, 0, 2),
        (1, 6, 7, 8, 3, 1, 0, 4),
    ];

    /// The algorithms a case can run with.
    fn algos(g: &Window) -> Vec<Algo> {
        let mut a = vec![Algo::Im2col];
        if winograd::supports(g) {
            a.push(Algo::Winograd);
        }
        if conv_c1::supports(g) {
            a.push(Algo::Direct);
        }
        a
    }

    #[test]
    fn forward_and_backward_match_naive_loops() {
        for (ci, &(c, h, w, out, k, stride, pad, batch)) in CASES.iter().enumerate() {
            let g = Window {
                batch,
                h,
                w,
                c,
                k,
                stride,
                pad,
            };
            let s = ci as u64 * 10;
            let x = uniform(s, batch * g.in_image());
            let wt = uniform(s + 1, g.patch() * out);
            let b = uniform(s + 2, out);
            let gy = uniform(s + 3, batch * g.ho() * g.wo() * out);
            let (y_ref, gw_ref, gb_ref, gx_ref) = reference(&x, &wt, &b, &g, out, &gy);
            for algo in algos(&g) {
                let ci = format!("{ci} ({algo:?})");
                let mut y = vec![f32::NAN; y_ref.len()];
                forward_impl(algo, GROUPS, &x, &wt, Some(&b), &g, out, &mut y, None, true);
                assert_close(&y, &y_ref, &format!("case {ci} y"));
                // Gradients accumulate: start from 1 and subtract it again.
                let (mut gw, mut gb, mut gx) =
                    (vec![1.0; wt.len()], vec![1.0; out], vec![1.0; x.len()]);
                backward_impl(
                    algo,
                    GROUPS,
                    &x,
                    &wt,
                    &g,
                    out,
                    &gy,
                    None,
                    Some(&mut gw),
                    Some(&mut gb),
                    Some(&mut gx),
                );
                let minus1 = |v: Vec<f32>| v.into_iter().map(|a| a - 1.0).collect::<Vec<_>>();
                assert_close(&minus1(gw), &gw_ref, &format!("case {ci} dW"));
                assert_close(&minus1(gb), &gb_ref, &format!("case {ci} db"));
                assert_close(&minus1(gx.clone()), &gx_ref, &format!("case {ci} dX"));
                // Without bias and without dX: the same dW, the output without b.
                let mut y0 = vec![f32::NAN; y_ref.len()];
                forward_impl(algo, GROUPS, &x, &wt, None, &g, out, &mut y0, None, true);
                let y0_ref: Vec<f64> = y_ref
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v - b[i % out] as f64)
                    .collect();
                assert_close(&y0, &y0_ref, &format!("case {ci} y without bias"));
                let mut gw2 = vec![0.0; wt.len()];
                backward_impl(
                    algo,
                    GROUPS,
                    &x,
                    &wt,
                    &g,
                    out,
                    &gy,
                    None,
                    Some(&mut gw2),
                    None,
                    None,
                );
                assert_close(&gw2, &gw_ref, &format!("case {ci} dW without dX"));
                // dX alone (no dW, no db): bit-identical to dX computed with them.
                let mut gx2 = vec![1.0; x.len()];
                backward_impl(
                    algo,
                    GROUPS,
                    &x,
                    &wt,
                    &g,
                    out,
                    &gy,
                    None,
                    None,
                    None,
                    Some(&mut gx2),
                );
                assert_eq!(gx2, gx, "case {ci} dX without dW and db");
            }
        }
    }

    #[test]
    fn fused_relu_matches_relu_of_the_reference() {
        for (ci, &(c, h, w, out, k, stride, pad, batch)) in CASES.iter().enumerate() {
            let g = Window {
                batch,
                h,
                w,
                c,
                k,
                stride,
                pad,
            };
            let s = ci as u64 * 10 + 5;
            let x = uniform(s, batch * g.in_image());
            let wt = uniform(s + 1, g.patch() * out);
            let b = uniform(s + 2, out);
            let gy = uniform(s + 3, batch * g.ho() * g.wo() * out);
            let (z, _, _, _) = reference(&x, &wt, &b, &g, out, &gy);
            // relu(z) and, for the backward, gy masked by z > 0 (dfdx's derivative, 0 at 0).
            let y_ref: Vec<f64> = z.iter().map(|v| v.max(0.0)).collect();
            let gy_masked: Vec<f32> = gy
                .iter()
                .zip(&z)
                .map(|(g, z)| if *z > 0.0 { *g } else { 0.0 })
                .collect();
            let (_, gw_ref, gb_ref, gx_ref) = reference(&x, &wt, &b, &g, out, &gy_masked);
            for algo in algos(&g) {
                let ci = format!("{ci} ({algo:?})");
                let (mut y, mut mask) = (vec![f32::NAN; z.len()], vec![7u8; z.len()]);
                forward_impl(
                    algo,
                    GROUPS,
                    &x,
                    &wt,
                    Some(&b),
                    &g,
                    out,
                    &mut y,
                    Some(&mut mask),
                    true,
                );
                assert_close(&y, &y_ref, &format!("case {ci} relu(y)"));
                assert!(mask.iter().all(|m| *m <= 1), "mask is 0/1");
                let (mut gw, mut gb, mut gx) =
                    (vec![0.0; wt.len()], vec![0.0; out], vec![0.0; x.len()]);
                backward_impl(
                    algo,
                    GROUPS,
                    &x,
                    &wt,
                    &g,
                    out,
                    &gy,
                    Some(&mask),
                    Some(&mut gw),
                    Some(&mut gb),
                    Some(&mut gx),
                );
                assert_close(&gw, &gw_ref, &format!("case {ci} relu dW"));
                assert_close(&gb, &gb_ref, &format!("case {ci} relu db"));
                assert_close(&gx, &gx_ref, &format!("case {ci} relu dX"));
            }
        }
    }

    /// conv + relu + 2x2/2 max pooling in one op against the naive loops: relu and pooling of
    /// the f64 reference (floor size for odd outputs), and the reference backward of the
    /// gradient routed to each window's maximum when it is positive. Both algorithms (the
    /// 3x3/5x5 cases pool Winograd output), odd and even output sizes.
    #[test]
    fn fused_relu_maxpool_matches_the_reference() {
        const POOL_CASES: [Case; 5] = [
            (1, 8, 8, 5, 5, 1, 2, 3),
            (4, 9, 9, 5, 3, 1, 1, 3),
            (32, 12, 12, 16, 3, 1, 0, 5),
            (8, 10, 7, 6, 5, 1, 2, 19),
            (3, 7, 6, 4, 3, 2, 1, 2),
        ];
        for (ci, &(c, h, w, out, k, stride, pad, batch)) in POOL_CASES.iter().enumerate() {
            let g = Window {
                batch,
                h,
                w,
                c,
                k,
                stride,
                pad,
            };
            let (ho, wo) = (g.ho(), g.wo());
            let (ph, pw) = (ho / 2, wo / 2);
            let s = ci as u64 * 10 + 7;
            let x = uniform(s, batch * g.in_image());
            let wt = uniform(s + 1, g.patch() * out);
            let b = uniform(s + 2, out);
            let gp = uniform(s + 3, batch * ph * pw * out);
            let zero = vec![0.0f32; batch * ho * wo * out];
            let (z, _, _, _) = reference(&x, &wt, &b, &g, out, &zero);
            let mut y_ref = vec![0.0f64; gp.len()];
            let mut gz = vec![0.0f32; z.len()];
            for n in 0..batch {
                for py in 0..ph {
                    for px in 0..pw {
                        for co in 0..out {
                            let at = |ky: usize, kx: usize| {
                                ((n * ho + 2 * py + ky) * wo + 2 * px + kx) * out + co
                            };
                            let cands = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                            let best = cands
                                .into_iter()
                                .max_by(|a, b| z[*a].total_cmp(&z[*b]))
                                .expect("four candidates");
                            let o = ((n * ph + py) * pw + px) * out + co;
                            y_ref[o] = z[best].max(0.0);
                            if z[best] > 0.0 {
                                gz[best] = gp[o];
                            }
                        }
                    }
                }
            }
            let (_, gw_ref, gb_ref, gx_ref) = reference(&x, &wt, &b, &g, out, &gz);
            let mut y = vec![f32::NAN; gp.len()];
            let mut code = vec![0u8; gp.len()];
            forward_pooled(&x, &wt, Some(&b), &g, out, &mut y, &mut code, true);
            assert_close(&y, &y_ref, &format!("case {ci} pooled y"));
            let (mut gw, mut gb, mut gx) =
                (vec![0.0; wt.len()], vec![0.0; out], vec![0.0; x.len()]);
            backward_pooled(
                &x,
                &wt,
                &g,
                out,
                &gp,
                &code,
                Some(&mut gw),
                Some(&mut gb),
                Some(&mut gx),
            );
            assert_close(&gw, &gw_ref, &format!("case {ci} pooled dW"));
            assert_close(&gb, &gb_ref, &format!("case {ci} pooled db"));
            assert_close(&gx, &gx_ref, &format!("case {ci} pooled dX"));
            // The same numbers as the separate relu and max-pool kernels (im2col windows:
            // bit-identical, as the per-image GEMMs are the same calls).
            if !winograd::supports(&g) {
                let mut yf = vec![0.0; z.len()];
                let mut mask = vec![0u8; z.len()];
                forward_relu(&x, &wt, Some(&b), &g, out, &mut yf, Some(&mut mask));
                let pg = Window {
                    batch,
                    h: ho,
                    w: wo,
                    c: out,
                    k: 2,
                    stride: 2,
                    pad: 0,
                };
                let mut yp = vec![0.0; gp.len()];
                let mut arg = vec![0u32; gp.len()];
                super::super::kernels::maxpool(&yf, &pg, &mut yp, &mut arg);
                assert_eq!(yp, y, "case {ci}: fused vs separate forward");
                let mut gyf = vec![0.0; z.len()];
                super::super::kernels::maxpool_backward(&gp, &arg, &pg, &mut gyf);
                let mut gx2 = vec![0.0; x.len()];
                backward_relu(
                    &x,
                    &wt,
                    &g,
                    out,
                    &gyf,
                    Some(&mask),
                    None,
                    None,
                    Some(&mut gx2),
                );
                assert_eq!(gx2, gx, "case {ci}: fused vs separate dX");
            }
        }
    }

    #[test]
    fn weight_gradient_is_bit_identical_for_any_thread_count() {
        let g = Window {
            batch: 37,
            h: 6,
            w: 6,
            c: 3,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let out = 4;
        let x = uniform(1, g.batch * g.in_image());
        let w = uniform(2, g.patch() * out);
        let gy = uniform(3, g.batch * g.ho() * g.wo() * out);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            pool.install(|| {
                let (mut gw, mut gb) = (vec![0.0; w.len()], vec![0.0; out]);
                backward(&x, &w, &g, out, &gy, Some(&mut gw), Some(&mut gb), None);
                (gw, gb)
            })
        };
        assert_eq!(run(1), run(3));
    }
}
