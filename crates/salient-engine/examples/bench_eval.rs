//! Evaluation throughput of the engine on real MNIST test images, for comparison with PyTorch
//! (`bench/torch_eval.py`; harness `bench/run_eval.sh`, issue #5 item 5).
//!
//! ```text
//! cargo run --release -p salient-engine --example bench_eval -- --task pgd|saliency
//!     [--images 1000] [--batch 500] [--warmup 1] [--weights PATH.safetensors]
//!     [--data data/mnist] [--steps 40] [--eps 0.3] [--step-size 0.01] [--deletion-steps 20]
//!     [--seed 0]
//! ```
//!
//! The network is the quickstart CNN (conv5x5-16 pad 2, relu, maxpool 2, conv5x5-32 pad 2, relu,
//! maxpool 2, flatten, dense 128, relu, dense 10; normalisation (x - 0.1307) / 0.3081 inside),
//! in eval mode, with the weights of `--weights` (a `model.safetensors` written by `salient run`)
//! or its own seeded initialisation. Everything is declared as a `.exp` spec (see [`spec_text`])
//! and checked by `salient_lang`, so the bench runs exactly what `salient run` would for it:
//!
//! - `--task pgd`: `attack pgd { norm = linf eps steps step_size random_start = true }`, run by
//!   [`salient_engine::robustness::evaluate_attacks`] as the runner does (only correctly
//!   classified examples are attacked, every iterate is checked, broken examples leave the
//!   batch). img/s = images attacked / wall time. Prints the robust accuracy
//!   (1/n) sum_i 1[f(x_adv_i) = y_i] next to the clean accuracy.
//! - `--task saliency`: `saliency gradient { sign = absolute }` (S = |d log p_y / dx|) with the
//!   metrics `sparseness` (Gini index of the pixel scores) and `deletion(steps = T)` (area under
//!   the curve of p_y while the top round(t P / T) pixels are set to 0), run by
//!   [`salient_engine::interpret::interpret_rows`] as the runner does. img/s = images / wall
//!   time of maps + metrics. Prints the mean Gini and the mean deletion AUC.
//!
//! Before the timed run, `--warmup` untimed runs of the same task on the first batch fill dfdx's
//! allocation cache. The clean accuracy is measured outside the timed region. Output: one JSON
//! line, e.g. `{"impl":"salient","task":"pgd","images":1000,"img_per_s":...}`.
use dfdx::prelude::*;
use salient_engine::{eval, interpret, robustness};
use salient_ir::Experiment;
use salient_nn::{checkpoint, Network};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    Pgd,
    Saliency,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Pgd => "pgd",
            Task::Saliency => "saliency",
        }
    }
}

struct Args {
    task: Task,
    images: usize,
    batch: usize,
    warmup: usize,
    weights: Option<PathBuf>,
    data: String,
    steps: usize,
    eps: f64,
    step_size: f64,
    deletion_steps: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut task = None;
    let mut a = Args {
        task: Task::Pgd,
        images: 1000,
        batch: 500,
        warmup: 1,
        weights: None,
        data: "data/mnist".into(),
        steps: 40,
        eps: 0.3,
        step_size: 0.01,
        deletion_steps: 20,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let whole = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: `{v}` is not a whole number"))
        };
        let real = |v: String| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("{flag}: `{v}` is not a positive number"))
        };
        match flag.as_str() {
            "--task" => {
                task = Some(match value()?.as_str() {
                    "pgd" => Task::Pgd,
                    "saliency" => Task::Saliency,
                    other => {
                        return Err(format!(
                            "--task: unknown task `{other}` (expected pgd or saliency)"
                        ))
                    }
                })
            }
            "--images" => a.images = whole(value()?)?,
            "--batch" => a.batch = whole(value()?)?,
            "--warmup" => a.warmup = whole(value()?)?,
            "--weights" => a.weights = Some(PathBuf::from(value()?)),
            "--data" => a.data = value()?,
            "--steps" => a.steps = whole(value()?)?,
            "--eps" => a.eps = real(value()?)?,
            "--step-size" => a.step_size = real(value()?)?,
            "--deletion-steps" => a.deletion_steps = whole(value()?)?,
            "--seed" => {
                let v = value()?;
                a.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: `{v}` is not a whole number"))?
            }
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    a.task = task.ok_or("--task pgd|saliency is required")?;
    if a.images == 0 || a.batch == 0 || a.steps == 0 || a.deletion_steps == 0 {
        return Err("--images, --batch, --steps and --deletion-steps must be positive".into());
    }
    if a.data.contains('"') {
        return Err("--data: the directory name may not contain `\"`".into());
    }
    Ok(a)
}

/// The quickstart CNN, as `specs/quickstart.exp` declares it.
const MODEL: &str = "model cnn {
  conv(out = 16, kernel = 5, padding = 2)
  relu
  maxpool(size = 2)
  conv(out = 32, kernel = 5, padding = 2)
  relu
  maxpool(size = 2)
  flatten
  dense(out = 128)
  relu
  dense(out = 10)
}";

