//! Tidy results: `results.csv` (one row per run, metric and, where it applies, attack, eps and
//! class) and `training.csv` (one row per run and epoch).
//!
//! Each run owns its results: when it finishes (or fails), its rows and curve are written to
//! `runs/<run-id>/results.csv` and `runs/<run-id>/training.csv`, each atomically (a temporary
//! file in the same folder, renamed over the old one). The top-level `results.csv` and
//! `training.csv` are then a merge: the files of every run of the spec that has them, in the
//! spec's order of runs, rebuilt under a merge lock (`.merge.lock`) after every finished run. So
//! any number of processes sharing one output folder (`salient run --only ...`, `--task I
//! --tasks N`) never lose or duplicate a row: whichever merges last reads every run's file.
//! Rows of runs that are not in the spec are not merged.
//!
//! Folders written before runs owned their results have no per-run files: a run of the spec
//! without `runs/<id>/results.csv` keeps its rows from the existing top-level file.
use crate::error::EngineError;
use crate::train::EpochLog;
use salient_ir::TrainRun;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub use salient_ir::results::{CurveRow, ResultRow};

/// The merged files in the output folder, and each run's own files in `runs/<id>/`.
pub const RESULTS_FILE: &str = "results.csv";
pub const TRAINING_FILE: &str = "training.csv";
/// Held while a process rebuilds the merged files.
pub const MERGE_LOCK: &str = ".merge.lock";
/// A merge lock older than this is left by a killed process and is taken over (a merge of
/// 10,000 runs takes well under a second).
pub const MERGE_LOCK_STALE: Duration = Duration::from_secs(120);

/// The training curve rows of a run.
pub fn curve_rows(run: &TrainRun, log: &[EpochLog]) -> Vec<CurveRow> {
    log.iter()
        .map(|e| CurveRow {
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
        })
        .collect()
}

/// Write one run's rows and curve into its folder `run_dir` (`runs/<id>/`), each file
/// atomically.
pub fn write_run(
    run_dir: &Path,
    rows: &[ResultRow],
    curves: &[CurveRow],
) -> Result<(), EngineError> {
    std::fs::create_dir_all(run_dir).map_err(|e| EngineError::io(run_dir, e))?;
    write_csv(&run_dir.join(RESULTS_FILE), rows)?;
    write_csv(&run_dir.join(TRAINING_FILE), curves)
}

/// Every merged row, in the spec's order of runs.
#[derive(Debug, Default)]
pub struct Merged {
    pub rows: Vec<ResultRow>,
    pub curves: Vec<CurveRow>,
}

/// Identifies one version of a file: a rewrite is a new file renamed into place, so its inode
/// (Unix), size or modification time differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode,
    })
}

/// Per run id, the rows and curves of a folder's top-level files.
type Legacy = (
    HashMap<String, Vec<ResultRow>>,
    HashMap<String, Vec<CurveRow>>,
);

/// Merges the runs' own files into the top-level ones. Keeps what it read, keyed by each
/// file's [`Stamp`], so a merge after every run of a long grid re-reads only the files that
/// changed (a stat per file) and its cost is linear in the rows written.
pub struct Merger {
    out_dir: PathBuf,
    /// The spec's run ids, in order.
    order: Vec<String>,
    rows: HashMap<String, (Stamp, Vec<ResultRow>)>,
    curves: HashMap<String, (Stamp, Vec<CurveRow>)>,
    /// Rows of the top-level files (read once) for runs without files of their own: folders
    /// written before runs owned their results.
    legacy: Option<Legacy>,
}

impl Merger {
    pub fn new(out_dir: &Path, order: Vec<String>) -> Self {
        Merger {
            out_dir: out_dir.to_path_buf(),
            order,
            rows: HashMap::new(),
            curves: HashMap::new(),
            legacy: None,
        }
    }

    /// Bring the cache up to date with the files on disk.
    fn refresh(&mut self) -> Result<(), EngineError> {
        let runs = self.out_dir.join("runs");
        let mut missing = false;
        for id in &self.order {
            let dir = runs.join(id);
            missing |= !refresh_one(&mut self.rows, id, &dir.join(RESULTS_FILE))?;
            refresh_one(&mut self.curves, id, &dir.join(TRAINING_FILE))?;
        }
        if missing && self.legacy.is_none() {
            let mut rows: HashMap<String, Vec<ResultRow>> = HashMap::new();
            let mut curves: HashMap<String, Vec<CurveRow>> = HashMap::new();
            let path = self.out_dir.join(RESULTS_FILE);
            if path.is_file() {
                for r in read_csv::<ResultRow>(&path)? {
                    rows.entry(r.run.clone()).or_default().push(r);
                }
            }
            let path = self.out_dir.join(TRAINING_FILE);
            if path.is_file() {
                for r in read_csv::<CurveRow>(&path)? {
                    curves.entry(r.run.clone()).or_default().push(r);
                }
            }
            self.legacy = Some((rows, curves));
        }
        Ok(())
    }

