//! Gradient attacks on the [0, 1] pixel box, shared by adversarial training regimes and (later)
//! the evaluation attacks. Attacks run on logits; the caller chooses the network mode.
pub mod pgd;

pub use pgd::{pgd, random_start, AttackLoss, PgdConfig};
