//! `salient run`: train every run of a checked experiment (or reuse its checkpoint), evaluate it,
//! and write results. Written once over dfdx's `Device`, dispatched to Cpu or (feature `cuda`)
//! Cuda.
use crate::diagnostics;
use crate::error::EngineError;
use crate::eval;
use crate::interpret;
use crate::progress::RunProgress;
use crate::regime;
use crate::results::{self, ResultRow};
use crate::resume::EpochCheckpoints;
use crate::robustness;
use crate::store::{run_key, Lock, RunRecord, Store};
use crate::train::{self, TrainInputs};
use dfdx::prelude::*;
use salient_data::Splits;
use salient_ir::results::{CLASS_ACCURACY, CLEAN_ACCURACY, FAILED, TRAIN_EPS, TRAIN_SECONDS};
use salient_ir::{DataKind, Experiment, MetricSpec, Regime, TrainRun, IR_VERSION};
use salient_nn::Network;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// The file in `runs/<id>/` that holds why a run failed (removed when it later finishes).
pub const FAILED_FILE: &str = "failed.txt";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

pub struct RunOptions {
    pub out_dir: PathBuf,
    pub device: DeviceKind,
    pub quiet: bool,
    /// Train again even when a matching checkpoint exists.
    pub retrain: bool,
    /// Run only the runs these exact ids or glob patterns select ([`select_runs`]; all runs
    /// when empty); the rows of the other runs already in the output directory are kept.
    pub only: Vec<String>,
    /// Set by the Ctrl-C handler; checked at every step.
    pub interrupt: Arc<AtomicBool>,
}

/// What happened to each run and which parts of the spec this build did not run.
#[derive(Debug, Default)]
pub struct RunReport {
    pub out_dir: PathBuf,
    pub trained: Vec<String>,
    pub reused: Vec<String>,
    /// (run id, reason).
    pub skipped: Vec<(String, String)>,
    /// Runs that failed (diverged, could not be built, trained or evaluated): (run id, reason
    /// with its causes). Each has a `failed` row in `results.csv` and its reason in
    /// `runs/<id>/failed.txt`; the other runs went on.
    pub failed: Vec<(String, String)>,
    /// Parts of the spec this version does not run yet, in words.
    pub not_run: Vec<String>,
    pub rows: Vec<ResultRow>,
    /// Evaluation sanity warnings (`diagnostics.csv`), every run of the directory.
    pub diagnostics: Vec<diagnostics::Finding>,
}

/// Parts of the experiment that will not run, in words, for the user.
pub fn unsupported_parts(exp: &Experiment) -> Vec<String> {
    let mut out = Vec::new();
    let mut regimes: Vec<&str> = exp
        .runs
        .iter()
        .filter(|r| !regime::supported(&r.regime.regime))
        .map(|r| r.regime.regime.kind_name())
        .collect();
    regimes.sort();
    regimes.dedup();
    if !regimes.is_empty() {
        out.push(format!(
            "regimes {} (their runs are skipped)",
            regimes.join(", ")
        ));
    }
    if !exp.attacks.is_empty()
        && !exp
            .metrics
            .iter()
            .any(|m| matches!(m, MetricSpec::RobustAccuracy))
    {
        out.push("the attacks (add `robust_accuracy` to `metrics` to run them)".to_string());
    }
    out
}

/// Run the experiment. `spec_text` is saved beside the results.
pub fn run(exp: &Experiment, spec_text: &str, opts: &RunOptions) -> Result<RunReport, EngineError> {
    let out = &opts.out_dir;
    std::fs::create_dir_all(out).map_err(|e| EngineError::io(out, e))?;
    write_file(&out.join("spec.exp"), spec_text)?;
    let ir = serde_json::to_string_pretty(exp).map_err(|e| EngineError::Results {
        path: out.join("experiment.json"),
        reason: e.to_string(),
    })?;
    write_file(&out.join("experiment.json"), &ir)?;
    let splits = salient_data::load(&exp.data)?;
    match opts.device {
        DeviceKind::Cpu => run_on(exp, &splits, opts, |seed| {
            let dev = Cpu::seed_from_u64(seed);
            // dfdx's allocation cache: reusing buffers roughly halves a CPU step's time.
            dev.try_enable_cache()
                .map_err(|e| EngineError::Device(format!("{e:?}")))?;
            Ok(dev)
        }),
        DeviceKind::Cuda => run_cuda(exp, &splits, opts),
    }
}

