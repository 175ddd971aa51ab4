//! `salient run SPEC`: check the spec, train each run (or reuse its checkpoint), evaluate, and
//! write `results.csv` / `training.csv` in the output directory.
//!
//! Exit status: 0 done; 1 the spec has errors; 2 usage or I/O errors reading the spec; 3 the
//! command failed (bad data, unwritable output) or one or more runs failed (divergence, device;
//! the other runs went on and are kept); 130 interrupted by SIGINT (Ctrl-C) or SIGTERM (finished
//! runs and the interrupted run's last epoch checkpoint are kept; a rerun resumes from it).

use clap::{Args, ValueEnum};
use salient_engine::{DeviceKind, EngineError, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Args)]
pub struct RunArgs {
    /// The .exp spec to run.
    pub spec: PathBuf,
    /// Output directory (default: the spec's report directory, `reports/<experiment>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device to train and evaluate on.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// Train every run again, even when a matching checkpoint exists.
    #[arg(long)]
    pub retrain: bool,
    /// Run only these runs: exact run ids or glob patterns over the ids (repeat or
    /// comma-separate for several, e.g. `--only 'cnn-standard-*,*-seed1'`; `*-seed1` does not
    /// select `-seed10`); rows of the other runs already in the output directory are kept.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Run the I-th share (0-based) of the grid split into `--tasks` shares balanced by
    /// estimated cost. Without it: `SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN`, else
    /// Kubernetes' `JOB_COMPLETION_INDEX`.
    #[arg(long, value_name = "I", requires = "tasks")]
    pub task: Option<usize>,
    /// Split the grid (after `--only`) into N shares; see `--task`. Without it:
    /// `SLURM_ARRAY_TASK_COUNT` when `SLURM_ARRAY_TASK_ID` is set.
    #[arg(long, value_name = "N")]
    pub tasks: Option<usize>,
}

/// The task this process runs: `--task`/`--tasks`, else Slurm's array variables, else
/// Kubernetes' `JOB_COMPLETION_INDEX` with `--tasks`; None when neither says (the whole grid).
fn resolve_task(
    args: &RunArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<salient_engine::runner::Task>, String> {
    let num = |name: &str| -> Result<Option<usize>, String> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}={v} is not a non-negative integer")),
        }
    };
    let (index, count, from) = match (args.task, args.tasks) {
        (Some(i), Some(n)) => (i, n, "--task/--tasks"),
        (Some(_), None) => return Err("--task needs --tasks".to_string()),
        (None, tasks) => {
            if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
                let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                let count = match tasks {
                    Some(n) => n,
                    None => num("SLURM_ARRAY_TASK_COUNT")?.ok_or(
                        "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: pass --tasks N",
                    )?,
                };
                let index = id.checked_sub(min).ok_or(format!(
                    "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"
                ))?;
                (index, count, "SLURM_ARRAY_TASK_ID")
            } else if let Some(n) = tasks {
                let index = num("JOB_COMPLETION_INDEX")?.ok_or(
                    "--tasks without --task needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment",
                )?;
                (index, n, "JOB_COMPLETION_INDEX")
            } else {
                return Ok(None);
            }
        }
    };
    salient_engine::runner::Task::new(index, count)
        .map(Some)
        .map_err(|e| format!("{from}: {e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

pub fn main(args: RunArgs) -> ExitCode {
    let (_, source, exp) = match crate::check::checked_spec(&args.spec, "nothing was run") {
        Ok(c) => c,
        Err(code) => return code,
    };

    let mut selected = match salient_engine::runner::select_runs(&exp, &args.only) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let task = match resolve_task(&args, |k| std::env::var(k).ok()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The engine gets this task's share as exact run ids.
    let mut only = args.only.clone();
    if let Some(task) = task {
        selected = salient_engine::runner::task_share(&exp, &selected, task);
        if !args.quiet {
            eprintln!(
                "task {} of {}: {} run(s): {}",
                task.index,
                task.count,
                selected.len(),
                selected.join(", ")
            );
        }
        if selected.is_empty() {
            println!(
                "task {} of {}: no run falls to this task (the grid has fewer runs than tasks)",
                task.index, task.count
            );
            return ExitCode::SUCCESS;
        }
        only = selected.clone();
    }
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&exp.report.dir));
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        // SIGINT (Ctrl-C) and SIGTERM (`kill`, Slurm before it kills a job) stop within one
        // training step or attack batch: finished runs and the last epoch checkpoint are kept.
        // A second signal while stopping exits at once.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\nstopping within the current step or attack batch (finished runs and epoch \
                 checkpoints are kept; signal again to quit now)..."
            );
        });
    }
    let opts = RunOptions {
        out_dir: out_dir.clone(),
        device: match args.device {
            Device::Cpu => DeviceKind::Cpu,
            Device::Cuda => DeviceKind::Cuda,
        },
        quiet: args.quiet,
        retrain: args.retrain,
        only,
        interrupt,
    };
    let (runs, attacks, saliency) = exp.counts();
    if !args.quiet {
        eprintln!(
            "{}: {runs} training run(s), {attacks} attack evaluation(s), {saliency} saliency evaluation(s); output in {}",
            exp.name,
            out_dir.display()
        );
        if task.is_none() && selected.len() < exp.runs.len() {
            eprintln!(
                "--only: running {} of {} runs: {}",
                selected.len(),
                exp.runs.len(),
                selected.join(", ")
            );
        }
    }
    let not_run = salient_engine::runner::unsupported_parts(&exp);
    if !not_run.is_empty() {
        eprintln!("note: not run: {}", not_run.join("; "));
    }
    match salient_engine::run(&exp, &source, &opts) {
        Ok(report) => {
            for (id, why) in &report.skipped {
                eprintln!("skipped {id}: {why}");
            }
            print_summary(&report);
            // The report is regenerated from the files just written (`salient report DIR` does
            // the same on its own); a figure that fails is a warning, not a failed run.
            match salient_report::generate(&report.out_dir) {
                Ok(o) => println!("report: {}", o.index.display()),
                Err(e) => eprintln!("warning: the report could not be written: {e}"),
            }
            if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "error: {} run(s) failed (the others finished; a `failed` row and runs/<id>/failed.txt record each):",
                    report.failed.len()
                );
                for (id, why) in &report.failed {
                    eprintln!("  {id}: {why}");
                }
                ExitCode::from(3)
            }
        }
        Err(EngineError::Interrupted) => {
            eprintln!(
                "interrupted: finished runs are kept in {}",
                out_dir.display()
            );
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::from(3)
        }
    }
}

fn print_summary(report: &salient_engine::RunReport) {
    println!(
        "trained {} run(s), reused {} checkpoint(s)",
        report.trained.len(),
        report.reused.len()
    );
    for row in report.rows.iter().filter(|r| r.metric == "clean_accuracy") {
        println!(
            "  {:<40} clean accuracy {:>7.2}%",
            row.run,
            row.value * 100.0
        );
    }
    println!("results: {}", report.out_dir.join("results.csv").display());
}
