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
        Objective::LogProb => log_prob_sum(z, &onehot),
        Objective::Logit => (z * onehot).sum(),
    });
    Ok((g, logits))
}

/// `sum_i log p_{y_i}(z_i)` written so that its gradient has no cancellation:
///
///   log p_y = -m - ln( e^-m + sum_{j != y} e^(d_j - m) ),   d_j = z_j - z_y,
///
/// with the constant `m = max(0, max_{j != y} d_j)` (the value does not depend on m, and every
/// exponent is <= 0). Then `d/dz_j = -p_j` for j != y and `d/dz_y = sum_{j != y} p_j`, each a
/// sum of positive terms. The textbook form `log_softmax(z) . onehot` differentiates to
/// `d/dz_y = 1 - p_y`, which in f32 loses every digit of `1 - p_y` below 2^-24: for a
/// confidently classified image (1 - p_y = 1e-5) that is a 0.3% error in the largest logit
/// gradient, and since the input gradient is a near-cancelling sum of the logit gradients the
/// map was off by up to 1% of its maximum (issue #12; docs/saliency.md, "Accuracy").
fn log_prob_sum<D: Device<f32>>(
    z: Tensor<(usize, usize), f32, D, OwnedTape<f32, D>>,
    onehot: &Tensor<(usize, usize), f32, D>,
) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>> {
    let shape = *z.shape();
    let (b, c) = shape;
    let dev = z.device().clone();
    let (z, tape) = z.split_tape();
    // The shift m per row, on the host (a constant: no gradient flows through it).
    let (zh, oh) = (z.as_vec(), onehot.as_vec());
    let m: Vec<f32> = (0..b)
        .map(|i| {
            let row = &zh[i * c..(i + 1) * c];
            let y = (0..c).find(|&j| oh[i * c + j] == 1.0).unwrap_or(0);
            (0..c)
                .filter(|&j| j != y)
                .map(|j| row[j] - row[y])
                .fold(0.0f32, f32::max)
        })
        .collect();
    let neg_exp_m: Vec<f32> = m.iter().map(|v| (-v).exp()).collect();
    let m = dev.tensor_from_vec(m, (b,));
    let neg_exp_m = dev.tensor_from_vec(neg_exp_m, (b,));
    let others = onehot.clone().negate() + 1.0;
    let zy = (z.clone().put_tape(tape) * onehot.clone()).sum::<(usize,), Axis<1>>();
    let (zy, tape) = zy.split_tape();
    let d = z.put_tape(tape)
        - zy.retaped::<OwnedTape<f32, D>>()
            .broadcast_like::<_, Axis<1>>(&shape);
    let e = (d - m.clone().broadcast_like::<_, Axis<1>>(&shape)).exp() * others;
    let s = e.sum::<(usize,), Axis<1>>() + neg_exp_m;
    (s.ln() + m).sum().negate()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// d/dz of log_prob_sum and its value, for one row of logits, on the CPU.
    fn grad_and_value(z: &[f32], y: usize) -> (Vec<f32>, f32) {
        let dev = Cpu::default();
        let c = z.len();
        let zt = dev.tensor_from_vec(z.to_vec(), (1, c));
        let onehot = one_hot(&dev, &[y], c);
        let obj = log_prob_sum(zt.clone().traced(Gradients::leaky()), &onehot);
        let value = obj.array();
        (obj.backward().get(&zt).as_vec(), value)
    }

    /// Known answer in f64: d log p_y / dz_j = [j = y] - p_j, with 1 - p_y = sum_{j != y} p_j.
    fn reference(z: &[f32], y: usize) -> (Vec<f64>, f64) {
        let m = z.iter().fold(f64::NEG_INFINITY, |a, v| a.max(*v as f64));
        let e: Vec<f64> = z.iter().map(|v| (*v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        let others: f64 = (0..z.len()).filter(|&j| j != y).map(|j| p[j]).sum();
        let g = (0..z.len())
            .map(|j| if j == y { others } else { -p[j] })
            .collect();
        (g, (p[y]).ln())
    }

    #[test]
    fn log_prob_gradient_is_accurate_when_the_class_is_certain() {
        // 1 - p_y = 3.5e-7 (first case): float32's `1 - p_y` would keep about one digit of it.
        let cases: [(&[f32], usize); 4] = [
            (&[20.0, 5.0, 3.0, -2.0], 0),
            (&[1.0, 14.5, 0.3, 2.0, -1.0], 1),
            (&[0.2, -0.4, 0.9], 2),
            // Misclassified by a margin whose exponential overflows float32 without the shift.
            (&[-60.0, 50.0, 0.0], 0),
        ];
        for (z, y) in cases {
            let (g, v) = grad_and_value(z, y);
            let (gr, vr) = reference(z, y);
            for (j, (a, b)) in g.iter().zip(&gr).enumerate() {
                assert!(
                    (*a as f64 - b).abs() <= 1e-5 * b.abs() + 1e-30,
                    "z {z:?}, y {y}: d/dz_{j} = {a:e}, reference {b:e}"
                );
            }
            assert!(
                (v as f64 - vr).abs() <= 1e-5 * (1.0 + vr.abs()),
                "z {z:?}, y {y}: log p_y = {v}, reference {vr}"
            );
        }
    }
}
