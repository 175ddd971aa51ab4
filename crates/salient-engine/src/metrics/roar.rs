//! ROAR and KAR: remove (or keep) the most salient pixels and retrain (Hooker, Erhan,
//! Kindermans, Kim, NeurIPS 2019, "A benchmark for interpretability methods in deep neural
//! networks", arXiv 1806.10758). Formulas, cost and the differences from the paper are in
//! `docs/metrics.md`, section "ROAR and KAR".
//!
//! For a percent k and a retraining seed s: every pixel of every training and test image is
//! ranked by the method's pixel score `sum_c |S_{p,c}|` (decreasing, ties by lower index,
//! [`super::order_desc`]); ROAR replaces the top `round(k/100 * P)` pixels of each image (all
//! channels) by the per-channel mean of the training set, KAR replaces all the others; a fresh
//! network of the run's model is trained on the modified training set with the standard regime
//! and the run's training settings (seed s, optionally other epochs), and its accuracy on the
//! modified test set is the point. The random baseline ranks pixels by independent uniform
//! scores from a generator seeded by (k, s) only, so it is the same for every run and method.
//!
//! Each retrained model is cached under `<out>/retrain/<key>/` (`model.safetensors`, then
//! `record.json`, written last); the key is the SHA-256 of everything that determines the
//! retrained weights (see [`key_inputs`]). A point whose record is there costs nothing, and
//! when every point is cached no map is computed.
//!
//! The cache is shared by every process writing into the output folder (the random baseline's
//! points are the same for every run and method, so the tasks of a cluster job all need them).
//! Both files are written atomically (a temporary file of the writer's own, renamed into place;
//! the record last), so a reader sees a complete point or none. A process retrains a point only
//! while it holds the point's lock, `<out>/retrain/<key>/lock` ([`crate::store::lock_file`]:
//! created exclusively, its holder refreshing its modification time every
//! [`POINT_LOCK_HEARTBEAT`]); another process that needs the point meanwhile waits (polling
//! every [`POINT_LOCK_POLL`], and stopping on Ctrl-C) and then reads the record, so no point is
//! trained twice at once. A lock whose holder died (a dead process of the same host, or a file
//! not refreshed for [`POINT_LOCK_STALE`], on any host) is taken over.
use super::{Env, MapBatch, Metric, RunInfo};
use crate::error::EngineError;
use crate::eval;
use crate::progress::RunProgress;
use crate::regime;
use crate::results::ResultRow;
use crate::saliency::SaliencyError;
use crate::train::{self, EpochLog, TrainInputs};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use salient_data::Dataset;
use salient_ir::results::{
    KAR, KAR_RANDOM, KAR_RANDOM_STD, KAR_SCORE, KAR_STD, ROAR, ROAR_RANDOM, ROAR_RANDOM_STD,
    ROAR_SCORE, ROAR_STD,
};
use salient_ir::{
    DataSpec, ModelDef, Regime, RegimeInstance, RetrainSpec, SaliencyMethod, TrainConfig, TrainRun,
    IR_VERSION,
};
use salient_nn::{checkpoint, Network};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Remove and retrain, or keep and retrain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replace the top-k% pixels.
    Roar,
    /// Replace all but the top-k% pixels.
    Kar,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Roar => "roar",
            Mode::Kar => "kar",
        }
    }

    /// Row names: (mean, std, random mean, random std, score).
    fn metrics(self) -> [&'static str; 5] {
        match self {
            Mode::Roar => [ROAR, ROAR_STD, ROAR_RANDOM, ROAR_RANDOM_STD, ROAR_SCORE],
            Mode::Kar => [KAR, KAR_STD, KAR_RANDOM, KAR_RANDOM_STD, KAR_SCORE],
        }
    }
}

