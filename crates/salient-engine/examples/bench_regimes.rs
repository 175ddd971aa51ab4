//! Per-step cost of each training regime, for comparison with PyTorch (`bench/torch_regimes.py`;
//! harness `bench/run_regimes.sh`, issue #6 item 8).
//!
//! ```text
//! cargo run --release -p salient-engine --example bench_regimes -- --regime NAME
//!     [--batch 128] [--steps 20] [--warmup 3] [--lr 0.01] [--data data/mnist] [--seed 0]
//!     [--weights PATH.safetensors]
//! cargo run --release -p salient-engine --example bench_regimes -- --list
//! ```
//!
//! The regimes (declared in [`REGIMES`] as `.exp` source, checked by `salient_lang` and built by
//! `regime::build`, exactly as `salient run` builds them; formulas in docs/regimes.md):
//!
//! | name | regime |
//! |---|---|
//! | `standard` | CE(f(x)) |
//! | `sgt` | k 0.5, lambda 1, random fill |
//! | `pgd_at` | adversarial, PGD-10 Linf eps 0.3, step 0.075, random start |
//! | `fgsm_rs` | adversarial, FGSM eps 0.3, step 0.375, random start |
//! | `trades` | adversarial, beta 6, PGD-10 Linf eps 0.3, step 0.075 |
//! | `combined` | k 0.5, lambda 1, PGD-10 Linf eps 0.3, step 0.075 |
//! | `lp_l1` | lp_dual l1_box eps 0.1, fast (1 step) |
//! | `lp_group` | lp_dual group eps 1 size 4, iterative, 7 steps |
//! | `sensitivity` | layers (relu2, relu3), gaussian sigma 0.1, lambda 1 |
//!
//! One step is what `train.rs` does per batch: the regime's step (inner eval-mode passes and
//! train-mode passes on one tape), reading the loss value, the backward pass, and a plain SGD
//! update (lr 0.01, no momentum). The network is the quickstart CNN (seeded initialisation, or
//! the weights of `--weights`, a `model.safetensors` of `salient run`; normalisation inside),
//! the batch is the first `--batch` MNIST training images, fixed. After
//! `--warmup` untimed steps, `--steps` steps are timed; ms/step = wall time / steps. As the
//! runner does, only `standard` tells the network to skip the input gradient. The JSON line has
//! the loss of the first step (`first_loss`): with the same `--weights` on both sides it is the
//! same number for the deterministic regimes (standard, lp_l1, lp_group), a check that both
//! compute the same loss. Output: one JSON line, e.g. `{"impl":"salient","regime":"sgt","batch":128,"steps":20,"ms_per_step":...}`.
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_engine::losses::one_hot;
use salient_engine::regime::{self, StepContext, Targets};
use salient_ir::Experiment;
use salient_nn::{checkpoint, optim, Network};
use serde_json::json;
use std::time::Instant;

/// The benchmarked regimes as `.exp` declarations, by name.
const REGIMES: &[(&str, &str)] = &[
    ("standard", "regime standard"),
    ("sgt", "regime sgt { k = 0.5  lambda = 1  fill = random }"),
    (
        "pgd_at",
        "regime adversarial as pgd_at {
  attack = pgd(norm = linf, eps = 0.3, steps = 10, step_size = 0.075, random_start = true)
}",
    ),
    (
        "fgsm_rs",
        "regime adversarial as fgsm_rs {
  attack = fgsm(eps = 0.3, step_size = 0.375, random_start = true)
}",
    ),
    (
        "trades",
        "regime adversarial as trades {
  attack = pgd(norm = linf, eps = 0.3, steps = 10, step_size = 0.075, random_start = true)
  trades_beta = 6
}",
    ),
    (
        "combined",
        "regime combined {
  k = 0.5
  lambda = 1
  attack = pgd(norm = linf, eps = 0.3, steps = 10, step_size = 0.075, random_start = true)
}",
    ),
    (
        "lp_l1",
        "regime lp_dual as lp_l1 { mode = l1_box(eps = 0.1)  steps = 1 }",
    ),
    (
        "lp_group",
        "regime lp_dual as lp_group { mode = group(eps = 1, size = 4)  steps = 7 }",
    ),
    (
        "sensitivity",
        "regime sensitivity { layers = (relu2, relu3)  noise = gaussian  sigma = 0.1  lambda = 1 }",
    ),
];

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

struct Args {
    regime: String,
    batch: usize,
    steps: usize,
    warmup: usize,
    lr: f64,
    data: String,
    seed: u64,
    weights: Option<std::path::PathBuf>,
}

