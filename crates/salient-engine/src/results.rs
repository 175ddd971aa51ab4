//! Tidy results: `results.csv` (one row per run, metric and, where it applies, attack, eps and
//! class) and `training.csv` (one row per run and epoch). Both are rewritten atomically after
//! every finished run, so a killed run never leaves a torn file and never loses finished work.
use crate::error::EngineError;
use crate::train::EpochLog;
use salient_ir::TrainRun;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use salient_ir::results::{CurveRow, ResultRow};

/// Accumulates rows and rewrites the CSV files in `dir`.
pub struct Results {
    dir: PathBuf,
    pub rows: Vec<ResultRow>,
    pub curves: Vec<CurveRow>,
}

impl Results {
    pub fn new(dir: &Path) -> Self {
        Results {
            dir: dir.to_path_buf(),
            rows: Vec::new(),
            curves: Vec::new(),
        }
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
    let err = |e: csv::Error| EngineError::Results {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
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
    let err = |e: csv::Error| EngineError::Results {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    r.deserialize()
        .collect::<Result<Vec<ResultRow>, _>>()
        .map_err(err)
}
