//! Whether a forward pass trains or evaluates.

/// Train mode: dropout is active and batchnorm normalises with batch statistics (and updates its
/// running statistics). Eval mode: dropout is the identity and batchnorm uses running statistics.
/// Same meaning as PyTorch's `module.train()` / `module.eval()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}
