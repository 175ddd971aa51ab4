//! `salient report DIR`: regenerate the report of a run directory (figures, summary tables,
//! index.html) from its results.csv, training.csv and saved saliency maps, without retraining.
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