/// The experiment the bench runs: the task's attack or saliency method and metrics on the first
/// `images` MNIST test images, `eval.batch = batch`, `eval.seed = seed`. `n` is the number of
/// images to evaluate (the whole set or, for the warm-up, the first batch).
fn spec_text(a: &Args, n: usize) -> String {
    let evaluation = match a.task {
        Task::Pgd => format!(
            "attack pgd {{ norm = linf  eps = {}  steps = {}  step_size = {}  random_start = true }}\n\
             metrics {{ robust_accuracy }}",
            a.eps, a.steps, a.step_size
        ),
        Task::Saliency => format!(
            "saliency gradient {{ sign = absolute }}\nmetrics {{ sparseness  deletion(steps = {}) }}",
            a.deletion_steps
        ),
    };
    format!(
        "experiment bench_eval\n\
         data mnist {{ dir = \"{dir}\"  train = 1  test = {images}  mean = (0.1307)  std = (0.3081) }}\n\
         {MODEL}\n\
         train {{ model = cnn  epochs = 1  batch = 1  seed = {seed} }}\n\
         regime standard\n\
         {evaluation}\n\
         eval {{ batch = {batch}  attack_samples = {n}  saliency_samples = {n}  seed = {seed} }}\n\
         report {{ images = 0 }}\n",
        dir = a.data,
        images = a.images,
        seed = a.seed,
        batch = a.batch,
    )
}

fn check_spec(text: &str) -> Result<Experiment, String> {
    let out = salient_lang::check("bench_eval.exp", text);
    match out.experiment {
        Some(exp) => Ok(exp),
        None => Err(salient_lang::render(
            "bench_eval.exp",
            text,
            &out.diagnostics,
            false,
        )),
    }
}

/// What one run of the task measured.
struct Measured {
    seconds: f64,
    /// (name, value) pairs for the JSON line.
    values: Vec<(&'static str, f64)>,
}

/// Times the experiment's evaluation: its attack through `robustness::evaluate_attacks` (what
/// `robustness_rows` calls), or its saliency method and metrics through `interpret_rows`.
fn run_task(
    net: &mut Network<Cpu>,
    exp: &Experiment,
    splits: &salient_data::Splits,
    maps_dir: &std::path::Path,
) -> Result<Measured, String> {
    let started = Instant::now();
    match exp.attacks.first() {
        Some(_) => {
            let n = exp.eval.attack_samples.min(splits.test.len());
            let results = robustness::evaluate_attacks(
                net,
                &exp.attacks,
                &splits.test,
                n,
                exp.eval.batch,
                exp.eval.seed,
            )
            .map_err(|e| e.to_string())?;
            let seconds = started.elapsed().as_secs_f64();
            Ok(Measured {
                seconds,
                values: vec![("robust_accuracy", results[0].accuracy())],
            })
        }
        None => {
            let rows = interpret::interpret_rows(net, exp, splits, &exp.runs[0], maps_dir)
                .map_err(|e| e.to_string())?;
            let seconds = started.elapsed().as_secs_f64();
            let value = |metric: &str| {
                rows.iter()
                    .find(|r| r.metric == metric)
                    .map(|r| r.value)
                    .ok_or_else(|| format!("the engine wrote no `{metric}` row"))
            };
            Ok(Measured {
                seconds,
                values: vec![
                    ("gini", value("sparseness")?),
                    ("deletion_auc", value("deletion")?),
                ],
            })
        }
    }
}

fn run(a: &Args) -> Result<serde_json::Value, String> {
    let exp = check_spec(&spec_text(a, a.images))?;
    let warm = check_spec(&spec_text(a, a.batch.min(a.images)))?;
    let splits = salient_data::load(&exp.data).map_err(|e| format!("cannot load MNIST: {e}"))?;
    let model = &exp.models[0];
    let dev = Cpu::seed_from_u64(a.seed);
    // As the runner: dfdx's allocation cache reuses buffers across batches.
    dev.try_enable_cache().map_err(|e| format!("{e:?}"))?;
    let mut net = Network::new(model, &exp.data.mean, &exp.data.std, a.seed, &dev)
        .map_err(|e| e.to_string())?;
    if let Some(path) = &a.weights {
        checkpoint::load(net.params_mut(), path).map_err(|e| e.to_string())?;
    }
    let n = a.images.min(splits.test.len());
    let clean = eval::accuracy(&mut net, &splits.test.subset(n), a.batch).value();
    let maps_dir = std::env::temp_dir().join(format!("salient-bench-eval-{}", std::process::id()));
    for _ in 0..a.warmup {
        run_task(&mut net, &warm, &splits, &maps_dir)?;
    }
    let measured = run_task(&mut net, &exp, &splits, &maps_dir);
    // interpret_rows creates the (here empty: report.images = 0) maps directory.
    let _ = std::fs::remove_dir_all(&maps_dir);
    let measured = measured?;
    let mut out = json!({
        "impl": "salient",
        "task": a.task.name(),
        "model": "quickstart",
        "images": n,
        "batch": a.batch,
        "warmup": a.warmup,
        "seconds": measured.seconds,
        "img_per_s": n as f64 / measured.seconds,
        "clean_accuracy": clean,
        "weights": a.weights.as_ref().map(|p| p.display().to_string()),
    });
    for (key, value) in measured.values {
        out[key] = json!(value);
    }
    match a.task {
        Task::Pgd => {
            out["steps"] = json!(a.steps);
            out["eps"] = json!(a.eps);
            out["step_size"] = json!(a.step_size);
        }
        Task::Saliency => out["deletion_steps"] = json!(a.deletion_steps),
    }
    Ok(out)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if e != "help" {
                eprintln!("bench_eval: {e}");
            }
            eprintln!("usage: bench_eval --task pgd|saliency [--images N] [--batch B] [--warmup W] [--weights PATH] [--data DIR] [--steps S] [--eps E] [--step-size A] [--deletion-steps T] [--seed S]");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("bench_eval: {e}");
            std::process::exit(1);
        }
    }
}
