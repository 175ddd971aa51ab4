//! The masking accuracy-drop curve of Ismail, Corrada Bravo, Feizi (2021, "Improving deep
//! learning interpretability by saliency guided training"), without retraining: for each p in
//! `percents`, the top round(p/100 * P) pixels by pixel score are replaced with the fill and
//! the accuracy (argmax f = y) on the masked images is measured. A steeper drop means the map
//! found the pixels the model uses. The random baseline ranks pixels by an independent uniform
//! score per example (a random order).
//!
//! Fills: a constant; the dataset's per-channel mean; or uniform in [min x, max x] of that image
//! (as in saliency-guided training), drawn once per batch, so that the masks of increasing p are
//! nested and use the same values.
use super::{count_of, feature_ranks, Env, MapBatch, Metric, RunInfo};
use crate::error::EngineError;
use crate::losses::argmax_rows;
use crate::ops::Mat;
use crate::results::ResultRow;
use crate::saliency::{check_batch, noise, SaliencyError};
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_ir::results::{MASKING_CURVE, MASKING_CURVE_RANDOM};
use salient_ir::Fill;
use salient_nn::{Mode, Network};

/// The fill value of every feature of the batch `x` (host, B x N, channels-last).
pub fn fill_values(
    x: &[f32],
    batch: usize,
    channels: usize,
    fill: Fill,
    channel_mean: &[f32],
    rng: &mut ChaCha8Rng,
) -> Result<Vec<f32>, SaliencyError> {
    let c = channels.max(1);
    Ok(match fill {
        Fill::Constant(v) => vec![v; x.len()],
        Fill::Mean => {
            if channel_mean.len() != c && channel_mean.len() != 1 {
                return Err(SaliencyError::Shape {
                    what: "mean fill".into(),
                    expected: format!("{c} channel mean(s)"),
                    got: format!("{}", channel_mean.len()),
                });
            }
            (0..x.len())
                .map(|i| {
                    if channel_mean.len() == 1 {
                        channel_mean[0]
                    } else {
                        channel_mean[i % c]
                    }
                })
                .collect()
        }
        Fill::Random => {
            let n = x.len().checked_div(batch).unwrap_or(0);
            let mut out = Vec::with_capacity(x.len());
            for row in x.chunks(n.max(1)) {
                let (lo, hi) = row
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                out.extend(noise::uniform(rng, row.len(), lo, hi));
            }
            out
        }
    })
}

/// Number of correctly classified examples of the batch after masking the top p% pixels, for
/// each p of `percents` (each in [0, 100]).
pub fn correct_counts<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    pixel: &[f32],
    channels: usize,
    percents: &[f64],
    fill: &Mat<D>,
) -> Result<Vec<usize>, SaliencyError> {
    check_batch(net, x, labels)?;
    let (b, n) = *x.shape();
    let c = channels.max(1);
    if pixel.len() * c != b * n {
        return Err(SaliencyError::Shape {
            what: "pixel scores".into(),
            expected: format!("{}", b * n / c),
            got: format!("{}", pixel.len()),
        });
    }
    if fill.shape() != x.shape() {
        return Err(SaliencyError::Shape {
            what: "fill".into(),
            expected: format!("{:?}", x.shape()),
            got: format!("{:?}", fill.shape()),
        });
    }
    if let Some(p) = percents.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(SaliencyError::param(format!(
            "masking curve: percent {p} is not in [0, 100]"
        )));
    }
    let classes = net.def().output.numel();
    let ranks = feature_ranks(x.device(), pixel, b, c);
    let mut out = Vec::with_capacity(percents.len());
    for &p in percents {
        let k = count_of(p / 100.0, n / c) as f32;
        let masked = ranks.lt(k).choose(fill.clone(), x.clone());
        let logits = net.forward(masked, Mode::Eval).as_vec();
        out.push(
            argmax_rows(&logits, classes)
                .iter()
                .zip(labels)
                .filter(|(a, y)| a == y)
                .count(),
        );
    }
    Ok(out)
}

/// The metric: accuracy after masking by the map (rows `masking_curve`) and by a random ranking
/// (rows `masking_curve_random`), `point` = percent masked.
#[derive(Debug)]
pub struct MaskingCurve {
    percents: Vec<f64>,
    fill: Fill,
    channel_mean: Vec<f32>,
    salient: Vec<usize>,
    random: Vec<usize>,
    total: usize,
}

impl MaskingCurve {
    pub fn new(percents: &[u32], fill: Fill, channel_mean: Vec<f32>) -> Self {
        MaskingCurve {
            percents: percents.iter().map(|&p| p as f64).collect(),
            fill,
            channel_mean,
            salient: vec![0; percents.len()],
            random: vec![0; percents.len()],
            total: 0,
        }
    }
}

impl<D: Device<f32>> Metric<D> for MaskingCurve {
    fn name(&self) -> &'static str {
        MASKING_CURVE
    }

    fn update(&mut self, env: &mut Env<'_, D>, b: &MapBatch<'_, D>) -> Result<(), EngineError> {
        let n = b.labels.len();
        let fills = fill_values(
            &b.x.as_vec(),
            n,
            b.channels,
            self.fill,
            &self.channel_mean,
            env.rng,
        )?;
        let fills = b.x.device().tensor_from_vec(fills, *b.x.shape());
        let hits = correct_counts(
            env.net,
            b.x,
            b.labels,
            b.pixel,
            b.channels,
            &self.percents,
            &fills,
        )?;
        self.salient.iter_mut().zip(hits).for_each(|(a, h)| *a += h);
        let shuffled = noise::uniform(env.rng, b.pixel.len(), 0.0, 1.0);
        let hits = correct_counts(
            env.net,
            b.x,
            b.labels,
            &shuffled,
            b.channels,
            &self.percents,
            &fills,
        )?;
        self.random.iter_mut().zip(hits).for_each(|(a, h)| *a += h);
        self.total += n;
        Ok(())
    }

    fn finish(
        &mut self,
        _: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError> {
        let t = self.total.max(1) as f64;
        let mut out = Vec::new();
        for ((&p, &h), &r) in self.percents.iter().zip(&self.salient).zip(&self.random) {
            out.push(super::point_row(info, MASKING_CURVE, p, h as f64 / t));
            out.push(super::point_row(
                info,
                MASKING_CURVE_RANDOM,
                p,
                r as f64 / t,
            ));
        }
        Ok(out)
    }
}
