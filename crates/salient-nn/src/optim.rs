//! Optimizers over a network's flat parameter list, with `torch.optim`'s update rules.
//!
//! Every parameter is one flat `Tensor<(usize,), f32, D>` (see [`crate::param`]), so an
//! optimizer is a loop over `&mut [Param<D>]`: look up the parameter's gradient, add L2 weight
//! decay (`g += wd * p`, torch's `weight_decay`), update the per-parameter state and write the
//! new value into the parameter **in place** (`axpy`), so the tensor keeps its id and device
//! buffer. All arithmetic is done with dfdx tensor ops on the parameter's device (Cpu, or Cuda
//! with the `cuda` feature); nothing is copied to the host.
//!
//! The three optimizers, [`Sgd`], [`Adam`] and [`Adadelta`], follow the algorithms printed in
//! the `torch.optim` documentation (single-tensor, non-foreach form, `maximize = False`,
//! `amsgrad = False`, `dampening = 0`); `docs/training.md` writes each rule out.
//!
//! Skipped, as torch skips a parameter whose `.grad` is `None`:
//! - parameters with `trainable == false` (batchnorm running statistics);
//! - parameters without a gradient in `grads` (they took no part in the graph).
//!
//! State (momentum buffers, moments, accumulators, Adam's step count) is kept per parameter
//! index, created lazily on the parameter's first update, so `step` must always be given the
//! same parameter list in the same order (a length change is reported as an error).
//!
//! Naming: `dfdx::prelude::*` also exports `Optimizer`, `Sgd`, `SgdConfig`, `Adam` and
//! `AdamConfig` (dfdx's own, const-shape optimizers); import ours by name
//! (`use salient_nn::optim::{Optimizer, Sgd}`) or by path (`optim::Sgd`), not by glob.

mod adadelta;
mod adam;
mod grad;
mod saved;
mod sgd;
mod state;

pub use adadelta::{Adadelta, AdadeltaConfig};
pub use adam::{Adam, AdamConfig};
pub use saved::OptimizerState;
pub use sgd::{Sgd, SgdConfig};

use dfdx::prelude::{Device, Gradients, Tensor};

use crate::{NnError, Param};

/// A flat parameter's tensor (and of its gradient and optimizer state).
pub(crate) type Flat<D> = Tensor<(usize,), f32, D>;

/// An optimizer updating a network's parameters from the gradients of one backward pass.
pub trait Optimizer<D: Device<f32>> {
    /// One update of every trainable param that has a gradient in `grads`, at learning rate `lr`.
    ///
    /// Errors (and leaves the remaining parameters untouched) on an invalid learning rate or
    /// hyperparameter, on a parameter whose length changed since its state was created, and
    /// on a device error.
    fn step(
        &mut self,
        params: &mut [Param<D>],
        grads: &Gradients<f32, D>,
        lr: f64,
    ) -> Result<(), NnError>;

    /// The per-parameter state (moments, buffers, step counts) as plain numbers, for a
    /// checkpoint that resumes training.
    fn state(&self) -> OptimizerState;

    /// Replace the state by `state` (from [`Optimizer::state`] of the same optimizer kind over
    /// the same parameter list `params`): the next [`Optimizer::step`] continues exactly as the
    /// saving optimizer's would have. Errors, leaving the state unchanged, when `state` belongs
    /// to another optimizer or does not fit `params`.
    fn set_state(&mut self, state: &OptimizerState, params: &[Param<D>]) -> Result<(), NnError>;
}

/// The optimizer the IR names, with L2 weight decay `weight_decay` (torch's `weight_decay`).
///
/// Hyperparameters are validated on the first [`Optimizer::step`], which returns an
/// [`NnError::Optimizer`] naming the bad value (the checker should have caught it already).
pub fn build<D: Device<f32>>(
    opt: &salient_ir::Optimizer,
    weight_decay: f64,
) -> Box<dyn Optimizer<D>> {
    match *opt {
        salient_ir::Optimizer::Sgd { momentum, nesterov } => Box::new(Sgd::new(SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        })),
        salient_ir::Optimizer::Adam { beta1, beta2, eps } => Box::new(Adam::new(AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        })),
        salient_ir::Optimizer::Adadelta { rho, eps } => Box::new(Adadelta::new(AdadeltaConfig {
            rho,
            eps,
            weight_decay,
        })),
    }
}

/// Calls `update(index, param, gradient)` for every trainable parameter that has a gradient,
/// with weight decay already added to the gradient (`g + weight_decay * p`, skipped when 0).
pub(crate) fn for_each_gradient<D: Device<f32>>(
    params: &mut [Param<D>],
    grads: &Gradients<f32, D>,
    weight_decay: f64,
    mut update: impl FnMut(usize, &mut Param<D>, Flat<D>) -> Result<(), NnError>,
) -> Result<(), NnError> {
    for (index, param) in params.iter_mut().enumerate() {
        if !param.trainable {
            continue;
        }
        let Some(mut g) = grad::gradient_of(grads, &param.value)? else {
            continue;
        };
        if weight_decay != 0.0 {
            g.try_axpy(1.0, &param.value, weight_decay)
                .map_err(device_error)?;
        }
        update(index, param, g)?;
    }
    Ok(())
}

/// Checks a hyperparameter against a range predicate, as torch's constructors do.
pub(crate) fn check(
    optimizer: &str,
    name: &str,
    value: f64,
    valid: impl Fn(f64) -> bool,
    range: &str,
) -> Result<(), NnError> {
    if value.is_finite() && valid(value) {
        Ok(())
    } else {
        Err(NnError::Optimizer {
            optimizer: optimizer.to_string(),
            reason: format!("{name} = {value} is invalid: must be {range}"),
        })
    }
}

/// The learning rate must be finite and non-negative.
pub(crate) fn check_lr(optimizer: &str, lr: f64) -> Result<(), NnError> {
    check(optimizer, "learning rate", lr, |v| v >= 0.0, ">= 0")
}

/// Wraps a dfdx device error (CPU or CUDA) in [`NnError::Device`].
pub(crate) fn device_error(e: impl std::fmt::Display) -> NnError {
    NnError::Device(e.to_string())
}
