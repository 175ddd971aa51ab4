//! The training loop: epochs of seeded shuffled batches, one regime step per batch, the
//! optimizer, the learning-rate schedule, a divergence check, progress and Ctrl-C.
use crate::error::EngineError;
use crate::eval;
use crate::losses::{correct, one_hot};
use crate::progress::RunProgress;
use crate::regime::{Regime, StepContext, Targets};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_data::Dataset;
use salient_ir::TrainRun;
use salient_nn::optim::{Optimizer, OptimizerState};
use salient_nn::{optim, schedule, Network};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A loss above this is taken as divergence even when finite (cross-entropy of a sane network
/// stays far below it).
pub const DIVERGENCE_LOSS: f32 = 1e4;

/// One line of the training curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
    /// Accuracy on the clean training batches, in training mode, as they were seen.
    pub train_accuracy: f64,
    /// Clean test accuracy at the end of the epoch (eval mode).
    pub test_accuracy: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// What training needs besides the network and the regime.
pub struct TrainInputs<'a> {
    pub run: &'a TrainRun,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub eval_batch: usize,
    pub interrupt: &'a AtomicBool,
}

/// Where training goes on from after an epoch checkpoint ([`crate::resume`]): the epochs done,
/// their curve, the regimes' step generator and the optimizer's state. The weights and the
/// dropout generator are the network's own (restored into it before).
pub struct Resume {
    pub epochs_done: usize,
    pub log: Vec<EpochLog>,
    pub step_rng: ChaCha8Rng,
    pub optimizer: OptimizerState,
}

/// What [`train_resumable`] hands to its epoch hook at the end of every epoch: everything an
/// epoch checkpoint needs.
pub struct EpochEnd<'a, D: Device<f32>> {
    pub net: &'a Network<D>,
    pub optimizer: &'a dyn Optimizer<D>,
    pub step_rng: &'a ChaCha8Rng,
    pub log: &'a [EpochLog],
}

/// Train `net` in place. Returns the per-epoch log. Stops with [`EngineError::Diverged`] on a
/// non-finite or exploding loss and with [`EngineError::Interrupted`] on Ctrl-C.
pub fn train<D: Device<f32>>(
    net: &mut Network<D>,
    regime: &mut dyn Regime<D>,
    inp: &TrainInputs<'_>,
    progress: &RunProgress,
) -> Result<Vec<EpochLog>, EngineError> {
    train_resumable(net, regime, inp, progress, None, &mut |_| Ok(()))
}

/// Whether training must stop: the caller's flag (Ctrl-C) or this thread's [`crate::stop`]
/// flag.
fn stop_requested(inp: &TrainInputs<'_>) -> bool {
    inp.interrupt.load(Ordering::Relaxed) || crate::stop::requested()
}

