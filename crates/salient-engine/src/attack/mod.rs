//! Attacks on the [0, 1] pixel box, on logits.
//!
//! - [`pgd`]: PGD (Madry et al. 2018), shared by adversarial training regimes (the caller
//!   chooses the network mode) and evaluation (`pgd_restarts`, eval mode, restarts);
//! - [`fgsm`], [`apgd`] (APGD-CE / APGD-DLR), [`square`]: evaluation attacks;
//! - [`eval`]: the entry point [`attack_batch`] for a [`salient_ir::AttackSpec`] and the
//!   per-example bookkeeping (first adversarial example, restarts) the attacks share.
pub mod apgd;
pub mod eval;
pub mod fgsm;
pub mod pgd;
pub mod square;

pub use eval::{attack_batch, AttackError, AttackOutcome};
pub use pgd::{pgd, random_start, AttackLoss, PgdConfig};
