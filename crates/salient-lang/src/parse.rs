//! Text -> syntax tree, with the pest grammar in `grammar/exp.pest`.
//!
//! The parser reads one declaration at a time, so a syntax error is reported precisely (what was
//! expected there, in words) and parsing resumes at the next line that starts with a section
//! keyword: the declarations after a typo are still checked. Before pest runs, a linear scan
//! bounds the nesting depth and the input size, so no input can overflow the stack.

use crate::ast::{Body, Decl, Entry, File, Ident, Setting, Value, ValueKind};
use crate::diag::{Code, Diagnostic, Span};
use pest::error::InputLocation;
use pest::iterators::Pair;
use pest::Parser;
use std::collections::BTreeSet;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/exp.pest"]
struct ExpParser;

/// Deepest nesting of `(`, `[` and `{` accepted.
pub const MAX_DEPTH: usize = 32;
/// Syntax errors reported before parsing gives up.
pub const MAX_SYNTAX_ERRORS: usize = 50;
/// Largest source accepted, in bytes.
pub const MAX_SOURCE: usize = 4 << 20;
/// Longest identifier accepted, in bytes. Names become parts of run ids and so of file names
/// (`runs/<id>/`, `maps/<id>/`, `reports/<experiment>/`), which Linux limits to 255 bytes a
/// component; see [`crate::MAX_RUN_ID`] for the composed id.
pub const MAX_IDENT: usize = 64;
/// The UTF-8 byte-order mark some editors write at the start of a file; it is skipped.
const BOM: &str = "\u{feff}";

/// The section keywords, in the order the language reference lists them.
pub const SECTIONS: &[&str] = &[
    "experiment",
    "data",
    "model",
    "train",
    "regime",
    "attack",
    "saliency",
    "metrics",
    "eval",
    "report",
];

/// Parse `source` into declarations, reporting every syntax error it can find.
pub fn parse(source: &str) -> (File, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut decls = Vec::new();
    if let Some(d) = check_limits(source) {
        diags.push(d);
        return (File { decls }, diags);
    }
    pest::set_error_detail(true);
    // Each pest call costs time linear in the remaining input (it indexes lines), so read as many
    // declarations as possible per call: the calls number one plus two per syntax error.
    // A byte-order mark at the start is not part of the text (spans still count its bytes).
    let mut pos = if source.starts_with(BOM) {
        BOM.len()
    } else {
        0
    };
    let mut errors = 0;
    while pos < source.len() {
        let rest = &source[pos..];
        if let Ok(mut pairs) = ExpParser::parse(Rule::decls_at, rest) {
            let mut end = 0;
            if let Some(all) = pairs.next() {
                for decl_pair in all.into_inner().filter(|p| p.as_rule() == Rule::decl) {
                    end = decl_pair.as_span().end();
                    let mut conv = Converter {
                        offset: pos,
                        source,
                        diags: &mut diags,
                    };
                    decls.push(conv.decl(decl_pair));
                }
            }
            pos += end;
        }
        let rest = &source[pos..];
        if ExpParser::parse(Rule::end_at, rest).is_ok() {
            break;
        }
        match ExpParser::parse(Rule::decl_at, rest) {
            // `decls_at` stopped before this declaration, so it cannot parse; be safe anyway.
            Ok(_) => break,
            Err(e) => {
                let (diag, at) = syntax_error(source, pos, &e);
                diags.push(diag);
                errors += 1;
                if errors == MAX_SYNTAX_ERRORS {
                    diags.push(Diagnostic::new(
                        Code::Syntax,
                        Span::new(at, at),
                        format!("stopped after {MAX_SYNTAX_ERRORS} syntax errors"),
                    ));
                    break;
                }
                match next_section_line(source, at) {
                    Some(next) if next > pos => pos = next,
                    _ => break,
                }
            }
        }
    }
    (File { decls }, diags)
}

