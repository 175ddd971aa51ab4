//! Saliency maps: per-example attributions S(x) of shape (B, N), the same layout as the input
//! (channels-last pixels in [0, 1]), for the TRUE label y of each example, with the network in
//! eval mode.
//!
//! Every method differentiates one scalar per example, chosen by [`Objective`]: by default the
//! log-probability `log p_y(x) = z_y - log sum_j exp z_j` (what `docs/language.md` documents and
//! what saliency-guided training masks with), or the raw logit `z_y`. Summing the per-example
//! objectives over the batch gives every example its own gradient (eval mode makes examples
//! independent), so one backward pass serves the whole batch.
//!
//! Methods (one module each, all behind the [`Saliency`] trait; [`build`] makes one from the IR):
//! - [`gradient::Gradient`]: `g = d obj / dx`, signed or `|g|` (Simonyan et al. 2014);
//! - [`gradient::GradientInput`]: `x * g` (Shrikumar et al. 2016);
//! - [`integrated::IntegratedGradients`]: `(x - x0) * int_0^1 g(x0 + a (x - x0)) da`
//!   (Sundararajan et al. 2017), midpoint or trapezoid rule;
//! - [`smoothgrad::SmoothGrad`]: mean of `g(x + e)`, `e ~ N(0, sigma^2)` (Smilkov et al. 2017),
//!   with SG-squared (mean of `g^2`, Hooker et al. 2019) and VarGrad (variance of `g`,
//!   Adebayo et al. 2018).
//!
//! Random draws (SmoothGrad noise, uniform baselines) come from a ChaCha8 generator on the host
//! seeded by the caller, then are copied to the device once per draw: the maps are then
//! identical on every device and independent of whatever else used the device's generator.
//! All per-step arithmetic (forward, backward, accumulation) runs on the device.
pub mod gradient;
pub mod integrated;
pub mod noise;
pub mod npy;
pub mod smoothgrad;

use crate::grad::input_gradient;
use crate::losses::one_hot;
use crate::ops::Mat;
use dfdx::prelude::*;
use salient_ir::{SaliencyMethod, Shape};
use salient_nn::{Mode, Network};
use thiserror::Error;

/// Bad input to a saliency method or metric. Never a panic: each names what is wrong.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SaliencyError {
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error("label {label} of example {index} is not below the model's {classes} classes")]
    Label {
        index: usize,
        label: usize,
        classes: usize,
    },
    #[error("{0}")]
    Param(String),
}

impl SaliencyError {
    pub fn param(msg: impl Into<String>) -> Self {
        SaliencyError::Param(msg.into())
    }
}

/// The scalar each example's saliency differentiates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Objective {
    /// `log p_y = log softmax(z)_y` (the default, as SGT and `docs/language.md`).
    #[default]
    LogProb,
    /// The true-class logit `z_y`.
    Logit,
}

/// A saliency method: maps a batch `x` (B, N) with labels to attributions (B, N).
pub trait Saliency<D: Device<f32>> {
    fn map(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
    ) -> Result<Mat<D>, SaliencyError>;
}

/// What building a method needs besides its IR parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SaliencyContext {
    pub objective: Objective,
    /// Per-channel dataset mean pixel (for the `mean` baseline of integrated gradients).
    pub channel_mean: Vec<f32>,
    /// Seed of the method's host generator (noise, uniform baselines).
    pub seed: u64,
}

/// Build the method the IR describes. Bad parameters (0 steps, negative sigma ...) are errors.
pub fn build<D: Device<f32>>(
    method: &SaliencyMethod,
    ctx: &SaliencyContext,
) -> Result<Box<dyn Saliency<D>>, SaliencyError> {
    Ok(match method {
        SaliencyMethod::Gradient { sign } => Box::new(gradient::Gradient {
            sign: *sign,
            objective: ctx.objective,
        }),
        SaliencyMethod::GradientInput => Box::new(gradient::GradientInput {
            objective: ctx.objective,
        }),
        SaliencyMethod::IntegratedGradients { steps, baseline } => {
            Box::new(integrated::IntegratedGradients::new(
                *steps,
                *baseline,
                integrated::Rule::Midpoint,
                ctx.objective,
                ctx.channel_mean.clone(),
                ctx.seed,
            )?)
        }
        SaliencyMethod::SmoothGrad {
            samples,
            sigma,
            variant,
        } => Box::new(smoothgrad::SmoothGrad::new(
            *samples,
            *sigma,
            *variant,
            ctx.objective,
            ctx.seed,
        )?),
    })
}

/// Number of channels of the network's input (1 for a flat input).
pub fn input_channels(def_input: Shape) -> usize {
    match def_input {
        Shape::Image { c, .. } => c,
        Shape::Flat(_) => 1,
    }
}

/// Check that `x` (B, N) and `labels` fit the network: N equals its input size, B equals the
/// number of labels and is at least 1, every label is below the number of classes.
pub fn check_batch<D: Device<f32>>(
    net: &Network<D>,
    x: &Mat<D>,
    labels: &[usize],
) -> Result<(), SaliencyError> {
    let (b, n) = *x.shape();
    let def = net.def();
    let want = def.input.numel();
    if n != want {
        return Err(SaliencyError::Shape {
            what: format!("input of model `{}`", def.name),
            expected: format!("{want} features per example ({})", def.input),
            got: format!("{n}"),
        });
    }
    if b == 0 {
        return Err(SaliencyError::Shape {
            what: "batch".into(),
            expected: "at least 1 example".into(),
            got: "0".into(),
        });
    }
    if labels.len() != b {
        return Err(SaliencyError::Shape {
            what: "labels".into(),
            expected: format!("{b} (one per example)"),
            got: format!("{}", labels.len()),
        });
    }
    let classes = def.output.numel();
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(SaliencyError::Label {
            index,
            label,
            classes,
        });
    }
    Ok(())
}

/// Per-example gradient `d obj_i / dx_i` of the true-class objective, eval mode, with the logits.
pub fn class_gradient<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    objective: Objective,
) -> Result<(Mat<D>, Mat<D>), SaliencyError> {
    check_batch(net, x, labels)?;
    let classes = net.def().output.numel();
    let onehot = one_hot(net.device(), labels, classes);
    let (g, logits) = input_gradient(net, x, Mode::Eval, |z| match objective {
        Objective::LogProb => (z.log_softmax::<Axis<1>>() * onehot).sum(),
        Objective::Logit => (z * onehot).sum(),
    });
    Ok((g, logits))
}

/// The objective itself per example (host), e.g. to check completeness of integrated gradients.
pub fn objective_values<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Mat<D>,
    labels: &[usize],
    objective: Objective,
) -> Result<Vec<f32>, SaliencyError> {
    check_batch(net, x, labels)?;
    let classes = net.def().output.numel();
    let z = net.forward(x.clone(), Mode::Eval);
    let v = match objective {
        Objective::LogProb => z.log_softmax::<Axis<1>>().as_vec(),
        Objective::Logit => z.as_vec(),
    };
    Ok(labels
        .iter()
        .enumerate()
        .map(|(i, &y)| v[i * classes + y])
        .collect())
}
