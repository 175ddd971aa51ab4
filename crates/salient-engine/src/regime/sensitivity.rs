//! Activation-sensitivity regularisation (Moshe, Fidel, Bitton, Shabtai, arXiv 2211.08686,
//! Machine Learning 2024), in a first-order reading (the exact loss is not published in what
//! could be read):
//!
//!   L = CE(f(x), y) + lambda * sum_{l in layers} mean_{i, j} | a_l(x~)_{ij} - a_l(x)_{ij} |,
//!   x~ = clip_[0,1](x + d),
//!
//! where a_l is the output of the top-level layer `l` (named as in `LayerDef::name`: `relu3`,
//! `dense1`; layers inside a residual block cannot be named), the mean runs over the batch i and
//! the layer's units j, and d is random noise: Gaussian with std sigma, or uniform in
//! [-sigma, sigma]. With `adversarial`, d is then moved one signed-gradient step of size sigma
//! up the regulariser, d <- d + sigma * sign(grad_d sum_l mean |a_l(x + d) - a_l(x)|), the
//! gradient taken in a first-order pass with the network in eval mode and then held constant.
//!
//! Both forward passes run in train mode on one tape, so the gradient of the penalty flows
//! through both (a_l(x) is not detached). Dropout draws the same mask in both passes (the
//! dropout generator is reseeded from the step's generator before each), so the difference
//! measures the input perturbation only; batchnorm uses each pass's own batch statistics.
use super::{Regime, StepContext, StepOutput, Targets};
use crate::grad::InputGradScope;
use crate::losses::{ce_mean, Logits};
use crate::ops::{sign, Mat};
use crate::saliency::noise::standard_normal;
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use salient_ir::{Layer, LayerDef, ModelDef, Noise, SensitivityParams};
use salient_nn::{Mode, Network};

pub struct Sensitivity {
    pub params: SensitivityParams,
    /// Indices into the model's top-level layers of `params.layers`, in the same order.
    pub taps: Vec<usize>,
}

impl Sensitivity {
    /// Resolve the layer names against `model`; `Err` names a layer the model does not have at
    /// top level, and lists those it has.
    pub fn new(params: SensitivityParams, model: &ModelDef) -> Result<Self, String> {
        if params.layers.is_empty() {
            return Err("sensitivity: `layers` names no layer".to_string());
        }
        if !(params.sigma.is_finite() && params.sigma > 0.0) {
            return Err(format!(
                "sensitivity: sigma must be a finite number > 0, got {}",
                params.sigma
            ));
        }
        if !(params.lambda.is_finite() && params.lambda >= 0.0) {
            return Err(format!(
                "sensitivity: lambda must be a finite number >= 0, got {}",
                params.lambda
            ));
        }
        let mut taps = Vec::with_capacity(params.layers.len());
        for name in &params.layers {
            match model.layers.iter().position(|l| &l.name == name) {
                Some(i) => taps.push(i),
                None => {
                    let top: Vec<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
                    let nested = model.layers.iter().any(|l| contains_nested(l, name));
                    let why = if nested {
                        "is inside a residual block; only top-level layers can be regularised"
                    } else {
                        "is not a layer of this model"
                    };
                    return Err(format!(
                        "sensitivity: layer `{name}` {why} (model `{}` has {})",
                        model.name,
                        top.join(", ")
                    ));
                }
            }
        }
        Ok(Sensitivity { params, taps })
    }
}

fn contains_nested(l: &LayerDef, name: &str) -> bool {
    match &l.kind {
        Layer::Residual { body, .. } => body
            .iter()
            .any(|b| b.name == name || contains_nested(b, name)),
        _ => false,
    }
}

/// Random noise of `shape` on the device: N(0, sigma^2) or U(-sigma, sigma) per element.
pub fn noise<D: Device<f32>>(
    dev: &D,
    shape: (usize, usize),
    kind: Noise,
    sigma: f32,
    rng: &mut ChaCha8Rng,
) -> Mat<D> {
    let v: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| match kind {
            Noise::Gaussian => sigma * standard_normal(rng) as f32,
            Noise::Uniform => rng.gen_range(-sigma..=sigma),
        })
        .collect();
    dev.tensor_from_vec(v, shape)
}

