//! `train { ... }`: which models, the optimizer, learning rate and schedule, epochs, batch, seed.
//! A list anywhere in `train` multiplies every training run.

use super::memory::DEFAULT_MAX_MEMORY_GIB;
use super::reader::{call_value, Settings};
use super::sweep::{self, Axis};
use super::Ctx;
use crate::ast::{Decl, Entry, Setting};
use crate::diag::{Code, Diagnostic, Span};
use crate::suggest;
use salient_ir::{Optimizer, Schedule, TrainConfig};

const KEYS: &[&str] = &[
    "model",
    "optimizer",
    "lr",
    "schedule",
    "weight_decay",
    "epochs",
    "batch",
    "seed",
    "max_memory",
];
pub const OPTIMIZERS: &[&str] = &["sgd", "adam", "adadelta"];
pub const SCHEDULES: &[&str] = &["constant", "step", "cosine"];

/// One point of the training grid.
pub struct TrainPoint {
    /// The model to train (None: every model of the spec).
    pub model: Option<String>,
    pub config: TrainConfig,
    /// `key=value` of each sweep axis at this point.
    pub values: Vec<(String, String)>,
}

pub struct TrainDecl {
    pub axes: Vec<Axis>,
    pub points: Vec<TrainPoint>,
    /// The ceiling on a run's estimated memory, in GiB (`max_memory`; a check-time setting,
    /// not part of the IR).
    pub max_memory: f64,
}

