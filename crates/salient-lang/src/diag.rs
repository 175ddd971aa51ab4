//! Diagnostics: what the checker says about a file, with a stable code, a primary span, optional
//! secondary labels and help. They implement [`miette::Diagnostic`] so the CLI renders them with
//! miette's graphical handler; [`render`] does that for a whole file.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use std::fmt;

/// A byte range `[start, end)` in the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.start, s.len()).into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// Stable diagnostic codes, documented in docs/language.md. Never renumber: tools match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// E001: syntax error.
    Syntax,
    /// E002: input too large or too deeply nested to check safely.
    Limit,
    /// E010: unknown section keyword.
    UnknownSection,
    /// E011: unknown kind for a section (data, regime, attack, saliency).
    UnknownKind,
    /// E012: unknown setting key.
    UnknownSetting,
    /// E013: unknown layer.
    UnknownLayer,
    /// E014: unknown metric.
    UnknownMetric,
    /// E015: unknown choice for a setting (e.g. `norm = l3`).
    UnknownChoice,
    /// E020: a value of the wrong type.
    WrongType,
    /// E021: a value out of its valid range.
    OutOfRange,
    /// E022: values that are valid alone but not together.
    Incompatible,
    /// E023: a declaration needs another one that the spec lacks (a metric of saliency maps
    /// without any `saliency`, `robust_accuracy` without any `attack`).
    NeedsDeclaration,
    /// E030: a required section is missing.
    MissingSection,
    /// E031: a required setting is missing.
    MissingSetting,
    /// E032: a section that needs a kind (or a name) was written without one, or has a part
    /// it cannot have (`as NAME`, a body).
    MalformedDeclaration,
    /// E040: a duplicate definition (section, model, regime, attack, saliency or metric).
    Duplicate,
    /// E041: a setting given twice in one body.
    DuplicateSetting,
    /// E050: reference to an undefined model.
    UndefinedModel,
    /// E051: a sensitivity layer that the trained model does not have.
    UnknownModelLayer,
    /// E060: a layer does not fit its input shape.
    ShapeMismatch,
    /// E061: the model's output is not `classes` wide.
    WrongOutput,
    /// E062: a residual body changes the shape in a way a 1x1 projection cannot fix.
    ResidualShape,
    /// E070: a list (sweep) where sweeps are not allowed.
    SweepNotAllowed,
    /// E071: a malformed sweep (empty, nested, duplicate values, too large a grid).
    BadSweep,
    /// E072: a training run's estimated memory exceeds the ceiling (`train { max_memory }`).
    MemoryLimit,
    /// W001: an eps above 0.5 on [0, 1] images.
    LargeEps,
    /// W002: a learning rate that is probably too large for the optimizer.
    LargeLr,
    /// W003: a masking fraction above 0.9.
    LargeMask,
    /// W004: more than 1000 attack steps or queries than usual.
    ManySteps,
    /// W005: an evaluation asks for more examples than the test set has.
    TooManySamples,
    /// W006: a layer that does nothing here (flatten on a flat input).
    NoOpLayer,
    /// W007: a model that is defined but never trained.
    UnusedModel,
    /// W008: attacks are declared but `metrics` lacks `robust_accuracy`, so none is run.
    AttacksNotMeasured,
}

