//! Faithfulness by retraining, and what adversarial training does to it:
//! - `roar_kar` (Hooker et al. 2019, "A benchmark for interpretability methods in deep neural
//!   networks", NeurIPS): test accuracy of a model retrained from scratch after the top k% most
//!   salient pixels of every image are replaced (ROAR, remove and retrain) or after all but the
//!   top k% are (KAR, keep and retrain), against k; one line per group and saliency method, the
//!   random ranking dashed. A better map makes ROAR accuracy drop faster and KAR accuracy fall
//!   more slowly than the random ranking does.
//! - `accuracy_interpretability` (Kim, Seo, Jeon 2019, "Bridging adversarial robustness and
//!   gradient interpretability", arXiv 1903.11626): clean accuracy and the ROAR / KAR scores
//!   against the eps a model was adversarially trained with, one line per norm, starting from
//!   the standard model at eps 0.
//!
//! Both are panels of lines whose colour and marker shape stand for different things (the group
//! or norm, and the saliency method): [`LinesFigure`].
use super::chart::{self, Axes, LegendEntry, Series, Spread};
use super::{err, AnyFigure, DrawResult, Figure, Planned};
use crate::aggregate;
use crate::data::{ResultRow, Tables};
use crate::stats::mean_std;
use crate::style::{self, colour, fmt_eps};
use plotters::coord::Shift;
use plotters::prelude::*;
use salient_ir::results::{
    CLEAN_ACCURACY, KAR, KAR_RANDOM, KAR_RANDOM_STD, KAR_SCORE, KAR_STD, ROAR, ROAR_RANDOM,
    ROAR_RANDOM_STD, ROAR_SCORE, ROAR_STD, TRAIN_EPS,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

/// One line: the series (its `colour` picks the palette colour) and its markers' shape
/// ([`chart::shaped_markers`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub series: Series,
    pub shape: usize,
}

pub struct LinesPanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Range<f64>,
    pub y: Range<f64>,
    /// Drawn in order (baselines first, so the lines they compare with lie on top).
    pub lines: Vec<Line>,
    /// Draw a grey line at y = 0 (scores: 0 is "no better than a random ranking").
    pub zero_line: bool,
    /// The x axis is a perturbation budget (ticks as `fmt_eps`, e.g. 8/255).
    pub eps_x: bool,
}

pub struct LinesFigure {
    pub title: String,
    pub panels: Vec<LinesPanel>,
    pub cols: usize,
    pub legend: Vec<LegendEntry>,
}

const PANEL: (u32, u32) = (560, 440);

/// Saliency methods that have rows of any of `metrics`, sorted (`""` for rows without one).
fn methods(tables: &Tables, metrics: &[&str]) -> Vec<String> {
    let set: BTreeSet<String> = metrics
        .iter()
        .flat_map(|m| tables.metric(m))
        .map(|r| r.saliency.clone().unwrap_or_default())
        .collect();
    set.into_iter().collect()
}

fn method_of(r: &ResultRow) -> &str {
    r.saliency.as_deref().unwrap_or("")
}

/// The within-run spread of a curve: `std_metric`'s value by (run, method, point).
fn spread_lookup(tables: &Tables, std_metric: &str) -> HashMap<(String, String, u64), f64> {
    tables
        .metric(std_metric)
        .filter_map(|r| {
            let p = r.point?;
            Some((
                (r.run.clone(), method_of(r).to_string(), p.to_bits()),
                r.value,
            ))
        })
        .collect()
}

/// One panel of `roar_kar`: per group, a dashed random-ranking line, then one line per method.
fn retrain_panel(
    tables: &Tables,
    methods: &[String],
    [metric, std_metric, random, random_std]: [&str; 4],
    title: &str,
    x_label: &str,
) -> Option<LinesPanel> {
    let within = |lookup: &HashMap<(String, String, u64), f64>, r: &ResultRow| {
        let p = r.point?;
        lookup
            .get(&(r.run.clone(), method_of(r).to_string(), p.to_bits()))
            .copied()
    };
    let spread = spread_lookup(tables, std_metric);
    let random_spread = spread_lookup(tables, random_std);
    let mut lines = Vec::new();
    // The random ranking is the same in every method's rows: averaged per run, so it counts once.
    for (g, points) in aggregate::nested_curves(
        tables,
        tables.metric(random),
        |r| r.point,
        |r| within(&random_spread, r),
        100.0,
    ) {
        lines.push(Line {
            series: Series {
                label: format!("{} random", tables.label(g)),
                colour: g,
                points,
                dashed: true,
                spread: Spread::Band,
                markers: false,
            },
            shape: 0,
        });
    }
    let mut any = false;
    for (shape, m) in methods.iter().enumerate() {
        let rows = tables.metric(metric).filter(|r| method_of(r) == m);
        for (g, points) in
            aggregate::nested_curves(tables, rows, |r| r.point, |r| within(&spread, r), 100.0)
        {
            any = true;
            let label = if m.is_empty() {
                tables.label(g)
            } else {
                format!("{} · {m}", tables.label(g))
            };
            lines.push(Line {
                series: Series {
                    label,
                    colour: g,
                    points,
                    dashed: false,
                    spread: Spread::ErrorBars,
                    markers: true,
                },
                shape,
            });
        }
    }
    any.then(|| LinesPanel {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "test accuracy after retraining (%)".into(),
        x: 0.0..100.0,
        y: 0.0..100.0,
        lines,
        zero_line: false,
        eps_x: false,
    })
}

