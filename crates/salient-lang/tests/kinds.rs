//! Every `SaliencyKind` and `RegimeKind` checks and lowers to the IR value of the same kind; a
//! saliency method's keys are the settings the checker accepts (another method's key is an error).
mod common;

use salient_ir::SaliencyMethod;
use salient_lang::SaliencyKind;

fn spec(saliency: &str) -> String {
    format!(
        r#"experiment t
data synthetic {{ classes = 3  shape = (1, 8, 8)  train = 32  test = 16 }}
model m {{ flatten dense(out = 3) }}
train {{ model = m  optimizer = sgd  lr = 0.1  epochs = 1  batch = 16 }}
regime standard
{saliency}
metrics {{ clean_accuracy sparseness }}
"#
    )
}

fn kind_of(m: &SaliencyMethod) -> SaliencyKind {
    match m {
        SaliencyMethod::Gradient { .. } => SaliencyKind::Gradient,
        SaliencyMethod::GradientInput => SaliencyKind::GradientInput,
        SaliencyMethod::IntegratedGradients { .. } => SaliencyKind::IntegratedGradients,
        SaliencyMethod::SmoothGrad { .. } => SaliencyKind::SmoothGrad,
    }
}

#[test]
fn every_saliency_kind_lowers_to_its_method() {
    for kind in SaliencyKind::ALL {
        let exp = common::clean(&spec(&format!("saliency {}", kind.name())));
        assert_eq!(kind_of(&exp.saliency[0].method), kind, "{}", kind.name());
        assert_eq!(SaliencyKind::from_name(kind.name()), Some(kind));
    }
}

#[test]
fn a_key_of_another_method_is_an_error() {
    for kind in SaliencyKind::ALL {
        // `sigma` belongs to smoothgrad only; `sign` to gradient only.
        let foreign = if kind == SaliencyKind::SmoothGrad {
            "sign = absolute"
        } else {
            "sigma = 0.1"
        };
        let codes = common::codes(&spec(&format!("saliency {} {{ {foreign} }}", kind.name())));
        assert!(!codes.is_empty(), "{}: {foreign} accepted", kind.name());
    }
}

/// Every `RegimeKind` lowers to the `salient_ir::Regime` of the same kind (`kind_name`).
#[test]
fn every_regime_kind_lowers_to_its_regime() {
    use salient_lang::RegimeKind;
    for kind in salient_lang::RegimeKind::ALL {
        let body = match kind {
            RegimeKind::Standard | RegimeKind::Sgt => "",
            RegimeKind::Adversarial => "{ attack = pgd(eps = 0.1, steps = 2, step_size = 0.05) }",
            RegimeKind::Combined => "{ attack = pgd(eps = 0.1, steps = 2, step_size = 0.05) }",
            RegimeKind::LpDual => "{ mode = l1_box(eps = 0.1) }",
            RegimeKind::Sensitivity => "{ layers = (dense1) }",
        };
        let src = spec("saliency gradient")
            .replace("regime standard", &format!("regime {} {body}", kind.name()));
        let exp = common::clean(&src);
        assert_eq!(exp.runs[0].regime.regime.kind_name(), kind.name());
        assert_eq!(RegimeKind::from_name(kind.name()), Some(kind));
    }
}
