//! End-to-end tests of the engine on tiny synthetic experiments: determinism, checkpoint reuse,
//! divergence, bad data, interruption.
use salient_engine::results::read_results;
use salient_engine::{run, DeviceKind, EngineError, RunOptions};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const TINY: &str = r#"
experiment tiny
data synthetic { shape = (1, 8, 8)  classes = 3  train = 192  test = 96  noise = 0.2  seed = 7 }
model net {
  conv(out = 4, kernel = 3, padding = 1)
  relu
  maxpool(size = 2)
  flatten
  dropout(p = 0.1)
  dense(out = 3)
}
train { optimizer = adam  lr = 1e-2  epochs = 12  batch = 32  seed = [0, 1] }
regime standard
regime sgt { k = 0.5  lambda = 1  fill = random }
regime adversarial { attack = pgd(eps = 0.1, step_size = 0.05, steps = 2, random_start = true) }
"#;

fn experiment(src: &str) -> salient_ir::Experiment {
    let out = salient_lang::check("test.exp", src);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    out.experiment
        .unwrap_or_else(|| panic!("spec does not check: {msgs:?}"))
}

fn opts(dir: &Path) -> RunOptions {
    RunOptions {
        out_dir: dir.to_path_buf(),
        device: DeviceKind::Cpu,
        quiet: true,
        retrain: false,
        only: Vec::new(),
        interrupt: Arc::new(AtomicBool::new(false)),
    }
}

/// Result rows without the wall-clock ones.
fn stable_rows(dir: &Path) -> Vec<salient_engine::results::ResultRow> {
    read_results(&dir.join("results.csv"))
        .unwrap()
        .into_iter()
        .filter(|r| r.metric != "train_seconds")
        .collect()
}

