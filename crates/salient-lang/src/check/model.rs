//! `model NAME { layers }`: layer arguments, then shape inference against the dataset.
//!
//! Shapes follow PyTorch's conventions: conv/pool output `(h + 2p - k) / s + 1` (floor), flatten
//! in (c, h, w) order. Parameters: conv `k*k*cin*cout + cout`, dense `in*out + out`, batchnorm
//! `2*channels` (scale and shift), residual = its body plus its 1x1 projection if any.
//! A layer that does not fit is reported at that layer, with the shapes, and inference of that
//! model stops there (later shapes would be guesses).

use super::reader::Settings;
use super::{check_form, Ctx, Part};
use crate::ast::{Decl, Entry, Ident, Setting, Value, ValueKind};
use crate::diag::{Code, Diagnostic, Span};
use crate::suggest;
use salient_ir::shape::{self, describe, ShapeError};
use salient_ir::{DataSpec, Layer, LayerDef, ModelDef, Shape};
use std::collections::HashMap;

/// The layer kinds a model can use. Adding a layer = a variant here (the compiler then lists
/// [`LayerKind::name`], [`LayerKind::keys`] and the lowering in `layer`), a `salient_ir::Layer`
/// variant with its name in `Layer::kind_name`, its shape rule in `salient_ir::shape` and its
/// file in `salient-nn/src/layers/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Conv,
    MaxPool,
    AvgPool,
    Dense,
    Relu,
    LeakyRelu,
    Tanh,
    Sigmoid,
    Flatten,
    Dropout,
    BatchNorm,
    Residual,
}

impl LayerKind {
    pub const ALL: [LayerKind; 12] = [
        LayerKind::Conv,
        LayerKind::MaxPool,
        LayerKind::AvgPool,
        LayerKind::Dense,
        LayerKind::Relu,
        LayerKind::LeakyRelu,
        LayerKind::Tanh,
        LayerKind::Sigmoid,
        LayerKind::Flatten,
        LayerKind::Dropout,
        LayerKind::BatchNorm,
        LayerKind::Residual,
    ];

    /// The name written in a model (the lowered `salient_ir::Layer::kind_name`).
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::MaxPool => "maxpool",
            LayerKind::AvgPool => "avgpool",
            LayerKind::Dense => "dense",
            LayerKind::Relu => "relu",
            LayerKind::LeakyRelu => "leaky_relu",
            LayerKind::Tanh => "tanh",
            LayerKind::Sigmoid => "sigmoid",
            LayerKind::Flatten => "flatten",
            LayerKind::Dropout => "dropout",
            LayerKind::BatchNorm => "batchnorm",
            LayerKind::Residual => "residual",
        }
    }

    /// The arguments the layer takes in parentheses.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            LayerKind::Conv => &["out", "kernel", "stride", "padding"],
            LayerKind::MaxPool | LayerKind::AvgPool => &["size", "stride"],
            LayerKind::Dense => &["out"],
            LayerKind::LeakyRelu => &["slope"],
            LayerKind::Dropout => &["p"],
            LayerKind::BatchNorm => &["momentum", "eps"],
            LayerKind::Residual => &["body"],
            LayerKind::Relu | LayerKind::Tanh | LayerKind::Sigmoid | LayerKind::Flatten => &[],
        }
    }

    pub fn from_name(name: &str) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Every layer name, in [`LayerKind::ALL`]'s order (for suggestions and docs).
pub fn layer_names() -> Vec<&'static str> {
    LayerKind::ALL.iter().map(|k| k.name()).collect()
}

/// Above this many parameters a model is refused (it could not be trained here anyway).
const MAX_PARAMS: usize = 1 << 34;

/// Every model declaration, checked.
pub struct Models {
    /// Names in definition order, with the span of the name.
    pub names: Vec<(String, Span)>,
    /// The checked model per name (None where it had errors or the data is unknown).
    pub defs: Vec<Option<ModelDef>>,
}

