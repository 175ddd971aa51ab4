//! The tidy tables a run writes, read back: `results.csv` (one row per run, metric and, where
//! it applies, attack, eps, saliency method, curve point and class) and `training.csv` (one row
//! per run and epoch). Columns are matched by header name; optional columns may be absent
//! (older files have no `saliency` / `point`), so a report reads every version of the files.
use crate::error::ReportError;
use std::path::Path;

pub use salient_ir::results::{CurveRow, ResultRow};

/// What the figures and tables compare: one training configuration, i.e. a run id without its
/// seed. Runs that differ only in the seed are replicates of one group and are aggregated;
/// runs that differ in a swept training setting (`train { lr = [1e-3, 1e-2] }`: lr, epochs,
/// batch, optimizer, ...) are different groups, never averaged together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pub model: String,
    /// The regime's label (its name plus its own sweep values).
    pub regime: String,
    /// The training-sweep part of the run id (`lr0.01_epochs5`), empty when `train` has no
    /// list other than `seed` (and for run ids not in the engine's `model-regime[-train]-seedN`
    /// form, which then group by model and regime alone).
    pub variant: String,
    /// How `variant` is shown: `lr=0.01 epochs=5` (from the runs' training settings in
    /// experiment.json), else `variant` itself.
    pub variant_label: String,
}

/// The training-sweep part of an engine run id `model-regime_part[-train_part]-seedN` (the ids
/// built by the checker, `salient-lang/src/check/runs.rs`: names are identifiers and sweep
/// values are sanitised, so neither holds a `-`). Empty when there is none or when the id is
/// not in that form.
pub fn variant_of(run: &str, model: &str, seed: u64) -> String {
    let Some(rest) = run
        .strip_suffix(&format!("-seed{seed}"))
        .and_then(|r| r.strip_prefix(model))
        .and_then(|r| r.strip_prefix('-'))
    else {
        return String::new();
    };
    match rest.split_once('-') {
        Some((_regime, train)) => train.to_string(),
        None => String::new(),
    }
}

/// Everything read from a run directory's CSV files.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    pub rows: Vec<ResultRow>,
    pub curves: Vec<CurveRow>,
    /// Groups in order of first appearance (results first, then training), so colours and
    /// table rows follow the spec's order of runs.
    pub groups: Vec<Group>,
    /// Run id -> (group, seed).
    runs: std::collections::HashMap<String, (usize, u64)>,
}

