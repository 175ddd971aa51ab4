//! Tidy results: `results.csv` (one row per run, metric and, where it applies, attack, eps and
//! class) and `training.csv` (one row per run and epoch). Both are rewritten atomically after
//! every finished run, so a killed run never leaves a torn file and never loses finished work.
use crate::error::EngineError;
use crate::train::EpochLog;
use salient_ir::TrainRun;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One tidy result row. Empty optional fields are written as empty cells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub run: String,
    pub model: String,
    /// The regime's label (name plus the sweep values that distinguish it).
    pub regime: String,
    pub seed: u64,
    pub metric: String,
    /// Attack name (robust accuracy; `worst_case` for the per-example worst case over attacks).
    pub attack: Option<String>,
    pub eps: Option<f64>,
    /// Saliency method name (saliency metrics).
    pub saliency: Option<String>,
    /// The curve's abscissa where a metric is a curve (e.g. the masked percentage p of the
    /// masking curve, the fraction of pixels deleted).
    pub point: Option<f64>,
    pub class: Option<usize>,
    pub value: f64,
}

impl ResultRow {
    pub fn new(run: &TrainRun, metric: &str, value: f64) -> Self {
        ResultRow {
            run: run.id.clone(),
            model: run.model.clone(),
            regime: run.regime.label.clone(),
            seed: run.train.seed,
            metric: metric.to_string(),
            attack: None,
            eps: None,
            saliency: None,
            point: None,
            class: None,
            value,
        }
    }
}

/// One row of the training curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    pub run: String,
    pub model: String,
    pub regime: String,
    pub seed: u64,
    pub epoch: usize,
    pub loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Accumulates rows and rewrites the CSV files in `dir`.
pub struct Results {
    dir: PathBuf,
    pub rows: Vec<ResultRow>,
    pub curves: Vec<CurveRow>,
}

impl Results {
    pub fn new(dir: &Path) -> Self {
        Results { dir: dir.to_path_buf(), rows: Vec::new(), curves: Vec::new() }
    }

    pub fn add_curve(&mut self, run: &TrainRun, log: &[EpochLog]) {
        for e in log {
            self.curves.push(CurveRow {
                run: run.id.clone(),
                model: run.model.clone(),
                regime: run.regime.label.clone(),
                seed: run.train.seed,
                epoch: e.epoch,
                loss: e.loss,
                train_accuracy: e.train_accuracy,
                test_accuracy: e.test_accuracy,
                lr: e.lr,
                seconds: e.seconds,
                images_per_second: e.images_per_second,
            });
        }
    }

    /// Rewrite `results.csv` and `training.csv` (temp file + rename).
    pub fn flush(&self) -> Result<(), EngineError> {
        write_csv(&self.dir.join("results.csv"), &self.rows)?;
        write_csv(&self.dir.join("training.csv"), &self.curves)
    }
}

fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), EngineError> {
    let tmp = path.with_extension("csv.tmp");
    let err = |e: csv::Error| EngineError::Results { path: path.to_path_buf(), reason: e.to_string() };
    {
        let mut w = csv::Writer::from_path(&tmp).map_err(err)?;
        for r in rows {
            w.serialize(r).map_err(err)?;
        }
        w.flush().map_err(|e| EngineError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))
}

/// Read a `results.csv` back (for reports and tests).
pub fn read_results(path: &Path) -> Result<Vec<ResultRow>, EngineError> {
    let err = |e: csv::Error| EngineError::Results { path: path.to_path_buf(), reason: e.to_string() };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    r.deserialize().collect::<Result<Vec<ResultRow>, _>>().map_err(err)
}
