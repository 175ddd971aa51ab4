//! The tidy tables a run writes, read back: `results.csv` (one row per run, metric and, where
//! it applies, attack, eps, saliency method, curve point and class) and `training.csv` (one row
//! per run and epoch). Columns are matched by header name; optional columns may be absent
//! (older files have no `saliency` / `point`), so a report reads every version of the files.
use crate::error::ReportError;
use std::path::Path;

pub use salient_ir::results::{CurveRow, ResultRow};

/// A (model, regime) pair: what the figures compare. Seeds of one group are aggregated.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pub model: String,
    pub regime: String,
}

/// Everything read from a run directory's CSV files.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    pub rows: Vec<ResultRow>,
    pub curves: Vec<CurveRow>,
    /// Groups in order of first appearance (results first, then training), so colours and
    /// table rows follow the spec's order of runs.
    pub groups: Vec<Group>,
}

impl Tables {
    /// Build from rows (the groups are derived).
    pub fn new(rows: Vec<ResultRow>, curves: Vec<CurveRow>) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        let pairs = rows
            .iter()
            .map(|r| (&r.model, &r.regime))
            .chain(curves.iter().map(|c| (&c.model, &c.regime)));
        for (model, regime) in pairs {
            if !groups
                .iter()
                .any(|g| &g.model == model && &g.regime == regime)
            {
                groups.push(Group {
                    model: model.clone(),
                    regime: regime.clone(),
                });
            }
        }
        Tables {
            rows,
            curves,
            groups,
        }
    }

    /// Index of a group (by model and regime); `None` for an unknown pair.
    pub fn group_of(&self, model: &str, regime: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.model == model && g.regime == regime)
    }

    /// The group's label in legends and tables: the regime, prefixed by the model when the
    /// experiment has more than one model.
    pub fn label(&self, group: usize) -> String {
        let g = &self.groups[group];
        let many_models = self.groups.iter().any(|o| o.model != g.model);
        if many_models {
            format!("{} / {}", g.model, g.regime)
        } else {
            g.regime.clone()
        }
    }

    /// Rows of one metric.
    pub fn metric<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ResultRow> + 'a {
        self.rows.iter().filter(move |r| r.metric == name)
    }

    pub fn has_metric(&self, name: &str) -> bool {
        self.metric(name).next().is_some()
    }

    /// The group of a run id, looked up in either table.
    pub fn group_of_run(&self, run: &str) -> Option<(usize, u64)> {
        let hit = self
            .rows
            .iter()
            .find(|r| r.run == run)
            .map(|r| (&r.model, &r.regime, r.seed));
        let hit = hit.or_else(|| {
            self.curves
                .iter()
                .find(|c| c.run == run)
                .map(|c| (&c.model, &c.regime, c.seed))
        });
        hit.and_then(|(m, r, seed)| self.group_of(m, r).map(|g| (g, seed)))
    }
}

/// Read `DIR/results.csv` and `DIR/training.csv`. Either may be missing (a run killed before
/// its first evaluation has only training.csv); both missing is an error.
pub fn load(dir: &Path) -> Result<Tables, ReportError> {
    let results = dir.join("results.csv");
    let training = dir.join("training.csv");
    if !results.is_file() && !training.is_file() {
        return Err(ReportError::NoResults {
            dir: dir.to_path_buf(),
        });
    }
    let rows = if results.is_file() {
        read_csv::<ResultRow>(&results)?
    } else {
        Vec::new()
    };
    let curves = if training.is_file() {
        read_csv::<CurveRow>(&training)?
    } else {
        Vec::new()
    };
    Ok(Tables::new(rows, curves))
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, ReportError> {
    let err = |e: csv::Error| ReportError::Csv {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut reader = csv::Reader::from_path(path).map_err(err)?;
    let rows = reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(err)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn reads_old_and_new_columns_and_orders_groups() {
        let dir = std::env::temp_dir().join(format!("salient-report-data-{}", std::process::id()));
        // An older results.csv without the saliency and point columns.
        write(&dir, "results.csv", "run,model,regime,seed,metric,attack,eps,class,value\nb0,cnn,sgt,0,clean_accuracy,,,,0.9\na0,cnn,standard,0,robust_accuracy,pgd,0.1,,0.5\nb0,cnn,sgt,0,class_accuracy,,,3,0.8\n");
        write(&dir, "training.csv", "run,model,regime,seed,epoch,loss,train_accuracy,test_accuracy,lr,seconds,images_per_second\nc0,mlp,standard,1,1,0.5,0.8,0.85,0.001,1.0,100\n");
        let t = load(&dir).unwrap();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[1].attack.as_deref(), Some("pgd"));
        assert_eq!(t.rows[1].eps, Some(0.1));
        assert_eq!(t.rows[0].saliency, None);
        assert_eq!(t.rows[2].class, Some(3));
        let labels: Vec<String> = (0..t.groups.len()).map(|g| t.label(g)).collect();
        assert_eq!(labels, ["cnn / sgt", "cnn / standard", "mlp / standard"]);
        assert_eq!(t.group_of_run("c0"), Some((2, 1)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_and_bad_rows_are_clear_errors() {
        let dir =
            std::env::temp_dir().join(format!("salient-report-data-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = load(&dir).unwrap_err();
        assert!(
            e.to_string()
                .contains("neither results.csv nor training.csv"),
            "{e}"
        );
        write(
            &dir,
            "results.csv",
            "run,model,regime,seed,metric,value\nr,m,s,zero,clean_accuracy,0.5\n",
        );
        let e = load(&dir).unwrap_err();
        assert!(matches!(e, ReportError::Csv { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
