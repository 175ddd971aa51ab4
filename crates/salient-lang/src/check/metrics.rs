//! `metrics { ... }`, `eval { ... }` and `report { ... }`: what to measure, on how many test
//! examples, and what the report contains. None of these take sweeps.

use super::reader::{whole_value, Settings};
use super::regime::{body_settings, fill_value};
use super::{check_form, empty_body, sweep, Ctx, Part};
use crate::ast::{Decl, Entry, Value, ValueKind};
use crate::diag::{Code, Diagnostic, Span};
use crate::suggest;
use salient_ir::{DataKind, DataSpec, EvalSpec, Fill, MetricSpec, ReportSpec, RetrainSpec};

/// The metrics a spec can list. Adding a metric = a variant here (the compiler then lists
/// [`MetricKind::name`], [`MetricKind::keys`] and [`lower_metric`]), a `salient_ir::MetricSpec`
/// variant and its engine file in `salient-engine/src/metrics/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    CleanAccuracy,
    RobustAccuracy,
    Sparseness,
    Complexity,
    Deletion,
    Insertion,
    MaskingCurve,
    MaxSensitivity,
    Randomization,
    Alignment,
    Connectedness,
    Roar,
    Kar,
}

impl MetricKind {
    pub const ALL: [MetricKind; 13] = [
        MetricKind::CleanAccuracy,
        MetricKind::RobustAccuracy,
        MetricKind::Sparseness,
        MetricKind::Complexity,
        MetricKind::Deletion,
        MetricKind::Insertion,
        MetricKind::MaskingCurve,
        MetricKind::MaxSensitivity,
        MetricKind::Randomization,
        MetricKind::Alignment,
        MetricKind::Connectedness,
        MetricKind::Roar,
        MetricKind::Kar,
    ];

    /// The name written in `metrics { ... }`.
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::CleanAccuracy => "clean_accuracy",
            MetricKind::RobustAccuracy => "robust_accuracy",
            MetricKind::Sparseness => "sparseness",
            MetricKind::Complexity => "complexity",
            MetricKind::Deletion => "deletion",
            MetricKind::Insertion => "insertion",
            MetricKind::MaskingCurve => "masking_curve",
            MetricKind::MaxSensitivity => "max_sensitivity",
            MetricKind::Randomization => "randomization",
            MetricKind::Alignment => "alignment",
            MetricKind::Connectedness => "connectedness",
            MetricKind::Roar => "roar",
            MetricKind::Kar => "kar",
        }
    }

    /// The arguments the metric takes in parentheses.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            MetricKind::Deletion | MetricKind::Insertion => &["steps"],
            MetricKind::MaskingCurve => &["percents", "fill"],
            MetricKind::MaxSensitivity => &["radius", "samples"],
            MetricKind::Connectedness => &["top"],
            MetricKind::Roar | MetricKind::Kar => &["percents", "seeds", "epochs", "random"],
            MetricKind::CleanAccuracy
            | MetricKind::RobustAccuracy
            | MetricKind::Sparseness
            | MetricKind::Complexity
            | MetricKind::Randomization
            | MetricKind::Alignment => &[],
        }
    }

    pub fn from_name(name: &str) -> Option<MetricKind> {
        MetricKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the metric measures saliency maps (needs a `saliency` method).
    pub fn needs_saliency(self) -> bool {
        !matches!(self, MetricKind::CleanAccuracy | MetricKind::RobustAccuracy)
    }
}

/// Every metric name, in [`MetricKind::ALL`]'s order (for suggestions and docs).
pub fn metric_names() -> Vec<&'static str> {
    MetricKind::ALL.iter().map(|k| k.name()).collect()
}

pub const TABLES: &[&str] = &["runs", "robustness", "saliency"];
/// Every figure the report can draw (`salient_report::experiment::FIGURES`, same names;
/// `tests/report_cli.rs` checks that each one passes the checker).
pub const FIGURES: &[&str] = &[
    "robustness",
    "saliency_grid",
    "tradeoff",
    "masking",
    "deletion_insertion",
    "randomization",
    "class_accuracy",
    "training",
    "roar_kar",
    "accuracy_interpretability",
];

