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

pub const ATTACKS: &[&str] = &["fgsm", "pgd", "apgd", "square"];
pub const SALIENCY: &[&str] = &[
    "gradient",
    "gradient_input",
    "integrated_gradients",
    "smoothgrad",
];

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

fn attack_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "fgsm" => &["eps", "norm"],
        "pgd" => &[
            "norm",
            "eps",
            "step_size",
            "steps",
            "random_start",
            "restarts",
        ],
        "apgd" => &["norm", "eps", "loss", "steps", "restarts"],
        _ => &["norm", "eps", "queries", "p_init"],
    }
}

pub fn lower_attacks(ctx: &mut Ctx, decls: &[&Decl]) -> Attacks {
    let (specs, sweeps) = each_decl(
        ctx,
        decls,
        "attack",
        ATTACKS,
        "attack pgd { eps = 0.3 }",
        |ctx, kind, s, named| {
            let norm = norm(ctx, s, kind);
            let eps = attack_eps(ctx, s, norm);
            let restarts = |ctx: &mut Ctx| {
                s.whole(ctx, "restarts")
                    .map_or(1, |v| ctx.whole_between("restarts", v, 1, 1000))
            };
            let attack = match kind {
                "fgsm" => Attack::Fgsm { eps },
                "pgd" => {
                    let steps = s
                        .whole(ctx, "steps")
                        .map_or(40, |v| ctx.at_least("steps", v, 1));
                    many_steps(ctx, s, steps);
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
                        restarts: restarts(ctx),
                    }
                }
                "apgd" => {
                    let steps = s
                        .whole(ctx, "steps")
                        .map_or(100, |v| ctx.at_least("steps", v, 1));
                    many_steps(ctx, s, steps);
                    let loss = match s.choice(ctx, "loss", &["ce", "dlr"]) {
                        Some("dlr") => ApgdLoss::Dlr,
                        _ => ApgdLoss::Ce,
                    };
                    Attack::Apgd {
                        norm,
                        eps,
                        loss,
                        steps,
                        restarts: restarts(ctx),
                    }
                }
                _ => {
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
            };
            let suffix = if !named && norm == Norm::L2 {
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
    match kind {
        "gradient" => &["sign"],
        "integrated_gradients" => &["steps", "baseline"],
        "smoothgrad" => &["samples", "sigma", "variant"],
        _ => &[],
    }
}

pub fn lower_saliency(ctx: &mut Ctx, decls: &[&Decl]) -> Saliencies {
    let (specs, sweeps) = each_decl(
        ctx,
        decls,
        "saliency",
        SALIENCY,
        "saliency gradient { sign = absolute }",
        |ctx, kind, s, _| {
            let method = match kind {
                "gradient" => {
                    let sign = match s.choice(ctx, "sign", &["signed", "absolute"]) {
                        Some("signed") => SaliencySign::Signed,
                        _ => SaliencySign::Absolute,
                    };
                    SaliencyMethod::Gradient { sign }
                }
                "gradient_input" => SaliencyMethod::GradientInput,
                "integrated_gradients" => {
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
                _ => {
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
