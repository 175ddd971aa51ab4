//! The training grid: every (model, train point, regime point) becomes one [`TrainRun`].
//!
//! Runs = |models| x |train grid without `model`| x sum over regimes of |regime grid|, where
//! |models| is the number of models `train.model` names (every model when it is omitted).
//! Also checks what needs both a model and a regime: sensitivity layer names.

use super::model::Models;
use super::regime::RegimeDecl;
use super::train::TrainDecl;
use super::Ctx;
use crate::diag::{Code, Diagnostic, Span};
use crate::suggest;
use salient_ir::{Layer, LayerDef, Regime, RegimeInstance, TrainRun};
use std::collections::HashSet;

/// Most training runs one experiment may imply.
pub const MAX_RUNS: usize = 10_000;
/// Longest run id, in bytes. A run id names a folder (`runs/<id>/`, `maps/<id>/`); Linux allows
/// 255 bytes per path component, and the margin leaves room for names tools derive from it.
pub const MAX_RUN_ID: usize = 200;

/// Make a sweep value safe in a file name: keep ASCII letters, digits and `.`; map the rest
/// to `_` (so `8/255` becomes `8_255`), trimming `_` at the ends.
pub fn sanitize(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_string()
}

pub fn build(
    ctx: &mut Ctx,
    train: &TrainDecl,
    regimes: &[RegimeDecl],
    models: &Models,
) -> Vec<TrainRun> {
    let mut runs = Vec::new();
    let mut ids = HashSet::new();
    let mut trained: HashSet<String> = HashSet::new();
    let total: usize = train
        .points
        .len()
        .saturating_mul(regimes.iter().map(|r| r.points.len()).sum::<usize>())
        .saturating_mul(models.names.len().max(1));
    if total > MAX_RUNS {
        ctx.range_error(
            train.axes.first().map_or(Span::new(0, 0), |a| a.span),
            format!("the sweeps imply {total} training runs; the limit is {MAX_RUNS}"),
            Some("split the experiment into several specs"),
        );
        return runs;
    }
    for tp in &train.points {
        let model_names: Vec<String> = match &tp.model {
            Some(m) => vec![m.clone()],
            None => models.names.iter().map(|(n, _)| n.clone()).collect(),
        };
        let extra: Vec<String> = tp
            .values
            .iter()
            .filter(|(k, _)| k != "model" && k != "seed")
            .map(|(k, v)| format!("{k}{}", sanitize(v)))
            .collect();
        for model in &model_names {
            trained.insert(model.clone());
            for r in regimes {
                for (p_idx, (label, regime)) in r.points.iter().enumerate() {
                    let mut regime_part = r.name.clone();
                    for (a, &i) in r.axes.iter().zip(grid_coords(r, p_idx).iter()) {
                        regime_part.push('_');
                        regime_part.push_str(&a.key);
                        regime_part.push_str(&sanitize(&a.texts[i]));
                    }
                    let mut parts = vec![model.clone(), regime_part];
                    if !extra.is_empty() {
                        parts.push(extra.join("_"));
                    }
                    parts.push(format!("seed{}", tp.config.seed));
                    let id = parts.join("-");
                    if id.len() > MAX_RUN_ID {
                        ctx.push(
                            Diagnostic::new(
                                Code::BadSweep,
                                r.name_span,
                                format!(
                                    "a run id of {} bytes (`{}...`); the limit is {MAX_RUN_ID}",
                                    id.len(),
                                    id.chars().take(40).collect::<String>()
                                ),
                            )
                            .with_label("this regime's run ids are too long")
                            .with_help("run ids name folders (runs/<id>/): use shorter names (`as NAME`) or fewer, shorter sweep values"),
                        );
                        return runs;
                    }
                    if !ids.insert(id.clone()) {
                        // After other errors a collision is usually their echo (a default
                        // standing in for a bad value); report it only on its own.
                        if ctx.has_errors() {
                            continue;
                        }
                        ctx.push(
                            Diagnostic::new(Code::BadSweep, r.name_span, format!("two training runs get the same id `{id}`"))
                                .with_label("this regime's runs collide")
                                .with_help("give each regime its own name with `as NAME` and each sweep distinct values"),
                        );
                        continue;
                    }
                    runs.push(TrainRun {
                        id,
                        model: model.clone(),
                        regime: RegimeInstance {
                            name: r.name.clone(),
                            label: label.clone(),
                            regime: regime.clone(),
                        },
                        train: tp.config.clone(),
                    });
                }
            }
        }
    }
    check_sensitivity_layers(ctx, regimes, models, &trained);
    for (name, span) in &models.names {
        if !trained.contains(name) && !train.points.is_empty() {
            ctx.push(
                Diagnostic::new(
                    Code::UnusedModel,
                    *span,
                    format!("model `{name}` is defined but never trained"),
                )
                .with_label("not used by `train`")
                .with_help(format!(
                    "add it to `train {{ model = [..., {name}] }}` or remove it"
                )),
            );
        }
    }
    runs
}

