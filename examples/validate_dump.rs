//! Dumps what salient computes on a trained run, for comparison with the reference
//! implementations (torchattacks, AutoAttack, Captum, Quantus) by `bench/validate/compare.py`
//! (issue #12 item 5; how to run it: `bench/validate/run.sh`, results: `docs/validation.md`).
//!
//! ```text
//! cargo run --release --example validate_dump -- SPEC RUN_DIR N OUT
//! ```
//!
//! - SPEC: a `.exp` file, checked with `salient_lang` as `salient check` does. Its attacks,
//!   saliency methods, metrics and `eval` settings are what is dumped; its data must be the
//!   data the run was trained on (same kind, mean and std), and it must define the run's model
//!   under the same name with the same layers.
//! - RUN_DIR: a run folder written by `salient run` (`run.json` + `model.safetensors`).
//! - N: the number of test examples to attack (the first N of the spec's test set). Maps and
//!   metrics are computed on the first min(N, `eval.saliency_samples`) of them.
//! - OUT: output folder (created).
//!
//! Files written to OUT (NPY via the engine's writer, `salient_engine::saliency::npy`):
//!
//! | file | shape | what |
//! |---|---|---|
//! | `images.npy` | (N, H, W, C) f32 | test pixels in [0, 1] |
//! | `labels.npy` | (N,) i64 | labels |
//! | `logits.npy` | (N, classes) f32 | salient's eval-mode logits (to check the PyTorch loader) |
//! | `attack_<name>_eps<eps>.npy` | (N,) i64 | 1 if the example is still correct after the attack |
//! | `map_<name>.npy` | (M, H, W, C) f32 | the saliency map of each method |
//! | `noise_<name>.npy` | (samples, M, H, W, C) f32 | SmoothGrad: the exact noise each map used |
//! | `metric_<metric>_<name>.npy` | (M,) f32 | per-example sparseness / complexity / max-sensitivity (NaN: left out) |
//! | `msens_noise_<name>.npy` | (samples, M, H, W, C) f32 | max-sensitivity: the perturbations d_s |
//! | `msens_maps_<name>.npy` | (samples, M, H, W, C) f32 | deterministic methods: salient's maps S(x + d_s) |
//! | `random_maps_<name>.npy` | (layers, M, H, W, C) f32 | deterministic methods: the maps of the cascade's networks |
//! | `randomization_<name>.npy` | (layers, M) f32 | Spearman rho after each cascade step |
//! | `random_<k>.safetensors` | | the network after cascade step k (PyTorch layout) |
//! | `dump.json` | | the settings of all of the above |
//!
//! Attacks run through `robustness::evaluate_attacks`, the function `salient run` uses (which
//! calls `attack::attack_batch` in `eval.batch` batches with each attack's own seeded stream),
//! so the flags are the ones `salient run` would count. Saliency maps are built with
//! `saliency::build` and seeded as `interpret.rs` does (`derive_seed` below is that function),
//! so that the SmoothGrad noise can be replayed: it is drawn from `ChaCha8Rng::seed_from_u64(seed)`
//! by `saliency::noise::normal`, `samples` draws of (batch x features) per batch, in order, as
//! `SmoothGrad::map` draws it. Max-sensitivity and the randomisation cascade run per method
//! with their own generator seeded `derive_seed(eval.seed, 2, method index)` (in `salient run`
//! that generator is shared with the masking metric, so values there can differ by the noise).
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_engine::saliency::{self, noise, npy, Objective, SaliencyContext};
use salient_engine::store::RunRecord;
use salient_engine::{metrics, robustness};
use salient_ir::{Attack, Experiment, MetricSpec, SaliencyMethod};
use salient_nn::{checkpoint, Mode, Network};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: validate_dump SPEC RUN_DIR N OUT");
        std::process::exit(2);
    }
    let n = match args[2].parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!(
                "validate_dump: N must be a positive whole number, got `{}`",
                args[2]
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = run(
        Path::new(&args[0]),
        Path::new(&args[1]),
        n,
        &PathBuf::from(&args[3]),
    ) {
        eprintln!("validate_dump: {e}");
        std::process::exit(1);
    }
}

