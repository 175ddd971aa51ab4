//! Reports for salient runs, regenerated from what a run leaves in its directory, with no
//! retraining: `results.csv`, `training.csv`, `spec.exp`, `experiment.json` and the saliency
//! maps in `maps/`. [`generate`] writes, into the same directory:
//!
//! - `figures/<name>.png` and `figures/<name>.svg` (plotters; text in the embedded DejaVu Sans):
//!   robust accuracy vs eps, trade-offs, saliency grids, masking and deletion/insertion curves,
//!   ROAR / KAR curves and the accuracy-interpretability trade-off against the training eps,
//!   training curves. A figure whose data is absent is skipped and the index says why;
//! - `summary.csv` (tidy) and `summary.md`: every scalar metric per regime, mean and sample std
//!   over seeds;
//! - `index.html`: one self-contained page with the spec, the summary and every figure inline,
//!   and, when the directory has a `diagnostics.csv`, the evaluation warnings highlighted first.
//!
//! Rendering is deterministic: the same inputs give byte-identical PNG files.
pub mod aggregate;
pub mod base64;
pub mod breakdown;
pub mod data;
pub mod diagnostics;
pub mod error;
pub mod experiment;
pub mod figures;
pub mod font;
pub mod html;
pub mod maps;
pub mod npy;
pub mod stats;
pub mod style;
pub mod table;

pub use error::ReportError;
pub use figures::Rendered;

use std::path::{Path, PathBuf};

/// One figure of the report: rendered, or skipped with the reason.
#[derive(Clone, Debug)]
pub struct FigureStatus {
    pub name: String,
    pub title: String,
    pub outcome: Result<Rendered, String>,
}

/// What [`generate`] wrote.
#[derive(Clone, Debug)]
pub struct ReportOutput {
    pub dir: PathBuf,
    pub index: PathBuf,
    pub summary_csv: PathBuf,
    pub summary_md: PathBuf,
    pub figures: Vec<FigureStatus>,
    /// Things worth telling the user (maps that were skipped, ...).
    pub notes: Vec<String>,
}

impl ReportOutput {
    /// Every file written, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = vec![
            self.index.clone(),
            self.summary_csv.clone(),
            self.summary_md.clone(),
        ];
        for f in &self.figures {
            if let Ok(r) = &f.outcome {
                out.push(r.png.clone());
                out.push(r.svg.clone());
            }
        }
        out
    }
}

/// Regenerate the whole report of the run directory `dir`.
pub fn generate(dir: &Path) -> Result<ReportOutput, ReportError> {
    let mut tables = data::load(dir)?;
    let info = experiment::ExperimentInfo::read(dir)?;
    tables.name_variants(&info.train);
    let maps = maps::load(dir)?;
    let mut notes = maps.as_ref().map(|m| m.notes.clone()).unwrap_or_default();
    let diag = diagnostics::load(dir)?;
    notes.extend(diag.as_deref().and_then(diagnostics::summary_line));
    let chosen_figures = info.chosen_figures(&mut notes);
    let chosen_tables = info.chosen_tables(&mut notes);
    let fig_dir = dir.join("figures");
    std::fs::create_dir_all(&fig_dir).map_err(|e| ReportError::io(&fig_dir, e))?;

    let planned = figures::build(&tables, maps.as_ref(), &chosen_figures);
    let mut statuses = Vec::new();
    let mut pngs = Vec::new();
    for p in &planned {
        let outcome = match &p.figure {
            Ok(fig) => {
                let r = figures::render(fig, &fig_dir, &p.name)?;
                pngs.push(std::fs::read(&r.png).map_err(|e| ReportError::io(&r.png, e))?);
                Ok(r)
            }
            Err(why) => Err(why.clone()),
        };
        statuses.push(FigureStatus {
            name: p.name.clone(),
            title: p.title.clone(),
            outcome,
        });
    }

    let summary = table::summarize(&tables, &chosen_tables);
    let summary_csv = dir.join("summary.csv");
    write(&summary_csv, &summary.to_csv()?)?;
    let summary_md = dir.join("summary.md");
    write(
        &summary_md,
        &format!(
            "# {}: summary\n\n{}",
            experiment_name(dir),
            summary.to_markdown()
        ),
    )?;

    let spec = std::fs::read_to_string(dir.join("spec.exp")).ok();
    if spec.is_none() {
        notes.push("spec.exp is missing: the page shows no spec".into());
    }
    let name = experiment_name(dir);
    let mut png_iter = pngs.iter();
    let page_figures = planned
        .iter()
        .zip(&statuses)
        .map(|(p, s)| html::PageFigure {
            name: &p.name,
            title: &p.title,
            caption: &p.caption,
            outcome: match &s.outcome {
                Ok(r) => Ok((r, png_iter.next().map(Vec::as_slice).unwrap_or(&[]))),
                Err(why) => Err(why.as_str()),
            },
        })
        .collect();
    let page = html::Page {
        experiment: &name,
        spec: spec.as_deref(),
        summary: &summary,
        figures: page_figures,
        notes: &notes,
        diagnostics: diag.as_deref(),
        breakdown: breakdown::collect(&tables.rows),
        failed: html::failed_runs(&tables.rows),
    };
    let index = dir.join("index.html");
    write(&index, &html::render(&page))?;
    Ok(ReportOutput {
        dir: dir.to_path_buf(),
        index,
        summary_csv,
        summary_md,
        figures: statuses,
        notes,
    })
}

/// The experiment's name: `"name"` in experiment.json, else the `experiment NAME` line of
/// spec.exp, else the directory's name.
pub fn experiment_name(dir: &Path) -> String {
    let from_json = std::fs::read_to_string(dir.join("experiment.json"))
        .ok()
        .and_then(|t| {
            serde_json::from_str::<serde_json::Value>(&t)
                .ok()?
                .get("name")?
                .as_str()
                .map(str::to_string)
        });
    let from_spec = || {
        let text = std::fs::read_to_string(dir.join("spec.exp")).ok()?;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("experiment "))
            .map(|rest| {
                rest.trim()
                    .trim_end_matches('{')
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
    };
    from_json.or_else(from_spec).unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "report".into())
    })
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|e| ReportError::io(path, e))
}