/// The metrics, in spec order. Without a `metrics` section: clean accuracy, plus robust
/// accuracy when there are attacks.
pub fn lower_metrics(
    ctx: &mut Ctx,
    decl: Option<&Decl>,
    has_attacks: bool,
    has_saliency: bool,
) -> Vec<MetricSpec> {
    let Some(d) = decl else {
        let mut m = vec![MetricSpec::CleanAccuracy];
        if has_attacks {
            m.push(MetricSpec::RobustAccuracy);
        }
        return m;
    };
    check_form(
        ctx,
        d,
        Part::Forbidden,
        Part::Forbidden,
        Part::Optional,
        "",
        "metrics { clean_accuracy robust_accuracy }",
    );
    let empty = empty_body(d);
    let body = d.body.as_ref().unwrap_or(&empty);
    let mut out: Vec<MetricSpec> = Vec::new();
    let mut seen: Vec<(&'static str, Span)> = Vec::new();
    for e in &body.entries {
        let v = match e {
            Entry::Item(v) => v,
            Entry::Setting(s) => {
                ctx.push(
                    Diagnostic::new(
                        Code::UnknownSetting,
                        s.key.span,
                        format!(
                            "`metrics` lists metric names; `{} = ...` is a setting",
                            s.key.name
                        ),
                    )
                    .with_label("not a metric")
                    .with_help("arguments go in parentheses: `masking_curve(fill = mean)`"),
                );
                continue;
            }
        };
        let Some((kind, metric)) = metric(ctx, v) else {
            continue;
        };
        let name = kind.name();
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            ctx.push(
                Diagnostic::new(
                    Code::Duplicate,
                    v.span,
                    format!("the metric `{name}` is listed twice"),
                )
                .with_label("listed again here")
                .with_secondary(*first, "first listed here"),
            );
            continue;
        }
        seen.push((name, v.span));
        let needs_saliency = kind.needs_saliency();
        if kind == MetricKind::RobustAccuracy && !has_attacks {
            ctx.push(
                Diagnostic::new(
                    Code::NeedsDeclaration,
                    v.span,
                    "`robust_accuracy` needs at least one `attack`",
                )
                .with_label("no attack to measure")
                .with_help("add e.g. `attack pgd { eps = 0.3 }`"),
            );
        }
        if needs_saliency && !has_saliency {
            ctx.push(
                Diagnostic::new(
                    Code::NeedsDeclaration,
                    v.span,
                    format!(
                        "`{name}` measures saliency maps, but no `saliency` method is declared"
                    ),
                )
                .with_label("no saliency to measure")
                .with_help("add e.g. `saliency gradient { sign = absolute }`"),
            );
        }
        out.push(metric);
    }
    // The engine runs the attacks to measure `robust_accuracy` only: without it they are
    // counted in the summary but never run.
    if has_attacks
        && !seen
            .iter()
            .any(|(n, _)| *n == MetricKind::RobustAccuracy.name())
    {
        ctx.push(
            Diagnostic::new(
                Code::AttacksNotMeasured,
                d.head_span(),
                "attacks are declared, but `metrics` has no `robust_accuracy`: no attack will run",
            )
            .with_label("no `robust_accuracy` here")
            .with_help("add `robust_accuracy` to `metrics`, or remove the `attack` sections"),
        );
    }
    out
}

fn metric(ctx: &mut Ctx, v: &Value) -> Option<(MetricKind, MetricSpec)> {
    if let ValueKind::List(_) = v.kind {
        ctx.push(
            Diagnostic::new(
                Code::SweepNotAllowed,
                v.span,
                "a sweep `[...]` is not allowed in `metrics`",
            )
            .with_label("list here")
            .with_help("list each metric on its own"),
        );
        return None;
    }
    let ValueKind::Call { name, args, .. } = &v.kind else {
        ctx.push(
            Diagnostic::new(
                Code::WrongType,
                v.span,
                format!("expected a metric name, found {}", v.kind.describe()),
            )
            .with_label("not a metric"),
        );
        return None;
    };
    let Some(kind) = MetricKind::from_name(&name.name) else {
        ctx.push(
            Diagnostic::new(
                Code::UnknownMetric,
                name.span,
                format!("unknown metric `{}`", name.name),
            )
            .with_label("unknown metric")
            .with_help(suggest::help(&name.name, &metric_names())),
        );
        return None;
    };
    for a in args {
        if let ValueKind::List(_) = a.value.kind {
            ctx.push(
                Diagnostic::new(
                    Code::SweepNotAllowed,
                    a.value.span,
                    "a sweep `[...]` is not allowed in `metrics`",
                )
                .with_label("list here")
                .with_help("for several points use a tuple, e.g. `percents = (0, 10, 20)`"),
            );
            return None;
        }
    }
    let s = Settings::new(
        ctx,
        format!("`{}`", kind.name()),
        name.span,
        args,
        kind.keys(),
    );
    Some((kind, lower_metric(ctx, kind, &s)))
}

