//! `attack KIND [as NAME] { ... }` and `saliency KIND [as NAME] { ... }`: the evaluation attacks
//! and saliency methods. A list inside one multiplies that declaration's evaluations.
//!
//! Names: the `as` name, else the kind (`pgd`; `pgd_l2` for an L2 attack). A swept setting other
//! than `eps` and `norm` adds `_KEYVALUE` (e.g. `pgd_steps100`) so that every evaluation row is
//! distinguishable; attacks at different eps share a name (the engine keys them by eps too).

use super::reader::Settings;
use super::regime::{attack_eps, body_settings, many_steps, norm};
use super::sweep::{self, Axis};
use super::{check_form, empty_body, runs::sanitize, Ctx, Part};
use crate::ast::Decl;
use crate::diag::{Code, Diagnostic, Span};
use crate::suggest;
use salient_ir::*;
use std::collections::HashMap;

/// The saliency methods a spec can declare. Adding a method = a variant here (the compiler then
/// lists [`SaliencyKind::name`], [`SaliencyKind::keys`] and the lowering in `lower_saliency`), a
/// `salient_ir::SaliencyMethod` variant and its engine file in `salient-engine/src/saliency/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaliencyKind {
    Gradient,
    GradientInput,
    IntegratedGradients,
    SmoothGrad,
}

impl SaliencyKind {
    pub const ALL: [SaliencyKind; 4] = [
        SaliencyKind::Gradient,
        SaliencyKind::GradientInput,
        SaliencyKind::IntegratedGradients,
        SaliencyKind::SmoothGrad,
    ];

    /// The name written after `saliency`.
    pub fn name(self) -> &'static str {
        match self {
            SaliencyKind::Gradient => "gradient",
            SaliencyKind::GradientInput => "gradient_input",
            SaliencyKind::IntegratedGradients => "integrated_gradients",
            SaliencyKind::SmoothGrad => "smoothgrad",
        }
    }

    /// The settings the method takes in its block.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            SaliencyKind::Gradient => &["sign"],
            SaliencyKind::GradientInput => &[],
            SaliencyKind::IntegratedGradients => &["steps", "baseline"],
            SaliencyKind::SmoothGrad => &["samples", "sigma", "variant"],
        }
    }

    pub fn from_name(name: &str) -> Option<SaliencyKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }
}

pub struct Attacks {
    pub specs: Vec<AttackSpec>,
    pub sweeps: Vec<(String, Vec<String>)>,
}

pub struct Saliencies {
    pub specs: Vec<SaliencySpec>,
    pub sweeps: Vec<(String, Vec<String>)>,
}

/// Named evaluations and the sweep axes (path, values) that produced them.
type Expanded<T> = (Vec<(String, T)>, Vec<(String, Vec<String>)>);