/// sum_l mean |noisy_l - clean_l| on the tape of `logits` (a forward pass that produced
/// `noisy`); returns the penalty and the tape, left at the end of the graph.
fn penalty<D: Device<f32>>(
    logits: Logits<D, OwnedTape<f32, D>>,
    noisy: Vec<Logits<D, NoneTape>>,
    clean: &[Logits<D, NoneTape>],
) -> (Tensor<Rank0, f32, D, NoneTape>, OwnedTape<f32, D>) {
    let (logits, mut tape) = logits.split_tape();
    let mut total: Option<Tensor<Rank0, f32, D, OwnedTape<f32, D>>> = None;
    for (n, c) in noisy.into_iter().zip(clean) {
        let term: Tensor<Rank0, f32, D, _> = (n.put_tape(tape) - c.clone()).abs().mean();
        let (term, rest) = term.split_tape();
        tape = rest;
        total = Some(match total {
            Some(t) => t + term,
            None => term.retaped(),
        });
    }
    match total {
        Some(total) => {
            let (total, extra) = total.split_tape();
            (total, tape.merge(extra))
        }
        None => (logits.device().zeros(), tape),
    }
}

/// The regularised loss of the batch `x` for a given perturbation `d` (module docs), with the
/// tapped layers `taps` (indices into the model's top-level layers) and the dropout mask drawn
/// from `dropout_seed` in both passes. Returns the loss with its tape and the clean logits.
pub fn sensitivity_loss<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    d: &Mat<D>,
    onehot: &Mat<D>,
    taps: &[usize],
    lambda: f32,
    dropout_seed: u64,
) -> StepOutput<D> {
    let x_noisy = (x.clone() + d.clone()).clamp(0.0, 1.0);
    net.reseed_dropout(dropout_seed);
    let (clean, clean_taps) =
        net.forward_taps(x.clone().traced(Gradients::leaky()), Mode::Train, taps);
    let (clean, tape) = clean.split_tape();
    net.reseed_dropout(dropout_seed);
    let (noisy, noisy_taps) = net.forward_taps(x_noisy.put_tape(tape), Mode::Train, taps);
    let (pen, tape) = penalty(noisy, noisy_taps, &clean_taps);
    let ce = ce_mean(clean.clone().put_tape(tape), onehot);
    StepOutput {
        loss: ce + pen.retaped::<OwnedTape<f32, D>>() * lambda,
        logits: clean,
    }
}

/// The adversarial refinement of `d`: d + sigma * sign(grad_d penalty(x + d)), the gradient in
/// eval mode, a constant.
pub fn adversarial_noise<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    d: Mat<D>,
    taps: &[usize],
    sigma: f32,
) -> Mat<D> {
    let mut net = InputGradScope::new(net);
    let (_, clean_taps) = net.forward_taps(x.clone(), Mode::Eval, taps);
    let xn = (x.clone() + d.clone()).clamp(0.0, 1.0);
    let (logits, noisy_taps) =
        net.forward_taps(xn.clone().traced(Gradients::leaky()), Mode::Eval, taps);
    let (pen, tape) = penalty(logits, noisy_taps, &clean_taps);
    let grads = pen.put_tape(tape).backward();
    // d x~ / d d is 1 inside the box: the gradient at x~ is the gradient in d.
    d + sign(&grads.get(&xn)) * sigma
}

impl<D: Device<f32>> Regime<D> for Sensitivity {
    fn step(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        y: &Targets<D>,
        ctx: &mut StepContext,
    ) -> StepOutput<D> {
        let p = &self.params;
        let sigma = p.sigma as f32;
        let mut d = noise(x.device(), *x.shape(), p.noise, sigma, &mut ctx.rng);
        if p.adversarial {
            d = adversarial_noise(net, x, d, &self.taps, sigma);
        }
        let seed = ctx.rng.gen::<u64>();
        sensitivity_loss(net, x, &d, &y.onehot, &self.taps, p.lambda as f32, seed)
    }
}