impl Models {
    pub fn get(&self, name: &str) -> Option<&ModelDef> {
        self.defs.iter().flatten().find(|m| m.name == name)
    }
}

/// A layer read from the source, before shapes are known.
struct Proto {
    kind: &'static str,
    layer: Layer,
    body: Vec<Proto>,
    span: Span,
}

pub fn lower_all(ctx: &mut Ctx, decls: &[&Decl], data: Option<&DataSpec>) -> Models {
    let mut models = Models {
        names: Vec::new(),
        defs: Vec::new(),
    };
    for d in decls {
        check_form(
            ctx,
            d,
            Part::Required,
            Part::Forbidden,
            Part::Required,
            "a name",
            "model cnn { flatten dense(out = 10) }",
        );
        let Some(name) = &d.kind else { continue };
        if let Some((_, first)) = models.names.iter().find(|(n, _)| *n == name.name) {
            ctx.push(
                Diagnostic::new(
                    Code::Duplicate,
                    name.span,
                    format!("a second model named `{}`", name.name),
                )
                .with_label("defined again here")
                .with_secondary(*first, "first defined here")
                .with_help("give each model its own name"),
            );
            continue;
        }
        let protos = read_layers(ctx, d);
        models.names.push((name.name.clone(), name.span));
        let def = match (data, protos) {
            (Some(data), Some(protos)) => infer_model(ctx, name, &protos, data),
            _ => None,
        };
        models.defs.push(def);
    }
    models
}

/// The layers of a model body, or None if the body is missing or empty.
fn read_layers(ctx: &mut Ctx, d: &Decl) -> Option<Vec<Proto>> {
    let body = d.body.as_ref()?;
    let mut out = Vec::new();
    let mut ok = true;
    for e in &body.entries {
        match e {
            Entry::Item(v) => {
                let v = strip_lists(ctx, v);
                match layer(ctx, &v) {
                    Some(p) => out.push(p),
                    None => ok = false,
                }
            }
            Entry::Setting(s) => {
                ctx.push(
                    Diagnostic::new(
                        Code::UnknownSetting,
                        s.key.span,
                        format!("a model lists layers; `{} = ...` is a setting", s.key.name),
                    )
                    .with_label("not a layer")
                    .with_help(
                        "write layers one after the other, e.g. `conv(out = 16, kernel = 3)  relu`",
                    ),
                );
                ok = false;
            }
        }
    }
    if out.is_empty() && ok {
        ctx.push(
            Diagnostic::new(
                Code::MissingSetting,
                body.span,
                "a model needs at least one layer",
            )
            .with_label("empty model")
            .with_help("e.g. `model linear { flatten dense(out = 10) }`"),
        );
        return None;
    }
    ok.then_some(out)
}

/// Replace each list by its first element, reporting it (models take no sweeps).
fn strip_lists(ctx: &mut Ctx, v: &Value) -> Value {
    match &v.kind {
        ValueKind::List(items) => {
            ctx.push(
                Diagnostic::new(Code::SweepNotAllowed, v.span, "a sweep `[...]` is not allowed in a model")
                    .with_label("list here")
                    .with_help("to compare architectures, define several models and write `model = [a, b]` in `train`"),
            );
            items
                .first()
                .map(|i| strip_lists(ctx, i))
                .unwrap_or_else(|| v.clone())
        }
        ValueKind::Call { name, args, parens } => Value {
            kind: ValueKind::Call {
                name: name.clone(),
                args: args
                    .iter()
                    .map(|a| Setting {
                        key: a.key.clone(),
                        value: strip_lists(ctx, &a.value),
                    })
                    .collect(),
                parens: *parens,
            },
            span: v.span,
        },
        ValueKind::Tuple(items) => Value {
            kind: ValueKind::Tuple(items.iter().map(|i| strip_lists(ctx, i)).collect()),
            span: v.span,
        },
        _ => v.clone(),
    }
}

