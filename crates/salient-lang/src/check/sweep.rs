//! Sweeps: a list `[a, b, c]` as the value of a setting (or of a call argument inside one) makes
//! that declaration a grid. [`expand`] finds every list in a body, checks it, and returns one
//! plain body (lists replaced by one element each) per point of the Cartesian product, first
//! axis varying slowest. Where sweeps are not allowed, each list is reported and its first
//! element stands in for it so the rest of the body is still checked.

use super::Ctx;
use crate::ast::{Body, Entry, Setting, Value, ValueKind};
use crate::diag::{Code, Diagnostic, Span};
use std::collections::HashMap;

/// Most points one declaration's grid may have.
pub const MAX_GRID: usize = 1024;

/// One list in a body.
#[derive(Clone, Debug)]
pub struct Axis {
    /// Dotted path, e.g. `regime.pgd_at.attack.eps`.
    pub path: String,
    /// The setting or argument name (`eps`).
    pub key: String,
    /// Each element as written (whitespace removed).
    pub texts: Vec<String>,
    /// The span of the list (identifies it during substitution).
    pub span: Span,
}

/// One point of a grid: the plain body and, for each axis, the index chosen.
#[derive(Clone, Debug)]
pub struct Point {
    pub body: Body,
    pub coords: Vec<usize>,
}

impl Point {
    /// `key=value` pairs of this point, in axis order.
    pub fn values<'a>(&self, axes: &'a [Axis]) -> Vec<(&'a str, &'a str)> {
        axes.iter()
            .zip(&self.coords)
            .map(|(a, &i)| (a.key.as_str(), a.texts[i].as_str()))
            .collect()
    }
}

/// Expand `body` (the body of the declaration at `prefix`, e.g. `train` or `attack.pgd`). With
/// `allowed = false`, lists are errors (`E070`) naming `section`.
pub fn expand(
    ctx: &mut Ctx,
    prefix: &str,
    section: &str,
    body: &Body,
    allowed: bool,
) -> (Vec<Axis>, Vec<Point>) {
    let mut axes = Vec::new();
    let mut lists: Vec<&Value> = Vec::new();
    for e in &body.entries {
        match e {
            Entry::Setting(s) => collect(
                ctx,
                &format!("{prefix}.{}", s.key.name),
                &s.key.name,
                &s.value,
                &mut axes,
                &mut lists,
            ),
            Entry::Item(v) => forbid_inside(ctx, v, "an item"),
        }
    }
    if !allowed {
        for (a, l) in axes.iter().zip(&lists) {
            ctx.push(
                Diagnostic::new(Code::SweepNotAllowed, a.span, format!("a sweep `[...]` is not allowed in {section}"))
                    .with_label("list here")
                    .with_help(format!(
                        "only `train`, `regime`, `attack` and `saliency` take sweeps; for a fixed vector write a tuple `({})`",
                        list_inner(ctx, l)
                    )),
            );
        }
        let first: HashMap<usize, usize> = axes.iter().map(|a| (a.span.start, 0)).collect();
        let body = substitute_body(body, &first);
        return (
            Vec::new(),
            vec![Point {
                body,
                coords: Vec::new(),
            }],
        );
    }
    let mut size: usize = 1;
    for a in &axes {
        size = size.saturating_mul(a.texts.len().max(1));
    }
    if size > MAX_GRID {
        let span = axes.first().map_or(body.span, |a| a.span);
        ctx.push(
            Diagnostic::new(
                Code::BadSweep,
                span,
                format!(
                    "the sweeps in {section} make {size} combinations; the limit is {MAX_GRID}"
                ),
            )
            .with_label("first sweep of this grid")
            .with_help("split the experiment into several specs"),
        );
        let first: HashMap<usize, usize> = axes.iter().map(|a| (a.span.start, 0)).collect();
        return (
            Vec::new(),
            vec![Point {
                body: substitute_body(body, &first),
                coords: Vec::new(),
            }],
        );
    }
    let lens: Vec<usize> = axes.iter().map(|a| a.texts.len().max(1)).collect();
    let mut points = Vec::with_capacity(size);
    for n in 0..size {
        // Mixed radix, last axis fastest.
        let mut coords = vec![0; lens.len()];
        let mut rem = n;
        for i in (0..lens.len()).rev() {
            coords[i] = rem % lens[i];
            rem /= lens[i];
        }
        let choice: HashMap<usize, usize> = axes
            .iter()
            .zip(&coords)
            .map(|(a, &c)| (a.span.start, c))
            .collect();
        points.push(Point {
            body: substitute_body(body, &choice),
            coords,
        });
    }
    (axes, points)
}