fn lower_metric(ctx: &mut Ctx, kind: MetricKind, s: &Settings) -> MetricSpec {
    match kind {
        MetricKind::CleanAccuracy => MetricSpec::CleanAccuracy,
        MetricKind::RobustAccuracy => MetricSpec::RobustAccuracy,
        MetricKind::Sparseness => MetricSpec::Sparseness,
        MetricKind::Complexity => MetricSpec::Complexity,
        MetricKind::Deletion | MetricKind::Insertion => {
            let steps = s
                .whole(ctx, "steps")
                .map_or(20, |v| ctx.whole_between("steps", v, 1, 10_000));
            if kind == MetricKind::Deletion {
                MetricSpec::Deletion { steps }
            } else {
                MetricSpec::Insertion { steps }
            }
        }
        MetricKind::MaskingCurve => {
            let percents = s.get("percents").map_or_else(
                || Some((0..10).map(|i| i * 10).collect()),
                |v| percents(ctx, v, 0),
            );
            let fill = s
                .get("fill")
                .and_then(|v| fill_value(ctx, "fill", v))
                .unwrap_or(Fill::Constant(0.0));
            MetricSpec::MaskingCurve {
                percents: percents.unwrap_or_default(),
                fill,
            }
        }
        MetricKind::MaxSensitivity => {
            let radius = s
                .num(ctx, "radius")
                .map_or(0.1, |v| ctx.positive("radius", v));
            let samples = s
                .whole(ctx, "samples")
                .map_or(10, |v| ctx.whole_between("samples", v, 1, 10_000));
            MetricSpec::MaxSensitivity { radius, samples }
        }
        MetricKind::Randomization => MetricSpec::Randomization,
        MetricKind::Alignment => MetricSpec::Alignment,
        MetricKind::Connectedness => {
            let top = s
                .whole(ctx, "top")
                .map_or(10, |v| ctx.whole_between("top", v, 1, 100));
            MetricSpec::Connectedness { top: top as u32 }
        }
        MetricKind::Roar | MetricKind::Kar => {
            let percents = s
                .get("percents")
                .map_or_else(|| Some(vec![10, 30, 50, 70, 90]), |v| percents(ctx, v, 1));
            let seeds = s
                .whole(ctx, "seeds")
                .map_or(5, |v| ctx.whole_between("seeds", v, 1, 100));
            let epochs = s
                .whole(ctx, "epochs")
                .map(|v| ctx.whole_between("epochs", v, 1, 10_000));
            let random = s.boolean(ctx, "random").unwrap_or(true);
            let spec = RetrainSpec {
                percents: percents.unwrap_or_default(),
                seeds,
                epochs,
                random,
            };
            if kind == MetricKind::Roar {
                MetricSpec::Roar(spec)
            } else {
                MetricSpec::Kar(spec)
            }
        }
    }
}

/// `percents = (0, 10, ..., 90)`: increasing whole numbers in [`min`, 100).
fn percents(ctx: &mut Ctx, v: &Value, min: u64) -> Option<Vec<u32>> {
    let ValueKind::Tuple(items) = &v.kind else {
        ctx.push(
            Diagnostic::new(
                Code::WrongType,
                v.span,
                format!(
                    "`percents` expects a tuple of whole numbers, found {}",
                    v.kind.describe()
                ),
            )
            .with_label("expected `(0, 10, 20, ...)`"),
        );
        return None;
    };
    let mut out: Vec<u32> = Vec::new();
    for item in items {
        let p = whole_value(ctx, "percents", item)?;
        if p >= 100 || p < min {
            ctx.range_error(
                item.span,
                format!("each of `percents` must be in [{min}, 100), found {p}"),
                Some(match p >= 100 {
                    true => "removing 100% of the pixels leaves nothing",
                    false => {
                        "0% changes no pixel: retraining on the unchanged data measures nothing"
                    }
                }),
            );
            return None;
        }
        if out.last().is_some_and(|last| u64::from(*last) >= p) {
            ctx.range_error(
                item.span,
                format!(
                    "`percents` must increase, found {p} after {}",
                    out.last().copied().unwrap_or(0)
                ),
                None,
            );
            return None;
        }
        out.push(p as u32);
    }
    if out.is_empty() {
        ctx.range_error(
            v.span,
            "`percents` needs at least one value".to_string(),
            None,
        );
        return None;
    }
    Some(out)
}

/// Plain settings of a section that takes no sweeps.
fn plain_settings<'b>(
    ctx: &mut Ctx,
    d: &Decl,
    section: &str,
    keys: &[&str],
    points: &'b [sweep::Point],
) -> Settings<'b> {
    let settings = body_settings(ctx, &points[0].body, &format!("`{section}`"));
    Settings::new(ctx, format!("`{section}`"), d.head_span(), settings, keys)
}