/// The common part: form, kind, sweep grid. Calls `point` for each grid point.
fn each_decl<T>(
    ctx: &mut Ctx,
    decls: &[&Decl],
    section: &str,
    kinds: &[&str],
    example: &str,
    mut point: impl FnMut(&mut Ctx, &str, &Settings, bool) -> Option<(T, Vec<String>)>,
    keys: impl Fn(&str) -> &'static [&'static str],
) -> Expanded<T> {
    let mut out = Vec::new();
    let mut sweeps = Vec::new();
    // name -> span of the declaration that produced it
    let mut names: HashMap<String, Span> = HashMap::new();
    for d in decls {
        check_form(
            ctx,
            d,
            Part::Required,
            Part::Optional,
            Part::Optional,
            "a kind",
            example,
        );
        let Some(kind) = &d.kind else { continue };
        if !kinds.contains(&kind.name.as_str()) {
            ctx.push(
                Diagnostic::new(
                    Code::UnknownKind,
                    kind.span,
                    format!("unknown {section} `{}`", kind.name),
                )
                .with_label(format!("unknown {section}"))
                .with_help(suggest::help(&kind.name, kinds)),
            );
            continue;
        }
        let base = d.alias.as_ref().unwrap_or(kind);
        let empty = empty_body(d);
        let body = d.body.as_ref().unwrap_or(&empty);
        let (axes, grid) = sweep::expand(
            ctx,
            &format!("{section}.{}", base.name),
            &format!("`{section} {}`", base.name),
            body,
            true,
        );
        let mut decl_names: Vec<String> = Vec::new();
        for p in &grid {
            let settings = body_settings(ctx, &p.body, &format!("`{section}`"));
            let s = Settings::new(
                ctx,
                format!("`{section} {}`", kind.name),
                d.head_span(),
                settings,
                keys(&kind.name),
            );
            let Some((value, suffixes)) = point(ctx, &kind.name, &s, d.alias.is_some()) else {
                continue;
            };
            let mut name = base.name.clone();
            for sfx in suffixes {
                name.push('_');
                name.push_str(&sfx);
            }
            name.push_str(&axis_suffix(&axes, &p.coords));
            decl_names.push(name.clone());
            out.push((name, value));
        }
        decl_names.dedup();
        for n in decl_names {
            if let Some(first) = names.get(&n) {
                if *first != d.head_span() {
                    ctx.push(
                        Diagnostic::new(Code::Duplicate, d.head_span(), format!("a second {section} named `{n}`"))
                            .with_label("declared again here")
                            .with_secondary(*first, "first declared here")
                            .with_help(format!("name one of them with `{section} {} as NAME`; several values go in one list `[a, b]`", kind.name)),
                    );
                    break;
                }
            } else {
                names.insert(n, d.head_span());
            }
        }
        sweeps.extend(
            axes.iter()
                .map(|a: &Axis| (a.path.clone(), a.texts.clone())),
        );
    }
    (out, sweeps)
}

/// `_KEYVALUE` for each swept setting except eps and norm.
fn axis_suffix(axes: &[Axis], coords: &[usize]) -> String {
    let mut out = String::new();
    for (a, &i) in axes.iter().zip(coords) {
        if a.key == "eps" || a.key == "norm" {
            continue;
        }
        out.push('_');
        out.push_str(&a.key);
        out.push_str(&sanitize(&a.texts[i]));
    }
    out
}

/// The attack kinds of the language: one variant per `attack KIND`, with its name and keys.
/// Adding an attack = a variant here (the compiler then lists [`AttackKind::name`],
/// [`AttackKind::keys`] and [`lower_attack`]), a `salient_ir::Attack` variant and its engine
/// file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackKind {
    Fgsm,
    Pgd,
    Apgd,
    ApgdT,
    Square,
    Fab,
    AutoAttack,
    Cw,
    DeepFool,
}

impl AttackKind {
    pub const ALL: [AttackKind; 9] = [
        AttackKind::Fgsm,
        AttackKind::Pgd,
        AttackKind::Apgd,
        AttackKind::ApgdT,
        AttackKind::Square,
        AttackKind::Fab,
        AttackKind::AutoAttack,
        AttackKind::Cw,
        AttackKind::DeepFool,
    ];

    /// The name written after `attack`.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::Fgsm => "fgsm",
            AttackKind::Pgd => "pgd",
            AttackKind::Apgd => "apgd",
            AttackKind::ApgdT => "apgd_t",
            AttackKind::Square => "square",
            AttackKind::Fab => "fab",
            AttackKind::AutoAttack => "autoattack",
            AttackKind::Cw => "cw",
            AttackKind::DeepFool => "deepfool",
        }
    }

    /// The settings the kind takes.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            AttackKind::Fgsm => &["eps", "norm"],
            AttackKind::Pgd => &[
                "norm",
                "eps",
                "step_size",
                "steps",
                "random_start",
                "restarts",
            ],
            AttackKind::Apgd => &["norm", "eps", "loss", "steps", "restarts"],
            AttackKind::ApgdT => &["norm", "eps", "steps", "restarts", "targets"],
            AttackKind::Square => &["norm", "eps", "queries", "p_init"],
            AttackKind::Fab => &["norm", "eps", "steps", "restarts", "targets"],
            AttackKind::AutoAttack => &["norm", "eps", "version", "components"],
            AttackKind::Cw => &[
                "norm",
                "curve",
                "steps",
                "binary_steps",
                "lr",
                "initial_const",
                "confidence",
            ],
            AttackKind::DeepFool => &["norm", "curve", "steps", "overshoot", "candidates"],
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every kind's name, for suggestions and docs.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }
}