/// Reject inputs too large or too deeply nested for the recursive-descent parser.
fn check_limits(source: &str) -> Option<Diagnostic> {
    if source.len() > MAX_SOURCE {
        return Some(
            Diagnostic::new(
                Code::Limit,
                Span::new(0, 0),
                format!(
                    "the file is {} bytes; the limit is {MAX_SOURCE}",
                    source.len()
                ),
            )
            .with_help("an experiment spec is a few kilobytes; is this the right file?"),
        );
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for (i, c) in source.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || c == '\n' {
                in_string = false;
            }
        } else {
            match c {
                '#' => in_comment = true,
                '"' => in_string = true,
                '(' | '[' | '{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(
                            Diagnostic::new(
                                Code::Limit,
                                Span::new(i, i + 1),
                                format!("brackets nested deeper than {MAX_DEPTH} levels"),
                            )
                            .with_label("too deep"),
                        );
                    }
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// The start of the next line after `at` whose first word is a section keyword.
fn next_section_line(source: &str, at: usize) -> Option<usize> {
    let mut line_start = source[at.min(source.len())..]
        .find('\n')
        .map(|i| at + i + 1)?;
    while line_start < source.len() {
        let line_end = source[line_start..]
            .find('\n')
            .map_or(source.len(), |i| line_start + i);
        let line = &source[line_start..line_end];
        let word: String = line
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if SECTIONS.contains(&word.as_str()) {
            return Some(line_start);
        }
        line_start = line_end + 1;
    }
    None
}

/// Turn a pest error into a diagnostic saying in words what was expected, and where.
fn syntax_error(source: &str, offset: usize, e: &pest::error::Error<Rule>) -> (Diagnostic, usize) {
    let mut rel = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: BTreeSet<&'static str> = BTreeSet::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if let Some(w) = rule_words(*r) {
                expected.insert(w);
            }
        }
    }
    // The attempts tracker also sees literal tokens (`=`, `)`), often further on than the
    // rules: prefer its position and what it expected there.
    if let Some(attempts) = e.parse_attempts() {
        if attempts.max_position >= rel {
            if attempts.max_position > rel {
                expected.clear();
                rel = attempts.max_position;
            }
            for cs in &attempts.call_stacks {
                if let Some(w) = cs.deepest.get_rule().and_then(|r| rule_words(*r)) {
                    expected.insert(w);
                }
            }
            for t in attempts.expected_tokens() {
                // `ParsingToken` is not exported; its Display is the literal token.
                if let Some(w) = token_words(&t.to_string()) {
                    expected.insert(w);
                }
            }
        }
    }
    // Nothing of the declaration could be read: a declaration was expected.
    if ExpParser::parse(Rule::end_at, source.get(offset..offset + rel).unwrap_or("")).is_ok() {
        expected.clear();
        expected.insert(DECL);
    }
    let at = (offset + rel).min(source.len());
    // After a complete value, a number's optional exponent makes pest list "a value" too.
    let prev = source[..at].trim_end().chars().last();
    if expected.iter().any(|w| ["`,`", "`]`", "`)`"].contains(w))
        && !matches!(prev, Some(',' | '(' | '['))
    {
        expected.remove(VALUE);
    }
    // A value subsumes its parts; `{` never stands where a value may.
    if expected.contains(VALUE) {
        expected.retain(|w| !VALUE_PARTS.contains(w) && *w != "`{`");
    }
    // After a key, `=` is what matters.
    if expected.contains("`=`") {
        expected.retain(|w| *w == "`=`");
    }
    // `/` (the rest of a fraction) is noise unless it is all there is.
    if expected.len() > 1 {
        expected.remove("`/`");
    }
    let found = found_token(source, at);
    let mut list: Vec<&str> = expected.into_iter().collect();
    list.sort_by_key(|w| WORD_ORDER.iter().position(|o| o == w).unwrap_or(usize::MAX));
    let expected_text = match list.len() {
        0 => "something else".to_string(),
        1 => list[0].to_string(),
        n => format!("{} or {}", list[..n - 1].join(", "), list[n - 1]),
    };
    let span = Span::new(at, (at + found.1).min(source.len()));
    let mut d = Diagnostic::new(
        Code::Syntax,
        span,
        format!("expected {expected_text}, found {}", found.0),
    )
    .with_label(format!("expected {}", short_words(&list)));
    if let Some(h) = syntax_help(source, at, &list) {
        d = d.with_help(h);
    }
    (d, at)
}