impl Code {
    /// The stable code string, e.g. `salient::E021`.
    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            Syntax => "salient::E001",
            Limit => "salient::E002",
            UnknownSection => "salient::E010",
            UnknownKind => "salient::E011",
            UnknownSetting => "salient::E012",
            UnknownLayer => "salient::E013",
            UnknownMetric => "salient::E014",
            UnknownChoice => "salient::E015",
            WrongType => "salient::E020",
            OutOfRange => "salient::E021",
            Incompatible => "salient::E022",
            NeedsDeclaration => "salient::E023",
            MissingSection => "salient::E030",
            MissingSetting => "salient::E031",
            MalformedDeclaration => "salient::E032",
            Duplicate => "salient::E040",
            DuplicateSetting => "salient::E041",
            UndefinedModel => "salient::E050",
            UnknownModelLayer => "salient::E051",
            ShapeMismatch => "salient::E060",
            WrongOutput => "salient::E061",
            ResidualShape => "salient::E062",
            SweepNotAllowed => "salient::E070",
            BadSweep => "salient::E071",
            MemoryLimit => "salient::E072",
            LargeEps => "salient::W001",
            LargeLr => "salient::W002",
            LargeMask => "salient::W003",
            ManySteps => "salient::W004",
            TooManySamples => "salient::W005",
            NoOpLayer => "salient::W006",
            UnusedModel => "salient::W007",
            AttacksNotMeasured => "salient::W008",
        }
    }

    /// Warnings are the `W` codes; everything else is an error.
    /// Codes of checks that look across declarations; after a syntax error (when some
    /// declarations could not be read) they are not reported, as they would often be wrong.
    pub fn is_cross_reference(self) -> bool {
        matches!(
            self,
            Code::NeedsDeclaration
                | Code::MissingSection
                | Code::UndefinedModel
                | Code::UnknownModelLayer
                | Code::UnusedModel
                | Code::AttacksNotMeasured
        )
    }

    pub fn severity(self) -> Severity {
        if self.as_str().starts_with("salient::W") {
            Severity::Warning
        } else {
            Severity::Error
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message about the source, pointing at `span`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Text under the primary span (may be empty).
    pub label: String,
    pub span: Span,
    /// Secondary spans with their labels (e.g. "first defined here").
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            label: String::new(),
            span,
            labels: Vec::new(),
            help: None,
        }
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based (line, column) of the primary span's start; columns count characters.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        line_col(source, self.span.start)
    }
}

/// 1-based (line, column) of byte offset `offset` in `source` (clamped to the text).
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(
            (!self.label.is_empty()).then(|| self.label.clone()),
            self.span,
        );
        let rest = self
            .labels
            .iter()
            .map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), *s));
        Some(Box::new(std::iter::once(primary).chain(rest)))
    }
}

/// A diagnostic bundled with its source text, so miette can draw the snippet.
struct WithSource<'a> {
    diag: &'a Diagnostic,
    source: &'a NamedSource<String>,
}

impl fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}
impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.diag, f)
    }
}
impl std::error::Error for WithSource<'_> {}
impl miette::Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        miette::Diagnostic::code(self.diag)
    }
    fn severity(&self) -> Option<miette::Severity> {
        miette::Diagnostic::severity(self.diag)
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        miette::Diagnostic::help(self.diag)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        miette::Diagnostic::labels(self.diag)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }
}

/// Render diagnostics for one file with miette's graphical handler. `color` selects ANSI colours
/// and Unicode box drawing; without it the output is plain ASCII (stable for snapshots).
pub fn render(file_name: &str, source: &str, diags: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let named = NamedSource::new(file_name, source.to_string());
    let mut out = String::new();
    for d in diags {
        let spans = std::iter::once(d.span).chain(d.labels.iter().map(|(s, _)| *s));
        let long_line = spans.into_iter().any(|s| {
            line_len_at(source, s.start) > MAX_SNIPPET_LINE
                || line_len_at(source, s.end) > MAX_SNIPPET_LINE
        });
        let w = WithSource {
            diag: d,
            source: &named,
        };
        if long_line || handler.render_report(&mut out, &w).is_err() {
            out.push_str(&plain(file_name, source, d));
        }
        out.push('\n');
    }
    out
}

/// Lines longer than this are not drawn as snippets: miette's layout pads with `{:width$}`,
/// which panics for widths past 65535, and such a snippet would be unreadable anyway.
const MAX_SNIPPET_LINE: usize = 4096;

fn line_len_at(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    let start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    end - start
}

/// One-paragraph rendering without a snippet: `error[code]: message`, location, help.
fn plain(file_name: &str, source: &str, d: &Diagnostic) -> String {
    let (line, col) = d.line_col(source);
    let mut s = format!(
        "{}[{}]: {}\n  --> {file_name}:{line}:{col}\n",
        d.severity, d.code, d.message
    );
    if let Some(h) = &d.help {
        s.push_str(&format!("  help: {h}\n"));
    }
    s
}
