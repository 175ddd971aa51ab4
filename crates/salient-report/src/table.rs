//! The summary table: every scalar metric (rows of results.csv without a curve point or class)
//! per regime, as mean and sample std over seeds ([`crate::stats::mean_std`]). Curves (masking,
//! deletion, ROAR / KAR accuracy per percent, ...) are figures, not rows; `train_eps` is left
//! out too: a run's training eps is already in its regime's label.
//!
//! `summary.csv` is tidy (one row per regime and metric: model, regime, metric, attack, eps,
//! saliency, seeds, mean, std; raw values). `summary.md` and the HTML table put metrics in rows
//! and regimes in columns (few regimes, many metrics), accuracies in percent.
use crate::aggregate;
use crate::data::Tables;
use crate::error::ReportError;
use crate::style::{fmt_eps, fmt_sig};
use salient_ir::results::{
    CLEAN_ACCURACY, KAR_SCORE, ROAR_SCORE, ROBUST_ACCURACY, TRAIN_EPS, TRAIN_SECONDS,
};

/// What identifies one summary metric.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricKey {
    pub metric: String,
    pub attack: Option<String>,
    pub eps: Option<f64>,
    pub saliency: Option<String>,
}

impl MetricKey {
    /// Accuracies, and the ROAR / KAR scores (differences of accuracies), are shown in percent.
    pub fn is_percent(&self) -> bool {
        self.metric.ends_with("accuracy") || self.metric == ROAR_SCORE || self.metric == KAR_SCORE
    }

    /// Human label: `robust accuracy (%): pgd, ε = 0.1`.
    pub fn label(&self) -> String {
        let mut s = self.metric.replace('_', " ");
        if self.is_percent() {
            s.push_str(" (%)");
        }
        match self.metric.as_str() {
            TRAIN_SECONDS => s = "training time (s)".into(),
            // random - method (ROAR), method - random (KAR), averaged over the percents.
            ROAR_SCORE => s = "ROAR score (% points below random)".into(),
            KAR_SCORE => s = "KAR score (% points above random)".into(),
            _ => {}
        }
        let mut parts = Vec::new();
        if let Some(a) = &self.attack {
            parts.push(a.clone());
        }
        if let Some(e) = self.eps {
            parts.push(format!("ε = {}", fmt_eps(e)));
        }
        if let Some(m) = &self.saliency {
            parts.push(m.clone());
        }
        if parts.is_empty() {
            s
        } else {
            format!("{s}: {}", parts.join(", "))
        }
    }

    /// The summary table the metric belongs to (a name of [`crate::experiment::TABLES`]):
    /// `robustness` for robust accuracy, `saliency` for a saliency method's metrics, `runs` for
    /// the rest (clean accuracy, training time, ...).
    pub fn table(&self) -> &'static str {
        if self.metric == ROBUST_ACCURACY {
            "robustness"
        } else if self.saliency.is_some() {
            "saliency"
        } else {
            "runs"
        }
    }

    fn order(&self, first_seen: usize) -> (u8, u8, String, i64, usize) {
        let rank = match self.metric.as_str() {
            CLEAN_ACCURACY => 0,
            ROBUST_ACCURACY => 1,
            TRAIN_SECONDS => 3,
            _ => 2,
        };
        let worst = u8::from(self.attack.as_deref() == Some("worst_case"));
        let eps = (self.eps.unwrap_or(0.0) * 1e9) as i64;
        let attack = if rank == 1 {
            self.attack.clone().unwrap_or_default()
        } else {
            String::new()
        };
        (
            rank,
            worst,
            attack,
            eps,
            if rank == 1 { 0 } else { first_seen },
        )
    }
}

/// One cell: mean, std and the number of seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub mean: f64,
    pub std: f64,
    pub seeds: usize,
}

