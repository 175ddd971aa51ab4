//! `salient run SPEC`: check the spec, train each run (or reuse its checkpoint), evaluate, and
//! write `results.csv` / `training.csv` in the output directory.
//!
//! Exit status: 0 done; 1 the spec has errors; 2 usage or I/O errors reading the spec; 3 the
//! command failed (bad data, unwritable output) or one or more runs failed (divergence, device;
//! the other runs went on and are kept); 130 interrupted by Ctrl-C (finished runs are kept).

use clap::{Args, ValueEnum};
use salient_engine::{DeviceKind, EngineError, RunOptions};
use std::io::IsTerminal;
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
    /// Run only the runs whose id contains this text (repeat or comma-separate for several,
    /// e.g. `--only standard,sgt`); rows of the other runs already in the output directory are
    /// kept.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

pub fn main(args: RunArgs) -> ExitCode {
    let file = args.spec.display().to_string();
    let source = match std::fs::read_to_string(&args.spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = salient_lang::check(&file, &source);
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if !checked.diagnostics.is_empty() {
        eprint!(
            "{}",
            salient_lang::render(&file, &source, &checked.diagnostics, color)
        );
    }
    let Some(exp) = checked.experiment else {
        eprintln!("error: {file} has errors; nothing was run");
        return ExitCode::from(1);
    };

    let selected = match salient_engine::runner::select_runs(&exp, &args.only) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&exp.report.dir));
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        // A second Ctrl-C while stopping exits at once.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping after the current step (Ctrl-C again to quit now)...");
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
        only: args.only.clone(),
        interrupt,
    };
    let (runs, attacks, saliency) = exp.counts();
    if !args.quiet {
        eprintln!(
            "{}: {runs} training run(s), {attacks} attack evaluation(s), {saliency} saliency evaluation(s); output in {}",
            exp.name,
            out_dir.display()
        );
        if selected.len() < exp.runs.len() {
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
