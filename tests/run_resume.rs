//! Resume inside a run and stopping on signals (issue #14, items 4 and 7), through the built
//! binary: a run killed with SIGKILL in the middle of an epoch, or stopped with SIGTERM, and
//! then run again ends bit-identical to a run that was never interrupted (weights, results.csv
//! and training.csv, timing columns aside); SIGTERM during an attack of 10^8 steps stops within
//! a batch.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

/// One adversarially trained run (random starts draw from the step generator), with dropout
/// (the dropout generator) and Adam (moments and step counts): everything an epoch checkpoint
/// must restore. About a second per epoch on one core, so that a kill lands inside an epoch.
const SPEC: &str = r#"
experiment resume_check
data synthetic { shape = (1, 16, 16)  classes = 4  train = 3072  test = 256  noise = 0.3  seed = 3 }
model net {
  conv(out = 8, kernel = 3, padding = 1)
  relu
  maxpool(size = 2)
  flatten
  dropout(p = 0.2)
  dense(out = 32)
  relu
  dense(out = 4)
}
train { optimizer = adam  lr = 2e-3  epochs = 4  batch = 32  seed = 5 }
regime adversarial { attack = pgd(norm = linf, eps = 0.1, steps = 3, step_size = 0.04, random_start = true) }
attack pgd { norm = linf  eps = 0.1  steps = 5  step_size = 0.03 }
metrics { clean_accuracy  robust_accuracy }
eval { attack_samples = 128  saliency_samples = 1 }
"#;

const RUN: &str = "net-adversarial-seed5";

fn salient(spec: &Path, out: &Path) -> Command {
    common::salient_run(spec, out)
}

fn run_to_end(spec: &Path, out: &Path) -> Output {
    let o = salient(spec, out).output().unwrap();
    assert!(
        o.status.success(),
        "salient run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn spawn(spec: &Path, out: &Path) -> Child {
    salient(spec, out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `path` exists (the child still running), or fail with the child's stderr.
fn wait_for(child: &mut Child, path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "salient exited ({status}) before {what}: {}",
                stderr_of(child)
            );
        }
        assert!(Instant::now() < deadline, "no {what} after 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {}", child.id());
}

/// Wait for the child to exit within `limit`; its exit code and stderr.
fn exit_within(child: &mut Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), stderr_of(child));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "did not stop within {limit:?} of the signal: {}",
                stderr_of(child)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_dir(out: &Path) -> PathBuf {
    out.join("runs").join(RUN)
}

fn epoch_dir(out: &Path, epochs: usize) -> PathBuf {
    run_dir(out)
        .join("resume")
        .join(format!("epoch-{epochs:04}"))
}

/// results.csv without the timing rows (`train_seconds`), as lines.
fn results_without_timing(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("results.csv")).unwrap();
    text.lines()
        .filter(|l| !l.contains(",train_seconds,"))
        .map(str::to_string)
        .collect()
}

/// training.csv without its timing columns (`seconds`, `images_per_second`).
fn training_without_timing(out: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(out.join("training.csv")).unwrap();
    let header = r.headers().unwrap().clone();
    let keep: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| !matches!(*h, "seconds" | "images_per_second"))
        .map(|(i, _)| i)
        .collect();
    assert!(keep.len() < header.len(), "timing columns in {header:?}");
    let mut rows = vec![keep.iter().map(|&i| header[i].to_string()).collect()];
    for rec in r.records() {
        let rec = rec.unwrap();
        rows.push(keep.iter().map(|&i| rec[i].to_string()).collect());
    }
    rows
}

fn assert_identical(reference: &Path, resumed: &Path, how: &str) {
    let weights = |out: &Path| std::fs::read(run_dir(out).join("model.safetensors")).unwrap();
    assert!(
        weights(reference) == weights(resumed),
        "{how}: the resumed run's weights differ from the uninterrupted run's"
    );
    assert_eq!(
        results_without_timing(reference),
        results_without_timing(resumed),
        "{how}: results.csv"
    );
    assert_eq!(
        training_without_timing(reference),
        training_without_timing(resumed),
        "{how}: training.csv"
    );
    assert!(
        !run_dir(resumed).join("resume").exists(),
        "{how}: the epoch checkpoints are removed once the run is finished"
    );
}