/// The legend of figures whose colour is a group (or norm) and whose marker is a method: one
/// line sample per colour, one grey marker per method (none when the rows name no method).
fn legend(
    colours: &[(usize, String)],
    methods: &[(usize, String)],
    dashed: Option<&str>,
) -> Vec<LegendEntry> {
    let mut out: Vec<LegendEntry> = colours
        .iter()
        .map(|(c, label)| LegendEntry::line(label.clone(), *c))
        .collect();
    out.extend(
        methods
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(shape, m)| LegendEntry::shape(m.clone(), *shape)),
    );
    if let Some(label) = dashed {
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

pub fn plan_roar_kar(tables: &Tables) -> Planned {
    let name = "roar_kar".to_string();
    let title = "ROAR and KAR: accuracy after retraining on the modified images".to_string();
    let caption = "Test accuracy of a model retrained from scratch, with the same architecture and training settings, on images whose top k% most salient pixels are replaced by the per-channel mean (ROAR, remove and retrain: left) or whose other pixels are, so that only the top k% are kept (KAR, keep and retrain: right), measured on the test set modified the same way (Hooker et al. 2019, \"A benchmark for interpretability methods in deep neural networks\"). A better map makes accuracy drop faster than the random ranking under ROAR, and fall more slowly than it as fewer pixels are kept under KAR. One solid line per group and saliency method (marker shape = method); dashed: the group's random ranking of the pixels. Mean over the retraining seeds and the run's seeds; error bars (band for the random ranking) ±1 std, sqrt(mean within-run variance + variance between seeds).".to_string();
    let methods = methods(tables, &[ROAR, KAR]);
    let panels: Vec<LinesPanel> = [
        (
            [ROAR, ROAR_STD, ROAR_RANDOM, ROAR_RANDOM_STD],
            "ROAR (most salient pixels removed)",
            "pixels removed, most salient first (%)",
        ),
        (
            [KAR, KAR_STD, KAR_RANDOM, KAR_RANDOM_STD],
            "KAR (most salient pixels kept)",
            "pixels kept, most salient first (%)",
        ),
    ]
    .into_iter()
    .filter_map(|(metrics, t, x)| retrain_panel(tables, &methods, metrics, t, x))
    .collect();
    if panels.is_empty() {
        return Planned {
            name,
            title,
            caption,
            figure: Err(format!(
                "no {ROAR} or {KAR} rows in results.csv (the spec's metrics have no roar / kar)"
            )),
        };
    }
    let groups: BTreeSet<usize> = panels
        .iter()
        .flat_map(|p| p.lines.iter().map(|l| l.series.colour))
        .collect();
    let colours: Vec<(usize, String)> = groups.into_iter().map(|g| (g, tables.label(g))).collect();
    let shapes: Vec<(usize, String)> = methods.iter().cloned().enumerate().collect();
    let has_random = panels
        .iter()
        .any(|p| p.lines.iter().any(|l| l.series.dashed));
    let legend = legend(
        &colours,
        &shapes,
        has_random.then_some("random pixel ranking (baseline)"),
    );
    let cols = panels.len();
    Planned {
        name,
        title: title.clone(),
        caption,
        figure: Ok(AnyFigure::Lines(LinesFigure {
            title,
            panels,
            cols,
            legend,
        })),
    }
}

/// The regime's label without its eps sweep values (`pgd_linf[eps=0.1,steps=10]` ->
/// `pgd_linf[steps=10]`, `pgd_linf[eps=0.1]` -> `pgd_linf`): the runs of one line of
/// `accuracy_interpretability` differ only in the training eps. A key counts as an eps when it
/// is `eps` or ends with `.eps` or `_eps` (`attack.eps`; not `steps`).
pub fn without_eps(label: &str) -> String {
    let Some((name, inner)) = label.strip_suffix(']').and_then(|l| l.split_once('[')) else {
        return label.to_string();
    };
    let kept: Vec<&str> = inner
        .split(',')
        .filter(|kv| {
            let key = kv.split('=').next().unwrap_or("").trim();
            !(key == "eps" || key.ends_with(".eps") || key.ends_with("_eps"))
        })
        .collect();
    if kept.is_empty() {
        name.to_string()
    } else {
        format!("{name}[{}]", kept.join(","))
    }
}

/// A line of `accuracy_interpretability`: the runs trained against one norm with one model,
/// training-sweep variant and regime (up to its eps), plus the standard runs of that model and
/// variant at eps 0.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TradeLine {
    norm: String,
    model: String,
    variant: String,
    regime: String,
}