#[cfg(feature = "cuda")]
fn run_cuda(
    exp: &Experiment,
    splits: &Splits,
    opts: &RunOptions,
) -> Result<RunReport, EngineError> {
    run_on(exp, splits, opts, |seed| {
        let dev = Cuda::try_build(0, seed)
            .map_err(|e| EngineError::Device(format!("cannot start CUDA device 0: {e:?}")))?;
        dev.try_enable_cache()
            .map_err(|e| EngineError::Device(format!("{e:?}")))?;
        Ok(dev)
    })
}

#[cfg(not(feature = "cuda"))]
fn run_cuda(_: &Experiment, _: &Splits, _: &RunOptions) -> Result<RunReport, EngineError> {
    Err(EngineError::CudaNotBuilt)
}

fn run_on<D: Device<f32>>(
    exp: &Experiment,
    splits: &Splits,
    opts: &RunOptions,
    make_device: impl Fn(u64) -> Result<D, EngineError>,
) -> Result<RunReport, EngineError> {
    let store = Store::new(&opts.out_dir);
    // Attacks and training's inner loops poll this thread's flag (crate::stop).
    let _stop = crate::stop::install(opts.interrupt.clone());
    let selected = select_runs(exp, &opts.only)?;
    let order: Vec<String> = exp.runs.iter().map(|r| r.id.clone()).collect();
    let chosen: std::collections::HashSet<&str> = selected.iter().map(String::as_str).collect();
    // Rebuilds results.csv, training.csv and diagnostics.csv from the runs' own files: after a
    // finished or failed run when its flush policy says so, on Ctrl-C and at the end (see
    // `results`).
    let mut merger = results::Merger::new(&opts.out_dir, order);
    let mut report = RunReport {
        out_dir: opts.out_dir.clone(),
        not_run: unsupported_parts(exp),
        ..Default::default()
    };
    let channel_mean = splits.train.channel_mean();
    for run in exp.runs.iter().filter(|r| chosen.contains(r.id.as_str())) {
        // One process trains a run at a time; the lock goes when this iteration ends.
        let _lock = match store.lock(run)? {
            Lock::Acquired(l) => l,
            Lock::Held(holder) => {
                report.skipped.push((
                    run.id.clone(),
                    format!("locked by another process ({holder}); it is training this run"),
                ));
                continue;
            }
        };
        let run_dir = store.dir(run);
        let failed_file = run_dir.join(FAILED_FILE);
        let ctx = RunContext {
            exp,
            splits,
            opts,
            channel_mean: &channel_mean,
            store: &store,
        };
        match run_one(&ctx, run, &make_device, &mut report) {
            Ok(None) => {}
            Ok(Some(done)) => {
                let findings =
                    diagnostics::diagnose_run(&done.rows, exp, &run.id, Some(done.determinism));
                results::write_run(
                    &run_dir,
                    &done.rows,
                    &results::curve_rows(run, &done.log),
                    &findings,
                )?;
                // A run that failed before and now finished is no longer failed.
                if failed_file.exists() {
                    std::fs::remove_file(&failed_file)
                        .map_err(|e| EngineError::io(&failed_file, e))?;
                }
                merger.run_finished()?;
                for f in &findings {
                    match opts.quiet {
                        true => eprintln!("{}", diagnostics::warning_line(f)),
                        false => done.progress.note(&diagnostics::warning_line(f)),
                    }
                }
            }
            // SIGINT/SIGTERM stop everything; finished runs and epoch checkpoints are kept.
            Err(EngineError::Interrupted) => {
                merger.merge()?;
                return Err(EngineError::Interrupted);
            }
            // Any other failure stays local to its run: recorded, and the next run goes on.
            Err(e) => {
                let reason = error_chain(&e);
                eprintln!("run {} failed: {reason}", run.id);
                write_file(&failed_file, &format!("{reason}\n"))?;
                results::write_run(&run_dir, &[ResultRow::new(run, FAILED, 1.0)], &[], &[])?;
                // Counted like a finished run: a grid where many runs fail still rebuilds
                // a number of rows linear in its size (the failure is in the run's own files
                // and failed.txt at once, and in the merged files by the end).
                merger.run_finished()?;
                report.failed.push((run.id.clone(), reason));
            }
        }
    }
    // Also picks up the runs other processes finished meanwhile.
    merger.merge()?;
    let merged = merger.collect()?;
    report.rows = merged.rows;
    report.diagnostics = merged.findings;
    Ok(report)
}