fn attack_keys(kind: &str) -> &'static [&'static str] {
    AttackKind::from_name(kind).map_or(&[], AttackKind::keys)
}

/// `restarts`: 1 .. 1000, default 1.
fn restarts(ctx: &mut Ctx, s: &Settings) -> usize {
    s.whole(ctx, "restarts")
        .map_or(1, |v| ctx.whole_between("restarts", v, 1, 1000))
}

/// `steps`: at least 1 (warned above 1000), default `default`.
fn steps(ctx: &mut Ctx, s: &Settings, default: usize) -> usize {
    let steps = s
        .whole(ctx, "steps")
        .map_or(default, |v| ctx.at_least("steps", v, 1));
    many_steps(ctx, s, steps);
    steps
}

/// `targets`: 1 .. 999, default 9 (AutoAttack's), or `classes - 1` when the model has fewer
/// than 10 classes (as AutoAttack's `min(9, classes - 1)`).
fn targets(ctx: &mut Ctx, s: &Settings, classes: Option<usize>) -> usize {
    let default = classes.map_or(9, |c| c.saturating_sub(1).clamp(1, 9));
    s.whole(ctx, "targets")
        .map_or(default, |v| ctx.whole_between("targets", v, 1, 999))
}

/// What the attacks need of the model's class count (the engine refuses the rest): the DLR loss
/// divides by `z_pi1 - z_pi3`, so at least 3 classes; the targeted DLR of APGD-T by
/// `z_pi1 - (z_pi3 + z_pi4) / 2`, so at least 4; targeted attacks (APGD-T, FAB-T) take at most
/// `classes - 1` target classes.
fn check_classes(ctx: &mut Ctx, attack: &Attack, s: &Settings, classes: usize) {
    let need = |ctx: &mut Ctx, span: Span, what: &str, min: usize, why: &str, help: &str| {
        if classes < min {
            ctx.push(
                Diagnostic::new(
                    Code::Incompatible,
                    span,
                    format!("{what} needs at least {min} classes, but the model has {classes}"),
                )
                .with_label(format!("needs {min}+ classes"))
                .with_help(format!("{why}; {help}")),
            );
        }
    };
    let too_many_targets = |ctx: &mut Ctx, targets: usize, what: &str| {
        if targets > classes.saturating_sub(1) {
            ctx.push(
                Diagnostic::new(
                    Code::Incompatible,
                    s.span_of("targets"),
                    format!(
                        "{what} asks for {targets} target classes, but the model has {classes} classes, so at most {} besides the true one",
                        classes.saturating_sub(1)
                    ),
                )
                .with_label("too many targets")
                .with_help(format!("write `targets = {}` or fewer", classes.saturating_sub(1).max(1))),
            );
        }
    };
    const DLR: &str =
        "the DLR loss divides by z_pi1 - z_pi3 (the largest minus the third largest logit)";
    const DLR_T: &str =
        "the targeted DLR loss divides by z_pi1 - (z_pi3 + z_pi4) / 2 (the largest minus the mean of the third and fourth largest logits)";
    match attack {
        Attack::Apgd {
            loss: ApgdLoss::Dlr,
            ..
        } => need(
            ctx,
            s.span_of("loss"),
            "APGD with `loss = dlr`",
            3,
            DLR,
            "use `loss = ce`",
        ),
        Attack::ApgdT { targets, .. } => {
            need(
                ctx,
                s.owner,
                "`apgd_t`",
                4,
                DLR_T,
                "use `apgd` with `loss = ce`",
            );
            if classes >= 4 {
                too_many_targets(ctx, *targets, "`apgd_t`");
            }
        }
        Attack::Fab { targets, .. } if *targets > 0 => {
            too_many_targets(ctx, *targets, "`fab` (targeted)")
        }
        Attack::AutoAttack { components, .. } => {
            let at = if s.get("components").is_some() {
                s.span_of("components")
            } else if s.get("version").is_some() {
                s.span_of("version")
            } else {
                s.owner
            };
            let listed = s.get("components").is_some();
            let pick = if listed {
                "leave it out of `components`"
            } else {
                "list the others, e.g. `components = (apgd_ce, fab_t, square)`"
            };
            if components.contains(&AutoAttackComponent::ApgdDlr) {
                need(ctx, at, "AutoAttack's `apgd_dlr`", 3, DLR, pick);
            }
            if components.contains(&AutoAttackComponent::ApgdT) {
                need(ctx, at, "AutoAttack's `apgd_t`", 4, DLR_T, pick);
            }
        }
        _ => {}
    }
}

