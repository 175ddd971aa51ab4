//! Tidy results: `results.csv` (one row per run, metric and, where it applies, attack, eps and
//! class), `training.csv` (one row per run and epoch) and `diagnostics.csv` (one row per
//! evaluation warning, [`crate::diagnostics`]).
//!
//! Each run owns its results: when it finishes (or fails), its findings, curve and rows are
//! written to `runs/<run-id>/diagnostics.csv`, `runs/<run-id>/training.csv` and
//! `runs/<run-id>/results.csv` ([`write_run`]), each atomically (a temporary file in the same
//! folder, renamed over the old one). The top-level `results.csv`, `training.csv` and
//! `diagnostics.csv` are then a merge: the files of every run of the spec that has them, in the
//! spec's order of runs, rebuilt under a merge lock (`.merge.lock`). So any number of processes
//! sharing one output folder (`salient run --only ...`, `--task I --tasks N`) never lose or
//! duplicate a row: whichever merges last reads every run's files. Rows of runs that are not in
//! the spec are not merged. No diagnostic compares two runs (each check reads one run's rows and
//! determinism probe), so the merged `diagnostics.csv` is the runs' findings side by side.
//!
//! # When the merged files are rebuilt
//!
//! Rebuilding rewrites every row of the grid, so rebuilding after every run of an N-run grid
//! would write O(N^2) rows. [`Merger::run_finished`] (called by the runner after each finished
//! run) rebuilds only when [`FlushPolicy`] says so:
//!
//! - **count**: the runs this process finished since the last rebuild are at least
//!   [`FlushPolicy::share`] (1/4) of the runs the last rebuild held (so after the first run, and
//!   then whenever the grid has grown by a quarter): the rebuilds' sizes grow geometrically and
//!   all of them together write at most about (1 + 1/share) = 5 times the final files' rows,
//!   plus the forced rebuilds below;
//! - **time**: at least [`FlushPolicy::min_interval`] (60 s) have passed since the last rebuild
//!   ended and at least [`FlushPolicy::interval_factor`] (20) times that rebuild's own duration
//!   (waiting for the merge lock included, so processes that contend for it rebuild less
//!   often): a grid of slow runs still sees its results within a minute of each run, and
//!   rebuilding never takes more than about 1/20 of the wall time.
//!
//! A failed run counts like a finished one (forcing a rebuild per failure would bring back
//! O(N^2) for a grid where many runs diverge; its `failed` row is in `runs/<id>/` at once). The
//! runner always rebuilds when it is interrupted and at its end (which also picks up the runs
//! other processes finished meanwhile), and `salient report` rebuilds before it
//! reads. Between two rebuilds nothing is at risk: each run's own files are written when it
//! finishes; the merged files are only behind. The clock is injectable ([`Merger::with_clock`])
//! and [`Merger::rows_written`] counts the rows every rebuild wrote, for tests.
//!
//! Folders written before runs owned their results have no per-run files: a run of the spec
//! without `runs/<id>/results.csv` keeps its rows from the existing top-level `results.csv` and
//! `training.csv`, and a run without `runs/<id>/diagnostics.csv` keeps its findings from the
//! existing top-level `diagnostics.csv` (read once, when the merger first needs them).
use crate::diagnostics::{self, Finding};
use crate::error::EngineError;
use crate::train::EpochLog;
use salient_ir::TrainRun;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub use salient_ir::results::{CurveRow, ResultRow};

/// The merged files in the output folder, and each run's own files in `runs/<id>/`.
pub const RESULTS_FILE: &str = "results.csv";
pub const TRAINING_FILE: &str = "training.csv";
pub const DIAGNOSTICS_FILE: &str = "diagnostics.csv";
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

/// Write one run's findings, curve and rows into its folder `run_dir` (`runs/<id>/`), each file
/// atomically, `results.csv` last.
pub fn write_run(
    run_dir: &Path,
    rows: &[ResultRow],
    curves: &[CurveRow],
    findings: &[Finding],
) -> Result<(), EngineError> {
    std::fs::create_dir_all(run_dir).map_err(|e| EngineError::io(run_dir, e))?;
    diagnostics::write_csv(&run_dir.join(DIAGNOSTICS_FILE), findings)?;
    write_csv(&run_dir.join(TRAINING_FILE), curves)?;
    write_csv(&run_dir.join(RESULTS_FILE), rows)
}