pub fn lower(ctx: &mut Ctx, d: &Decl, models: &[(String, Span)]) -> TrainDecl {
    let Some(body) = &d.body else {
        return TrainDecl {
            axes: Vec::new(),
            points: Vec::new(),
            max_memory: DEFAULT_MAX_MEMORY_GIB,
        };
    };
    let (axes, grid) = sweep::expand(ctx, "train", "`train`", body, true);
    if let Some(a) = axes.iter().find(|a| a.key == "max_memory") {
        ctx.push(
            Diagnostic::new(
                Code::SweepNotAllowed,
                a.span,
                "`max_memory` is a limit of the check, not a training setting: it cannot be swept",
            )
            .with_label("list here")
            .with_help("give one number of GiB, e.g. `max_memory = 64`"),
        );
    }
    let mut max_memory = DEFAULT_MAX_MEMORY_GIB;
    let mut points = Vec::new();
    for p in &grid {
        let settings: Vec<&Setting> = p
            .body
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Setting(s) => Some(s),
                Entry::Item(v) => {
                    ctx.push(
                        Diagnostic::new(
                            Code::WrongType,
                            v.span,
                            "`train` holds settings `key = value`, not items",
                        )
                        .with_label("expected `key = value`"),
                    );
                    None
                }
            })
            .collect();
        let s = Settings::new(ctx, "`train`", d.head_span(), settings, KEYS);
        let model = s.get("model").and_then(|v| {
            let (name, args) = call_value(ctx, "model", v, "a model name")?;
            if !args.is_empty() {
                ctx.push(
                    Diagnostic::new(Code::WrongType, v.span, "`model` expects a model name")
                        .with_label("no arguments expected"),
                );
            }
            if !models.iter().any(|(m, _)| *m == name.name) {
                let names: Vec<&str> = models.iter().map(|(m, _)| m.as_str()).collect();
                let help = if names.is_empty() {
                    "define it with `model NAME { ... }`".to_string()
                } else {
                    suggest::help(&name.name, &names)
                };
                ctx.push(
                    Diagnostic::new(
                        Code::UndefinedModel,
                        name.span,
                        format!("no model named `{}`", name.name),
                    )
                    .with_label("undefined model")
                    .with_help(help),
                );
                return None;
            }
            Some(name.name.clone())
        });
        let optimizer = optimizer(ctx, &s);
        let default_lr = match optimizer {
            Optimizer::Adadelta { .. } => 1.0,
            Optimizer::Sgd { .. } => 0.01,
            Optimizer::Adam { .. } => 1e-3,
        };
        let lr = s
            .num(ctx, "lr")
            .map_or(default_lr, |v| ctx.positive("lr", v));
        if let Some((_, span)) = s.num(ctx, "lr").filter(|(v, _)| *v > 1.0) {
            if matches!(optimizer, Optimizer::Adam { .. }) || lr > 10.0 {
                ctx.push(
                    Diagnostic::new(
                        Code::LargeLr,
                        span,
                        format!(
                            "a learning rate of {lr} is unusually large for {}",
                            opt_name(&optimizer)
                        ),
                    )
                    .with_label("large learning rate")
                    .with_help("Adam usually uses 1e-4 to 1e-2; Adadelta 1.0"),
                );
            }
        }
        let schedule = schedule(ctx, &s);
        let weight_decay = s
            .num(ctx, "weight_decay")
            .map_or(0.0, |v| ctx.non_negative("weight_decay", v));
        if weight_decay > MAX_F32 {
            ctx.range_error(
                s.span_of("weight_decay"),
                format!("`weight_decay = {weight_decay}` is not a finite 32-bit float; training computes in f32"),
                Some("the limit is 3.4e38; usual values are 1e-5 to 1e-3"),
            );
        }
        let epochs = s
            .whole(ctx, "epochs")
            .map_or(10, |v| ctx.whole_between("epochs", v, 1, 100_000));
        let peak = peak_step(lr, &optimizer, &schedule, epochs);
        if peak > MAX_F32 {
            // Blame the learning rate when it was written, else the schedule that grows it.
            let at = if s.get("lr").is_some() || s.get("schedule").is_none() {
                s.span_of("lr")
            } else {
                s.span_of("schedule")
            };
            ctx.push(
                Diagnostic::new(
                    Code::OutOfRange,
                    at,
                    format!(
                        "the largest step size of this training, {peak:e}, is not a finite 32-bit float"
                    ),
                )
                .with_label("learning rate out of range")
                .with_help(format!(
                    "training computes in f32 (at most 3.4e38): the optimizer would write infinite weights at the first step; the step size is lr{}{}",
                    match optimizer {
                        Optimizer::Adam { .. } => " / (1 - beta1) (Adam's first bias correction)",
                        _ => "",
                    },
                    match schedule {
                        Schedule::Step { gamma, .. } if gamma > 1.0 => " x gamma^(decays) at the last epoch",
                        _ => "",
                    }
                )),
            );
        }
        let batch = s
            .whole(ctx, "batch")
            .map_or(128, |v| ctx.whole_between("batch", v, 1, 1 << 20));
        let seed = s.whole(ctx, "seed").map_or(0, |(v, _)| v);
        if let Some(v) = s.num(ctx, "max_memory") {
            max_memory = ctx.positive("max_memory", v);
        }
        let values = p
            .values(&axes)
            .into_iter()
            .filter(|(k, _)| *k != "max_memory")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        points.push(TrainPoint {
            model,
            config: TrainConfig {
                optimizer,
                lr,
                schedule,
                weight_decay,
                epochs,
                batch,
                seed,
            },
            values,
        });
    }
    TrainDecl {
        axes,
        points,
        max_memory,
    }
}

/// Largest finite f32, as f64: the engine trains in f32, so a step size above this becomes
/// infinite when the optimizer applies it (salient-nn's `axpy` converts its scale to f32).
const MAX_F32: f64 = f32::MAX as f64;

/// The largest factor the optimizer multiplies an update by during the run: the schedule's
/// peak learning rate (a step schedule with `gamma > 1` grows it, `gamma^⌊(epochs - 1) / every⌋`
/// at the last epoch; constant and cosine start at `lr` and never exceed it), divided for Adam
/// by its first bias correction `1 - beta1` (salient-nn's Adam applies `lr / (1 - beta1^t)`).
pub fn peak_step(lr: f64, optimizer: &Optimizer, schedule: &Schedule, epochs: usize) -> f64 {
    let peak_lr = match *schedule {
        Schedule::Step { every, gamma } if gamma > 1.0 => {
            let decays = (epochs.saturating_sub(1) / every.max(1)) as f64;
            lr * gamma.powf(decays)
        }
        _ => lr,
    };
    match *optimizer {
        Optimizer::Adam { beta1, .. } => peak_lr / (1.0 - beta1),
        _ => peak_lr,
    }
}

