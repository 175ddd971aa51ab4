//! Per-class test accuracy, one line per regime (mean over seeds, error bars ±1 std): where a
//! regime's clean-accuracy cost falls (robust training often costs some classes far more than
//! others).
use super::chart::{LegendEntry, Series, Spread};
use super::curves::{CurveFigure, CurvePanel};
use super::{AnyFigure, Planned};
use crate::aggregate;
use crate::data::Tables;
use salient_ir::results::CLASS_ACCURACY;

pub fn plan(tables: &Tables) -> Planned {
    let name = "class_accuracy".to_string();
    let title = "Per-class test accuracy".to_string();
    let caption = "Clean test accuracy of each class, one line per regime; mean over seeds, error bars ±1 std.".to_string();
    let rows = tables.metric(CLASS_ACCURACY);
    let series: Vec<Series> = aggregate::curves(tables, rows, |r| r.class.map(|c| c as f64), 100.0)
        .into_iter()
        .map(|(g, points)| Series {
            label: tables.label(g),
            colour: g,
            points,
            dashed: false,
            spread: Spread::ErrorBars,
            markers: true,
        })
        .collect();
    if series.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err(format!("no {CLASS_ACCURACY} rows in results.csv")),
        };
    }
    let classes = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max);
    let lowest = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1 - p.2))
        .fold(100.0f64, f64::min);
    // Zoom on the range the accuracies use (in steps of 5 points), so a one-point gap is visible.
    let y_lo = ((lowest - 1.0) / 5.0).floor().clamp(0.0, 19.0) * 5.0;
    let legend: Vec<LegendEntry> = series
        .iter()
        .map(|s| LegendEntry::group(s.label.clone(), s.colour))
        .collect();
    let panel = CurvePanel {
        title: String::new(),
        x_label: "class".into(),
        y_label: "test accuracy (%)".into(),
        x: -0.5..classes + 0.5,
        y: y_lo..100.0,
        series,
    };
    Planned {
        name,
        title: title.clone(),
        caption,
        figure: Ok(AnyFigure::Classes(CurveFigure {
            title,
            panels: vec![panel],
            cols: 1,
            legend,
            integer_x: true,
        })),
    }
}
