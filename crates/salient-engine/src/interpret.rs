//! The interpretability evaluation of one trained run: every saliency method of the experiment
//! on the first `eval.saliency_samples` test examples (batches of `eval.batch`), every saliency
//! metric of `exp.metrics` on its maps, as tidy [`ResultRow`]s, plus the maps of the first
//! `report.images` test images saved as NPY files for the report.
//!
//! Rows (all with `saliency = Some(method name)`):
//!
//! | metric | point | value |
//! |---|---|---|
//! | `sparseness`, `complexity`, `alignment` | | mean over examples |
//! | `deletion`, `insertion` | | mean AUC |
//! | `deletion_curve`, `insertion_curve` | fraction t/T | mean p_y |
//! | `masking_curve`, `masking_curve_random` | percent p | accuracy |
//! | `max_sensitivity` | | mean over examples with a non-zero map |
//! | `randomization` | index of the layer just re-initialised (cascade, top down) | mean Spearman rho |
//! | `saliency_seconds` | | wall time of the maps alone on the evaluated examples |
//!
//! Files in `maps_dir`: `<method>.npy` (images, H, W, C) float32 maps as the method produces
//! them (signed where the method is signed); `images.npy` (images, H, W, C) float32 pixels in
//! [0, 1]; `labels.npy` (images,) int64.
//!
//! Saliency is taken of log p_y of the true label, network in eval mode (see `saliency`).
//! Random draws are seeded from `eval.seed` (per method and per metric), so a run is repeatable.
use crate::error::EngineError;
use crate::metrics::{self, deletion::Direction};
use crate::ops::Mat;
use crate::results::ResultRow;
use crate::saliency::{self, npy, Objective, Saliency, SaliencyContext, SaliencyError};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_data::{Dataset, Splits};
use salient_ir::{Experiment, MetricSpec, TrainRun};
use salient_nn::Network;
use std::path::Path;
use std::time::Instant;

/// Compute the saliency rows of `run` (see the module doc) and save its maps in `maps_dir`.
pub fn interpret_rows<D: Device<f32>>(
    net: &mut Network<D>,
    exp: &Experiment,
    data: &Splits,
    run: &TrainRun,
    maps_dir: &Path,
) -> Result<Vec<ResultRow>, EngineError> {
    if exp.saliency.is_empty() {
        return Ok(Vec::new());
    }
    let test = &data.test;
    let want = net.def().input.numel();
    if test.image_len() != want {
        return Err(SaliencyError::Shape {
            what: format!("test images for model `{}`", net.def().name),
            expected: format!("{want} features"),
            got: format!("{}", test.image_len()),
        }
        .into());
    }
    let n = exp.eval.saliency_samples.min(test.len());
    if n == 0 {
        return Err(SaliencyError::param("no test examples to compute saliency maps on (eval.saliency_samples or the test set is empty)").into());
    }
    let batch = exp.eval.batch.max(1);
    let channel_mean = data.train.channel_mean();
    let images = exp.report.images.min(test.len());
    std::fs::create_dir_all(maps_dir).map_err(|e| EngineError::io(maps_dir, e))?;
    if images > 0 {
        save_images(test, images, maps_dir)?;
    }
    let mut rows = Vec::new();
    for (mi, spec) in exp.saliency.iter().enumerate() {
        let ctx = SaliencyContext {
            objective: Objective::LogProb,
            channel_mean: channel_mean.clone(),
            seed: derive_seed(exp.eval.seed, 1, mi),
        };
        let mut method = saliency::build::<D>(&spec.method, &ctx)?;
        let mut acc = Accumulator::new(
            &exp.metrics,
            derive_seed(exp.eval.seed, 2, mi),
            channel_mean.clone(),
            test.shape.c,
        );
        let mut map_seconds = 0.0;
        let all: Vec<usize> = (0..n).collect();
        for idx in all.chunks(batch) {
            let (x, labels) = batch_of(net.device(), test, idx);
            let started = Instant::now();
            let s = method.map(net, &x, &labels)?;
            map_seconds += started.elapsed().as_secs_f64();
            acc.add(method.as_mut(), net, &x, &labels, &s, exp.eval.seed)?;
            drop((x, s));
            crate::train::trim_cache(net.device());
        }
        if images > 0 {
            let idx: Vec<usize> = (0..images).collect();
            let mut maps = Vec::with_capacity(images * test.image_len());
            for chunk in idx.chunks(batch) {
                let (x, labels) = batch_of(net.device(), test, chunk);
                maps.extend(method.map(net, &x, &labels)?.as_vec());
            }
            let path = maps_dir.join(format!("{}.npy", spec.name));
            let s = test.shape;
            npy::write(&path, &maps, &[images, s.h, s.w, s.c])
                .map_err(|e| EngineError::io(&path, e))?;
        }
        let mut out = acc.rows(run);
        out.push(ResultRow::new(run, "saliency_seconds", map_seconds));
        for r in &mut out {
            r.saliency = Some(spec.name.clone());
        }
        rows.extend(out);
    }
    Ok(rows)
}