/// [`train`], starting from `resume` (epoch `resume.epochs_done`) when given, calling
/// `on_epoch` at the end of every epoch (after the epoch's evaluation; an error from it stops
/// training). A run resumed from the checkpoint of epoch k ends bit-identical to one trained
/// from 0 without stopping: the example order, the schedule and the warm-up are functions of
/// the epoch and step, and everything else that changes from step to step is in the
/// checkpoint.
pub fn train_resumable<D: Device<f32>>(
    net: &mut Network<D>,
    regime: &mut dyn Regime<D>,
    inp: &TrainInputs<'_>,
    progress: &RunProgress,
    resume: Option<Resume>,
    on_epoch: &mut dyn FnMut(EpochEnd<'_, D>) -> Result<(), EngineError>,
) -> Result<Vec<EpochLog>, EngineError> {
    let cfg = &inp.run.train;
    let n = inp.train.len();
    let features = inp.train.shape.numel();
    let classes = inp.train.classes;
    let batch = cfg.batch.min(n).max(1);
    // Drop a last partial batch (batchnorm needs more than one example, and every step then has
    // the same size); with n a multiple of the batch nothing is dropped.
    let steps_per_epoch = n / batch;
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut opt = optim::build::<D>(&cfg.optimizer, cfg.weight_decay);
    let mut ctx = StepContext {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0005_EED0_F5A1_1E27),
        epoch: 0,
        step: 0,
        steps_per_epoch,
    };
    let mut log = Vec::with_capacity(cfg.epochs);
    let mut first_epoch = 0;
    if let Some(r) = resume {
        opt.set_state(&r.optimizer, net.params())
            .map_err(|source| EngineError::Nn {
                run: inp.run.id.clone(),
                source,
            })?;
        ctx.rng = r.step_rng;
        first_epoch = r.epochs_done.min(cfg.epochs);
        log = r.log;
        log.truncate(first_epoch);
    }
    progress.start(total_steps as u64);
    progress.advance((first_epoch * steps_per_epoch) as u64);
    let (mut xs, mut ys) = (
        Vec::with_capacity(batch * features),
        Vec::with_capacity(batch),
    );
    for epoch in first_epoch..cfg.epochs {
        let started = Instant::now();
        let order = salient_data::epoch_order(n, cfg.seed, epoch);
        let (mut loss_sum, mut hits, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for (step, idx) in salient_data::batches(&order, batch, true).enumerate() {
            if stop_requested(inp) {
                return Err(EngineError::Interrupted);
            }
            inp.train.gather(idx, &mut xs, &mut ys);
            let dev = net.device().clone();
            let x = dev.tensor_from_vec(std::mem::take(&mut xs), (idx.len(), features));
            let targets = Targets {
                onehot: one_hot(&dev, &ys, classes),
                labels: std::mem::take(&mut ys),
            };
            lr = schedule::lr_at(
                cfg.lr,
                &cfg.schedule,
                epoch,
                step,
                steps_per_epoch,
                cfg.epochs,
            );
            ctx.epoch = epoch;
            ctx.step = step;
            let out = regime.step(net, &x, &targets, &mut ctx);
            // A stop during the step may have cut its inner attack short: drop the step.
            if stop_requested(inp) {
                return Err(EngineError::Interrupted);
            }
            let loss = out.loss.retaped::<NoneTape>().as_vec()[0];
            if !loss.is_finite() || loss > DIVERGENCE_LOSS {
                return Err(EngineError::Diverged {
                    run: inp.run.id.clone(),
                    epoch: epoch + 1,
                    step: step + 1,
                    loss,
                });
            }
            let grads = out.loss.backward();
            opt.step(net.params_mut(), &grads, lr)
                .map_err(|source| EngineError::Nn {
                    run: inp.run.id.clone(),
                    source,
                })?;
            if (step + 1) % TRIM_EVERY == 0 {
                trim_cache(net.device());
            }
            loss_sum += loss as f64;
            hits += correct(&out.logits.as_vec(), classes, &targets.labels);
            seen += idx.len();
            ys = targets.labels;
            let secs = started.elapsed().as_secs_f64();
            progress.step(
                epoch + 1,
                cfg.epochs,
                loss_sum / (step + 1) as f64,
                hits as f64 / seen as f64,
                seen as f64 / secs.max(1e-9),
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        let test_accuracy = eval::accuracy(net, inp.test, inp.eval_batch).value();
        trim_cache(net.device());
        let entry = EpochLog {
            epoch: epoch + 1,
            loss: loss_sum / steps_per_epoch.max(1) as f64,
            train_accuracy: hits as f64 / seen.max(1) as f64,
            test_accuracy,
            lr,
            seconds,
            images_per_second: seen as f64 / seconds.max(1e-9),
        };
        progress.epoch_done(&entry, cfg.epochs);
        log.push(entry);
        on_epoch(EpochEnd {
            net,
            optimizer: opt.as_ref(),
            step_rng: &ctx.rng,
            log: &log,
        })?;
    }
    progress.finish();
    Ok(log)
}

/// Steps between two [`trim_cache`] calls in training.
const TRIM_EVERY: usize = 50;

/// Free the buffers held by dfdx's allocation cache. The cache recycles the buffers of
/// dropped tensors by size, which saves mapping and page-faulting them every step, but every
/// buffer that did not come from it (a batch uploaded with `tensor_from_vec`, a mask built on
/// the host) also lands in it when dropped and, if nothing of that size is allocated again,
/// stays there: without trimming, a 10-epoch run of Ismail et al.'s network grew to 18 GB and
/// was killed. Trimming every [`TRIM_EVERY`] steps, after each epoch's evaluation and after
/// each attack batch bounds the cache at a few steps' worth of buffers, for the cost of
/// faulting them in again once per trim.
pub fn trim_cache<D: Device<f32>>(dev: &D) {
    // `Device<f32>` does not include dfdx's `Cache` trait, so find the concrete device.
    // Emptying only frees memory; a failure leaves the cache as it was.
    let any: &dyn std::any::Any = dev;
    if let Some(cpu) = any.downcast_ref::<Cpu>() {
        let _ = cpu.try_empty_cache();
    }
    #[cfg(feature = "cuda")]
    if let Some(cuda) = any.downcast_ref::<Cuda>() {
        let _ = cuda.try_empty_cache();
    }
}