pub fn plan_accuracy_interpretability(tables: &Tables) -> Planned {
    let name = "accuracy_interpretability".to_string();
    let title = "Accuracy and gradient interpretability against the training ε".to_string();
    let caption = "Kim et al. 2019 (\"Bridging adversarial robustness and gradient interpretability\"): models adversarially trained at growing ε, one line per norm, each starting from the standard model at ε = 0. Left: clean test accuracy. Then the ROAR and KAR scores of each saliency method (marker shape = method): the mean over k of the gap between the map and a random pixel ranking in accuracy after retraining (ROAR: random − map, KAR: map − random), in % points; above 0 the map ranks pixels better than chance (Hooker et al. 2019). Kim et al. report a trade-off: as ε grows, clean accuracy falls while the loss gradients' ROAR / KAR interpretability rises. Mean over seeds, error bars ±1 std.".to_string();
    let skip = |why: String| Planned {
        name: name.clone(),
        title: title.clone(),
        caption: caption.clone(),
        figure: Err(why),
    };
    // Run -> (norm, training eps); the norm is None for a standard run.
    let mut trained: BTreeMap<String, (Option<String>, f64)> = BTreeMap::new();
    for r in tables.metric(TRAIN_EPS) {
        let eps = r.eps.unwrap_or(r.value);
        if eps.is_finite() && eps >= 0.0 {
            trained.insert(r.run.clone(), (r.attack.clone(), eps));
        }
    }
    if trained.is_empty() {
        return skip(format!(
            "no {TRAIN_EPS} rows in results.csv (the engine writes them for standard and adversarially trained runs)"
        ));
    }
    let scores: Vec<&str> = [ROAR_SCORE, KAR_SCORE]
        .into_iter()
        .filter(|m| tables.has_metric(m))
        .collect();
    if scores.is_empty() {
        return skip(format!(
            "no {ROAR_SCORE} or {KAR_SCORE} rows in results.csv (the spec's metrics have no roar / kar)"
        ));
    }
    // The lines, and the runs (with their eps) on each.
    let group_of = |run: &str| {
        let (g, _) = tables.group_of_run(run)?;
        Some(&tables.groups[g])
    };
    let mut lines: BTreeMap<TradeLine, Vec<(String, f64)>> = BTreeMap::new();
    for (run, (norm, eps)) in &trained {
        let (Some(norm), Some(g)) = (norm, group_of(run)) else {
            continue;
        };
        let key = TradeLine {
            norm: norm.clone(),
            model: g.model.clone(),
            variant: g.variant_label.clone(),
            regime: without_eps(&g.regime),
        };
        lines.entry(key).or_default().push((run.clone(), *eps));
    }
    if lines.is_empty() {
        return skip(format!(
            "the {TRAIN_EPS} rows are all of standard runs (ε = 0): no adversarially trained run to plot against"
        ));
    }
    for (run, (norm, eps)) in &trained {
        let Some(g) = group_of(run).filter(|_| norm.is_none()) else {
            continue;
        };
        for (key, runs) in lines.iter_mut() {
            if key.model == g.model && key.variant == g.variant_label {
                runs.push((run.clone(), *eps));
            }
        }
    }
    let keys: Vec<TradeLine> = lines.keys().cloned().collect();
    let labels = line_labels(&keys);
    // Norms whose eps differ in scale (Linf 0.1 vs L2 2) get a row of panels each.
    let mut norm_max: BTreeMap<&str, f64> = BTreeMap::new();
    for (key, runs) in &lines {
        let m = norm_max.entry(key.norm.as_str()).or_insert(0.0);
        *m = runs.iter().map(|r| r.1).fold(*m, f64::max);
    }
    let (lo, hi) = norm_max
        .values()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &m| {
            (lo.min(m), hi.max(m))
        });
    let rows: Vec<Option<&str>> = if norm_max.len() > 1 && lo > 0.0 && hi / lo > 3.0 {
        norm_max.keys().map(|n| Some(*n)).collect()
    } else {
        vec![None]
    };
    // Per-run value of a metric (several rows of one run averaged).
    let per_run = |metric: &str, method: Option<&str>| -> HashMap<String, f64> {
        let mut acc: HashMap<String, (f64, usize)> = HashMap::new();
        for r in tables.metric(metric) {
            if method.is_some_and(|m| m != method_of(r)) || !r.value.is_finite() {
                continue;
            }
            let e = acc.entry(r.run.clone()).or_insert((0.0, 0));
            e.0 += r.value;
            e.1 += 1;
        }
        acc.into_iter()
            .map(|(run, (s, n))| (run, s / n as f64))
            .collect()
    };
    let points = |runs: &[(String, f64)], values: &HashMap<String, f64>| -> aggregate::Points {
        let mut by_eps: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
        for (run, eps) in runs {
            if let Some(v) = values.get(run) {
                // eps >= 0, so the bits order like the values.
                by_eps
                    .entry(eps.to_bits())
                    .or_insert((*eps, Vec::new()))
                    .1
                    .push(v * 100.0);
            }
        }
        by_eps
            .into_values()
            .filter_map(|(eps, vals)| mean_std(&vals).map(|(m, s)| (eps, m, s)))
            .collect()
    };
    let clean = per_run(CLEAN_ACCURACY, None);
    let methods = methods(tables, &scores);
    let mut panels = Vec::new();
    for row in &rows {
        let on_row = |k: &TradeLine| row.is_none_or(|n| n == k.norm);
        let suffix = row.map(|n| format!(", {n}")).unwrap_or_default();
        let x_max = keys
            .iter()
            .filter(|k| on_row(k))
            .flat_map(|k| lines[k].iter().map(|r| r.1))
            .fold(0.0f64, f64::max);
        let x_max = if x_max > 0.0 { x_max * 1.06 } else { 1.0 };
        let x = -x_max * 0.02..x_max;
        let line = |i: usize, label: String, pts: aggregate::Points, shape: usize| Line {
            series: Series {
                label,
                colour: i,
                points: pts,
                dashed: false,
                spread: Spread::ErrorBars,
                markers: true,
            },
            shape,
        };
        let clean_lines: Vec<Line> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| on_row(k))
            .map(|(i, k)| line(i, labels[i].clone(), points(&lines[k], &clean), 0))
            .filter(|l| !l.series.points.is_empty())
            .collect();
        if !clean_lines.is_empty() {
            let y = chart::padded(
                clean_lines
                    .iter()
                    .flat_map(|l| l.series.points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2])),
                0.15,
            );
            panels.push(LinesPanel {
                title: format!("clean accuracy{suffix}"),
                x_label: "training ε".into(),
                y_label: "clean test accuracy (%)".into(),
                x: x.clone(),
                y: y.start.max(0.0)..y.end.min(100.0),
                lines: clean_lines,
                zero_line: false,
                eps_x: true,
            });
        }
        for score in &scores {
            let mut score_lines = Vec::new();
            for (mi, m) in methods.iter().enumerate() {
                let values = per_run(score, Some(m));
                for (i, k) in keys.iter().enumerate().filter(|(_, k)| on_row(k)) {
                    let label = if m.is_empty() {
                        labels[i].clone()
                    } else {
                        format!("{} · {m}", labels[i])
                    };
                    let l = line(i, label, points(&lines[k], &values), mi + 1);
                    if !l.series.points.is_empty() {
                        score_lines.push(l);
                    }
                }
            }
            if score_lines.is_empty() {
                continue;
            }
            let y = chart::padded(
                score_lines
                    .iter()
                    .flat_map(|l| l.series.points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]))
                    .chain([0.0]),
                0.15,
            );
            let what = if *score == ROAR_SCORE { "ROAR" } else { "KAR" };
            panels.push(LinesPanel {
                title: format!("{what} score{suffix}"),
                x_label: "training ε".into(),
                y_label: format!("{what} score (% points over random)"),
                x: x.clone(),
                y,
                lines: score_lines,
                zero_line: true,
                eps_x: true,
            });
        }
    }
    if !panels.iter().any(|p| p.zero_line) {
        return skip(format!(
            "no {ROAR_SCORE} or {KAR_SCORE} rows of the runs that have {TRAIN_EPS} rows"
        ));
    }
    let cols = panels.len().div_ceil(rows.len()).max(1);
    let colours: Vec<(usize, String)> = labels.into_iter().enumerate().collect();
    let shapes: Vec<(usize, String)> = methods
        .iter()
        .enumerate()
        .map(|(i, m)| (i + 1, m.clone()))
        .collect();
    Planned {
        name,
        title: title.clone(),
        caption,
        figure: Ok(AnyFigure::Lines(LinesFigure {
            title,
            panels,
            cols,
            legend: legend(&colours, &shapes, None),
        })),
    }
}