/// A distinct seed per purpose and method from the experiment's evaluation seed.
fn derive_seed(seed: u64, purpose: u64, index: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (purpose << 48)
        ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

fn batch_of<D: Device<f32>>(dev: &D, data: &Dataset, idx: &[usize]) -> (Mat<D>, Vec<usize>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    data.gather(idx, &mut xs, &mut ys);
    (dev.tensor_from_vec(xs, (idx.len(), data.image_len())), ys)
}

fn save_images(test: &Dataset, images: usize, dir: &Path) -> Result<(), EngineError> {
    let s = test.shape;
    let path = dir.join("images.npy");
    npy::write(
        &path,
        &test.images[..images * test.image_len()],
        &[images, s.h, s.w, s.c],
    )
    .map_err(|e| EngineError::io(&path, e))?;
    let labels: Vec<i64> = test.labels[..images].iter().map(|&l| l as i64).collect();
    let path = dir.join("labels.npy");
    npy::write(&path, &labels, &[images]).map_err(|e| EngineError::io(&path, e))
}

/// Fill value of removed pixels for deletion and insertion (black, as Petsiuk et al.).
const DELETION_FILL: f32 = 0.0;

/// Per-metric running sums over the batches of one method.
enum Acc {
    Sparseness(Vec<f64>),
    Complexity(Vec<f64>),
    Alignment(Vec<f64>),
    Curve {
        direction: Direction,
        steps: usize,
        sums: Vec<f64>,
        aucs: Vec<f64>,
    },
    Masking {
        percents: Vec<f64>,
        fill: salient_ir::Fill,
        salient: Vec<usize>,
        random: Vec<usize>,
        total: usize,
    },
    MaxSensitivity {
        radius: f64,
        samples: usize,
        values: Vec<f64>,
    },
    /// (layer index, per-example rho) in cascade order.
    Randomization(Vec<(usize, Vec<f64>)>),
}

struct Accumulator {
    accs: Vec<Acc>,
    rng: ChaCha8Rng,
    channel_mean: Vec<f32>,
    channels: usize,
}

impl Accumulator {
    fn new(specs: &[MetricSpec], seed: u64, channel_mean: Vec<f32>, channels: usize) -> Self {
        let accs = specs
            .iter()
            .filter_map(|m| match m {
                MetricSpec::CleanAccuracy | MetricSpec::RobustAccuracy => None,
                MetricSpec::Sparseness => Some(Acc::Sparseness(Vec::new())),
                MetricSpec::Complexity => Some(Acc::Complexity(Vec::new())),
                MetricSpec::Alignment => Some(Acc::Alignment(Vec::new())),
                MetricSpec::Deletion { steps } => Some(Acc::Curve {
                    direction: Direction::Deletion,
                    steps: *steps,
                    sums: vec![0.0; steps + 1],
                    aucs: Vec::new(),
                }),
                MetricSpec::Insertion { steps } => Some(Acc::Curve {
                    direction: Direction::Insertion,
                    steps: *steps,
                    sums: vec![0.0; steps + 1],
                    aucs: Vec::new(),
                }),
                MetricSpec::MaskingCurve { percents, fill } => Some(Acc::Masking {
                    percents: percents.iter().map(|&p| p as f64).collect(),
                    fill: *fill,
                    salient: vec![0; percents.len()],
                    random: vec![0; percents.len()],
                    total: 0,
                }),
                MetricSpec::MaxSensitivity { radius, samples } => Some(Acc::MaxSensitivity {
                    radius: *radius,
                    samples: *samples,
                    values: Vec::new(),
                }),
                MetricSpec::Randomization => Some(Acc::Randomization(Vec::new())),
            })
            .collect();
        Accumulator {
            accs,
            rng: ChaCha8Rng::seed_from_u64(seed),
            channel_mean,
            channels: channels.max(1),
        }
    }

    fn add<D: Device<f32>>(
        &mut self,
        method: &mut dyn Saliency<D>,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        s: &Mat<D>,
        seed: u64,
    ) -> Result<(), SaliencyError> {
        let b = labels.len();
        let c = self.channels;
        let pixel = metrics::pixel_scores(&s.as_vec(), b, c);
        for acc in &mut self.accs {
            match acc {
                Acc::Sparseness(v) => v.extend(metrics::sparseness::per_example(&pixel, b)),
                Acc::Complexity(v) => v.extend(metrics::complexity::per_example(&pixel, b)),
                Acc::Alignment(v) => v.extend(metrics::alignment::per_example(x, s)),
                Acc::Curve {
                    direction,
                    steps,
                    sums,
                    aucs,
                } => {
                    let curves = metrics::deletion::curves(
                        net,
                        x,
                        labels,
                        &pixel,
                        c,
                        *steps,
                        *direction,
                        DELETION_FILL,
                    )?;
                    for curve in curves {
                        sums.iter_mut().zip(&curve).for_each(|(s, v)| *s += v);
                        aucs.push(metrics::trapezoid_auc(&curve));
                    }
                }
                Acc::Masking {
                    percents,
                    fill,
                    salient,
                    random,
                    total,
                } => {
                    let xs = x.as_vec();
                    let fills = metrics::masking::fill_values(
                        &xs,
                        b,
                        c,
                        *fill,
                        &self.channel_mean,
                        &mut self.rng,
                    )?;
                    let fills = x.device().tensor_from_vec(fills, *x.shape());
                    let hits = metrics::masking::correct_counts(
                        net, x, labels, &pixel, c, percents, &fills,
                    )?;
                    salient.iter_mut().zip(hits).for_each(|(a, h)| *a += h);
                    let shuffled = saliency::noise::uniform(&mut self.rng, pixel.len(), 0.0, 1.0);
                    let hits = metrics::masking::correct_counts(
                        net, x, labels, &shuffled, c, percents, &fills,
                    )?;
                    random.iter_mut().zip(hits).for_each(|(a, h)| *a += h);
                    *total += b;
                }
                Acc::MaxSensitivity {
                    radius,
                    samples,
                    values,
                } => {
                    let v = metrics::max_sensitivity::per_example(
                        method,
                        net,
                        x,
                        labels,
                        s,
                        *radius,
                        *samples,
                        &mut self.rng,
                    )?;
                    values.extend(v.into_iter().flatten());
                }
                Acc::Randomization(layers) => {
                    let steps = metrics::randomization::cascade(method, net, x, labels, s, seed)?;
                    for step in steps {
                        match layers.iter_mut().find(|(l, _)| *l == step.layer) {
                            Some((_, v)) => v.extend(step.similarity),
                            None => layers.push((step.layer, step.similarity)),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn rows(&self, run: &TrainRun) -> Vec<ResultRow> {
        let mut out = Vec::new();
        let point = |metric: &str, p: f64, value: f64| {
            let mut r = ResultRow::new(run, metric, value);
            r.point = Some(p);
            r
        };
        for acc in &self.accs {
            match acc {
                Acc::Sparseness(v) => out.push(ResultRow::new(run, "sparseness", metrics::mean(v))),
                Acc::Complexity(v) => out.push(ResultRow::new(run, "complexity", metrics::mean(v))),
                Acc::Alignment(v) => out.push(ResultRow::new(run, "alignment", metrics::mean(v))),
                Acc::Curve {
                    direction,
                    steps,
                    sums,
                    aucs,
                } => {
                    let name = direction.name();
                    out.push(ResultRow::new(run, name, metrics::mean(aucs)));
                    let count = aucs.len().max(1) as f64;
                    for (f, s) in metrics::deletion::fractions(*steps).into_iter().zip(sums) {
                        out.push(point(&format!("{name}_curve"), f, s / count));
                    }
                }
                Acc::Masking {
                    percents,
                    salient,
                    random,
                    total,
                    ..
                } => {
                    let t = (*total).max(1) as f64;
                    for ((&p, &h), &r) in percents.iter().zip(salient).zip(random) {
                        out.push(point("masking_curve", p, h as f64 / t));
                        out.push(point("masking_curve_random", p, r as f64 / t));
                    }
                }
                Acc::MaxSensitivity { values, .. } => {
                    if !values.is_empty() {
                        out.push(ResultRow::new(
                            run,
                            "max_sensitivity",
                            metrics::mean(values),
                        ));
                    }
                }
                Acc::Randomization(layers) => {
                    for (layer, v) in layers {
                        out.push(point("randomization", *layer as f64, metrics::mean(v)));
                    }
                }
            }
        }
        out
    }
}
