//! `regime KIND [as NAME] { ... }`: the training regimes and their parameters. A list inside a
//! regime multiplies that regime's variants. Defaults are documented in docs/language.md and
//! follow papers.md (authors' settings where published).

use super::reader::{call_value, choice_value, Settings};
use super::sweep::{self, Axis};
use super::{check_form, empty_body, Ctx, Part};
use crate::ast::{Decl, Entry, Ident, Setting, Value, ValueKind};
use crate::diag::{Code, Diagnostic, Span};
use crate::suggest;
use salient_ir::*;

/// The training regimes a spec can declare. Adding a regime = a variant here (the compiler then
/// lists [`RegimeKind::name`], [`RegimeKind::keys`] and the lowering in `lower_one`), a
/// `salient_ir::Regime` variant and its engine file in `salient-engine/src/regime/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegimeKind {
    Standard,
    Sgt,
    Adversarial,
    Combined,
    LpDual,
    Sensitivity,
}

impl RegimeKind {
    pub const ALL: [RegimeKind; 6] = [
        RegimeKind::Standard,
        RegimeKind::Sgt,
        RegimeKind::Adversarial,
        RegimeKind::Combined,
        RegimeKind::LpDual,
        RegimeKind::Sensitivity,
    ];

    /// The name written after `regime`.
    pub fn name(self) -> &'static str {
        match self {
            RegimeKind::Standard => "standard",
            RegimeKind::Sgt => "sgt",
            RegimeKind::Adversarial => "adversarial",
            RegimeKind::Combined => "combined",
            RegimeKind::LpDual => "lp_dual",
            RegimeKind::Sensitivity => "sensitivity",
        }
    }

    /// The settings the regime takes in its block.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            RegimeKind::Standard => &[],
            RegimeKind::Sgt => SGT_KEYS,
            RegimeKind::Adversarial => &["attack", "loss", "trades_beta", "mix"],
            RegimeKind::Combined => &[
                "k",
                "saliency",
                "fill",
                "lambda",
                "attack",
                "clean_weight",
                "adv_weight",
            ],
            RegimeKind::LpDual => &["mode", "steps", "step_fraction"],
            RegimeKind::Sensitivity => &["layers", "noise", "sigma", "lambda", "adversarial"],
        }
    }

    pub fn from_name(name: &str) -> Option<RegimeKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }
}

const SGT_KEYS: &[&str] = &["k", "saliency", "fill", "lambda"];

/// A checked regime declaration: its name and one regime per grid point.
pub struct RegimeDecl {
    pub name: String,
    pub name_span: Span,
    pub axes: Vec<Axis>,
    /// (label, regime) per point.
    pub points: Vec<(String, Regime)>,
    /// For `sensitivity`: the layer names referenced, with their spans.
    pub layer_refs: Vec<Ident>,
}

pub fn lower_all(ctx: &mut Ctx, decls: &[&Decl], data: Option<&DataSpec>) -> Vec<RegimeDecl> {
    let mut out: Vec<RegimeDecl> = Vec::new();
    for d in decls {
        check_form(
            ctx,
            d,
            Part::Required,
            Part::Optional,
            Part::Optional,
            "a kind",
            "regime sgt { k = 0.5 }",
        );
        let Some(kind) = &d.kind else { continue };
        let Some(regime_kind) = RegimeKind::from_name(&kind.name) else {
            ctx.push(
                Diagnostic::new(
                    Code::UnknownKind,
                    kind.span,
                    format!("unknown regime `{}`", kind.name),
                )
                .with_label("unknown regime")
                .with_help(suggest::help(&kind.name, &RegimeKind::names())),
            );
            continue;
        };
        let name = d.alias.as_ref().unwrap_or(kind);
        if let Some(first) = out.iter().find(|r| r.name == name.name) {
            ctx.push(
                Diagnostic::new(
                    Code::Duplicate,
                    name.span,
                    format!("a second regime named `{}`", name.name),
                )
                .with_label("declared again here")
                .with_secondary(first.name_span, "first declared here")
                .with_help(format!(
                    "name one of them: `regime {} as {}_2 {{ ... }}`",
                    kind.name, kind.name
                )),
            );
            continue;
        }
        let empty = empty_body(d);
        let body = d.body.as_ref().unwrap_or(&empty);
        let (axes, grid) = sweep::expand(
            ctx,
            &format!("regime.{}", name.name),
            &format!("`regime {}`", name.name),
            body,
            true,
        );
        let mut points = Vec::new();
        let mut layer_refs = Vec::new();
        for p in &grid {
            let settings = body_settings(ctx, &p.body, "a regime");
            let what = format!("`regime {}`", kind.name);
            let s = Settings::new(ctx, what, d.head_span(), settings, regime_kind.keys());
            let regime = lower_one(ctx, regime_kind, &s, data, &mut layer_refs);
            let values = p.values(&axes);
            let label = if values.is_empty() {
                name.name.clone()
            } else {
                let inner: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{}[{}]", name.name, inner.join(","))
            };
            points.push((label, regime));
        }
        out.push(RegimeDecl {
            name: name.name.clone(),
            name_span: name.span,
            axes,
            points,
            layer_refs,
        });
    }
    out
}

