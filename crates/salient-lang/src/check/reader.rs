//! Typed reading of settings: the one place that turns `key = value` into numbers, booleans,
//! strings and choices, reporting unknown keys (with a suggestion), keys given twice, wrong types
//! and values out of range. Every getter reports its own error and returns `None`, so callers
//! fall back to a default and keep checking: one run reports every error in a file.

use super::Ctx;
use crate::ast::{Setting, Value, ValueKind};
use crate::diag::{Code, Diagnostic, Span};
use crate::suggest;

/// Largest whole number accepted anywhere (2^53: exact in an f64).
const MAX_WHOLE: f64 = 9_007_199_254_740_992.0;

/// The settings of one body or call, checked against the keys it may hold.
pub struct Settings<'a> {
    /// How the owner is named in messages, e.g. "`attack pgd`" or "`conv`".
    pub what: String,
    /// Where to point when a required setting is missing.
    pub owner: Span,
    entries: Vec<&'a Setting>,
}

impl<'a> Settings<'a> {
    /// Collect `settings`, reporting keys not in `allowed` and keys given twice.
    pub fn new(
        ctx: &mut Ctx,
        what: impl Into<String>,
        owner: Span,
        settings: impl IntoIterator<Item = &'a Setting>,
        allowed: &[&str],
    ) -> Self {
        let what = what.into();
        let mut entries: Vec<&'a Setting> = Vec::new();
        for s in settings {
            let key = s.key.name.as_str();
            if !allowed.contains(&key) {
                let help = if allowed.is_empty() {
                    format!("{what} takes no settings")
                } else {
                    suggest::help(key, allowed)
                };
                ctx.push(
                    Diagnostic::new(
                        Code::UnknownSetting,
                        s.key.span,
                        format!("unknown setting `{key}` in {what}"),
                    )
                    .with_label("unknown setting")
                    .with_help(help),
                );
                continue;
            }
            if let Some(first) = entries.iter().find(|e| e.key.name == key) {
                ctx.push(
                    Diagnostic::new(
                        Code::DuplicateSetting,
                        s.key.span,
                        format!("`{key}` is given twice in {what}"),
                    )
                    .with_label("given again here")
                    .with_secondary(first.key.span, "first given here")
                    .with_help(
                        "remove one of them; to try several values, write one list `[a, b]`",
                    ),
                );
                continue;
            }
            entries.push(s);
        }
        Settings {
            what,
            owner,
            entries,
        }
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|e| e.key.name == key)
            .map(|e| &e.value)
    }

    /// The span of `key`'s value, else the owner's.
    pub fn span_of(&self, key: &str) -> Span {
        self.get(key).map_or(self.owner, |v| v.span)
    }

    /// Report that `key` is required and missing. `example` completes "add `key = ...`".
    pub fn missing(&self, ctx: &mut Ctx, key: &str, example: &str) {
        ctx.push(
            Diagnostic::new(
                Code::MissingSetting,
                self.owner,
                format!("{} needs `{key}`", self.what),
            )
            .with_label(format!("`{key}` is missing"))
            .with_help(format!("add `{key} = {example}`")),
        );
    }

    fn type_error(&self, ctx: &mut Ctx, key: &str, expects: &str, v: &Value) {
        let mut d = Diagnostic::new(
            Code::WrongType,
            v.span,
            format!("`{key}` expects {expects}, found {}", v.kind.describe()),
        )
        .with_label(format!("expected {expects}"));
        if matches!(v.kind, ValueKind::List(_)) {
            d = d.with_help("a list is a sweep; it cannot stand here");
        }
        ctx.push(d);
    }

    /// A number (or fraction).
    pub fn num(&self, ctx: &mut Ctx, key: &str) -> Option<(f64, Span)> {
        let v = self.get(key)?;
        match &v.kind {
            ValueKind::Number { value, .. } => Some((*value, v.span)),
            _ => {
                self.type_error(ctx, key, "a number", v);
                None
            }
        }
    }

    /// A whole number >= 0.
    pub fn whole(&self, ctx: &mut Ctx, key: &str) -> Option<(u64, Span)> {
        let v = self.get(key)?;
        whole_value(ctx, key, v).map(|n| (n, v.span))
    }

    pub fn boolean(&self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match &v.kind {
            ValueKind::Bool(b) => Some(*b),
            _ => {
                self.type_error(ctx, key, "`true` or `false`", v);
                None
            }
        }
    }

    pub fn string(&self, ctx: &mut Ctx, key: &str) -> Option<String> {
        let v = self.get(key)?;
        match &v.kind {
            ValueKind::Str(s) => Some(s.clone()),
            _ => {
                self.type_error(ctx, key, "a string \"...\"", v);
                None
            }
        }
    }

    /// One of the identifiers in `choices`.
    pub fn choice<'c>(&self, ctx: &mut Ctx, key: &str, choices: &[&'c str]) -> Option<&'c str> {
        let v = self.get(key)?;
        choice_value(ctx, key, v, choices)
    }
}

