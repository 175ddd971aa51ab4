//! Interpretability metrics of saliency maps (formulas and sources in `docs/metrics.md`).
//!
//! Every metric is one file here with one type implementing [`Metric`] (the shape of
//! burn-train's `Metric`): the type owns its running state, [`Metric::update`] adds one batch of
//! maps, [`Metric::finish`] turns the state into tidy rows named by the constants of
//! `salient_ir::results`. [`build`] makes the metric a `MetricSpec` asks for; `interpret.rs`
//! keeps only the loop over saliency methods and batches. Adding a metric = a `MetricSpec`
//! variant, its file here, its arm in [`build`] (the compiler asks for it), the checker's
//! `MetricKind`, docs and a known-answer test.
//!
//! Conventions shared by every metric:
//! - maps and inputs are (B, N) rows, channels-last, N = H*W*C;
//! - metrics that rank or weigh *pixels* use the pixel score `s_p = sum_c |S_{p,c}|` (one value
//!   per spatial position; equal to |S| for one channel), see [`pixel_scores`];
//! - removing or inserting a pixel sets all of its channels;
//! - per-example values are averaged over the evaluated examples.
//!
//! The pure per-example arithmetic is host code (sorting, small sums); every forward pass and
//! per-step masking runs on the device. ROAR and KAR ([`roar`]) do their work in `finish`: they
//! compute maps on the whole training and test sets and retrain.
pub mod alignment;
pub mod complexity;
pub mod connectedness;
pub mod deletion;
pub mod masking;
pub mod max_sensitivity;
pub mod randomization;
pub mod roar;
pub mod sparseness;

use crate::error::EngineError;
use crate::ops::Mat;
use crate::results::ResultRow;
use crate::saliency::Saliency;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_data::Splits;
use salient_ir::{Experiment, MetricSpec, SaliencySpec, TrainRun};
use salient_nn::Network;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// One batch of maps of the evaluated test examples.
pub struct MapBatch<'a, D: Device<f32>> {
    /// The raw [0, 1] inputs, (B, N).
    pub x: &'a Mat<D>,
    pub labels: &'a [usize],
    /// The method's maps as it produces them (signed where it is signed), (B, N).
    pub maps: &'a Mat<D>,
    /// The pixel scores of the maps, (B, P) row-major ([`pixel_scores`]).
    pub pixel: &'a [f32],
    /// Channels per pixel (N = P * channels).
    pub channels: usize,
}

/// What a metric may use besides the maps: the network, the saliency method and the generator
/// the metrics of one method share (seeded from `eval.seed`, so a run is repeatable).
pub struct Env<'a, D: Device<f32>> {
    pub net: &'a mut Network<D>,
    pub method: &'a mut dyn Saliency<D>,
    pub rng: &'a mut ChaCha8Rng,
}

/// The run and saliency method being measured, for the rows and for the metrics that need
/// more than the evaluated examples (ROAR and KAR: the whole data, training settings, a cache).
pub struct RunInfo<'a> {
    pub exp: &'a Experiment,
    pub run: &'a TrainRun,
    pub data: &'a Splits,
    pub method: &'a SaliencySpec,
    /// The experiment's output folder (`<out>`; retrained models go under `<out>/retrain/`).
    pub out_dir: &'a Path,
    /// Ctrl-C: long metrics stop with [`EngineError::Interrupted`] when it is set.
    pub interrupt: &'a AtomicBool,
    /// No progress bars.
    pub quiet: bool,
}

/// One interpretability metric of one saliency method on one run.
pub trait Metric<D: Device<f32>> {
    /// The metric's name (its `MetricSpec::name`).
    fn name(&self) -> &'static str;
    /// Add one batch of maps of the evaluated test examples.
    fn update(&mut self, env: &mut Env<'_, D>, batch: &MapBatch<'_, D>) -> Result<(), EngineError>;
    /// The metric's rows after the last batch (the caller fills in the saliency method).
    fn finish(
        &mut self,
        env: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError>;
}

/// What building a metric needs besides its IR parameters.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// Per-channel mean pixel of the training set (mean fills).
    pub channel_mean: Vec<f32>,
    /// Channels per pixel.
    pub channels: usize,
    /// Height and width of the maps' pixel grid.
    pub height: usize,
    pub width: usize,
    /// The experiment's `eval.seed`.
    pub eval_seed: u64,
}

/// The metric `spec` asks for; `None` for the metrics of a whole model (clean and robust
/// accuracy), which are not saliency metrics.
pub fn build<D: Device<f32>>(spec: &MetricSpec, ctx: &BuildContext) -> Option<Box<dyn Metric<D>>> {
    Some(match spec {
        MetricSpec::CleanAccuracy | MetricSpec::RobustAccuracy => return None,
        MetricSpec::Sparseness => Box::new(sparseness::metric::<D>()),
        MetricSpec::Complexity => Box::new(complexity::metric::<D>()),
        MetricSpec::Alignment => Box::new(alignment::metric::<D>()),
        MetricSpec::Deletion { steps } => {
            Box::new(deletion::Curve::new(deletion::Direction::Deletion, *steps))
        }
        MetricSpec::Insertion { steps } => {
            Box::new(deletion::Curve::new(deletion::Direction::Insertion, *steps))
        }
        MetricSpec::MaskingCurve { percents, fill } => Box::new(masking::MaskingCurve::new(
            percents,
            *fill,
            ctx.channel_mean.clone(),
        )),
        MetricSpec::MaxSensitivity { radius, samples } => {
            Box::new(max_sensitivity::MaxSensitivity::new(*radius, *samples))
        }
        MetricSpec::Randomization => Box::new(randomization::Randomization::new(ctx.eval_seed)),
        MetricSpec::Connectedness { top } => Box::new(connectedness::Connectedness::new(
            *top, ctx.height, ctx.width,
        )),
        MetricSpec::Roar(r) => Box::new(roar::Retrain::new(roar::Mode::Roar, r.clone())),
        MetricSpec::Kar(r) => Box::new(roar::Retrain::new(roar::Mode::Kar, r.clone())),
    })
}

