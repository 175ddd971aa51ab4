//! `salient`: validate, run and report adversarial-robustness / interpretability experiments
//! declared in `.exp` files.
//!
//! The data flows one way: text -> parse -> check (salient-lang) -> IR (salient-ir) ->
//! train / attack / explain (salient-engine) -> results.csv -> report.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod check;
mod plan;
mod report;
mod run;

#[derive(Parser)]
#[command(
    name = "salient",
    version,
    about = "Adversarial robustness and interpretability experiments from one .exp file"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check one or more .exp files: exit 0 if all are valid, 1 if any has errors, 2 on usage or
    /// I/O errors.
    Check(check::CheckArgs),
    /// Check a spec, train every run (or reuse its checkpoint), evaluate, and write results.csv.
    Run(run::RunArgs),
    /// Regenerate a run directory's report (figures, summary tables, index.html) from its
    /// results.csv, training.csv and saved saliency maps, without retraining.
    Report(report::ReportArgs),
    /// Write a cluster submission for a spec's grid: a Slurm job array and a dependent report
    /// job (`--slurm`), or a Kubernetes Indexed Job manifest (`--k8s`).
    Plan(Box<plan::PlanArgs>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: --help / --version are not errors.
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Check(args) => check::main(args),
        Command::Run(args) => run::main(args),
        Command::Report(args) => report::main(args),
        Command::Plan(args) => plan::main(*args),
    }
}