/// The settings of a body; items are reported.
pub fn body_settings<'b>(
    ctx: &mut Ctx,
    body: &'b crate::ast::Body,
    what: &str,
) -> Vec<&'b Setting> {
    body.entries
        .iter()
        .filter_map(|e| match e {
            Entry::Setting(s) => Some(s),
            Entry::Item(v) => {
                ctx.push(
                    Diagnostic::new(
                        Code::WrongType,
                        v.span,
                        format!("{what} holds settings `key = value`, not items"),
                    )
                    .with_label("expected `key = value`"),
                );
                None
            }
        })
        .collect()
}

fn lower_one(
    ctx: &mut Ctx,
    kind: RegimeKind,
    s: &Settings,
    data: Option<&DataSpec>,
    layer_refs: &mut Vec<Ident>,
) -> Regime {
    match kind {
        RegimeKind::Standard => Regime::Standard,
        RegimeKind::Sgt => Regime::Sgt(sgt(ctx, s)),
        RegimeKind::Adversarial => {
            let attack = required_attack(ctx, s);
            let loss = match s.choice(ctx, "loss", &["ce", "cw"]) {
                Some("cw") => InnerLoss::CwMargin,
                _ => InnerLoss::Ce,
            };
            let trades_beta = s
                .num(ctx, "trades_beta")
                .map(|v| ctx.positive("trades_beta", v));
            let mix = s
                .num(ctx, "mix")
                .map_or(0.0, |v| ctx.between("mix", v, 0.0, 1.0, false, false));
            if trades_beta.is_some() && s.get("mix").is_some() {
                ctx.push(
                    Diagnostic::new(
                        Code::Incompatible,
                        s.span_of("mix"),
                        "`mix` has no effect with `trades_beta`",
                    )
                    .with_label("ignored by TRADES")
                    .with_help(
                        "TRADES already weighs the clean loss against the KL term; remove `mix`",
                    ),
                );
            }
            if trades_beta.is_some() && s.get("loss").is_some() {
                ctx.push(
                    Diagnostic::new(
                        Code::Incompatible,
                        s.span_of("loss"),
                        "`loss` has no effect with `trades_beta` (TRADES climbs the KL divergence)",
                    )
                    .with_label("ignored by TRADES"),
                );
            }
            Regime::Adversarial(AdversarialParams {
                attack,
                loss,
                trades_beta,
                mix,
            })
        }
        RegimeKind::Combined => {
            let sgt = sgt(ctx, s);
            let attack = required_attack(ctx, s);
            let clean_weight = s
                .num(ctx, "clean_weight")
                .map_or(1.0, |v| ctx.non_negative("clean_weight", v));
            let adv_weight = s
                .num(ctx, "adv_weight")
                .map_or(1.0, |v| ctx.non_negative("adv_weight", v));
            if clean_weight == 0.0 && adv_weight == 0.0 {
                ctx.range_error(
                    s.span_of("adv_weight"),
                    "`clean_weight` and `adv_weight` cannot both be 0".to_string(),
                    Some("the loss would have no classification term"),
                );
            }
            Regime::Combined(CombinedParams {
                sgt,
                attack,
                clean_weight,
                adv_weight,
            })
        }
        RegimeKind::LpDual => {
            let mode = lp_mode(ctx, s, data);
            let steps = s
                .whole(ctx, "steps")
                .map_or(1, |v| ctx.whole_between("steps", v, 1, 1000));
            let step_fraction = s
                .num(ctx, "step_fraction")
                .map_or(2.5 / steps as f64, |v| ctx.positive("step_fraction", v));
            Regime::LpDual(LpDualParams {
                mode,
                steps,
                step_fraction,
            })
        }
        RegimeKind::Sensitivity => {
            let layers = match s.get("layers") {
                None => {
                    s.missing(ctx, "layers", "(relu1, dense1)");
                    Vec::new()
                }
                Some(v) => layer_names(ctx, v),
            };
            for l in &layers {
                if !layer_refs
                    .iter()
                    .any(|r: &Ident| r.name == l.name && r.span == l.span)
                {
                    layer_refs.push(l.clone());
                }
            }
            let noise = match s.choice(ctx, "noise", &["gaussian", "uniform"]) {
                Some("uniform") => Noise::Uniform,
                _ => Noise::Gaussian,
            };
            let sigma = s
                .num(ctx, "sigma")
                .map_or(0.1, |v| ctx.positive("sigma", v));
            let lambda = s
                .num(ctx, "lambda")
                .map_or(1.0, |v| ctx.non_negative("lambda", v));
            let adversarial = s.boolean(ctx, "adversarial").unwrap_or(false);
            Regime::Sensitivity(SensitivityParams {
                layers: layers.into_iter().map(|l| l.name).collect(),
                noise,
                sigma,
                lambda,
                adversarial,
            })
        }
    }
}

