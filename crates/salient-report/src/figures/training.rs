//! Training curves from `training.csv`: loss and accuracy per epoch, one line per run (colour
//! and marker by regime, so the seeds of a regime share a colour). Test accuracy is solid,
//! training accuracy (measured on the fly during the epoch) dashed.
use super::chart::{self, Axes, LegendEntry, Series, Spread};
use super::{AnyFigure, DrawResult, Figure, Planned};
use crate::data::Tables;
use crate::style::fmt_sig;
use plotters::coord::Shift;
use plotters::prelude::*;

pub struct TrainingFigure {
    pub loss: Vec<Series>,
    pub accuracy: Vec<Series>,
    pub epochs: usize,
    pub legend: Vec<LegendEntry>,
}

const PANEL: (u32, u32) = (600, 440);

pub fn plan(tables: &Tables) -> Planned {
    let name = "training".to_string();
    let title = "Training curves".to_string();
    let caption = "Training loss (left) and accuracy (right) per epoch for every run; runs of one regime share a colour. Test accuracy solid, training accuracy (running, during the epoch) dashed.".to_string();
    let mut runs: Vec<&str> = Vec::new();
    for c in &tables.curves {
        if !runs.contains(&c.run.as_str()) {
            runs.push(&c.run);
        }
    }
    if runs.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err("training.csv is missing or empty".into()),
        };
    }
    let (mut loss, mut accuracy) = (Vec::new(), Vec::new());
    let mut train_acc = Vec::new();
    let mut epochs = 1;
    for run in runs {
        let mut rows: Vec<_> = tables.curves.iter().filter(|c| c.run == run).collect();
        rows.sort_by_key(|c| c.epoch);
        let Some(g) = tables.group_of_curve(rows[0]) else {
            continue;
        };
        epochs = epochs.max(rows.last().map_or(1, |r| r.epoch));
        let line = |f: &dyn Fn(&crate::data::CurveRow) -> f64| {
            rows.iter()
                .map(|r| (r.epoch as f64, f(r), 0.0))
                .collect::<Vec<_>>()
        };
        let label = format!("{} (seed {})", tables.label(g), rows[0].seed);
        loss.push(Series {
            label: label.clone(),
            colour: g,
            points: line(&|r| r.loss),
            dashed: false,
            spread: Spread::Band,
            markers: true,
        });
        accuracy.push(Series {
            label: label.clone(),
            colour: g,
            points: line(&|r| r.test_accuracy * 100.0),
            dashed: false,
            spread: Spread::Band,
            markers: true,
        });
        train_acc.push(Series {
            label,
            colour: g,
            points: line(&|r| r.train_accuracy * 100.0),
            dashed: true,
            spread: Spread::Band,
            markers: false,
        });
    }
    accuracy.extend(train_acc);
    let mut groups: Vec<usize> = loss.iter().map(|s| s.colour).collect();
    groups.sort();
    groups.dedup();
    let mut legend: Vec<LegendEntry> = groups
        .into_iter()
        .map(|g| LegendEntry::group(tables.label(g), g))
        .collect();
    legend.push(LegendEntry {
        label: "training accuracy".into(),
        colour: None,
        dashed: true,
        marker: false,
        shape: None,
    });
    Planned {
        name,
        title,
        caption,
        figure: Ok(AnyFigure::Training(TrainingFigure {
            loss,
            accuracy,
            epochs,
            legend,
        })),
    }
}

impl Figure for TrainingFigure {
    fn size(&self) -> (u32, u32) {
        (PANEL.0 * 2, PANEL.1 + 44 + 40)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let body = chart::titled(root, "Training curves", "")?;
        let body = chart::with_legend(body, &self.legend)?;
        let cells = body.split_evenly((1, 2));
        // One epoch: a single point per run, drawn on a unit-wide axis around it.
        let x_ticks = self.epochs.clamp(2, 10);
        let x = if self.epochs > 1 {
            1.0..self.epochs as f64
        } else {
            0.5..1.5
        };
        let max_loss = self
            .loss
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let loss_axes = Axes {
            title: "training loss",
            x_label: "epoch",
            y_label: "mean training loss",
            x: x.clone(),
            y: 0.0..(max_loss * 1.08).max(1e-6),
            x_fmt: &epoch_label,
            y_fmt: &|v| fmt_sig(*v, 3),
            x_ticks,
        };
        chart::line_panel(&cells[0], &loss_axes, &self.loss)?;
        let lo = self
            .accuracy
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(100.0f64, f64::min);
        let y_lo = ((lo - 5.0) / 10.0).floor().clamp(0.0, 9.0) * 10.0;
        let acc_axes = Axes {
            title: "accuracy",
            x_label: "epoch",
            y_label: "accuracy (%)",
            x,
            y: y_lo..100.0,
            x_fmt: &epoch_label,
            y_fmt: &chart::fmt_plain,
            x_ticks,
        };
        chart::line_panel(&cells[1], &acc_axes, &self.accuracy)
    }
}

/// Epoch ticks: whole numbers only.
fn epoch_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}