/// One layer call.
fn layer(ctx: &mut Ctx, v: &Value) -> Option<Proto> {
    let ValueKind::Call { name, args, .. } = &v.kind else {
        ctx.push(
            Diagnostic::new(
                Code::WrongType,
                v.span,
                format!(
                    "expected a layer such as `relu` or `dense(out = 10)`, found {}",
                    v.kind.describe()
                ),
            )
            .with_label("not a layer"),
        );
        return None;
    };
    let Some(kind) = LayerKind::from_name(&name.name) else {
        ctx.push(
            Diagnostic::new(
                Code::UnknownLayer,
                name.span,
                format!("unknown layer `{}`", name.name),
            )
            .with_label("unknown layer")
            .with_help(suggest::help(&name.name, &layer_names())),
        );
        return None;
    };
    let first_diag = ctx.diags.len();
    let s = Settings::new(
        ctx,
        format!("`{}`", kind.name()),
        name.span,
        args,
        kind.keys(),
    );
    let mut ok = true;
    let mut body = Vec::new();
    let layer = match kind {
        LayerKind::Conv => {
            let out =
                need(ctx, &s, &mut ok, "out", "16").map(|v| ctx.whole_between("out", v, 1, 65_536));
            let kernel = need(ctx, &s, &mut ok, "kernel", "3")
                .map(|v| ctx.whole_between("kernel", v, 1, 1024));
            let stride = s
                .whole(ctx, "stride")
                .map_or(1, |v| ctx.whole_between("stride", v, 1, 1024));
            let padding = match s.get("padding") {
                Some(Value {
                    kind: ValueKind::Call { name, .. },
                    ..
                }) if name.name == "same" => match kernel {
                    Some(k) if k % 2 == 1 => (k - 1) / 2,
                    Some(k) => {
                        ctx.push(
                            Diagnostic::new(
                                Code::Incompatible,
                                name.span,
                                format!("`padding = same` needs an odd kernel, found kernel {k}"),
                            )
                            .with_label("no symmetric padding keeps the size")
                            .with_help("give the padding as a number"),
                        );
                        0
                    }
                    None => 0,
                },
                Some(_) => s
                    .whole(ctx, "padding")
                    .map_or(0, |v| ctx.whole_between("padding", v, 0, 1024)),
                None => 0,
            };
            Layer::Conv {
                out: out.unwrap_or(1),
                kernel: kernel.unwrap_or(1),
                stride,
                padding,
            }
        }
        LayerKind::MaxPool | LayerKind::AvgPool => {
            let size = s
                .whole(ctx, "size")
                .map_or(2, |v| ctx.whole_between("size", v, 1, 1024));
            let stride = s
                .whole(ctx, "stride")
                .map_or(size, |v| ctx.whole_between("stride", v, 1, 1024));
            if kind == LayerKind::MaxPool {
                Layer::MaxPool { size, stride }
            } else {
                Layer::AvgPool { size, stride }
            }
        }
        LayerKind::Dense => Layer::Dense {
            out: need(ctx, &s, &mut ok, "out", "10")
                .map_or(1, |v| ctx.whole_between("out", v, 1, 1 << 20)),
        },
        LayerKind::Relu => Layer::Relu,
        LayerKind::Tanh => Layer::Tanh,
        LayerKind::Sigmoid => Layer::Sigmoid,
        LayerKind::Flatten => Layer::Flatten,
        LayerKind::LeakyRelu => {
            let slope = s
                .num(ctx, "slope")
                .map_or(0.01, |v| ctx.between("slope", v, 0.0, 1.0, false, true));
            Layer::LeakyRelu {
                slope: slope as f32,
            }
        }
        LayerKind::Dropout => {
            let p = s
                .num(ctx, "p")
                .map_or(0.5, |v| ctx.between("p", v, 0.0, 1.0, false, true));
            Layer::Dropout { p: p as f32 }
        }
        LayerKind::BatchNorm => {
            let momentum = s
                .num(ctx, "momentum")
                .map_or(0.1, |v| ctx.between("momentum", v, 0.0, 1.0, true, false));
            let eps = s.num(ctx, "eps").map_or(1e-5, |v| ctx.positive("eps", v));
            Layer::BatchNorm {
                momentum: momentum as f32,
                eps: eps as f32,
            }
        }
        LayerKind::Residual => {
            // residual(body = (layer, layer, ...))
            match s.get("body") {
                None => {
                    s.missing(
                        ctx,
                        "body",
                        "(conv(out = 16, kernel = 3, padding = 1), relu)",
                    );
                    ok = false;
                }
                Some(b) => {
                    let items: Vec<&Value> = match &b.kind {
                        ValueKind::Tuple(items) => items.iter().collect(),
                        ValueKind::Call { .. } => vec![b],
                        other => {
                            ctx.push(
                                Diagnostic::new(
                                    Code::WrongType,
                                    b.span,
                                    format!(
                                        "`body` expects a tuple of layers, found {}",
                                        other.describe()
                                    ),
                                )
                                .with_label("expected `(layer, layer, ...)`"),
                            );
                            ok = false;
                            Vec::new()
                        }
                    };
                    if items.is_empty() && ok {
                        ctx.push(
                            Diagnostic::new(
                                Code::MissingSetting,
                                b.span,
                                "a residual body needs at least one layer",
                            )
                            .with_label("empty body"),
                        );
                        ok = false;
                    }
                    for item in items {
                        match layer(ctx, item) {
                            Some(p) => body.push(p),
                            None => ok = false,
                        }
                    }
                }
            }
            Layer::Residual {
                body: Vec::new(),
                projection: None,
            }
        }
    };
    // Errors in arguments were reported; keep the layer only if every argument was fine.
    let clean = !ctx.diags[first_diag..].iter().any(|d| d.is_error());
    (ok && clean).then_some(Proto {
        kind: layer.kind_name(),
        layer,
        body,
        span: v.span,
    })
}