/// `layers = (relu1, dense1)` or `layers = relu1`.
fn layer_names(ctx: &mut Ctx, v: &Value) -> Vec<Ident> {
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Tuple(items) => items.iter().collect(),
        _ => vec![v],
    };
    if items.is_empty() {
        ctx.range_error(
            v.span,
            "`layers` needs at least one layer name".to_string(),
            Some("layer names are the kind and its ordinal: `relu1`, `dense2`"),
        );
    }
    let mut out = Vec::new();
    for item in items {
        match &item.kind {
            ValueKind::Call {
                name,
                args,
                parens: false,
            } if args.is_empty() => out.push(name.clone()),
            other => ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    item.span,
                    format!(
                        "`layers` expects layer names such as `relu1`, found {}",
                        other.describe()
                    ),
                )
                .with_label("expected a layer name"),
            ),
        }
    }
    out
}

/// The SGT settings shared by `sgt` and `combined`.
fn sgt(ctx: &mut Ctx, s: &Settings) -> SgtParams {
    let k = s
        .num(ctx, "k")
        .map_or(0.5, |v| ctx.between("k", v, 0.0, 1.0, true, true));
    if let Some((v, span)) = s.num(ctx, "k").filter(|(v, _)| *v > 0.9 && *v < 1.0) {
        ctx.push(
            Diagnostic::new(
                Code::LargeMask,
                span,
                format!(
                    "masking {}% of the input leaves little to classify",
                    v * 100.0
                ),
            )
            .with_label("k above 0.9")
            .with_help("Ismail et al. mask 50% on MNIST"),
        );
    }
    let saliency = match s.choice(ctx, "saliency", &["signed", "absolute"]) {
        Some("absolute") => SaliencySign::Absolute,
        _ => SaliencySign::Signed,
    };
    let fill = s
        .get("fill")
        .and_then(|v| fill_value(ctx, "fill", v))
        .unwrap_or(Fill::Random);
    let lambda = s
        .num(ctx, "lambda")
        .map_or(1.0, |v| ctx.non_negative("lambda", v));
    SgtParams {
        k,
        saliency,
        fill,
        lambda,
    }
}