fn list_inner(ctx: &Ctx, v: &Value) -> String {
    match &v.kind {
        ValueKind::List(items) => items
            .iter()
            .map(|i| ctx.text(i.span))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// Find lists in a setting's value: at the top or as a call argument (recursively).
fn collect<'v>(
    ctx: &mut Ctx,
    path: &str,
    key: &str,
    v: &'v Value,
    axes: &mut Vec<Axis>,
    lists: &mut Vec<&'v Value>,
) {
    match &v.kind {
        ValueKind::List(items) => {
            if items.is_empty() {
                ctx.push(
                    Diagnostic::new(
                        Code::BadSweep,
                        v.span,
                        format!("the sweep `{key} = []` is empty"),
                    )
                    .with_label("empty list")
                    .with_help("give at least one value"),
                );
            }
            let mut texts: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                forbid_inside(ctx, item, "a list");
                let text = ctx.text(item.span);
                let dup = items[..i].iter().position(|p| same_value(ctx, p, item));
                if let Some(j) = dup {
                    ctx.push(
                        Diagnostic::new(
                            Code::BadSweep,
                            item.span,
                            format!("`{text}` appears twice in the sweep of `{key}`"),
                        )
                        .with_label("repeated value")
                        .with_secondary(items[j].span, "first here")
                        .with_help("each value of a sweep must be different"),
                    );
                }
                texts.push(text);
            }
            if items.is_empty() {
                return;
            }
            axes.push(Axis {
                path: path.to_string(),
                key: key.to_string(),
                texts,
                span: v.span,
            });
            lists.push(v);
        }
        ValueKind::Call { args, .. } => {
            for a in args {
                collect(
                    ctx,
                    &format!("{path}.{}", a.key.name),
                    &a.key.name,
                    &a.value,
                    axes,
                    lists,
                );
            }
        }
        ValueKind::Tuple(items) => {
            for i in items {
                forbid_inside(ctx, i, "a tuple");
            }
        }
        _ => {}
    }
}

/// Lists nested where they cannot be expanded.
fn forbid_inside(ctx: &mut Ctx, v: &Value, place: &str) {
    match &v.kind {
        ValueKind::List(_) => ctx.push(
            Diagnostic::new(
                Code::BadSweep,
                v.span,
                format!("a sweep `[...]` cannot stand inside {place}"),
            )
            .with_label("nested list")
            .with_help("a sweep must be the whole value of a setting or of a named argument"),
        ),
        ValueKind::Tuple(items) => items.iter().for_each(|i| forbid_inside(ctx, i, place)),
        ValueKind::Call { args, .. } => args
            .iter()
            .for_each(|a| forbid_inside(ctx, &a.value, place)),
        _ => {}
    }
}

fn same_value(ctx: &Ctx, a: &Value, b: &Value) -> bool {
    match (&a.kind, &b.kind) {
        (ValueKind::Number { value: x, .. }, ValueKind::Number { value: y, .. }) => x == y,
        _ => ctx.text(a.span) == ctx.text(b.span),
    }
}

fn substitute_body(body: &Body, choice: &HashMap<usize, usize>) -> Body {
    let entries = body
        .entries
        .iter()
        .map(|e| match e {
            Entry::Setting(s) => Entry::Setting(Setting {
                key: s.key.clone(),
                value: substitute(&s.value, choice),
            }),
            Entry::Item(v) => Entry::Item(v.clone()),
        })
        .collect();
    Body {
        entries,
        span: body.span,
    }
}

fn substitute(v: &Value, choice: &HashMap<usize, usize>) -> Value {
    match &v.kind {
        ValueKind::List(items) => {
            let i = choice.get(&v.span.start).copied().unwrap_or(0);
            match items.get(i) {
                Some(item) => item.clone(),
                None => v.clone(),
            }
        }
        ValueKind::Call { name, args, parens } => Value {
            kind: ValueKind::Call {
                name: name.clone(),
                args: args
                    .iter()
                    .map(|a| Setting {
                        key: a.key.clone(),
                        value: substitute(&a.value, choice),
                    })
                    .collect(),
                parens: *parens,
            },
            span: v.span,
        },
        _ => v.clone(),
    }
}
