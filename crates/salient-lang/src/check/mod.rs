//! Syntax tree -> [`salient_ir::Experiment`]: resolve names, check types and ranges, infer
//! shapes, expand sweeps, fill defaults. Each section has its own module; this one groups the
//! declarations by keyword, checks their form (`KEYWORD KIND [as NAME] [{ body }]`) and
//! assembles the experiment. Checking goes on after an error, so one run reports them all.

mod data;
pub(crate) mod evaluate;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod reader;
pub(crate) mod regime;
pub(crate) mod runs;
pub(crate) mod sweep;
mod train;

use crate::ast::{Body, Decl, File};
use crate::diag::{Code, Diagnostic, Span};
use crate::parse::SECTIONS;
use crate::suggest;
use salient_ir::Experiment;
use std::collections::BTreeMap;

/// The checking state: the source (for quoting values) and the diagnostics so far.
pub struct Ctx<'s> {
    pub source: &'s str,
    pub diags: Vec<Diagnostic>,
}

impl<'s> Ctx<'s> {
    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(|d| d.is_error())
    }
    /// The source text of `span`, whitespace removed (used for sweep values and run ids).
    pub fn text(&self, span: Span) -> String {
        self.source
            .get(span.start..span.end)
            .unwrap_or("")
            .split_whitespace()
            .collect()
    }
}

/// Whether a declaration part is required, optional or forbidden.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Required,
    Optional,
    Forbidden,
}

/// The declarations of a file, grouped by section keyword.
#[derive(Default)]
struct Sections<'f> {
    by_key: BTreeMap<&'static str, Vec<&'f Decl>>,
}

impl<'f> Sections<'f> {
    fn all(&self, key: &str) -> &[&'f Decl] {
        self.by_key.get(key).map_or(&[], |v| v.as_slice())
    }
    /// The one declaration of a section that may appear once; later ones are reported.
    fn single(&self, ctx: &mut Ctx, key: &str) -> Option<&'f Decl> {
        let all = self.all(key);
        for d in all.iter().skip(1) {
            ctx.push(
                Diagnostic::new(
                    Code::Duplicate,
                    d.head_span(),
                    format!("a second `{key}` section"),
                )
                .with_label("declared again here")
                .with_secondary(all[0].head_span(), "first declared here")
                .with_help(format!("an experiment has one `{key}` section")),
            );
        }
        all.first().copied()
    }
}

/// An empty body for declarations written without one.
fn empty_body(d: &Decl) -> Body {
    Body {
        entries: Vec::new(),
        span: d.head_span(),
    }
}

/// Check a declaration's form. `kind_word` names what the kind position holds ("a kind", "a
/// name"); `example` shows a correct declaration.
fn check_form(
    ctx: &mut Ctx,
    d: &Decl,
    kind: Part,
    alias: Part,
    body: Part,
    kind_word: &str,
    example: &str,
) {
    let key = d.keyword.name.as_str();
    match (&d.kind, kind) {
        (None, Part::Required) => ctx.push(
            Diagnostic::new(
                Code::MalformedDeclaration,
                d.keyword.span,
                format!("`{key}` needs {kind_word}"),
            )
            .with_label(format!("{kind_word} is missing"))
            .with_help(format!("write e.g. `{example}`")),
        ),
        (Some(k), Part::Forbidden) => ctx.push(
            Diagnostic::new(
                Code::MalformedDeclaration,
                k.span,
                format!("`{key}` takes no kind or name, found `{}`", k.name),
            )
            .with_label("unexpected")
            .with_help(format!("write e.g. `{example}`")),
        ),
        _ => {}
    }
    if let (Some(a), Part::Forbidden) = (&d.alias, alias) {
        ctx.push(
            Diagnostic::new(
                Code::MalformedDeclaration,
                a.span,
                format!("`{key}` cannot be renamed with `as`"),
            )
            .with_label("unexpected `as NAME`")
            .with_help("only `regime`, `attack` and `saliency` declarations take `as NAME`"),
        );
    }
    match (&d.body, body) {
        (None, Part::Required) => ctx.push(
            Diagnostic::new(
                Code::MalformedDeclaration,
                d.head_span(),
                format!("`{key}` needs a body `{{ ... }}`"),
            )
            .with_label("no body")
            .with_help(format!("write e.g. `{example}`")),
        ),
        (Some(b), Part::Forbidden) => ctx.push(
            Diagnostic::new(
                Code::MalformedDeclaration,
                b.span,
                format!("`{key}` takes no body"),
            )
            .with_label("unexpected body")
            .with_help(format!("write e.g. `{example}`")),
        ),
        _ => {}
    }
}

/// Report a missing section at the `experiment` line (or the file start).
fn missing_section(ctx: &mut Ctx, at: Span, key: &str, help: &str) {
    ctx.push(
        Diagnostic::new(
            Code::MissingSection,
            at,
            format!("the experiment has no `{key}` section"),
        )
        .with_label(format!("no `{key}` in this experiment"))
        .with_help(help.to_string()),
    );
}

