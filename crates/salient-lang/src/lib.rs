//! The `.exp` experiment language: parse a spec with the pest grammar in `grammar/exp.pest`,
//! check it (names, types, ranges, shapes, sweeps) and lower it to [`salient_ir::Experiment`].
//!
//! ```
//! let src = "experiment tiny
//! data synthetic { shape = (1, 8, 8)  classes = 2 }
//! model lin { flatten dense(out = 2) }
//! train { epochs = 1 }
//! regime standard";
//! let out = salient_lang::check("tiny.exp", src);
//! assert!(out.is_ok());
//! assert_eq!(out.experiment.unwrap().runs.len(), 1);
//! ```
//!
//! Every problem is a [`Diagnostic`] with a stable code (`salient::E0xx` errors, `salient::W0xx`
//! warnings; see docs/language.md), a span, a label and help. Checking continues after an error,
//! so one run reports every error in the file; no input panics.

pub mod ast;
mod check;
pub mod diag;
pub mod parse;
pub mod suggest;

pub use check::evaluate::SaliencyKind;
pub use check::memory::{
    human as human_bytes, training_memory, MemoryEstimate, DEFAULT_MAX_MEMORY_GIB,
};
pub use check::metrics::MetricKind;
pub use check::model::{layer_names, LayerKind};
pub use check::regime::RegimeKind;
pub use check::runs::MAX_RUN_ID;
pub use diag::{line_col, render, Code, Diagnostic, Severity, Span};
pub use parse::MAX_IDENT;
use salient_ir::Experiment;

/// The result of checking one file.
#[derive(Clone, Debug)]
pub struct CheckOutput {
    /// The file name given to [`check`] (used when rendering).
    pub name: String,
    /// The checked experiment; `None` when any error was reported.
    pub experiment: Option<Experiment>,
    /// Errors and warnings, ordered by position in the file, without duplicates.
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckOutput {
    /// True when there is an experiment (no errors; warnings are allowed).
    pub fn is_ok(&self) -> bool {
        self.experiment.is_some()
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

/// Parse and check `source` (the contents of the file `name`).
pub fn check(name: &str, source: &str) -> CheckOutput {
    let (file, parse_diags) = parse::parse(source);
    let parsed_cleanly = parse_diags.is_empty();
    let mut ctx = check::Ctx {
        source,
        diags: parse_diags,
    };
    let experiment = check::check_file(&mut ctx, &file, parsed_cleanly);
    let mut diagnostics = ctx.diags;
    if !parsed_cleanly {
        diagnostics.retain(|d| !d.code.is_cross_reference());
    }
    // Sweeps check each grid point: the same message can arise once per point.
    let mut seen = std::collections::HashSet::new();
    diagnostics.retain(|d| seen.insert((d.code, d.span, d.message.clone())));
    diagnostics.sort_by_key(|d| (d.span.start, d.severity));
    let experiment = if diagnostics.iter().any(|d| d.is_error()) {
        None
    } else {
        experiment
    };
    CheckOutput {
        name: name.to_string(),
        experiment,
        diagnostics,
    }
}
