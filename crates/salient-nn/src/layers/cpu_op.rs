//! Custom differentiable ops for the CPU, reachable from code generic over the dfdx device.
//!
//! dfdx's generic `gather` walks an N-d index per element and its backward is a serial
//! scatter; the spatial layers instead run the slice kernels of [`super::kernels`] when the
//! device is [`Cpu`]. The check is a `TypeId` comparison, so [`crate::Network`] keeps the plain
//! `D: Device<f32>` bound the engine codes against; any other device (CUDA) takes the portable
//! path built from dfdx ops (see [`super::gather`]).
//!
//! The op records one backward closure on the tape: it reads the output gradient and adds into
//! the input gradient. The closure holds only the ids (ghosts) of the tensors plus whatever the
//! forward saved (e.g. argmax indices), never the input data.

use dfdx::prelude::*;
use std::any::{Any, TypeId};

/// True when `D` is dfdx's [`Cpu`] device.
pub fn is_cpu<D: 'static>() -> bool {
    TypeId::of::<D>() == TypeId::of::<Cpu>()
}

/// The host vector behind a gradient buffer of device `D`, which must be [`Cpu`].
pub(crate) fn host_vec<D: Storage<f32>>(v: &mut D::Vec) -> &mut Vec<f32> {
    let any: &mut dyn Any = v;
    any.downcast_mut::<<Cpu as Storage<f32>>::Vec>()
        .expect("cpu_op used on a device other than Cpu")
}

/// A host copy of a contiguous tensor (a flat parameter): one `memcpy` through dfdx's
/// `copy_into`, where `as_vec` walks an N-d index per element (≈16 instructions per float, which
/// for a 1568 x 128 dense weight cost more per pass than the saving of skipping its dW).
pub(crate) fn host_copy<D: Device<f32>>(t: &Tensor<(usize,), f32, D>) -> Vec<f32> {
    let mut v = vec![0.0f32; t.shape().0];
    t.copy_into(&mut v);
    v
}

thread_local! {
    /// Reused host copy of an op's input, so that no step allocates (and page-faults) it anew;
    /// its length is the largest input seen on this thread (an op uses a prefix).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A zeroed host vector of `len` floats taken from the device's allocator, so that with dfdx's
/// allocation cache enabled (`dev.enable_cache()`) the large im2col buffers are recycled between
/// steps instead of being mapped and page-faulted anew. The emptied `D::Vec` shell is forgotten
/// (it owns no memory; dropping it would insert a zero-length entry into the cache).
pub(crate) fn host_alloc<D: Device<f32>>(dev: &D, len: usize) -> Vec<f32> {
    match <D as Storage<f32>>::try_alloc_len(dev, len) {
        Ok(mut shell) => {
            let v = std::mem::take(host_vec::<D>(&mut shell));
            std::mem::forget(shell);
            v
        }
        Err(_) => vec![0.0; len],
    }
}

/// Applies a CPU kernel as a differentiable op: `forward(x, y)` fills the output `y` (zeroed,
/// of `out_shape`) from the contiguous input `x` and returns saved state; `backward(saved, gy,
/// gx)` accumulates into `gx` the vector-Jacobian product with the output gradient `gy`.
/// Only call it when [`is_cpu::<D>()`](is_cpu).
pub fn cpu_op<D, T, S, O, A, F, B>(
    x: Tensor<S, f32, D, T>,
    out_shape: O,
    forward: F,
    backward: B,
) -> Tensor<O, f32, D, T>
where
    D: Device<f32>,
    T: Tape<f32, D>,
    S: Shape,
    O: Shape,
    A: 'static,
    F: FnOnce(&[f32], &mut [f32]) -> A,
    B: 'static + FnOnce(&A, &[f32], &mut [f32]),
{
    debug_assert!(is_cpu::<D>());
    let (x, mut tape) = x.contiguous().split_tape();
    let mut out = host_alloc::<D>(x.device(), out_shape.num_elements());
    let saved = SCRATCH.with(|scratch| {
        let mut xin = scratch.borrow_mut();
        // Grow only: ops of different sizes share the scratch, and `resize` to a larger length
        // would zero-fill the difference on every call (e.g. 18 MB per step before a maxpool
        // that follows a smaller op), only for `copy_into` to overwrite it.
        let n = x.shape().num_elements();
        if xin.len() < n {
            xin.resize(n, 0.0);
        }
        let xin = &mut xin[..n];
        x.copy_into(xin);
        forward(xin, &mut out)
    });
    let out = x.device().tensor_from_vec(out, out_shape);
    if T::OWNS_TAPE {
        let x_ghost = x.ghost();
        let out_ghost = out.ghost();
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&x_ghost)?;
            // Take the output gradient out of the map (no copy), use it, and put it back.
            let gy = std::mem::take(host_vec::<D>(grads.get_or_alloc_mut(&out_ghost)?));
            backward(
                &saved,
                &gy,
                host_vec::<D>(grads.get_or_alloc_mut(&x_ghost)?),
            );
            *host_vec::<D>(grads.get_or_alloc_mut(&out_ghost)?) = gy;
            Ok(())
        });
    }
    out.put_tape(tape)
}