fn opt_name(o: &Optimizer) -> &'static str {
    match o {
        Optimizer::Sgd { .. } => "sgd",
        Optimizer::Adam { .. } => "adam",
        Optimizer::Adadelta { .. } => "adadelta",
    }
}

/// `sgd(momentum, nesterov) | adam(beta1, beta2, eps) | adadelta(rho, eps)`; default `adam`.
fn optimizer(ctx: &mut Ctx, s: &Settings) -> Optimizer {
    let default = Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let Some(v) = s.get("optimizer") else {
        return default;
    };
    let Some((name, args)) = call_value(ctx, "optimizer", v, "an optimizer") else {
        return default;
    };
    match name.name.as_str() {
        "sgd" => {
            let a = Settings::new(ctx, "`sgd`", name.span, args, &["momentum", "nesterov"]);
            let momentum = a
                .num(ctx, "momentum")
                .map_or(0.0, |v| ctx.between("momentum", v, 0.0, 1.0, false, true));
            let nesterov = a.boolean(ctx, "nesterov").unwrap_or(false);
            if nesterov && momentum == 0.0 {
                ctx.push(
                    Diagnostic::new(
                        Code::Incompatible,
                        a.span_of("nesterov"),
                        "Nesterov momentum needs `momentum` above 0",
                    )
                    .with_label("no momentum to look ahead with")
                    .with_help("add e.g. `momentum = 0.9`"),
                );
            }
            Optimizer::Sgd { momentum, nesterov }
        }
        "adam" => {
            let a = Settings::new(ctx, "`adam`", name.span, args, &["beta1", "beta2", "eps"]);
            let beta1 = a
                .num(ctx, "beta1")
                .map_or(0.9, |v| ctx.between("beta1", v, 0.0, 1.0, false, true));
            let beta2 = a
                .num(ctx, "beta2")
                .map_or(0.999, |v| ctx.between("beta2", v, 0.0, 1.0, false, true));
            let eps = a.num(ctx, "eps").map_or(1e-8, |v| ctx.positive("eps", v));
            Optimizer::Adam { beta1, beta2, eps }
        }
        "adadelta" => {
            let a = Settings::new(ctx, "`adadelta`", name.span, args, &["rho", "eps"]);
            let rho = a
                .num(ctx, "rho")
                .map_or(0.9, |v| ctx.between("rho", v, 0.0, 1.0, true, true));
            let eps = a.num(ctx, "eps").map_or(1e-6, |v| ctx.positive("eps", v));
            Optimizer::Adadelta { rho, eps }
        }
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::UnknownChoice,
                    name.span,
                    format!("unknown optimizer `{other}`"),
                )
                .with_label("unknown optimizer")
                .with_help(suggest::help(other, OPTIMIZERS)),
            );
            default
        }
    }
}

/// `constant | step(every, gamma) | cosine`; default `constant`.
fn schedule(ctx: &mut Ctx, s: &Settings) -> Schedule {
    let Some(v) = s.get("schedule") else {
        return Schedule::Constant;
    };
    let Some((name, args)) = call_value(ctx, "schedule", v, "a schedule") else {
        return Schedule::Constant;
    };
    match name.name.as_str() {
        "constant" | "cosine" => {
            Settings::new(ctx, format!("`{}`", name.name), name.span, args, &[]);
            if name.name == "constant" {
                Schedule::Constant
            } else {
                Schedule::Cosine
            }
        }
        "step" => {
            let a = Settings::new(ctx, "`step`", name.span, args, &["every", "gamma"]);
            if a.get("every").is_none() {
                a.missing(ctx, "every", "10");
            }
            let every = a
                .whole(ctx, "every")
                .map_or(1, |v| ctx.at_least("every", v, 1));
            let gamma = a
                .num(ctx, "gamma")
                .map_or(0.1, |v| ctx.positive("gamma", v));
            Schedule::Step { every, gamma }
        }
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::UnknownChoice,
                    name.span,
                    format!("unknown schedule `{other}`"),
                )
                .with_label("unknown schedule")
                .with_help(suggest::help(other, SCHEDULES)),
            );
            Schedule::Constant
        }
    }
}
