//! Stochastic gradient descent with momentum and Nesterov momentum (`torch.optim.SGD`).

use dfdx::prelude::*;

use super::state::States;
use super::{check, check_lr, device_error, for_each_gradient, Flat, Optimizer, OptimizerState};
use crate::{NnError, Param};

/// Hyperparameters of [`Sgd`] (torch's `momentum`, `nesterov`, `weight_decay`; dampening 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl SgdConfig {
    /// The ranges `torch.optim.SGD` accepts: momentum >= 0, weight decay >= 0, and Nesterov
    /// only with a positive momentum.
    pub fn validate(&self) -> Result<(), NnError> {
        check("sgd", "momentum", self.momentum, |v| v >= 0.0, ">= 0")?;
        check(
            "sgd",
            "weight_decay",
            self.weight_decay,
            |v| v >= 0.0,
            ">= 0",
        )?;
        if self.nesterov && self.momentum <= 0.0 {
            return Err(NnError::Optimizer {
                optimizer: "sgd".into(),
                reason: "nesterov momentum requires momentum > 0".into(),
            });
        }
        Ok(())
    }
}

/// SGD, step `t` for parameter `p` with gradient `g` (torch's algorithm, dampening 0):
///
/// ```text
/// g ← g + wd·p
/// if μ ≠ 0:  b ← g (t = 1),  b ← μ·b + g (t > 1);   g ← g + μ·b (nesterov)  or  g ← b
/// p ← p − lr·g
/// ```
pub struct Sgd<D: Device<f32>> {
    cfg: SgdConfig,
    /// Momentum buffers `b`, one per parameter index (unused when μ = 0).
    buffers: States<Flat<D>>,
}

impl<D: Device<f32>> Sgd<D> {
    pub fn new(cfg: SgdConfig) -> Self {
        Self {
            cfg,
            buffers: States::default(),
        }
    }

    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }
}

impl<D: Device<f32>> Optimizer<D> for Sgd<D> {
    fn step(
        &mut self,
        params: &mut [Param<D>],
        grads: &Gradients<f32, D>,
        lr: f64,
    ) -> Result<(), NnError> {
        self.cfg.validate()?;
        check_lr("sgd", lr)?;
        let SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        } = self.cfg;
        let buffers = &mut self.buffers;
        for_each_gradient(params, grads, weight_decay, |index, p, g| {
            let direction = if momentum == 0.0 {
                g
            } else {
                let mut first = false;
                let numel = p.value.shape().0;
                let buf = buffers.get_or_try_init(index, &p.name, numel, || {
                    first = true;
                    Ok(g.clone())
                })?;
                if !first {
                    buf.try_axpy(momentum, &g, 1.0).map_err(device_error)?;
                }
                if nesterov {
                    let mut d = g;
                    d.try_axpy(1.0, &*buf, momentum).map_err(device_error)?;
                    d
                } else {
                    buf.clone()
                }
            };
            p.value.try_axpy(1.0, &direction, -lr).map_err(device_error)
        })
    }

    fn state(&self) -> OptimizerState {
        let mut out = OptimizerState::new("sgd");
        for (i, b) in self.buffers.iter() {
            out.put(i, "momentum_buffer", b);
        }
        out
    }

    fn set_state(&mut self, state: &OptimizerState, params: &[Param<D>]) -> Result<(), NnError> {
        state.expect("sgd")?;
        self.buffers
            .replace_with(state, params, |i| state.take(params, i, "momentum_buffer"))
    }
}
