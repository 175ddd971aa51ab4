//! Faithfulness curves of the saliency maps, one line per regime (mean over seeds, band +-1
//! std):
//! - masking (Ismail et al. 2021): test accuracy after replacing the top p% most salient pixels
//!   (`masking_curve`, solid) and p% random pixels (`masking_curve_random`, dashed); a faithful
//!   map makes accuracy drop faster than the random order;
//! - deletion / insertion (Petsiuk et al. 2018, RISE): true-class probability as the most
//!   salient pixels are removed (falls fast for a faithful map: low AUC is good) or inserted
//!   into a blank image (rises fast: high AUC is good).
//!
//! One panel per saliency method (masking), and a deletion and an insertion panel per method.
use super::chart::{self, Axes, LegendEntry, Series, Spread};
use super::{AnyFigure, DrawResult, Figure, Planned};
use crate::aggregate;
use crate::data::Tables;
use crate::style::fmt_sig;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;

pub struct CurvePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub series: Vec<Series>,
}

pub struct CurveFigure {
    pub title: String,
    pub panels: Vec<CurvePanel>,
    pub cols: usize,
    pub legend: Vec<LegendEntry>,
}

const PANEL: (u32, u32) = (560, 430);

/// Saliency methods that have rows of `metric`, sorted (`""` for rows without a method).
fn methods(tables: &Tables, metric: &str) -> Vec<String> {
    let mut m: Vec<String> = tables
        .metric(metric)
        .map(|r| r.saliency.clone().unwrap_or_default())
        .collect();
    m.sort();
    m.dedup();
    m
}

/// Series of one curve metric for one method.
fn series(tables: &Tables, metric: &str, method: &str, scale: f64, dashed: bool) -> Vec<Series> {
    let rows = tables
        .metric(metric)
        .filter(|r| r.saliency.as_deref().unwrap_or("") == method);
    aggregate::curves(tables, rows, |r| r.point, scale)
        .into_iter()
        .map(|(g, points)| Series {
            label: tables.label(g),
            colour: g,
            points,
            dashed,
            spread: Spread::Band,
            markers: !dashed,
        })
        .collect()
}

fn legend_for(tables: &Tables, panels: &[CurvePanel], extra: Option<&str>) -> Vec<LegendEntry> {
    let mut groups: Vec<usize> = panels
        .iter()
        .flat_map(|p| p.series.iter().map(|s| s.colour))
        .collect();
    groups.sort();
    groups.dedup();
    let mut out: Vec<LegendEntry> = groups
        .into_iter()
        .map(|g| LegendEntry::group(tables.label(g), g))
        .collect();
    if let Some(label) = extra {
        out.push(LegendEntry {
            label: label.to_string(),
            colour: None,
            dashed: true,
            marker: false,
        });
    }
    out
}

fn x_range(series: &[Series]) -> Range<f64> {
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if lo.is_finite() && hi > lo {
        lo..hi
    } else {
        0.0..1.0
    }
}

fn method_suffix(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(" ({m})")
    }
}

pub fn plan_masking(tables: &Tables) -> Planned {
    let name = "masking".to_string();
    let title = "Masking curves: accuracy as salient pixels are replaced".to_string();
    let caption = "Test accuracy after replacing the top p% most salient pixels (solid) or p% random pixels (dashed), without retraining (Ismail et al. 2021); mean over seeds, band ±1 std. The gap between solid and dashed lines measures how faithful the maps are.".to_string();
    let mut panels = Vec::new();
    for m in methods(tables, "masking_curve") {
        let mut s = series(tables, "masking_curve", &m, 100.0, false);
        s.extend(series(tables, "masking_curve_random", &m, 100.0, true));
        let x = x_range(&s);
        panels.push(CurvePanel {
            title: format!("masking{}", method_suffix(&m)),
            x_label: "salient pixels replaced (%)".into(),
            y_label: "test accuracy (%)".into(),
            x,
            y: 0.0..100.0,
            series: s,
        });
    }
    if panels.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err("no masking_curve rows in results.csv".into()),
        };
    }
    let legend = legend_for(tables, &panels, Some("random pixel order (baseline)"));
    let cols = panels.len().min(3);
    Planned {
        name,
        title: title.clone(),
        caption,
        figure: Ok(AnyFigure::Masking(CurveFigure {
            title,
            panels,
            cols,
            legend,
        })),
    }
}

pub fn plan_deletion_insertion(tables: &Tables) -> Planned {
    let name = "deletion_insertion".to_string();
    let title = "Deletion and insertion curves".to_string();
    let caption = "True-class probability as the most salient pixels are deleted (left; a fast fall, low AUC, is faithful) or inserted into a blank image (right; a fast rise, high AUC, is faithful), Petsiuk et al. 2018; mean over seeds, band ±1 std.".to_string();
    let mut all = methods(tables, "deletion_curve");
    all.extend(methods(tables, "insertion_curve"));
    all.sort();
    all.dedup();
    let mut panels = Vec::new();
    for m in &all {
        for (metric, verb) in [
            ("deletion_curve", "deleted"),
            ("insertion_curve", "inserted"),
        ] {
            let s = series(tables, metric, m, 1.0, false);
            if s.is_empty() {
                continue;
            }
            let x = x_range(&s);
            let kind = metric.trim_end_matches("_curve");
            panels.push(CurvePanel {
                title: format!("{kind}{}", method_suffix(m)),
                x_label: format!("fraction of pixels {verb}"),
                y_label: "true-class probability".into(),
                x,
                y: 0.0..1.0,
                series: s,
            });
        }
    }
    if panels.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err("no deletion_curve or insertion_curve rows in results.csv".into()),
        };
    }
    let legend = legend_for(tables, &panels, None);
    let cols = if panels.len() % 2 == 0 {
        2
    } else {
        panels.len().min(3)
    };
    Planned {
        name,
        title: title.clone(),
        caption,
        figure: Ok(AnyFigure::DeletionInsertion(CurveFigure {
            title,
            panels,
            cols,
            legend,
        })),
    }
}

impl Figure for CurveFigure {
    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.cols) as u32;
        (PANEL.0 * self.cols as u32, PANEL.1 * rows + 44 + 40)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = chart::titled(root, &self.title, "")?;
        let body = chart::with_legend(body, &self.legend)?;
        let cells = body.split_evenly((self.panels.len().div_ceil(self.cols), self.cols));
        for (p, cell) in self.panels.iter().zip(cells.iter()) {
            let axes = Axes {
                title: &p.title,
                x_label: &p.x_label,
                y_label: &p.y_label,
                x: p.x.clone(),
                y: p.y.clone(),
                x_fmt: &|v| fmt_sig(*v, 3),
                y_fmt: &chart::fmt_plain,
                x_ticks: 7,
            };
            chart::line_panel(cell, &axes, &p.series)?;
        }
        Ok(())
    }
}
