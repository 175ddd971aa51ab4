//! Known-answer tests of the evaluation sanity diagnostics (`salient_engine::diagnostics`):
//! each rule on hand-made numbers built to fire and on a near miss; the rules on the committed
//! `reports/quickstart` and `reports/mnist_regimes` results (the FGSM-RS and combined models
//! are flagged, the standard, PGD-AT and SGT models are not); the eval-determinism probe on a
//! real network; and `diagnostics.csv` written by a run.
use salient_engine::diagnostics::{
    self, check_run, classify, compare_logits, AttackAccuracy, AttackClass, AttackKind,
    Determinism, Finding, Role, RunEvaluation, APGD_MARGIN, CSV_HEADER, EVAL_TOLERANCE,
    LARGE_EPS_SLACK, ORDER_MARGIN, SINGLE_STEP_GAP_MIN, SINGLE_STEP_SHARE_MAX,
};
use salient_engine::results::read_results;
use salient_engine::{run, DeviceKind, RunOptions};
use salient_ir::{Attack, Experiment, Norm};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const FGSM: AttackKind = AttackKind {
    class: AttackClass::SingleStep,
    role: Role::Other,
};
const PGD: AttackKind = AttackKind {
    class: AttackClass::MultiStep,
    role: Role::Pgd,
};
const APGD: AttackKind = AttackKind {
    class: AttackClass::MultiStep,
    role: Role::Reference,
};
const SQUARE: AttackKind = AttackKind {
    class: AttackClass::BlackBox,
    role: Role::Other,
};

fn a(name: &str, kind: AttackKind, eps: f64, accuracy: f64) -> AttackAccuracy {
    AttackAccuracy {
        attack: name.to_string(),
        kind,
        norm: Norm::Linf,
        eps,
        accuracy,
    }
}

fn eval(clean: f64, attacks: Vec<AttackAccuracy>) -> RunEvaluation {
    RunEvaluation {
        run: "r".into(),
        clean_accuracy: Some(clean),
        attacks,
        classes: 10,
        input_dim: 784,
        determinism: None,
    }
}

fn checks(ev: &RunEvaluation) -> Vec<String> {
    check_run(ev).into_iter().map(|f| f.check).collect()
}

#[test]
fn classification_of_the_attack_kinds() {
    let fgsm = classify(&Attack::Fgsm { eps: 0.1 });
    assert_eq!(fgsm, FGSM);
    let pgd = classify(&Attack::Pgd {
        norm: Norm::Linf,
        eps: 0.1,
        step_size: 0.01,
        steps: 10,
        random_start: true,
        restarts: 1,
    });
    assert_eq!(pgd, PGD);
    let apgd = classify(&Attack::Apgd {
        norm: Norm::L2,
        eps: 0.5,
        loss: salient_ir::ApgdLoss::Ce,
        steps: 100,
        restarts: 1,
    });
    assert_eq!(apgd, APGD);
    let square = classify(&Attack::Square {
        norm: Norm::Linf,
        eps: 0.3,
        queries: 100,
        p_init: 0.8,
    });
    assert_eq!(square, SQUARE);
}

#[test]
fn blackbox_beats_whitebox_fires_beyond_the_margin_only() {
    let hit = eval(
        0.99,
        vec![
            a("fgsm", FGSM, 0.3, 0.40),
            a("pgd", PGD, 0.3, 0.30),
            a("square", SQUARE, 0.3, 0.30 - ORDER_MARGIN - 0.01),
        ],
    );
    let f = check_run(&hit);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].check, "blackbox_beats_whitebox");
    assert_eq!(f[0].attacks, "square vs pgd");
    assert_eq!(f[0].eps, Some(0.3));
    assert_eq!(f[0].norm.as_deref(), Some("linf"));
    assert!((f[0].statistic - (ORDER_MARGIN + 0.01)).abs() < 1e-12);
    // Within the margin; at another eps; another norm.
    let miss = eval(
        0.99,
        vec![
            a("pgd", PGD, 0.3, 0.30),
            a("square", SQUARE, 0.3, 0.30 - ORDER_MARGIN + 0.002),
            // A black-box attack alone at its eps: nothing to compare with.
            a("square", SQUARE, 0.2, 0.5),
            AttackAccuracy {
                norm: Norm::L2,
                ..a("square_l2", SQUARE, 0.3, 0.0)
            },
        ],
    );
    assert!(checks(&miss).is_empty(), "{:?}", check_run(&miss));
}