/// Every tensor of a checkpoint as (name, shape, raw bytes), sorted by name. (The file's bytes
/// may differ in the order of the header's metadata entries.)
fn weights(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

#[test]
fn same_seed_gives_bit_identical_weights_and_metrics() {
    let exp = experiment(TINY);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = run(&exp, TINY, &opts(a.path())).unwrap();
    let rb = run(&exp, TINY, &opts(b.path())).unwrap();
    assert_eq!(ra.trained.len(), 6, "2 seeds x 3 regimes");
    assert_eq!(ra.trained, rb.trained);
    for id in &ra.trained {
        let wa = weights(&a.path().join("runs").join(id).join("model.safetensors"));
        let wb = weights(&b.path().join("runs").join(id).join("model.safetensors"));
        assert!(
            wa == wb,
            "weights of {id} differ between two runs with the same seed"
        );
    }
    assert_eq!(stable_rows(a.path()), stable_rows(b.path()));
    // Different seeds give different weights.
    let w0 = weights(&a.path().join("runs/net-standard-seed0/model.safetensors"));
    let w1 = weights(&a.path().join("runs/net-standard-seed1/model.safetensors"));
    assert!(w0 != w1);
}

#[test]
fn training_learns_the_synthetic_task() {
    let exp = experiment(TINY);
    let dir = tempfile::tempdir().unwrap();
    run(&exp, TINY, &opts(dir.path())).unwrap();
    let rows = stable_rows(dir.path());
    for r in rows.iter().filter(|r| r.metric == "clean_accuracy") {
        assert!(
            r.value > 0.75,
            "{} reached only {:.3} clean accuracy on an easy 3-class task",
            r.run,
            r.value
        );
    }
    // The synthetic test set is balanced, so the mean of the per-class accuracies is the overall one.
    let per_class: Vec<f64> = rows
        .iter()
        .filter(|r| r.metric == "class_accuracy" && r.run == "net-standard-seed0")
        .map(|r| r.value)
        .collect();
    assert_eq!(per_class.len(), 3);
    let overall = rows
        .iter()
        .find(|r| r.metric == "clean_accuracy" && r.run == "net-standard-seed0")
        .unwrap()
        .value;
    assert!((per_class.iter().sum::<f64>() / 3.0 - overall).abs() < 1e-12);
    let curve = std::fs::read_to_string(dir.path().join("training.csv")).unwrap();
    assert_eq!(
        curve.lines().count(),
        1 + 6 * 12,
        "one header and one row per run and epoch"
    );
}

#[test]
fn second_run_reuses_checkpoints_and_changed_training_retrains() {
    let exp = experiment(TINY);
    let dir = tempfile::tempdir().unwrap();
    let first = run(&exp, TINY, &opts(dir.path())).unwrap();
    let second = run(&exp, TINY, &opts(dir.path())).unwrap();
    assert!(
        second.trained.is_empty(),
        "nothing should be retrained: {:?}",
        second.trained
    );
    assert_eq!(second.reused, first.trained);
    assert_eq!(
        stable_rows(dir.path()).len(),
        first
            .rows
            .iter()
            .filter(|r| r.metric != "train_seconds")
            .count()
    );
    // Same metrics from the reused weights.
    let clean = |rows: &[salient_engine::results::ResultRow]| {
        rows.iter()
            .filter(|r| r.metric == "clean_accuracy")
            .map(|r| r.value)
            .collect::<Vec<_>>()
    };
    assert_eq!(clean(&first.rows), clean(&second.rows));

    // A different learning rate changes the key: those runs train again.
    let changed = TINY.replace("lr = 1e-2", "lr = 5e-3");
    let third = run(&experiment(&changed), &changed, &opts(dir.path())).unwrap();
    assert_eq!(third.trained.len(), 6);
    assert!(third.reused.is_empty());
}

#[test]
fn divergence_names_the_run_epoch_and_step() {
    let src = TINY
        .replace("optimizer = adam  lr = 1e-2", "optimizer = sgd  lr = 1e9")
        .replace("seed = [0, 1]", "seed = 0");
    let exp = experiment(&src);
    let dir = tempfile::tempdir().unwrap();
    // The divergence stays local to its run (issue #14): recorded as failed, not an error of
    // the whole command.
    let report = match run(&exp, &src, &opts(dir.path())) {
        Ok(report) => report,
        Err(e) => panic!("a diverging run is recorded, not an error of the command: {e}"),
    };
    assert_eq!(
        report.failed.len() + report.trained.len(),
        exp.runs.len(),
        "every run is trained or failed: {:?}",
        report.failed
    );
    assert_eq!(report.failed[0].0, "net-standard-seed0");
    let rows = read_results(&dir.path().join("results.csv")).unwrap();
    for (run_id, msg) in &report.failed {
        assert!(
            msg.starts_with(&format!("run `{run_id}` diverged at epoch ")) && msg.contains("step"),
            "{msg}"
        );
        let mine: Vec<_> = rows.iter().filter(|r| &r.run == run_id).collect();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!((mine[0].metric.as_str(), mine[0].value), ("failed", 1.0));
        let why = std::fs::read_to_string(dir.path().join("runs").join(run_id).join("failed.txt"))
            .unwrap();
        assert_eq!(why.trim(), msg);
    }
}

#[test]
fn missing_data_is_an_error_naming_the_directory() {
    let src = "experiment e\ndata mnist { dir = \"/nonexistent/mnist\" }\nmodel m { flatten dense(out = 10) }\ntrain { epochs = 1 }\nregime standard\n";
    let exp = experiment(src);
    let dir = tempfile::tempdir().unwrap();
    let err = run(&exp, src, &opts(dir.path())).expect_err("loading a missing directory must fail");
    assert!(matches!(err, EngineError::Data(_)));
    assert!(err.to_string().contains("/nonexistent/mnist"), "{err}");
}

#[test]
fn interrupt_stops_before_training_and_keeps_nothing_half_written() {
    let exp = experiment(TINY);
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    o.interrupt.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(run(&exp, TINY, &o), Err(EngineError::Interrupted)));
    assert!(!dir.path().join("runs/net-standard-seed0/run.json").exists());
}

#[test]
fn checkpoint_key_changes_with_the_engine_version() {
    use salient_engine::store::{run_key, run_key_at, ENGINE_VERSION};
    let exp = experiment(TINY);
    let run = &exp.runs[0];
    let model = exp.model(&run.model).expect("model");
    let key = |v: u32| run_key_at(v, run, model, &exp.data, "fingerprint");
    assert_eq!(
        run_key(run, model, &exp.data, "fingerprint"),
        key(ENGINE_VERSION)
    );
    // A bumped engine never reuses the checkpoints of another version.
    assert_ne!(key(ENGINE_VERSION), key(ENGINE_VERSION + 1));
    assert_ne!(key(2), key(3));
    // Deterministic, and the data fingerprint is part of it.
    assert_eq!(key(2), key(2));
    assert_ne!(
        key(ENGINE_VERSION),
        run_key_at(ENGINE_VERSION, run, model, &exp.data, "other")
    );
}
