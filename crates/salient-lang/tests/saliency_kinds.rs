//! Every `SaliencyKind` checks with its defaults and lowers to the `SaliencyMethod` of the same
//! kind; its keys are the settings the checker accepts (another method's key is an error).
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