#[test]
fn single_step_stronger_fires_beyond_the_margin_only() {
    let hit = eval(
        0.99,
        vec![a("fgsm", FGSM, 0.1, 0.50), a("pgd", PGD, 0.1, 0.53)],
    );
    assert_eq!(checks(&hit), ["single_step_stronger"]);
    let miss = eval(
        0.99,
        vec![a("fgsm", FGSM, 0.1, 0.50), a("pgd", PGD, 0.1, 0.505)],
    );
    assert!(checks(&miss).is_empty());
    // Compared with the strongest multi-step attack: FGSM beats PGD, but APGD beats FGSM.
    let strongest = eval(
        0.99,
        vec![
            a("fgsm", FGSM, 0.1, 0.50),
            a("pgd", PGD, 0.1, 0.53),
            a("apgd", APGD, 0.1, 0.49),
        ],
    );
    assert!(checks(&strongest).is_empty(), "{:?}", check_run(&strongest));
}

#[test]
fn single_step_gap_fires_on_catastrophic_overfitting_not_on_a_plain_model() {
    // FGSM-RS after catastrophic overfitting: FGSM barely moves, PGD breaks nearly all.
    let co = eval(
        0.96,
        vec![a("fgsm", FGSM, 0.3, 0.89), a("pgd", PGD, 0.3, 0.02)],
    );
    let f = check_run(&co);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].check, "single_step_gap");
    let share = (0.96 - 0.89) / (0.96 - 0.02);
    assert!((f[0].statistic - share).abs() < 1e-12);
    assert_eq!(f[0].threshold, SINGLE_STEP_SHARE_MAX);
    // Share just above the threshold: no finding, however large the gap.
    let fgsm = 0.96 - (SINGLE_STEP_SHARE_MAX + 0.01) * 0.94;
    let near = eval(
        0.96,
        vec![a("fgsm", FGSM, 0.3, fgsm), a("pgd", PGD, 0.3, 0.02)],
    );
    assert!(checks(&near).is_empty(), "{:?}", check_run(&near));
    // Share tiny but gap below the minimum: no finding.
    let small = eval(
        0.96,
        vec![
            a("fgsm", FGSM, 0.1, 0.95),
            a("pgd", PGD, 0.1, 0.95 - SINGLE_STEP_GAP_MIN + 0.01),
        ],
    );
    assert!(checks(&small).is_empty(), "{:?}", check_run(&small));
    // No clean accuracy: the share is undefined, no finding.
    let mut no_clean = co.clone();
    no_clean.clean_accuracy = None;
    assert!(checks(&no_clean).is_empty());
}

#[test]
fn not_monotone_in_eps_fires_when_accuracy_rises_with_eps() {
    let hit = eval(
        0.99,
        vec![
            a("pgd", PGD, 0.1, 0.60),
            a("pgd", PGD, 0.2, 0.30),
            a("pgd", PGD, 0.3, 0.30 + ORDER_MARGIN + 0.01),
        ],
    );
    let f = check_run(&hit);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].check, "not_monotone_in_eps");
    assert_eq!(f[0].eps, Some(0.3));
    assert_eq!(f[0].reference, 0.30);
    // Within the margin, and a different attack at the larger eps.
    let miss = eval(
        0.99,
        vec![
            a("pgd", PGD, 0.1, 0.60),
            a("pgd", PGD, 0.3, 0.60 + ORDER_MARGIN - 0.002),
            a("pgd40", PGD, 0.3, 0.90),
        ],
    );
    assert!(!checks(&miss).contains(&"not_monotone_in_eps".to_string()));
}