/// A metric whose row is the mean of one value per evaluated example (sparseness, complexity,
/// alignment, connectedness): its name and the function giving a batch's values.
pub struct MeanOverExamples<D: Device<f32>> {
    name: &'static str,
    values: Vec<f64>,
    per_example: fn(&MapBatch<'_, D>) -> Vec<f64>,
}

impl<D: Device<f32>> MeanOverExamples<D> {
    pub fn new(name: &'static str, per_example: fn(&MapBatch<'_, D>) -> Vec<f64>) -> Self {
        MeanOverExamples {
            name,
            values: Vec::new(),
            per_example,
        }
    }
}

impl<D: Device<f32>> Metric<D> for MeanOverExamples<D> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn update(&mut self, _: &mut Env<'_, D>, b: &MapBatch<'_, D>) -> Result<(), EngineError> {
        self.values.extend((self.per_example)(b));
        Ok(())
    }

    fn finish(
        &mut self,
        _: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError> {
        Ok(vec![row(info, self.name, mean(&self.values))])
    }
}

/// A row of `metric` with `value` for the run of `info`.
pub fn row(info: &RunInfo<'_>, metric: &str, value: f64) -> ResultRow {
    ResultRow::new(info.run, metric, value)
}

/// A row of `metric` with the mean of `values`, or no row when there are none (every evaluated
/// map was all zero).
pub fn mean_row_if_any(info: &RunInfo<'_>, metric: &str, values: &[f64]) -> Vec<ResultRow> {
    match values.is_empty() {
        true => Vec::new(),
        false => vec![row(info, metric, mean(values))],
    }
}

/// A curve row: `metric` at abscissa `point`.
pub fn point_row(info: &RunInfo<'_>, metric: &str, point: f64, value: f64) -> ResultRow {
    let mut r = ResultRow::new(info.run, metric, value);
    r.point = Some(point);
    r
}

/// Per-pixel scores `sum_c |S_{p,c}|` of each example: (B, P) with P = N / channels, row-major.
pub fn pixel_scores(map: &[f32], batch: usize, channels: usize) -> Vec<f32> {
    let c = channels.max(1);
    let n = map.len().checked_div(batch).unwrap_or(0);
    let p = n / c;
    let mut out = Vec::with_capacity(batch * p);
    for b in 0..batch {
        let row = &map[b * n..(b + 1) * n];
        out.extend(
            row.chunks_exact(c)
                .map(|px| px.iter().map(|v| v.abs()).sum::<f32>()),
        );
    }
    out
}

/// Indices of `scores` in decreasing order; ties keep the lower index first (deterministic).
pub fn order_desc(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// For each example, the rank (0 = most salient) of every *feature*: the rank of its pixel in
/// decreasing pixel score, repeated over the pixel's channels. (B, N) on `dev`, as f32 (exact
/// for fewer than 2^24 pixels). Masking the top k pixels is then `rank < k` on the device.
pub fn feature_ranks<D: Device<f32>>(
    dev: &D,
    pixel: &[f32],
    batch: usize,
    channels: usize,
) -> Mat<D> {
    let c = channels.max(1);
    let p = pixel.len().checked_div(batch).unwrap_or(0);
    let mut ranks = vec![0f32; batch * p * c];
    for b in 0..batch {
        let order = order_desc(&pixel[b * p..(b + 1) * p]);
        for (r, &pos) in order.iter().enumerate() {
            for ch in 0..c {
                ranks[(b * p + pos) * c + ch] = r as f32;
            }
        }
    }
    dev.tensor_from_vec(ranks, (batch, p * c))
}

/// Number of pixels of `total` in a fraction `f` in [0, 1] (rounded to nearest).
pub fn count_of(fraction: f64, total: usize) -> usize {
    ((fraction.clamp(0.0, 1.0) * total as f64).round() as usize).min(total)
}

/// Area under a curve sampled at equally spaced x = 0, 1/T, ..., 1 (trapezoid rule):
/// `sum_{t=1..T} (y_{t-1} + y_t) / (2T)`. 0 for fewer than 2 points.
pub fn trapezoid_auc(y: &[f64]) -> f64 {
    if y.len() < 2 {
        return 0.0;
    }
    let t = (y.len() - 1) as f64;
    y.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / t
}

/// Mean of the values (0 for none).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// True-class probabilities softmax(z)_y of a batch (host).
pub fn true_class_probs<D: Device<f32>>(logits: Mat<D>, labels: &[usize]) -> Vec<f64> {
    let classes = logits.shape().1;
    let p = logits.softmax::<Axis<1>>().as_vec();
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| p[i * classes + y] as f64)
        .collect()
}