/// `random | mean | constant(value = v)`, v in [0, 1].
pub fn fill_value(ctx: &mut Ctx, key: &str, v: &Value) -> Option<Fill> {
    let (name, args) = call_value(ctx, key, v, "`random`, `mean` or `constant(value = v)`")?;
    match name.name.as_str() {
        "random" | "mean" => {
            Settings::new(ctx, format!("`{}`", name.name), name.span, args, &[]);
            Some(if name.name == "random" {
                Fill::Random
            } else {
                Fill::Mean
            })
        }
        "constant" => {
            let a = Settings::new(ctx, "`constant`", name.span, args, &["value"]);
            let value = a
                .num(ctx, "value")
                .map_or(0.0, |v| ctx.between("value", v, 0.0, 1.0, false, false));
            Some(Fill::Constant(value as f32))
        }
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::UnknownChoice,
                    name.span,
                    format!("unknown fill `{other}`"),
                )
                .with_label("unknown fill")
                .with_help(suggest::help(other, &["random", "mean", "constant"])),
            );
            None
        }
    }
}

/// The `attack = pgd(...) | fgsm(...)` of a training regime.
fn required_attack(ctx: &mut Ctx, s: &Settings) -> TrainAttack {
    let fallback = TrainAttack {
        method: TrainAttackMethod::Pgd,
        norm: Norm::Linf,
        eps: 0.1,
        step_size: 0.025,
        steps: 10,
        random_start: true,
        warmup: 0.0,
    };
    let Some(v) = s.get("attack") else {
        s.missing(ctx, "attack", "pgd(eps = 0.3, steps = 40)");
        return fallback;
    };
    let Some((name, args)) = call_value(
        ctx,
        "attack",
        v,
        "a training attack `pgd(...)` or `fgsm(...)`",
    ) else {
        return fallback;
    };
    let method = match name.name.as_str() {
        "pgd" => TrainAttackMethod::Pgd,
        "fgsm" => TrainAttackMethod::Fgsm,
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::UnknownChoice,
                    name.span,
                    format!("unknown training attack `{other}`"),
                )
                .with_label("unknown attack")
                .with_help(suggest::help(other, &["pgd", "fgsm"])),
            );
            return fallback;
        }
    };
    let allowed: &[&str] = match method {
        TrainAttackMethod::Pgd => &[
            "norm",
            "eps",
            "step_size",
            "steps",
            "random_start",
            "warmup",
        ],
        TrainAttackMethod::Fgsm => &["norm", "eps", "step_size", "random_start", "warmup"],
    };
    let a = Settings::new(ctx, format!("`{}`", name.name), name.span, args, allowed);
    let norm = norm(ctx, &a, &name.name);
    let eps = attack_eps(ctx, &a, norm);
    let (steps, step_size, random_start) = match method {
        TrainAttackMethod::Pgd => {
            let steps = a
                .whole(ctx, "steps")
                .map_or(10, |v| ctx.at_least("steps", v, 1));
            many_steps(ctx, &a, steps);
            let random_start = a.boolean(ctx, "random_start").unwrap_or(true);
            (
                steps,
                a.num(ctx, "step_size")
                    .map_or(2.5 * eps / steps as f64, |v| ctx.positive("step_size", v)),
                random_start,
            )
        }
        TrainAttackMethod::Fgsm => {
            let random_start = a.boolean(ctx, "random_start").unwrap_or(false);
            let default = if random_start { 1.25 * eps } else { eps };
            (
                1,
                a.num(ctx, "step_size")
                    .map_or(default, |v| ctx.positive("step_size", v)),
                random_start,
            )
        }
    };
    let warmup = a
        .num(ctx, "warmup")
        .map_or(0.0, |v| ctx.non_negative("warmup", v));
    TrainAttack {
        method,
        norm,
        eps,
        step_size,
        steps,
        random_start,
        warmup,
    }
}

/// `norm = linf | l2` (default linf); FGSM is Linf only.
pub fn norm(ctx: &mut Ctx, a: &Settings, method: &str) -> Norm {
    let Some(v) = a.get("norm") else {
        return Norm::Linf;
    };
    match choice_value(ctx, "norm", v, &["linf", "l2"]) {
        Some("l2") if method == "fgsm" => {
            ctx.push(
                Diagnostic::new(
                    Code::Incompatible,
                    v.span,
                    "`fgsm` is an Linf attack; it cannot take `norm = l2`",
                )
                .with_label("fgsm is Linf only")
                .with_help(
                    "for an L2 attack use `pgd(norm = l2, ...)` (one step of size eps is L2 FGM)",
                ),
            );
            Norm::Linf
        }
        Some("l2") => Norm::L2,
        _ => Norm::Linf,
    }
}