#[test]
fn large_eps_not_zero_only_where_the_gray_image_is_reachable() {
    let bound = 0.1 + LARGE_EPS_SLACK;
    let hit = eval(
        0.99,
        vec![a("fgsm", FGSM, 0.5, 0.9), a("pgd", PGD, 0.5, bound + 0.01)],
    );
    let f: Vec<Finding> = check_run(&hit)
        .into_iter()
        .filter(|f| f.check == "large_eps_not_zero")
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].attacks, "pgd");
    // Near miss: the strongest attack is under the bound.
    let near = eval(0.99, vec![a("pgd", PGD, 0.5, bound - 0.01)]);
    assert!(checks(&near).is_empty());
    // Below the gray radius nothing is claimed, whatever the accuracy.
    let small = eval(0.99, vec![a("pgd", PGD, 0.49, 0.9)]);
    assert!(checks(&small).is_empty());
    // L2: radius 0.5 * sqrt(784) = 14.
    assert_eq!(diagnostics::gray_radius(Norm::L2, 784), 14.0);
    let l2 = |eps| {
        eval(
            0.99,
            vec![AttackAccuracy {
                norm: Norm::L2,
                ..a("pgd_l2", PGD, eps, 0.5)
            }],
        )
    };
    assert_eq!(checks(&l2(14.0)), ["large_eps_not_zero"]);
    assert!(checks(&l2(13.9)).is_empty());
}

#[test]
fn apgd_below_pgd_fires_beyond_the_margin_only() {
    let hit = eval(
        0.98,
        vec![a("pgd", PGD, 0.3, 0.722), a("apgd", APGD, 0.3, 0.581)],
    );
    let f = check_run(&hit);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].check, "apgd_below_pgd");
    assert_eq!(f[0].attacks, "apgd vs pgd");
    let miss = eval(
        0.98,
        vec![
            a("pgd", PGD, 0.3, 0.70),
            a("apgd", APGD, 0.3, 0.70 - APGD_MARGIN + 0.005),
        ],
    );
    assert!(checks(&miss).is_empty());
}

#[test]
fn eval_nondeterministic_fires_on_different_logits_or_predictions() {
    let det = |repeat_diff, repeat_changed, split_diff| Determinism {
        images: 250,
        repeats: 5,
        repeat_diff,
        repeat_changed,
        split_diff,
        split_changed: 0,
    };
    let mut ev = eval(0.99, Vec::new());
    ev.determinism = Some(det(0.0, 0, EVAL_TOLERANCE * 0.5));
    assert!(checks(&ev).is_empty());
    ev.determinism = Some(det(0.3, 4, 0.0));
    assert_eq!(checks(&ev), ["eval_nondeterministic"]);
    ev.determinism = Some(det(0.0, 0, EVAL_TOLERANCE * 2.0));
    let f = check_run(&ev);
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("two halves"), "{}", f[0].message);
    ev.determinism = Some(det(0.0, 1, 0.0));
    assert_eq!(checks(&ev), ["eval_nondeterministic"]);
}

#[test]
fn compare_logits_is_autoattacks_statistic() {
    // Scaling a row does not change its normalised logits.
    let a = [1.0f32, 2.0, 3.0, 4.0, 0.0, 0.0];
    let b = [2.0f32, 4.0, 6.0, 4.0, 0.0, 0.0];
    let (d, c) = compare_logits(&a, &b, 3);
    assert!(d < 1e-7, "{d}");
    assert_eq!(c, 0);
    // Two orthonormal rows are sqrt(2) apart; the argmax changes.
    let b = [1.0f32, 2.0, 3.0, 0.0, 4.0, 0.0];
    let (d, c) = compare_logits(&a, &b, 3);
    assert!((d - 2f64.sqrt()).abs() < 1e-6, "{d}");
    assert_eq!(c, 1);
    let (d, _) = compare_logits(&[f32::NAN, 0.0], &[f32::NAN, 0.0], 2);
    assert!(d.is_infinite());
}