fn usage() -> String {
    let names: Vec<&str> = REGIMES.iter().map(|(n, _)| *n).collect();
    format!(
        "usage: bench_regimes --regime NAME [--batch B] [--steps N] [--warmup W] [--lr LR] [--data DIR] [--seed S] [--weights PATH] | --list\n  regimes: {}",
        names.join(", ")
    )
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        regime: String::new(),
        batch: 128,
        steps: 20,
        warmup: 3,
        lr: 0.01,
        data: "data/mnist".into(),
        seed: 0,
        weights: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let whole = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a whole number"))
        };
        match flag.as_str() {
            "--regime" => a.regime = value()?,
            "--batch" => a.batch = whole(value()?)? as usize,
            "--steps" => a.steps = whole(value()?)? as usize,
            "--warmup" => a.warmup = whole(value()?)? as usize,
            "--seed" => a.seed = whole(value()?)?,
            "--data" => a.data = value()?,
            "--weights" => a.weights = Some(value()?.into()),
            "--lr" => {
                let v = value()?;
                a.lr = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| format!("--lr: `{v}` is not a positive number"))?
            }
            "--list" => {
                for (name, _) in REGIMES {
                    println!("{name}");
                }
                return Ok(None);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.regime.is_empty() {
        return Err("--regime is required".into());
    }
    if !REGIMES.iter().any(|(n, _)| *n == a.regime) {
        return Err(format!("unknown regime `{}`", a.regime));
    }
    if a.batch == 0 || a.steps == 0 {
        return Err("--batch and --steps must be positive".into());
    }
    if a.data.contains('"') {
        return Err("--data: the directory name may not contain `\"`".into());
    }
    Ok(Some(a))
}

/// The experiment holding the model, the first `batch` training images and the one regime.
fn spec_text(a: &Args) -> String {
    let regime = REGIMES
        .iter()
        .find(|(n, _)| *n == a.regime)
        .map(|(_, src)| *src)
        .unwrap_or("regime standard");
    format!(
        "experiment bench_regimes\n\
         data mnist {{ dir = \"{dir}\"  train = {batch}  test = 1  mean = (0.1307)  std = (0.3081) }}\n\
         {MODEL}\n\
         train {{ model = cnn  optimizer = sgd  lr = {lr}  epochs = 1  batch = {batch}  seed = {seed} }}\n\
         {regime}\n",
        dir = a.data,
        batch = a.batch,
        lr = a.lr,
        seed = a.seed,
    )
}

fn check_spec(text: &str) -> Result<Experiment, String> {
    let out = salient_lang::check("bench_regimes.exp", text);
    out.experiment
        .ok_or_else(|| salient_lang::render("bench_regimes.exp", text, &out.diagnostics, false))
}

fn run(a: &Args) -> Result<serde_json::Value, String> {
    let exp = check_spec(&spec_text(a))?;
    let splits = salient_data::load(&exp.data).map_err(|e| format!("cannot load MNIST: {e}"))?;
    let run = exp
        .runs
        .first()
        .ok_or("the spec declares no training run")?;
    let model = exp.model(&run.model).ok_or("the run's model is missing")?;
    let cfg = &run.train;
    let mut regime = regime::build::<Cpu>(&run.regime, &splits.train.channel_mean(), model)?;
    let dev = Cpu::seed_from_u64(cfg.seed);
    // As the runner: dfdx's allocation cache reuses buffers across steps.
    dev.try_enable_cache().map_err(|e| format!("{e:?}"))?;
    let mut net = Network::new(model, &exp.data.mean, &exp.data.std, cfg.seed, &dev)
        .map_err(|e| e.to_string())?;
    if let Some(path) = &a.weights {
        checkpoint::load(net.params_mut(), path).map_err(|e| e.to_string())?;
    }
    // As the runner: no regime reads the input gradient of its training passes.
    net.set_input_grad(false);
    let mut opt = optim::build::<Cpu>(&cfg.optimizer, cfg.weight_decay);

    let n = splits.train.len();
    if n < a.batch {
        return Err(format!(
            "the training set has {n} images, fewer than the batch"
        ));
    }
    let idx: Vec<usize> = (0..a.batch).collect();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    splits.train.gather(&idx, &mut xs, &mut ys);
    let x = dev.tensor_from_vec(xs, (a.batch, splits.train.image_len()));
    let targets = Targets {
        onehot: one_hot(&dev, &ys, splits.train.classes),
        labels: ys,
    };
    // The generator train.rs seeds for the regimes' random draws (its `seed ^ 0x5EED_0F_5A11E27`).
    let mut ctx = StepContext {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0005_EED0_F5A1_1E27),
        epoch: 0,
        step: 0,
        steps_per_epoch: 1,
    };
    let mut step = |ctx: &mut StepContext| -> Result<f32, String> {
        let out = regime.step(&mut net, &x, &targets, ctx);
        let loss = out.loss.retaped::<NoneTape>().as_vec()[0];
        if !loss.is_finite() {
            return Err(format!("the loss is {loss}"));
        }
        let grads = out.loss.backward();
        opt.step(net.params_mut(), &grads, cfg.lr)
            .map_err(|e| e.to_string())?;
        ctx.step += 1;
        Ok(loss)
    };
    let mut first_loss = None;
    for _ in 0..a.warmup {
        let loss = step(&mut ctx)?;
        first_loss.get_or_insert(loss);
    }
    let started = Instant::now();
    let mut last = 0.0;
    for _ in 0..a.steps {
        last = step(&mut ctx)?;
        first_loss.get_or_insert(last);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "impl": "salient",
        "regime": a.regime,
        "model": "quickstart",
        "batch": a.batch,
        "steps": a.steps,
        "warmup": a.warmup,
        "lr": a.lr,
        "seconds": seconds,
        "ms_per_step": 1e3 * seconds / a.steps as f64,
        "img_per_s": (a.batch * a.steps) as f64 / seconds,
        "first_loss": first_loss,
        "final_loss": last,
        "weights": a.weights.as_ref().map(|p| p.display().to_string()),
    }))
}

fn main() {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench_regimes: {e}");
            }
            eprintln!("{}", usage());
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("bench_regimes: {e}");
            std::process::exit(1);
        }
    }
}
