//! Checkpoints: `<out>/runs/<run id>/model.safetensors` (PyTorch layout, loadable with
//! `safetensors.torch.load_file`) next to `run.json` (the checked IR of the run, its key, the
//! training curve). A later `salient run` of the same spec reuses a checkpoint whose key matches.
//!
//! The key is the SHA-256 of everything that determines the trained weights: the IR version, the
//! run (model name, regime with its parameters, training configuration and seed), the model
//! definition, the data spec, the fingerprint of the data files and the engine's
//! [`ENGINE_VERSION`]. Changing an attack, a metric or the report does not retrain; changing the
//! data, the model, a training setting or the engine's training code (a bumped version) does.
use crate::error::EngineError;
use crate::train::EpochLog;
use dfdx::prelude::*;
use salient_ir::{DataSpec, ModelDef, TrainRun, IR_VERSION};
use salient_nn::{checkpoint, Network};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `run.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub ir_version: u32,
    pub key: String,
    pub run: TrainRun,
    pub model: ModelDef,
    pub data: DataSpec,
    pub data_fingerprint: String,
    pub log: Vec<EpochLog>,
    pub train_seconds: f64,
}

/// The version of what training computes. Bump it with any change that alters the weights a
/// run trains to (a regime, an optimizer, a layer's forward or backward, data loading, the
/// initialisation, the order of random draws): every checkpoint key changes, so `salient run`
/// retrains instead of silently reusing weights the fixed code would not produce. Changes that
/// only touch evaluation (attacks, saliency, metrics, the report) need no bump. Version 1 is
/// left out of the key (the keys of the checkpoints written before the version existed).
///
/// History: 1, the code up to commit 4eaadd8; 2, normal draws from `rand_distr` instead of
/// Box-Muller (commit 37fe500: the sensitivity regime's gaussian noise, TRADES and L2 random
/// starts, and synthetic data, whose fingerprint covers its settings but not its values).
pub const ENGINE_VERSION: u32 = 2;

/// The checkpoint key of `run` (see the module doc).
pub fn run_key(run: &TrainRun, model: &ModelDef, data: &DataSpec, fingerprint: &str) -> String {
    run_key_at(ENGINE_VERSION, run, model, data, fingerprint)
}

/// [`run_key`] as engine version `version` computes it.
pub fn run_key_at(
    version: u32,
    run: &TrainRun,
    model: &ModelDef,
    data: &DataSpec,
    fingerprint: &str,
) -> String {
    let mut payload = serde_json::json!({
        "ir_version": IR_VERSION,
        "run": { "model": run.model, "regime": run.regime.regime, "train": run.train },
        "model": model,
        "data": data,
        "data_fingerprint": fingerprint,
    });
    if version != 1 {
        payload["engine_version"] = version.into();
    }
    let mut h = Sha256::new();
    h.update(payload.to_string().as_bytes());
    format!("{:x}", h.finalize())
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(out_dir: &Path) -> Self {
        Store {
            root: out_dir.join("runs"),
        }
    }

    pub fn dir(&self, run: &TrainRun) -> PathBuf {
        self.root.join(&run.id)
    }

    /// The record of a finished run with this key, if one is stored and its weights load.
    pub fn load<D: Device<f32>>(
        &self,
        run: &TrainRun,
        key: &str,
        net: &mut Network<D>,
    ) -> Option<RunRecord> {
        let dir = self.dir(run);
        let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
        let record: RunRecord = serde_json::from_str(&text).ok()?;
        if record.key != key || record.ir_version != IR_VERSION {
            return None;
        }
        checkpoint::load(net.params_mut(), &dir.join("model.safetensors")).ok()?;
        Some(record)
    }

    /// Save weights then the record (the record last: its presence marks a complete checkpoint).
    pub fn save<D: Device<f32>>(
        &self,
        record: &RunRecord,
        net: &Network<D>,
    ) -> Result<(), EngineError> {
        let dir = self.dir(&record.run);
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        let mut meta = BTreeMap::new();
        meta.insert("salient.run".to_string(), record.run.id.clone());
        meta.insert("salient.key".to_string(), record.key.clone());
        meta.insert(
            "salient.model".to_string(),
            serde_json::to_string(&record.model).unwrap_or_default(),
        );
        checkpoint::save(net.params(), &dir.join("model.safetensors"), &meta).map_err(
            |source| EngineError::Nn {
                run: record.run.id.clone(),
                source,
            },
        )?;
        let path = dir.join("run.json");
        let text = serde_json::to_string_pretty(record).map_err(|e| EngineError::Results {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(|e| EngineError::io(&dir, e))?;
        tmp.write_all(text.as_bytes())
            .map_err(|e| EngineError::io(tmp.path(), e))?;
        crate::results::persist(tmp, &path)
    }

    /// Take the run's lock `runs/<id>/lock` (created exclusively, see [`lock_file`]: one process trains a
    /// run at a time, also over NFS v3+), or say who holds it. A lock is stale, and taken over,
    /// when its process is dead on this host (Linux: no `/proc/<pid>`) or it is older than
    /// [`STALE_LOCK`] (a process killed on another host). See [`lock_file`].
    pub fn lock(&self, run: &TrainRun) -> Result<Lock, EngineError> {
        let dir = self.dir(run);
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        lock_file(&dir.join(LOCK_FILE), LockPolicy::RUN)
    }
}

/// The lock file in `runs/<id>/`.
pub const LOCK_FILE: &str = "lock";
/// A lock older than this is taken over even when its host is another machine.
pub const STALE_LOCK: Duration = Duration::from_secs(48 * 3600);

/// When a lock file is stale, and whether its holder keeps it fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPolicy {
    /// A lock whose file was last modified longer ago than this is taken over (its holder,
    /// on whatever host, is presumed dead).
    pub stale_after: Duration,
    /// When set, the holder sets the file's modification time to now at this interval (a
    /// thread, while the lock is held), so that `stale_after` can be short: a few intervals.
    pub heartbeat: Option<Duration>,
}

impl LockPolicy {
    /// Run locks: no heartbeat; stale after [`STALE_LOCK`] (or at once when the holder is a
    /// dead process of this host).
    pub const RUN: LockPolicy = LockPolicy {
        stale_after: STALE_LOCK,
        heartbeat: None,
    };
}

/// Take the lock file `path` (created exclusively, holding `pid=.. host=.. since=..` from its
/// first moment: a temporary file hard-linked to `path`),
/// or say who holds it. A lock is stale, and taken over, when its process is dead on this host
/// (Linux: no `/proc/<pid>`) or its file was last modified longer ago than
/// `policy.stale_after`. With `policy.heartbeat`, the holder refreshes the file's modification
/// time while it holds the lock. The file's folder must exist.
pub fn lock_file(path: &Path, policy: LockPolicy) -> Result<Lock, EngineError> {
    let host = hostname();
    let mine = format!(
        "pid={} host={} since={}\n",
        std::process::id(),
        host,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    // The lock appears with its content: written to a temporary file first, then hard-linked
    // to the lock's name (`link` fails if the name exists, atomically, also on NFS), so another
    // process never reads an empty holder.
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lock-tmp-")
        .tempfile_in(dir)
        .map_err(|e| EngineError::io(dir, e))?;
    tmp.write_all(mine.as_bytes())
        .and_then(|()| tmp.flush())
        .map_err(|e| EngineError::io(tmp.path(), e))?;
    for attempt in 0..2 {
        match std::fs::hard_link(tmp.path(), path) {
            Ok(()) => {
                let heartbeat = policy.heartbeat.map(|every| Heartbeat::start(path, every));
                return Ok(Lock::Acquired(RunLock {
                    path: path.to_path_buf(),
                    heartbeat,
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                let holder = holder.trim().to_string();
                if attempt == 0 && lock_is_stale(path, &holder, &host, policy.stale_after) {
                    // Another process may take it over at the same moment: only one of
                    // the two exclusive creations that follow succeeds.
                    let _ = std::fs::remove_file(path);
                    continue;
                }
                return Ok(Lock::Held(holder));
            }
            Err(e) => return Err(EngineError::io(path, e)),
        }
    }
    Ok(Lock::Held(String::new()))
}

/// The outcome of [`Store::lock`] and [`lock_file`].
#[derive(Debug)]
pub enum Lock {
    Acquired(RunLock),
    /// Held by another live process: `pid=.. host=.. since=..` (as the lock file says).
    Held(String),
}

/// A held lock; the file is removed when it is dropped (the run finished, failed or was
/// interrupted), after its heartbeat thread, if any, has stopped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    heartbeat: Option<Heartbeat>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.stop();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The thread that keeps a held lock's modification time fresh.
#[derive(Debug)]
struct Heartbeat {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Heartbeat {
    fn start(path: &Path, every: Duration) -> Heartbeat {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let path = path.to_path_buf();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                // A failed touch only makes the lock look older to others.
                let _ = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
            }
        });
        Heartbeat { stop, thread }
    }

    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn lock_is_stale(path: &Path, holder: &str, host: &str, stale_after: Duration) -> bool {
    let field = |key: &str| {
        holder
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
    };
    if field("host").as_deref() == Some(host) && Path::new("/proc/self").exists() {
        if let Some(pid) = field("pid").and_then(|p| p.parse::<u32>().ok()) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return true;
            }
        }
    }
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    age.is_some_and(|a| a > stale_after)
}

/// This machine's name (Linux: the kernel's hostname; else `HOSTNAME`; else `unknown`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
