//! Max-sensitivity (Yeh, Hsieh, Suggala, Inouye, Ravikumar 2019, "On the (in)fidelity and
//! sensitivity of explanations"), estimated by Monte Carlo as in their code and Quantus:
//!
//!   SENS_max(S, x) = max_{s = 1..n} ||S(x + d_s) - S(x)||_2 / ||S(x)||_2,
//!   d_s ~ U([-r, r]^N)  (the Linf ball of radius r, pixel units; x + d_s is not clipped),
//!
//! keeping the true label y for S(x + d_s). Examples whose map S(x) is all zero have no
//! relative sensitivity and are left out (`None`). For a stochastic method (SmoothGrad, a
//! uniform baseline) the method's own noise adds to the value.
use super::{Env, MapBatch, Metric, RunInfo};
use crate::error::EngineError;
use crate::ops::{row_norms, Mat};
use crate::results::ResultRow;
use crate::saliency::{check_batch, noise::uniform_like, Saliency, SaliencyError};
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_ir::results::MAX_SENSITIVITY;
use salient_nn::Network;

/// Per-example max-sensitivity of `method` at `x`, given its map `s` = S(x).
#[allow(clippy::too_many_arguments)]
pub fn per_example<D: Device<f32>>(
    method: &mut dyn Saliency<D>,
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    s: &Mat<D>,
    radius: f64,
    samples: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Option<f64>>, SaliencyError> {
    check_batch(net, x, labels)?;
    if !(radius.is_finite() && radius > 0.0) {
        return Err(SaliencyError::param(format!(
            "max-sensitivity: radius must be > 0, got {radius}"
        )));
    }
    if samples == 0 {
        return Err(SaliencyError::param(
            "max-sensitivity: samples must be at least 1",
        ));
    }
    if s.shape() != x.shape() {
        return Err(SaliencyError::Shape {
            what: "saliency map".into(),
            expected: format!("{:?}", x.shape()),
            got: format!("{:?}", s.shape()),
        });
    }
    let shape = *x.shape();
    let dev = x.device().clone();
    let base = row_norms(s).as_vec();
    let mut worst = vec![0f64; shape.0];
    let r = radius as f32;
    for _ in 0..samples {
        let d = uniform_like(&dev, rng, shape, -r, r);
        let sd = method.map(net, &(x.clone() + d), labels)?;
        let diff = row_norms(&(sd - s.clone())).as_vec();
        for (w, &v) in worst.iter_mut().zip(&diff) {
            *w = w.max(v as f64);
        }
    }
    Ok(worst
        .iter()
        .zip(&base)
        .map(|(&w, &b)| (b > 0.0).then(|| w / b as f64))
        .collect())
}

/// The metric: the mean max-sensitivity over the examples with a non-zero map (row
/// `max_sensitivity`; no row when every map was zero).
#[derive(Debug)]
pub struct MaxSensitivity {
    radius: f64,
    samples: usize,
    values: Vec<f64>,
}

impl MaxSensitivity {
    pub fn new(radius: f64, samples: usize) -> Self {
        MaxSensitivity {
            radius,
            samples,
            values: Vec::new(),
        }
    }
}

impl<D: Device<f32>> Metric<D> for MaxSensitivity {
    fn name(&self) -> &'static str {
        MAX_SENSITIVITY
    }

    fn update(&mut self, env: &mut Env<'_, D>, b: &MapBatch<'_, D>) -> Result<(), EngineError> {
        let v = per_example(
            env.method,
            env.net,
            b.x,
            b.labels,
            b.maps,
            self.radius,
            self.samples,
            env.rng,
        )?;
        self.values.extend(v.into_iter().flatten());
        Ok(())
    }

    fn finish(
        &mut self,
        _: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError> {
        Ok(super::mean_row_if_any(info, MAX_SENSITIVITY, &self.values))
    }
}
