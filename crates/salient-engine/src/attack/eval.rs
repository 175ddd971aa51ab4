//! The entry point of evaluation: [`attack_batch`] attacks a batch under one
//! [`salient_ir::AttackSpec`] through the [`super::Attack`] it builds.
//!
//! Conventions (the usual mistakes listed by Croce and Hein 2020 are avoided by construction):
//! - the network is attacked in EVAL mode (dropout off, batchnorm running statistics), on its
//!   logits (never on softmax outputs);
//! - every perturbation is in pixel units of [0, 1] images: `||x_adv - x|| <= eps` in the
//!   attack's norm and `x_adv` stays in the [0, 1] box;
//! - robustness is decided per example: an example is robust only if no iterate of any restart
//!   misclassifies it (`argmax_j z_j(x_adv) == y`, ties to the lowest index as in
//!   [`crate::losses::argmax_rows`]); the first adversarial example found is kept;
//! - examples the network already misclassifies are not attacked: they count as not robust and
//!   their `x_adv` is the clean image.
use super::rows::{bucket, correct_rows, padded, put_rows, take_rows, AttackError, AttackOutcome};
use super::{build, Attack, AttackContext};
use crate::ops::Mat;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_ir::AttackSpec;
use salient_nn::{Mode, Network};

/// Attack the batch `x` (B, N) of pixels in [0, 1] with true labels `labels` under `spec`.
///
/// The network runs in eval mode. `rng` drives random starts, restarts and Square's proposals:
/// the same generator state gives the same outcome. Errors name the spec.
pub fn attack_batch<D: Device<f32>>(
    net: &mut Network<D>,
    spec: &AttackSpec,
    x: &Mat<D>,
    labels: &[usize],
    rng: &mut ChaCha8Rng,
) -> Result<AttackOutcome<D>, AttackError> {
    let mut attack = build_named(net, spec)?;
    attack_with(net, attack.as_mut(), x, labels, rng).map_err(|e| named(spec, e))
}

/// `e` prefixed with the spec's name, as every evaluation error reads.
pub fn named(spec: &AttackSpec, e: AttackError) -> AttackError {
    AttackError(format!("attack `{}`: {}", spec.name, e.0))
}

/// The attack `spec` describes, built for `net` (its eps checked); errors name the spec.
pub fn build_named<D: Device<f32>>(
    net: &Network<D>,
    spec: &AttackSpec,
) -> Result<Box<dyn Attack<D>>, AttackError> {
    let ctx = context(net, spec).map_err(|e| named(spec, e))?;
    build::<D>(&spec.attack, &ctx).map_err(|e| named(spec, e))
}

/// The context an attack on `net` is built with; checks the spec's eps.
pub fn context<D: Device<f32>>(
    net: &Network<D>,
    spec: &AttackSpec,
) -> Result<AttackContext, AttackError> {
    let eps = spec.eps();
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(AttackError(format!(
            "eps must be a finite number >= 0, got {eps}"
        )));
    }
    Ok(AttackContext {
        classes: net.def().output.numel(),
        input: net.def().input,
    })
}

/// Attack the batch with an attack already built: only the examples the network classifies
/// correctly are attacked (the others count as not robust, keep their clean image and a
/// minimal perturbation of 0).
pub fn attack_with<D: Device<f32>>(
    net: &mut Network<D>,
    attack: &mut dyn Attack<D>,
    x: &Mat<D>,
    labels: &[usize],
    rng: &mut ChaCha8Rng,
) -> Result<AttackOutcome<D>, AttackError> {
    let classes = validate(net, x, labels)?;
    let (b, _) = *x.shape();
    if b == 0 {
        return Ok(AttackOutcome::new(x.clone(), Vec::new()));
    }
    let clean = net.forward(x.clone(), Mode::Eval).as_vec();
    let correct = correct_rows(&clean, classes, labels);
    let rows: Vec<usize> = (0..b).filter(|&i| correct[i]).collect();
    if rows.is_empty() {
        return Ok(AttackOutcome::new(x.clone(), vec![false; b]));
    }
    let work = padded(&rows, bucket(rows.len(), b));
    let xs = if rows.len() == b {
        x.clone()
    } else {
        take_rows(x, &work)
    };
    let ys: Vec<usize> = work.iter().map(|&i| labels[i]).collect();
    let sub = attack.run(net, &xs, &ys, rng);
    let mut out = AttackOutcome::new(put_rows(x.clone(), sub.x_adv, &rows), vec![false; b]);
    for (j, &i) in rows.iter().enumerate() {
        out.robust[i] = sub.robust[j];
        out.broken_by[i] = sub.broken_by[j];
    }
    if let Some(sub_norms) = sub.min_norms {
        let mut norms = vec![0.0f32; b];
        for (j, &i) in rows.iter().enumerate() {
            norms[i] = sub_norms[j];
        }
        out.min_norms = Some(norms);
    }
    Ok(out)
}

/// Check the batch against the network; returns the class count.
fn validate<D: Device<f32>>(
    net: &Network<D>,
    x: &Mat<D>,
    labels: &[usize],
) -> Result<usize, AttackError> {
    let err = |m: String| Err(AttackError(m));
    let (b, n) = *x.shape();
    let input = net.def().input.numel();
    let classes = net.def().output.numel();
    if n != input {
        return err(format!(
            "the batch has {n} features per example but the model `{}` takes {input}",
            net.def().name
        ));
    }
    if labels.len() != b {
        return err(format!(
            "{} labels for a batch of {b} examples",
            labels.len()
        ));
    }
    if let Some(y) = labels.iter().find(|&&y| y >= classes) {
        return err(format!("label {y} is out of range for {classes} classes"));
    }
    Ok(classes)
}
