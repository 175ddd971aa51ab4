//! Deletion and insertion (Petsiuk, Das, Saenko 2018, "RISE: Randomized input sampling for
//! explanation of black-box models").
//!
//! Pixels are ranked by decreasing pixel score. For t = 0..T (T = `steps`) the top
//! k_t = round(t P / T) pixels are
//! - deletion: set to the fill value (0, black, as Petsiuk et al.) in x;
//! - insertion: copied from x into an all-fill canvas (Petsiuk et al. start from a blurred
//!   image; we use the same constant canvas as deletion so that both curves share endpoints);
//!
//! and the true-class probability p_y = softmax(f(x_t))_y is recorded. The score is the area
//! under that curve over the fraction x_t = t / T in [0, 1] (trapezoid rule, [`super::trapezoid_auc`]):
//! a good map gives a low deletion AUC (the class dies fast) and a high insertion AUC.
use super::{count_of, feature_ranks, true_class_probs, Env, MapBatch, Metric, RunInfo};
use crate::error::EngineError;
use crate::ops::Mat;
use crate::results::ResultRow;
use crate::saliency::{check_batch, SaliencyError};
use dfdx::prelude::*;
use salient_ir::results::{DELETION, DELETION_CURVE, INSERTION, INSERTION_CURVE};
use salient_nn::{Mode, Network};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Deletion,
    Insertion,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Deletion => DELETION,
            Direction::Insertion => INSERTION,
        }
    }

    /// The metric name of the curve's rows.
    pub fn curve_name(self) -> &'static str {
        match self {
            Direction::Deletion => DELETION_CURVE,
            Direction::Insertion => INSERTION_CURVE,
        }
    }
}

/// The fractions t / T, t = 0..T, at which the curve is sampled.
pub fn fractions(steps: usize) -> Vec<f64> {
    (0..=steps).map(|t| t as f64 / steps as f64).collect()
}

/// Per-example curves (B rows of T + 1 probabilities) for the batch `x` with pixel scores
/// `pixel` (B x P, see [`super::pixel_scores`]).
#[allow(clippy::too_many_arguments)]
pub fn curves<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    pixel: &[f32],
    channels: usize,
    steps: usize,
    direction: Direction,
    fill: f32,
) -> Result<Vec<Vec<f64>>, SaliencyError> {
    check_batch(net, x, labels)?;
    if steps == 0 {
        return Err(SaliencyError::param(format!(
            "{}: steps must be at least 1",
            direction.name()
        )));
    }
    let (b, n) = *x.shape();
    let c = channels.max(1);
    if pixel.len() * c != b * n {
        return Err(SaliencyError::Shape {
            what: "pixel scores".into(),
            expected: format!("{}", b * n / c),
            got: format!("{}", pixel.len()),
        });
    }
    let p = n / c;
    let dev = x.device().clone();
    let ranks = feature_ranks(&dev, pixel, b, c);
    let canvas: Mat<D> = dev.ones_like(&(b, n)) * fill;
    let mut out = vec![Vec::with_capacity(steps + 1); b];
    for f in fractions(steps) {
        let k = count_of(f, p) as f32;
        let top = ranks.lt(k);
        let xt = match direction {
            Direction::Deletion => top.choose(canvas.clone(), x.clone()),
            Direction::Insertion => top.choose(x.clone(), canvas.clone()),
        };
        let probs = true_class_probs(net.forward(xt, Mode::Eval), labels);
        for (row, p) in out.iter_mut().zip(probs) {
            row.push(p);
        }
    }
    Ok(out)
}

/// Fill value of removed pixels (black, as Petsiuk et al.).
pub const FILL: f32 = 0.0;

/// The metric: the mean AUC (row `deletion` / `insertion`) and the mean curve (rows
/// `deletion_curve` / `insertion_curve`, `point` = fraction t / T).
#[derive(Debug)]
pub struct Curve {
    direction: Direction,
    steps: usize,
    sums: Vec<f64>,
    aucs: Vec<f64>,
}

impl Curve {
    pub fn new(direction: Direction, steps: usize) -> Self {
        Curve {
            direction,
            steps,
            sums: vec![0.0; steps + 1],
            aucs: Vec::new(),
        }
    }
}

impl<D: Device<f32>> Metric<D> for Curve {
    fn name(&self) -> &'static str {
        self.direction.name()
    }

    fn update(&mut self, env: &mut Env<'_, D>, b: &MapBatch<'_, D>) -> Result<(), EngineError> {
        let curves = curves(
            env.net,
            b.x,
            b.labels,
            b.pixel,
            b.channels,
            self.steps,
            self.direction,
            FILL,
        )?;
        for curve in curves {
            self.sums.iter_mut().zip(&curve).for_each(|(s, v)| *s += v);
            self.aucs.push(super::trapezoid_auc(&curve));
        }
        Ok(())
    }

    fn finish(
        &mut self,
        _: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError> {
        let mut out = vec![super::row(
            info,
            self.direction.name(),
            super::mean(&self.aucs),
        )];
        let count = self.aucs.len().max(1) as f64;
        for (f, s) in fractions(self.steps).into_iter().zip(&self.sums) {
            out.push(super::point_row(
                info,
                self.direction.curve_name(),
                f,
                s / count,
            ));
        }
        Ok(out)
    }
}
