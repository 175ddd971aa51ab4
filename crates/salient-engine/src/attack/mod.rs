//! Evaluation attacks on the [0, 1] pixel box, on logits, the network in eval mode.
//!
//! Every attack has the same shape: one file, a struct implementing [`Attack`] whose `new`
//! validates its settings, built from the IR by [`build`]. Adding an attack = one
//! `salient_ir::Attack` variant, one file here, one arm in [`build`], one entry in the checker's
//! `AttackKind`, its section in `docs/attacks.md` and a known-answer test.
//!
//! - [`fgsm`]: FGSM (Goodfellow et al. 2015);
//! - [`pgd`]: PGD (Madry et al. 2018), shared with the adversarial training regimes (the
//!   caller chooses the network mode);
//! - [`apgd`]: APGD-CE, APGD-DLR and APGD-T (Croce and Hein 2020);
//! - [`square`]: Square (Andriushchenko et al. 2020), black box;
//! - [`fab`]: FAB and FAB-T (Croce and Hein 2020), minimally distorted within eps;
//! - [`autoattack`]: AutoAttack's ensemble (Croce and Hein 2020);
//! - [`cw`], [`deepfool`]: minimum-norm attacks (Carlini and Wagner 2017; Moosavi-Dezfooli et
//!   al. 2016), their per-example norms in [`min_norm`];
//! - [`rows`]: the per-example bookkeeping every attack shares (a leaf module);
//! - [`eval`]: the entry point [`attack_batch`] for a [`salient_ir::AttackSpec`].
pub mod apgd;
pub mod autoattack;
pub mod cw;
pub mod deepfool;
pub mod eval;
pub mod fab;
pub mod fgsm;
pub mod min_norm;
pub mod pgd;
pub mod rows;
pub mod square;

pub use eval::attack_batch;
pub use pgd::{pgd, random_start, AttackLoss, PgdConfig};
pub use rows::{AttackError, AttackOutcome};

use crate::ops::Mat;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_ir::Shape;
use salient_nn::Network;

/// An evaluation attack.
pub trait Attack<D: Device<f32>> {
    /// Attack the batch `x` (B, N) of pixels in [0, 1] whose examples the network classifies
    /// correctly (the caller filters; rows may be padded with copies of the first), with true
    /// labels `labels`, the network in eval mode. `rng` drives every random choice.
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> AttackOutcome<D>;
}

/// What building an attack needs besides its IR settings: the model's input and classes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttackContext {
    pub classes: usize,
    pub input: Shape,
}

/// A settings error of an attack's constructor.
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T, AttackError> {
    Err(AttackError(msg.into()))
}

/// Steps and restarts of iterative attacks are at least 1.
pub(crate) fn check_counts(steps: usize, restarts: usize) -> Result<(), AttackError> {
    if steps == 0 || restarts == 0 {
        return invalid(format!(
            "steps ({steps}) and restarts ({restarts}) must be at least 1"
        ));
    }
    Ok(())
}

/// Build the attack the IR describes. Settings it cannot run with are errors.
pub fn build<D: Device<f32>>(
    attack: &salient_ir::Attack,
    ctx: &AttackContext,
) -> Result<Box<dyn Attack<D>>, AttackError> {
    use salient_ir::Attack as A;
    Ok(match attack {
        A::Fgsm { eps } => Box::new(fgsm::Fgsm::new(*eps)?),
        A::Pgd {
            norm,
            eps,
            step_size,
            steps,
            random_start,
            restarts,
        } => Box::new(pgd::Pgd::new(
            PgdConfig {
                norm: *norm,
                eps: *eps as f32,
                step_size: *step_size as f32,
                steps: *steps,
                random_start: *random_start,
                loss: AttackLoss::Ce,
            },
            *restarts,
        )?),
        A::Apgd {
            norm,
            eps,
            loss,
            steps,
            restarts,
        } => Box::new(apgd::Apgd::new(
            apgd::ApgdConfig::new(*norm, *eps as f32, *loss, *steps, *restarts),
            ctx.classes,
        )?),
        A::ApgdT {
            norm,
            eps,
            steps,
            restarts,
            targets,
        } => Box::new(apgd::ApgdT::new(
            apgd::ApgdConfig::new(
                *norm,
                *eps as f32,
                salient_ir::ApgdLoss::Dlr,
                *steps,
                *restarts,
            ),
            *targets,
            ctx.classes,
        )?),
        A::Square {
            norm,
            eps,
            queries,
            p_init,
        } => Box::new(square::Square::new(
            square::SquareConfig {
                norm: *norm,
                eps: *eps as f32,
                queries: *queries,
                p_init: *p_init,
            },
            square::ImageDims::of(ctx.input),
        )?),
        A::AutoAttack {
            norm,
            eps,
            version,
            components,
        } => Box::new(autoattack::AutoAttack::new(
            *norm,
            *eps as f32,
            *version,
            components,
            ctx,
        )?),
        A::Fab {
            norm,
            eps,
            steps,
            restarts,
            targets,
        } => Box::new(fab::Fab::new(
            fab::FabConfig {
                steps: *steps,
                restarts: *restarts,
                targets: *targets,
                ..fab::FabConfig::autoattack(*norm, *eps as f32, false)
            },
            ctx.classes,
        )?),
        A::Cw {
            steps,
            binary_steps,
            lr,
            initial_const,
            confidence,
            ..
        } => Box::new(cw::Cw::new(
            cw::CwConfig {
                steps: *steps,
                binary_steps: *binary_steps,
                lr: *lr as f32,
                initial_const: *initial_const as f32,
                confidence: *confidence as f32,
            },
            ctx.classes,
        )?),
        A::DeepFool {
            norm,
            steps,
            overshoot,
            candidates,
            ..
        } => Box::new(deepfool::DeepFool::new(
            deepfool::DeepFoolConfig {
                norm: *norm,
                steps: *steps,
                overshoot: *overshoot as f32,
                candidates: *candidates,
            },
            ctx.classes,
        )?),
    })
}
