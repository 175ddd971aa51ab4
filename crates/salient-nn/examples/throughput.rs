//! Training throughput of a salient network on the CPU, for comparison with PyTorch.
//!
//! `cargo run --release -p salient-nn --example throughput -- --model quickstart|ismail
//!  --batch 128 --steps N [--warmup W] [--input-grad] [--portable] [--phases] [--no-cache]
//!  [--device cpu|cuda]` (`cuda` needs the `cuda` feature; the timing then ends with a
//!  device synchronisation)
//!
//! Trains N steps of plain SGD (p -= lr * g, lr 0.01) with cross-entropy on random inputs in
//! [0, 1] and random labels, after W warm-up steps, and prints one JSON line:
//! `{"impl":"salient","model":"...","batch":128,"steps":N,"img_per_s":...}`.
//! `--input-grad` also computes and reads d loss / d x every step (as the saliency and
//! adversarial regimes do; without it the network is told `set_input_grad(false)`); `--portable` forces the gather-based spatial ops that CUDA uses; `--phases` adds the
//! mean forward / backward / update milliseconds per step to the JSON.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use salient_ir::{Layer, Shape};
use salient_nn::layers::infer::model_def;
use salient_nn::{Mode, Network};
use std::time::{Duration, Instant};

struct Args {
    model: String,
    batch: usize,
    steps: usize,
    warmup: usize,
    input_grad: bool,
    portable: bool,
    phases: bool,
    no_cache: bool,
    device: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: "quickstart".into(),
        batch: 128,
        steps: 50,
        warmup: 5,
        input_grad: false,
        portable: false,
        phases: false,
        no_cache: false,
        device: "cpu".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |v: String, name: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{name}: `{v}` is not a whole number"))
        };
        match flag.as_str() {
            "--model" => a.model = value("--model")?,
            "--batch" => a.batch = number(value("--batch")?, "--batch")?,
            "--steps" => a.steps = number(value("--steps")?, "--steps")?,
            "--warmup" => a.warmup = number(value("--warmup")?, "--warmup")?,
            "--input-grad" => a.input_grad = true,
            "--portable" => a.portable = true,
            "--phases" => a.phases = true,
            "--no-cache" => a.no_cache = true,
            "--device" => a.device = value("--device")?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.batch == 0 || a.steps == 0 {
        return Err("--batch and --steps must be positive".into());
    }
    Ok(a)
}

fn layers(model: &str) -> Result<Vec<Layer>, String> {
    salient_nn::bench_models::layers(model).ok_or_else(|| {
        format!(
            "unknown model `{model}` (expected {})",
            salient_nn::bench_models::NAMES.join(" or ")
        )
    })
}

#[derive(Default)]
struct Phases {
    forward: Duration,
    backward: Duration,
    update: Duration,
}

fn step<D: Device<f32>>(
    net: &mut Network<D>,
    x: &Tensor<(usize, usize), f32, D>,
    y: &Tensor<(usize, usize), f32, D>,
    input_grad: bool,
    ph: &mut Phases,
) -> f32 {
    let t0 = Instant::now();
    let logits = net.forward(x.clone().traced(Gradients::leaky()), Mode::Train);
    let loss = cross_entropy_with_logits_loss(logits, y.clone());
    let value = loss.as_vec()[0];
    let t1 = Instant::now();
    let grads = loss.backward();
    if input_grad {
        let gx = grads.get(x);
        std::hint::black_box(&gx);
    }
    let t2 = Instant::now();
    for p in net.params_mut().iter_mut().filter(|p| p.trainable) {
        let g = grads.get(&p.value);
        p.value.axpy(1.0, &g, -0.01);
    }
    let t3 = Instant::now();
    ph.forward += t1 - t0;
    ph.backward += t2 - t1;
    ph.update += t3 - t2;
    value
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("throughput: {e}");
            std::process::exit(2);
        }
    };
    let layers = layers(&args.model).unwrap_or_else(|e| {
        eprintln!("throughput: {e}");
        std::process::exit(2)
    });
    let def =
        model_def(&args.model, Shape::Image { c: 1, h: 28, w: 28 }, layers).expect("valid model");
    match args.device.as_str() {
        "cpu" => {
            let dev = Cpu::default();
            // dfdx's allocation cache reuses freed buffers of the same size across steps instead
            // of returning them to the OS (large buffers would otherwise be page-faulted in every
            // step).
            if !args.no_cache {
                dev.enable_cache();
            }
            measure(&args, &def, &dev)
        }
        #[cfg(feature = "cuda")]
        "cuda" => {
            let dev = Cuda::default();
            if !args.no_cache {
                dev.enable_cache();
            }
            measure(&args, &def, &dev)
        }
        other => {
            eprintln!("throughput: device `{other}` is not available in this build");
            std::process::exit(2)
        }
    }
}

/// Trains `args.steps` timed steps on `dev` and prints the JSON line.
fn measure<D: Device<f32> + dfdx::tensor::Synchronize>(
    args: &Args,
    def: &salient_ir::ModelDef,
    dev: &D,
) {
    let mut net = Network::new(def, &[0.1307], &[0.3081], 0, dev).expect("network builds");
    net.set_portable(args.portable);
    // Like PyTorch with an input that does not require grad: without --input-grad the network
    // skips d loss / d x (the first convolution's dX).
    net.set_input_grad(args.input_grad);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = args.batch * 784;
    let x = dev.tensor_from_vec(
        (0..n).map(|_| rng.gen::<f32>()).collect(),
        (args.batch, 784),
    );
    let mut onehot = vec![0.0f32; args.batch * 10];
    for i in 0..args.batch {
        onehot[i * 10 + rng.gen_range(0..10)] = 1.0;
    }
    let y = dev.tensor_from_vec(onehot, (args.batch, 10));
    let mut ph = Phases::default();
    for _ in 0..args.warmup {
        step(&mut net, &x, &y, args.input_grad, &mut ph);
    }
    dev.synchronize();
    let mut ph = Phases::default();
    let start = Instant::now();
    let mut last = 0.0;
    for _ in 0..args.steps {
        last = step(&mut net, &x, &y, args.input_grad, &mut ph);
    }
    dev.synchronize();
    let secs = start.elapsed().as_secs_f64();
    let ms = |d: Duration| 1e3 * d.as_secs_f64() / args.steps as f64;
    let extra = if args.phases {
        format!(
            ",\"forward_ms\":{:.2},\"backward_ms\":{:.2},\"update_ms\":{:.2},\"loss\":{:.4},\"portable\":{}",
            ms(ph.forward),
            ms(ph.backward),
            ms(ph.update),
            last,
            args.portable
        )
    } else {
        String::new()
    };
    println!(
        "{{\"impl\":\"salient\",\"device\":\"{}\",\"model\":\"{}\",\"batch\":{},\"steps\":{},\"input_grad\":{},\"img_per_s\":{:.1}{}}}",
        args.device,
        args.model,
        args.batch,
        args.steps,
        args.input_grad,
        (args.steps * args.batch) as f64 / secs,
        extra
    );
}
