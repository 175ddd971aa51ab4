//! Fused CPU dense layer: `Y = X W + 1 b^T` as one tape op whose backward computes only the
//! gradients that are needed.
//!
//! With X (B x in), W (in x out) row-major, b (out) and G = dL/dY (B x out):
//!
//!   dX = G W^T            (when the layer's input needs a gradient)
//!   dW = X^T G,  db = 1^T G   (when parameter gradients are on)
//!
//! dfdx's `x.matmul(w) + b` always computes all three (and stores a B x out intermediate and its
//! gradient for the bias add). Here an input-gradient pass (attacks, saliency, the regimes'
//! inner passes: parameter gradients off) skips the dW GEMM, and plain training (the input
//! needs no gradient) skips the dX GEMM.
//!
//! Every GEMM is the very call dfdx's CPU matmul makes (the `gemm` crate, same dimensions,
//! strides, accumulation and `Parallelism::Rayon(current_num_threads())`), and the bias terms
//! are the same sequential loops as dfdx's broadcast add and its backward, so the op is
//! bit-identical to `x.matmul(w) + b.broadcast()` on the CPU. `gemm` splits only the output
//! (rows and columns) between threads, never the reduction, so results are bit-identical for
//! any thread count.

use super::cpu_op::{host_alloc, host_copy, host_vec};
use super::kernels::gemm;
use super::Batch;
use ::gemm::Parallelism;
use dfdx::prelude::*;

/// Which gradients a layer's backward pass must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// d loss / d (the layer's input).
    pub input: bool,
    /// d loss / d (the layer's weight and bias).
    pub params: bool,
}

impl Needs {
    /// Whether the backward pass has anything to do.
    pub fn any(&self) -> bool {
        self.input || self.params
    }
}

/// Forward: `y = x w + b`, x (batch x inp), w (inp x out), b (out), y (batch x out) fully
/// overwritten.
pub fn forward(x: &[f32], w: &[f32], b: &[f32], (inp, out): (usize, usize), y: &mut [f32]) {
    let batch = y.len() / out.max(1);
    debug_assert_eq!(y.len(), batch * out);
    debug_assert_eq!(x.len(), batch * inp);
    debug_assert_eq!(w.len(), inp * out);
    debug_assert_eq!(b.len(), out);
    gemm(
        Parallelism::Rayon(rayon::current_num_threads()),
        (batch, out, inp),
        y,
        false,
        x,
        (inp, 1),
        w,
        (out, 1),
    );
    for row in y.chunks_exact_mut(out.max(1)) {
        for (v, bj) in row.iter_mut().zip(b) {
            *v += *bj;
        }
    }
}

/// Backward: accumulates `gx += gy w^T` when `gx` is given (needs `w`), and `gw += x^T gy`,
/// `gb += 1^T gy` (rows summed in order) when they are given (`gw` needs `x`).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: Option<&[f32]>,
    w: Option<&[f32]>,
    (inp, out): (usize, usize),
    gy: &[f32],
    gw: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
) {
    let batch = gy.len() / out.max(1);
    if let Some(gb) = gb {
        for row in gy.chunks_exact(out.max(1)) {
            for (a, g) in gb.iter_mut().zip(row) {
                *a += *g;
            }
        }
    }
    if let Some(gx) = gx {
        let w = w.expect("dense backward: dX needs the weight");
        gemm(
            Parallelism::Rayon(rayon::current_num_threads()),
            (batch, inp, out),
            gx,
            true,
            gy,
            (out, 1),
            w,
            (1, out),
        );
    }
    if let Some(gw) = gw {
        let x = x.expect("dense backward: dW needs the input");
        gemm(
            Parallelism::Rayon(rayon::current_num_threads()),
            (inp, out, batch),
            gw,
            true,
            x,
            (1, inp),
            gy,
            (out, 1),
        );
    }
}

/// The dense layer as one differentiable op on the CPU: `x` (B, inp) -> (B, out). `w` (inp *
/// out, row-major (inp, out)) and `b` (out) are the flat parameter tensors: their gradients land
/// on their ids when `needs.params`; x gets a gradient entry only when `needs.input`. The
/// backward keeps a host copy of x only if dW is needed and of W only if dX is needed. Only
/// call when `D` is `Cpu`.
pub fn dense<D: Device<f32>, T: Tape<f32, D>>(
    x: Batch<D, T>,
    w: &Tensor<(usize,), f32, D>,
    b: &Tensor<(usize,), f32, D>,
    (inp, out): (usize, usize),
    needs: Needs,
) -> Batch<D, T> {
    debug_assert!(super::cpu_op::is_cpu::<D>());
    let (x, mut tape) = x.contiguous().split_tape();
    let dev = x.device().clone();
    let batch = x.shape().0;
    assert_eq!(x.shape().1, inp, "dense: input has the wrong width");
    let mut xh = vec![0.0f32; batch * inp];
    x.copy_into(&mut xh);
    let wh = host_copy(w);
    let mut y = host_alloc::<D>(&dev, batch * out);
    forward(&xh, &wh, &host_copy(b), (inp, out), &mut y);
    let y = dev.tensor_from_vec(y, (batch, out));
    if T::OWNS_TAPE && needs.any() {
        let saved_x = needs.params.then_some(xh);
        let saved_w = needs.input.then_some(wh);
        let (x_ghost, w_ghost, b_ghost, y_ghost) = (x.ghost(), w.ghost(), b.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            // Take a gradient buffer out of the map (no copy); it is put back below.
            macro_rules! take {
                ($ghost:expr) => {
                    std::mem::take(host_vec::<D>(grads.get_or_alloc_mut($ghost)?))
                };
            }
            macro_rules! put {
                ($ghost:expr, $g:expr) => {
                    *host_vec::<D>(grads.get_or_alloc_mut($ghost)?) = $g
                };
            }
            let gy = take!(&y_ghost);
            let mut gx = if needs.input {
                Some(take!(&x_ghost))
            } else {
                None
            };
            let (mut gw, mut gb) = if needs.params {
                (Some(take!(&w_ghost)), Some(take!(&b_ghost)))
            } else {
                (None, None)
            };
            backward(
                saved_x.as_deref(),
                saved_w.as_deref(),
                (inp, out),
                &gy,
                gw.as_deref_mut(),
                gb.as_deref_mut(),
                gx.as_deref_mut(),
            );
            put!(&y_ghost, gy);
            if let Some(g) = gx {
                put!(&x_ghost, g);
            }
            if let (Some(gw), Some(gb)) = (gw, gb) {
                put!(&w_ghost, gw);
                put!(&b_ghost, gb);
            }
            Ok(())
        });
    }
    y.put_tape(tape)
}
