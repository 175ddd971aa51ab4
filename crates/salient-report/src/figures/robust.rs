//! Robust accuracy against the perturbation budget: one panel per attack (the per-example
//! `worst_case` over attacks last), one line per regime, mean over seeds with +-1 std error
//! bars. Where the attack has no eps = 0 point, the clean accuracy is drawn at eps = 0 (an
//! attack with budget 0 leaves the input unchanged).
use super::chart::{self, Axes, LegendEntry, Series, Spread};
use super::{AnyFigure, DrawResult, Figure, Planned};
use crate::aggregate;
use crate::data::Tables;
use crate::style::fmt_eps;
use plotters::coord::Shift;
use plotters::prelude::*;
use salient_ir::results::{CLEAN_ACCURACY, ROBUST_ACCURACY};

pub struct RobustFigure {
    /// (attack, series) per panel.
    pub panels: Vec<(String, Vec<Series>)>,
    pub legend: Vec<LegendEntry>,
}

const PANEL: (u32, u32) = (560, 440);

/// The panels' attacks: sorted by name, `worst_case` last.
fn attacks(tables: &Tables) -> Vec<String> {
    let mut names: Vec<String> = tables
        .metric(ROBUST_ACCURACY)
        .filter_map(|r| r.attack.clone())
        .collect();
    names.sort_by_key(|a| (a == "worst_case", a.clone()));
    names.dedup();
    names
}

pub fn plan(tables: &Tables) -> Planned {
    let name = "robust_accuracy".to_string();
    let title = "Robust accuracy vs perturbation budget".to_string();
    let caption = "Test accuracy under each attack as the budget ε grows; mean over seeds, error bars ±1 std. ε = 0 is the clean accuracy. `worst_case` counts an example as correct only if every attack fails on it.".to_string();
    let attacks = attacks(tables);
    if attacks.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err(format!("no {ROBUST_ACCURACY} rows in results.csv")),
        };
    }
    let clean = aggregate::curves(tables, tables.metric(CLEAN_ACCURACY), |_| Some(0.0), 100.0);
    let mut panels = Vec::new();
    for attack in attacks {
        let rows = tables
            .metric(ROBUST_ACCURACY)
            .filter(|r| r.attack.as_deref() == Some(attack.as_str()));
        let mut series = Vec::new();
        for (g, mut pts) in aggregate::curves(tables, rows, |r| r.eps, 100.0) {
            if !pts.iter().any(|p| p.0 == 0.0) {
                if let Some((_, c)) = clean.iter().find(|(cg, _)| *cg == g) {
                    pts.insert(0, c[0]);
                }
            }
            series.push(Series {
                label: tables.label(g),
                colour: g,
                points: pts,
                dashed: false,
                spread: Spread::ErrorBars,
                markers: true,
            });
        }
        panels.push((attack, series));
    }
    let mut groups: Vec<usize> = panels
        .iter()
        .flat_map(|(_, s)| s.iter().map(|s| s.colour))
        .collect();
    groups.sort();
    groups.dedup();
    let legend = groups
        .into_iter()
        .map(|g| LegendEntry::group(tables.label(g), g))
        .collect();
    Planned {
        name,
        title,
        caption,
        figure: Ok(AnyFigure::Robust(RobustFigure { panels, legend })),
    }
}

impl Figure for RobustFigure {
    fn size(&self) -> (u32, u32) {
        let cols = self.panels.len().min(3) as u32;
        let rows = self.panels.len().div_ceil(3) as u32;
        (
            PANEL.0 * cols.max(1),
            PANEL.1 * rows + 44 + 40 + 30 * (self.legend.len() as u32 / 5),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = chart::titled(root, "Robust accuracy vs perturbation budget", "")?;
        let body = chart::with_legend(body, &self.legend)?;
        let cols = self.panels.len().min(3);
        let rows = self.panels.len().div_ceil(3);
        let cells = body.split_evenly((rows, cols));
        let max_eps = self
            .panels
            .iter()
            .flat_map(|(_, s)| s.iter().flat_map(|s| s.points.iter().map(|p| p.0)))
            .fold(0.0f64, f64::max);
        let x_max = if max_eps > 0.0 { max_eps * 1.06 } else { 1.0 };
        for ((attack, series), cell) in self.panels.iter().zip(cells.iter()) {
            let title = if attack == "worst_case" {
                "worst case over attacks".to_string()
            } else {
                format!("attack: {attack}")
            };
            let axes = Axes {
                title: &title,
                x_label: "perturbation budget ε (pixel scale [0, 1])",
                y_label: "robust accuracy (%)",
                x: -x_max * 0.02..x_max,
                y: 0.0..100.0,
                x_fmt: &|v| fmt_eps(*v),
                y_fmt: &chart::fmt_plain,
                x_ticks: 7,
            };
            chart::line_panel(cell, &axes, series)?;
        }
        Ok(())
    }
}