/// `curve = (e1, e2, ...)`: the eps points of a minimum-norm attack, positive and increasing.
fn curve(ctx: &mut Ctx, s: &Settings) -> Vec<f64> {
    let Some(v) = s.get("curve") else {
        s.missing(ctx, "curve", "(0.5, 1.0, 1.5, 2.0)");
        return vec![1.0];
    };
    let items: Vec<&crate::ast::Value> = match &v.kind {
        crate::ast::ValueKind::Tuple(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut out: Vec<f64> = Vec::new();
    for item in items {
        let crate::ast::ValueKind::Number { value, .. } = item.kind else {
            ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    item.span,
                    format!(
                        "`curve` expects a tuple of eps values, found {}",
                        item.kind.describe()
                    ),
                )
                .with_label("expected a number, as in `(0.5, 1.0, 2.0)`"),
            );
            return vec![1.0];
        };
        if !(value.is_finite() && value > 0.0) || out.last().is_some_and(|&l| value <= l) {
            ctx.range_error(
                item.span,
                format!("the points of `curve` must be positive and increasing, found {value}"),
                Some("list the eps values in increasing order: `curve = (0.5, 1.0, 2.0)`"),
            );
            return vec![1.0];
        }
        out.push(value);
    }
    if out.is_empty() {
        ctx.range_error(
            v.span,
            "`curve` needs at least one eps value".to_string(),
            Some("`curve = (0.5, 1.0, 2.0)`"),
        );
        return vec![1.0];
    }
    out
}

