//! Adadelta (`torch.optim.Adadelta`; Zeiler 2012, with torch's learning-rate factor).

use dfdx::prelude::*;

use super::state::States;
use super::{check, check_lr, device_error, for_each_gradient, Flat, Optimizer, OptimizerState};
use crate::{NnError, Param};

/// Hyperparameters of [`Adadelta`] (torch's `rho`, `eps`, `weight_decay`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdadeltaConfig {
    pub rho: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdadeltaConfig {
    /// The ranges `torch.optim.Adadelta` accepts: 0 <= rho <= 1, eps >= 0, weight decay >= 0.
    pub fn validate(&self) -> Result<(), NnError> {
        let rho = |v: f64| (0.0..=1.0).contains(&v);
        check("adadelta", "rho", self.rho, rho, "in [0, 1]")?;
        check("adadelta", "eps", self.eps, |v| v >= 0.0, ">= 0")?;
        check(
            "adadelta",
            "weight_decay",
            self.weight_decay,
            |v| v >= 0.0,
            ">= 0",
        )
    }
}

/// Per-parameter state: running averages of squared gradients `v` and squared updates `u`.
struct Accumulators<D: Device<f32>> {
    v: Flat<D>,
    u: Flat<D>,
}

/// Adadelta for parameter `p` with gradient `g`:
///
/// ```text
/// g ← g + wd·p
/// v ← ρ·v + (1 − ρ)·g²
/// Δ ← √(u + ε) / √(v + ε) · g
/// u ← ρ·u + (1 − ρ)·Δ²
/// p ← p − lr·Δ
/// ```
///
/// The learning rate scales the update as in torch (its default there is 1.0).
pub struct Adadelta<D: Device<f32>> {
    cfg: AdadeltaConfig,
    accumulators: States<Accumulators<D>>,
}

impl<D: Device<f32>> Adadelta<D> {
    pub fn new(cfg: AdadeltaConfig) -> Self {
        Self {
            cfg,
            accumulators: States::default(),
        }
    }

    pub fn config(&self) -> &AdadeltaConfig {
        &self.cfg
    }
}

impl<D: Device<f32>> Optimizer<D> for Adadelta<D> {
    fn step(
        &mut self,
        params: &mut [Param<D>],
        grads: &Gradients<f32, D>,
        lr: f64,
    ) -> Result<(), NnError> {
        self.cfg.validate()?;
        check_lr("adadelta", lr)?;
        let AdadeltaConfig {
            rho,
            eps,
            weight_decay,
        } = self.cfg;
        let accumulators = &mut self.accumulators;
        for_each_gradient(params, grads, weight_decay, |index, p, g| {
            let numel = p.value.shape().0;
            let s = accumulators.get_or_try_init(index, &p.name, numel, || {
                let dev = p.value.device();
                Ok(Accumulators {
                    v: dev.try_zeros_like(&(numel,)).map_err(device_error)?,
                    u: dev.try_zeros_like(&(numel,)).map_err(device_error)?,
                })
            })?;
            let g2 = g.clone().try_square().map_err(device_error)?;
            s.v.try_axpy(rho, &g2, 1.0 - rho).map_err(device_error)?;
            let std =
                s.v.clone()
                    .try_add(eps as f32)
                    .and_then(|x| x.try_sqrt())
                    .map_err(device_error)?;
            let delta =
                s.u.clone()
                    .try_add(eps as f32)
                    .and_then(|x| x.try_sqrt())
                    .and_then(|x| x.try_div(std))
                    .and_then(|x| x.try_mul(g))
                    .map_err(device_error)?;
            let delta2 = delta.clone().try_square().map_err(device_error)?;
            s.u.try_axpy(rho, &delta2, 1.0 - rho)
                .map_err(device_error)?;
            p.value.try_axpy(1.0, &delta, -lr).map_err(device_error)
        })
    }

    fn state(&self) -> OptimizerState {
        let mut out = OptimizerState::new("adadelta");
        for (i, a) in self.accumulators.iter() {
            out.put(i, "square_avg", &a.v);
            out.put(i, "acc_delta", &a.u);
        }
        out
    }

    fn set_state(&mut self, state: &OptimizerState, params: &[Param<D>]) -> Result<(), NnError> {
        state.expect("adadelta")?;
        self.accumulators.replace_with(state, params, |i| {
            Ok(Accumulators {
                v: state.take(params, i, "square_avg")?,
                u: state.take(params, i, "acc_delta")?,
            })
        })
    }
}
