//! Evaluation attacks: norm-ball and box properties, known answers on linear models, relative
//! strength on a trained tiny model, APGD's DLR loss and checkpoints, Square's query budget and
//! schedule, the worst case over attacks, and clear errors on bad input.
use dfdx::prelude::*;
use rand::Rng;
use salient_engine::attack::apgd::{apgd, checkpoints, dlr, dlr_rows, ApgdConfig};
use salient_engine::attack::fgsm::fgsm;
use salient_engine::attack::pgd::pgd_restarts;
use salient_engine::attack::rows::{bucket, correct_rows, padded};
use salient_engine::attack::square::{p_selection, square, ImageDims, SquareConfig};
use salient_engine::attack::{attack_batch, AttackLoss, AttackOutcome, PgdConfig};
use salient_engine::losses::one_hot;
use salient_engine::progress::RunProgress;
use salient_engine::regime::Standard;
use salient_engine::robustness::{evaluate_attacks, robustness_rows, worst_cases};
use salient_engine::train::{train, TrainInputs};
use salient_ir::{
    ApgdLoss, Attack, AttackSpec, AutoAttackComponent, AutoAttackVersion, DataKind, DataSpec,
    EvalSpec, Experiment, ImageShape, MetricSpec, Norm, Optimizer as Opt, Regime, RegimeInstance,
    ReportSpec, Schedule, TrainConfig, TrainRun,
};
use salient_nn::{Mode, Network};
use std::sync::atomic::AtomicBool;

mod common;
use common::{dev, linear_net, mlp_def, predictions, rng, tiny_cnn, Dev, Mat};

const TOL: f32 = 1e-5;

fn spec(name: &str, attack: Attack) -> AttackSpec {
    AttackSpec {
        name: name.to_string(),
        attack,
    }
}

fn pgd_spec(
    norm: Norm,
    eps: f64,
    step_size: f64,
    steps: usize,
    random_start: bool,
    restarts: usize,
) -> AttackSpec {
    spec(
        "pgd",
        Attack::Pgd {
            norm,
            eps,
            step_size,
            steps,
            random_start,
            restarts,
        },
    )
}

/// max_i |d_i| and ||d||_2 of every row of x_adv - x.
fn norms(x: &Mat, x_adv: &Mat) -> Vec<(f32, f32)> {
    let n = x.shape().1;
    let (a, b) = (x.as_vec(), x_adv.as_vec());
    a.chunks(n)
        .zip(b.chunks(n))
        .map(|(r, s)| {
            let d: Vec<f32> = r.iter().zip(s).map(|(u, v)| v - u).collect();
            (
                d.iter().fold(0.0f32, |m, v| m.max(v.abs())),
                d.iter().map(|v| v * v).sum::<f32>().sqrt(),
            )
        })
        .collect()
}

/// Every evaluation attack, at `eps` in its norm.
fn all_attacks(eps_inf: f64, eps_2: f64) -> Vec<AttackSpec> {
    vec![
        spec("fgsm", Attack::Fgsm { eps: eps_inf }),
        pgd_spec(Norm::Linf, eps_inf, eps_inf / 4.0, 5, true, 2),
        pgd_spec(Norm::L2, eps_2, eps_2 / 4.0, 5, true, 2),
        spec(
            "apgd_ce",
            Attack::Apgd {
                norm: Norm::Linf,
                eps: eps_inf,
                loss: ApgdLoss::Ce,
                steps: 12,
                restarts: 2,
            },
        ),
        spec(
            "apgd_dlr",
            Attack::Apgd {
                norm: Norm::Linf,
                eps: eps_inf,
                loss: ApgdLoss::Dlr,
                steps: 12,
                restarts: 1,
            },
        ),
        spec(
            "apgd_ce_l2",
            Attack::Apgd {
                norm: Norm::L2,
                eps: eps_2,
                loss: ApgdLoss::Ce,
                steps: 12,
                restarts: 1,
            },
        ),
        spec(
            "apgd_dlr_l2",
            Attack::Apgd {
                norm: Norm::L2,
                eps: eps_2,
                loss: ApgdLoss::Dlr,
                steps: 12,
                restarts: 2,
            },
        ),
        spec(
            "square",
            Attack::Square {
                norm: Norm::Linf,
                eps: eps_inf,
                queries: 30,
                p_init: 0.8,
            },
        ),
        spec(
            "square_l2",
            Attack::Square {
                norm: Norm::L2,
                eps: eps_2,
                queries: 30,
                p_init: 0.8,
            },
        ),
    ]
}