/// A required whole-number argument.
fn need(
    ctx: &mut Ctx,
    s: &Settings,
    ok: &mut bool,
    key: &str,
    example: &str,
) -> Option<(u64, Span)> {
    if s.get(key).is_none() {
        s.missing(ctx, key, example);
        *ok = false;
    }
    s.whole(ctx, key)
}

/// Infer shapes through a whole model; check that it ends in `classes` outputs.
fn infer_model(ctx: &mut Ctx, name: &Ident, protos: &[Proto], data: &DataSpec) -> Option<ModelDef> {
    let input = Shape::from(data.shape);
    let mut counters = HashMap::new();
    let (layers, output) = infer_seq(ctx, protos, input, &mut counters)?;
    let params = layers
        .iter()
        .fold(0usize, |acc, l| acc.saturating_add(l.params));
    let last = protos.last().map_or(name.span, |p| p.span);
    if output != Shape::Flat(data.classes) {
        let (what, help) = match output {
            Shape::Flat(n) => (
                format!("{n} outputs"),
                format!("end the model with `dense(out = {})`", data.classes),
            ),
            Shape::Image { .. } => (
                format!("an image {output}"),
                format!(
                    "end the model with `flatten  dense(out = {})`",
                    data.classes
                ),
            ),
        };
        ctx.push(
            Diagnostic::new(
                Code::WrongOutput,
                last,
                format!(
                    "model `{}` ends with {what}, but the data has {} classes",
                    name.name, data.classes
                ),
            )
            .with_label(format!("outputs {output}"))
            .with_help(help),
        );
        return None;
    }
    if params > MAX_PARAMS {
        ctx.range_error(
            name.span,
            format!(
                "model `{}` has {params} parameters; the limit is {MAX_PARAMS}",
                name.name
            ),
            None,
        );
        return None;
    }
    Some(ModelDef {
        name: name.name.clone(),
        input,
        output,
        layers,
        params,
    })
}