const VALUE: &str = "a value (number, string, identifier, `(`...`)` or `[`...`]`)";
const VALUE_PARTS: &[&str] = &[
    "an identifier",
    "`(`",
    "`[`",
    "`-`",
    "a number",
    "`\"`",
    "`true` or `false`",
];
const DECL: &str = "a declaration (`experiment`, `data`, `model`, `train`, `regime`, `attack`, `saliency`, `metrics`, `eval` or `report`)";
const WORD_ORDER: &[&str] = &[
    DECL,
    "a setting `key = value` or an item",
    "`=`",
    VALUE,
    "an identifier",
    "a named argument `key = value`",
    "`as NAME`",
    "`{`",
    "`,`",
    "`)`",
    "`]`",
    "`}`",
    "`/`",
    "end of file",
];

fn rule_words(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::decl | Rule::decl_at | Rule::section_keyword => DECL,
        Rule::value
        | Rule::number
        | Rule::fraction
        | Rule::string
        | Rule::boolean
        | Rule::call
        | Rule::tuple
        | Rule::list => VALUE,
        Rule::ident | Rule::kind => "an identifier",
        Rule::setting | Rule::item => "a setting `key = value` or an item",
        Rule::arg => "a named argument `key = value`",
        Rule::alias | Rule::as_kw => "`as NAME`",
        Rule::body => "`{`",
        Rule::args => "`(`",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

fn token_words(t: &str) -> Option<&'static str> {
    Some(match t {
        "=" => "`=`",
        "," => "`,`",
        ")" => "`)`",
        "]" => "`]`",
        "}" => "`}`",
        "{" => "`{`",
        "/" => "`/`",
        "(" => "`(`",
        "[" => "`[`",
        "\"" => "`\"`",
        _ => return None,
    })
}

/// The expectation without the parenthesised details, for the label under the span.
fn short_words(list: &[&str]) -> String {
    let short: Vec<&str> = list
        .iter()
        .map(|w| w.split(" (").next().unwrap_or(w))
        .collect();
    match short.len() {
        0 => "something else".to_string(),
        1 => short[0].to_string(),
        n => format!("{} or {}", short[..n - 1].join(", "), short[n - 1]),
    }
}

/// What is at `at`, in words, and how many bytes it covers.
fn found_token(source: &str, at: usize) -> (String, usize) {
    let rest = &source[at..];
    let Some(c) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    if c.is_ascii_alphanumeric() || c == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let len = word.len();
        let what = if c.is_ascii_digit() {
            "number"
        } else {
            "identifier"
        };
        return (format!("{what} `{word}`"), len);
    }
    if c == '\n' || c == '\r' {
        return ("end of line".to_string(), 1);
    }
    (format!("`{}`", c.escape_debug()), c.len_utf8())
}

/// A hint for the common slips.
fn syntax_help(source: &str, at: usize, expected: &[&str]) -> Option<String> {
    let rest = &source[at..];
    if rest.starts_with(':') && expected.contains(&"`=`") {
        return Some("settings are written `key = value`".to_string());
    }
    if rest.starts_with('{') {
        return Some("is a `}` missing before this? Sections cannot nest".to_string());
    }
    if expected == ["`=`"] {
        return Some("settings and arguments are written `key = value`".to_string());
    }
    if expected.contains(&"a named argument `key = value`")
        || (expected.contains(&"an identifier") && expected.contains(&"`)`"))
    {
        return Some("arguments are named: `conv(out = 16, kernel = 3)`".to_string());
    }
    if expected.contains(&"`}`") && rest.is_empty() {
        return Some("a `{` is not closed".to_string());
    }
    if expected.contains(&VALUE) {
        return Some("a list `[a, b]` is a sweep, a tuple `(a, b)` is a fixed vector".to_string());
    }
    None
}

/// Builds the syntax tree from pest pairs, adding `offset` to every span.
struct Converter<'a> {
    offset: usize,
    source: &'a str,
    diags: &'a mut Vec<Diagnostic>,
}