#[test]
fn every_attack_stays_in_the_ball_and_the_box_and_reports_consistently() {
    for seed in 0..3u64 {
        let mut net = tiny_cnn(seed);
        let mut r = rng(100 + seed);
        let (b, n) = (12, 72);
        // Random pixels, a third of them saturated at 0 or 1 (where the box bites).
        let xs: Vec<f32> = (0..b * n)
            .map(|_| match r.gen_range(0..6) {
                0 => 0.0,
                1 => 1.0,
                _ => r.gen::<f32>(),
            })
            .collect();
        let x: Mat = dev().tensor_from_vec(xs, (b, n));
        // Half the labels are the clean prediction (so attacks have work), half random.
        let pred = predictions(&mut net, &x);
        let labels: Vec<usize> = (0..b)
            .map(|i| {
                if i % 2 == 0 {
                    pred[i]
                } else {
                    r.gen_range(0..4)
                }
            })
            .collect();
        for (eps_inf, eps_2) in [(0.03, 0.2), (0.3, 1.5), (1.0, 8.0)] {
            for s in all_attacks(eps_inf, eps_2) {
                let out = attack_batch(&mut net, &s, &x, &labels, &mut rng(seed)).unwrap();
                let v = out.x_adv.as_vec();
                assert!(
                    v.iter().all(|p| (0.0..=1.0).contains(p)),
                    "{}: x_adv leaves the [0, 1] box",
                    s.name
                );
                for (i, (linf, l2)) in norms(&x, &out.x_adv).into_iter().enumerate() {
                    match s.norm() {
                        Norm::Linf => assert!(
                            linf <= eps_inf as f32 + TOL,
                            "{} row {i}: Linf {linf} > eps {eps_inf}",
                            s.name
                        ),
                        Norm::L2 => assert!(
                            l2 <= eps_2 as f32 + TOL,
                            "{} row {i}: L2 {l2} > eps {eps_2}",
                            s.name
                        ),
                    }
                }
                // Robust means x_adv is still classified correctly; broken means x_adv is a
                // real adversarial example (or the clean image was already misclassified).
                let adv_pred = predictions(&mut net, &out.x_adv);
                for i in 0..b {
                    assert_eq!(
                        out.robust[i],
                        adv_pred[i] == labels[i],
                        "{} row {i}: robust flag disagrees with x_adv",
                        s.name
                    );
                    if pred[i] != labels[i] {
                        assert!(
                            !out.robust[i],
                            "{} row {i}: misclassified clean example reported robust",
                            s.name
                        );
                    }
                }
            }
        }
    }
}

/// Two-class linear model with w_0 - w_1 = v on a 4x4 image: the Linf-optimal attack on class 0
/// is x - eps sign(v) (clipped to the box), the L2-optimal x - eps v / ||v||.
struct Binary {
    net: Network<Dev>,
    v: Vec<f32>,
}

fn binary(bias0: f32) -> Binary {
    let mut r = rng(7);
    let mut w = vec![0.0f32; 32];
    let mut v = vec![0.0f32; 16];
    for i in 0..16 {
        let (a, b) = (r.gen_range(-1.0f32..1.0), r.gen_range(-1.0f32..1.0));
        let (a, b) = if (a - b).abs() < 0.1 {
            (a + 0.3, b - 0.3)
        } else {
            (a, b)
        };
        w[i * 2] = a;
        w[i * 2 + 1] = b;
        v[i] = a - b;
    }
    Binary {
        net: linear_net(&w, &[bias0, 0.0]),
        v,
    }
}

/// An image with mid-range pixels and a few saturated ones.
fn image() -> Vec<f32> {
    let mut r = rng(11);
    let mut x: Vec<f32> = (0..16).map(|_| r.gen_range(0.2f32..0.8)).collect();
    x[3] = 0.0;
    x[7] = 1.0;
    x[12] = 0.0;
    x
}

fn linf_optimum(x: &[f32], v: &[f32], eps: f32) -> Vec<f32> {
    x.iter()
        .zip(v)
        .map(|(a, w)| (a - eps * w.signum()).clamp(0.0, 1.0))
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    let worst = a
        .iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tol,
        "{what}: max deviation {worst} > {tol}\n got {a:?}\nwant {b:?}"
    );
}

/// Margin z_0 - z_1 of the binary model at a host image.
fn margin(bin: &mut Binary, x: &[f32]) -> f32 {
    let z = bin
        .net
        .forward(dev().tensor_from_vec(x.to_vec(), (1, 16)), Mode::Eval)
        .as_vec();
    z[0] - z[1]
}

#[test]
fn fgsm_pgd_and_apgd_find_the_optimal_linf_perturbation_of_a_linear_model() {
    let eps = 0.1f32;
    let x = image();
    // A bias that leaves a margin of 1 at the optimum: the example stays robust, so every
    // attack returns its best point, which for a linear model is the vertex x - eps sign(v).
    // (A far larger margin would saturate the softmax: 1 - p_y rounds to 0 in f32.)
    let mut bin = binary(0.0);
    let want = linf_optimum(&x, &bin.v, eps);
    let mut bin = Binary {
        net: binary(1.0 - margin(&mut bin, &want)).net,
        v: bin.v,
    };
    let xt: Mat = dev().tensor_from_vec(x.clone(), (1, 16));
    let onehot = one_hot(&dev(), &[0], 2);
    let f = fgsm(&mut bin.net, &xt, &onehot, eps);
    assert_close(&f.as_vec(), &want, 1e-6, "FGSM");
    // The margin drops by exactly sum_i v_i (x_i - x*_i): eps ||v||_1 where the box allows.
    let drop: f32 = x
        .iter()
        .zip(&want)
        .zip(&bin.v)
        .map(|((a, b), w)| w * (a - b))
        .sum();
    let l1: f32 = bin.v.iter().map(|w| w.abs()).sum();
    assert!(
        drop < eps * l1 && drop > 0.5 * eps * l1,
        "the box clips some pixels: {drop} vs {}",
        eps * l1
    );
    assert!((margin(&mut bin, &x) - margin(&mut bin, &want) - drop).abs() < 1e-4);
    let cfg = PgdConfig {
        norm: Norm::Linf,
        eps,
        step_size: 0.03,
        steps: 10,
        random_start: true,
        loss: AttackLoss::Ce,
    };
    let p = pgd_restarts(&mut bin.net, &xt, &[0], &cfg, 2, &mut rng(1));
    assert_eq!(p.robust, vec![true]);
    assert_close(&p.x_adv.as_vec(), &want, 1e-6, "PGD Linf");
    let cfg = ApgdConfig {
        norm: Norm::Linf,
        eps,
        loss: ApgdLoss::Ce,
        steps: 10,
        restarts: 1,
        eot: 1,
    };
    let a = apgd(&mut bin.net, &xt, &[0], &cfg, &mut rng(2));
    assert_eq!(a.robust, vec![true]);
    assert_close(&a.x_adv.as_vec(), &want, 1e-6, "APGD-CE Linf");
}

