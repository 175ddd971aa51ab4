//! The syntax tree: what the grammar says, with spans, before any meaning is checked.
//!
//! Every declaration is `KEYWORD [KIND] [as NAME] [{ body }]`; a body holds settings
//! (`key = value`) and items (bare values, used by `model` and `metrics`).

use crate::diag::Span;

/// An identifier with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub decls: Vec<Decl>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    pub keyword: Ident,
    pub kind: Option<Ident>,
    pub alias: Option<Ident>,
    pub body: Option<Body>,
    /// The whole declaration.
    pub span: Span,
}

impl Decl {
    /// The span naming the declaration: keyword through kind and alias.
    pub fn head_span(&self) -> Span {
        let mut s = self.keyword.span;
        if let Some(k) = &self.kind {
            s = s.to(k.span);
        }
        if let Some(a) = &self.alias {
            s = s.to(a.span);
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    pub entries: Vec<Entry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Setting(Setting),
    Item(Value),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: Ident,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// A number or a fraction, evaluated; `text` is the source as written.
    Number {
        value: f64,
        text: String,
    },
    Str(String),
    Bool(bool),
    /// `name` (no arguments) or `name(key = value, ...)`.
    Call {
        name: Ident,
        args: Vec<Setting>,
        parens: bool,
    },
    Tuple(Vec<Value>),
    /// A sweep.
    List(Vec<Value>),
}

impl ValueKind {
    /// What kind of value this is, in words, for "expects X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            ValueKind::Number { text, .. } => format!("number {text}"),
            ValueKind::Str(s) => format!("string \"{}\"", s.escape_debug()),
            ValueKind::Bool(b) => format!("boolean {b}"),
            ValueKind::Call {
                name,
                parens: false,
                ..
            } => format!("identifier `{}`", name.name),
            ValueKind::Call { name, .. } => format!("call `{}(...)`", name.name),
            ValueKind::Tuple(_) => "tuple `(...)`".to_string(),
            ValueKind::List(_) => "list `[...]`".to_string(),
        }
    }
}
