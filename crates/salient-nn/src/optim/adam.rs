//! Adam with bias correction (`torch.optim.Adam`, `amsgrad = False`).

use dfdx::prelude::*;

use super::state::States;
use super::{check, check_lr, device_error, for_each_gradient, Flat, Optimizer, OptimizerState};
use crate::{NnError, Param};

/// Hyperparameters of [`Adam`] (torch's `betas = (beta1, beta2)`, `eps`, `weight_decay`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    /// The ranges `torch.optim.Adam` accepts: 0 <= beta < 1, eps >= 0, weight decay >= 0.
    pub fn validate(&self) -> Result<(), NnError> {
        let beta = |v: f64| (0.0..1.0).contains(&v);
        check("adam", "beta1", self.beta1, beta, "in [0, 1)")?;
        check("adam", "beta2", self.beta2, beta, "in [0, 1)")?;
        check("adam", "eps", self.eps, |v| v >= 0.0, ">= 0")?;
        check(
            "adam",
            "weight_decay",
            self.weight_decay,
            |v| v >= 0.0,
            ">= 0",
        )
    }
}

/// Per-parameter state: step count `t` and the moment estimates `m`, `v`.
struct Moments<D: Device<f32>> {
    t: u64,
    m: Flat<D>,
    v: Flat<D>,
}

/// Adam, step `t` (counted per parameter, from 1) for parameter `p` with gradient `g`:
///
/// ```text
/// g ← g + wd·p
/// m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
/// p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
/// ```
///
/// i.e. `p − lr·m̂/(√v̂ + ε)` with `m̂ = m/(1 − β1^t)`, `v̂ = v/(1 − β2^t)`, written as torch
/// computes it (ε added after dividing `√v` by `√(1 − β2^t)`).
pub struct Adam<D: Device<f32>> {
    cfg: AdamConfig,
    moments: States<Moments<D>>,
}

impl<D: Device<f32>> Adam<D> {
    pub fn new(cfg: AdamConfig) -> Self {
        Self {
            cfg,
            moments: States::default(),
        }
    }

    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }
}

impl<D: Device<f32>> Optimizer<D> for Adam<D> {
    fn step(
        &mut self,
        params: &mut [Param<D>],
        grads: &Gradients<f32, D>,
        lr: f64,
    ) -> Result<(), NnError> {
        self.cfg.validate()?;
        check_lr("adam", lr)?;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let moments = &mut self.moments;
        for_each_gradient(params, grads, weight_decay, |index, p, g| {
            let numel = p.value.shape().0;
            let s = moments.get_or_try_init(index, &p.name, numel, || {
                let dev = p.value.device();
                Ok(Moments {
                    t: 0,
                    m: dev.try_zeros_like(&(numel,)).map_err(device_error)?,
                    v: dev.try_zeros_like(&(numel,)).map_err(device_error)?,
                })
            })?;
            s.t += 1;
            // Exponents beyond i32 only arise after 2^31 steps, where β^t is 0 anyway.
            let t = i32::try_from(s.t).unwrap_or(i32::MAX);
            let bias1 = 1.0 - beta1.powi(t);
            let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();

            let g2 = g.clone().try_square().map_err(device_error)?;
            s.m.try_axpy(beta1, &g, 1.0 - beta1).map_err(device_error)?;
            s.v.try_axpy(beta2, &g2, 1.0 - beta2)
                .map_err(device_error)?;
            let denom =
                s.v.clone()
                    .try_sqrt()
                    .and_then(|x| x.try_div(bias2_sqrt as f32))
                    .and_then(|x| x.try_add(eps as f32))
                    .map_err(device_error)?;
            let update = s.m.clone().try_div(denom).map_err(device_error)?;
            p.value
                .try_axpy(1.0, &update, -lr / bias1)
                .map_err(device_error)
        })
    }

    fn state(&self) -> OptimizerState {
        let mut out = OptimizerState::new("adam");
        for (i, s) in self.moments.iter() {
            out.put(i, "m", &s.m);
            out.put(i, "v", &s.v);
            out.counters.insert(format!("{i}.step"), s.t);
        }
        out
    }

    fn set_state(&mut self, state: &OptimizerState, params: &[Param<D>]) -> Result<(), NnError> {
        state.expect("adam")?;
        self.moments.replace_with(state, params, |i| {
            Ok(Moments {
                t: state.counter(i, "step")?,
                m: state.take(params, i, "m")?,
                v: state.take(params, i, "v")?,
            })
        })
    }
}
