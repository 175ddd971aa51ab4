//! AutoAttack (Croce and Hein 2020, "Reliable evaluation of adversarial robustness with an
//! ensemble of diverse parameter-free attacks", ICML; the versions of their code since
//! August 2020).
//!
//! An ensemble run in a fixed order: each component attacks only the examples every earlier
//! component left robust, and an example is robust only if it survives all of them (the
//! per-example worst case). The outcome records, per example, the component that broke it
//! (`broken_by`, an index into [`AutoAttack::components`]), as the authors' code prints it.
//!
//! Versions (the settings of the authors' `AutoAttack(version=...)`):
//!
//! | version | components, in order |
//! |---|---|
//! | `standard` | APGD-CE (100 steps, 1 restart), APGD-T (100 steps, 9 targets, 1 restart), FAB-T (100 steps, 9 targets, 1 restart), Square (5000 queries, p_init 0.8) |
//! | `plus` | APGD-CE (5 restarts), APGD-DLR (5 restarts), FAB (5 restarts), Square (5000 queries), APGD-T (9 targets), FAB-T (9 targets) |
//! | `rand` | APGD-CE and APGD-DLR (1 restart each), gradients averaged over 20 passes (EOT) |
//!
//! A spec may list the components to run (`components = (apgd_ce, square)`), each with the
//! settings of its version, so each component can also run alone. The number of targets is
//! at most the number of classes minus one.
use super::apgd::{Apgd, ApgdConfig, ApgdT};
use super::rows::{bucket, bucket_fine, in_stages_padded, AttackError, AttackOutcome};
use super::square::{ImageDims, Square, SquareConfig};
use super::{Attack, AttackContext};
use crate::ops::Mat;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use salient_ir::{ApgdLoss, AutoAttackComponent, AutoAttackVersion, Norm};
use salient_nn::Network;

/// With this environment variable set, each component's wall time and working-set size are
/// printed to stderr (bench/aa_speed/run.sh reads them).
pub const TIMING_VAR: &str = "SALIENT_AA_TIMES";

/// Iterations of APGD and FAB in every version.
pub const STEPS: usize = 100;
/// Target classes of APGD-T and FAB-T.
pub const TARGETS: usize = 9;
/// Square's query budget.
pub const SQUARE_QUERIES: usize = 5000;
/// Square's initial square fraction.
pub const SQUARE_P_INIT: f64 = 0.8;
/// Restarts of APGD-CE, APGD-DLR and FAB in the `plus` version.
pub const PLUS_RESTARTS: usize = 5;
/// EOT passes per step in the `rand` version.
pub const RAND_EOT: usize = 20;

/// AutoAttack's ensemble.
pub struct AutoAttack<D: Device<f32>> {
    components: Vec<AutoAttackComponent>,
    parts: Vec<Box<dyn Attack<D>>>,
    /// Per component: it draws no random number for any row (FAB and FAB-T without random
    /// restarts), so it may get its working set with less padding (see [`AutoAttack::run`]).
    draw_free: Vec<bool>,
}

impl<D: Device<f32>> AutoAttack<D> {
    /// The ensemble of `version` at `norm` and `eps`, or the `components` listed (each with
    /// its version's settings) when the list is not empty.
    pub fn new(
        norm: Norm,
        eps: f32,
        version: AutoAttackVersion,
        components: &[AutoAttackComponent],
        ctx: &AttackContext,
    ) -> Result<Self, AttackError> {
        let components = if components.is_empty() {
            version.components()
        } else {
            components.to_vec()
        };
        if components.is_empty() {
            return super::invalid("AutoAttack needs at least one component");
        }
        let parts = components
            .iter()
            .map(|&c| {
                component(c, version, norm, eps, ctx)
                    .map_err(|e| AttackError(format!("AutoAttack's {}: {}", c.name(), e.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let draw_free = components
            .iter()
            .map(|&c| match c {
                AutoAttackComponent::FabT => true,
                AutoAttackComponent::Fab => version != AutoAttackVersion::Plus,
                _ => false,
            })
            .collect();
        Ok(AutoAttack {
            components,
            parts,
            draw_free,
        })
    }

    /// The components, in the order they run.
    pub fn components(&self) -> &[AutoAttackComponent] {
        &self.components
    }
}

/// One component with its version's settings.
fn component<D: Device<f32>>(
    c: AutoAttackComponent,
    version: AutoAttackVersion,
    norm: Norm,
    eps: f32,
    ctx: &AttackContext,
) -> Result<Box<dyn Attack<D>>, AttackError> {
    use AutoAttackComponent as C;
    let restarts = if version == AutoAttackVersion::Plus {
        PLUS_RESTARTS
    } else {
        1
    };
    let eot = if version == AutoAttackVersion::Rand {
        RAND_EOT
    } else {
        1
    };
    let targets = TARGETS.min(ctx.classes.saturating_sub(1));
    let apgd = |loss, restarts| ApgdConfig {
        eot,
        ..ApgdConfig::new(norm, eps, loss, STEPS, restarts)
    };
    let fab = |restarts, targets| salient_ir::Attack::Fab {
        norm,
        eps: eps as f64,
        steps: STEPS,
        restarts,
        targets,
    };
    Ok(match c {
        C::ApgdCe => Box::new(Apgd::new(apgd(ApgdLoss::Ce, restarts), ctx.classes)?),
        C::ApgdDlr => Box::new(Apgd::new(apgd(ApgdLoss::Dlr, restarts), ctx.classes)?),
        C::ApgdT => Box::new(ApgdT::new(apgd(ApgdLoss::Dlr, 1), targets, ctx.classes)?),
        C::Fab => super::build(&fab(restarts, 0), ctx)?,
        C::FabT => super::build(&fab(1, targets), ctx)?,
        C::Square => Box::new(Square::new(
            SquareConfig {
                norm,
                eps,
                queries: SQUARE_QUERIES,
                p_init: SQUARE_P_INIT,
            },
            ImageDims::of(ctx.input),
        )?),
    })
}

impl<D: Device<f32>> Attack<D> for AutoAttack<D> {
    fn run(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> AttackOutcome<D> {
        let parts = &mut self.parts;
        let (components, draw_free) = (&self.components, &self.draw_free);
        let timing = std::env::var_os(TIMING_VAR).is_some();
        // The components attack `bucket`'s padding rows (copies of the first example) as
        // examples; one that draws no random numbers gets `bucket_fine`'s smaller padding: its
        // result on every real row is the same (rows do not interact) and the random stream is
        // untouched, so the later components see the same generator state.
        let size = |k: usize, m: usize, full: usize| match draw_free[k] {
            true => bucket_fine(m, full),
            false => bucket(m, full),
        };
        in_stages_padded(x, labels, parts.len(), size, |k, xs, ys, work| {
            let start = std::time::Instant::now();
            let out = parts[k].run(net, xs, ys, rng);
            if timing {
                let (padded_rows, n) = *out.x_adv.shape();
                let seconds = start.elapsed().as_secs_f64();
                let points = work.iter().collect::<std::collections::BTreeSet<_>>().len();
                // A fingerprint of the outcome, to check that a faster build computes the same.
                let checksum = out.x_adv.as_vec()[..points * n].iter().fold(0u64, |h, v| {
                    (h ^ v.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
                });
                let broken = out.robust[..points].iter().filter(|&&r| !r).count();
                eprintln!(
                    "autoattack: {} on {points} points ({} rows with padding): {seconds:.3} s, \
                     {broken} broken, x_adv checksum {checksum:016x}",
                    components[k].name(),
                    padded_rows,
                );
            }
            out
        })
    }
}