    /// The rows of the runs in the spec's order: each run's own files where it has them, else
    /// its rows in the top-level files as they were first read.
    fn each(&self) -> impl Iterator<Item = (&[ResultRow], &[CurveRow])> {
        self.order.iter().map(move |id| match self.rows.get(id) {
            Some((_, rows)) => (
                rows.as_slice(),
                self.curves.get(id).map_or(&[][..], |c| c.1.as_slice()),
            ),
            None => match &self.legacy {
                Some((rows, curves)) => (
                    rows.get(id).map_or(&[][..], Vec::as_slice),
                    curves.get(id).map_or(&[][..], Vec::as_slice),
                ),
                None => (&[][..], &[][..]),
            },
        })
    }

    /// Read every run's rows (see [`collect`]). Writes nothing.
    pub fn collect(&mut self) -> Result<Merged, EngineError> {
        self.refresh()?;
        let mut out = Merged::default();
        for (rows, curves) in self.each() {
            out.rows.extend_from_slice(rows);
            out.curves.extend_from_slice(curves);
        }
        Ok(out)
    }

    /// Rebuild `results.csv` and `training.csv` (see [`merge`]).
    pub fn merge(&mut self) -> Result<(), EngineError> {
        let _lock = MergeLock::acquire(&self.out_dir)?;
        self.refresh()?;
        write_csv_iter(
            &self.out_dir.join(RESULTS_FILE),
            self.each().flat_map(|(r, _)| r.iter()),
        )?;
        write_csv_iter(
            &self.out_dir.join(TRAINING_FILE),
            self.each().flat_map(|(_, c)| c.iter()),
        )
    }
}

/// Re-read `path` into `cache[id]` if it changed; false when the file does not exist.
fn refresh_one<T: serde::de::DeserializeOwned>(
    cache: &mut HashMap<String, (Stamp, Vec<T>)>,
    id: &str,
    path: &Path,
) -> Result<bool, EngineError> {
    let Some(now) = stamp(path) else {
        cache.remove(id);
        return Ok(false);
    };
    if cache.get(id).is_none_or(|(was, _)| *was != now) {
        cache.insert(id.to_string(), (now, read_csv(path)?));
    }
    Ok(true)
}

/// Read the rows of the runs in `order` (the spec's run ids, in order): each run's own files
/// where it has them, else (a folder from before per-run files) its rows in the top-level
/// files. Linear in the number of rows. Writes nothing.
pub fn collect(out_dir: &Path, order: &[String]) -> Result<Merged, EngineError> {
    Merger::new(out_dir, order.to_vec()).collect()
}

/// Rebuild `results.csv` and `training.csv` in `out_dir` from the runs in `order` ([`collect`])
/// under the merge lock, each file atomically.
pub fn merge(out_dir: &Path, order: &[String]) -> Result<(), EngineError> {
    Merger::new(out_dir, order.to_vec()).merge()
}

/// `out_dir/.merge.lock`, created exclusively (O_EXCL), removed on drop.
struct MergeLock {
    path: PathBuf,
}

impl MergeLock {
    fn acquire(out_dir: &Path) -> Result<Self, EngineError> {
        let path = out_dir.join(MERGE_LOCK);
        let started = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "pid={}", std::process::id());
                    return Ok(MergeLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > MERGE_LOCK_STALE) {
                        // Left by a killed process: take it over.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed() > 2 * MERGE_LOCK_STALE {
                        return Err(EngineError::Results {
                            path,
                            reason: "another process has held the merge lock for minutes; remove the file if no salient process uses this folder".to_string(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(EngineError::io(&path, e)),
            }
        }
    }
}

impl Drop for MergeLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Write `rows` to `path` atomically: a temporary file in the same folder, renamed over `path`.
pub(crate) fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), EngineError> {
    write_csv_iter(path, rows.iter())
}

fn write_csv_iter<'a, T: Serialize + 'a>(
    path: &Path,
    rows: impl Iterator<Item = &'a T>,
) -> Result<(), EngineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e: csv::Error| EngineError::Results {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| EngineError::io(dir, e))?;
    {
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(tmp.as_file()));
        for r in rows {
            w.serialize(r).map_err(err)?;
        }
        w.flush().map_err(|e| EngineError::io(tmp.path(), e))?;
    }
    persist(tmp, path)
}

/// Rename a finished temporary file over `path`, readable by others as a plainly written file
/// is (a temporary file is created private).
pub(crate) fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), EngineError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| EngineError::io(tmp.path(), e))?;
    }
    tmp.persist(path)
        .map_err(|e| EngineError::io(path, e.error))?;
    Ok(())
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
