//! Every `LayerKind` checks in a model and lowers to the `salient_ir::Layer` of the same name
//! (the name layer names are built from); an unknown layer is E-unknown with a suggestion.
mod common;

use salient_ir::{Layer, Shape};
use salient_lang::LayerKind;

/// A model on a 2x8x8 image that uses `layer` where its input fits (image layers before
/// `flatten`, `dense` after it).
fn spec(kind: LayerKind) -> String {
    let call = match kind {
        LayerKind::Conv => "conv(out = 2, kernel = 3, padding = 1)",
        LayerKind::MaxPool => "maxpool(size = 2, stride = 1)",
        LayerKind::AvgPool => "avgpool(size = 1)",
        LayerKind::Dense => "dense(out = 5)",
        LayerKind::Relu => "relu",
        LayerKind::LeakyRelu => "leaky_relu(slope = 0.1)",
        LayerKind::Tanh => "tanh",
        LayerKind::Sigmoid => "sigmoid",
        LayerKind::Flatten => "flatten",
        LayerKind::Dropout => "dropout(p = 0.2)",
        LayerKind::BatchNorm => "batchnorm(momentum = 0.2, eps = 1e-4)",
        LayerKind::Residual => "residual(body = (conv(out = 2, kernel = 3, padding = 1), relu))",
    };
    let layers = match kind {
        LayerKind::Flatten => "flatten".to_string(),
        LayerKind::Dense => format!("flatten\n  {call}"),
        _ => format!("{call}\n  flatten"),
    };
    format!(
        r#"experiment t
data synthetic {{ classes = 3  shape = (2, 8, 8)  train = 32  test = 16 }}
model m {{
  {layers}
  dense(out = 3)
}}
train {{ model = m  optimizer = sgd  lr = 0.1  epochs = 1  batch = 16 }}
regime standard
"#
    )
}

#[test]
fn every_layer_kind_lowers_to_the_ir_layer_of_its_name() {
    for kind in LayerKind::ALL {
        let exp = common::clean(&spec(kind));
        let layers = &exp.models[0].layers;
        let found: Vec<&Layer> = layers.iter().map(|l| &l.kind).collect();
        assert!(
            found.iter().any(|l| l.kind_name() == kind.name()),
            "{}: {found:?}",
            kind.name()
        );
        let named = layers
            .iter()
            .find(|l| l.kind.kind_name() == kind.name())
            .unwrap();
        assert!(named.name.starts_with(kind.name()), "{}", named.name);
        assert_eq!(exp.models[0].output, Shape::Flat(3));
        assert_eq!(LayerKind::from_name(kind.name()), Some(kind));
    }
}

#[test]
fn an_unknown_layer_suggests_the_nearest_kind() {
    let src = spec(LayerKind::Relu).replace("relu", "rellu");
    let codes = common::codes(&src);
    assert!(!codes.is_empty(), "{codes:?}");
    let out = salient_lang::check("t.exp", &src);
    let helps: Vec<String> = out
        .diagnostics
        .iter()
        .filter_map(|d| d.help.clone())
        .collect();
    assert!(helps.iter().any(|h| h.contains("relu")), "{helps:?}");
}
