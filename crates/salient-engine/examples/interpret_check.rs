//! Measure every saliency method and metric on a real model: the quickstart CNN on MNIST,
//! trained 1 epoch with the standard regime, then `interpret_rows` once per method.
//!
//!   cargo run -p salient-engine --example interpret_check [-- SPEC [SAMPLES [METHODS]]]
//!
//! SPEC defaults to `specs/quickstart.exp` (run from the workspace root), SAMPLES (test
//! examples for the metrics) to 200, METHODS (comma-separated names from the list below) to
//! all of them. Prints every row and the wall time per method; maps go
//! to `target/interpret_check/maps`.
use dfdx::prelude::*;
use salient_engine::interpret::interpret_rows;
use salient_engine::progress::RunProgress;
use salient_engine::train::{self, TrainInputs};
use salient_engine::{eval, regime};
use salient_ir::{
    Baseline, Fill, MetricSpec, Regime, SaliencyMethod, SaliencySign, SaliencySpec,
    SmoothGradVariant,
};
use salient_nn::Network;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let spec = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "specs/quickstart.exp".into());
    let samples: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let only: Option<Vec<String>> = args
        .get(3)
        .map(|s| s.split(',').map(str::to_string).collect());
    let text = std::fs::read_to_string(&spec)?;
    let out = salient_lang::check(&spec, &text);
    let Some(mut exp) = out.experiment else {
        return Err(format!(
            "{spec} does not check: {:?}",
            out.diagnostics
                .iter()
                .map(|d| &d.message)
                .collect::<Vec<_>>()
        )
        .into());
    };
    let mut run = exp
        .runs
        .iter()
        .find(|r| r.regime.regime == Regime::Standard)
        .ok_or("the spec has no standard run")?
        .clone();
    run.train.epochs = 1;
    let model = exp.model(&run.model).ok_or("model not found")?.clone();
    let data = salient_data::load(&exp.data)?;
    println!(
        "data: {} train / {} test, model `{}` ({} parameters)",
        data.train.len(),
        data.test.len(),
        model.name,
        model.params
    );

    let dev = Cpu::seed_from_u64(run.train.seed);
    dev.try_enable_cache().map_err(|e| format!("{e:?}"))?;
    let mut net = Network::new(&model, &exp.data.mean, &exp.data.std, run.train.seed, &dev)?;
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let inputs = TrainInputs {
        run: &run,
        train: &data.train,
        test: &data.test,
        eval_batch: exp.eval.batch,
        interrupt: &stop,
    };
    train::train(
        &mut net,
        &mut regime::Standard,
        &inputs,
        &RunProgress::new(&run.id, true),
    )?;
    let acc = eval::accuracy(&mut net, &data.test, exp.eval.batch);
    println!(
        "trained 1 epoch in {:.1} s, clean test accuracy {:.4}",
        started.elapsed().as_secs_f64(),
        acc.value()
    );

    exp.eval.saliency_samples = samples;
    exp.eval.batch = 100;
    exp.report.images = 8;
    exp.metrics = vec![
        MetricSpec::Sparseness,
        MetricSpec::Complexity,
        MetricSpec::Deletion { steps: 10 },
        MetricSpec::Insertion { steps: 10 },
        MetricSpec::MaskingCurve {
            percents: (0..10).map(|p| p * 10).collect(),
            fill: Fill::Constant(0.0),
        },
        MetricSpec::MaxSensitivity {
            radius: 0.1,
            samples: 10,
        },
        MetricSpec::Randomization,
        MetricSpec::Alignment,
    ];
    let methods = vec![
        (
            "gradient_abs",
            SaliencyMethod::Gradient {
                sign: SaliencySign::Absolute,
            },
        ),
        ("gradient_input", SaliencyMethod::GradientInput),
        (
            "integrated_gradients",
            SaliencyMethod::IntegratedGradients {
                steps: 32,
                baseline: Baseline::Zero,
            },
        ),
        (
            "smoothgrad",
            SaliencyMethod::SmoothGrad {
                samples: 25,
                sigma: 0.15,
                variant: SmoothGradVariant::Mean,
            },
        ),
        (
            "smoothgrad_sq",
            SaliencyMethod::SmoothGrad {
                samples: 25,
                sigma: 0.15,
                variant: SmoothGradVariant::Squared,
            },
        ),
        (
            "vargrad",
            SaliencyMethod::SmoothGrad {
                samples: 25,
                sigma: 0.15,
                variant: SmoothGradVariant::VarGrad,
            },
        ),
    ];
    let maps = std::path::Path::new("target/interpret_check/maps");
    println!(
        "{samples} test examples, metrics: {}",
        exp.metrics
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, method) in methods {
        if only.as_ref().is_some_and(|o| !o.iter().any(|m| m == name)) {
            continue;
        }
        let mut one = exp.clone();
        one.saliency = vec![SaliencySpec {
            name: name.into(),
            method,
        }];
        let started = Instant::now();
        let rows = interpret_rows(&mut net, &one, &data, &run, maps)?;
        let total = started.elapsed().as_secs_f64();
        let maps_s = rows
            .iter()
            .find(|r| r.metric == "saliency_seconds")
            .map(|r| r.value)
            .unwrap_or(0.0);
        println!(
            "\n== {name}: maps {maps_s:.2} s ({:.2} ms/example), maps + all metrics {total:.1} s",
            1e3 * maps_s / samples as f64
        );
        for r in rows.iter().filter(|r| r.metric != "saliency_seconds") {
            match r.point {
                Some(p) => println!("  {:<22} {:>6} {:.4}", r.metric, format!("{p}"), r.value),
                None => println!("  {:<22} {:>6} {:.4}", r.metric, "", r.value),
            }
        }
    }
    Ok(())
}