impl Tables {
    /// Build from rows (the groups are derived from each row's run id, model, regime and seed).
    pub fn new(rows: Vec<ResultRow>, curves: Vec<CurveRow>) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        let mut runs = std::collections::HashMap::new();
        let ids = rows
            .iter()
            .map(|r| (&r.run, &r.model, &r.regime, r.seed))
            .chain(curves.iter().map(|c| (&c.run, &c.model, &c.regime, c.seed)));
        for (run, model, regime, seed) in ids {
            if runs.contains_key(run) {
                continue;
            }
            let variant = variant_of(run, model, seed);
            let g = match groups
                .iter()
                .position(|g| &g.model == model && &g.regime == regime && g.variant == variant)
            {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        model: model.clone(),
                        regime: regime.clone(),
                        variant_label: variant.clone(),
                        variant,
                    });
                    groups.len() - 1
                }
            };
            runs.insert(run.clone(), (g, seed));
        }
        Tables {
            rows,
            curves,
            groups,
            runs,
        }
    }

    /// Name the training-sweep variants from the runs' training settings (`runs[].train` of
    /// experiment.json, by run id): each group's label lists the settings, other than `seed`,
    /// whose values differ between the experiment's runs (`lr=0.01`). Groups whose runs are not
    /// in `train` keep the id's text.
    pub fn name_variants(&mut self, train: &[(String, serde_json::Value)]) {
        let objects: Vec<(&String, &serde_json::Map<String, serde_json::Value>)> = train
            .iter()
            .filter_map(|(id, v)| v.as_object().map(|o| (id, o)))
            .collect();
        let Some((_, first)) = objects.first() else {
            return;
        };
        let swept: Vec<&String> = first
            .keys()
            .filter(|k| k.as_str() != "seed")
            .filter(|k| {
                objects
                    .iter()
                    .any(|(_, o)| o.get(k.as_str()) != first.get(k.as_str()))
            })
            .collect();
        for (g, group) in self.groups.iter_mut().enumerate() {
            if group.variant.is_empty() {
                continue;
            }
            let config = objects.iter().find_map(|(id, o)| {
                (self.runs.get(id.as_str()).map(|r| r.0) == Some(g)).then_some(o)
            });
            if let Some(o) = config {
                let parts: Vec<String> = swept
                    .iter()
                    .filter_map(|k| {
                        o.get(k.as_str())
                            .map(|v| format!("{k}={}", setting_text(v)))
                    })
                    .collect();
                if !parts.is_empty() {
                    group.variant_label = parts.join(" ");
                }
            }
        }
        // Two variants that the settings' text cannot tell apart (e.g. two `step` schedules
        // with different gammas) keep the ids' text, which is unique.
        let groups = self.groups.clone();
        for g in self.groups.iter_mut() {
            let clash = groups.iter().any(|o| {
                o.model == g.model
                    && o.regime == g.regime
                    && o.variant != g.variant
                    && o.variant_label == g.variant_label
            });
            if clash {
                g.variant_label = g.variant.clone();
            }
        }
    }

    /// Index of the group of a result row; `None` for a row the tables do not hold.
    pub fn group_of_row(&self, r: &ResultRow) -> Option<usize> {
        self.runs.get(&r.run).map(|&(g, _)| g)
    }

    /// Index of the group of a training-curve row.
    pub fn group_of_curve(&self, c: &CurveRow) -> Option<usize> {
        self.runs.get(&c.run).map(|&(g, _)| g)
    }

    /// The group's label in legends and tables: the regime, then the training-sweep values
    /// (`standard lr=0.01`), prefixed by the model when the experiment has more than one model.
    pub fn label(&self, group: usize) -> String {
        let g = &self.groups[group];
        let many_models = self.groups.iter().any(|o| o.model != g.model);
        let mut label = if many_models {
            format!("{} / {}", g.model, g.regime)
        } else {
            g.regime.clone()
        };
        if !g.variant_label.is_empty() {
            label.push(' ');
            label.push_str(&g.variant_label);
        }
        label
    }

    /// Rows of one metric.
    pub fn metric<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ResultRow> + 'a {
        self.rows.iter().filter(move |r| r.metric == name)
    }

    pub fn has_metric(&self, name: &str) -> bool {
        self.metric(name).next().is_some()
    }

    /// The group and seed of a run id, looked up in either table.
    pub fn group_of_run(&self, run: &str) -> Option<(usize, u64)> {
        self.runs.get(run).copied()
    }
}