/// The number of test examples, when it is known without reading files.
fn test_size(data: &DataSpec) -> Option<usize> {
    data.test.or(match data.kind {
        DataKind::Mnist | DataKind::FashionMnist => Some(10_000),
        DataKind::Cifar10 { ref test_files, .. }
            if test_files.len() == 1 && test_files[0] == "test_batch.bin" =>
        {
            Some(10_000)
        }
        _ => None,
    })
}

pub fn lower_eval(ctx: &mut Ctx, decl: Option<&Decl>, data: Option<&DataSpec>) -> EvalSpec {
    let mut eval = EvalSpec {
        batch: 500,
        attack_samples: 1000,
        saliency_samples: 500,
        seed: 0,
    };
    let Some(d) = decl else { return eval };
    check_form(
        ctx,
        d,
        Part::Forbidden,
        Part::Forbidden,
        Part::Optional,
        "",
        "eval { attack_samples = 1000 }",
    );
    let empty = empty_body(d);
    let body = d.body.as_ref().unwrap_or(&empty);
    let (_, points) = sweep::expand(ctx, "eval", "`eval`", body, false);
    let s = plain_settings(
        ctx,
        d,
        "eval",
        &["batch", "attack_samples", "saliency_samples", "seed"],
        &points,
    );
    if let Some(v) = s.whole(ctx, "batch") {
        eval.batch = ctx.whole_between("batch", v, 1, 1 << 20);
    }
    let limit = data.and_then(test_size);
    for key in ["attack_samples", "saliency_samples"] {
        let Some((n, span)) = s.whole(ctx, key) else {
            continue;
        };
        let n = ctx.whole_between(key, (n, span), 1, 100_000_000);
        if let Some(test) = limit.filter(|t| n > *t) {
            ctx.push(
                Diagnostic::new(
                    Code::TooManySamples,
                    span,
                    format!("`{key}` asks for {n} examples but the test set has {test}"),
                )
                .with_label("more than the test set")
                .with_help(format!("all {test} will be used")),
            );
        }
        if key == "attack_samples" {
            eval.attack_samples = n;
        } else {
            eval.saliency_samples = n;
        }
    }
    if let Some((seed, _)) = s.whole(ctx, "seed") {
        eval.seed = seed;
    }
    eval
}

pub fn lower_report(ctx: &mut Ctx, decl: Option<&Decl>, experiment: &str) -> ReportSpec {
    let mut report = ReportSpec {
        dir: format!("reports/{experiment}"),
        tables: TABLES.iter().map(|t| t.to_string()).collect(),
        figures: FIGURES.iter().map(|f| f.to_string()).collect(),
        images: 8,
    };
    let Some(d) = decl else { return report };
    check_form(
        ctx,
        d,
        Part::Forbidden,
        Part::Forbidden,
        Part::Optional,
        "",
        "report { figures = (robustness, tradeoff) }",
    );
    let empty = empty_body(d);
    let body = d.body.as_ref().unwrap_or(&empty);
    let (_, points) = sweep::expand(ctx, "report", "`report`", body, false);
    let s = plain_settings(
        ctx,
        d,
        "report",
        &["dir", "tables", "figures", "images"],
        &points,
    );
    if let Some(dir) = s.string(ctx, "dir") {
        if dir.is_empty() {
            ctx.range_error(s.span_of("dir"), "`dir` cannot be empty".to_string(), None);
        }
        report.dir = dir;
    }
    if let Some(v) = s.get("tables") {
        report.tables = names(ctx, "tables", v, TABLES);
    }
    if let Some(v) = s.get("figures") {
        report.figures = names(ctx, "figures", v, FIGURES);
    }
    if let Some(v) = s.whole(ctx, "images") {
        report.images = ctx.whole_between("images", v, 0, 1000);
    }
    report
}

/// A tuple of names from `choices` (or one name); `()` is empty.
fn names(ctx: &mut Ctx, key: &str, v: &Value, choices: &[&str]) -> Vec<String> {
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Tuple(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let Some(c) = super::reader::choice_value(ctx, key, item, choices) else {
            continue;
        };
        if out.iter().any(|o| o == c) {
            ctx.push(
                Diagnostic::new(
                    Code::Duplicate,
                    item.span,
                    format!("`{c}` is listed twice in `{key}`"),
                )
                .with_label("listed again"),
            );
            continue;
        }
        out.push(c.to_string());
    }
    out
}
