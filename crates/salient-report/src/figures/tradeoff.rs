//! Trade-offs, one point per regime (mean over seeds, error bars +-1 std in both directions):
//! clean vs robust accuracy, and robust accuracy vs the Gini sparseness of each saliency
//! method's maps (Chalasani et al. 2020). Robust accuracy is taken at the largest budget of the
//! `worst_case` attack when there is one, else of the first attack by name.
use super::chart::{self, Axes, LegendEntry};
use super::{err, AnyFigure, DrawResult, Figure, Planned};
use crate::aggregate;
use crate::data::Tables;
use crate::font::FAMILY;
use crate::style::{self, colour, fmt_eps};
use plotters::coord::Shift;
use plotters::prelude::*;
use salient_ir::results::{CLEAN_ACCURACY, ROBUST_ACCURACY, SPARSENESS};

/// One point: group, (x mean, x std), (y mean, y std).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub group: usize,
    pub label: String,
    pub x: (f64, f64),
    pub y: (f64, f64),
}

pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<Point>,
}

pub struct TradeoffFigure {
    pub subtitle: String,
    pub panels: Vec<Panel>,
    pub legend: Vec<LegendEntry>,
}

const PANEL: (u32, u32) = (600, 480);

/// The (attack, eps) at which robust accuracy is compared.
pub fn reference_attack(tables: &Tables) -> Option<(String, f64)> {
    let rows: Vec<_> = tables
        .metric(ROBUST_ACCURACY)
        .filter(|r| r.attack.is_some() && r.eps.is_some())
        .collect();
    let mut attacks: Vec<&str> = rows.iter().filter_map(|r| r.attack.as_deref()).collect();
    attacks.sort();
    let attack = if attacks.contains(&"worst_case") {
        "worst_case"
    } else {
        attacks.first()?
    };
    let eps = rows
        .iter()
        .filter(|r| r.attack.as_deref() == Some(attack))
        .filter_map(|r| r.eps)
        .fold(f64::NEG_INFINITY, f64::max);
    Some((attack.to_string(), eps))
}

fn pair(
    tables: &Tables,
    x: &std::collections::BTreeMap<usize, (f64, f64, usize)>,
    y: &std::collections::BTreeMap<usize, (f64, f64, usize)>,
) -> Vec<Point> {
    x.iter()
        .filter_map(|(g, xv)| {
            y.get(g).map(|yv| Point {
                group: *g,
                label: tables.label(*g),
                x: (xv.0, xv.1),
                y: (yv.0, yv.1),
            })
        })
        .collect()
}

pub fn plan(tables: &Tables) -> Planned {
    let name = "tradeoff".to_string();
    let title = "Trade-offs between accuracy, robustness and sparseness".to_string();
    let Some((attack, eps)) = reference_attack(tables) else {
        return Planned {
            name,
            title,
            caption: String::new(),
            figure: Err(format!("no {ROBUST_ACCURACY} rows in results.csv")),
        };
    };
    let caption = format!(
        "One point per regime (mean over seeds, error bars ±1 std). Robust accuracy under `{attack}` at ε = {}. Gini sparseness of |saliency| is in [0, 1]: higher means attributions concentrated on fewer pixels.",
        fmt_eps(eps)
    );
    let robust = aggregate::scalar(
        tables,
        tables
            .metric(ROBUST_ACCURACY)
            .filter(|r| r.attack.as_deref() == Some(attack.as_str()) && r.eps == Some(eps)),
        100.0,
    );
    let clean = aggregate::scalar(tables, tables.metric(CLEAN_ACCURACY), 100.0);
    let robust_label = format!("robust accuracy (%), {attack} at ε = {}", fmt_eps(eps));
    let mut panels = Vec::new();
    let points = pair(tables, &clean, &robust);
    if !points.is_empty() {
        panels.push(Panel {
            title: "clean vs robust accuracy".into(),
            x_label: "clean accuracy (%)".into(),
            y_label: robust_label.clone(),
            points,
        });
    }
    let mut methods: Vec<String> = tables
        .metric(SPARSENESS)
        .filter_map(|r| r.saliency.clone())
        .collect();
    methods.sort();
    methods.dedup();
    if methods.is_empty() && tables.has_metric(SPARSENESS) {
        methods.push(String::new());
    }
    for m in methods {
        let rows = tables
            .metric(SPARSENESS)
            .filter(|r| r.saliency.as_deref().unwrap_or("") == m);
        let gini = aggregate::scalar(tables, rows, 1.0);
        let points = pair(tables, &gini, &robust);
        if !points.is_empty() {
            let which = if m.is_empty() {
                String::new()
            } else {
                format!(" ({m})")
            };
            panels.push(Panel {
                title: format!("robustness vs sparseness{which}"),
                x_label: format!("Gini sparseness of |saliency|{which}"),
                y_label: robust_label.clone(),
                points,
            });
        }
    }
    if panels.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err("no regime has both clean (or sparseness) and robust accuracy".into()),
        };
    }
    let mut groups: Vec<usize> = panels
        .iter()
        .flat_map(|p| p.points.iter().map(|q| q.group))
        .collect();
    groups.sort();
    groups.dedup();
    let legend = groups
        .into_iter()
        .map(|g| LegendEntry {
            marker: true,
            ..LegendEntry::group(tables.label(g), g)
        })
        .collect();
    let subtitle = format!("robust accuracy: {attack} at ε = {}", fmt_eps(eps));
    Planned {
        name,
        title,
        caption,
        figure: Ok(AnyFigure::Tradeoff(TradeoffFigure {
            subtitle,
            panels,
            legend,
        })),
    }
}