/// A training setting as a label shows it: numbers and strings as they are (`0.01`, `cosine`),
/// an enum with fields by its variant's name (`{"Adam": {...}}` -> `adam`).
fn setting_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.to_lowercase(),
        serde_json::Value::Object(o) if o.len() == 1 => o
            .keys()
            .next()
            .map(|k| k.to_lowercase())
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Read `DIR/results.csv` (required: without it there is nothing to report) and
/// `DIR/training.csv` (optional).
pub fn load(dir: &Path) -> Result<Tables, ReportError> {
    let results = dir.join("results.csv");
    let training = dir.join("training.csv");
    if !results.is_file() {
        return Err(ReportError::NoResults { path: results });
    }
    let rows = read_csv::<ResultRow>(&results)?;
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
        assert!(e.to_string().contains("results.csv does not exist"), "{e}");
        // training.csv alone is not a report either.
        write(&dir, "training.csv", "run,model,regime,seed,epoch,loss,train_accuracy,test_accuracy,lr,seconds,images_per_second\nc0,mlp,standard,1,1,0.5,0.8,0.85,0.001,1.0,100\n");
        let e = load(&dir).unwrap_err();
        assert!(matches!(e, ReportError::NoResults { .. }), "{e}");
        write(
            &dir,
            "results.csv",
            "run,model,regime,seed,metric,value\nr,m,s,zero,clean_accuracy,0.5\n",
        );
        let e = load(&dir).unwrap_err();
        assert!(matches!(e, ReportError::Csv { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn result(run: &str, regime: &str, seed: u64, value: f64) -> ResultRow {
        ResultRow {
            run: run.into(),
            model: "cnn".into(),
            regime: regime.into(),
            seed,
            metric: salient_ir::results::CLEAN_ACCURACY.into(),
            attack: None,
            eps: None,
            saliency: None,
            point: None,
            class: None,
            value,
        }
    }

    #[test]
    fn variant_is_the_training_sweep_part_of_the_id() {
        assert_eq!(variant_of("cnn-standard-seed0", "cnn", 0), "");
        assert_eq!(variant_of("cnn-sgt_k0.5-seed3", "cnn", 3), "");
        assert_eq!(variant_of("cnn-standard-lr0.01-seed1", "cnn", 1), "lr0.01");
        assert_eq!(
            variant_of("mlp-pgd_at_eps0.3-lr1e_3_epochs5-seed0", "mlp", 0),
            "lr1e_3_epochs5"
        );
        // Not the engine's form (or the seed column disagrees): no variant.
        assert_eq!(variant_of("a0", "cnn", 0), "");
        assert_eq!(variant_of("cnn-standard-lr0.01-seed1", "cnn", 2), "");
    }

    #[test]
    fn a_sweep_over_lr_is_two_groups_and_seeds_are_replicates() {
        // train { lr = [1e-3, 1e-2]  seed = [0, 1] }: four runs, two configurations.
        let rows = vec![
            result("cnn-standard-lr0.001-seed0", "standard", 0, 0.90),
            result("cnn-standard-lr0.01-seed0", "standard", 0, 0.50),
            result("cnn-standard-lr0.001-seed1", "standard", 1, 0.92),
            result("cnn-standard-lr0.01-seed1", "standard", 1, 0.60),
        ];
        let mut t = Tables::new(rows, vec![]);
        assert_eq!(t.groups.len(), 2);
        assert_eq!(t.group_of_run("cnn-standard-lr0.001-seed1"), Some((0, 1)));
        assert_eq!(t.group_of_run("cnn-standard-lr0.01-seed0"), Some((1, 0)));
        assert_eq!(t.label(0), "standard lr0.001");
        let config = |lr: f64, seed: u64| serde_json::json!({"optimizer": {"Adam": {"beta1": 0.9}}, "lr": lr, "epochs": 2, "seed": seed});
        t.name_variants(&[
            ("cnn-standard-lr0.001-seed0".into(), config(0.001, 0)),
            ("cnn-standard-lr0.01-seed0".into(), config(0.01, 0)),
            ("cnn-standard-lr0.001-seed1".into(), config(0.001, 1)),
            ("cnn-standard-lr0.01-seed1".into(), config(0.01, 1)),
        ]);
        assert_eq!(t.label(0), "standard lr=0.001");
        assert_eq!(t.label(1), "standard lr=0.01");
        // Mean over the two seeds of each lr, never over the four runs.
        let s = crate::aggregate::scalar(&t, t.rows.iter(), 1.0);
        let (m0, _, n0) = s[&0];
        let (m1, _, n1) = s[&1];
        assert_eq!((n0, n1), (2, 2));
        assert!(
            (m0 - 0.91).abs() < 1e-12 && (m1 - 0.55).abs() < 1e-12,
            "{m0} {m1}"
        );
    }
}
