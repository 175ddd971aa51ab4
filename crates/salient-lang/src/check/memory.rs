//! The training-memory estimate: what one training run holds in memory at once, computed from
//! the IR's shapes (the checker never sees the engine's tensors). A spec whose estimate exceeds
//! the ceiling is an error (E072), so that `run` does not abort with "memory allocation of N
//! bytes failed" hours into a grid.
//!
//! For a run of model `m` with `P` parameters, per-example activations `A` (the input plus every
//! layer's output, residual bodies included, in f32), batch `B = max(train batch, eval batch)`
//! (each at most the size of its set, when known)
//! and a data set of `N` images of `c x h x w`, all in f32 (4 bytes):
//!
//! ```text
//! weights     = 4 P
//! gradients   = 4 P
//! optimizer   = 4 P x (2 for adam and adadelta, 1 for sgd with momentum, 0 for plain sgd)
//! activations = 4 A x 2 x B     (the values the tape keeps for backward, and their gradients)
//! data        = 4 c h w x (train + test)
//! total       = the sum
//! ```
//!
//! It is an estimate, not a bound (regimes that attack during training and the allocator's
//! slack add to it; an evaluation without attacks or saliency keeps fewer activations than it
//! counts), meant to catch the specs that cannot run at all. The
//! ceiling is [`DEFAULT_MAX_MEMORY_GIB`] GiB, raised or lowered with `train { max_memory = G }`.

use super::Ctx;
use crate::diag::{Code, Diagnostic, Span};
use salient_ir::{DataKind, DataSpec, Experiment, Layer, LayerDef, ModelDef, Optimizer, TrainRun};

/// The default ceiling on a training run's estimated memory, in GiB (`train { max_memory }`).
pub const DEFAULT_MAX_MEMORY_GIB: f64 = 32.0;

const GIB: f64 = (1u64 << 30) as f64;
const F32: f64 = 4.0;

/// One training run's estimated memory, in bytes (as f64: the products can exceed u64 for
/// absurd specs, and an estimate needs no exactness).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryEstimate {
    pub weights: f64,
    pub gradients: f64,
    pub optimizer: f64,
    /// Activations of one example (forward values and their gradients).
    pub per_example: f64,
    /// The batch the activations are counted for: the larger of the train and eval batch, each
    /// at most the examples of its set when their count is known.
    pub batch: usize,
    pub activations: f64,
    /// The training and test images, when their count is known (not for `idx` without
    /// `train`/`test`: the count is in the files).
    pub data: f64,
    pub total: f64,
}

/// Every layer's output size, residual bodies included, plus the input: the f32 values one
/// example's forward pass keeps.
fn activation_elems(model: &ModelDef) -> f64 {
    fn walk(layers: &[LayerDef]) -> f64 {
        layers
            .iter()
            .map(|l| {
                let own = l.output.numel() as f64;
                match &l.kind {
                    Layer::Residual { body, .. } => own + walk(body),
                    _ => own,
                }
            })
            .sum()
    }
    model.input.numel() as f64 + walk(&model.layers)
}

/// Training and test images the data set holds in memory: the given subset sizes, else the
/// full sets' sizes; `None` where the count is only in the files (`idx` without `train`/`test`).
fn data_images(data: &DataSpec) -> (Option<usize>, Option<usize>) {
    let (train, test) = match &data.kind {
        DataKind::Mnist | DataKind::FashionMnist => (Some(60_000), Some(10_000)),
        DataKind::Cifar10 {
            train_files,
            test_files,
        } => (
            Some(10_000 * train_files.len()),
            Some(10_000 * test_files.len()),
        ),
        DataKind::Idx => (None, None),
        DataKind::Synthetic { train, test, .. } => (Some(*train), Some(*test)),
    };
    (data.train.or(train), data.test.or(test))
}