impl Converter<'_> {
    /// The span of a pair, without the whitespace and comments pest's implicit rules may have
    /// consumed at its end (e.g. after a call with no arguments).
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        let end = trailing_trivia_start(p.as_str());
        Span::new(self.offset + s.start(), self.offset + s.start() + end)
    }

    fn ident(&mut self, p: Pair<Rule>) -> Ident {
        let span = self.span(&p);
        // `kind` wraps an ident.
        let name = match p.as_rule() {
            Rule::kind => p
                .into_inner()
                .next()
                .map_or_else(String::new, |i| i.as_str().to_string()),
            _ => p.as_str().to_string(),
        };
        if name.len() > MAX_IDENT {
            self.diags.push(
                Diagnostic::new(
                    Code::Limit,
                    span,
                    format!(
                        "an identifier of {} bytes; the limit is {MAX_IDENT}",
                        name.len()
                    ),
                )
                .with_label("identifier too long")
                .with_help(
                    "names become parts of run ids and file names (runs/<id>/); use a shorter one",
                ),
            );
        }
        Ident { name, span }
    }

    fn decl(&mut self, p: Pair<Rule>) -> Decl {
        let span = self.span(&p);
        let mut keyword = None;
        let mut kind = None;
        let mut alias = None;
        let mut body = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => keyword = Some(self.ident(c)),
                Rule::kind => kind = Some(self.ident(c)),
                Rule::alias => {
                    alias = c
                        .into_inner()
                        .find(|i| i.as_rule() == Rule::ident)
                        .map(|i| self.ident(i))
                }
                Rule::body => body = Some(self.body(c)),
                _ => {}
            }
        }
        let keyword = keyword.unwrap_or(Ident {
            name: String::new(),
            span,
        });
        Decl {
            keyword,
            kind,
            alias,
            body,
            span,
        }
    }

    fn body(&mut self, p: Pair<Rule>) -> Body {
        let span = self.span(&p);
        let mut entries = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::setting => {
                    if let Some(s) = self.setting(c) {
                        entries.push(Entry::Setting(s));
                    }
                }
                Rule::item => {
                    if let Some(v) = c.into_inner().next().map(|v| self.value(v)) {
                        entries.push(Entry::Item(v));
                    }
                }
                _ => {}
            }
        }
        Body { entries, span }
    }

    fn setting(&mut self, p: Pair<Rule>) -> Option<Setting> {
        let mut inner = p.into_inner();
        let key = self.ident(inner.next()?);
        let value = self.value(inner.next()?);
        Some(Setting { key, value })
    }

    fn value(&mut self, p: Pair<Rule>) -> Value {
        let span = self.span(&p);
        // `value` wraps exactly one alternative.
        let p = if p.as_rule() == Rule::value {
            p.into_inner().next()
        } else {
            Some(p)
        };
        let Some(p) = p else {
            return Value {
                kind: ValueKind::Tuple(Vec::new()),
                span,
            };
        };
        let kind = match p.as_rule() {
            Rule::number => self.number(&p),
            Rule::fraction => {
                let parts: Vec<Pair<Rule>> = p.clone().into_inner().collect();
                let num = parts.first().map(|n| self.parse_f64(n)).unwrap_or(0.0);
                let den = parts.get(1).map(|n| self.parse_f64(n)).unwrap_or(1.0);
                let text = p.as_str().split_whitespace().collect::<String>();
                if den == 0.0 {
                    self.diags.push(
                        Diagnostic::new(
                            Code::OutOfRange,
                            span,
                            format!("the fraction `{text}` divides by zero"),
                        )
                        .with_label("division by zero"),
                    );
                    ValueKind::Number { value: 0.0, text }
                } else {
                    ValueKind::Number {
                        value: num / den,
                        text,
                    }
                }
            }
            Rule::string => {
                let inner = p.into_inner().next();
                let raw = inner.as_ref().map_or("", |s| s.as_str());
                let raw_start = inner
                    .as_ref()
                    .map_or(span.start, |s| self.offset + s.as_span().start());
                match unescape(raw) {
                    Ok(text) => ValueKind::Str(text),
                    Err((at, len)) => {
                        let bad = &raw[at..at + len];
                        self.diags.push(
                            Diagnostic::new(
                                Code::Syntax,
                                Span::new(raw_start + at, raw_start + at + len),
                                format!("unknown escape `{bad}` in a string"),
                            )
                            .with_label("unknown escape")
                            .with_help(
                                "strings know `\\\"`, `\\\\`, `\\n` and `\\t`; write `\\\\` for a backslash",
                            ),
                        );
                        ValueKind::Str(String::new())
                    }
                }
            }
            Rule::boolean => ValueKind::Bool(p.as_str() == "true"),
            Rule::call => {
                let mut inner = p.into_inner();
                let name = match inner.next() {
                    Some(n) => self.ident(n),
                    None => Ident {
                        name: String::new(),
                        span,
                    },
                };
                let mut args = Vec::new();
                let mut parens = false;
                if let Some(a) = inner.next() {
                    parens = true;
                    for arg in a.into_inner() {
                        if let Some(s) = self.setting(arg) {
                            args.push(s);
                        }
                    }
                }
                ValueKind::Call { name, args, parens }
            }
            Rule::tuple => ValueKind::Tuple(p.into_inner().map(|v| self.value(v)).collect()),
            Rule::list => ValueKind::List(p.into_inner().map(|v| self.value(v)).collect()),
            _ => ValueKind::Tuple(Vec::new()),
        };
        Value { kind, span }
    }

    fn parse_f64(&mut self, p: &Pair<Rule>) -> f64 {
        match self.number(p) {
            ValueKind::Number { value, .. } => value,
            _ => 0.0,
        }
    }

    fn number(&mut self, p: &Pair<Rule>) -> ValueKind {
        let text = p.as_str().to_string();
        let value = text.parse::<f64>().unwrap_or(f64::NAN);
        if !value.is_finite() {
            let span = self.span(p);
            self.diags.push(
                Diagnostic::new(
                    Code::OutOfRange,
                    span,
                    format!("the number `{text}` is too large"),
                )
                .with_label("not a finite number"),
            );
            return ValueKind::Number { value: 0.0, text };
        }
        let _ = self.source;
        ValueKind::Number { value, text }
    }
}

