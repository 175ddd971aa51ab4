//! What the report takes from `experiment.json` (the checked experiment `salient run` writes
//! beside results.csv): the name, each run's training settings (to name the training-sweep
//! variants, see [`crate::data::Tables::name_variants`]) and the spec's `report { figures,
//! tables }` choice. Read as plain JSON, field by field, so files of older versions still
//! read; the file is optional, but one that is not JSON is an error naming it.
use crate::error::ReportError;
use serde_json::Value;
use std::path::Path;

/// The figure names a spec can list in `report { figures = (...) }`, in the order the page
/// shows them. `saliency_grid` stands for every `saliency_<method>` figure. The checker's list
/// (`salient-lang`, `check/metrics.rs`) must equal this one; `tests/report_cli.rs` checks that
/// each name passes `salient check`.
pub const FIGURES: &[&str] = &[
    "robustness",
    "tradeoff",
    "saliency_grid",
    "masking",
    "deletion_insertion",
    "randomization",
    "roar_kar",
    "accuracy_interpretability",
    "class_accuracy",
    "training",
];

/// The table names of `report { tables = (...) }`: the summary's three parts. `runs`: clean
/// accuracy, training time and the other metrics of a whole model; `robustness`: robust
/// accuracy per attack and ε; `saliency`: the metrics of a saliency method.
pub const TABLES: &[&str] = &["runs", "robustness", "saliency"];

/// The parts of experiment.json the report uses.
#[derive(Clone, Debug, Default)]
pub struct ExperimentInfo {
    pub name: Option<String>,
    /// (run id, training settings object) per run.
    pub train: Vec<(String, Value)>,
    /// `report.figures`, when the file has it.
    pub figures: Option<Vec<String>>,
    /// `report.tables`, when the file has it.
    pub tables: Option<Vec<String>>,
}

impl ExperimentInfo {
    /// Read `dir/experiment.json`; a missing file gives the empty default.
    pub fn read(dir: &Path) -> Result<Self, ReportError> {
        let path = dir.join("experiment.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ReportError::io(&path, e)),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| ReportError::Experiment {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_json(&v))
    }

    pub fn from_json(v: &Value) -> Self {
        let strings = |v: Option<&Value>| -> Option<Vec<String>> {
            v?.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        };
        let train = v
            .get("runs")
            .and_then(Value::as_array)
            .map(|runs| {
                runs.iter()
                    .filter_map(|r| {
                        let id = r.get("id")?.as_str()?.to_string();
                        Some((id, r.get("train")?.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let report = v.get("report");
        ExperimentInfo {
            name: v.get("name").and_then(Value::as_str).map(str::to_string),
            train,
            figures: strings(report.and_then(|r| r.get("figures"))),
            tables: strings(report.and_then(|r| r.get("tables"))),
        }
    }

    /// The figures to draw: the spec's list (all of [`FIGURES`] without one), in the page's
    /// order; notes name the figures left out and names this version does not know.
    pub fn chosen_figures(&self, notes: &mut Vec<String>) -> Vec<String> {
        chosen(self.figures.as_deref(), FIGURES, "figures", notes)
    }

    /// The summary tables to write (all of [`TABLES`] without a list).
    pub fn chosen_tables(&self, notes: &mut Vec<String>) -> Vec<String> {
        chosen(self.tables.as_deref(), TABLES, "tables", notes)
    }
}

fn chosen(
    list: Option<&[String]>,
    all: &[&str],
    key: &str,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let Some(list) = list else {
        return all.iter().map(|s| s.to_string()).collect();
    };
    for name in list.iter().filter(|n| !all.contains(&n.as_str())) {
        notes.push(format!(
            "experiment.json: report {{ {key} }} names `{name}`, which this report does not know (it knows {})",
            all.join(", ")
        ));
    }
    let chosen: Vec<String> = all
        .iter()
        .filter(|a| list.iter().any(|n| n == *a))
        .map(|s| s.to_string())
        .collect();
    let left_out: Vec<&str> = all
        .iter()
        .copied()
        .filter(|a| !chosen.iter().any(|c| c == a))
        .collect();
    if !left_out.is_empty() {
        notes.push(format!(
            "not in the spec's report {{ {key} }}, so not shown: {}",
            left_out.join(", ")
        ));
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_runs_and_the_report_choice() {
        let v = serde_json::json!({
            "name": "sweep",
            "runs": [{"id": "cnn-standard-lr0.01-seed0", "train": {"lr": 0.01, "seed": 0}}],
            "report": {"figures": ["training", "tradeoff", "nonsense"], "tables": []}
        });
        let info = ExperimentInfo::from_json(&v);
        assert_eq!(info.name.as_deref(), Some("sweep"));
        assert_eq!(info.train.len(), 1);
        let mut notes = Vec::new();
        // The page's order, not the spec's.
        assert_eq!(info.chosen_figures(&mut notes), ["tradeoff", "training"]);
        assert!(notes[0].contains("`nonsense`"), "{notes:?}");
        assert!(notes[1].contains("robustness, saliency_grid"), "{notes:?}");
        assert!(info.chosen_tables(&mut notes).is_empty());
    }

    #[test]
    fn no_list_means_everything() {
        let mut notes = Vec::new();
        let none = ExperimentInfo::default();
        assert_eq!(none.chosen_figures(&mut notes), FIGURES);
        assert_eq!(none.chosen_tables(&mut notes), TABLES);
        assert!(notes.is_empty(), "{notes:?}");
    }
}