#[test]
fn a_linear_example_is_broken_exactly_when_the_optimum_crosses_the_boundary() {
    let eps = 0.1f32;
    let x = image();
    let mut bin = binary(0.0);
    let want = linf_optimum(&x, &bin.v, eps);
    let (m0, m1) = (margin(&mut bin, &x), margin(&mut bin, &want));
    // Choose the bias so that the clean margin is positive, the optimal one negative (broken),
    // and a second bias for which even the optimum stays positive (robust).
    let broken_bias = -(m0 + m1) / 2.0;
    let robust_bias = -m1 + 0.05;
    for (bias, expect_robust) in [(broken_bias, false), (robust_bias, true)] {
        let mut bin = Binary {
            net: binary(bias).net,
            v: bin.v.clone(),
        };
        assert!(
            margin(&mut bin, &x) > 0.0,
            "the clean example is classified correctly"
        );
        let xt: Mat = dev().tensor_from_vec(x.clone(), (1, 16));
        for s in [
            spec("fgsm", Attack::Fgsm { eps: eps as f64 }),
            pgd_spec(Norm::Linf, eps as f64, 0.025, 10, true, 1),
            spec(
                "apgd",
                Attack::Apgd {
                    norm: Norm::Linf,
                    eps: eps as f64,
                    loss: ApgdLoss::Ce,
                    steps: 10,
                    restarts: 1,
                },
            ),
            spec(
                "square",
                Attack::Square {
                    norm: Norm::Linf,
                    eps: eps as f64,
                    queries: 400,
                    p_init: 0.8,
                },
            ),
        ] {
            let out = attack_batch(&mut bin.net, &s, &xt, &[0], &mut rng(3)).unwrap();
            assert_eq!(
                out.robust,
                vec![expect_robust],
                "{} with bias {bias}",
                s.name
            );
        }
    }
}

#[test]
fn pgd_and_apgd_find_the_optimal_l2_perturbation_of_a_linear_model() {
    let eps = 0.5f32;
    let mut bin = binary(0.0);
    // Mid-grey image: the box is inactive, the optimum is x - eps v / ||v||.
    let x = vec![0.5f32; 16];
    let norm: f32 = bin.v.iter().map(|w| w * w).sum::<f32>().sqrt();
    let want: Vec<f32> = x
        .iter()
        .zip(&bin.v)
        .map(|(a, w)| a - eps * w / norm)
        .collect();
    // A margin of 1 left at the optimum: robust, not saturated.
    let mut bin = Binary {
        net: binary(1.0 - margin(&mut bin, &want)).net,
        v: bin.v,
    };
    assert!(want.iter().all(|p| (0.0..=1.0).contains(p)));
    let xt: Mat = dev().tensor_from_vec(x.clone(), (1, 16));
    let cfg = PgdConfig {
        norm: Norm::L2,
        eps,
        step_size: 0.1,
        steps: 12,
        random_start: false,
        loss: AttackLoss::Ce,
    };
    let p = pgd_restarts(&mut bin.net, &xt, &[0], &cfg, 1, &mut rng(1));
    assert_close(&p.x_adv.as_vec(), &want, 1e-5, "PGD L2");
    // The margin drops by eps ||v||_2.
    let drop = margin(&mut bin, &x) - margin(&mut bin, &p.x_adv.as_vec());
    assert!(
        (drop - eps * norm).abs() < 1e-4,
        "margin drop {drop} vs eps ||v|| = {}",
        eps * norm
    );
    // APGD from a random point of the sphere converges to the same optimum.
    let cfg = ApgdConfig {
        norm: Norm::L2,
        eps,
        loss: ApgdLoss::Ce,
        steps: 50,
        restarts: 1,
        eot: 1,
    };
    let a = apgd(&mut bin.net, &xt, &[0], &cfg, &mut rng(2));
    assert_close(&a.x_adv.as_vec(), &want, 0.02, "APGD L2");
}