// ---------------------------------------------------------------------------------------------
// The committed reports.

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The experiment a report folder was run with: its `experiment.json` (the checked IR), else
/// its `spec.exp` checked again.
fn report_experiment(dir: &Path) -> Experiment {
    let json = dir.join("experiment.json");
    if let Ok(exp) = std::fs::read_to_string(&json)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Experiment>(&t).map_err(|e| e.to_string()))
    {
        return exp;
    }
    let spec = std::fs::read_to_string(dir.join("spec.exp")).unwrap_or_else(|e| {
        panic!(
            "{}: neither experiment.json nor spec.exp reads: {e}",
            dir.display()
        )
    });
    let out = salient_lang::check("spec.exp", &spec);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    out.experiment
        .unwrap_or_else(|| panic!("{}: spec.exp does not check: {msgs:?}", dir.display()))
}

fn committed(name: &str) -> Vec<Finding> {
    let dir = repo().join("reports").join(name);
    let rows = read_results(&dir.join("results.csv"))
        .unwrap_or_else(|e| panic!("the committed {name} results must be readable: {e}"));
    let exp = report_experiment(&dir);
    let evs = diagnostics::evaluations_from_rows(&rows, &exp);
    assert!(
        evs.iter()
            .all(|e| e.clean_accuracy.is_some() && !e.attacks.is_empty()),
        "{name}: every run should have clean and robust accuracy: {evs:?}"
    );
    let findings: Vec<Finding> = evs.iter().flat_map(check_run).collect();
    for f in &findings {
        eprintln!("{name}: {}", diagnostics::warning_line(f));
    }
    findings
}

fn flagged<'a>(findings: &'a [Finding], run: &str) -> Vec<&'a str> {
    findings
        .iter()
        .filter(|f| f.run == run)
        .map(|f| f.check.as_str())
        .collect()
}

#[test]
fn quickstart_flags_fgsm_rs_and_not_standard_or_sgt() {
    let f = committed("quickstart");
    assert!(
        flagged(&f, "cnn-fgsm_rs-seed0").contains(&"single_step_gap"),
        "FGSM 89.0% vs PGD 2.0% at eps 0.3 must be flagged: {f:?}"
    );
    for run in ["cnn-standard-seed0", "cnn-sgt-seed0"] {
        assert!(flagged(&f, run).is_empty(), "{run}: {:?}", flagged(&f, run));
    }
}

#[test]
fn mnist_regimes_flags_combined_and_not_standard_pgd_at_or_sgt() {
    let f = committed("mnist_regimes");
    assert!(
        flagged(&f, "cnn-combined-seed0").contains(&"apgd_below_pgd"),
        "APGD-CE 58.1% vs PGD-40 72.2% at eps 0.3 must be flagged: {f:?}"
    );
    for run in ["cnn-standard-seed0", "cnn-pgd_at-seed0", "cnn-sgt-seed0"] {
        assert!(flagged(&f, run).is_empty(), "{run}: {:?}", flagged(&f, run));
    }
}

// ---------------------------------------------------------------------------------------------
// With a network.