/// The length of `text` without trailing whitespace and `#` comments. Only a pair that ends in
/// implicit trivia can have them, and a `#` inside a string is always followed by its closing
/// quote, so cutting at a trailing comment is safe.
fn trailing_trivia_start(text: &str) -> usize {
    let mut end = text.len();
    loop {
        let trimmed = text[..end].trim_end();
        end = trimmed.len();
        // A comment runs to the end of its line: if the last line of what remains has a `#`
        // outside strings, cut there.
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        match comment_start(&trimmed[line_start..]) {
            Some(c) if line_start + c < end => end = line_start + c,
            _ => return end,
        }
    }
}

/// Byte offset of a `#` that starts a comment in one line (outside strings).
fn comment_start(line: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '#' {
            return Some(i);
        }
    }
    None
}

/// Resolve `\"`, `\\`, `\n`, `\t`. Any other escape is an error: `Err((offset, len))` of the
/// first unknown one (the backslash and the character after it) within `raw`.
fn unescape(raw: &str) -> Result<String, (usize, usize)> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, o @ ('"' | '\\'))) => out.push(o),
                Some((_, o)) => return Err((i, 1 + o.len_utf8())),
                None => return Err((i, 1)),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example_shapes() {
        let (f, d) = parse("experiment x\nregime standard\nregime sgt { k = 0.5 lambda = 1 }\nattack fgsm { eps = 8/255 }");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(f.decls.len(), 4);
        assert_eq!(
            f.decls[1].kind.as_ref().map(|k| k.name.as_str()),
            Some("standard")
        );
        let body = f.decls[3].body.as_ref().expect("body");
        let Entry::Setting(s) = &body.entries[0] else {
            panic!("setting")
        };
        assert!(
            matches!(s.value.kind, ValueKind::Number { value, .. } if (value - 8.0 / 255.0).abs() < 1e-12)
        );
    }

    #[test]
    fn alias_is_not_a_kind() {
        let (f, d) = parse("regime adversarial as pgd_at { }");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            f.decls[0].alias.as_ref().map(|a| a.name.as_str()),
            Some("pgd_at")
        );
    }

    #[test]
    fn recovers_at_the_next_section() {
        let (f, d) =
            parse("data mnist { dir = }\nmodel m { relu }\ntrain { epochs = ) }\nregime standard");
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].message.starts_with("expected a value"),
            "{}",
            d[0].message
        );
        assert_eq!(f.decls.len(), 2);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = format!("data x {{ a = {} }}", "(".repeat(100));
        let (_, d) = parse(&src);
        assert_eq!(d[0].code, Code::Limit);
    }
}
