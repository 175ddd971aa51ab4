//! Training regimes: each turns one batch into a training loss.
//!
//! A regime lives in its own module behind [`Regime`]; adding one means one file here, one arm in
//! [`build`], the grammar, and a test. A step may take input gradients
//! ([`crate::grad::input_gradient`]), run an inner attack loop, run several forward passes (clean
//! and masked) and read intermediate activations (`Network::forward_taps`): all first-order.
use crate::losses::Logits;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_ir::{Regime as RegimeIr, RegimeInstance};
use salient_nn::Network;

pub mod adversarial;
pub mod sgt;
mod standard;

pub use adversarial::Adversarial;
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
    /// Logits of the clean batch in training mode (no tape), for the running train accuracy.
    pub logits: Logits<D, NoneTape>,
}

/// Per-step context: a seeded RNG (random starts, random fills) and the position in training.
pub struct StepContext {
    pub rng: ChaCha8Rng,
    pub epoch: usize,
    pub step: usize,
}

pub trait Regime<D: Device<f32>> {
    /// The training loss of one batch `x` (B, N) of pixels in [0, 1].
    fn step(&mut self, net: &mut Network<D>, x: &Tensor<(usize, usize), f32, D>, y: &Targets<D>, ctx: &mut StepContext) -> StepOutput<D>;
}

/// The regimes this build can train, by IR kind.
pub fn supported(regime: &RegimeIr) -> bool {
    matches!(regime, RegimeIr::Standard | RegimeIr::Sgt(_) | RegimeIr::Adversarial(_))
}

/// Build the regime of a run, or `None` when this build does not implement it yet.
/// `channel_mean` is the training set's per-channel mean pixel (for mean fills).
pub fn build<D: Device<f32>>(inst: &RegimeInstance, channel_mean: &[f32]) -> Option<Box<dyn Regime<D>>> {
    match &inst.regime {
        RegimeIr::Standard => Some(Box::new(Standard)),
        RegimeIr::Sgt(p) => Some(Box::new(Sgt { params: p.clone(), channel_mean: channel_mean.to_vec() })),
        RegimeIr::Adversarial(p) => Some(Box::new(Adversarial { params: p.clone() })),
        _ => None,
    }
}
