//! Models written by hand (tests, examples, benchmarks) as a [`ModelDef`] without the language
//! crate: layer names and the walk over residual bodies here, every shape and parameter count
//! from [`salient_ir::shape`], the functions the checker in `salient-lang` calls.
//!
//! Names are the kind plus its 1-based ordinal among layers of that kind in the whole model,
//! depth-first (`conv1`, `relu2`, `residual1`, ...). Parameter counts: conv k*k*c_in*out + out,
//! dense in*out + out, batchnorm 2*c, residual projection c_in*out (a bias-free 1x1 conv); a
//! residual's projection (its stride included) is derived from the body's shapes, as the checker
//! derives it.

use salient_ir::shape;
use salient_ir::{Layer, LayerDef, ModelDef, Shape};
use std::collections::HashMap;

/// The kind's name as used in layer names ([`Layer::kind_name`]).
pub fn kind_name(l: &Layer) -> &'static str {
    l.kind_name()
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

fn infer_one(
    input: Shape,
    kind: Layer,
    counters: &mut HashMap<&'static str, usize>,
) -> Result<LayerDef, String> {
    let count = counters.entry(kind_name(&kind)).or_insert(0);
    *count += 1;
    let name = format!("{}{}", kind_name(&kind), count);
    let (output, params, kind) = match kind {
        Layer::Residual { body, .. } => {
            let kinds = body.into_iter().map(|d| d.kind).collect();
            let (body, out) = infer_seq(input, kinds, counters)?;
            let projection =
                shape::residual_projection(input, out).map_err(|e| format!("{name}: {e}"))?;
            let params = body
                .iter()
                .map(|d| d.params)
                .sum::<usize>()
                .saturating_add(projection.map_or(0, |(_, n)| n));
            let projection = projection.map(|(p, _)| p);
            (out, params, Layer::Residual { body, projection })
        }
        other => {
            let (out, params) =
                shape::layer_output(&other, input).map_err(|e| format!("{name}: {e}"))?;
            (out, params, other)
        }
    };
    Ok(LayerDef {
        name,
        kind,
        input,
        output,
        params,
    })
}