/// How the pixels of each image are ranked.
#[derive(Clone, Copy, Debug)]
pub enum Ranking<'a> {
    /// Pixel scores of every training and test image, (N, P) row-major each.
    Scores { train: &'a [f32], test: &'a [f32] },
    /// Independent uniform scores per pixel and image from ChaCha8 generators seeded from
    /// `seed` (training set) and `seed ^ 0x7E57_0000_0000_0001` (test set).
    Random { seed: u64 },
}

/// One retraining: the data, the model and its training settings.
pub struct RetrainJob<'a> {
    /// Names the retraining in progress bars and errors.
    pub label: &'a str,
    pub model: &'a ModelDef,
    /// Input normalisation of the data spec.
    pub mean: &'a [f32],
    pub std: &'a [f32],
    /// Training settings (the regime is always standard).
    pub train_config: &'a TrainConfig,
    /// The unmodified splits.
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub mode: Mode,
    pub percent: u32,
    /// Value of a replaced pixel per channel (the training set's channel mean).
    pub fill: &'a [f32],
    pub eval_batch: usize,
    pub interrupt: &'a AtomicBool,
    pub quiet: bool,
}

/// A retrained network and its accuracy on the modified test set.
pub struct Retrained<D: Device<f32>> {
    pub net: Network<D>,
    pub accuracy: f64,
    pub log: Vec<EpochLog>,
    pub seconds: f64,
}

/// Pixels per image and channels of `data`.
fn geometry(data: &Dataset) -> (usize, usize) {
    let c = data.shape.c.max(1);
    (data.image_len() / c, c)
}

fn check_fill(data: &Dataset, fill: &[f32]) -> Result<(), SaliencyError> {
    let (_, c) = geometry(data);
    if fill.len() != c {
        return Err(SaliencyError::Shape {
            what: "fill value of replaced pixels".into(),
            expected: format!("{c} channels"),
            got: format!("{}", fill.len()),
        });
    }
    Ok(())
}

fn check_percent(percent: u32) -> Result<(), SaliencyError> {
    if percent > 100 {
        return Err(SaliencyError::param(format!(
            "roar/kar: percent {percent} is above 100"
        )));
    }
    Ok(())
}

/// Replace, in every image of `data`, the pixels `mode` selects by `fill`: the image's pixels are
/// ranked by `scores(i, buf)` (which writes image i's P pixel scores into `buf`), decreasing,
/// ties by lower index.
fn mask_in_place(
    data: &mut Dataset,
    mut scores: impl FnMut(usize, &mut [f32]),
    percent: u32,
    mode: Mode,
    fill: &[f32],
) {
    let (p, c) = geometry(data);
    let n = data.image_len();
    let k = super::count_of(percent as f64 / 100.0, p);
    let mut buf = vec![0f32; p];
    for i in 0..data.len() {
        scores(i, &mut buf);
        let order = super::order_desc(&buf);
        let replaced = match mode {
            Mode::Roar => &order[..k],
            Mode::Kar => &order[k..],
        };
        let img = &mut data.images[i * n..(i + 1) * n];
        for &pos in replaced {
            img[pos * c..(pos + 1) * c].copy_from_slice(fill);
        }
    }
}

/// `data` with, in each image, the top `round(percent/100 * P)` pixels by `pixel_scores`
/// ((N, P) row-major) replaced by `fill` (ROAR), or all the other pixels replaced (KAR).
/// Every channel of a replaced pixel is set; ties rank the lower pixel index first.
pub fn masked(
    data: &Dataset,
    pixel_scores: &[f32],
    percent: u32,
    mode: Mode,
    fill: &[f32],
) -> Result<Dataset, SaliencyError> {
    check_percent(percent)?;
    check_fill(data, fill)?;
    let (p, _) = geometry(data);
    if pixel_scores.len() != data.len() * p {
        return Err(SaliencyError::Shape {
            what: "pixel scores".into(),
            expected: format!("{} images x {p} pixels", data.len()),
            got: format!("{} values", pixel_scores.len()),
        });
    }
    let mut out = data.clone();
    mask_in_place(
        &mut out,
        |i, buf| buf.copy_from_slice(&pixel_scores[i * p..(i + 1) * p]),
        percent,
        mode,
        fill,
    );
    Ok(out)
}

