//! Every spec in `specs/` checks clean (no errors, no warnings), and the IR it lowers to has the
//! structure its header comment describes.

use salient_ir::*;
use std::path::{Path, PathBuf};

fn specs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("specs/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "exp"))
        .collect();
    v.sort();
    v
}

fn load(name: &str) -> Experiment {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../specs")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("spec readable");
    let out = salient_lang::check(name, &src);
    out.experiment
        .unwrap_or_else(|| panic!("{name}: {:#?}", out.diagnostics))
}

#[test]
fn every_spec_checks_clean() {
    let files = specs();
    assert!(
        files.len() >= 8,
        "expected the 8 specs, found {}",
        files.len()
    );
    for path in files {
        let src = std::fs::read_to_string(&path).expect("readable");
        let name = path.display().to_string();
        let out = salient_lang::check(&name, &src);
        assert!(
            out.diagnostics.is_empty(),
            "{name}:\n{}",
            salient_lang::render(&name, &src, &out.diagnostics, false)
        );
        let exp = out.experiment.expect("experiment");
        assert!(!exp.runs.is_empty());
        // Run ids are unique and file-name safe.
        let mut ids: Vec<&str> = exp.runs.iter().map(|r| r.id.as_str()).collect();
        assert!(
            ids.iter().all(|id| id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))),
            "{ids:?}"
        );
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), exp.runs.len());
        for m in &exp.models {
            assert_eq!(m.output, Shape::Flat(exp.data.classes));
        }
        // The IR round-trips through JSON (the engine may cache it).
        let json = serde_json::to_string(&exp).expect("serialise");
        let back: Experiment = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, exp);
    }
}

#[test]
fn quickstart_lowers_as_written() {
    let e = load("quickstart.exp");
    assert_eq!(e.name, "quickstart");
    assert_eq!(e.data.kind, DataKind::Mnist);
    assert_eq!(e.data.mean, vec![0.1307]);
    let cnn = e.model("cnn").expect("cnn");
    // conv 5*5*1*16+16, conv 5*5*16*32+32, dense 1568*128+128, dense 128*10+10
    assert_eq!(cnn.params, 416 + 12_832 + 200_832 + 1_290);
    assert_eq!(cnn.layers[6].input, Shape::Image { c: 32, h: 7, w: 7 });
    assert_eq!(cnn.layers[6].name, "flatten1");
    assert_eq!(e.runs.len(), 3);
    let fgsm = e
        .runs
        .iter()
        .find(|r| r.regime.name == "fgsm_rs")
        .expect("fgsm_rs");
    match &fgsm.regime.regime {
        Regime::Adversarial(a) => {
            assert_eq!(a.attack.method, TrainAttackMethod::Fgsm);
            assert!((a.attack.step_size - 0.375).abs() < 1e-12);
            assert!(a.attack.random_start);
        }
        other => panic!("{other:?}"),
    }
    // fgsm and pgd at eps 0.1 and 0.3, square at 0.3.
    assert_eq!(e.attacks.len(), 5);
    assert_eq!(e.sweeps["attack.fgsm.eps"], vec!["0.1", "0.3"]);
    assert_eq!(e.attacks.iter().filter(|a| a.name == "square").count(), 1);
    assert_eq!(e.train_schedule(), Schedule::Cosine);
}

trait TrainSchedule {
    fn train_schedule(&self) -> Schedule;
}
impl TrainSchedule for Experiment {
    fn train_schedule(&self) -> Schedule {
        self.runs[0].train.schedule.clone()
    }
}

#[test]
fn kim_sweeps_expand_per_regime() {
    let e = load("kim_adversarial_paper.exp");
    // standard + 3 Linf + 3 L2 variants.
    assert_eq!(e.runs.len(), 7);
    let labels: Vec<&str> = e.runs.iter().map(|r| r.regime.label.as_str()).collect();
    assert!(labels.contains(&"pgd_linf[eps=0.025]"), "{labels:?}");
    assert!(e.runs.iter().any(|r| r.id == "kim_mnist-pgd_l2_eps2-seed0"));
    let l2: Vec<&AttackSpec> = e.attacks.iter().filter(|a| a.norm() == Norm::L2).collect();
    assert_eq!(l2.len(), 3);
    assert!(l2.iter().all(|a| a.name == "pgd_l2"));
    // same padding keeps 28x28 until the pool.
    let m = e.model("kim_mnist").expect("model");
    assert_eq!(
        m.layers[2].output,
        Shape::Image {
            c: 64,
            h: 28,
            w: 28
        }
    );
}

#[test]
fn kim_two_core_spec_declares_roar_and_kar_for_every_eps() {
    let e = load("kim_adversarial.exp");
    assert_eq!(e.runs.len(), 7);
    let retrain = RetrainSpec {
        percents: vec![10, 30, 50, 70, 90],
        seeds: 2,
        epochs: Some(1),
        random: true,
    };
    assert!(e.metrics.contains(&MetricSpec::Roar(retrain.clone())));
    assert!(e.metrics.contains(&MetricSpec::Kar(retrain)));
    assert_eq!(e.data.train, Some(10_000));
    // The paper-sized spec keeps Hooker et al.'s 5 retraining seeds and the run's epochs.
    let paper = load("kim_adversarial_paper.exp");
    assert!(paper.metrics.iter().any(|m| matches!(
        m,
        MetricSpec::Roar(r) if r.seeds == 5 && r.epochs.is_none()
    )));
}

#[test]
fn cifar_fractions_are_numbers() {
    let e = load("kim_adversarial_cifar10.exp");
    let eps: Vec<f64> = e
        .attacks
        .iter()
        .filter(|a| a.norm() == Norm::Linf)
        .map(|a| a.eps())
        .collect();
    assert_eq!(eps, vec![2.0 / 255.0, 4.0 / 255.0, 8.0 / 255.0]);
    assert!(e
        .runs
        .iter()
        .any(|r| r.id == "kim_cifar-pgd_linf_eps2_255-seed0"));
}

#[test]
fn moshe_layers_resolve() {
    let e = load("moshe_sensitivity.exp");
    let s = e.runs.iter().find_map(|r| match &r.regime.regime {
        Regime::Sensitivity(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(s.expect("sensitivity run").layers, vec!["relu3", "dense1"]);
}