/// Infer a sequence of layers from `input`. None at the first layer that does not fit.
fn infer_seq(
    ctx: &mut Ctx,
    protos: &[Proto],
    input: Shape,
    counters: &mut HashMap<&'static str, usize>,
) -> Option<(Vec<LayerDef>, Shape)> {
    let mut shape = input;
    let mut out = Vec::new();
    for p in protos {
        let n = counters.entry(p.kind).or_insert(0);
        *n += 1;
        let name = format!("{}{}", p.kind, n);
        let def = infer_layer(ctx, p, name, shape, counters)?;
        shape = def.output;
        out.push(def);
    }
    Some((out, shape))
}

/// Report `err` (from [`salient_ir::shape`]) at layer `p` with the help that fits it.
fn shape_error(ctx: &mut Ctx, p: &Proto, name: &str, input: Shape, err: &ShapeError) {
    if let ShapeError::ResidualMismatch { .. } = err {
        ctx.push(
            Diagnostic::new(Code::ResidualShape, p.span, format!("{name}: {err}"))
                .with_label("shortcut cannot match the body")
                .with_help("a residual body may change channels and downsample by a stride (h' = (h - 1) / s + 1), and must keep images as images"),
        );
        return;
    }
    let help = match err {
        ShapeError::NeedsImage { layer: "conv", .. } => "convolutions must come before `flatten`",
        ShapeError::NeedsImage { .. } => "pooling must come before `flatten`",
        ShapeError::NeedsFlat { .. } => "add `flatten` before this layer",
        ShapeError::KernelTooLarge { .. } => {
            "use a smaller kernel, more padding, or fewer pooling layers before it"
        }
        ShapeError::WindowTooLarge { .. } => "use a smaller window or remove this pooling layer",
        ShapeError::ResidualMismatch { .. } => unreachable!("reported above"),
    };
    ctx.push(
        Diagnostic::new(Code::ShapeMismatch, p.span, format!("{name}: {err}"))
            .with_label(format!("input is {}", describe(input)))
            .with_help(help.to_string()),
    );
}

/// Infer one layer with the shared rules of [`salient_ir::shape`]; diagnostics at `p`.
fn infer_layer(
    ctx: &mut Ctx,
    p: &Proto,
    name: String,
    input: Shape,
    counters: &mut HashMap<&'static str, usize>,
) -> Option<LayerDef> {
    let (output, params, kind) = match &p.layer {
        Layer::Residual { .. } => {
            let (body, out) = infer_seq(ctx, &p.body, input, counters)?;
            let body_params = body.iter().fold(0usize, |a, l| a.saturating_add(l.params));
            let projection = match shape::residual_projection(input, out) {
                Ok(pr) => pr,
                Err(e) => {
                    shape_error(ctx, p, &name, input, &e);
                    return None;
                }
            };
            let params = body_params.saturating_add(projection.map_or(0, |(_, n)| n));
            let kind = Layer::Residual {
                body,
                projection: projection.map(|(pr, _)| pr),
            };
            (out, params, kind)
        }
        layer => {
            if let (Layer::Flatten, Shape::Flat(_)) = (layer, input) {
                ctx.push(
                    Diagnostic::new(Code::NoOpLayer, p.span, format!("{name}: the input is already flat ({input}); `flatten` does nothing here"))
                        .with_label("no effect")
                        .with_help("remove it"),
                );
            }
            match shape::layer_output(layer, input) {
                Ok((out, params)) => (out, params, layer.clone()),
                Err(e) => {
                    shape_error(ctx, p, &name, input, &e);
                    return None;
                }
            }
        }
    };
    Some(LayerDef {
        name,
        kind,
        input,
        output,
        params,
    })
}