/// What the runner needs to train and evaluate one run.
struct RunContext<'a> {
    exp: &'a Experiment,
    splits: &'a Splits,
    opts: &'a RunOptions,
    channel_mean: &'a [f32],
    store: &'a Store,
}

/// A finished run's rows, training curve and determinism probe.
struct Finished {
    rows: Vec<ResultRow>,
    log: Vec<crate::train::EpochLog>,
    determinism: diagnostics::Determinism,
    progress: RunProgress,
}

/// Train (or reuse) and evaluate one run. `Ok(None)`: skipped (recorded in `report.skipped`).
fn run_one<D: Device<f32>>(
    ctx: &RunContext<'_>,
    run: &TrainRun,
    make_device: &impl Fn(u64) -> Result<D, EngineError>,
    report: &mut RunReport,
) -> Result<Option<Finished>, EngineError> {
    let RunContext {
        exp,
        splits,
        opts,
        channel_mean,
        store,
    } = *ctx;
    let Some(model) = exp.model(&run.model) else {
        report.skipped.push((
            run.id.clone(),
            format!("model `{}` is not defined", run.model),
        ));
        return Ok(None);
    };
    let mut regime = match regime::build::<D>(&run.regime, channel_mean, model) {
        Ok(r) => r,
        Err(reason) => {
            report.skipped.push((run.id.clone(), reason));
            return Ok(None);
        }
    };
    let dev = make_device(run.train.seed)?;
    let mut net = Network::new(model, &exp.data.mean, &exp.data.std, run.train.seed, &dev)
        .map_err(|source| EngineError::Nn {
            run: run.id.clone(),
            source,
        })?;
    let key = run_key(run, model, &exp.data, &splits.fingerprint);
    let progress = RunProgress::new(&run.id, opts.quiet);
    let reused = if opts.retrain {
        None
    } else {
        store.load(run, &key, &mut net)
    };
    let record = match reused {
        Some(record) => {
            progress.note(&format!(
                "{}: reusing the checkpoint in {}",
                run.id,
                store.dir(run).display()
            ));
            report.reused.push(run.id.clone());
            // Epoch checkpoints left by a process killed just after the final save.
            EpochCheckpoints::new(&store.dir(run), &key).clear()?;
            record
        }
        None => {
            // Epoch checkpoints of an interrupted attempt with the same key: go on from the
            // last one (`--retrain` starts over).
            let epochs = EpochCheckpoints::new(&store.dir(run), &key);
            let resumed = if opts.retrain {
                epochs.clear()?;
                None
            } else {
                epochs.load(&mut net)
            };
            let (resume, seconds_before) = match resumed {
                Some(r) => {
                    // Also in --quiet logs (a Slurm task's): a resumed run is worth a line.
                    let line = format!(
                        "{}: resuming after epoch {} of {} (epoch checkpoint in {})",
                        run.id,
                        r.resume.epochs_done,
                        run.train.epochs,
                        store.dir(run).join(crate::resume::RESUME_DIR).display()
                    );
                    match opts.quiet {
                        true => eprintln!("{line}"),
                        false => progress.note(&line),
                    }
                    (Some(r.resume), r.train_seconds)
                }
                None => (None, 0.0),
            };
            let started = Instant::now();
            let inputs = TrainInputs {
                run,
                train: &splits.train,
                test: &splits.test,
                eval_batch: exp.eval.batch,
                interrupt: &opts.interrupt,
            };
            // No regime reads the input gradient of its training passes (inner passes get
            // theirs through `grad::InputGradScope`): let the network skip it.
            net.set_input_grad(false);
            let mut save_epoch = |end: train::EpochEnd<'_, D>| {
                let seconds = seconds_before + started.elapsed().as_secs_f64();
                epochs.save(end.net, end.optimizer, end.step_rng, end.log, seconds)
            };
            let log = train::train_resumable(
                &mut net,
                regime.as_mut(),
                &inputs,
                &progress,
                resume,
                &mut save_epoch,
            );
            net.set_input_grad(true);
            let log = log?;
            let record = RunRecord {
                ir_version: IR_VERSION,
                key,
                run: run.clone(),
                model: model.clone(),
                data: exp.data.clone(),
                data_fingerprint: splits.fingerprint.clone(),
                log,
                train_seconds: seconds_before + started.elapsed().as_secs_f64(),
            };
            store.save(&record, &net)?;
            epochs.clear()?;
            report.trained.push(run.id.clone());
            record
        }
    };
    let acc = eval::accuracy(&mut net, &splits.test, exp.eval.batch);
    let determinism = diagnostics::probe_determinism(
        &mut net,
        &splits.test,
        diagnostics::DETERMINISM_IMAGES,
        diagnostics::DETERMINISM_REPEATS,
    );
    if !exp.attacks.is_empty() {
        progress.note(&format!(
            "{}: attacking ({} attack points)",
            run.id,
            exp.attacks.len()
        ));
    }
    let robust = robustness::robustness_rows(&mut net, exp, &splits.test, run)?;
    if !exp.saliency.is_empty() {
        progress.note(&format!(
            "{}: saliency maps and metrics ({} methods)",
            run.id,
            exp.saliency.len()
        ));
    }
    let maps_dir = opts.out_dir.join("maps").join(&run.id);
    let interpret = interpret::interpret_with(
        &mut net,
        exp,
        splits,
        run,
        &interpret::InterpretOptions {
            maps_dir: &maps_dir,
            out_dir: &opts.out_dir,
            interrupt: &opts.interrupt,
            quiet: opts.quiet,
        },
    )?;
    let mut rows = vec![ResultRow::new(run, CLEAN_ACCURACY, acc.value())];
    rows.extend(train_eps_row(run));
    for (class, &(hit, total)) in acc.per_class.iter().enumerate() {
        let mut row = ResultRow::new(
            run,
            CLASS_ACCURACY,
            if total == 0 {
                0.0
            } else {
                hit as f64 / total as f64
            },
        );
        row.class = Some(class);
        rows.push(row);
    }
    rows.push(ResultRow::new(run, TRAIN_SECONDS, record.train_seconds));
    rows.extend(robust);
    rows.extend(interpret);
    Ok(Some(Finished {
        rows,
        log: record.log,
        determinism,
        progress,
    }))
}