/// Rows = metrics, columns = groups.
#[derive(Clone, Debug)]
pub struct Summary {
    pub group_labels: Vec<String>,
    /// (model, regime, training-sweep values) per column.
    pub groups: Vec<(String, String, String)>,
    pub metrics: Vec<MetricKey>,
    /// cells[metric][group].
    pub cells: Vec<Vec<Option<Cell>>>,
    /// The tables shown (names of [`crate::experiment::TABLES`], in that order), each with the
    /// indices of its metrics; tables without metrics are left out.
    pub sections: Vec<(String, Vec<usize>)>,
}

/// The summary of the scalar metrics of the tables named in `chosen` (`report { tables }`).
pub fn summarize(tables: &Tables, chosen: &[String]) -> Summary {
    let scalar = |r: &&crate::data::ResultRow| {
        r.point.is_none() && r.class.is_none() && r.metric != TRAIN_EPS
    };
    let mut keys: Vec<MetricKey> = Vec::new();
    for r in tables.rows.iter().filter(scalar) {
        let k = MetricKey {
            metric: r.metric.clone(),
            attack: r.attack.clone(),
            eps: r.eps,
            saliency: r.saliency.clone(),
        };
        if !keys.contains(&k) && chosen.iter().any(|c| c == k.table()) {
            keys.push(k);
        }
    }
    let mut ordered: Vec<(usize, MetricKey)> = keys.into_iter().enumerate().collect();
    ordered.sort_by_key(|(i, k)| k.order(*i));
    let metrics: Vec<MetricKey> = ordered.into_iter().map(|(_, k)| k).collect();
    let cells = metrics
        .iter()
        .map(|k| {
            let rows = tables.rows.iter().filter(scalar).filter(|r| {
                r.metric == k.metric
                    && r.attack == k.attack
                    && r.eps == k.eps
                    && r.saliency == k.saliency
            });
            let agg = aggregate::scalar(tables, rows, 1.0);
            (0..tables.groups.len())
                .map(|g| {
                    agg.get(&g)
                        .map(|&(mean, std, seeds)| Cell { mean, std, seeds })
                })
                .collect()
        })
        .collect();
    let sections = crate::experiment::TABLES
        .iter()
        .filter(|t| chosen.iter().any(|c| c == *t))
        .map(|t| {
            let idx: Vec<usize> = (0..metrics.len())
                .filter(|&m| metrics[m].table() == *t)
                .collect();
            (t.to_string(), idx)
        })
        .filter(|(_, idx)| !idx.is_empty())
        .collect();
    Summary {
        sections,
        group_labels: (0..tables.groups.len()).map(|g| tables.label(g)).collect(),
        groups: tables
            .groups
            .iter()
            .map(|g| (g.model.clone(), g.regime.clone(), g.variant_label.clone()))
            .collect(),
        metrics,
        cells,
    }
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// `mean ± std` as shown to people (percent for accuracies; no ± with one seed).
    pub fn cell_text(&self, m: usize, g: usize) -> String {
        let Some(c) = self.cells[m][g] else {
            return "–".into();
        };
        if self.metrics[m].is_percent() {
            let (mean, std) = (c.mean * 100.0, c.std * 100.0);
            if c.seeds > 1 {
                format!("{mean:.2} ± {std:.2}")
            } else {
                format!("{mean:.2}")
            }
        } else if c.seeds > 1 {
            // The spread with as many decimals as the mean, so the two line up.
            let mean = fmt_sig(c.mean, 4);
            let decimals = mean.split('.').nth(1).map_or(0, str::len);
            format!("{mean} ± {:.decimals$}", c.std)
        } else {
            fmt_sig(c.mean, 4)
        }
    }

    /// Number of seeds per group (the largest count over its metrics).
    pub fn seeds(&self, g: usize) -> usize {
        self.cells
            .iter()
            .filter_map(|row| row[g].map(|c| c.seeds))
            .max()
            .unwrap_or(0)
    }

    /// Tidy CSV with raw values.
    pub fn to_csv(&self) -> Result<String, ReportError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let err = |e: csv::Error| ReportError::Csv {
            path: "summary.csv".into(),
            reason: e.to_string(),
        };
        w.write_record([
            "model", "regime", "train", "metric", "attack", "eps", "saliency", "seeds", "mean",
            "std",
        ])
        .map_err(err)?;
        for (m, key) in self.metrics.iter().enumerate() {
            for (g, (model, regime, train)) in self.groups.iter().enumerate() {
                let Some(c) = self.cells[m][g] else { continue };
                let eps = key.eps.map(|e| e.to_string()).unwrap_or_default();
                w.write_record([
                    model.as_str(),
                    regime,
                    train,
                    &key.metric,
                    key.attack.as_deref().unwrap_or(""),
                    &eps,
                    key.saliency.as_deref().unwrap_or(""),
                    &c.seeds.to_string(),
                    &c.mean.to_string(),
                    &c.std.to_string(),
                ])
                .map_err(err)?;
            }
        }
        let bytes = w.into_inner().map_err(|e| ReportError::Csv {
            path: "summary.csv".into(),
            reason: e.to_string(),
        })?;
        Ok(String::from_utf8(bytes).unwrap_or_default())
    }

    /// GitHub-flavoured Markdown: one table per section (`## Runs`, ...).
    pub fn to_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = String::new();
        for (name, metrics) in &self.sections {
            out.push_str(&format!("## {}\n\n| metric |", section_title(name)));
            for (g, label) in self.group_labels.iter().enumerate() {
                out.push_str(&format!(" {} (n={}) |", esc(label), self.seeds(g)));
            }
            out.push_str("\n|---|");
            out.push_str(&"---:|".repeat(self.group_labels.len()));
            out.push('\n');
            for &m in metrics {
                out.push_str(&format!("| {} |", esc(&self.metrics[m].label())));
                for g in 0..self.group_labels.len() {
                    out.push_str(&format!(" {} |", self.cell_text(m, g)));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        if self.sections.is_empty() {
            out.push_str("No scalar metrics in the chosen tables.\n");
        } else {
            out.push_str(
                "mean ± sample standard deviation over n seeds (no ± for a single seed).\n",
            );
        }
        out
    }
}

/// A section's heading: `Runs`, `Robustness`, `Saliency`.
pub fn section_title(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ResultRow;
    use salient_ir::results::*;

    fn row(
        run: &str,
        regime: &str,
        metric: &str,
        attack: Option<&str>,
        eps: Option<f64>,
        value: f64,
    ) -> ResultRow {
        ResultRow {
            run: run.into(),
            model: "cnn".into(),
            regime: regime.into(),
            seed: 0,
            metric: metric.into(),
            attack: attack.map(Into::into),
            eps,
            saliency: None,
            point: None,
            class: None,
            value,
        }
    }

    #[test]
    fn orders_metrics_and_formats_cells() {
        let rows = vec![
            row("s0", "standard", SPARSENESS, None, None, 0.5),
            row(
                "s0",
                "standard",
                ROBUST_ACCURACY,
                Some("worst_case"),
                Some(0.1),
                0.1,
            ),
            row(
                "s0",
                "standard",
                ROBUST_ACCURACY,
                Some("pgd"),
                Some(0.3),
                0.05,
            ),
            row(
                "s0",
                "standard",
                ROBUST_ACCURACY,
                Some("pgd"),
                Some(0.1),
                0.2,
            ),
            row("s0", "standard", CLEAN_ACCURACY, None, None, 0.9),
            row("s1", "standard", CLEAN_ACCURACY, None, None, 0.92),
            row("a0", "adv", CLEAN_ACCURACY, None, None, 0.8),
            ResultRow {
                class: Some(3),
                ..row("a0", "adv", CLASS_ACCURACY, None, None, 0.7)
            },
        ];
        let t = Tables::new(rows, vec![]);
        let all: Vec<String> = crate::experiment::TABLES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = summarize(&t, &all);
        let labels: Vec<String> = s.metrics.iter().map(|k| k.label()).collect();
        assert_eq!(
            labels,
            [
                "clean accuracy (%)",
                "robust accuracy (%): pgd, ε = 0.1",
                "robust accuracy (%): pgd, ε = 0.3",
                "robust accuracy (%): worst_case, ε = 0.1",
                "sparseness"
            ]
        );
        // clean accuracy of `standard`: seeds 0.90 and 0.92: mean 91.00, sample std 1.41 (%).
        assert_eq!(s.cell_text(0, 0), "91.00 ± 1.41");
        assert_eq!(s.cell_text(0, 1), "80.00");
        assert_eq!(s.cell_text(4, 1), "–");
        let md = s.to_markdown();
        assert!(md.starts_with("## Runs\n\n| metric | standard (n=2) | adv (n=1) |\n|---|---:|---:|\n| clean accuracy (%) | 91.00 ± 1.41 | 80.00 |\n| sparseness | 0.5 | – |\n\n## Robustness\n\n"), "{md}");
        // report { tables = (robustness) }: only the robust accuracies, in every output.
        let r = summarize(&t, &["robustness".to_string()]);
        assert_eq!(r.metrics.len(), 3);
        assert!(r.metrics.iter().all(|k| k.metric == ROBUST_ACCURACY));
        assert_eq!(r.sections, [("robustness".to_string(), vec![0, 1, 2])]);
        assert!(!r.to_markdown().contains("clean accuracy"));
        assert!(!r.to_csv().unwrap().contains(CLEAN_ACCURACY));
        let none = summarize(&t, &[]);
        assert!(none.is_empty() && none.to_csv().unwrap().lines().count() == 1);
        let csv = s.to_csv().unwrap();
        assert!(csv.starts_with("model,regime,train,metric,attack,eps,saliency,seeds,mean,std\ncnn,standard,,clean_accuracy,,,,2,0.91"), "{csv}");
        assert!(!csv.contains(CLASS_ACCURACY));
    }

    #[test]
    fn retraining_scores_and_connectedness_are_saliency_rows_and_curves_are_not() {
        let m = |metric: &str, point: Option<f64>, value: f64| ResultRow {
            saliency: Some("gradient".into()),
            point,
            ..row("s0", "standard", metric, None, None, value)
        };
        let rows = vec![
            row("s0", "standard", CLEAN_ACCURACY, None, None, 0.99),
            ResultRow {
                eps: Some(0.0),
                ..row("s0", "standard", TRAIN_EPS, None, None, 0.0)
            },
            row("a0", "adv", TRAIN_EPS, Some("linf"), Some(0.1), 0.1),
            m(CONNECTEDNESS, None, 0.75),
            m(ROAR, Some(10.0), 0.9),
            m(ROAR_STD, Some(10.0), 0.01),
            m(ROAR_RANDOM, Some(10.0), 0.95),
            m(KAR, Some(10.0), 0.5),
            m(ROAR_SCORE, None, 0.125),
            m(KAR_SCORE, None, -0.0312),
        ];
        let t = Tables::new(rows, vec![]);
        let all: Vec<String> = crate::experiment::TABLES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = summarize(&t, &all);
        let labels: Vec<String> = s.metrics.iter().map(|k| k.label()).collect();
        assert_eq!(
            labels,
            [
                "clean accuracy (%)",
                "connectedness: gradient",
                "ROAR score (% points below random): gradient",
                "KAR score (% points above random): gradient",
            ]
        );
        assert_eq!(
            s.sections,
            [
                ("runs".to_string(), vec![0]),
                ("saliency".to_string(), vec![1, 2, 3])
            ]
        );
        // Scores are differences of accuracies: shown in percent points, raw in summary.csv.
        assert_eq!(s.cell_text(1, 0), "0.75");
        assert_eq!(s.cell_text(2, 0), "12.50");
        assert_eq!(s.cell_text(3, 0), "-3.12");
        let csv = s.to_csv().unwrap();
        assert!(csv.contains(",roar_score,,,gradient,1,0.125,0\n"), "{csv}");
        assert!(
            !csv.contains("train_eps") && !csv.contains(",roar,"),
            "{csv}"
        );
    }
}
