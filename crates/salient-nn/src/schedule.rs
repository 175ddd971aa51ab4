//! Learning-rate schedules: the learning rate of a given step from the base rate and the IR's
//! [`salient_ir::Schedule`]. Formulas (torch equivalents in `docs/training.md`):
//!
//! - constant: `lr = base`;
//! - step: `lr = base · γ^⌊epoch / every⌋` (torch's `StepLR(step_size=every, gamma=γ)`,
//!   stepped once per epoch);
//! - cosine: `lr = base · ½ · (1 + cos(π · t / T))` with `t` the global step
//!   (`epoch · steps_per_epoch + step_in_epoch`, from 0) and `T = epochs · steps_per_epoch`
//!   (torch's `CosineAnnealingLR(T_max=T, eta_min=0)` stepped once per batch).

use salient_ir::Schedule;

/// The learning rate of step `step_in_epoch` (from 0) of epoch `epoch` (from 0), for a run of
/// `epochs` epochs of `steps_per_epoch` steps each.
///
/// Degenerate arguments never panic: `every = 0` is treated as "never decay", a run with no
/// steps (`T = 0`) gets `base`, and steps past the end are clamped to `t = T` (lr 0 for
/// cosine).
pub fn lr_at(
    base: f64,
    schedule: &Schedule,
    epoch: usize,
    step_in_epoch: usize,
    steps_per_epoch: usize,
    epochs: usize,
) -> f64 {
    match *schedule {
        Schedule::Constant => base,
        Schedule::Step { every, gamma } => {
            let decays = epoch.checked_div(every).unwrap_or(0);
            base * gamma.powf(decays as f64)
        }
        Schedule::Cosine => {
            let total = epochs.saturating_mul(steps_per_epoch);
            if total == 0 {
                return base;
            }
            let t = epoch
                .saturating_mul(steps_per_epoch)
                .saturating_add(step_in_epoch)
                .min(total);
            base * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / total as f64).cos())
        }
    }
}