/// A small MLP trained for a few epochs on a synthetic 3-class task.
fn trained_model() -> (Network<Dev>, salient_data::Dataset, TrainRun) {
    let data = DataSpec {
        kind: DataKind::Synthetic {
            train: 384,
            test: 96,
            noise: 0.25,
            seed: 3,
        },
        dir: "unused".into(),
        train: None,
        test: None,
        mean: vec![0.0],
        std: vec![1.0],
        shape: ImageShape { c: 1, h: 6, w: 6 },
        classes: 3,
    };
    let splits = salient_data::load(&data).unwrap();
    let def = mlp_def(6, 3);
    let mut net = Network::new(&def, &[0.0], &[1.0], 0, &dev()).unwrap();
    let run = TrainRun {
        id: "mlp-standard-seed0".into(),
        model: "mlp".into(),
        regime: RegimeInstance {
            name: "standard".into(),
            label: "standard".into(),
            regime: Regime::Standard,
        },
        train: TrainConfig {
            optimizer: Opt::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr: 1e-2,
            schedule: Schedule::Constant,
            weight_decay: 0.0,
            epochs: 4,
            batch: 32,
            seed: 0,
        },
    };
    let stop = AtomicBool::new(false);
    let inputs = TrainInputs {
        run: &run,
        train: &splits.train,
        test: &splits.test,
        eval_batch: 96,
        interrupt: &stop,
    };
    train(
        &mut net,
        &mut Standard,
        &inputs,
        &RunProgress::new(&run.id, true),
    )
    .unwrap();
    (net, splits.test, run)
}

fn experiment(run: &TrainRun, attacks: Vec<AttackSpec>, metrics: Vec<MetricSpec>) -> Experiment {
    Experiment {
        name: "attacks".into(),
        data: DataSpec {
            kind: DataKind::Synthetic {
                train: 384,
                test: 96,
                noise: 0.25,
                seed: 3,
            },
            dir: "unused".into(),
            train: None,
            test: None,
            mean: vec![0.0],
            std: vec![1.0],
            shape: ImageShape { c: 1, h: 6, w: 6 },
            classes: 3,
        },
        models: vec![],
        runs: vec![run.clone()],
        attacks,
        saliency: vec![],
        metrics,
        eval: EvalSpec {
            batch: 40,
            attack_samples: 96,
            saliency_samples: 10,
            seed: 5,
        },
        report: ReportSpec {
            dir: "unused".into(),
            tables: vec![],
            figures: vec![],
            images: 0,
        },
        sweeps: Default::default(),
    }
}

#[test]
fn stronger_attacks_on_a_trained_model_and_the_worst_case_rows() {
    let (mut net, test, run) = trained_model();
    let clean = salient_engine::eval::accuracy(&mut net, &test, 96).value();
    assert!(
        clean > 0.9,
        "the tiny model learns the task (clean accuracy {clean})"
    );
    let eps = 0.15;
    let attacks = vec![
        spec("fgsm", Attack::Fgsm { eps }),
        spec(
            "pgd",
            Attack::Pgd {
                norm: Norm::Linf,
                eps,
                step_size: eps / 8.0,
                steps: 20,
                random_start: true,
                restarts: 1,
            },
        ),
        spec(
            "apgd_ce",
            Attack::Apgd {
                norm: Norm::Linf,
                eps,
                loss: ApgdLoss::Ce,
                steps: 20,
                restarts: 1,
            },
        ),
        spec(
            "apgd_dlr",
            Attack::Apgd {
                norm: Norm::Linf,
                eps,
                loss: ApgdLoss::Dlr,
                steps: 20,
                restarts: 1,
            },
        ),
        spec(
            "square",
            Attack::Square {
                norm: Norm::Linf,
                eps,
                queries: 100,
                p_init: 0.8,
            },
        ),
        spec("fgsm", Attack::Fgsm { eps: 0.05 }),
        spec(
            "pgd_l2",
            Attack::Pgd {
                norm: Norm::L2,
                eps: 1.0,
                step_size: 0.25,
                steps: 10,
                random_start: true,
                restarts: 1,
            },
        ),
    ];
    let results = evaluate_attacks(&mut net, &attacks, &test, 96, 40, 5).unwrap();
    let acc = |name: &str, e: f64| {
        results
            .iter()
            .find(|r| r.name == name && r.eps == e)
            .unwrap()
            .accuracy()
    };
    let (fg, pg, ap) = (acc("fgsm", eps), acc("pgd", eps), acc("apgd_ce", eps));
    eprintln!(
        "clean {clean:.3} fgsm {fg:.3} pgd {pg:.3} apgd-ce {ap:.3} apgd-dlr {:.3} square {:.3}",
        acc("apgd_dlr", eps),
        acc("square", eps)
    );
    assert!(fg < clean, "FGSM does something ({fg} vs clean {clean})");
    assert!(
        pg <= fg,
        "PGD-20 ({pg}) is at least as strong as FGSM ({fg})"
    );
    assert!(
        ap <= fg,
        "APGD-CE ({ap}) is at least as strong as FGSM ({fg})"
    );
    assert!(acc("fgsm", 0.05) >= fg, "a smaller eps is weaker");
    // The worst case: per norm and eps, an example is robust only if it survives every attack.
    let worst = worst_cases(&results);
    assert_eq!(worst.len(), 3, "Linf 0.15, Linf 0.05, L2 1.0");
    for w in &worst {
        for r in results
            .iter()
            .filter(|r| r.norm == w.norm && r.eps == w.eps)
        {
            assert!(
                w.accuracy() <= r.accuracy(),
                "worst case {} above {}",
                w.accuracy(),
                r.name
            );
            assert!(w.robust.iter().zip(&r.robust).all(|(a, b)| !a || *b));
        }
    }
    assert_eq!(
        worst[0].attacks,
        vec!["fgsm", "pgd", "apgd_ce", "apgd_dlr", "square"]
    );
    // The rows: one per attack, then the worst cases; the same seed gives the same rows.
    let exp = experiment(
        &run,
        attacks.clone(),
        vec![MetricSpec::CleanAccuracy, MetricSpec::RobustAccuracy],
    );
    let rows = robustness_rows(&mut net, &exp, &test, &run).unwrap();
    assert_eq!(rows.len(), attacks.len() + 3);
    assert!(rows
        .iter()
        .all(|r| r.metric == "robust_accuracy" && r.run == run.id && r.eps.is_some()));
    let names: Vec<&str> = rows.iter().map(|r| r.attack.as_deref().unwrap()).collect();
    assert_eq!(
        &names[attacks.len()..],
        &["worst_case", "worst_case", "worst_case_l2"]
    );
    assert_eq!(rows[attacks.len()].value, worst[0].accuracy());
    assert_eq!(
        rows,
        robustness_rows(&mut net, &exp, &test, &run).unwrap(),
        "deterministic"
    );
    // No rows unless robust_accuracy is asked for.
    let exp = experiment(&run, attacks, vec![MetricSpec::CleanAccuracy]);
    assert!(robustness_rows(&mut net, &exp, &test, &run)
        .unwrap()
        .is_empty());
}