/// The estimate for `run` of `exp` (None when its model is not in `exp`).
pub fn training_memory(exp: &Experiment, run: &TrainRun) -> Option<MemoryEstimate> {
    let model = exp.models.iter().find(|m| m.name == run.model)?;
    let p = model.params as f64;
    let states = match run.train.optimizer {
        Optimizer::Adam { .. } | Optimizer::Adadelta { .. } => 2.0,
        Optimizer::Sgd { momentum, .. } => {
            if momentum > 0.0 {
                1.0
            } else {
                0.0
            }
        }
    };
    // A batch holds at most the examples there are.
    let (n_train, n_test) = data_images(&exp.data);
    let train_batch = n_train.map_or(run.train.batch, |n| run.train.batch.min(n));
    let eval_batch = n_test.map_or(exp.eval.batch, |n| exp.eval.batch.min(n));
    let batch = train_batch.max(eval_batch);
    let per_example = F32 * 2.0 * activation_elems(model);
    let weights = F32 * p;
    let gradients = F32 * p;
    let optimizer = F32 * p * states;
    let activations = per_example * batch as f64;
    let images = (n_train.unwrap_or(0) + n_test.unwrap_or(0)) as f64;
    let data = F32 * exp.data.shape.numel() as f64 * images;
    Some(MemoryEstimate {
        weights,
        gradients,
        optimizer,
        per_example,
        batch,
        activations,
        data,
        total: weights + gradients + optimizer + activations + data,
    })
}

/// `1536` -> `1.5 KiB`, in binary units.
pub fn human(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else if v >= 1000.0 {
        format!("{v:.3e} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Where to point a memory error.
pub struct Spans {
    /// Each model name's span.
    pub models: Vec<(String, Span)>,
    /// The `data` declaration's head.
    pub data: Span,
    /// `train`'s `batch` setting, else its head.
    pub batch: Span,
    /// The eval `batch` setting, when written.
    pub eval_batch: Option<Span>,
}

/// Report each model (at its largest training run) whose estimate exceeds `max_gib` GiB.
pub fn check(ctx: &mut Ctx, exp: &Experiment, spans: &Spans, max_gib: f64) {
    let limit = max_gib * GIB;
    let mut reported: Vec<&str> = Vec::new();
    // The largest run of each model.
    let mut worst: Vec<(&TrainRun, MemoryEstimate)> = Vec::new();
    for run in &exp.runs {
        let Some(est) = training_memory(exp, run) else {
            continue;
        };
        match worst.iter_mut().find(|(r, _)| r.model == run.model) {
            Some(w) if w.1.total < est.total => *w = (run, est),
            Some(_) => {}
            None => worst.push((run, est)),
        }
    }
    for (run, est) in worst {
        if est.total <= limit || reported.contains(&run.model.as_str()) {
            continue;
        }
        reported.push(&run.model);
        let parts = [
            (est.weights + est.gradients + est.optimizer, "model"),
            (est.activations, "activations"),
            (est.data, "data"),
        ];
        let largest = parts
            .iter()
            .fold(parts[0], |a, b| if b.0 > a.0 { *b } else { a })
            .1;
        let model_span = spans
            .models
            .iter()
            .find(|(n, _)| *n == run.model)
            .map_or(spans.data, |(_, s)| *s);
        let (span, label, help) = match largest {
            "activations" => {
                let at = if est.batch > run.train.batch {
                    spans.eval_batch.unwrap_or(spans.batch)
                } else {
                    spans.batch
                };
                (
                    at,
                    format!(
                        "{} of activations: {} per example x batch {}",
                        human(est.activations),
                        human(est.per_example),
                        est.batch
                    ),
                    "lower `batch` (in `train`, and in `eval`), or shrink the model's layers",
                )
            }
            "data" => (
                spans.data,
                format!("{} of images", human(est.data)),
                "use fewer examples (`train = N`, `test = N`) or a smaller `shape`",
            ),
            _ => (
                model_span,
                format!(
                    "{} parameters: {} with gradients and optimizer state",
                    exp.models
                        .iter()
                        .find(|m| m.name == run.model)
                        .map_or(0, |m| m.params),
                    human(est.weights + est.gradients + est.optimizer)
                ),
                "use fewer or narrower layers",
            ),
        };
        let mut d = Diagnostic::new(
            Code::MemoryLimit,
            span,
            format!(
                "training model `{}` needs about {} of memory (weights {}, gradients {}, optimizer state {}, activations {}, data {}); the limit is {max_gib} GiB",
                run.model,
                human(est.total),
                human(est.weights),
                human(est.gradients),
                human(est.optimizer),
                human(est.activations),
                human(est.data),
            ),
        )
        .with_label(label)
        .with_help(format!(
            "{help}; or, on a machine with more memory, raise the limit with `train {{ max_memory = {} }}` (GiB)",
            (est.total / GIB).ceil().max(1.0)
        ));
        if span != model_span {
            d = d.with_secondary(model_span, "the model");
        }
        ctx.push(d);
    }
}
