//! Every regime trains: a tiny network on the synthetic dataset, a few dozen Adam steps, and the
//! regime's own loss on a fixed batch (same step seed before and after) must drop clearly.
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_engine::losses::one_hot;
use salient_engine::regime::{self, StepContext, Targets};
use salient_ir::{
    AdversarialParams, CombinedParams, DataKind, DataSpec, Fill, ImageShape, InnerLoss, Layer,
    LpDualMode, LpDualParams, Noise, Norm, Optimizer as OptIr, Regime, RegimeInstance,
    SaliencySign, SensitivityParams, SgtParams, TrainAttack, TrainAttackMethod,
};
use salient_nn::layers::infer::model_def;
use salient_nn::{optim, Network};

const STEPS: usize = 80;
const BATCH: usize = 32;

fn data() -> salient_data::Splits {
    let spec = DataSpec {
        kind: DataKind::Synthetic {
            train: 192,
            test: 32,
            noise: 0.2,
            seed: 7,
        },
        dir: String::new(),
        train: None,
        test: None,
        mean: vec![0.0],
        std: vec![1.0],
        shape: ImageShape { c: 1, h: 8, w: 8 },
        classes: 3,
    };
    salient_data::load(&spec).unwrap()
}

fn attack(eps: f64, steps: usize, random_start: bool) -> TrainAttack {
    let method = if steps == 1 {
        TrainAttackMethod::Fgsm
    } else {
        TrainAttackMethod::Pgd
    };
    let step_size = if steps == 1 {
        1.25 * eps
    } else {
        2.5 * eps / steps as f64
    };
    TrainAttack {
        method,
        norm: Norm::Linf,
        eps,
        step_size,
        steps,
        random_start,
        warmup: 0.0,
    }
}

fn sgt() -> SgtParams {
    SgtParams {
        k: 0.5,
        saliency: SaliencySign::Signed,
        fill: Fill::Random,
        lambda: 1.0,
    }
}

/// (name, regime) for every regime kind and the main variants.
fn regimes() -> Vec<(&'static str, Regime)> {
    let adv = |attack, loss, trades_beta, mix| {
        Regime::Adversarial(AdversarialParams {
            attack,
            loss,
            trades_beta,
            mix,
        })
    };
    let lp = |mode, steps: usize| {
        Regime::LpDual(LpDualParams {
            mode,
            steps,
            step_fraction: 2.5 / steps as f64,
        })
    };
    let sens = |noise, adversarial| {
        Regime::Sensitivity(SensitivityParams {
            layers: vec!["relu1".into(), "dense2".into()],
            noise,
            sigma: 0.05,
            lambda: 1.0,
            adversarial,
        })
    };
    vec![
        ("standard", Regime::Standard),
        ("sgt", Regime::Sgt(sgt())),
        (
            "pgd_at",
            adv(attack(0.05, 3, true), InnerLoss::Ce, None, 0.0),
        ),
        (
            "fgsm_rs",
            adv(attack(0.05, 1, true), InnerLoss::Ce, None, 0.0),
        ),
        (
            "pgd_cw_mix",
            adv(attack(0.05, 3, false), InnerLoss::CwMargin, None, 0.5),
        ),
        (
            "trades",
            adv(attack(0.05, 3, false), InnerLoss::Ce, Some(3.0), 0.0),
        ),
        (
            "combined",
            Regime::Combined(CombinedParams {
                sgt: sgt(),
                attack: attack(0.05, 3, true),
                clean_weight: 1.0,
                adv_weight: 1.0,
            }),
        ),
        ("lp_l1", lp(LpDualMode::L1Box { eps: 0.05 }, 1)),
        (
            "lp_elastic",
            lp(
                LpDualMode::ElasticNet {
                    eps1: 0.03,
                    eps2: 0.05,
                },
                3,
            ),
        ),
        (
            "lp_group",
            lp(
                LpDualMode::Group {
                    eps: 0.15,
                    group: 3,
                },
                3,
            ),
        ),
        ("sens_gauss", sens(Noise::Gaussian, false)),
        ("sens_unif_adv", sens(Noise::Uniform, true)),
    ]
}

