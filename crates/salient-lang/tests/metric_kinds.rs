//! The metric kinds of issue #13 (connectedness, ROAR, KAR) check and lower to the IR the engine
//! runs, with their documented defaults; their mistakes are diagnostics with the right code. And
//! every `MetricKind` lowers to the `MetricSpec` of the same name.
mod common;

use salient_ir::*;
use salient_lang::MetricKind;

/// A spec with `metrics`; it declares an attack only when `robust_accuracy` is listed (attacks
/// without it are warning W008: they would never run).
fn spec(metrics: &str) -> String {
    let attack = if metrics.contains("robust_accuracy") {
        "attack fgsm { eps = 0.1 }\n"
    } else {
        ""
    };
    format!(
        r#"experiment t
data synthetic {{ classes = 10  shape = (1, 8, 8)  train = 64  test = 32 }}
model mlp {{
  flatten
  dense(out = 10)
}}
train {{ model = mlp  optimizer = adam  lr = 1e-3  epochs = 1  batch = 32 }}
regime standard
{attack}saliency gradient
metrics {{ {metrics} }}
"#
    )
}

fn metrics(src: &str) -> Vec<MetricSpec> {
    common::clean(&spec(src)).metrics
}

fn codes(src: &str) -> Vec<String> {
    common::codes(&spec(src))
}

#[test]
fn roar_and_kar_default_to_hooker_et_al_settings() {
    let m = metrics("roar kar(percents = (20, 60), seeds = 2, epochs = 1, random = false)");
    assert_eq!(
        m,
        vec![
            MetricSpec::Roar(RetrainSpec {
                percents: vec![10, 30, 50, 70, 90],
                seeds: 5,
                epochs: None,
                random: true,
            }),
            MetricSpec::Kar(RetrainSpec {
                percents: vec![20, 60],
                seeds: 2,
                epochs: Some(1),
                random: false,
            }),
        ]
    );
}

#[test]
fn connectedness_defaults_to_the_top_ten_percent() {
    assert_eq!(
        metrics("connectedness"),
        vec![MetricSpec::Connectedness { top: 10 }]
    );
    // Listed twice is a duplicate whatever the arguments.
    assert!(codes("connectedness connectedness(top = 25)")
        .iter()
        .any(|c| c.starts_with("Duplicate")));
    assert_eq!(
        metrics("connectedness(top = 25)"),
        vec![MetricSpec::Connectedness { top: 25 }]
    );
}

#[test]
fn bad_retraining_settings_are_range_errors() {
    for bad in [
        "roar(percents = (0, 50))",
        "roar(percents = (50, 100))",
        "kar(percents = (50, 30))",
        "roar(seeds = 0)",
        "kar(epochs = 0)",
        "connectedness(top = 0)",
        "connectedness(top = 101)",
    ] {
        let c = codes(bad);
        assert!(
            c.iter().any(|c| c.starts_with("OutOfRange")),
            "{bad}: {c:?}"
        );
    }
    let c = codes("roar(steps = 3)");
    assert!(c.iter().any(|c| c.starts_with("UnknownSetting")), "{c:?}");
    let c = codes("roar(random = 1)");
    assert!(c.iter().any(|c| c.starts_with("WrongType")), "{c:?}");
}

#[test]
fn every_kind_lowers_to_the_spec_of_its_name_and_unknown_names_get_a_suggestion() {
    for kind in MetricKind::ALL {
        let m = metrics(kind.name());
        assert_eq!(m.len(), 1, "{}", kind.name());
        assert_eq!(m[0].name(), kind.name());
        assert_eq!(MetricKind::from_name(kind.name()), Some(kind));
    }
    let c = codes("connectednes");
    assert!(
        c.iter()
            .any(|c| c.starts_with("UnknownMetric") && c.contains("connectednes")),
        "{c:?}"
    );
    let text = spec("kra");
    let out = salient_lang::check("t.exp", &text);
    let rendered = salient_lang::render("t.exp", &text, &out.diagnostics, false);
    assert!(rendered.contains("kar"), "{rendered}");
}

#[test]
fn retraining_metrics_need_a_saliency_method() {
    let text = spec("roar").replace("saliency gradient\n", "");
    let out = salient_lang::check("t.exp", &text);
    assert!(
        out.diagnostics
            .iter()
            .any(|d| format!("{:?}", d.code) == "NeedsDeclaration" && d.message.contains("roar")),
        "{:?}",
        out.diagnostics
    );
}