#[test]
fn dlr_loss_matches_hand_computed_values_and_gradients() {
    // z = (1, 3, 2, 0.5), y = 0: rival 3, pi1 = 3, pi3 = 1: -(1 - 3) / (3 - 1) = 1.
    assert!((dlr(&[1.0, 3.0, 2.0, 0.5], 0) - 1.0).abs() < 1e-9);
    // y = 1 is the top class: -(3 - 2) / (3 - 1) = -0.5.
    assert!((dlr(&[1.0, 3.0, 2.0, 0.5], 1) + 0.5).abs() < 1e-9);
    // z = (2, 3, 1, 0.5), y = 0: -(2 - 3) / (3 - 1) = 0.5.
    assert!((dlr(&[2.0, 3.0, 1.0, 0.5], 0) - 0.5).abs() < 1e-9);
    // The device version on a batch, and its gradient. For z = (2, 3, 1, 0.5), y = 0, DLR =
    // (z1 - z0) / (z1 - z2): d/dz0 = -1 / (z1 - z2) = -0.5, d/dz1 = (z0 - z2) / (z1 - z2)^2 =
    // 0.25, d/dz2 = (z1 - z0) / (z1 - z2)^2 = 0.25, d/dz3 = 0. For row 2, z = (0, -1, 4, 2),
    // y = 2 (top), pi = (2, 3, 0, 1): DLR = -(z2 - z3) / (z2 - z0) = -2 / 4 = -0.5; d/dz0 =
    // -(z2 - z3) / (z2 - z0)^2 = -0.125, d/dz2 = -(z3 - z0) / (z2 - z0)^2 = -0.125, d/dz3 =
    // 1 / (z2 - z0) = 0.25, d/dz1 = 0. (DLR is shift-invariant: each gradient row sums to 0.)
    let z: Mat = dev().tensor_from_vec(vec![2.0, 3.0, 1.0, 0.5, 0.0, -1.0, 4.0, 2.0], (2, 4));
    let l = dlr_rows(z.clone().traced(Gradients::leaky()), &[0, 2]);
    assert_close(
        &l.retaped::<NoneTape>().as_vec(),
        &[0.5, -0.5],
        1e-6,
        "DLR values",
    );
    let g = l.sum().backward().get(&z).as_vec();
    assert_close(
        &g,
        &[-0.5, 0.25, 0.25, 0.0, -0.125, 0.0, -0.125, 0.25],
        1e-6,
        "DLR gradient",
    );
}