/// A whole number >= 0 (at most 2^53).
pub fn whole_value(ctx: &mut Ctx, key: &str, v: &Value) -> Option<u64> {
    match &v.kind {
        ValueKind::Number { value, text } => {
            if value.fract() != 0.0 {
                ctx.push(
                    Diagnostic::new(
                        Code::WrongType,
                        v.span,
                        format!("`{key}` expects a whole number, found {text}"),
                    )
                    .with_label("not a whole number"),
                );
                None
            } else if *value < 0.0 {
                ctx.push(
                    Diagnostic::new(
                        Code::OutOfRange,
                        v.span,
                        format!("`{key}` cannot be negative, found {text}"),
                    )
                    .with_label("negative"),
                );
                None
            } else if *value > MAX_WHOLE {
                ctx.push(
                    Diagnostic::new(
                        Code::OutOfRange,
                        v.span,
                        format!("`{key}` is too large: {text}"),
                    )
                    .with_label("too large"),
                );
                None
            } else {
                Some(*value as u64)
            }
        }
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    v.span,
                    format!("`{key}` expects a whole number, found {}", other.describe()),
                )
                .with_label("expected a whole number"),
            );
            None
        }
    }
}

/// One of the identifiers in `choices` (written bare, without arguments).
pub fn choice_value<'c>(
    ctx: &mut Ctx,
    key: &str,
    v: &Value,
    choices: &[&'c str],
) -> Option<&'c str> {
    match &v.kind {
        ValueKind::Call { name, args, parens } => {
            let Some(c) = choices.iter().find(|c| **c == name.name) else {
                ctx.push(
                    Diagnostic::new(
                        Code::UnknownChoice,
                        name.span,
                        format!("unknown value `{}` for `{key}`", name.name),
                    )
                    .with_label("unknown value")
                    .with_help(suggest::help(&name.name, choices)),
                );
                return None;
            };
            if *parens || !args.is_empty() {
                ctx.push(
                    Diagnostic::new(
                        Code::WrongType,
                        v.span,
                        format!("`{}` takes no arguments here", name.name),
                    )
                    .with_label("no arguments expected")
                    .with_help(format!("write `{key} = {}`", name.name)),
                );
            }
            Some(*c)
        }
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    v.span,
                    format!(
                        "`{key}` expects one of {}, found {}",
                        suggest::quoted(choices),
                        other.describe()
                    ),
                )
                .with_label("expected a name"),
            );
            None
        }
    }
}

/// A call value: its name and arguments (a bare identifier is a call with no arguments).
pub fn call_value<'v>(
    ctx: &mut Ctx,
    key: &str,
    v: &'v Value,
    expects: &str,
) -> Option<(&'v crate::ast::Ident, &'v [Setting])> {
    match &v.kind {
        ValueKind::Call { name, args, .. } => Some((name, args)),
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    v.span,
                    format!("`{key}` expects {expects}, found {}", other.describe()),
                )
                .with_label(format!("expected {expects}")),
            );
            None
        }
    }
}

/// Range checks: each reports `E021` at `span` when the condition fails and returns the value.
impl Ctx<'_> {
    pub fn range_error(&mut self, span: Span, message: String, help: Option<&str>) {
        let mut d = Diagnostic::new(Code::OutOfRange, span, message).with_label("out of range");
        if let Some(h) = help {
            d = d.with_help(h.to_string());
        }
        self.push(d);
    }

    /// `v > 0`.
    pub fn positive(&mut self, key: &str, (v, span): (f64, Span)) -> f64 {
        if v <= 0.0 {
            self.range_error(
                span,
                format!("`{key}` must be greater than 0, found {v}"),
                None,
            );
        }
        v
    }

    /// `v >= 0`.
    pub fn non_negative(&mut self, key: &str, (v, span): (f64, Span)) -> f64 {
        if v < 0.0 {
            self.range_error(span, format!("`{key}` must be 0 or more, found {v}"), None);
        }
        v
    }

    /// `lo <= v <= hi`, with `open_lo` / `open_hi` making either end exclusive.
    pub fn between(
        &mut self,
        key: &str,
        (v, span): (f64, Span),
        lo: f64,
        hi: f64,
        open_lo: bool,
        open_hi: bool,
    ) -> f64 {
        let ok_lo = if open_lo { v > lo } else { v >= lo };
        let ok_hi = if open_hi { v < hi } else { v <= hi };
        if !(ok_lo && ok_hi) {
            let l = if open_lo { "(" } else { "[" };
            let r = if open_hi { ")" } else { "]" };
            self.range_error(
                span,
                format!("`{key}` must be in {l}{lo}, {hi}{r}, found {v}"),
                None,
            );
        }
        v
    }

    /// A whole number `>= min`, as usize.
    pub fn at_least(&mut self, key: &str, (v, span): (u64, Span), min: u64) -> usize {
        if v < min {
            self.range_error(
                span,
                format!("`{key}` must be at least {min}, found {v}"),
                None,
            );
        }
        usize::try_from(v).unwrap_or(usize::MAX)
    }

    /// A whole number in `[min, max]`, as usize.
    pub fn whole_between(
        &mut self,
        key: &str,
        (v, span): (u64, Span),
        min: u64,
        max: u64,
    ) -> usize {
        if v < min || v > max {
            self.range_error(
                span,
                format!("`{key}` must be between {min} and {max}, found {v}"),
                None,
            );
        }
        usize::try_from(v).unwrap_or(usize::MAX)
    }
}
