//! The attack kinds of issue #12 (APGD-T, FAB, AutoAttack, CW, DeepFool) check and lower to the
//! IR the engine runs; their mistakes are diagnostics with the right code.
mod common;

use salient_ir::*;

fn spec(attacks: &str) -> String {
    format!(
        r#"experiment t
data synthetic {{ classes = 10  shape = (1, 8, 8)  train = 64  test = 32 }}
model mlp {{
  flatten
  dense(out = 10)
}}
train {{ model = mlp  optimizer = adam  lr = 1e-3  epochs = 1  batch = 32 }}
regime standard
{attacks}
metrics {{ clean_accuracy robust_accuracy }}
"#
    )
}

fn attacks(src: &str) -> Vec<AttackSpec> {
    common::clean(&spec(src)).attacks
}

fn codes(src: &str) -> Vec<String> {
    common::codes(&spec(src))
}

#[test]
fn autoattack_defaults_to_the_standard_version_and_its_components() {
    let a = attacks("attack autoattack { eps = 0.3 }");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].name, "autoattack");
    assert_eq!(
        a[0].attack,
        Attack::AutoAttack {
            norm: Norm::Linf,
            eps: 0.3,
            version: AutoAttackVersion::Standard,
            components: vec![
                AutoAttackComponent::ApgdCe,
                AutoAttackComponent::ApgdT,
                AutoAttackComponent::FabT,
                AutoAttackComponent::Square,
            ],
        }
    );
    let a = attacks("attack autoattack { norm = l2  eps = [0.5, 1.0]  version = plus }");
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].name, "autoattack_l2");
    assert_eq!(a[1].eps(), 1.0);
    let Attack::AutoAttack { components, .. } = &a[0].attack else {
        panic!("{a:?}")
    };
    assert_eq!(components.len(), 6);
}

#[test]
fn autoattack_components_run_alone_in_the_order_listed() {
    let a = attacks("attack autoattack as aa { eps = 0.1  components = (square, apgd_ce) }");
    assert_eq!(
        a[0].attack,
        Attack::AutoAttack {
            norm: Norm::Linf,
            eps: 0.1,
            version: AutoAttackVersion::Standard,
            components: vec![AutoAttackComponent::Square, AutoAttackComponent::ApgdCe],
        }
    );
    let c = codes("attack autoattack { eps = 0.1  components = (apgd, square) }");
    assert!(c.iter().any(|m| m.contains("apgd")), "{c:?}");
    let c = codes("attack autoattack { eps = 0.1  components = (square, square) }");
    assert!(c.iter().any(|m| m.contains("twice")), "{c:?}");
    let c = codes("attack autoattack { eps = 0.1  version = fast }");
    assert!(!c.is_empty());
}

#[test]
fn apgd_t_fab_and_the_minimum_norm_attacks_lower_with_their_defaults() {
    let a = attacks(
        "attack apgd_t { eps = 0.3 }\n\
         attack fab { eps = 0.3  targets = 9 }\n\
         attack cw { curve = (0.5, 1.0, 2.0) }\n\
         attack deepfool { norm = linf  curve = (0.1, 0.2) }",
    );
    let names: Vec<&str> = a.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["apgd_t", "fab", "cw", "deepfool"]);
    assert_eq!(
        a[0].attack,
        Attack::ApgdT {
            norm: Norm::Linf,
            eps: 0.3,
            steps: 100,
            restarts: 1,
            targets: 9
        }
    );
    assert!(matches!(
        a[1].attack,
        Attack::Fab {
            targets: 9,
            steps: 100,
            ..
        }
    ));
    assert_eq!(
        a[2].attack,
        Attack::Cw {
            steps: 100,
            binary_steps: 9,
            lr: 0.01,
            initial_const: 1e-3,
            confidence: 0.0,
            curve: vec![0.5, 1.0, 2.0],
        }
    );
    assert_eq!(a[2].norm(), Norm::L2);
    assert_eq!(a[2].eps(), 2.0);
    assert_eq!(a[2].curve(), Some(&[0.5, 1.0, 2.0][..]));
    assert_eq!(a[3].norm(), Norm::Linf);
    assert!(matches!(
        a[3].attack,
        Attack::DeepFool {
            steps: 50,
            candidates: 10,
            ..
        }
    ));
}

#[test]
fn mistakes_in_the_new_attacks_are_diagnostics() {
    // CW is L2 only.
    let c = codes("attack cw { norm = linf  curve = (1.0) }");
    assert!(c.iter().any(|m| m.starts_with("Incompatible")), "{c:?}");
    // A curve is required, positive and increasing.
    let c = codes("attack deepfool { }");
    assert!(c.iter().any(|m| m.contains("curve")), "{c:?}");
    let c = codes("attack deepfool { curve = (0.2, 0.1) }");
    assert!(c.iter().any(|m| m.contains("increasing")), "{c:?}");
    // eps is a key of neither; curve is not a key of apgd_t.
    let c = codes("attack cw { eps = 1.0  curve = (1.0) }");
    assert!(
        c.iter().any(|m| m.contains("unknown setting `eps`")),
        "{c:?}"
    );
    let c = codes("attack apgd_t { eps = 0.1  curve = (1.0) }");
    assert!(
        c.iter().any(|m| m.contains("unknown setting `curve`")),
        "{c:?}"
    );
    // An unknown kind suggests the near one.
    let c = codes("attack autoatack { eps = 0.1 }");
    assert!(c.iter().any(|m| m.contains("unknown attack")), "{c:?}");
}