#[test]
fn a_killed_or_terminated_run_resumes_and_ends_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("resume.exp");
    std::fs::write(&spec, SPEC).unwrap();

    let reference = dir.path().join("reference");
    run_to_end(&spec, &reference);
    let curve = training_without_timing(&reference);
    assert_eq!(curve.len(), 5, "4 epochs: {curve:?}");

    // SIGKILL in the middle of epoch 2 (after epoch 1's checkpoint), then run again.
    let killed = dir.path().join("killed");
    let mut child = spawn(&spec, &killed);
    wait_for(
        &mut child,
        &epoch_dir(&killed, 1),
        "the checkpoint of epoch 1",
    );
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        !run_dir(&killed).join("run.json").exists(),
        "the run finished before it was killed: make the spec's epochs longer"
    );
    let o = run_to_end(&spec, &killed);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("{RUN}: resuming after epoch")),
        "a rerun resumes from the epoch checkpoint: {stderr}"
    );
    assert_identical(&reference, &killed, "kill -9 in epoch 2");

    // SIGTERM during training stops within a step (exit 130), keeping the epoch checkpoint.
    let terminated = dir.path().join("terminated");
    let mut child = spawn(&spec, &terminated);
    wait_for(
        &mut child,
        &epoch_dir(&terminated, 2),
        "the checkpoint of epoch 2",
    );
    sigterm(&child);
    let (code, stderr) = exit_within(&mut child, Duration::from_secs(20));
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!run_dir(&terminated).join("run.json").exists(), "{stderr}");
    assert!(epoch_dir(&terminated, 2).is_dir(), "{stderr}");
    let o = run_to_end(&spec, &terminated);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("resuming after epoch"), "{stderr}");
    assert_identical(&reference, &terminated, "SIGTERM in epoch 3");
}

/// Training is short; the attack has 10^8 steps (days): SIGTERM must stop it within a batch.
const ENDLESS_ATTACK: &str = r#"
experiment endless_attack
data synthetic { shape = (1, 8, 8)  classes = 3  train = 96  test = 64  noise = 0.2  seed = 7 }
model net { flatten dense(out = 16) relu dense(out = 3) }
train { optimizer = sgd  lr = 0.05  epochs = 1  batch = 16  seed = 0 }
regime standard
attack pgd { norm = linf  eps = 0.1  steps = 100000000  step_size = 0.01 }
metrics { clean_accuracy  robust_accuracy }
eval { attack_samples = 64  batch = 64  saliency_samples = 1 }
"#;

#[test]
fn sigterm_during_an_attack_stops_within_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("endless.exp");
    std::fs::write(&spec, ENDLESS_ATTACK).unwrap();
    let out = dir.path().join("out");
    let mut child = spawn(&spec, &out);
    let id = "net-standard-seed0";
    // The final checkpoint is written before evaluation starts.
    wait_for(
        &mut child,
        &out.join("runs").join(id).join("run.json"),
        "the end of training",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the attack of 10^8 steps ended"
    );
    let sent = Instant::now();
    sigterm(&child);
    let (code, stderr) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    eprintln!("stopped {:?} after SIGTERM", sent.elapsed());
    // No half-evaluated row; the trained weights are kept for the next run.
    let results = std::fs::read_to_string(out.join("results.csv")).unwrap_or_default();
    assert!(!results.contains(id), "{results}");
    assert!(out
        .join("runs")
        .join(id)
        .join("model.safetensors")
        .is_file());
}

/// Reusing a checkpoint rewrites training.csv from the stored curve (`run.json`): every float,
/// timing columns included, must come back bit for bit (serde_json's `float_roundtrip`; without
/// it the last digit of some values changed on every rerun).
#[test]
fn reusing_a_checkpoint_rewrites_the_same_training_csv() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("floats.exp");
    std::fs::write(
        &spec,
        r#"
experiment floats
data synthetic { shape = (1, 6, 6)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = [0.05, 0.1, 0.3]  epochs = 3  batch = 16  seed = 0 }
regime standard
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    run_to_end(&spec, &out);
    let first = std::fs::read_to_string(out.join("training.csv")).unwrap();
    let o = run_to_end(&spec, &out);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("reused 3 checkpoint(s)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let second = std::fs::read_to_string(out.join("training.csv")).unwrap();
    assert_eq!(first, second);
    // Values with 17 significant digits are in the file (not rounded by the CSV writer).
    assert!(
        first.lines().skip(1).any(|l| l
            .split(',')
            .any(|f| f.len() >= 17 && f.parse::<f64>().is_ok())),
        "{first}"
    );
}

/// "kill -9 at any moment": a run killed again and again at moments spread over its whole
/// length (start-up, data loading, inside epochs, while writing epoch checkpoints, the final
/// checkpoint, during the attacks and the result files), each time started again in the same
/// folder, and finally run to the end, is bit-identical to a run that was never killed.
#[test]
fn kill_9_at_any_moment_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("resume.exp");
    std::fs::write(&spec, SPEC).unwrap();
    let reference = dir.path().join("reference");
    let started = Instant::now();
    run_to_end(&spec, &reference);
    let whole = started.elapsed();

    let killed = dir.path().join("killed");
    let mut resumed = 0;
    for k in 1..=9u32 {
        let mut child = spawn(&spec, &killed);
        // Offsets of 10%..90% of an uninterrupted run's time, from each process's start (a
        // later process resumes, so its offsets land further along the run).
        std::thread::sleep(whole.mul_f64(f64::from(k) / 10.0));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let stderr = {
            let _ = child.wait();
            stderr_of(&mut child)
        };
        if stderr.contains("resuming after epoch") {
            resumed += 1;
        }
        if finished {
            break;
        }
    }
    run_to_end(&spec, &killed);
    eprintln!("{resumed} of the killed processes resumed from an epoch checkpoint");
    assert!(
        resumed >= 1,
        "no kill left an epoch checkpoint to resume from"
    );
    assert_identical(&reference, &killed, "repeated kill -9");
}
