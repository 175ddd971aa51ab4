//! Shape inference for hand-written models (tests, examples, benchmarks): the same rules as the
//! checker in `salient-lang`, so a [`ModelDef`] can be built without the language crate.
//!
//! Names are the kind plus its 1-based ordinal among layers of that kind in the whole model,
//! depth-first (`conv1`, `relu2`, `residual1`, ...). Parameter counts: conv k*k*c_in*out + out,
//! dense in*out + out, batchnorm 2*c, residual projection c_in*out (a bias-free 1x1 conv).

use salient_ir::{Layer, LayerDef, ModelDef, Shape};
use std::collections::HashMap;

/// The kind's name as used in layer names.
pub fn kind_name(l: &Layer) -> &'static str {
    match l {
        Layer::Conv { .. } => "conv",
        Layer::MaxPool { .. } => "maxpool",
        Layer::AvgPool { .. } => "avgpool",
        Layer::Dense { .. } => "dense",
        Layer::Relu => "relu",
        Layer::LeakyRelu { .. } => "leaky_relu",
        Layer::Tanh => "tanh",
        Layer::Sigmoid => "sigmoid",
        Layer::Flatten => "flatten",
        Layer::Dropout { .. } => "dropout",
        Layer::BatchNorm { .. } => "batchnorm",
        Layer::Residual { .. } => "residual",
    }
}

/// Builds a [`ModelDef`] from an input shape and layer kinds (a residual's `body` is re-inferred
/// from its layers' kinds; their shapes, names and counts are ignored). `Err` names the layer
/// that does not fit.
pub fn model_def(name: &str, input: Shape, layers: Vec<Layer>) -> Result<ModelDef, String> {
    let mut counters = HashMap::new();
    let (defs, output) = infer_seq(input, layers, &mut counters)?;
    let params = defs.iter().map(|d| d.params).sum();
    Ok(ModelDef {
        name: name.to_string(),
        input,
        output,
        layers: defs,
        params,
    })
}

fn infer_seq(
    mut shape: Shape,
    layers: Vec<Layer>,
    counters: &mut HashMap<&'static str, usize>,
) -> Result<(Vec<LayerDef>, Shape), String> {
    let mut defs = Vec::with_capacity(layers.len());
    for kind in layers {
        let def = infer_one(shape, kind, counters)?;
        shape = def.output;
        defs.push(def);
    }
    Ok((defs, shape))
}

fn side(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    (k > 0 && s > 0 && n + 2 * p >= k).then(|| (n + 2 * p - k) / s + 1)
}

fn infer_one(
    input: Shape,
    kind: Layer,
    counters: &mut HashMap<&'static str, usize>,
) -> Result<LayerDef, String> {
    let count = counters.entry(kind_name(&kind)).or_insert(0);
    *count += 1;
    let name = format!("{}{}", kind_name(&kind), count);
    let image = |what: &str| match input {
        Shape::Image { c, h, w } => Ok((c, h, w)),
        Shape::Flat(_) => Err(format!(
            "{name}: {what} needs an image input, found {input}"
        )),
    };
    let (output, params, kind) = match kind {
        Layer::Conv {
            out,
            kernel,
            stride,
            padding,
        } => {
            let (c, h, w) = image("conv")?;
            let (Some(ho), Some(wo)) = (
                side(h, kernel, stride, padding),
                side(w, kernel, stride, padding),
            ) else {
                return Err(format!("{name}: kernel {kernel} does not fit {input}"));
            };
            (
                Shape::Image {
                    c: out,
                    h: ho,
                    w: wo,
                },
                kernel * kernel * c * out + out,
                kind,
            )
        }
        Layer::MaxPool { size, stride } | Layer::AvgPool { size, stride } => {
            let (c, h, w) = image("pooling")?;
            let (Some(ho), Some(wo)) = (side(h, size, stride, 0), side(w, size, stride, 0)) else {
                return Err(format!("{name}: window {size} does not fit {input}"));
            };
            (Shape::Image { c, h: ho, w: wo }, 0, kind)
        }
        Layer::Dense { out } => match input {
            Shape::Flat(n) => (Shape::Flat(out), n * out + out, kind),
            _ => return Err(format!("{name}: dense needs a flat input, found {input}")),
        },
        Layer::Flatten => (Shape::Flat(input.numel()), 0, kind),
        Layer::BatchNorm { .. } => {
            let c = match input {
                Shape::Image { c, .. } => c,
                Shape::Flat(n) => n,
            };
            (input, 2 * c, kind)
        }
        Layer::Residual { body, projection } => {
            let kinds = body.into_iter().map(|d| d.kind).collect();
            let (body, out) = infer_seq(input, kinds, counters)?;
            let mut params: usize = body.iter().map(|d| d.params).sum();
            if let Some(p) = projection {
                let (c, _, _) = image("a residual projection")?;
                params += c * p.out;
            } else if out != input {
                return Err(format!(
                    "{name}: body maps {input} to {out}; a projection is needed"
                ));
            }
            (out, params, Layer::Residual { body, projection })
        }
        other => (input, 0, other),
    };
    Ok(LayerDef {
        name,
        kind,
        input,
        output,
        params,
    })
}