impl Figure for TradeoffFigure {
    fn size(&self) -> (u32, u32) {
        let cols = self.panels.len().min(3) as u32;
        let rows = self.panels.len().div_ceil(3) as u32;
        (PANEL.0 * cols, PANEL.1 * rows + 68 + 40)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = chart::titled(root, "Trade-offs (one point per regime)", &self.subtitle)?;
        let body = chart::with_legend(body, &self.legend)?;
        let cells = body.split_evenly((self.panels.len().div_ceil(3), self.panels.len().min(3)));
        for (panel, cell) in self.panels.iter().zip(cells.iter()) {
            scatter(cell, panel)?;
        }
        Ok(())
    }
}

fn scatter<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> DrawResult {
    let x = chart::padded(
        p.points.iter().flat_map(|q| [q.x.0 - q.x.1, q.x.0 + q.x.1]),
        0.25,
    );
    let y = chart::padded(
        p.points.iter().flat_map(|q| [q.y.0 - q.y.1, q.y.0 + q.y.1]),
        0.25,
    );
    // Accuracies (percent) never leave [0, 100]: keep the padding from showing impossible values.
    let clamp = |r: std::ops::Range<f64>, percent: bool| {
        if percent {
            r.start.max(-3.0)..r.end.min(103.0)
        } else {
            r
        }
    };
    let (x, y) = (
        clamp(x, p.x_label.contains("(%)")),
        clamp(y, p.y_label.contains("(%)")),
    );
    let axes = Axes {
        title: &p.title,
        x_label: &p.x_label,
        y_label: &p.y_label,
        x,
        y,
        x_fmt: &chart::fmt_plain,
        y_fmt: &chart::fmt_plain,
        x_ticks: 7,
    };
    let mut chart = chart::frame(area, &axes)?;
    for q in &p.points {
        let c = colour(q.group).stroke_width(2);
        if q.x.1 > 0.0 {
            chart
                .draw_series(std::iter::once(ErrorBar::new_horizontal(
                    q.y.0,
                    q.x.0 - q.x.1,
                    q.x.0,
                    q.x.0 + q.x.1,
                    c,
                    10,
                )))
                .map_err(err)?;
        }
        if q.y.1 > 0.0 {
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    q.x.0,
                    q.y.0 - q.y.1,
                    q.y.0,
                    q.y.0 + q.y.1,
                    c,
                    10,
                )))
                .map_err(err)?;
        }
    }
    let pixels: Vec<(i32, i32)> = p
        .points
        .iter()
        .map(|q| chart.backend_coord(&(q.x.0, q.y.0)))
        .collect();
    let mut placed: Vec<LabelBox> = Vec::new();
    for (i, q) in p.points.iter().enumerate() {
        chart::markers(&mut chart, q.group, &[(q.x.0, q.y.0)])?;
        // Name the point only where its label overlaps no other label or marker; clustered
        // points are told apart by the legend's colour and marker instead.
        let label = LabelBox::at(pixels[i], &q.label);
        let clear = placed.iter().all(|b| !b.overlaps(&label))
            && pixels
                .iter()
                .enumerate()
                .all(|(j, &m)| j == i || !label.overlaps(&LabelBox::marker(m)));
        if !clear {
            continue;
        }
        placed.push(label);
        let font = (FAMILY, style::TICK).into_font().color(&style::TEXT);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((q.x.0, q.y.0)) + Text::new(q.label.clone(), (10, -22), font),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// A label's (or marker's) box in backend pixels: (left, top, right, bottom).
struct LabelBox(i32, i32, i32, i32);

impl LabelBox {
    /// The box of `text` drawn at offset (10, -22) from the point, at the tick font's size
    /// (about 0.6 em per character).
    fn at((x, y): (i32, i32), text: &str) -> Self {
        let w = (text.chars().count() as f64 * style::TICK as f64 * 0.6).ceil() as i32;
        LabelBox(x + 10, y - 22, x + 10 + w, y - 22 + style::TICK as i32 + 2)
    }

    fn marker((x, y): (i32, i32)) -> Self {
        LabelBox(x - 6, y - 6, x + 6, y + 6)
    }

    fn overlaps(&self, o: &LabelBox) -> bool {
        self.0 < o.2 && o.0 < self.2 && self.1 < o.3 && o.1 < self.3
    }
}