/// The axis indices of point `n` (the sweep module enumerates with the last axis fastest).
fn grid_coords(r: &RegimeDecl, n: usize) -> Vec<usize> {
    let lens: Vec<usize> = r.axes.iter().map(|a| a.texts.len().max(1)).collect();
    let mut coords = vec![0; lens.len()];
    let mut rem = n;
    for i in (0..lens.len()).rev() {
        coords[i] = rem % lens[i];
        rem /= lens[i];
    }
    coords
}

/// Every layer name, depth-first (residual bodies included).
fn layer_names(layers: &[LayerDef], out: &mut Vec<String>) {
    for l in layers {
        out.push(l.name.clone());
        if let Layer::Residual { body, .. } = &l.kind {
            layer_names(body, out);
        }
    }
}

fn check_sensitivity_layers(
    ctx: &mut Ctx,
    regimes: &[RegimeDecl],
    models: &Models,
    trained: &HashSet<String>,
) {
    for r in regimes {
        if !r
            .points
            .iter()
            .any(|(_, reg)| matches!(reg, Regime::Sensitivity(_)))
        {
            continue;
        }
        for (model, _) in &models.names {
            if !trained.contains(model) {
                continue;
            }
            let Some(def) = models.get(model) else {
                continue;
            };
            // The regime taps top-level layers only (the engine's sensitivity regime reads the
            // outputs of `Network`'s top-level layers); a layer of a residual body cannot be
            // regularised.
            let names: Vec<String> = def.layers.iter().map(|l| l.name.clone()).collect();
            let mut all = Vec::new();
            layer_names(&def.layers, &mut all);
            for l in &r.layer_refs {
                if names.contains(&l.name) {
                    continue;
                }
                if all.contains(&l.name) {
                    let block = def
                        .layers
                        .iter()
                        .find(|top| {
                            let mut inner = Vec::new();
                            layer_names(std::slice::from_ref(*top), &mut inner);
                            inner.contains(&l.name)
                        })
                        .map_or_else(
                            || "a residual block".to_string(),
                            |b| format!("`{}`", b.name),
                        );
                    ctx.push(
                        Diagnostic::new(
                            Code::UnknownModelLayer,
                            l.span,
                            format!(
                                "layer `{}` of model `{model}` is inside the residual block {block}; the sensitivity regime regularises top-level layers only",
                                l.name
                            ),
                        )
                        .with_label("inside a residual block")
                        .with_help(format!(
                            "name a top-level layer, e.g. the block itself ({block}) or one of: {}",
                            names.join(", ")
                        )),
                    );
                    continue;
                }
                let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
                let help = match suggest::closest(&l.name, refs.iter().copied()) {
                    Some(c) => format!(
                        "did you mean `{c}`? layers are named by kind and ordinal: {}",
                        refs.join(", ")
                    ),
                    None => format!("layers are named by kind and ordinal: {}", refs.join(", ")),
                };
                ctx.push(
                    Diagnostic::new(
                        Code::UnknownModelLayer,
                        l.span,
                        format!("model `{model}` has no layer `{}`", l.name),
                    )
                    .with_label(format!("not a layer of `{model}`"))
                    .with_help(help),
                );
            }
        }
    }
}