const TINY: &str = r#"
experiment tiny
data synthetic { shape = (1, 8, 8)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net {
  conv(out = 4, kernel = 3, padding = 1)
  relu
  maxpool(size = 2)
  flatten
  dropout(p = 0.5)
  dense(out = 3)
}
train { optimizer = adam  lr = 1e-2  epochs = 1  batch = 32  seed = 0 }
regime standard
attack fgsm { eps = [0.1, 0.2] }
attack pgd  { norm = linf  eps = [0.1, 0.2]  steps = 3  step_size = 0.05 }
metrics { clean_accuracy  robust_accuracy }
eval { attack_samples = 48 }
"#;

fn experiment(src: &str) -> Experiment {
    let out = salient_lang::check("test.exp", src);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    out.experiment
        .unwrap_or_else(|| panic!("spec does not check: {msgs:?}"))
}

#[test]
fn a_network_with_dropout_is_deterministic_in_eval_mode() {
    use dfdx::prelude::*;
    let exp = experiment(TINY);
    let splits = salient_data::load(&exp.data).unwrap();
    let dev = Cpu::seed_from_u64(0);
    let mut net =
        salient_nn::Network::new(&exp.models[0], &exp.data.mean, &exp.data.std, 0, &dev).unwrap();
    let d = diagnostics::probe_determinism(&mut net, &splits.test, 40, 5);
    assert_eq!((d.images, d.repeats), (40, 5));
    assert!(d.repeat_diff <= EVAL_TOLERANCE, "{d:?}");
    assert!(d.split_diff <= EVAL_TOLERANCE, "{d:?}");
    assert_eq!((d.repeat_changed, d.split_changed), (0, 0));
    let mut ev = eval(0.9, Vec::new());
    ev.determinism = Some(d);
    assert!(checks(&ev).is_empty());
}

#[test]
fn a_run_writes_diagnostics_csv_with_its_header() {
    let exp = experiment(TINY);
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out_dir: dir.path().to_path_buf(),
        device: DeviceKind::Cpu,
        quiet: true,
        retrain: false,
        only: Vec::new(),
        interrupt: Arc::new(AtomicBool::new(false)),
    };
    run(&exp, TINY, &opts).unwrap();
    let path = dir.path().join("diagnostics.csv");
    let text = std::fs::read_to_string(&path).expect("a run writes diagnostics.csv");
    assert_eq!(text.lines().next().unwrap(), CSV_HEADER.join(","));
    // Its rows are the rules on the run's results (no determinism finding: eval mode is
    // deterministic here).
    let rows = read_results(&dir.path().join("results.csv")).unwrap();
    let expected = diagnostics::diagnose_rows(&rows, &exp);
    assert_eq!(diagnostics::read_csv(&path).unwrap(), expected);
    // Written back and read again unchanged, also when empty.
    let again = dir.path().join("again.csv");
    diagnostics::write_csv(&again, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&again).unwrap().trim_end(),
        CSV_HEADER.join(",")
    );
    assert!(diagnostics::read_csv(&again).unwrap().is_empty());
}

/// The findings the runner writes to `runs/<run>/diagnostics.csv`: one run's rows among all,
/// plus its determinism probe. (How the top-level file merges them, and keeps the findings of
/// folders written before: tests/results_merge.rs.)
#[test]
fn diagnose_run_checks_the_rows_of_one_run() {
    let exp = experiment(TINY);
    let row = |run: &str, metric: &str, attack: Option<&str>, eps: Option<f64>, value: f64| {
        salient_engine::results::ResultRow {
            run: run.into(),
            model: "net".into(),
            regime: "standard".into(),
            seed: 0,
            metric: metric.into(),
            attack: attack.map(str::to_string),
            eps,
            saliency: None,
            point: None,
            class: None,
            value,
        }
    };
    // A run whose FGSM beats PGD, and a run whose PGD gets weaker at a larger eps.
    let rows = vec![
        row("old", "clean_accuracy", None, None, 0.9),
        row("old", "robust_accuracy", Some("fgsm"), Some(0.1), 0.3),
        row("old", "robust_accuracy", Some("pgd"), Some(0.1), 0.5),
        row("new", "clean_accuracy", None, None, 0.9),
        row("new", "robust_accuracy", Some("pgd"), Some(0.1), 0.2),
        row("new", "robust_accuracy", Some("pgd"), Some(0.2), 0.4),
    ];
    let checks_of = |fs: &[Finding]| -> Vec<(String, String)> {
        fs.iter()
            .map(|f| (f.run.clone(), f.check.clone()))
            .collect()
    };
    let new = diagnostics::diagnose_run(&rows, &exp, "new", None);
    assert_eq!(
        checks_of(&new),
        [("new".to_string(), "not_monotone_in_eps".to_string())]
    );
    assert!(diagnostics::diagnose_run(&rows[..5], &exp, "new", None).is_empty());
    // The determinism probe adds its finding after the rows' ones.
    let probe = diagnostics::Determinism {
        images: 40,
        repeats: 5,
        repeat_diff: 0.5,
        repeat_changed: 1,
        split_diff: 0.0,
        split_changed: 0,
    };
    let old = diagnostics::diagnose_run(&rows, &exp, "old", Some(probe));
    assert_eq!(
        checks_of(&old),
        [
            ("old".to_string(), "single_step_stronger".to_string()),
            ("old".to_string(), "eval_nondeterministic".to_string())
        ]
    );
    // A run without rows has no finding but its probe's.
    assert!(diagnostics::diagnose_run(&rows, &exp, "none", None).is_empty());
}