/// Every merged row, in the spec's order of runs.
#[derive(Debug, Default)]
pub struct Merged {
    pub rows: Vec<ResultRow>,
    pub curves: Vec<CurveRow>,
    pub findings: Vec<Finding>,
}

/// When [`Merger::run_finished`] rebuilds the merged files (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlushPolicy {
    /// Rebuild when the runs finished since the last rebuild are at least this share of the
    /// runs the last rebuild held (and at least one).
    pub share: f64,
    /// Rebuild when this much time has passed since the last rebuild ended...
    pub min_interval: Duration,
    /// ...and at least this many times the last rebuild's duration.
    pub interval_factor: u32,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            share: 0.25,
            min_interval: Duration::from_secs(60),
            interval_factor: 20,
        }
    }
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

/// Per run id, the rows, curves and findings of a folder's top-level files.
#[derive(Default)]
struct Legacy {
    rows: HashMap<String, Vec<ResultRow>>,
    curves: HashMap<String, Vec<CurveRow>>,
    findings: HashMap<String, Vec<Finding>>,
}

/// A cache of files read, keyed by run id.
type Cache<T> = HashMap<String, (Stamp, Vec<T>)>;

/// The clock the flush policy reads.
pub type Clock = Box<dyn Fn() -> Instant + Send>;

/// Merges the runs' own files into the top-level ones. Keeps what it read, keyed by each
/// file's [`Stamp`], so a rebuild re-reads only the files that changed (a stat per file) and
/// every run's file is read once; [`Merger::run_finished`] rebuilds by a [`FlushPolicy`], so
/// the rows written over a grid are linear in its rows.
pub struct Merger {
    out_dir: PathBuf,
    /// The spec's run ids, in order.
    order: Vec<String>,
    rows: Cache<ResultRow>,
    curves: Cache<CurveRow>,
    findings: Cache<Finding>,
    /// Rows of the top-level files (read once) for runs without files of their own: folders
    /// written before runs owned their results (or their findings).
    legacy: Option<Legacy>,
    policy: FlushPolicy,
    clock: Clock,
    /// Runs finished (by this process) since the last rebuild.
    pending: usize,
    /// Runs with rows in the last rebuild.
    merged_runs: usize,
    /// When the last rebuild ended and how long it took.
    last: Option<(Instant, Duration)>,
    rows_written: u64,
    merges: usize,
}

impl Merger {
    pub fn new(out_dir: &Path, order: Vec<String>) -> Self {
        Merger {
            out_dir: out_dir.to_path_buf(),
            order,
            rows: HashMap::new(),
            curves: HashMap::new(),
            findings: HashMap::new(),
            legacy: None,
            policy: FlushPolicy::default(),
            clock: Box::new(Instant::now),
            pending: 0,
            merged_runs: 0,
            last: None,
            rows_written: 0,
            merges: 0,
        }
    }

