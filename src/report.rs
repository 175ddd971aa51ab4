//! `salient report DIR`: regenerate the report of a run directory (figures, summary tables,
//! index.html) from its results.csv, training.csv and saved saliency maps, without retraining.
//!
//! First rebuilds `results.csv` / `training.csv` from the runs' own files in `runs/<id>/` (see
//! `salient_engine::results`), so a folder filled by several processes reports every run.
//!
//! Exit status: 0 written; 2 the directory does not exist, has no results.csv (an error naming
//! the file, not an empty report), or a file could not be read or written.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ReportArgs {
    /// The run directory (what `salient run` wrote: results.csv, training.csv, maps/).
    pub dir: PathBuf,
    /// Print only errors.
    #[arg(long)]
    pub quiet: bool,
}

pub fn main(args: ReportArgs) -> ExitCode {
    if !args.dir.is_dir() {
        eprintln!("error: {} is not a directory", args.dir.display());
        return ExitCode::from(2);
    }
    // Rebuild results.csv / training.csv from the runs' own files first (runs finished by
    // other processes since the last merge), in the order of the spec in experiment.json.
    // A folder from an older version (an experiment.json this IR cannot read) keeps its files.
    if let Err(e) = merge_runs(&args.dir) {
        eprintln!("warning: results.csv was not rebuilt from runs/: {e}");
    }
    match salient_report::generate(&args.dir) {
        Ok(out) => {
            if !args.quiet {
                for f in &out.figures {
                    match &f.outcome {
                        Ok(r) => println!("  figure {:<28} {}", f.name, r.png.display()),
                        Err(why) => println!("  figure {:<28} skipped: {why}", f.name),
                    }
                }
                for n in &out.notes {
                    println!("  note: {n}");
                }
                println!(
                    "summary: {} and {}",
                    out.summary_csv.display(),
                    out.summary_md.display()
                );
                println!("report: {}", out.index.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Merge the runs' own result files when the folder has them (`runs/<id>/results.csv`) and the
/// experiment it was run with (`experiment.json`); a folder without either is left as it is.
fn merge_runs(dir: &std::path::Path) -> Result<(), String> {
    let json = dir.join("experiment.json");
    if !dir.join("runs").is_dir() || !json.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
    let exp: salient_ir::Experiment =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    let order: Vec<String> = exp.runs.iter().map(|r| r.id.clone()).collect();
    salient_engine::results::merge(dir, &order).map_err(|e| e.to_string())?;
    Ok(())
}
