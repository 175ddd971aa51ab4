//! The interpretability evaluation of one trained run: every saliency method of the experiment
//! on the first `eval.saliency_samples` test examples (batches of `eval.batch`), every saliency
//! metric of `exp.metrics` on its maps, as tidy [`ResultRow`]s, plus the maps of the first
//! `report.images` test images saved as NPY files for the report.
//!
//! This file keeps only the loop over methods and batches: each metric is a
//! [`metrics::Metric`] in its own file of `metrics/` that owns its state and its rows (the row
//! names are the constants of `salient_ir::results`; `docs/metrics.md` lists them). Every row
//! gets `saliency = Some(method name)`; the loop adds `saliency_seconds`, the wall time of the
//! maps alone on the evaluated examples.
//!
//! Files in `maps_dir`: `<method>.npy` (images, H, W, C) float32 maps as the method produces
//! them (signed where the method is signed); `images.npy` (images, H, W, C) float32 pixels in
//! [0, 1]; `labels.npy` (images,) int64.
//!
//! Saliency is taken of log p_y of the true label, network in eval mode (see `saliency`).
//! Random draws are seeded from `eval.seed` (per method and per metric), so a run is repeatable.
use crate::error::EngineError;
use crate::metrics::{self, BuildContext, Env, MapBatch, RunInfo};
use crate::ops::Mat;
use crate::results::ResultRow;
use crate::saliency::{self, npy, Objective, SaliencyContext, SaliencyError};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_data::{Dataset, Splits};
use salient_ir::results::SALIENCY_SECONDS;
use salient_ir::{Experiment, TrainRun};
use salient_nn::Network;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Where `interpret_rows` writes and what stops it.
pub struct InterpretOptions<'a> {
    /// The folder for the run's maps (`<out>/maps/<run id>`).
    pub maps_dir: &'a Path,
    /// The experiment's output folder (metrics that retrain cache their models under it).
    pub out_dir: &'a Path,
    pub interrupt: &'a AtomicBool,
    pub quiet: bool,
}

/// [`interpret_with`] with the maps, and any retrained model, under `maps_dir`, no Ctrl-C and
/// no progress bars (for tests and tools; the runner passes its own options).
pub fn interpret_rows<D: Device<f32>>(
    net: &mut Network<D>,
    exp: &Experiment,
    data: &Splits,
    run: &TrainRun,
    maps_dir: &Path,
) -> Result<Vec<ResultRow>, EngineError> {
    static NEVER: AtomicBool = AtomicBool::new(false);
    let opts = InterpretOptions {
        maps_dir,
        out_dir: maps_dir,
        interrupt: &NEVER,
        quiet: true,
    };
    interpret_with(net, exp, data, run, &opts)
}

/// Compute the saliency rows of `run` (see the module doc) and save its maps in
/// `opts.maps_dir`.
pub fn interpret_with<D: Device<f32>>(
    net: &mut Network<D>,
    exp: &Experiment,
    data: &Splits,
    run: &TrainRun,
    opts: &InterpretOptions<'_>,
) -> Result<Vec<ResultRow>, EngineError> {
    if exp.saliency.is_empty() {
        return Ok(Vec::new());
    }
    let maps_dir = opts.maps_dir;
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
    let channels = test.shape.c.max(1);
    let images = exp.report.images.min(test.len());
    std::fs::create_dir_all(maps_dir).map_err(|e| EngineError::io(maps_dir, e))?;
    if images > 0 {
        save_images(test, images, maps_dir)?;
    }
    let build = BuildContext {
        channel_mean: channel_mean.clone(),
        channels,
        height: test.shape.h,
        width: test.shape.w,
        eval_seed: exp.eval.seed,
    };
    let mut rows = Vec::new();
    for (mi, spec) in exp.saliency.iter().enumerate() {
        let ctx = SaliencyContext {
            objective: Objective::LogProb,
            channel_mean: channel_mean.clone(),
            seed: derive_seed(exp.eval.seed, 1, mi),
        };
        let mut method = saliency::build::<D>(&spec.method, &ctx)?;
        let mut measures: Vec<_> = exp
            .metrics
            .iter()
            .filter_map(|m| metrics::build::<D>(m, &build))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(exp.eval.seed, 2, mi));
        let mut map_seconds = 0.0;
        let all: Vec<usize> = (0..n).collect();
        for idx in all.chunks(batch) {
            if stop_requested(opts) {
                return Err(EngineError::Interrupted);
            }
            let (x, labels) = batch_of(net.device(), test, idx);
            let started = Instant::now();
            let s = method.map(net, &x, &labels)?;
            map_seconds += started.elapsed().as_secs_f64();
            let pixel = metrics::pixel_scores(&s.as_vec(), labels.len(), channels);
            let b = MapBatch {
                x: &x,
                labels: &labels,
                maps: &s,
                pixel: &pixel,
                channels,
            };
            let mut env = Env {
                net,
                method: method.as_mut(),
                rng: &mut rng,
            };
            for m in &mut measures {
                m.update(&mut env, &b)?;
            }
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
        let info = RunInfo {
            exp,
            run,
            data,
            method: spec,
            out_dir: opts.out_dir,
            interrupt: opts.interrupt,
            quiet: opts.quiet,
        };
        let mut out = Vec::new();
        for m in &mut measures {
            if stop_requested(opts) {
                return Err(EngineError::Interrupted);
            }
            let mut env = Env {
                net,
                method: method.as_mut(),
                rng: &mut rng,
            };
            out.extend(m.finish(&mut env, &info)?);
        }
        out.push(ResultRow::new(run, SALIENCY_SECONDS, map_seconds));
        for r in &mut out {
            r.saliency = Some(spec.name.clone());
        }
        rows.extend(out);
    }
    Ok(rows)
}

/// Ctrl-C or SIGTERM: the caller's flag or this thread's ([`crate::stop`]).
fn stop_requested(opts: &InterpretOptions<'_>) -> bool {
    opts.interrupt.load(std::sync::atomic::Ordering::Relaxed) || crate::stop::requested()
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