/// `data` masked by a random ranking: each image's pixel scores are P uniform draws from a
/// ChaCha8 generator seeded with `seed`, image after image.
pub fn masked_random(
    data: &Dataset,
    seed: u64,
    percent: u32,
    mode: Mode,
    fill: &[f32],
) -> Result<Dataset, SaliencyError> {
    check_percent(percent)?;
    check_fill(data, fill)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = data.clone();
    mask_in_place(
        &mut out,
        |_, buf| buf.iter_mut().for_each(|v| *v = rng.gen::<f32>()),
        percent,
        mode,
        fill,
    );
    Ok(out)
}

/// The seed of the random ranking of percent `k` and retraining seed `s`: independent of the
/// run, the method and the mode.
pub fn random_seed(k: u32, s: usize) -> u64 {
    0x524F_4152_u64.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (k as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ (s as u64).wrapping_mul(0x94D0_49BB_1331_11EB)
}

/// The seed of the test set's random stream given the training set's.
const TEST_STREAM: u64 = 0x7E57_0000_0000_0001;

/// The training settings of retraining `s`: the run's, with seed `s` and, when given, `epochs`.
pub fn retrain_config(run: &TrainConfig, epochs: Option<usize>, s: usize) -> TrainConfig {
    let mut cfg = run.clone();
    cfg.seed = s as u64;
    if let Some(e) = epochs {
        cfg.epochs = e;
    }
    cfg
}

fn standard_regime() -> RegimeInstance {
    RegimeInstance {
        name: "standard".into(),
        label: "standard".into(),
        regime: Regime::Standard,
    }
}

/// Mask the training and test sets of `job` by `ranking`, train a fresh network of the model
/// from scratch on the modified training set (standard regime, `job.train_config`), and
/// measure its accuracy on the modified test set.
pub fn retrain_accuracy<D: Device<f32>>(
    dev: &D,
    job: &RetrainJob<'_>,
    ranking: Ranking<'_>,
) -> Result<Retrained<D>, EngineError> {
    if job.train.is_empty() || job.test.is_empty() {
        return Err(SaliencyError::param(format!(
            "{}: the training and test sets must not be empty ({} / {} images)",
            job.label,
            job.train.len(),
            job.test.len()
        ))
        .into());
    }
    let want = job.model.input.numel();
    for (what, d) in [("training", job.train), ("test", job.test)] {
        if d.image_len() != want {
            return Err(SaliencyError::Shape {
                what: format!("{what} images for model `{}`", job.model.name),
                expected: format!("{want} features"),
                got: format!("{}", d.image_len()),
            }
            .into());
        }
    }
    let (train, test) = match ranking {
        Ranking::Scores { train, test } => (
            masked(job.train, train, job.percent, job.mode, job.fill)?,
            masked(job.test, test, job.percent, job.mode, job.fill)?,
        ),
        Ranking::Random { seed } => (
            masked_random(job.train, seed, job.percent, job.mode, job.fill)?,
            masked_random(
                job.test,
                seed ^ TEST_STREAM,
                job.percent,
                job.mode,
                job.fill,
            )?,
        ),
    };
    let run = TrainRun {
        id: job.label.to_string(),
        model: job.model.name.clone(),
        regime: standard_regime(),
        train: job.train_config.clone(),
    };
    let nn_err = |source| EngineError::Nn {
        run: job.label.to_string(),
        source,
    };
    let mut regime = regime::build::<D>(&run.regime, job.fill, job.model)
        .map_err(|reason| SaliencyError::param(format!("{}: {reason}", job.label)))?;
    let mut net =
        Network::new(job.model, job.mean, job.std, job.train_config.seed, dev).map_err(nn_err)?;
    let started = Instant::now();
    let inputs = TrainInputs {
        run: &run,
        train: &train,
        test: &test,
        eval_batch: job.eval_batch.max(1),
        interrupt: job.interrupt,
    };
    let progress = RunProgress::new(job.label, job.quiet);
    net.set_input_grad(false);
    let log = train::train(&mut net, regime.as_mut(), &inputs, &progress);
    net.set_input_grad(true);
    let log = log?;
    let accuracy = eval::accuracy(&mut net, &test, job.eval_batch.max(1)).value();
    train::trim_cache(dev);
    Ok(Retrained {
        net,
        accuracy,
        log,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Everything that determines a retrained model, as the JSON its cache key hashes. `evaluated`
/// (the checkpoint key of the evaluated run, [`crate::store::run_key`]) and `method` are `None`
/// for the random ranking, which is then shared by every run and method with the same model,
/// data and retraining settings.
#[allow(clippy::too_many_arguments)]
pub fn key_inputs(
    evaluated: Option<&str>,
    method: Option<&SaliencyMethod>,
    mode: Mode,
    percent: u32,
    seed: usize,
    train: &TrainConfig,
    model: &ModelDef,
    data: &DataSpec,
    fingerprint: &str,
) -> serde_json::Value {
    serde_json::json!({
        "ir_version": IR_VERSION,
        "kind": "retrain",
        "evaluated_run": evaluated,
        "saliency": match method {
            Some(m) => serde_json::to_value(m).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::String("random".into()),
        },
        "mode": mode.name(),
        "percent": percent,
        "retrain_seed": seed,
        "regime": "standard",
        "train": train,
        "model": model,
        "data": data,
        "data_fingerprint": fingerprint,
    })
}

/// Lower-case hex SHA-256 of the inputs' JSON.
pub fn key_of(inputs: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(inputs.to_string().as_bytes());
    format!("{:x}", h.finalize())
}

/// What `<out>/retrain/<key>/record.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetrainRecord {
    pub ir_version: u32,
    pub key: String,
    /// The retraining's label (`<run>/<method> roar 30% seed 1`), for people.
    pub label: String,
    /// What the key hashes ([`key_inputs`]).
    pub inputs: serde_json::Value,
    /// Accuracy of the retrained model on the modified test set.
    pub test_accuracy: f64,
    pub log: Vec<EpochLog>,
    pub train_seconds: f64,
}

/// The lock file of a point: `<out>/retrain/<key>/lock`.
pub const POINT_LOCK: &str = "lock";
/// How often the holder of a point's lock refreshes it.
pub const POINT_LOCK_HEARTBEAT: Duration = Duration::from_secs(30);
/// A point's lock not refreshed for this long is taken over (its holder died on some host).
pub const POINT_LOCK_STALE: Duration = Duration::from_secs(10 * 60);
/// How often a process waiting for a point another process retrains looks again.
pub const POINT_LOCK_POLL: Duration = Duration::from_millis(500);

/// The retrained models of an output folder: `<out>/retrain/<key>/`.
pub struct RetrainCache {
    root: PathBuf,
}

impl RetrainCache {
    pub fn new(out_dir: &Path) -> Self {
        RetrainCache {
            root: out_dir.join("retrain"),
        }
    }

    pub fn dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The record stored under `key`, if it is complete and matches.
    pub fn load(&self, key: &str) -> Option<RetrainRecord> {
        let dir = self.dir(key);
        let text = std::fs::read_to_string(dir.join("record.json")).ok()?;
        let record: RetrainRecord = serde_json::from_str(&text).ok()?;
        let ok = record.key == key
            && record.ir_version == IR_VERSION
            && record.test_accuracy.is_finite()
            && dir.join("model.safetensors").is_file();
        ok.then_some(record)
    }

    /// Save the weights, then the record (via a temporary file and a rename: its presence marks
    /// a complete entry).
    pub fn save<D: Device<f32>>(
        &self,
        record: &RetrainRecord,
        net: &Network<D>,
    ) -> Result<(), EngineError> {
        let dir = self.dir(&record.key);
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        let mut meta = BTreeMap::new();
        meta.insert("salient.retrain".to_string(), record.label.clone());
        meta.insert("salient.key".to_string(), record.key.clone());
        meta.insert(
            "salient.model".to_string(),
            serde_json::to_string(net.def()).unwrap_or_default(),
        );
        checkpoint::save(net.params(), &dir.join("model.safetensors"), &meta).map_err(
            |source| EngineError::Nn {
                run: record.label.clone(),
                source,
            },
        )?;
        let path = dir.join("record.json");
        let text = serde_json::to_string_pretty(record).map_err(|e| EngineError::Results {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // A temporary file of this writer's own (a fixed name would let two writers interleave).
        let mut tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(|e| EngineError::io(&dir, e))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())
            .map_err(|e| EngineError::io(tmp.path(), e))?;
        crate::results::persist(tmp, &path)
    }

    /// Take the lock of the point `key` (see the module doc), or say who holds it. The
    /// point's folder is created for it (and removed with the lock when it holds nothing else).
    pub fn lock(&self, key: &str) -> Result<PointLockResult, EngineError> {
        let dir = self.dir(key);
        let policy = crate::store::LockPolicy {
            stale_after: POINT_LOCK_STALE,
            heartbeat: Some(POINT_LOCK_HEARTBEAT),
        };
        // Another process may remove the folder (empty, its lock just released) between its
        // creation here and the lock's: try again.
        let mut attempt = 0;
        loop {
            let made = std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e));
            let locked = made.and_then(|()| crate::store::lock_file(&dir.join(POINT_LOCK), policy));
            match locked {
                Ok(crate::store::Lock::Acquired(lock)) => {
                    return Ok(PointLockResult::Acquired(PointLock {
                        lock: Some(lock),
                        dir,
                    }))
                }
                Ok(crate::store::Lock::Held(holder)) => return Ok(PointLockResult::Held(holder)),
                Err(e) if attempt >= 10 || dir.is_dir() => return Err(e),
                Err(_) => attempt += 1,
            }
        }
    }

    /// The point `key`'s record once it is cached, or its lock for this process to
    /// retrain it: waits while another process holds the lock (polling every `poll`; an error
    /// when `interrupt` is set), then reads the record it left, or takes the lock when it left
    /// none (it failed or was interrupted).
    pub fn claim(
        &self,
        key: &str,
        interrupt: &AtomicBool,
        poll: Duration,
        mut waiting: impl FnMut(&str),
    ) -> Result<Claim, EngineError> {
        let mut told = false;
        loop {
            if let Some(record) = self.load(key) {
                return Ok(Claim::Cached(record));
            }
            match self.lock(key)? {
                PointLockResult::Acquired(lock) => {
                    // Saved by another process between the look-up and the lock.
                    return Ok(match self.load(key) {
                        Some(record) => Claim::Cached(record),
                        None => Claim::Mine(lock),
                    });
                }
                PointLockResult::Held(holder) => {
                    if interrupt.load(Ordering::Relaxed) {
                        return Err(EngineError::Interrupted);
                    }
                    if !told {
                        waiting(&holder);
                        told = true;
                    }
                    std::thread::sleep(poll);
                }
            }
        }
    }
}

/// What [`RetrainCache::claim`] gives.
#[derive(Debug)]
pub enum Claim {
    /// The point is cached (by this process earlier, or by another one meanwhile).
    Cached(RetrainRecord),
    /// This process holds the point's lock and retrains it (the lock goes when this is dropped).
    Mine(PointLock),
}

/// What [`RetrainCache::lock`] gives.
#[derive(Debug)]
pub enum PointLockResult {
    Acquired(PointLock),
    /// Held by another live process: `pid=.. host=.. since=..`.
    Held(String),
}

/// A held point lock ([`crate::store::lock_file`]). When dropped, the lock file goes, then the
/// point's folder and `<out>/retrain/` if that left them empty (a point that failed or was
/// interrupted leaves nothing behind).
#[derive(Debug)]
pub struct PointLock {
    lock: Option<crate::store::RunLock>,
    dir: PathBuf,
}

impl Drop for PointLock {
    fn drop(&mut self) {
        drop(self.lock.take());
        // Both fail, as they should, when the folder holds anything.
        if std::fs::remove_dir(&self.dir).is_ok() {
            if let Some(root) = self.dir.parent() {
                let _ = std::fs::remove_dir(root);
            }
        }
    }
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = super::mean(v);
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
    (m, var.sqrt())
}

/// ROAR or KAR of one saliency method on one run (see the module doc).
pub struct Retrain {
    mode: Mode,
    spec: RetrainSpec,
    trained: usize,
    reused: usize,
    mapped: usize,
}

impl Retrain {
    pub fn new(mode: Mode, spec: RetrainSpec) -> Self {
        Retrain {
            mode,
            spec,
            trained: 0,
            reused: 0,
            mapped: 0,
        }
    }

    /// Models this metric trained (points that were not cached), random baseline included.
    pub fn trained(&self) -> usize {
        self.trained
    }

    /// Points read from the cache.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// Images whose maps this metric computed (0 when every method point was cached).
    pub fn mapped(&self) -> usize {
        self.mapped
    }

    fn check_spec(&self) -> Result<(), SaliencyError> {
        let name = self.mode.name();
        let p = &self.spec.percents;
        if p.is_empty() {
            return Err(SaliencyError::param(format!("{name}: no percents")));
        }
        if let Some(k) = p.iter().find(|&&k| k == 0 || k >= 100) {
            return Err(SaliencyError::param(format!(
                "{name}: percent {k} is not in (0, 100)"
            )));
        }
        if p.windows(2).any(|w| w[0] >= w[1]) {
            return Err(SaliencyError::param(format!(
                "{name}: the percents {p:?} are not increasing"
            )));
        }
        if self.spec.seeds == 0 {
            return Err(SaliencyError::param(format!(
                "{name}: seeds must be at least 1"
            )));
        }
        if self.spec.epochs == Some(0) {
            return Err(SaliencyError::param(format!(
                "{name}: epochs must be at least 1"
            )));
        }
        Ok(())
    }
}

/// The method's pixel scores ((N, P) row-major) of every image of `data`, `batch` at a time.
fn method_scores<D: Device<f32>>(
    env: &mut Env<'_, D>,
    data: &Dataset,
    what: &str,
    batch: usize,
    interrupt: &AtomicBool,
) -> Result<Vec<f32>, EngineError> {
    let (p, c) = geometry(data);
    let n = data.image_len();
    let dev = env.net.device().clone();
    let mut out = Vec::with_capacity(data.len() * p);
    let all: Vec<usize> = (0..data.len()).collect();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for idx in all.chunks(batch.max(1)) {
        if interrupt.load(Ordering::Relaxed) {
            return Err(EngineError::Interrupted);
        }
        data.gather(idx, &mut xs, &mut ys);
        let x = dev.tensor_from_vec(std::mem::take(&mut xs), (idx.len(), n));
        let s = env.method.map(env.net, &x, &ys)?;
        if *s.shape() != (idx.len(), n) {
            return Err(SaliencyError::Shape {
                what: format!("maps of the {what} images"),
                expected: format!("({}, {n})", idx.len()),
                got: format!("{:?}", s.shape()),
            }
            .into());
        }
        let host = s.as_vec();
        drop((x, s));
        let px = super::pixel_scores(&host, idx.len(), c);
        if let Some(j) = px.iter().position(|v| !v.is_finite()) {
            return Err(SaliencyError::param(format!(
                "the saliency map of {what} image {} has a non-finite value ({})",
                idx[j / p.max(1)],
                px[j]
            ))
            .into());
        }
        out.extend(px);
        train::trim_cache(&dev);
    }
    Ok(out)
}

impl<D: Device<f32>> Metric<D> for Retrain {
    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Roar => ROAR,
            Mode::Kar => KAR,
        }
    }

    fn update(&mut self, _: &mut Env<'_, D>, _: &MapBatch<'_, D>) -> Result<(), EngineError> {
        Ok(())
    }

    fn finish(
        &mut self,
        env: &mut Env<'_, D>,
        info: &RunInfo<'_>,
    ) -> Result<Vec<ResultRow>, EngineError> {
        self.check_spec()?;
        let mode = self.mode;
        let spec = self.spec.clone();
        let run = info.run;
        let model = info.exp.model(&run.model).ok_or_else(|| {
            SaliencyError::param(format!(
                "{}: model `{}` of run `{}` is not defined",
                mode.name(),
                run.model,
                run.id
            ))
        })?;
        let data = info.data;
        if data.train.is_empty() || data.test.is_empty() {
            return Err(SaliencyError::param(format!(
                "{}: the training and test sets must not be empty ({} / {} images)",
                mode.name(),
                data.train.len(),
                data.test.len()
            ))
            .into());
        }
        let want = model.input.numel();
        for (what, d) in [("training", &data.train), ("test", &data.test)] {
            if d.image_len() != want {
                return Err(SaliencyError::Shape {
                    what: format!("{what} images for model `{}`", model.name),
                    expected: format!("{want} features"),
                    got: format!("{}", d.image_len()),
                }
                .into());
            }
        }
        let batch = info.exp.eval.batch.max(1);
        let fill = data.train.channel_mean();
        let evaluated = crate::store::run_key(run, model, &info.exp.data, &data.fingerprint);
        let cache = RetrainCache::new(info.out_dir);
        let dev = env.net.device().clone();
        let mut scores: Option<(Vec<f32>, Vec<f32>)> = None;
        let ks = spec.percents.len();
        let mut method_acc = vec![Vec::with_capacity(spec.seeds); ks];
        let mut random_acc = vec![Vec::with_capacity(spec.seeds); ks];
        for (ki, &k) in spec.percents.iter().enumerate() {
            for s in 0..spec.seeds {
                let cfg = retrain_config(&run.train, spec.epochs, s);
                // The method's ranking.
                let inputs = key_inputs(
                    Some(&evaluated),
                    Some(&info.method.method),
                    mode,
                    k,
                    s,
                    &cfg,
                    model,
                    &info.exp.data,
                    &data.fingerprint,
                );
                let key = key_of(&inputs);
                let label = format!(
                    "{}/{} {} {k}% seed {s}",
                    run.id,
                    info.method.name,
                    mode.name()
                );
                let acc = match self.cached(&cache, &key, &label, info)? {
                    Ok(acc) => acc,
                    // Retrained while this process holds the point's lock.
                    Err(_lock) => {
                        let maps = match scores.take() {
                            Some(m) => m,
                            None => {
                                if !info.quiet {
                                    eprintln!(
                                        "{}/{}: {} maps of {} training and {} test images",
                                        run.id,
                                        info.method.name,
                                        mode.name(),
                                        data.train.len(),
                                        data.test.len()
                                    );
                                }
                                let tr = method_scores(
                                    env,
                                    &data.train,
                                    "training",
                                    batch,
                                    info.interrupt,
                                )?;
                                let te =
                                    method_scores(env, &data.test, "test", batch, info.interrupt)?;
                                self.mapped += data.train.len() + data.test.len();
                                (tr, te)
                            }
                        };
                        let ranking = Ranking::Scores {
                            train: &maps.0,
                            test: &maps.1,
                        };
                        let acc = self.point(
                            &dev, &cache, info, model, &fill, key, inputs, label, &cfg, k, ranking,
                        );
                        scores = Some(maps);
                        acc?
                    }
                };
                method_acc[ki].push(acc);
                if !spec.random {
                    continue;
                }
                let inputs = key_inputs(
                    None,
                    None,
                    mode,
                    k,
                    s,
                    &cfg,
                    model,
                    &info.exp.data,
                    &data.fingerprint,
                );
                let key = key_of(&inputs);
                let label = format!("{}/random {} {k}% seed {s}", model.name, mode.name());
                let acc = match self.cached(&cache, &key, &label, info)? {
                    Ok(acc) => acc,
                    Err(_lock) => {
                        let ranking = Ranking::Random {
                            seed: random_seed(k, s),
                        };
                        self.point(
                            &dev, &cache, info, model, &fill, key, inputs, label, &cfg, k, ranking,
                        )?
                    }
                };
                random_acc[ki].push(acc);
            }
        }
        let [m_mean, m_std, r_mean, r_std, m_score] = mode.metrics();
        let mut rows = Vec::new();
        let mut gaps = Vec::with_capacity(ks);
        for (ki, &k) in spec.percents.iter().enumerate() {
            let x = k as f64;
            let (m, sd) = mean_std(&method_acc[ki]);
            rows.push(super::point_row(info, m_mean, x, m));
            rows.push(super::point_row(info, m_std, x, sd));
            if spec.random {
                let (rm, rsd) = mean_std(&random_acc[ki]);
                rows.push(super::point_row(info, r_mean, x, rm));
                rows.push(super::point_row(info, r_std, x, rsd));
                gaps.push(match mode {
                    Mode::Roar => rm - m,
                    Mode::Kar => m - rm,
                });
            }
        }
        if spec.random {
            rows.push(super::row(info, m_score, super::mean(&gaps)));
        }
        Ok(rows)
    }
}