/// An error with its chain of causes, on one line.
fn error_chain(e: &EngineError) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// The eps a run was trained against (Kim et al.'s trade-off axis): a `train_eps` row with the
/// norm as `attack` for adversarial and combined training, eps 0 for standard training, none for
/// the other regimes (their strength is not an eps).
fn train_eps_row(run: &TrainRun) -> Option<ResultRow> {
    let attack = match &run.regime.regime {
        Regime::Standard => None,
        Regime::Adversarial(p) => Some(&p.attack),
        Regime::Combined(p) => Some(&p.attack),
        Regime::Sgt(_) | Regime::LpDual(_) | Regime::Sensitivity(_) => return None,
    };
    let eps = attack.map_or(0.0, |a| a.eps);
    let mut row = ResultRow::new(run, TRAIN_EPS, eps);
    row.eps = Some(eps);
    row.attack = attack.map(|a| a.norm.to_string());
    Some(row)
}

/// Ids of the runs `only` selects, in the spec's order (all when it is empty). Each entry is an
/// exact run id or a glob pattern over the ids (`*`, `?`, `[...]`; the `glob` crate's
/// [`glob::Pattern`]): `seed1` selects the run `seed1` only if one has that id, `*-seed1` every
/// run whose id ends in `-seed1` (not `-seed10`). An entry that selects no run, or is a malformed
/// pattern, is an error listing the run ids.
pub fn select_runs(exp: &Experiment, only: &[String]) -> Result<Vec<String>, EngineError> {
    let ids = exp.runs.iter().map(|r| r.id.clone());
    if only.is_empty() {
        return Ok(ids.collect());
    }
    let all = || {
        exp.runs
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut matchers = Vec::with_capacity(only.len());
    for o in only {
        let exact = exp.runs.iter().any(|r| r.id == *o);
        let pattern = if exact {
            None
        } else {
            match glob::Pattern::new(o) {
                Ok(p) => Some(p),
                Err(e) => {
                    return Err(EngineError::NoSuchRun {
                        pattern: o.clone(),
                        runs: format!("{}; not a valid glob pattern: {e}", all()),
                    })
                }
            }
        };
        let matches = |id: &str| match &pattern {
            None => id == o,
            Some(p) => p.matches(id),
        };
        if !exp.runs.iter().any(|r| matches(&r.id)) {
            return Err(EngineError::NoSuchRun {
                pattern: o.clone(),
                runs: all(),
            });
        }
        matchers.push((o.clone(), pattern));
    }
    Ok(ids
        .filter(|id| {
            matchers.iter().any(|(o, p)| match p {
                None => id == o,
                Some(p) => p.matches(id),
            })
        })
        .collect())
}

/// One share of a grid split over `count` processes (a Slurm array task, a Kubernetes indexed
/// job's pod): `index` in `0..count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub index: usize,
    pub count: usize,
}

