//! Clean evaluation: accuracy and per-class accuracy, batched, network in eval mode.
use crate::losses::argmax_rows;
use dfdx::prelude::*;
use salient_data::Dataset;
use salient_nn::{Mode, Network};

#[derive(Clone, Debug, PartialEq)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
    /// (correct, total) per class.
    pub per_class: Vec<(usize, usize)>,
}

impl Accuracy {
    pub fn value(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Logits of the examples `idx` of `data`, in eval mode, as a host vector (len(idx) x classes).
pub fn logits_of<D: Device<f32>>(net: &mut Network<D>, data: &Dataset, idx: &[usize]) -> Vec<f32> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    data.gather(idx, &mut xs, &mut ys);
    let n = data.shape.numel();
    let x = net.device().tensor_from_vec(xs, (idx.len(), n));
    net.forward(x, Mode::Eval).as_vec()
}

/// Accuracy of `net` on every example of `data`, `batch` at a time.
pub fn accuracy<D: Device<f32>>(net: &mut Network<D>, data: &Dataset, batch: usize) -> Accuracy {
    let classes = data.classes;
    let mut acc = Accuracy {
        correct: 0,
        total: 0,
        per_class: vec![(0, 0); classes],
    };
    let all: Vec<usize> = (0..data.len()).collect();
    for idx in all.chunks(batch.max(1)) {
        let logits = logits_of(net, data, idx);
        for (&i, p) in idx.iter().zip(argmax_rows(&logits, classes)) {
            let y = data.labels[i] as usize;
            let hit = (p == y) as usize;
            acc.correct += hit;
            acc.total += 1;
            acc.per_class[y].0 += hit;
            acc.per_class[y].1 += 1;
        }
    }
    acc
}