/// `components = (apgd_ce, apgd_t, fab_t, square)`: AutoAttack's components to run.
fn components(ctx: &mut Ctx, s: &Settings) -> Vec<AutoAttackComponent> {
    let Some(v) = s.get("components") else {
        return Vec::new();
    };
    let names: Vec<String> = AutoAttackComponent::ALL
        .iter()
        .map(|c| c.name().replace('-', "_"))
        .collect();
    let choices: Vec<&str> = names.iter().map(String::as_str).collect();
    let items: Vec<&crate::ast::Value> = match &v.kind {
        crate::ast::ValueKind::Tuple(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(name) = super::reader::choice_value(ctx, "components", item, &choices) {
            let c = AutoAttackComponent::ALL
                .into_iter()
                .find(|c| c.name().replace('-', "_") == name)
                .expect("a listed choice");
            if out.contains(&c) {
                ctx.range_error(
                    item.span,
                    format!("`{name}` is listed twice in `components`"),
                    None,
                );
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// The IR of one `attack KIND { ... }` at one sweep point.
fn lower_attack(ctx: &mut Ctx, kind: AttackKind, s: &Settings, classes: Option<usize>) -> Attack {
    let norm = if kind == AttackKind::Cw && s.get("norm").is_none() {
        Norm::L2
    } else {
        norm(ctx, s, kind.name())
    };
    match kind {
        AttackKind::Fgsm => Attack::Fgsm {
            eps: attack_eps(ctx, s, norm),
        },
        AttackKind::Pgd => {
            let eps = attack_eps(ctx, s, norm);
            let steps = steps(ctx, s, 40);
            let step_size = s
                .num(ctx, "step_size")
                .map_or(2.5 * eps / steps.max(1) as f64, |v| {
                    ctx.positive("step_size", v)
                });
            let random_start = s.boolean(ctx, "random_start").unwrap_or(true);
            Attack::Pgd {
                norm,
                eps,
                step_size,
                steps,
                random_start,
                restarts: restarts(ctx, s),
            }
        }
        AttackKind::Apgd => {
            let eps = attack_eps(ctx, s, norm);
            let steps = steps(ctx, s, 100);
            let loss = match s.choice(ctx, "loss", &["ce", "dlr"]) {
                Some("dlr") => ApgdLoss::Dlr,
                _ => ApgdLoss::Ce,
            };
            Attack::Apgd {
                norm,
                eps,
                loss,
                steps,
                restarts: restarts(ctx, s),
            }
        }
        AttackKind::ApgdT => Attack::ApgdT {
            norm,
            eps: attack_eps(ctx, s, norm),
            steps: steps(ctx, s, 100),
            restarts: restarts(ctx, s),
            targets: targets(ctx, s, classes),
        },
        AttackKind::Square => {
            let eps = attack_eps(ctx, s, norm);
            let queries = s
                .whole(ctx, "queries")
                .map_or(1000, |v| ctx.whole_between("queries", v, 1, 1_000_000));
            let p_init = s
                .num(ctx, "p_init")
                .map_or(0.8, |v| ctx.between("p_init", v, 0.0, 1.0, true, false));
            Attack::Square {
                norm,
                eps,
                queries,
                p_init,
            }
        }
        AttackKind::Fab => Attack::Fab {
            norm,
            eps: attack_eps(ctx, s, norm),
            steps: steps(ctx, s, 100),
            restarts: restarts(ctx, s),
            targets: s
                .whole(ctx, "targets")
                .map_or(0, |v| ctx.whole_between("targets", v, 0, 999)),
        },
        AttackKind::AutoAttack => {
            let eps = attack_eps(ctx, s, norm);
            let listed = components(ctx, s);
            let version = match s.choice(ctx, "version", &["standard", "plus", "rand"]) {
                Some("plus") => AutoAttackVersion::Plus,
                Some("rand") => AutoAttackVersion::Rand,
                _ => AutoAttackVersion::Standard,
            };
            let components = if listed.is_empty() {
                version.components()
            } else {
                listed
            };
            Attack::AutoAttack {
                norm,
                eps,
                version,
                components,
            }
        }
        AttackKind::Cw => {
            if norm != Norm::L2 {
                ctx.push(
                    Diagnostic::new(
                        Code::Incompatible,
                        s.span_of("norm"),
                        "`cw` is the Carlini-Wagner L2 attack; it takes `norm = l2` only",
                    )
                    .with_label("cw is L2 only")
                    .with_help(
                        "leave `norm` out or write `norm = l2`; for Linf use `deepfool` or `fab`",
                    ),
                );
            }
            let steps = steps(ctx, s, 100);
            let binary_steps = s
                .whole(ctx, "binary_steps")
                .map_or(9, |v| ctx.whole_between("binary_steps", v, 1, 100));
            let lr = s.num(ctx, "lr").map_or(0.01, |v| ctx.positive("lr", v));
            let initial_const = s
                .num(ctx, "initial_const")
                .map_or(1e-3, |v| ctx.positive("initial_const", v));
            let confidence = s
                .num(ctx, "confidence")
                .map_or(0.0, |v| ctx.non_negative("confidence", v));
            Attack::Cw {
                steps,
                binary_steps,
                lr,
                initial_const,
                confidence,
                curve: curve(ctx, s),
            }
        }
        AttackKind::DeepFool => {
            let steps = steps(ctx, s, 50);
            let overshoot = s
                .num(ctx, "overshoot")
                .map_or(0.02, |v| ctx.non_negative("overshoot", v));
            let candidates = s
                .whole(ctx, "candidates")
                .map_or(10, |v| ctx.whole_between("candidates", v, 2, 100_000));
            Attack::DeepFool {
                norm,
                steps,
                overshoot,
                candidates,
                curve: curve(ctx, s),
            }
        }
    }
}

/// The attacks; `classes` (the data's, which every model outputs) when known, to check what
/// the attacks need of it.
pub fn lower_attacks(ctx: &mut Ctx, decls: &[&Decl], classes: Option<usize>) -> Attacks {
    let names = AttackKind::names();
    let (specs, sweeps) = each_decl(
        ctx,
        decls,
        "attack",
        &names,
        "attack pgd { eps = 0.3 }",
        |ctx, kind, s, named| {
            let kind = AttackKind::from_name(kind)?;
            let attack = lower_attack(ctx, kind, s, classes);
            if let Some(classes) = classes {
                check_classes(ctx, &attack, s, classes);
            }
            let l2_default = kind != AttackKind::Cw;
            let suffix = if !named && l2_default && attack.norm() == Norm::L2 {
                vec!["l2".to_string()]
            } else {
                Vec::new()
            };
            Some((attack, suffix))
        },
        attack_keys,
    );
    Attacks {
        specs: specs
            .into_iter()
            .map(|(name, attack)| AttackSpec { name, attack })
            .collect(),
        sweeps,
    }
}

fn saliency_keys(kind: &str) -> &'static [&'static str] {
    SaliencyKind::from_name(kind).map_or(&[], SaliencyKind::keys)
}

pub fn lower_saliency(ctx: &mut Ctx, decls: &[&Decl]) -> Saliencies {
    let (specs, sweeps) = each_decl(
        ctx,
        decls,
        "saliency",
        &SaliencyKind::names(),
        "saliency gradient { sign = absolute }",
        |ctx, kind, s, _| {
            let method = match SaliencyKind::from_name(kind)? {
                SaliencyKind::Gradient => {
                    let sign = match s.choice(ctx, "sign", &["signed", "absolute"]) {
                        Some("signed") => SaliencySign::Signed,
                        _ => SaliencySign::Absolute,
                    };
                    SaliencyMethod::Gradient { sign }
                }
                SaliencyKind::GradientInput => SaliencyMethod::GradientInput,
                SaliencyKind::IntegratedGradients => {
                    let steps = s
                        .whole(ctx, "steps")
                        .map_or(32, |v| ctx.whole_between("steps", v, 1, 10_000));
                    let baseline = match s.choice(ctx, "baseline", &["zero", "mean", "uniform"]) {
                        Some("mean") => Baseline::Mean,
                        Some("uniform") => Baseline::Uniform,
                        _ => Baseline::Zero,
                    };
                    SaliencyMethod::IntegratedGradients { steps, baseline }
                }
                SaliencyKind::SmoothGrad => {
                    let samples = s
                        .whole(ctx, "samples")
                        .map_or(25, |v| ctx.whole_between("samples", v, 1, 10_000));
                    let sigma = s
                        .num(ctx, "sigma")
                        .map_or(0.15, |v| ctx.positive("sigma", v));
                    let variant = match s.choice(ctx, "variant", &["mean", "squared", "vargrad"]) {
                        Some("squared") => SmoothGradVariant::Squared,
                        Some("vargrad") => SmoothGradVariant::VarGrad,
                        _ => SmoothGradVariant::Mean,
                    };
                    SaliencyMethod::SmoothGrad {
                        samples,
                        sigma,
                        variant,
                    }
                }
            };
            Some((method, Vec::new()))
        },
        saliency_keys,
    );
    Saliencies {
        specs: specs
            .into_iter()
            .map(|(name, method)| SaliencySpec { name, method })
            .collect(),
        sweeps,
    }
}