/// `interpret.rs`'s seed derivation (private there): a distinct seed per purpose and method.
fn derive_seed(seed: u64, purpose: u64, index: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (purpose << 48)
        ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

fn check_spec(path: &Path) -> Result<Experiment, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path.display().to_string();
    let out = salient_lang::check(&name, &text);
    out.experiment
        .ok_or_else(|| salient_lang::render(&name, &text, &out.diagnostics, false))
}

fn write_npy<T: npy::NpyElement>(path: &Path, data: &[T], shape: &[usize]) -> Result<(), String> {
    npy::write(path, data, shape).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `1.0e-1` -> `0.1`: the eps as the file name shows it (Rust's shortest round-trip form).
fn eps_tag(eps: f64) -> String {
    format!("{eps}")
}

fn run(spec: &Path, run_dir: &Path, n: usize, out: &Path) -> Result<(), String> {
    let exp = check_spec(spec)?;
    let record_path = run_dir.join("run.json");
    let record: RunRecord = serde_json::from_str(
        &std::fs::read_to_string(&record_path)
            .map_err(|e| format!("cannot read {}: {e}", record_path.display()))?,
    )
    .map_err(|e| format!("{}: not a run record: {e}", record_path.display()))?;
    let model = exp.model(&record.model.name).ok_or_else(|| {
        format!(
            "{} defines no model `{}` (the model of {})",
            spec.display(),
            record.model.name,
            run_dir.display()
        )
    })?;
    if model.layers != record.model.layers || model.input != record.model.input {
        return Err(format!(
            "model `{}` of {} is not the model the run in {} trained",
            model.name,
            spec.display(),
            run_dir.display()
        ));
    }
    if exp.data.kind != record.data.kind
        || exp.data.mean != record.data.mean
        || exp.data.std != record.data.std
    {
        return Err(format!(
            "the data of {} (kind, mean, std) differ from the data the run in {} trained on",
            spec.display(),
            run_dir.display()
        ));
    }
    let splits = salient_data::load(&exp.data).map_err(|e| format!("cannot load the data: {e}"))?;
    let test = &splits.test;
    let n = n.min(test.len());
    let m = n.min(exp.eval.saliency_samples).max(1).min(n);
    let features = test.image_len();
    let s = test.shape;
    let classes = model.output.numel();
    let batch = exp.eval.batch.max(1);

    let dev = Cpu::seed_from_u64(record.run.train.seed);
    let mut net = Network::new(
        model,
        &exp.data.mean,
        &exp.data.std,
        record.run.train.seed,
        &dev,
    )
    .map_err(|e| e.to_string())?;
    let weights = run_dir.join("model.safetensors");
    checkpoint::load(net.params_mut(), &weights).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    write_npy(
        &out.join("images.npy"),
        &test.images[..n * features],
        &[n, s.h, s.w, s.c],
    )?;
    let labels: Vec<i64> = test.labels[..n].iter().map(|&l| l as i64).collect();
    write_npy(&out.join("labels.npy"), &labels, &[n])?;
    let mut logits = Vec::with_capacity(n * classes);
    let all: Vec<usize> = (0..n).collect();
    for idx in all.chunks(batch) {
        let (x, _) = batch_of(&dev, test, idx);
        logits.extend(net.forward(x, Mode::Eval).as_vec());
    }
    write_npy(&out.join("logits.npy"), &logits, &[n, classes])?;

    // Attacks: what `salient run` counts for robust accuracy.
    let mut attacks_json = Vec::new();
    if !exp.attacks.is_empty() {
        eprintln!(
            "validate_dump: {} attack points on {n} examples",
            exp.attacks.len()
        );
        let results =
            robustness::evaluate_attacks(&mut net, &exp.attacks, test, n, batch, exp.eval.seed)
                .map_err(|e| e.to_string())?;
        for (spec, r) in exp.attacks.iter().zip(&results) {
            let file = format!("attack_{}_eps{}.npy", r.name, eps_tag(r.eps));
            let flags: Vec<i64> = r.robust.iter().map(|&b| b as i64).collect();
            write_npy(&out.join(&file), &flags, &[flags.len()])?;
            attacks_json.push(json!({
                "name": r.name,
                "file": file,
                "robust_accuracy": r.accuracy(),
                "params": attack_params(&spec.attack),
            }));
        }
    }

    // Saliency maps and metrics on the first m examples.
    let channel_mean = splits.train.channel_mean();
    let metric = |name: &str| exp.metrics.iter().find(|x| x.name() == name);
    let msens = exp.metrics.iter().find_map(|x| match x {
        MetricSpec::MaxSensitivity { radius, samples } => Some((*radius, *samples)),
        _ => None,
    });
    let mut saliency_json = Vec::new();
    let maps_idx: Vec<usize> = (0..m).collect();
    for (mi, spec) in exp.saliency.iter().enumerate() {
        eprintln!("validate_dump: saliency `{}` on {m} examples", spec.name);
        let seed = derive_seed(exp.eval.seed, 1, mi);
        let ctx = SaliencyContext {
            objective: Objective::LogProb,
            channel_mean: channel_mean.clone(),
            seed,
        };
        let mut method = saliency::build::<Cpu>(&spec.method, &ctx).map_err(|e| e.to_string())?;
        let mut noise_rng = ChaCha8Rng::seed_from_u64(seed);
        let smooth = match spec.method {
            SaliencyMethod::SmoothGrad { samples, sigma, .. } => Some((samples, sigma as f32)),
            _ => None,
        };
        let mut smooth_noise = smooth.map(|(k, _)| vec![0f32; k * m * features]);
        let metric_seed = derive_seed(exp.eval.seed, 2, mi);
        let mut metric_rng = ChaCha8Rng::seed_from_u64(metric_seed);
        let mut msens_noise = msens.map(|(_, k)| vec![0f32; k * m * features]);
        let deterministic = smooth.is_none();
        let mut msens_maps = msens
            .filter(|_| deterministic)
            .map(|(_, k)| vec![0f32; k * m * features]);
        let layers = metrics::randomization::cascade_order(&net).len();
        let mut random_maps = (deterministic && metric("randomization").is_some())
            .then(|| vec![0f32; layers * m * features]);
        let (mut maps, mut gini, mut entropy, mut sens) = (vec![], vec![], vec![], vec![]);
        let mut cascade: Vec<(usize, String, Vec<f64>)> = Vec::new();
        let mut start = 0;
        for idx in maps_idx.chunks(batch) {
            let b = idx.len();
            if let (Some((k, sigma)), Some(buf)) = (smooth, smooth_noise.as_mut()) {
                // The draws SmoothGrad::map makes for this batch, in its order.
                for sample in 0..k {
                    let e = noise::normal(&mut noise_rng, b * features, sigma);
                    let at = (sample * m + start) * features;
                    buf[at..at + b * features].copy_from_slice(&e);
                }
            }
            let (x, ys) = batch_of(&dev, test, idx);
            let map = method.map(&mut net, &x, &ys).map_err(|e| e.to_string())?;
            let host = map.as_vec();
            let pixel = metrics::pixel_scores(&host, b, s.c.max(1));
            if metric("sparseness").is_some() {
                gini.extend(metrics::sparseness::per_example(&pixel, b));
            }
            if metric("complexity").is_some() {
                entropy.extend(metrics::complexity::per_example(&pixel, b));
            }
            if let Some((radius, k)) = msens {
                // Replay the perturbations per_example draws (uniform_like, one per sample).
                let mut replay = metric_rng.clone();
                let buf = msens_noise.as_mut().expect("allocated with msens");
                for sample in 0..k {
                    let r = radius as f32;
                    let d = noise::uniform(&mut replay, b * features, -r, r);
                    let at = (sample * m + start) * features;
                    buf[at..at + b * features].copy_from_slice(&d);
                }
                if let Some(buf) = msens_maps.as_mut() {
                    // salient's maps at x + d_s, so that a reference metric can be fed exactly
                    // the maps salient's metric saw (deterministic methods only).
                    let noise = msens_noise.as_ref().expect("allocated with msens");
                    for sample in 0..k {
                        let at = (sample * m + start) * features;
                        let d = dev
                            .tensor_from_vec(noise[at..at + b * features].to_vec(), (b, features));
                        let sd = method
                            .map(&mut net, &(x.clone() + d), &ys)
                            .map_err(|e| e.to_string())?;
                        buf[at..at + b * features].copy_from_slice(&sd.as_vec());
                    }
                }
                let v = metrics::max_sensitivity::per_example(
                    method.as_mut(),
                    &mut net,
                    &x,
                    &ys,
                    &map,
                    radius,
                    k,
                    &mut metric_rng,
                )
                .map_err(|e| e.to_string())?;
                sens.extend(v.into_iter().map(|o| o.unwrap_or(f64::NAN)));
            }
            if let Some(buf) = random_maps.as_mut() {
                // The maps of the cascade's networks (the re-initialisation `cascade` makes).
                let mut random = net.clone();
                for (step, layer) in metrics::randomization::cascade_order(&net)
                    .into_iter()
                    .enumerate()
                {
                    random.reinit_layer(layer, exp.eval.seed);
                    let sr = method
                        .map(&mut random, &x, &ys)
                        .map_err(|e| e.to_string())?;
                    let at = (step * m + start) * features;
                    buf[at..at + b * features].copy_from_slice(&sr.as_vec());
                }
            }
            if metric("randomization").is_some() {
                let steps = metrics::randomization::cascade(
                    method.as_mut(),
                    &net,
                    &x,
                    &ys,
                    &map,
                    exp.eval.seed,
                )
                .map_err(|e| e.to_string())?;
                for step in steps {
                    match cascade.iter_mut().find(|(l, _, _)| *l == step.layer) {
                        Some((_, _, v)) => v.extend(step.similarity),
                        None => cascade.push((step.layer, step.name, step.similarity)),
                    }
                }
            }
            maps.extend(host);
            start += b;
        }
        let img = [m, s.h, s.w, s.c];
        let map_file = format!("map_{}.npy", spec.name);
        write_npy(&out.join(&map_file), &maps, &img)?;
        let mut entry = json!({
            "name": spec.name,
            "file": map_file,
            "seed": seed,
            "method": method_params(&spec.method),
        });
        if let (Some((k, sigma)), Some(buf)) = (smooth, smooth_noise) {
            let file = format!("noise_{}.npy", spec.name);
            write_npy(&out.join(&file), &buf, &[k, m, s.h, s.w, s.c])?;
            entry["noise_file"] = json!(file);
            entry["noise_sigma"] = json!(sigma);
        }
        let mut metric_files = BTreeMap::new();
        for (name, values) in [
            ("sparseness", &gini),
            ("complexity", &entropy),
            ("max_sensitivity", &sens),
        ] {
            if metric(name).is_some() {
                let file = format!("metric_{name}_{}.npy", spec.name);
                write_f64(&out.join(&file), values, None)?;
                metric_files.insert(name.to_string(), json!(file));
            }
        }
        if let (Some((radius, k)), Some(buf)) = (msens, msens_noise) {
            let file = format!("msens_noise_{}.npy", spec.name);
            write_npy(&out.join(&file), &buf, &[k, m, s.h, s.w, s.c])?;
            metric_files.insert(
                "max_sensitivity_noise".into(),
                json!({"file": file, "radius": radius, "samples": k, "seed": metric_seed}),
            );
        }
        if let Some(buf) = msens_maps {
            let file = format!("msens_maps_{}.npy", spec.name);
            write_npy(
                &out.join(&file),
                &buf,
                &[buf.len() / (m * features), m, s.h, s.w, s.c],
            )?;
            metric_files.insert("max_sensitivity_maps".into(), json!(file));
        }
        if let Some(buf) = random_maps {
            let file = format!("random_maps_{}.npy", spec.name);
            write_npy(&out.join(&file), &buf, &[layers, m, s.h, s.w, s.c])?;
            metric_files.insert("randomization_maps".into(), json!(file));
        }
        if !cascade.is_empty() {
            let file = format!("randomization_{}.npy", spec.name);
            let flat: Vec<f64> = cascade.iter().flat_map(|(_, _, v)| v.clone()).collect();
            write_f64(&out.join(&file), &flat, Some(&[cascade.len(), m]))?;
            metric_files.insert(
                "randomization".into(),
                json!({
                    "file": file,
                    "layers": cascade.iter().map(|(l, _, _)| *l).collect::<Vec<_>>(),
                    "names": cascade.iter().map(|(_, n, _)| n.clone()).collect::<Vec<_>>(),
                    "shape": [cascade.len(), m],
                }),
            );
        }
        entry["metrics"] = json!(metric_files);
        saliency_json.push(entry);
    }

    // The cascade's randomised networks (the same re-initialisation `cascade` makes), so that
    // a reference implementation can be run on exactly these weights.
    let mut random_json = Vec::new();
    if metric("randomization").is_some() && !exp.saliency.is_empty() {
        let mut random = net.clone();
        for (k, layer) in metrics::randomization::cascade_order(&net)
            .into_iter()
            .enumerate()
        {
            random.reinit_layer(layer, exp.eval.seed);
            let file = format!("random_{k}.safetensors");
            checkpoint::save(random.params(), &out.join(&file), &BTreeMap::new())
                .map_err(|e| e.to_string())?;
            random_json.push(json!({"step": k, "layer": layer,
                "name": net.def().layers[layer].name, "file": file}));
        }
    }

    let dump = json!({
        "spec": spec.display().to_string(),
        "run_dir": run_dir.display().to_string(),
        "run": record.run.id,
        "weights": weights.display().to_string(),
        "n": n,
        "map_examples": m,
        "image_shape": [s.h, s.w, s.c],
        "classes": classes,
        "mean": exp.data.mean,
        "std": exp.data.std,
        "eval": exp.eval,
        "model": model,
        "objective": "log_softmax of the true class",
        "attacks": attacks_json,
        "saliency": saliency_json,
        "randomized_networks": random_json,
    });
    let path = out.join("dump.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&dump).expect("plain JSON"),
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("validate_dump: wrote {}", out.display());
    Ok(())
}

/// The engine's NPY writer has no f64: metric values are written as f32 (they are compared at
/// 1e-3, far above f32's resolution). `shape` None: one dimension.
fn write_f64(path: &Path, values: &[f64], shape: Option<&[usize]>) -> Result<(), String> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    write_npy(path, &v, shape.unwrap_or(&[v.len()]))
}

fn batch_of(
    dev: &Cpu,
    data: &salient_data::Dataset,
    idx: &[usize],
) -> (Tensor<(usize, usize), f32, Cpu>, Vec<usize>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    data.gather(idx, &mut xs, &mut ys);
    (dev.tensor_from_vec(xs, (idx.len(), data.image_len())), ys)
}

fn attack_params(a: &Attack) -> serde_json::Value {
    serde_json::to_value(a).expect("the IR serialises")
}

fn method_params(m: &SaliencyMethod) -> serde_json::Value {
    serde_json::to_value(m).expect("the IR serialises")
}