/// The required `eps` of an attack: > 0, warned above 0.5 for Linf.
pub fn attack_eps(ctx: &mut Ctx, a: &Settings, norm: Norm) -> f64 {
    if a.get("eps").is_none() {
        a.missing(ctx, "eps", "0.3");
        return 0.1;
    }
    let Some((eps, span)) = a.num(ctx, "eps") else {
        return 0.1;
    };
    ctx.positive("eps", (eps, span));
    if norm == Norm::Linf && eps > 0.5 {
        ctx.push(
            Diagnostic::new(
                Code::LargeEps,
                span,
                format!("an Linf eps of {eps} on [0, 1] images can turn any image into any other"),
            )
            .with_label("eps above 0.5")
            .with_help(
                "eps is in pixel units of [0, 1] images: MNIST uses 0.1 to 0.3, CIFAR-10 8/255",
            ),
        );
    }
    eps
}

/// W004 above 1000 steps.
pub fn many_steps(ctx: &mut Ctx, a: &Settings, steps: usize) {
    if steps > 1000 {
        ctx.push(
            Diagnostic::new(
                Code::ManySteps,
                a.span_of("steps"),
                format!("{steps} attack steps is unusually many"),
            )
            .with_label("more than 1000 steps")
            .with_help(
                "PGD usually converges in 10 to 100 steps; use restarts for a stronger attack \
                 (a long attack stops within one step on Ctrl-C or SIGTERM)",
            ),
        );
    }
}

/// `mode = l1_box(eps) | elastic_net(eps1, eps2) | group(eps, size)`.
fn lp_mode(ctx: &mut Ctx, s: &Settings, data: Option<&DataSpec>) -> LpDualMode {
    let fallback = LpDualMode::L1Box { eps: 0.1 };
    let Some(v) = s.get("mode") else {
        s.missing(ctx, "mode", "l1_box(eps = 0.1)");
        return fallback;
    };
    let Some((name, args)) = call_value(
        ctx,
        "mode",
        v,
        "`l1_box(...)`, `elastic_net(...)` or `group(...)`",
    ) else {
        return fallback;
    };
    match name.name.as_str() {
        "l1_box" => {
            let a = Settings::new(ctx, "`l1_box`", name.span, args, &["eps"]);
            LpDualMode::L1Box {
                eps: attack_eps(ctx, &a, Norm::Linf),
            }
        }
        "elastic_net" => {
            let a = Settings::new(ctx, "`elastic_net`", name.span, args, &["eps1", "eps2"]);
            for key in ["eps1", "eps2"] {
                if a.get(key).is_none() {
                    a.missing(ctx, key, "0.1");
                }
            }
            let eps1 = a
                .num(ctx, "eps1")
                .map_or(0.1, |v| ctx.non_negative("eps1", v));
            let eps2 = a.num(ctx, "eps2").map_or(0.1, |v| ctx.positive("eps2", v));
            LpDualMode::ElasticNet { eps1, eps2 }
        }
        "group" => {
            let a = Settings::new(ctx, "`group`", name.span, args, &["eps", "size"]);
            let eps = attack_eps(ctx, &a, Norm::L2);
            let group = a
                .whole(ctx, "size")
                .map_or(4, |v| ctx.at_least("size", v, 1));
            if let Some(d) = data {
                if group > d.shape.h || group > d.shape.w {
                    ctx.range_error(
                        a.span_of("size"),
                        format!(
                            "a group of {group}x{group} pixels does not fit in {}x{} images",
                            d.shape.h, d.shape.w
                        ),
                        None,
                    );
                }
            }
            LpDualMode::Group { eps, group }
        }
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::UnknownChoice,
                    name.span,
                    format!("unknown lp_dual mode `{other}`"),
                )
                .with_label("unknown mode")
                .with_help(suggest::help(other, &["l1_box", "elastic_net", "group"])),
            );
            fallback
        }
    }
}
