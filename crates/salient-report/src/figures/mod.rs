//! Figures. Each figure is a value implementing [`Figure`]: its size and how to draw it on any
//! plotters backend, so one drawing routine writes both the PNG and the SVG file.
//! `build(tables, maps)` decides which figures the data supports; a figure whose data is absent
//! is skipped with a reason that the index shows.
pub mod chart;
pub mod classes;
pub mod curves;
pub mod retrain;
pub mod robust;
pub mod saliency_grid;
pub mod tradeoff;
pub mod training;

use crate::data::Tables;
use crate::error::ReportError;
use crate::font;
use crate::maps::MapSet;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// A drawing error, in words.
pub type DrawResult = Result<(), String>;

/// Turn any plotters error into words.
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Something that can be drawn on a plotters drawing area.
pub trait Figure {
    /// Pixel size (width, height) of the PNG; the SVG uses the same units.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Every figure kind the report can hold, with the data it was built from.
pub enum AnyFigure {
    Robust(robust::RobustFigure),
    Tradeoff(tradeoff::TradeoffFigure),
    Masking(curves::CurveFigure),
    DeletionInsertion(curves::CurveFigure),
    Training(training::TrainingFigure),
    Saliency(saliency_grid::SaliencyGrid),
    Randomization(curves::CurveFigure),
    Classes(curves::CurveFigure),
    /// `roar_kar` and `accuracy_interpretability`.
    Lines(retrain::LinesFigure),
}

impl Figure for AnyFigure {
    fn size(&self) -> (u32, u32) {
        match self {
            AnyFigure::Robust(f) => f.size(),
            AnyFigure::Tradeoff(f) => f.size(),
            AnyFigure::Masking(f)
            | AnyFigure::DeletionInsertion(f)
            | AnyFigure::Randomization(f)
            | AnyFigure::Classes(f) => f.size(),
            AnyFigure::Training(f) => f.size(),
            AnyFigure::Saliency(f) => f.size(),
            AnyFigure::Lines(f) => f.size(),
        }
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        match self {
            AnyFigure::Robust(f) => f.draw(root),
            AnyFigure::Tradeoff(f) => f.draw(root),
            AnyFigure::Masking(f)
            | AnyFigure::DeletionInsertion(f)
            | AnyFigure::Randomization(f)
            | AnyFigure::Classes(f) => f.draw(root),
            AnyFigure::Training(f) => f.draw(root),
            AnyFigure::Saliency(f) => f.draw(root),
            AnyFigure::Lines(f) => f.draw(root),
        }
    }
}

/// A planned figure: its file name (without extension), title and caption, and either the
/// figure or the reason it is skipped.
pub struct Planned {
    pub name: String,
    pub title: String,
    pub caption: String,
    pub figure: Result<AnyFigure, String>,
}

/// Decide the report's figures from the data, in the order the index shows them. Only the
/// figures named in `chosen` (names of [`crate::experiment::FIGURES`]) are planned.
pub fn build(tables: &Tables, maps: Option<&MapSet>, chosen: &[String]) -> Vec<Planned> {
    let mut out = Vec::new();
    for name in crate::experiment::FIGURES {
        if !chosen.iter().any(|c| c == name) {
            continue;
        }
        match *name {
            "robustness" => out.push(robust::plan(tables)),
            "tradeoff" => out.push(tradeoff::plan(tables)),
            "saliency_grid" => out.extend(saliency_grid::plan(tables, maps)),
            "masking" => out.push(curves::plan_masking(tables)),
            "deletion_insertion" => out.push(curves::plan_deletion_insertion(tables)),
            "randomization" => out.push(curves::plan_randomization(tables)),
            "roar_kar" => out.push(retrain::plan_roar_kar(tables)),
            "accuracy_interpretability" => {
                out.push(retrain::plan_accuracy_interpretability(tables))
            }
            "class_accuracy" => out.push(classes::plan(tables)),
            "training" => out.push(training::plan(tables)),
            // Every name has an arm (`every_choosable_name_plans_a_figure`).
            _ => {}
        }
    }
    out
}

/// The files one rendered figure wrote.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub png: PathBuf,
    pub svg: PathBuf,
    pub size: (u32, u32),
}

/// Draw a figure twice, to `dir/<name>.png` (RGB, the figure's pixel size) and
/// `dir/<name>.svg`.
pub fn render<F: Figure>(figure: &F, dir: &Path, name: &str) -> Result<Rendered, ReportError> {
    font::ensure()?;
    let size = figure.size();
    let png = dir.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| ReportError::plot(name, e))?;
        figure.draw(&root).map_err(|e| ReportError::plot(name, e))?;
        root.present()
            .map_err(|e| ReportError::plot(name, format!("cannot write {}: {e}", png.display())))?;
    }
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| ReportError::plot(name, e))?;
        figure.draw(&root).map_err(|e| ReportError::plot(name, e))?;
        root.present().map_err(|e| ReportError::plot(name, e))?;
    }
    // plotters-svg labels embedded bitmaps `data:png`, which is not a MIME type browsers accept.
    let text = text.replace("data:png;base64,", "data:image/png;base64,");
    let svg = dir.join(format!("{name}.svg"));
    std::fs::write(&svg, text).map_err(|e| ReportError::io(&svg, e))?;
    Ok(Rendered { png, svg, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choosable_name_plans_a_figure_and_only_the_chosen_are_planned() {
        let t = Tables::default();
        for name in crate::experiment::FIGURES {
            let plans = build(&t, None, &[name.to_string()]);
            assert_eq!(plans.len(), 1, "{name}");
        }
        let all: Vec<String> = crate::experiment::FIGURES
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            build(&t, None, &all).len(),
            crate::experiment::FIGURES.len()
        );
        let names: Vec<String> = build(&t, None, &["training".into(), "robustness".into()])
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["robust_accuracy", "training"]);
    }
}