impl Task {
    /// A task, or an error in words when `count` is 0 or `index` is not below it.
    pub fn new(index: usize, count: usize) -> Result<Task, String> {
        if count == 0 {
            return Err("--tasks must be at least 1".to_string());
        }
        if index >= count {
            return Err(format!(
                "task index {index} is out of range for {count} task(s) (indices 0..{})",
                count - 1
            ));
        }
        Ok(Task { index, count })
    }
}

/// The estimated cost of training a run, for balancing tasks: epochs x training examples x
/// passes per step (1, plus the inner attack's steps for adversarial and combined training, the
/// saliency pass of SGT, the dual steps of lp_dual, the noisy pass of sensitivity). Evaluation
/// is the same for every run of a spec and is left out.
pub fn run_cost(exp: &Experiment, run: &TrainRun) -> f64 {
    let passes = 1 + match &run.regime.regime {
        Regime::Standard => 0,
        Regime::Sgt(_) => 1,
        Regime::Adversarial(p) => p.attack.steps,
        Regime::Combined(p) => p.attack.steps + 1,
        Regime::LpDual(p) => p.steps,
        Regime::Sensitivity(p) => 1 + usize::from(p.adversarial),
    };
    // The training set's size as the spec declares it (the files are not read here): the
    // standard sizes of MNIST-like sets (60,000) and CIFAR-10 batches (10,000 per file).
    let declared = match &exp.data.kind {
        DataKind::Synthetic { train, .. } => *train,
        DataKind::Cifar10 { train_files, .. } => 10_000 * train_files.len(),
        DataKind::Mnist | DataKind::FashionMnist | DataKind::Idx => 60_000,
    };
    let examples = exp.data.train.map_or(declared, |t| t.min(declared)).max(1);
    run.train.epochs as f64 * examples as f64 * passes as f64
}

/// The runs of `ids` (in the spec's order) that task `task` trains: a greedy
/// longest-processing-time assignment by [`run_cost`] (runs by decreasing cost, ties in the
/// spec's order, each to the task with the least cost so far, ties to the lowest index). Every
/// process computes the same assignment from the same spec, so the tasks' shares are disjoint
/// and together cover `ids`.
pub fn task_share(exp: &Experiment, ids: &[String], task: Task) -> Vec<String> {
    let costs: std::collections::HashMap<&str, f64> = exp
        .runs
        .iter()
        .map(|r| (r.id.as_str(), run_cost(exp, r)))
        .collect();
    let cost = |id: &String| costs.get(id.as_str()).copied().unwrap_or(1.0);
    let mut by_cost: Vec<(usize, f64)> = ids.iter().map(cost).enumerate().collect();
    by_cost.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut load = vec![0.0f64; task.count];
    let mut mine = vec![false; ids.len()];
    for (i, c) in by_cost {
        let t = (0..task.count)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[t] += c;
        mine[i] = t == task.index;
    }
    ids.iter()
        .zip(mine)
        .filter(|(_, m)| *m)
        .map(|(id, _)| id.clone())
        .collect()
}

/// Write `text` to `path` atomically (a temporary file in the same folder, renamed over it), so
/// that processes sharing the output folder never read a torn file.
fn write_file(path: &Path, text: &str) -> Result<(), EngineError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| EngineError::io(dir, e))?;
    tmp.write_all(text.as_bytes())
        .map_err(|e| EngineError::io(tmp.path(), e))?;
    results::persist(tmp, path)
}