impl Retrain {
    /// The test accuracy of the point cached under `key` (waiting for another process that is
    /// retraining it), counted as reused; else the point's lock, held while this process
    /// retrains it.
    fn cached(
        &mut self,
        cache: &RetrainCache,
        key: &str,
        label: &str,
        info: &RunInfo<'_>,
    ) -> Result<Result<f64, PointLock>, EngineError> {
        let quiet = info.quiet;
        let claim = cache.claim(key, info.interrupt, POINT_LOCK_POLL, |holder| {
            if !quiet {
                eprintln!(
                    "{label}: waiting for another process ({holder}), which is retraining it"
                );
            }
        })?;
        Ok(match claim {
            Claim::Cached(record) => {
                self.reused += 1;
                Ok(record.test_accuracy)
            }
            Claim::Mine(lock) => Err(lock),
        })
    }

    /// Retrain one point that is not cached, cache it, and return its test accuracy.
    #[allow(clippy::too_many_arguments)]
    fn point<D: Device<f32>>(
        &mut self,
        dev: &D,
        cache: &RetrainCache,
        info: &RunInfo<'_>,
        model: &ModelDef,
        fill: &[f32],
        key: String,
        inputs: serde_json::Value,
        label: String,
        cfg: &TrainConfig,
        percent: u32,
        ranking: Ranking<'_>,
    ) -> Result<f64, EngineError> {
        let job = RetrainJob {
            label: &label,
            model,
            mean: &info.exp.data.mean,
            std: &info.exp.data.std,
            train_config: cfg,
            train: &info.data.train,
            test: &info.data.test,
            mode: self.mode,
            percent,
            fill,
            eval_batch: info.exp.eval.batch,
            interrupt: info.interrupt,
            quiet: info.quiet,
        };
        let out = retrain_accuracy(dev, &job, ranking)?;
        let record = RetrainRecord {
            ir_version: IR_VERSION,
            key,
            label,
            inputs,
            test_accuracy: out.accuracy,
            log: out.log,
            train_seconds: out.seconds,
        };
        cache.save(&record, &out.net)?;
        self.trained += 1;
        Ok(out.accuracy)
    }
}
