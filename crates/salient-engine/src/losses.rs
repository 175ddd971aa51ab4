//! Losses on logits, shared by every regime.
//!
//! Conventions: logits are (B, classes); `*_mean` losses average over the batch (what training
//! minimises), `*_sum` losses sum over it (so that an input gradient is the per-example
//! gradient, unscaled by the batch size).
use dfdx::prelude::*;

pub type Logits<D, T> = Tensor<(usize, usize), f32, D, T>;

/// One-hot targets (B, classes) on the device.
pub fn one_hot<D: Device<f32>>(
    dev: &D,
    labels: &[usize],
    classes: usize,
) -> Tensor<(usize, usize), f32, D> {
    let mut v = vec![0.0f32; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        v[i * classes + y] = 1.0;
    }
    dev.tensor_from_vec(v, (labels.len(), classes))
}

/// Mean over the batch of the cross-entropy -log softmax(z)_y.
pub fn ce_mean<D: Device<f32>, T: Tape<f32, D>>(
    logits: Logits<D, T>,
    onehot: &Tensor<(usize, usize), f32, D>,
) -> Tensor<Rank0, f32, D, T> {
    let b = logits.shape().0 as f32;
    ce_sum(logits, onehot) / b
}

/// Sum over the batch of the cross-entropy.
pub fn ce_sum<D: Device<f32>, T: Tape<f32, D>>(
    logits: Logits<D, T>,
    onehot: &Tensor<(usize, usize), f32, D>,
) -> Tensor<Rank0, f32, D, T> {
    (logits.log_softmax::<Axis<1>>() * onehot.clone())
        .sum()
        .negate()
}

/// Mean over the batch of KL(p || q) = sum_j p_j (log p_j - log q_j), with p = softmax(p_logits)
/// and q = softmax(q_logits). Gradients flow through both arguments (SGT, TRADES).
///
/// `p_logits` carries no tape: it is a tensor of the same graph whose tape was moved onto
/// `q_logits` (see `salient_nn::Network::forward` and dfdx's `split_tape`/`put_tape`).
pub fn kl_mean<D: Device<f32>>(
    p_logits: Logits<D, NoneTape>,
    q_logits: Logits<D, OwnedTape<f32, D>>,
) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>> {
    let b = q_logits.shape().0 as f32;
    let (q_logits, tape) = q_logits.split_tape();
    let log_p = p_logits.put_tape(tape).log_softmax::<Axis<1>>();
    let (log_p, tape) = log_p.split_tape();
    let p = log_p.clone().put_tape(tape).exp();
    let (p, tape) = p.split_tape();
    let log_q = q_logits.put_tape(tape).log_softmax::<Axis<1>>();
    let diff = log_p.retaped::<OwnedTape<f32, D>>() - log_q;
    (p.retaped::<OwnedTape<f32, D>>() * diff).sum() / b
}

/// Index of the largest logit of each row (host side).
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Number of rows whose argmax equals the label.
pub fn correct(logits: &[f32], classes: usize, labels: &[usize]) -> usize {
    argmax_rows(logits, classes)
        .iter()
        .zip(labels)
        .filter(|(p, y)| p == y)
        .count()
}
