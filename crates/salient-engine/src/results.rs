//! Tidy results: `results.csv` (one row per run, metric and, where it applies, attack, eps and
//! class) and `training.csv` (one row per run and epoch). Both are rewritten atomically after
//! every finished run, so a killed run never leaves a torn file and never loses finished work.
//!
//! A run directory may be filled by several invocations (`salient run --only ...`): the rows of
//! the runs an invocation does not evaluate are read back from the existing files and kept, and
//! every flush writes the rows in the spec's order of runs.
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
    /// Run ids in the spec's order: flushes sort rows by it (unknown runs last).
    order: Vec<String>,
}

impl Results {
    pub fn new(dir: &Path) -> Self {
        Results {
            dir: dir.to_path_buf(),
            rows: Vec::new(),
            curves: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Start from the rows already in `dir` that belong to the runs in `keep` (runs of the
    /// spec that this invocation will not evaluate again); `order` is the spec's order of runs.
    /// Missing files are no rows; a file that cannot be read is an error naming it.
    pub fn resume(dir: &Path, order: Vec<String>, keep: &[String]) -> Result<Self, EngineError> {
        let mut out = Results::new(dir);
        out.order = order;
        if keep.is_empty() {
            return Ok(out);
        }
        let kept = |run: &str| keep.iter().any(|k| k == run);
        let results = dir.join("results.csv");
        if results.is_file() {
            out.rows = read_results(&results)?
                .into_iter()
                .filter(|r| kept(&r.run))
                .collect();
        }
        let training = dir.join("training.csv");
        if training.is_file() {
            out.curves = read_csv::<CurveRow>(&training)?
                .into_iter()
                .filter(|r| kept(&r.run))
                .collect();
        }
        Ok(out)
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

    /// Rewrite `results.csv` and `training.csv` (temp file + rename), rows in the spec's order
    /// of runs (a stable sort: each run's rows keep their order).
    pub fn flush(&mut self) -> Result<(), EngineError> {
        let order = &self.order;
        let rank = |run: &str| order.iter().position(|r| r == run).unwrap_or(order.len());
        self.rows.sort_by_key(|r| rank(&r.run));
        self.curves.sort_by_key(|r| rank(&r.run));
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
    read_csv(path)
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, EngineError> {
    let err = |e: csv::Error| EngineError::Results {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    r.deserialize().collect::<Result<Vec<T>, _>>().map_err(err)
}