#[test]
fn every_regime_lowers_its_loss_on_synthetic_data() {
    let splits = data();
    let dev = Cpu::default();
    let def = model_def(
        "mlp",
        salient_ir::Shape::Image { c: 1, h: 8, w: 8 },
        vec![
            Layer::Flatten,
            Layer::Dense { out: 16 },
            Layer::Relu,
            Layer::Dense { out: 3 },
        ],
    )
    .unwrap();
    let mean = splits.train.channel_mean();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let probe: Vec<usize> = (0..BATCH).collect();
    splits.train.gather(&probe, &mut xs, &mut ys);
    let (px, py) = (
        dev.tensor_from_vec(xs.clone(), (BATCH, 64)),
        Targets {
            onehot: one_hot(&dev, &ys, 3),
            labels: ys.clone(),
        },
    );
    let mut report = Vec::new();
    for (name, r) in regimes() {
        let inst = RegimeInstance {
            name: name.into(),
            label: name.into(),
            regime: r,
        };
        let mut reg = regime::build::<Cpu>(&inst, &mean, &def).unwrap();
        let mut net = Network::new(&def, &[0.0], &[1.0], 1, &dev).unwrap();
        let mut opt = optim::build::<Cpu>(
            &OptIr::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            0.0,
        );
        let probe_loss = |net: &mut Network<Cpu>, reg: &mut Box<dyn regime::Regime<Cpu>>| {
            let mut ctx = StepContext {
                rng: ChaCha8Rng::seed_from_u64(99),
                epoch: 0,
                step: 0,
                steps_per_epoch: 1,
            };
            reg.step(net, &px, &py, &mut ctx)
                .loss
                .retaped::<NoneTape>()
                .as_vec()[0]
        };
        let before = probe_loss(&mut net, &mut reg);
        let mut ctx = StepContext {
            rng: ChaCha8Rng::seed_from_u64(1),
            epoch: 0,
            step: 0,
            steps_per_epoch: 1,
        };
        let n = splits.train.len();
        for step in 0..STEPS {
            let idx: Vec<usize> = (0..BATCH).map(|i| (step * BATCH + i) % n).collect();
            splits.train.gather(&idx, &mut xs, &mut ys);
            let x = dev.tensor_from_vec(xs.clone(), (BATCH, 64));
            let y = Targets {
                onehot: one_hot(&dev, &ys, 3),
                labels: ys.clone(),
            };
            ctx.step = step;
            let out = reg.step(&mut net, &x, &y, &mut ctx);
            let value = out.loss.retaped::<NoneTape>().as_vec()[0];
            assert!(value.is_finite(), "{name}: loss {value} at step {step}");
            let grads = out.loss.backward();
            opt.step(net.params_mut(), &grads, 1e-2).unwrap();
        }
        let after = probe_loss(&mut net, &mut reg);
        report.push((name, before, after));
    }
    for (name, before, after) in &report {
        println!(
            "{name}: {before:.4} -> {after:.4} ({:.0}%)",
            100.0 * after / before
        );
    }
    for (name, before, after) in report {
        assert!(
            after < 0.7 * before,
            "{name}: the loss went from {before} to {after}"
        );
    }
}

/// The new regimes run end to end from a checked spec (checker names, defaults, runner).
#[test]
fn combined_lp_dual_and_sensitivity_run_from_a_spec() {
    let src = r#"
experiment regimes_e2e
data synthetic { shape = (1, 8, 8)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net {
  conv(out = 4, kernel = 3, padding = 1)
  relu
  maxpool(size = 2)
  flatten
  dropout(p = 0.1)
  dense(out = 3)
}
train { optimizer = adam  lr = 1e-2  epochs = 1  batch = 32  seed = 0 }
regime combined { k = 0.5  attack = pgd(eps = 0.05, steps = 2) }
regime lp_dual as l1 { mode = l1_box(eps = 0.05) }
regime lp_dual as elastic { mode = elastic_net(eps1 = 0.03, eps2 = 0.05)  steps = 3 }
regime lp_dual as group { mode = group(eps = 0.2, size = 3)  steps = 2 }
regime sensitivity { layers = (relu1, dense1)  adversarial = [false, true] }
"#;
    let checked = salient_lang::check("e2e.exp", src);
    let msgs: Vec<String> = checked
        .diagnostics
        .iter()
        .map(|d| d.message.clone())
        .collect();
    let exp = checked
        .experiment
        .unwrap_or_else(|| panic!("spec does not check: {msgs:?}"));
    let dir = tempfile::tempdir().unwrap();
    let opts = salient_engine::RunOptions {
        out_dir: dir.path().to_path_buf(),
        device: salient_engine::DeviceKind::Cpu,
        quiet: true,
        retrain: false,
        only: Vec::new(),
        interrupt: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let report = salient_engine::run(&exp, src, &opts).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.trained.len(), 6, "{:?}", report.trained);
    assert!(
        !report.not_run.iter().any(|s| s.contains("regimes")),
        "{:?}",
        report.not_run
    );
}