/// Each line's label: its norm, with the model, regime and training-sweep values where they
/// tell lines of the same norm apart or the experiment has several.
fn line_labels(keys: &[TradeLine]) -> Vec<String> {
    let varies = |f: &dyn Fn(&TradeLine) -> &str| {
        keys.iter()
            .any(|k| keys.iter().any(|o| o.norm == k.norm && f(o) != f(k)))
    };
    let models = keys.iter().any(|k| k.model != keys[0].model);
    let regimes = varies(&|k| k.regime.as_str());
    let variants = varies(&|k| k.variant.as_str());
    keys.iter()
        .map(|k| {
            let mut parts = Vec::new();
            if models {
                parts.push(k.model.clone());
            }
            if regimes {
                parts.push(k.regime.clone());
            }
            if variants && !k.variant.is_empty() {
                parts.push(k.variant.clone());
            }
            if parts.is_empty() {
                k.norm.clone()
            } else {
                format!("{} ({})", k.norm, parts.join(", "))
            }
        })
        .collect()
}

impl Figure for LinesFigure {
    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.cols) as u32;
        let legend = 40 + 30 * (self.legend.len() as u32 / 4);
        (PANEL.0 * self.cols as u32, PANEL.1 * rows + 44 + legend)
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
                x_fmt: if p.eps_x {
                    &|v| fmt_eps(v.max(0.0))
                } else {
                    &chart::fmt_plain
                },
                y_fmt: &chart::fmt_plain,
                x_ticks: 7,
            };
            let mut chart = chart::frame(cell, &axes)?;
            if p.zero_line {
                chart
                    .draw_series(LineSeries::new(
                        [(p.x.start, 0.0), (p.x.end, 0.0)],
                        style::MUTED.stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            for l in &p.lines {
                let s = Series {
                    markers: false,
                    ..l.series.clone()
                };
                chart::draw_series(&mut chart, &s)?;
                if l.series.markers {
                    let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
                    chart::shaped_markers(&mut chart, colour(s.colour), l.shape, &pts)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, regime: &str, seed: u64, metric: &str, value: f64) -> ResultRow {
        ResultRow {
            run: run.into(),
            model: "cnn".into(),
            regime: regime.into(),
            seed,
            metric: metric.into(),
            attack: None,
            eps: None,
            saliency: None,
            point: None,
            class: None,
            value,
        }
    }

    /// A row of one saliency method at a curve point.
    fn at(run: &str, regime: &str, seed: u64, metric: &str, m: &str, k: f64, v: f64) -> ResultRow {
        ResultRow {
            saliency: Some(m.into()),
            point: Some(k),
            ..row(run, regime, seed, metric, v)
        }
    }

    fn scored(run: &str, regime: &str, metric: &str, m: &str, v: f64) -> ResultRow {
        ResultRow {
            saliency: Some(m.into()),
            ..row(run, regime, 0, metric, v)
        }
    }

    fn lines(p: &Planned) -> &LinesFigure {
        match &p.figure {
            Ok(AnyFigure::Lines(f)) => f,
            Ok(_) => panic!("{}: not a line figure", p.name),
            Err(why) => panic!("{} skipped: {why}", p.name),
        }
    }

    fn close(a: (f64, f64, f64), b: (f64, f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9 && (a.2 - b.2).abs() < 1e-9
    }

    fn assert_points(got: &[(f64, f64, f64)], want: &[(f64, f64, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, *w), "{got:?} vs {want:?}");
        }
    }

    /// Two seeds of `standard`, one of `adv`; methods gradient and smoothgrad; ROAR at 10 and
    /// 50 %, KAR at 10 % for gradient only.
    fn roar_rows() -> Vec<ResultRow> {
        let s0 = "cnn-standard-seed0";
        let s1 = "cnn-standard-seed1";
        let a0 = "cnn-adv-seed0";
        let mut rows = vec![row(s0, "standard", 0, CLEAN_ACCURACY, 0.99)];
        for (run, regime, seed, base) in [(s0, "standard", 0, 0.8), (s1, "standard", 1, 0.6)] {
            rows.push(at(run, regime, seed, ROAR, "gradient", 10.0, base));
            rows.push(at(
                run,
                regime,
                seed,
                ROAR_STD,
                "gradient",
                10.0,
                base / 20.0,
            ));
            rows.push(at(run, regime, seed, ROAR, "gradient", 50.0, base - 0.3));
            rows.push(at(run, regime, seed, ROAR, "smoothgrad", 10.0, base + 0.1));
            // The random ranking, repeated in both methods' rows.
            for m in ["gradient", "smoothgrad"] {
                rows.push(at(run, regime, seed, ROAR_RANDOM, m, 10.0, 0.9));
                rows.push(at(run, regime, seed, ROAR_RANDOM_STD, m, 10.0, 0.01));
            }
        }
        rows.push(at(a0, "adv", 0, ROAR, "gradient", 10.0, 0.5));
        rows.push(at(a0, "adv", 0, KAR, "gradient", 10.0, 0.7));
        rows.push(at(a0, "adv", 0, KAR_STD, "gradient", 10.0, 0.02));
        rows.push(at(a0, "adv", 0, KAR_RANDOM, "gradient", 10.0, 0.3));
        rows
    }

    #[test]
    fn roar_kar_plots_each_group_and_method_with_both_spreads_and_the_random_baseline() {
        let t = Tables::new(roar_rows(), vec![]);
        let p = plan_roar_kar(&t);
        assert_eq!(p.name, "roar_kar");
        assert!(p.caption.contains("Hooker et al. 2019"), "{}", p.caption);
        assert!(p.caption.contains("drop faster") && p.caption.contains("more slowly"));
        let f = lines(&p);
        assert_eq!(f.panels.len(), 2);
        let roar = &f.panels[0];
        assert!(roar.title.starts_with("ROAR"), "{}", roar.title);
        let labels: Vec<(&str, bool, usize, usize)> = roar
            .lines
            .iter()
            .map(|l| {
                (
                    l.series.label.as_str(),
                    l.series.dashed,
                    l.series.colour,
                    l.shape,
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("standard random", true, 0, 0),
                ("standard · gradient", false, 0, 0),
                ("adv · gradient", false, 1, 0),
                ("standard · smoothgrad", false, 0, 1),
            ]
        );
        // standard, gradient at 10 %: runs 0.8 (std 0.04) and 0.6 (std 0.03): mean 70 %,
        // std = sqrt((0.04^2 + 0.03^2) / 2 + var(0.8, 0.6)) = sqrt(0.00125 + 0.02).
        // At 50 %: 0.5 and 0.3 with no std rows: std = sample std of the two.
        let sd10 = (0.00125f64 + 0.02).sqrt() * 100.0;
        let sd50 = (0.02f64).sqrt() * 100.0;
        assert_points(
            &roar.lines[1].series.points,
            &[(10.0, 70.0, sd10), (50.0, 40.0, sd50)],
        );
        // The random ranking counts once per run although every method's rows repeat it.
        assert_points(&roar.lines[0].series.points, &[(10.0, 90.0, 1.0)]);
        // One run: its retraining seeds' spread alone.
        assert_points(&roar.lines[2].series.points, &[(10.0, 50.0, 0.0)]);
        let kar = &f.panels[1];
        assert!(kar.title.starts_with("KAR"), "{}", kar.title);
        assert_eq!(kar.lines.len(), 2);
        assert_points(&kar.lines[0].series.points, &[(10.0, 30.0, 0.0)]);
        assert!(kar.lines[0].series.dashed);
        assert_points(&kar.lines[1].series.points, &[(10.0, 70.0, 2.0)]);
        // Legend: a colour per group, a marker per method, the dashed baseline.
        let legend: Vec<(&str, Option<usize>, Option<usize>, bool)> = f
            .legend
            .iter()
            .map(|e| (e.label.as_str(), e.colour, e.shape, e.dashed))
            .collect();
        assert_eq!(
            legend,
            [
                ("standard", Some(0), None, false),
                ("adv", Some(1), None, false),
                ("gradient", None, Some(0), false),
                ("smoothgrad", None, Some(1), false),
                ("random pixel ranking (baseline)", None, None, true),
            ]
        );
    }

    #[test]
    fn roar_kar_is_skipped_without_rows_and_draws_only_the_panels_it_has() {
        let t = Tables::new(vec![row("r", "standard", 0, CLEAN_ACCURACY, 0.9)], vec![]);
        let why = plan_roar_kar(&t).figure.err().unwrap();
        assert_eq!(
            why,
            "no roar or kar rows in results.csv (the spec's metrics have no roar / kar)"
        );
        // A random baseline alone is no curve of a map.
        let t = Tables::new(
            vec![at("r", "standard", 0, ROAR_RANDOM, "gradient", 10.0, 0.9)],
            vec![],
        );
        assert!(plan_roar_kar(&t).figure.is_err());
        let t = Tables::new(
            vec![at("r", "standard", 0, KAR, "gradient", 10.0, 0.9)],
            vec![],
        );
        let p = plan_roar_kar(&t);
        let f = lines(&p);
        assert_eq!(f.panels.len(), 1);
        assert!(f.panels[0].title.starts_with("KAR"));
        assert_eq!(f.cols, 1);
    }

    #[test]
    fn eps_sweep_values_leave_the_regime_label() {
        assert_eq!(without_eps("standard"), "standard");
        assert_eq!(without_eps("pgd_linf[eps=0.1]"), "pgd_linf");
        assert_eq!(without_eps("at[attack.eps=0.1,steps=10]"), "at[steps=10]");
        assert_eq!(without_eps("sgt[k=0.5]"), "sgt[k=0.5]");
        assert_eq!(without_eps("at[steps=10]"), "at[steps=10]");
    }

    /// Kim et al.'s grid: standard (eps 0), Linf at 0.1 and 0.3 (two seeds at 0.1), L2 at 1 and
    /// 2; clean accuracy and the ROAR / KAR scores of `gradient`.
    fn kim_rows() -> Vec<ResultRow> {
        let mut rows = Vec::new();
        let mut run = |id: &str,
                       regime: &str,
                       seed: u64,
                       norm: Option<&str>,
                       eps: f64,
                       acc: f64,
                       roar: f64| {
            rows.push(ResultRow {
                attack: norm.map(Into::into),
                eps: Some(eps),
                ..row(id, regime, seed, TRAIN_EPS, eps)
            });
            rows.push(row(id, regime, seed, CLEAN_ACCURACY, acc));
            rows.push(ResultRow {
                seed,
                ..scored(id, regime, ROAR_SCORE, "gradient", roar)
            });
            rows.push(ResultRow {
                seed,
                ..scored(id, regime, KAR_SCORE, "gradient", roar / 2.0)
            });
        };
        run("cnn-standard-seed0", "standard", 0, None, 0.0, 0.99, 0.01);
        run(
            "cnn-pgd_linf_eps0.1-seed0",
            "pgd_linf[eps=0.1]",
            0,
            Some("linf"),
            0.1,
            0.98,
            0.04,
        );
        run(
            "cnn-pgd_linf_eps0.1-seed1",
            "pgd_linf[eps=0.1]",
            1,
            Some("linf"),
            0.1,
            0.96,
            0.06,
        );
        run(
            "cnn-pgd_linf_eps0.3-seed0",
            "pgd_linf[eps=0.3]",
            0,
            Some("linf"),
            0.3,
            0.90,
            0.12,
        );
        run(
            "cnn-pgd_l2_eps1-seed0",
            "pgd_l2[eps=1]",
            0,
            Some("l2"),
            1.0,
            0.95,
            0.08,
        );
        run(
            "cnn-pgd_l2_eps2-seed0",
            "pgd_l2[eps=2]",
            0,
            Some("l2"),
            2.0,
            0.90,
            0.10,
        );
        rows
    }

    #[test]
    fn accuracy_interpretability_draws_one_line_per_norm_from_the_standard_model() {
        let t = Tables::new(kim_rows(), vec![]);
        let p = plan_accuracy_interpretability(&t);
        assert!(p.caption.contains("Kim et al. 2019"), "{}", p.caption);
        let f = lines(&p);
        // Linf eps up to 0.3, L2 up to 2: different scales, so a row of panels per norm
        // (lines sorted by norm: l2 first).
        let titles: Vec<&str> = f.panels.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "clean accuracy, l2",
                "ROAR score, l2",
                "KAR score, l2",
                "clean accuracy, linf",
                "ROAR score, linf",
                "KAR score, linf"
            ]
        );
        assert_eq!(f.cols, 3);
        let linf_clean = &f.panels[3].lines;
        assert_eq!(linf_clean.len(), 1);
        assert_eq!(linf_clean[0].series.label, "linf");
        // eps 0: the standard run; eps 0.1: seeds 98 and 96 %.
        assert_points(
            &linf_clean[0].series.points,
            &[(0.0, 99.0, 0.0), (0.1, 97.0, 2f64.sqrt()), (0.3, 90.0, 0.0)],
        );
        let l2_roar = &f.panels[1].lines;
        assert_eq!(l2_roar[0].series.label, "l2 · gradient");
        assert_points(
            &l2_roar[0].series.points,
            &[(0.0, 1.0, 0.0), (1.0, 8.0, 0.0), (2.0, 10.0, 0.0)],
        );
        assert_eq!(l2_roar[0].shape, 1);
        assert!(f.panels[1].zero_line && !f.panels[0].zero_line);
        assert_points(
            &f.panels[5].lines[0].series.points,
            &[
                (0.0, 0.5, 0.0),
                (0.1, 2.5, 2f64.sqrt() / 2.0),
                (0.3, 6.0, 0.0),
            ],
        );
        // Colours by norm (the legend's lines), the method by its marker.
        let legend: Vec<(&str, Option<usize>, Option<usize>)> = f
            .legend
            .iter()
            .map(|e| (e.label.as_str(), e.colour, e.shape))
            .collect();
        assert_eq!(
            legend,
            [
                ("l2", Some(0), None),
                ("linf", Some(1), None),
                ("gradient", None, Some(1))
            ]
        );
    }

    #[test]
    fn norms_of_one_scale_share_the_panels() {
        // Linf only at 0.1 and 0.3, L2 at 0.5: within a factor of 3, one row of panels.
        let rows: Vec<ResultRow> = kim_rows()
            .into_iter()
            .filter(|r| r.run != "cnn-pgd_l2_eps2-seed0")
            .map(|r| {
                if r.run == "cnn-pgd_l2_eps1-seed0" && r.metric == TRAIN_EPS {
                    ResultRow {
                        eps: Some(0.5),
                        value: 0.5,
                        ..r
                    }
                } else {
                    r
                }
            })
            .collect();
        let t = Tables::new(rows, vec![]);
        let p = plan_accuracy_interpretability(&t);
        let f = lines(&p);
        assert_eq!(f.panels.len(), 3);
        let clean = &f.panels[0];
        assert_eq!(clean.title, "clean accuracy");
        let labels: Vec<&str> = clean
            .lines
            .iter()
            .map(|l| l.series.label.as_str())
            .collect();
        assert_eq!(labels, ["l2", "linf"]);
        assert_points(
            &clean.lines[0].series.points,
            &[(0.0, 99.0, 0.0), (0.5, 95.0, 0.0)],
        );
    }

    #[test]
    fn accuracy_interpretability_is_skipped_with_a_reason() {
        let why = |rows: Vec<ResultRow>| {
            plan_accuracy_interpretability(&Tables::new(rows, vec![]))
                .figure
                .err()
                .unwrap()
        };
        let no_eps: Vec<ResultRow> = kim_rows()
            .into_iter()
            .filter(|r| r.metric != TRAIN_EPS)
            .collect();
        assert!(why(no_eps).starts_with("no train_eps rows in results.csv"));
        let no_scores: Vec<ResultRow> = kim_rows()
            .into_iter()
            .filter(|r| r.metric != ROAR_SCORE && r.metric != KAR_SCORE)
            .collect();
        assert!(why(no_scores).starts_with("no roar_score or kar_score rows in results.csv"));
        let standard_only: Vec<ResultRow> = kim_rows()
            .into_iter()
            .filter(|r| r.regime == "standard")
            .collect();
        assert!(why(standard_only).contains("all of standard runs"));
    }

    #[test]
    fn both_figures_render() {
        let dir =
            std::env::temp_dir().join(format!("salient-report-retrain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rows = roar_rows();
        rows.extend(kim_rows());
        let t = Tables::new(rows, vec![]);
        for p in [plan_roar_kar(&t), plan_accuracy_interpretability(&t)] {
            let f = lines(&p);
            let Ok(fig) = &p.figure else { unreachable!() };
            let r = super::super::render(fig, &dir, &p.name).unwrap();
            assert_eq!(r.size, f.size());
            assert!(std::fs::metadata(&r.png).unwrap().len() > 1000);
            let svg = std::fs::read_to_string(&r.svg).unwrap();
            assert!(
                svg.contains("<polyline") || svg.contains("<path"),
                "no lines in {}",
                p.name
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