    /// The same merger with another flush policy.
    pub fn with_policy(mut self, policy: FlushPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same merger reading time from `clock` (tests: a fixed or stepped clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Data rows (header not counted) written by every rebuild so far, all files together.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Rebuilds so far.
    pub fn merges(&self) -> usize {
        self.merges
    }

    /// Bring the cache up to date with the files on disk.
    fn refresh(&mut self) -> Result<(), EngineError> {
        let runs = self.out_dir.join("runs");
        let mut missing = false;
        for id in &self.order {
            let dir = runs.join(id);
            missing |= !refresh_one(&mut self.rows, id, &dir.join(RESULTS_FILE), read_csv)?;
            refresh_one(&mut self.curves, id, &dir.join(TRAINING_FILE), read_csv)?;
            missing |= !refresh_one(
                &mut self.findings,
                id,
                &dir.join(DIAGNOSTICS_FILE),
                diagnostics::read_csv,
            )?;
        }
        if missing && self.legacy.is_none() {
            let mut legacy = Legacy::default();
            let path = self.out_dir.join(RESULTS_FILE);
            if path.is_file() {
                for r in read_csv::<ResultRow>(&path)? {
                    legacy.rows.entry(r.run.clone()).or_default().push(r);
                }
            }
            let path = self.out_dir.join(TRAINING_FILE);
            if path.is_file() {
                for r in read_csv::<CurveRow>(&path)? {
                    legacy.curves.entry(r.run.clone()).or_default().push(r);
                }
            }
            for f in diagnostics::read_csv(&self.out_dir.join(DIAGNOSTICS_FILE))? {
                legacy.findings.entry(f.run.clone()).or_default().push(f);
            }
            self.legacy = Some(legacy);
        }
        Ok(())
    }

    /// The rows of the runs in the spec's order: each run's own files where it has them, else
    /// its rows in the top-level files as they were first read.
    fn each(&self) -> impl Iterator<Item = (&[ResultRow], &[CurveRow], &[Finding])> {
        self.order.iter().map(move |id| {
            let legacy = self.legacy.as_ref();
            let (rows, curves) = match self.rows.get(id) {
                Some((_, rows)) => (
                    rows.as_slice(),
                    self.curves.get(id).map_or(&[][..], |c| c.1.as_slice()),
                ),
                None => (
                    legacy
                        .and_then(|l| l.rows.get(id))
                        .map_or(&[][..], Vec::as_slice),
                    legacy
                        .and_then(|l| l.curves.get(id))
                        .map_or(&[][..], Vec::as_slice),
                ),
            };
            let findings = match self.findings.get(id) {
                Some((_, f)) => f.as_slice(),
                None => legacy
                    .and_then(|l| l.findings.get(id))
                    .map_or(&[][..], Vec::as_slice),
            };
            (rows, curves, findings)
        })
    }

    /// Read every run's rows (see [`collect`]). Writes nothing.
    pub fn collect(&mut self) -> Result<Merged, EngineError> {
        self.refresh()?;
        let mut out = Merged::default();
        for (rows, curves, findings) in self.each() {
            out.rows.extend_from_slice(rows);
            out.curves.extend_from_slice(curves);
            out.findings.extend_from_slice(findings);
        }
        Ok(out)
    }

    /// Note that a run finished (its files are written) and rebuild the merged files if the
    /// [`FlushPolicy`] says so; true when it did.
    pub fn run_finished(&mut self) -> Result<bool, EngineError> {
        self.pending += 1;
        if !self.due() {
            return Ok(false);
        }
        self.merge()?;
        Ok(true)
    }

    /// Whether the flush policy asks for a rebuild now.
    fn due(&self) -> bool {
        let need = ((self.policy.share * self.merged_runs as f64).ceil() as usize).max(1);
        if self.pending >= need {
            return true;
        }
        match self.last {
            None => false,
            Some((ended, took)) => {
                let since = (self.clock)().saturating_duration_since(ended);
                since >= self.policy.min_interval
                    && since >= took.saturating_mul(self.policy.interval_factor)
            }
        }
    }

    /// Rebuild `results.csv`, `training.csv` and `diagnostics.csv` now (see [`merge`]).
    pub fn merge(&mut self) -> Result<(), EngineError> {
        let started = (self.clock)();
        {
            let _lock = MergeLock::acquire(&self.out_dir)?;
            self.refresh()?;
            let mut written = write_csv_iter(
                &self.out_dir.join(RESULTS_FILE),
                self.each().flat_map(|(r, _, _)| r.iter()),
                None,
            )?;
            written += write_csv_iter(
                &self.out_dir.join(TRAINING_FILE),
                self.each().flat_map(|(_, c, _)| c.iter()),
                None,
            )?;
            written += write_csv_iter(
                &self.out_dir.join(DIAGNOSTICS_FILE),
                self.each().flat_map(|(_, _, f)| f.iter()),
                Some(&diagnostics::CSV_HEADER),
            )?;
            self.rows_written += written;
        }
        self.merged_runs = self.each().filter(|(r, _, _)| !r.is_empty()).count();
        self.pending = 0;
        self.merges += 1;
        let ended = (self.clock)();
        self.last = Some((ended, ended.saturating_duration_since(started)));
        Ok(())
    }
}

/// Re-read `path` into `cache[id]` if it changed; false when the file does not exist.
fn refresh_one<T>(
    cache: &mut Cache<T>,
    id: &str,
    path: &Path,
    read: impl Fn(&Path) -> Result<Vec<T>, EngineError>,
) -> Result<bool, EngineError> {
    let Some(now) = stamp(path) else {
        cache.remove(id);
        return Ok(false);
    };
    if cache.get(id).is_none_or(|(was, _)| *was != now) {
        cache.insert(id.to_string(), (now, read(path)?));
    }
    Ok(true)
}

/// Read the rows of the runs in `order` (the spec's run ids, in order): each run's own files
/// where it has them, else (a folder from before per-run files) its rows in the top-level
/// files. Linear in the number of rows. Writes nothing.
pub fn collect(out_dir: &Path, order: &[String]) -> Result<Merged, EngineError> {
    Merger::new(out_dir, order.to_vec()).collect()
}

/// Rebuild `results.csv`, `training.csv` and `diagnostics.csv` in `out_dir` from the runs in
/// `order` ([`collect`]) under the merge lock, each file atomically.
pub fn merge(out_dir: &Path, order: &[String]) -> Result<(), EngineError> {
    Merger::new(out_dir, order.to_vec()).merge()
}

/// `out_dir/.merge.lock`, taken with [`crate::store::lock_file`] (exclusive, with its holder
/// `pid=.. host=.. since=..`), removed on drop. A lock left by a killed process is taken over at
/// once when that process is dead on this host, else after [`MERGE_LOCK_STALE`].
struct MergeLock {
    _lock: crate::store::RunLock,
}

impl MergeLock {
    fn acquire(out_dir: &Path) -> Result<Self, EngineError> {
        let path = out_dir.join(MERGE_LOCK);
        let policy = crate::store::LockPolicy {
            stale_after: MERGE_LOCK_STALE,
            heartbeat: None,
        };
        let started = Instant::now();
        loop {
            match crate::store::lock_file(&path, policy)? {
                crate::store::Lock::Acquired(lock) => return Ok(MergeLock { _lock: lock }),
                crate::store::Lock::Held(holder) => {
                    if started.elapsed() > 2 * MERGE_LOCK_STALE {
                        return Err(EngineError::Results {
                            path,
                            reason: format!("another process ({holder}) has held the merge lock for minutes; remove the file if no salient process uses this folder"),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Write `rows` to `path` atomically: a temporary file in the same folder, renamed over `path`.
pub(crate) fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), EngineError> {
    write_csv_iter(path, rows.iter(), None).map(|_| ())
}

/// Write `rows` to `path` atomically and return how many were written. With `header`, that
/// header line first (also when there is no row); without, the header serde derives from the
/// first row (none when there is no row).
pub(crate) fn write_csv_iter<'a, T: Serialize + 'a>(
    path: &Path,
    rows: impl Iterator<Item = &'a T>,
    header: Option<&[&str]>,
) -> Result<u64, EngineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e: csv::Error| EngineError::Results {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| EngineError::io(dir, e))?;
    let mut n = 0u64;
    {
        let mut w = csv::WriterBuilder::new()
            .has_headers(header.is_none())
            .from_writer(std::io::BufWriter::new(tmp.as_file()));
        if let Some(h) = header {
            w.write_record(h).map_err(err)?;
        }
        for r in rows {
            w.serialize(r).map_err(err)?;
            n += 1;
        }
        w.flush().map_err(|e| EngineError::io(tmp.path(), e))?;
    }
    persist(tmp, path)?;
    Ok(n)
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

pub(crate) fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, EngineError> {
    let err = |e: csv::Error| EngineError::Results {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    r.deserialize().collect::<Result<Vec<T>, _>>().map_err(err)
}
