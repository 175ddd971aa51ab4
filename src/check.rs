//! `salient check FILE...`: parse and check `.exp` specs, print diagnostics, and for a valid
//! file a short summary (models, sweep axes, counts of runs and evaluations).
//!
//! Exit status: 0 when every file is valid (warnings allowed), 1 when any has errors, 2 when a
//! file cannot be read (usage errors also exit 2, from clap in `main.rs`).

use clap::{Args, ValueEnum};
use salient_ir::{DataKind, Experiment};
use salient_lang::{line_col, CheckOutput, Diagnostic};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// The .exp files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format: `human` (rendered diagnostics and a summary) or `json` (one array of
    /// diagnostics on stdout, for CI; with `--runs`, an object that also lists the run ids).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also list every run id of each valid file: with `--format json` the output becomes one
    /// object `{"diagnostics": [...], "files": [{"file", "experiment", "runs": [{"id", "model",
    /// "regime", "seed", "cost"}]}]}` (`cost`: the estimate `--tasks` balances by); in the human
    /// format every id is printed, one per line, after the summary.
    #[arg(long)]
    pub runs: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn main(args: CheckArgs) -> ExitCode {
    let mut io_error = false;
    let mut any_errors = false;
    let mut json = Vec::new();
    let mut files = Vec::new();
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for path in &args.files {
        let file = path.display().to_string();
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                io_error = true;
                eprintln!("error: cannot read {file}: {e}");
                if args.format == Format::Json {
                    json.push(serde_json::json!({
                        "file": file, "line": 0, "column": 0, "code": "salient::io",
                        "severity": "error", "message": format!("cannot read {file}: {e}"), "help": null,
                    }));
                }
                continue;
            }
        };
        let out = salient_lang::check(&file, &source);
        any_errors |= !out.is_ok();
        match args.format {
            Format::Json => {
                json.extend(out.diagnostics.iter().map(|d| diag_json(&file, &source, d)));
                if let Some(exp) = &out.experiment {
                    files.push(runs_json(&file, exp));
                }
            }
            Format::Human => {
                if !out.diagnostics.is_empty() {
                    eprint!(
                        "{}",
                        salient_lang::render(&file, &source, &out.diagnostics, color)
                    );
                }
                print_result(&out);
                if let (true, Some(exp)) = (args.runs, &out.experiment) {
                    println!("  run ids:");
                    for r in &exp.runs {
                        println!("    {}", r.id);
                    }
                }
            }
        }
    }
    if args.format == Format::Json {
        let doc = if args.runs {
            serde_json::json!({ "diagnostics": json, "files": files })
        } else {
            serde_json::Value::Array(json)
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "[]".to_string())
        );
    }
    if io_error {
        ExitCode::from(2)
    } else if any_errors {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A valid file's run ids (`--runs`), in the spec's order, with the cost `--tasks` balances by.
fn runs_json(file: &str, exp: &Experiment) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = exp
        .runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "model": r.model,
                "regime": r.regime.label,
                "seed": r.train.seed,
                "cost": salient_engine::runner::run_cost(exp, r),
            })
        })
        .collect();
    serde_json::json!({ "file": file, "experiment": exp.name, "runs": runs })
}

fn diag_json(file: &str, source: &str, d: &Diagnostic) -> serde_json::Value {
    let (line, column) = d.line_col(source);
    let (end_line, end_column) = line_col(source, d.span.end);
    serde_json::json!({
        "file": file,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "code": d.code.as_str(),
        "severity": d.severity.to_string(),
        "message": d.message,
        "label": d.label,
        "help": d.help,
    })
}

fn print_result(out: &CheckOutput) {
    let errors = out.errors().count();
    let warnings = out.warnings().count();
    match &out.experiment {
        None => eprintln!(
            "{}: {errors} error{}, {warnings} warning{}",
            out.name,
            plural(errors),
            plural(warnings)
        ),
        Some(exp) => {
            let w = if warnings > 0 {
                format!(" ({warnings} warning{})", plural(warnings))
            } else {
                String::new()
            };
            println!("{}: ok{w}", out.name);
            print!("{}", summary(exp));
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `1234567` -> `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary of a valid experiment.
pub fn summary(exp: &Experiment) -> String {
    let mut s = String::new();
    let d = &exp.data;
    let kind = match d.kind {
        DataKind::Mnist => "mnist",
        DataKind::FashionMnist => "fashion_mnist",
        DataKind::Idx => "idx",
        DataKind::Cifar10 { .. } => "cifar10",
        DataKind::Synthetic { .. } => "synthetic",
    };
    s += &format!(
        "  experiment {}: data {kind} {}x{}x{}, {} classes\n",
        exp.name, d.shape.c, d.shape.h, d.shape.w, d.classes
    );
    s += "  models:\n";
    let width = exp.models.iter().map(|m| m.name.len()).max().unwrap_or(0);
    for m in &exp.models {
        s += &format!(
            "    {:width$}  {:>12} params  {} layers  {} -> {}\n",
            m.name,
            thousands(m.params),
            m.layers.len(),
            m.input,
            m.output
        );
    }
    if exp.sweeps.is_empty() {
        s += "  sweeps: none\n";
    } else {
        s += "  sweeps:\n";
        for (path, values) in &exp.sweeps {
            s += &format!("    {path} = [{}]\n", values.join(", "));
        }
    }
    let (runs, attacks, saliency) = exp.counts();
    s += &format!(
        "  {runs} training run{}, {attacks} attack evaluation{} ({} attack points), {saliency} saliency evaluation{} ({} methods)\n",
        plural(runs),
        plural(attacks),
        exp.attacks.len(),
        plural(saliency),
        exp.saliency.len()
    );
    for r in exp.runs.iter().take(12) {
        s += &format!("    {}\n", r.id);
    }
    if exp.runs.len() > 12 {
        s += &format!("    ... and {} more\n", exp.runs.len() - 12);
    }
    // The largest run's estimated training memory (check refuses above `train { max_memory }`).
    if let Some((run, m)) = exp
        .runs
        .iter()
        .filter_map(|r| salient_lang::training_memory(exp, r).map(|m| (r, m)))
        .reduce(|best, x| if x.1.total > best.1.total { x } else { best })
    {
        s += &format!(
            "  memory (estimate, largest run {}): {} = weights {} + gradients {} + optimizer {} + activations {} (batch {}) + data {}\n",
            run.id,
            salient_lang::human_bytes(m.total),
            salient_lang::human_bytes(m.weights),
            salient_lang::human_bytes(m.gradients),
            salient_lang::human_bytes(m.optimizer),
            salient_lang::human_bytes(m.activations),
            m.batch,
            salient_lang::human_bytes(m.data),
        );
    }
    s
}

/// Read and check the spec at `path` for a command that needs a valid one (`run`, `plan`):
/// diagnostics go to stderr; an unreadable file is exit 2 and a spec with errors exit 1 (as
/// `salient check`), with "`FILE` has errors; `nothing`". Gives the file name, its text and the
/// experiment.
pub fn checked_spec(
    path: &std::path::Path,
    nothing: &str,
) -> Result<(String, String, Experiment), ExitCode> {
    let file = path.display().to_string();
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {file}: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let checked = salient_lang::check(&file, &source);
    if !checked.diagnostics.is_empty() {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        eprint!(
            "{}",
            salient_lang::render(&file, &source, &checked.diagnostics, color)
        );
    }
    match checked.experiment {
        Some(exp) => Ok((file, source, exp)),
        None => {
            eprintln!("error: {file} has errors; {nothing}");
            Err(ExitCode::from(1))
        }
    }
}
