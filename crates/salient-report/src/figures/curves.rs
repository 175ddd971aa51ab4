//! Faithfulness curves of the saliency maps, one line per regime (mean over seeds, band +-1
//! std):
//! - masking (Ismail et al. 2021): test accuracy after replacing the top p% most salient pixels
//!   (`masking_curve`, solid) and p% random pixels (`masking_curve_random`, dashed); a faithful
//!   map makes accuracy drop faster than the random order;
//! - deletion / insertion (Petsiuk et al. 2018, RISE): true-class probability as the most
//!   salient pixels are removed (falls fast for a faithful map: low AUC is good) or inserted
//!   into a blank image (rises fast: high AUC is good).
//!
//! - model-parameter randomisation (Adebayo et al. 2018, cascading): mean Spearman rank
//!   correlation between the maps of the trained model and of copies whose top 1, 2, ... layers
//!   are re-initialised; maps that stay similar do not depend on what the model learned.
//!
//! One panel per saliency method (masking, randomisation), and a deletion and an insertion
//! panel per method.
use super::chart::{self, Axes, LegendEntry, Series, Spread};
use super::{AnyFigure, DrawResult, Figure, Planned};
use crate::aggregate;
use crate::data::Tables;
use crate::style::fmt_sig;
use plotters::coord::Shift;
use plotters::prelude::*;
use salient_ir::results::{
    DELETION, DELETION_CURVE, INSERTION, INSERTION_CURVE, MASKING_CURVE, MASKING_CURVE_RANDOM,
    RANDOMIZATION,
};
use std::collections::BTreeMap;
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
    /// x takes whole values only (classes, layer counts): one tick per integer, no decimals.
    pub integer_x: bool,
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
            shape: None,
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
    for m in methods(tables, MASKING_CURVE) {
        let mut s = series(tables, MASKING_CURVE, &m, 100.0, false);
        s.extend(series(tables, MASKING_CURVE_RANDOM, &m, 100.0, true));
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
            figure: Err(format!("no {MASKING_CURVE} rows in results.csv")),
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
            integer_x: false,
        })),
    }
}

pub fn plan_deletion_insertion(tables: &Tables) -> Planned {
    let name = "deletion_insertion".to_string();
    let title = "Deletion and insertion curves".to_string();
    let caption = "True-class probability as the most salient pixels are deleted (left; a fast fall, low AUC, is faithful) or inserted into a blank image (right; a fast rise, high AUC, is faithful), Petsiuk et al. 2018; mean over seeds, band ±1 std.".to_string();
    let mut all = methods(tables, DELETION_CURVE);
    all.extend(methods(tables, INSERTION_CURVE));
    all.sort();
    all.dedup();
    let mut panels = Vec::new();
    for m in &all {
        for (metric, kind, verb) in [
            (DELETION_CURVE, DELETION, "deleted"),
            (INSERTION_CURVE, INSERTION, "inserted"),
        ] {
            let s = series(tables, metric, m, 1.0, false);
            if s.is_empty() {
                continue;
            }
            let x = x_range(&s);
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
            figure: Err(format!(
                "no {DELETION_CURVE} or {INSERTION_CURVE} rows in results.csv"
            )),
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
            integer_x: false,
        })),
    }
}

/// For each run, its `randomization` layer indices in cascade order (top layer first), so that a
/// row's x is the number of layers re-initialised so far.
fn cascade_order(tables: &Tables) -> BTreeMap<(String, String), Vec<i64>> {
    let mut order: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for r in tables.metric(RANDOMIZATION) {
        if let Some(p) = r.point {
            let layers = order
                .entry((r.run.clone(), r.saliency.clone().unwrap_or_default()))
                .or_default();
            if !layers.contains(&(p as i64)) {
                layers.push(p as i64);
            }
        }
    }
    for layers in order.values_mut() {
        layers.sort_unstable_by(|a, b| b.cmp(a));
    }
    order
}

pub fn plan_randomization(tables: &Tables) -> Planned {
    let name = "randomization".to_string();
    let title = "Model-parameter randomisation test".to_string();
    let caption = "Mean Spearman rank correlation between the saliency maps of the trained model and of copies whose top 1, 2, ... layers with parameters are re-initialised, from the output down (cascading randomisation, Adebayo et al. 2018); mean over seeds, band ±1 std. A map that depends on the learned weights falls towards 0; one that stays high is insensitive to the model.".to_string();
    let order = cascade_order(tables);
    let mut panels = Vec::new();
    for m in methods(tables, RANDOMIZATION) {
        let rows = tables
            .metric(RANDOMIZATION)
            .filter(|r| r.saliency.as_deref().unwrap_or("") == m);
        let x = |r: &crate::data::ResultRow| {
            let layers = order.get(&(r.run.clone(), r.saliency.clone().unwrap_or_default()))?;
            let at = layers
                .iter()
                .position(|&l| Some(l) == r.point.map(|p| p as i64))?;
            Some(at as f64 + 1.0)
        };
        let s: Vec<Series> = aggregate::curves(tables, rows, x, 1.0)
            .into_iter()
            .map(|(g, points)| Series {
                label: tables.label(g),
                colour: g,
                points,
                dashed: false,
                spread: Spread::Band,
                markers: true,
            })
            .collect();
        if s.is_empty() {
            continue;
        }
        let negative = s.iter().any(|s| s.points.iter().any(|p| p.1 - p.2 < 0.0));
        let x = x_range(&s);
        let x = if x.end - x.start < 1.0 {
            0.5..x.end + 0.5
        } else {
            x
        };
        panels.push(CurvePanel {
            title: format!("randomisation{}", method_suffix(&m)),
            x_label: "layers re-initialised, from the output down".into(),
            y_label: "Spearman rank correlation".into(),
            x,
            y: if negative { -1.0..1.0 } else { 0.0..1.0 },
            series: s,
        });
    }
    if panels.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err(format!("no {RANDOMIZATION} rows in results.csv")),
        };
    }
    let legend = legend_for(tables, &panels, None);
    let cols = panels.len().min(3);
    Planned {
        name,
        title: title.clone(),
        caption,
        figure: Ok(AnyFigure::Randomization(CurveFigure {
            title,
            panels,
            cols,
            legend,
            integer_x: true,
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
                x_fmt: if self.integer_x {
                    &fmt_integer
                } else {
                    &|v| fmt_sig(*v, 3)
                },
                y_fmt: &chart::fmt_plain,
                x_ticks: if self.integer_x {
                    (p.x.end - p.x.start).round().max(1.0) as usize + 1
                } else {
                    7
                },
            };
            chart::line_panel(cell, &axes, &p.series)?;
        }
        Ok(())
    }
}

/// Tick labels of a whole-valued axis: the integer, or nothing between integers.
fn fmt_integer(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}