#[test]
fn apgd_checkpoints_are_the_papers() {
    // p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 for 100 iterations.
    assert_eq!(checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
    assert_eq!(checkpoints(1), vec![1]);
    assert_eq!(checkpoints(10), vec![2, 3, 4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn square_respects_its_query_budget_and_stops_broken_examples() {
    let mut net = tiny_cnn(4);
    let mut r = rng(9);
    let (b, n) = (16, 72);
    let x: Mat = dev().tensor_from_vec((0..b * n).map(|_| r.gen::<f32>()).collect(), (b, n));
    let labels = predictions(&mut net, &x);
    let dims = ImageDims::of(net.def().input);
    assert_eq!(dims, ImageDims { c: 2, h: 6, w: 6 });
    for norm in [Norm::Linf, Norm::L2] {
        // A tiny eps: nothing breaks, every example spends exactly its budget.
        let cfg = SquareConfig {
            norm,
            eps: 1e-4,
            queries: 25,
            p_init: 0.8,
        };
        let out = square(&mut net, &x, &labels, &cfg, dims, &mut rng(1));
        assert!(
            out.outcome.robust.iter().all(|&v| v),
            "{norm}: eps 1e-4 breaks nothing"
        );
        assert_eq!(out.queries, vec![25; b], "{norm}");
        // A large eps: broken examples stop early, none exceeds the budget.
        let eps = if norm == Norm::Linf { 0.5 } else { 4.0 };
        let cfg = SquareConfig {
            norm,
            eps,
            queries: 25,
            p_init: 0.8,
        };
        let out = square(&mut net, &x, &labels, &cfg, dims, &mut rng(1));
        let broken: Vec<usize> = (0..b).filter(|&i| !out.outcome.robust[i]).collect();
        assert!(!broken.is_empty(), "{norm}: eps {eps} breaks some examples");
        assert!(out.queries.iter().all(|&q| (1..=25).contains(&q)));
        assert!(
            broken.iter().any(|&i| out.queries[i] < 25),
            "{norm}: broken examples stop early"
        );
        for i in 0..b {
            if out.outcome.robust[i] {
                assert_eq!(out.queries[i], 25);
            }
        }
        let adv = predictions(&mut net, &out.outcome.x_adv);
        assert!(
            broken.iter().all(|&i| adv[i] != labels[i]),
            "{norm}: x_adv of broken examples is misclassified"
        );
    }
}

#[test]
fn square_p_schedule_is_the_authors() {
    assert_eq!(p_selection(0.8, 0, 10000), 0.8);
    assert_eq!(p_selection(0.8, 10, 10000), 0.8);
    assert_eq!(p_selection(0.8, 11, 10000), 0.4);
    assert_eq!(p_selection(0.8, 201, 10000), 0.1);
    assert_eq!(p_selection(0.8, 9999, 10000), 0.8 / 512.0);
    // Rescaled to a 1000-query budget: iteration 2 is iteration 20 of 10000.
    assert_eq!(p_selection(0.8, 2, 1000), 0.4);
}

#[test]
fn restarts_only_add_broken_examples() {
    let mut net = tiny_cnn(5);
    let mut r = rng(21);
    let (b, n) = (24, 72);
    let x: Mat = dev().tensor_from_vec((0..b * n).map(|_| r.gen::<f32>()).collect(), (b, n));
    let labels = predictions(&mut net, &x);
    let cfg = PgdConfig {
        norm: Norm::Linf,
        eps: 0.05,
        step_size: 0.002,
        steps: 1,
        random_start: true,
        loss: AttackLoss::Ce,
    };
    let one = pgd_restarts(&mut net, &x, &labels, &cfg, 1, &mut rng(2));
    let five = pgd_restarts(&mut net, &x, &labels, &cfg, 5, &mut rng(2));
    // The first restart is the same run; later ones can only break more examples.
    for i in 0..b {
        assert!(
            !five.robust[i] || one.robust[i],
            "row {i}: broken with 1 restart, robust with 5"
        );
    }
    let count = |o: &AttackOutcome<Dev>| o.robust_count();
    // With one tiny step, the random start does most of the work: restarts break more.
    assert!(
        count(&five) < count(&one),
        "5 restarts ({}) break more than 1 ({})",
        count(&five),
        count(&one)
    );
    eprintln!(
        "PGD robust with 1 restart: {}/{b}, with 5: {}/{b}",
        count(&one),
        count(&five)
    );
}

#[test]
fn attacks_are_deterministic_and_use_eval_mode() {
    // The CNN has dropout: in train mode two identical calls would draw different masks.
    let mut net = tiny_cnn(6);
    let mut r = rng(31);
    let (b, n) = (8, 72);
    let x: Mat = dev().tensor_from_vec((0..b * n).map(|_| r.gen::<f32>()).collect(), (b, n));
    let labels = predictions(&mut net, &x);
    for s in all_attacks(0.1, 1.0) {
        let a = attack_batch(&mut net, &s, &x, &labels, &mut rng(4)).unwrap();
        let c = attack_batch(&mut net, &s, &x, &labels, &mut rng(4)).unwrap();
        assert_eq!(a.robust, c.robust, "{}", s.name);
        assert_eq!(a.x_adv.as_vec(), c.x_adv.as_vec(), "{}", s.name);
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut net = tiny_cnn(0);
    let x: Mat = dev().tensor_from_vec(vec![0.5; 2 * 72], (2, 72));
    let fg = spec("fgsm", Attack::Fgsm { eps: 0.1 });
    let e = attack_batch(&mut net, &fg, &x, &[0], &mut rng(0)).unwrap_err();
    assert!(e.0.contains("1 labels for a batch of 2"), "{e}");
    let e = attack_batch(&mut net, &fg, &x, &[0, 7], &mut rng(0)).unwrap_err();
    assert!(e.0.contains("label 7 is out of range for 4 classes"), "{e}");
    let wrong: Mat = dev().tensor_from_vec(vec![0.5; 2 * 10], (2, 10));
    let e = attack_batch(&mut net, &fg, &wrong, &[0, 1], &mut rng(0)).unwrap_err();
    assert!(
        e.0.contains("10 features per example but the model `cnn` takes 72"),
        "{e}"
    );
    let e = attack_batch(
        &mut net,
        &spec("fgsm", Attack::Fgsm { eps: -0.1 }),
        &x,
        &[0, 1],
        &mut rng(0),
    )
    .unwrap_err();
    assert!(e.0.contains("eps must be"), "{e}");
    let sq = spec(
        "square",
        Attack::Square {
            norm: Norm::Linf,
            eps: 0.1,
            queries: 10,
            p_init: 0.0,
        },
    );
    assert!(attack_batch(&mut net, &sq, &x, &[0, 1], &mut rng(0))
        .unwrap_err()
        .0
        .contains("p_init"));
    let pg = pgd_spec(Norm::Linf, 0.1, 0.01, 0, true, 1);
    assert!(attack_batch(&mut net, &pg, &x, &[0, 1], &mut rng(0))
        .unwrap_err()
        .0
        .contains("steps"));
    // DLR divides by z_pi1 - z_pi3: a two-class model is refused.
    let mut bin = binary(0.0);
    let xb: Mat = dev().tensor_from_vec(image(), (1, 16));
    let dl = spec(
        "apgd_dlr",
        Attack::Apgd {
            norm: Norm::Linf,
            eps: 0.1,
            loss: ApgdLoss::Dlr,
            steps: 5,
            restarts: 1,
        },
    );
    let e = attack_batch(&mut bin.net, &dl, &xb, &[0], &mut rng(0)).unwrap_err();
    assert!(e.0.contains("at least 3 classes"), "{e}");
    // An empty batch is fine.
    let empty: Mat = dev().tensor_from_vec(vec![], (0, 72));
    assert!(attack_batch(&mut net, &fg, &empty, &[], &mut rng(0))
        .unwrap()
        .robust
        .is_empty());
}

#[test]
fn correct_rows_uses_the_first_maximum() {
    assert_eq!(
        correct_rows(&[1.0, 1.0, 0.0, 2.0, 0.0, 2.0], 3, &[0, 2]),
        vec![true, false]
    );
}

#[test]
fn working_sets_are_padded_to_few_sizes() {
    // dfdx caches freed buffers per exact size: shrinking working sets are padded to powers of
    // two (at most the batch), so an evaluation allocates few distinct sizes.
    assert_eq!(bucket(0, 500), 0);
    assert_eq!(bucket(1, 500), 1);
    assert_eq!(bucket(3, 500), 4);
    assert_eq!(bucket(200, 500), 256);
    assert_eq!(bucket(300, 500), 500);
    let sizes: std::collections::BTreeSet<usize> = (1..=500).map(|m| bucket(m, 500)).collect();
    assert_eq!(
        sizes.into_iter().collect::<Vec<_>>(),
        vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 500]
    );
    assert_eq!(padded(&[4, 9], 4), vec![4, 9, 4, 4]);
    assert_eq!(padded(&[4, 9], 2), vec![4, 9]);
}

// ---------------------------------------------------------------------------------------------
// APGD-T, AutoAttack and minimum-norm attacks through the spec (issue #12)
// ---------------------------------------------------------------------------------------------

#[test]
fn targeted_dlr_matches_the_hand_computed_value_and_its_rows() {
    use salient_engine::attack::apgd::{dlr_targeted, dlr_targeted_rows};
    // z = (2, 3, 1, 0.5, 0), y = 0, t = 2: -(2 - 1) / (3 - (1 + 0.5) / 2) = -1 / 2.25.
    let z = [2.0f32, 3.0, 1.0, 0.5, 0.0];
    assert!((dlr_targeted(&z, 0, 2) - (-1.0 / 2.25)).abs() < 1e-9);
    let zt: Mat = dev().tensor_from_vec(z.to_vec(), (1, 5));
    let rows = dlr_targeted_rows(zt.retaped::<NoneTape>(), &[0], &[2]).as_vec();
    assert!((rows[0] as f64 - (-1.0 / 2.25)).abs() < 1e-6, "{rows:?}");
}

/// A 4-class linear model on interior pixels (x = 0.5, eps < 0.5: the box never binds): the
/// smallest Linf perturbation that misclassifies x is d = min_k (z_y - z_k) / ||w_y - w_k||_1.
fn four_class_linear() -> (Network<Dev>, Vec<f32>, f64) {
    let mut r = rng(11);
    let w: Vec<f32> = (0..16 * 4).map(|_| r.gen_range(-1.0f32..1.0)).collect();
    let x = vec![0.5f32; 16];
    // Biases making class 0 the prediction with a margin.
    let z: Vec<f32> = (0..4)
        .map(|k| (0..16).map(|i| w[i * 4 + k] * x[i]).sum())
        .collect();
    let b = vec![1.2 - z[0], 0.4 - z[1], 0.0 - z[2], -0.5 - z[3]];
    let net = linear_net(&w, &b);
    let d = (1..4)
        .map(|k| {
            let margin = (z[0] + b[0] - z[k] - b[k]) as f64;
            let l1: f64 = (0..16)
                .map(|i| (w[i * 4] - w[i * 4 + k]).abs() as f64)
                .sum();
            margin / l1
        })
        .fold(f64::INFINITY, f64::min);
    (net, x, d)
}

#[test]
fn apgd_t_and_autoattack_break_a_linear_model_exactly_beyond_its_minimal_distance() {
    let (mut net, x, d) = four_class_linear();
    assert!(d < 0.4, "the test needs the box not to bind, d = {d}");
    let xt: Mat = dev().tensor_from_vec(x.clone(), (1, 16));
    for (factor, broken) in [(1.05, true), (0.95, false)] {
        let eps = d * factor;
        let attacks = [
            spec(
                "apgd_t",
                Attack::ApgdT {
                    norm: Norm::Linf,
                    eps,
                    steps: 50,
                    restarts: 1,
                    targets: 3,
                },
            ),
            spec(
                "autoattack",
                Attack::AutoAttack {
                    norm: Norm::Linf,
                    eps,
                    version: AutoAttackVersion::Standard,
                    components: AutoAttackVersion::Standard.components(),
                },
            ),
        ];
        for a in &attacks {
            let out = attack_batch(&mut net, a, &xt, &[0], &mut rng(3)).unwrap();
            assert_eq!(out.robust, vec![!broken], "{} at {factor} d", a.name);
            let (linf, _) = norms(&xt, &out.x_adv)[0];
            assert!(linf <= eps as f32 + TOL, "{}: {linf} > {eps}", a.name);
            if broken {
                assert_ne!(predictions(&mut net, &out.x_adv)[0], 0);
                if a.name == "autoattack" {
                    assert!(out.broken_by[0].is_some(), "{:?}", out.broken_by);
                }
            } else {
                assert_eq!(out.broken_by, vec![None]);
            }
        }
    }
}

#[test]
fn autoattack_components_attack_only_what_earlier_ones_left_and_rows_add_up() {
    let (mut net, test, _run) = trained_model();
    let n = 48;
    let eps = 0.2;
    let aa = spec(
        "aa",
        Attack::AutoAttack {
            norm: Norm::Linf,
            eps,
            version: AutoAttackVersion::Custom,
            components: vec![
                AutoAttackComponent::ApgdCe,
                AutoAttackComponent::ApgdDlr,
                AutoAttackComponent::Square,
            ],
        },
    );
    let clean = spec("clean", Attack::Fgsm { eps: 0.0 });
    let res = evaluate_attacks(&mut net, &[clean, aa], &test, n, 16, 7).unwrap();
    let (clean, aa) = (&res[0], &res[1]);
    assert_eq!(aa.components, vec!["apgd-ce", "apgd-dlr", "square"]);
    for i in 0..n {
        // Broken by exactly one component iff correct without attack and not robust.
        assert_eq!(
            aa.broken_by[i].is_some(),
            clean.robust[i] && !aa.robust[i],
            "example {i}"
        );
        assert!(!aa.robust[i] || clean.robust[i]);
    }
    let broken: usize = aa.broken_by.iter().filter(|b| b.is_some()).count();
    let clean_n = clean.robust.iter().filter(|&&r| r).count();
    let robust_n = aa.robust.iter().filter(|&&r| r).count();
    assert_eq!(clean_n, broken + robust_n);
    assert!(
        broken > 0,
        "eps {eps} should break some examples of a small MLP"
    );
    // The same spec twice gives the same outcome (seeded per attack).
    let again = evaluate_attacks(&mut net, &res_specs(eps), &test, n, 16, 7).unwrap();
    assert_eq!(again[1].robust, aa.robust);
    assert_eq!(again[1].broken_by, aa.broken_by);
}

fn res_specs(eps: f64) -> Vec<AttackSpec> {
    vec![
        spec("clean", Attack::Fgsm { eps: 0.0 }),
        spec(
            "aa",
            Attack::AutoAttack {
                norm: Norm::Linf,
                eps,
                version: AutoAttackVersion::Custom,
                components: vec![
                    AutoAttackComponent::ApgdCe,
                    AutoAttackComponent::ApgdDlr,
                    AutoAttackComponent::Square,
                ],
            },
        ),
    ]
}

#[test]
fn a_minimum_norm_attack_gives_one_result_per_curve_point_from_one_run() {
    let (mut net, test, _run) = trained_model();
    let n = 32;
    let curve = vec![0.05, 0.2, 0.5, 2.0];
    let df = spec(
        "deepfool",
        Attack::DeepFool {
            norm: Norm::L2,
            steps: 50,
            overshoot: 0.02,
            candidates: 3,
            curve: curve.clone(),
        },
    );
    let res = evaluate_attacks(&mut net, &[df], &test, n, 16, 7).unwrap();
    assert_eq!(res.len(), curve.len());
    let norms = res[0].min_norms.clone().unwrap();
    for (r, &eps) in res.iter().zip(&curve) {
        assert_eq!(r.eps, eps);
        assert_eq!(r.norm, Norm::L2);
        let want: Vec<bool> = norms.iter().map(|&d| d as f64 > eps).collect();
        assert_eq!(r.robust, want);
    }
    // Robust accuracy never rises with eps.
    for w in res.windows(2) {
        assert!(w[1].accuracy() <= w[0].accuracy());
    }
    // Worst cases at the curve's points are the curve itself (only one attack).
    let wc = worst_cases(&res);
    assert_eq!(wc.len(), curve.len());
    assert_eq!(wc[1].robust, res[1].robust);
}

#[test]
fn bad_settings_of_the_new_attacks_are_errors_naming_the_attack() {
    let (mut net, test, _run) = trained_model();
    // The trained model has 3 classes: APGD-T needs 4.
    let t = spec(
        "apgd_t",
        Attack::ApgdT {
            norm: Norm::Linf,
            eps: 0.1,
            steps: 10,
            restarts: 1,
            targets: 2,
        },
    );
    let err = evaluate_attacks(&mut net, &[t], &test, 8, 8, 0).unwrap_err();
    assert!(
        err.0.contains("apgd_t") && err.0.contains("4 classes"),
        "{err}"
    );
    let aa = spec(
        "aa",
        Attack::AutoAttack {
            norm: Norm::Linf,
            eps: 0.1,
            version: AutoAttackVersion::Standard,
            components: AutoAttackVersion::Standard.components(),
        },
    );
    let err = evaluate_attacks(&mut net, &[aa], &test, 8, 8, 0).unwrap_err();
    assert!(err.0.contains("aa") && err.0.contains("apgd-t"), "{err}");
}
