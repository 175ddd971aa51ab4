//! Errors of the network layer: never a panic on bad input.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NnError {
    /// A model definition the network cannot build (should have been caught by the checker).
    #[error("cannot build model `{model}`: {reason}")]
    Build { model: String, reason: String },
    /// A tensor whose shape does not match what was expected.
    #[error("shape mismatch for `{what}`: expected {expected}, found {found}")]
    Shape {
        what: String,
        expected: String,
        found: String,
    },
    /// Checkpoint I/O and format problems, naming the file.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// An optimizer hyperparameter outside its valid range (as `torch.optim` rejects it).
    #[error("optimizer {optimizer}: {reason}")]
    Optimizer { optimizer: String, reason: String },
    /// A device (CPU/CUDA) error.
    #[error("device error: {0}")]
    Device(String),
}
