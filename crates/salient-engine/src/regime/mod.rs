//! Training regimes: each turns one batch into a training loss.
//!
//! A regime lives in its own module behind [`Regime`]; adding one means one file here, one arm in
//! [`build`], the grammar, and a test. A step may take input gradients
//! ([`crate::grad::input_gradient`]), run an inner attack loop, run several forward passes (clean
//! and masked) and read intermediate activations (`Network::forward_taps`): all first-order.
use crate::losses::Logits;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_ir::{ModelDef, Regime as RegimeIr, RegimeInstance, Shape};
use salient_nn::Network;

pub mod adversarial;
pub mod combined;
pub mod lp_dual;
pub mod sensitivity;
pub mod sgt;
mod standard;

pub use adversarial::Adversarial;
pub use combined::Combined;
pub use lp_dual::LpDual;
pub use sensitivity::Sensitivity;
pub use sgt::Sgt;
pub use standard::Standard;

/// The labels of a batch, on the host and one-hot on the device.
pub struct Targets<D: Device<f32>> {
    pub labels: Vec<usize>,
    pub onehot: Tensor<(usize, usize), f32, D>,
}

/// What a regime's step returns.
pub struct StepOutput<D: Device<f32>> {
    /// The loss to minimise, with the tape of every forward pass that contributes to it.
    pub loss: Tensor<Rank0, f32, D, OwnedTape<f32, D>>,
    /// Logits in training mode (no tape), for the running train accuracy: those of the clean
    /// batch, or of the perturbed batch for regimes that train on perturbed inputs only
    /// (`adversarial` with `mix = 0`, `lp_dual`).
    pub logits: Logits<D, NoneTape>,
}

/// Per-step context: a seeded RNG (random starts, random fills) and the position in training.
pub struct StepContext {
    pub rng: ChaCha8Rng,
    /// Epoch (from 0) and step within it of the batch being trained.
    pub epoch: usize,
    pub step: usize,
    /// Steps in one epoch (for schedules inside a regime, e.g. the eps warm-up).
    pub steps_per_epoch: usize,
}

impl StepContext {
    /// Fraction of `epochs` epochs done after this step, capped at 1 (1 when `epochs` is 0).
    pub fn ramp(&self, epochs: f64) -> f64 {
        if epochs <= 0.0 {
            return 1.0;
        }
        let per = self.steps_per_epoch.max(1) as f64;
        let done = (self.epoch as f64 * per + self.step as f64 + 1.0) / per;
        (done / epochs).min(1.0)
    }
}

/// The training attack of this step: with `warmup = E` epochs, eps and the step size are
/// scaled by `min(1, t / E)`, t the epochs done after this step (a linear eps ramp, as
/// curriculum adversarial training uses to keep a small network from collapsing to a constant
/// prediction at a large eps); unchanged without warm-up.
pub fn ramped_attack(a: &salient_ir::TrainAttack, ctx: &StepContext) -> salient_ir::TrainAttack {
    let f = ctx.ramp(a.warmup);
    salient_ir::TrainAttack {
        eps: a.eps * f,
        step_size: a.step_size * f,
        ..a.clone()
    }
}

pub trait Regime<D: Device<f32>> {
    /// The training loss of one batch `x` (B, N) of pixels in [0, 1].
    fn step(
        &mut self,
        net: &mut Network<D>,
        x: &Tensor<(usize, usize), f32, D>,
        y: &Targets<D>,
        ctx: &mut StepContext,
    ) -> StepOutput<D>;
}

/// The regimes this build can train, by IR kind.
pub fn supported(regime: &RegimeIr) -> bool {
    matches!(
        regime,
        RegimeIr::Standard
            | RegimeIr::Sgt(_)
            | RegimeIr::Adversarial(_)
            | RegimeIr::Combined(_)
            | RegimeIr::LpDual(_)
            | RegimeIr::Sensitivity(_)
    )
}

/// Build the regime of a run on `model`. `channel_mean` is the training set's per-channel mean
/// pixel (for mean fills). `Err` says, in words, why the regime cannot train this model (a
/// sensitivity layer name the model does not have at top level, a group size that does not fit).
pub fn build<D: Device<f32>>(
    inst: &RegimeInstance,
    channel_mean: &[f32],
    model: &ModelDef,
) -> Result<Box<dyn Regime<D>>, String> {
    Ok(match &inst.regime {
        RegimeIr::Standard => Box::new(Standard),
        RegimeIr::Sgt(p) => Box::new(Sgt {
            params: p.clone(),
            channel_mean: channel_mean.to_vec(),
        }),
        RegimeIr::Adversarial(p) => Box::new(Adversarial { params: p.clone() }),
        RegimeIr::Combined(p) => Box::new(Combined {
            params: p.clone(),
            channel_mean: channel_mean.to_vec(),
        }),
        RegimeIr::LpDual(p) => Box::new(LpDual::new(p.clone(), model)?),
        RegimeIr::Sensitivity(p) => Box::new(Sensitivity::new(p.clone(), model)?),
    })
}

/// Number of channels of a model's input: C of an image, 1 for a flat input. Saliency masks
/// and groups are per pixel position (channels-last: feature i belongs to channel i % C).
pub fn input_channels(def: &ModelDef) -> usize {
    match def.input {
        Shape::Image { c, .. } => c.max(1),
        Shape::Flat(_) => 1,
    }
}