/// Check the parsed file and lower it to the IR. Returns `None` when any error was reported.
pub fn check_file(ctx: &mut Ctx, file: &File, parsed_cleanly: bool) -> Option<Experiment> {
    // Group by keyword.
    let mut sections = Sections::default();
    for d in &file.decls {
        match SECTIONS.iter().find(|s| **s == d.keyword.name) {
            Some(s) => sections.by_key.entry(s).or_default().push(d),
            None => ctx.push(
                Diagnostic::new(
                    Code::UnknownSection,
                    d.keyword.span,
                    format!("unknown section `{}`", d.keyword.name),
                )
                .with_label("unknown section")
                .with_help(suggest::help(&d.keyword.name, SECTIONS)),
            ),
        }
    }

    // experiment NAME
    let exp = sections.single(ctx, "experiment");
    let anchor = exp.map_or(Span::new(0, 0), |d| d.head_span());
    let name = match exp {
        Some(d) => {
            check_form(
                ctx,
                d,
                Part::Required,
                Part::Forbidden,
                Part::Forbidden,
                "a name",
                "experiment quickstart",
            );
            d.kind.as_ref().map(|k| k.name.clone())
        }
        None => {
            if parsed_cleanly {
                missing_section(
                    ctx,
                    anchor,
                    "experiment",
                    "start the file with `experiment NAME`",
                );
            }
            None
        }
    };

    // data
    let data = match sections.single(ctx, "data") {
        Some(d) => {
            check_form(
                ctx,
                d,
                Part::Required,
                Part::Forbidden,
                Part::Optional,
                "a kind",
                "data mnist { dir = \"data/mnist\" }",
            );
            data::lower(ctx, d)
        }
        None => {
            if parsed_cleanly {
                missing_section(
                    ctx,
                    anchor,
                    "data",
                    "add e.g. `data mnist { dir = \"data/mnist\" }`",
                );
            }
            None
        }
    };

    // models
    let model_decls = sections.all("model");
    if model_decls.is_empty() && parsed_cleanly {
        missing_section(
            ctx,
            anchor,
            "model",
            "add e.g. `model cnn { flatten dense(out = 10) }`",
        );
    }
    let models = model::lower_all(ctx, model_decls, data.as_ref());

    // train
    let train = match sections.single(ctx, "train") {
        Some(d) => {
            check_form(
                ctx,
                d,
                Part::Forbidden,
                Part::Forbidden,
                Part::Required,
                "",
                "train { model = cnn  epochs = 3 }",
            );
            Some(train::lower(ctx, d, &models.names))
        }
        None => {
            if parsed_cleanly {
                missing_section(
                    ctx,
                    anchor,
                    "train",
                    "add e.g. `train { model = cnn  epochs = 3 }`",
                );
            }
            None
        }
    };

    // regimes
    let regime_decls = sections.all("regime");
    if regime_decls.is_empty() && parsed_cleanly {
        missing_section(ctx, anchor, "regime", "add e.g. `regime standard`");
    }
    let regimes = regime::lower_all(ctx, regime_decls, data.as_ref());

    // evaluation
    let attacks = evaluate::lower_attacks(
        ctx,
        sections.all("attack"),
        data.as_ref().map(|d| d.classes),
    );
    let saliency = evaluate::lower_saliency(ctx, sections.all("saliency"));
    let metrics_decl = sections.single(ctx, "metrics");
    let metrics = metrics::lower_metrics(
        ctx,
        metrics_decl,
        !sections.all("attack").is_empty(),
        !sections.all("saliency").is_empty(),
    );
    let eval_decl = sections.single(ctx, "eval");
    let eval = metrics::lower_eval(ctx, eval_decl, data.as_ref());
    let report_decl = sections.single(ctx, "report");
    let report = metrics::lower_report(ctx, report_decl, name.as_deref().unwrap_or("experiment"));

    // the training grid
    let runs = match &train {
        Some(t) => runs::build(ctx, t, &regimes, &models),
        None => Vec::new(),
    };

    let mut sweeps = BTreeMap::new();
    for (path, texts) in train
        .iter()
        .flat_map(|t| t.axes.iter().map(|a| (a.path.clone(), a.texts.clone())))
    {
        sweeps.insert(path, texts);
    }
    for r in &regimes {
        for a in &r.axes {
            sweeps.insert(a.path.clone(), a.texts.clone());
        }
    }
    for (path, texts) in attacks.sweeps.iter().chain(&saliency.sweeps) {
        sweeps.insert(path.clone(), texts.clone());
    }

    if ctx.has_errors() {
        return None;
    }
    let model_spans = models.names.clone();
    let exp = Experiment {
        name: name?,
        data: data?,
        models: models.defs.into_iter().flatten().collect(),
        runs,
        attacks: attacks.specs,
        saliency: saliency.specs,
        metrics,
        eval,
        report,
        sweeps,
    };
    // What one training run holds in memory, against the ceiling (E072).
    let train_decl = sections.all("train").first().copied();
    let spans = memory::Spans {
        models: model_spans,
        data: sections
            .all("data")
            .first()
            .map_or(anchor, |d| d.head_span()),
        batch: setting_span(train_decl, "batch")
            .or_else(|| train_decl.map(|d| d.head_span()))
            .unwrap_or(anchor),
        eval_batch: setting_span(eval_decl, "batch"),
    };
    let max_memory = train
        .as_ref()
        .map_or(memory::DEFAULT_MAX_MEMORY_GIB, |t| t.max_memory);
    memory::check(ctx, &exp, &spans, max_memory);
    if ctx.has_errors() {
        return None;
    }
    Some(exp)
}

/// The span of the value of setting `key` in `decl`'s body, when written.
fn setting_span(decl: Option<&Decl>, key: &str) -> Option<Span> {
    decl?.body.as_ref()?.entries.iter().find_map(|e| match e {
        crate::ast::Entry::Setting(s) if s.key.name == key => Some(s.value.span),
        _ => None,
    })
}
