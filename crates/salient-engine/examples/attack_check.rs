//! Sanity check of the evaluation attacks on a real model: the quickstart CNN trained for one
//! epoch on MNIST (standard training, Adam 1e-3, batch 128), then clean accuracy, FGSM, PGD-40,
//! APGD-CE, APGD-DLR and Square (Linf, eps 0.3 by default) and their per-example worst case on the first
//! test examples.
//!
//!   cargo run -p salient-engine --example attack_check -- [TRAIN_EXAMPLES] [TEST_EXAMPLES] [SQUARE_QUERIES] [EPS]
//!
//! Defaults: 60000 training examples, 500 test examples, 1000 queries, eps 0.3. Expected for a standard
//! model: PGD-40 below 2%, FGSM weaker than PGD, Square no stronger than PGD.
use dfdx::prelude::*;
use salient_engine::progress::RunProgress;
use salient_engine::regime::Standard;
use salient_engine::robustness::{evaluate_attacks, worst_cases};
use salient_engine::train::{train, TrainInputs};
use salient_ir::{
    ApgdLoss, Attack, AttackSpec, DataKind, DataSpec, ImageShape, Layer, Norm, Optimizer as Opt,
    Regime, RegimeInstance, Schedule, Shape as IrShape, TrainConfig, TrainRun,
};
use salient_nn::layers::infer::model_def;
use salient_nn::Network;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (n_train, n_test, queries) = (arg(1, 60000), arg(2, 500), arg(3, 1000));
    let data = DataSpec {
        kind: DataKind::Mnist,
        dir: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/mnist")
            .to_string_lossy()
            .into_owned(),
        train: Some(n_train),
        test: Some(n_test),
        mean: vec![0.1307],
        std: vec![0.3081],
        shape: ImageShape { c: 1, h: 28, w: 28 },
        classes: 10,
    };
    let splits = salient_data::load(&data).unwrap_or_else(|e| panic!("cannot load MNIST: {e}"));
    let def = model_def(
        "cnn",
        IrShape::Image { c: 1, h: 28, w: 28 },
        vec![
            Layer::Conv {
                out: 16,
                kernel: 5,
                stride: 1,
                padding: 2,
            },
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2 },
            Layer::Conv {
                out: 32,
                kernel: 5,
                stride: 1,
                padding: 2,
            },
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2 },
            Layer::Flatten,
            Layer::Dense { out: 128 },
            Layer::Relu,
            Layer::Dense { out: 10 },
        ],
    )
    .expect("the quickstart CNN is valid");
    let dev = Cpu::seed_from_u64(0);
    dev.try_enable_cache().ok();
    let mut net = Network::new(&def, &data.mean, &data.std, 0, &dev).expect("network");
    let run = TrainRun {
        id: "cnn-standard-seed0".into(),
        model: "cnn".into(),
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
            lr: 1e-3,
            schedule: Schedule::Constant,
            weight_decay: 0.0,
            epochs: 1,
            batch: 128,
            seed: 0,
        },
    };
    let stop = AtomicBool::new(false);
    let inputs = TrainInputs {
        run: &run,
        train: &splits.train,
        test: &splits.test,
        eval_batch: 500,
        interrupt: &stop,
    };
    let started = Instant::now();
    let log = train(
        &mut net,
        &mut Standard,
        &inputs,
        &RunProgress::new(&run.id, true),
    )
    .expect("training");
    println!(
        "trained 1 epoch on {n_train} examples in {:.1} s; clean test accuracy on {n_test}: {:.4}",
        started.elapsed().as_secs_f64(),
        log[0].test_accuracy
    );
    let eps = std::env::args()
        .nth(4)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0.3);
    let attacks = vec![
        AttackSpec {
            name: "fgsm".into(),
            attack: Attack::Fgsm { eps },
        },
        AttackSpec {
            name: "pgd40".into(),
            attack: Attack::Pgd {
                norm: Norm::Linf,
                eps,
                step_size: 0.01,
                steps: 40,
                random_start: true,
                restarts: 1,
            },
        },
        AttackSpec {
            name: "apgd_ce".into(),
            attack: Attack::Apgd {
                norm: Norm::Linf,
                eps,
                loss: ApgdLoss::Ce,
                steps: 100,
                restarts: 1,
            },
        },
        AttackSpec {
            name: "apgd_dlr".into(),
            attack: Attack::Apgd {
                norm: Norm::Linf,
                eps,
                loss: ApgdLoss::Dlr,
                steps: 100,
                restarts: 1,
            },
        },
        AttackSpec {
            name: "square".into(),
            attack: Attack::Square {
                norm: Norm::Linf,
                eps,
                queries,
                p_init: 0.8,
            },
        },
    ];
    let mut results = Vec::new();
    for spec in &attacks {
        let t = Instant::now();
        let r = evaluate_attacks(
            &mut net,
            std::slice::from_ref(spec),
            &splits.test,
            n_test,
            500,
            0,
        )
        .expect("attack");
        println!(
            "{:>9} eps {eps}: robust accuracy {:.4}  ({:.1} s)",
            spec.name,
            r[0].accuracy(),
            t.elapsed().as_secs_f64()
        );
        results.extend(r);
    }
    for w in worst_cases(&results) {
        println!(
            "{:>9} eps {}: robust accuracy {:.4}  (over {})",
            w.name(),
            w.eps,
            w.accuracy(),
            w.attacks.join(", ")
        );
    }
}
