//! Resume inside a run: a checkpoint at the end of every epoch, so that a run killed or
//! preempted in epoch 9 of 10 restarts from epoch 9, not 0, and ends bit-identical to a run that
//! was never interrupted.
//!
//! Layout: `runs/<id>/resume/epoch-NNNN/` (NNNN = epochs done) holds
//! - `model.safetensors`: the weights and batchnorm buffers (the final checkpoint's format);
//! - `optimizer.safetensors`: the optimizer's per-parameter tensors (Adam's moments, SGD's
//!   momentum buffers, Adadelta's accumulators), keyed `<parameter index>.<buffer>`;
//! - `state.json`: the run's checkpoint key, the epochs done, the training curve so far, the
//!   training seconds spent so far, the optimizer's step counts, and the two random generators
//!   training draws from (the regimes' step generator and the dropout generator), each as its
//!   ChaCha seed, stream and word position, which restore it exactly.
//!
//! Atomicity: the three files are written into a fresh temporary folder beside the epoch
//! folders, synced, and the folder is renamed to `epoch-NNNN` (a rename is atomic on POSIX file
//! systems, NFS included): a kill at any moment leaves either the complete new epoch or none of
//! it. Older epoch folders are removed after the rename; the whole `resume/` folder goes when the
//! run's final checkpoint (`model.safetensors` + `run.json`) is written.
//!
//! Everything else training depends on is a function of the run's settings: the epoch's
//! example order (`salient_data::epoch_order(seed, epoch)`), the learning-rate schedule (epoch
//! and step), the regimes' eps warm-up (epoch and step). A checkpoint is used only when its key
//! equals the run's key (the same settings, data and engine version as the final checkpoint's
//! key), so a changed spec never resumes from another run's weights.
use crate::error::EngineError;
use crate::train::{EpochLog, Resume};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_nn::optim::{Optimizer, OptimizerState};
use salient_nn::{checkpoint, Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The folder in `runs/<id>/` that holds the epoch checkpoints.
pub const RESUME_DIR: &str = "resume";
const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
const EPOCH_PREFIX: &str = "epoch-";

/// A ChaCha8 generator's exact position: seed, stream and word position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed, hex.
    pub seed: String,
    pub stream: u64,
    /// The word position (a u128, written as a decimal string).
    pub word_pos: String,
}

impl RngState {
    pub fn of(rng: &ChaCha8Rng) -> Self {
        RngState {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// The generator, or `None` when the fields are malformed.
    pub fn restore(&self) -> Option<ChaCha8Rng> {
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return None;
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).ok()?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().ok()?);
        Some(rng)
    }
}

/// What `state.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct EpochState {
    key: String,
    epochs_done: usize,
    log: Vec<EpochLog>,
    train_seconds: f64,
    step_rng: RngState,
    dropout_rng: RngState,
    optimizer: String,
    counters: BTreeMap<String, u64>,
}

/// A run's epoch checkpoints (`runs/<id>/resume/`) for the run's checkpoint key.
pub struct EpochCheckpoints {
    dir: PathBuf,
    key: String,
}

/// A resumed epoch checkpoint: where training goes on from, and the seconds spent so far.
pub struct Resumed {
    pub resume: Resume,
    pub train_seconds: f64,
}

impl EpochCheckpoints {
    /// The checkpoints of the run whose folder is `run_dir`, valid for checkpoint key `key`.
    pub fn new(run_dir: &Path, key: &str) -> Self {
        EpochCheckpoints {
            dir: run_dir.join(RESUME_DIR),
            key: key.to_string(),
        }
    }

    /// The epoch folders, most epochs first.
    fn epochs(&self) -> Vec<(usize, PathBuf)> {
        let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let n = name.strip_prefix(EPOCH_PREFIX)?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        out
    }

    /// Load the latest usable epoch checkpoint into `net` (weights and dropout generator) and
    /// return where training goes on from. `None` when there is none, or none whose key is this
    /// run's and whose files all read back (a checkpoint from other settings, a damaged one:
    /// training starts at epoch 0, as without checkpoints). `net` is changed only on success.
    pub fn load<D: Device<f32>>(&self, net: &mut Network<D>) -> Option<Resumed> {
        self.epochs()
            .into_iter()
            .find_map(|(n, dir)| self.load_one(n, &dir, net))
    }

    fn load_one<D: Device<f32>>(
        &self,
        n: usize,
        dir: &Path,
        net: &mut Network<D>,
    ) -> Option<Resumed> {
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).ok()?;
        let state: EpochState = serde_json::from_str(&text).ok()?;
        if state.key != self.key || state.epochs_done != n || state.log.len() != n {
            return None;
        }
        let step_rng = state.step_rng.restore()?;
        let dropout_rng = state.dropout_rng.restore()?;
        let optimizer = read_optimizer(&dir.join(OPTIMIZER_FILE), &state).ok()?;
        // Last: `checkpoint::load` changes nothing when it fails, so `net` is left as it was.
        checkpoint::load(net.params_mut(), &dir.join(MODEL_FILE)).ok()?;
        net.set_dropout_rng(dropout_rng);
        Some(Resumed {
            resume: Resume {
                epochs_done: n,
                log: state.log,
                step_rng,
                optimizer,
            },
            train_seconds: state.train_seconds,
        })
    }

    /// Write the checkpoint of the end of epoch `log.len()` (see the module doc), then remove
    /// the older ones.
    pub fn save<D: Device<f32>>(
        &self,
        net: &Network<D>,
        optimizer: &dyn Optimizer<D>,
        step_rng: &ChaCha8Rng,
        log: &[EpochLog],
        train_seconds: f64,
    ) -> Result<(), EngineError> {
        let io = |p: &Path, e: std::io::Error| EngineError::io(p, e);
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".epoch-tmp-")
            .tempdir_in(&self.dir)
            .map_err(|e| io(&self.dir, e))?;
        let nn = |source| EngineError::Nn {
            run: format!("{}", self.dir.display()),
            source,
        };
        let mut meta = BTreeMap::new();
        meta.insert("salient.key".to_string(), self.key.clone());
        meta.insert("salient.epochs_done".to_string(), log.len().to_string());
        checkpoint::save(net.params(), &tmp.path().join(MODEL_FILE), &meta).map_err(nn)?;
        let opt = optimizer.state();
        write_optimizer(&tmp.path().join(OPTIMIZER_FILE), &opt)?;
        let state = EpochState {
            key: self.key.clone(),
            epochs_done: log.len(),
            log: log.to_vec(),
            train_seconds,
            step_rng: RngState::of(step_rng),
            dropout_rng: RngState::of(net.dropout_rng()),
            optimizer: opt.optimizer.clone(),
            counters: opt.counters.clone(),
        };
        let path = tmp.path().join(STATE_FILE);
        let text = serde_json::to_string_pretty(&state).map_err(|e| EngineError::Results {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        f.write_all(text.as_bytes()).map_err(|e| io(&path, e))?;
        f.sync_all().map_err(|e| io(&path, e))?;
        let target = self.dir.join(format!("{EPOCH_PREFIX}{:04}", log.len()));
        if target.exists() {
            // A folder of the same epoch from an earlier attempt (interrupted later in the same
            // epoch count): replace it.
            std::fs::remove_dir_all(&target).map_err(|e| io(&target, e))?;
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, &target).map_err(|e| {
            let _ = std::fs::remove_dir_all(&kept);
            io(&target, e)
        })?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        // The older epochs and temporary folders of killed saves are no longer needed.
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p != target {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        Ok(())
    }

    /// Remove every epoch checkpoint (the run's final checkpoint is written).
    pub fn clear(&self) -> Result<(), EngineError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::io(&self.dir, e)),
        }
    }
}

fn write_optimizer(path: &Path, state: &OptimizerState) -> Result<(), EngineError> {
    let meta = BTreeMap::from([("salient.optimizer".to_string(), state.optimizer.clone())]);
    checkpoint::save_flat(path, &state.tensors, &meta).map_err(|e| EngineError::Results {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_optimizer(path: &Path, state: &EpochState) -> Result<OptimizerState, String> {
    let (tensors, _) = checkpoint::load_flat(path).map_err(|e| e.to_string())?;
    Ok(OptimizerState {
        optimizer: state.optimizer.clone(),
        tensors,
        counters: state.counters.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn a_generator_restores_to_the_same_position() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        rng.set_stream(7);
        for _ in 0..13 {
            rng.next_u32();
        }
        let saved = RngState::of(&rng);
        let text = serde_json::to_string(&saved).unwrap();
        let mut back = serde_json::from_str::<RngState>(&text)
            .unwrap()
            .restore()
            .unwrap();
        let a: Vec<u64> = (0..40).map(|_| rng.next_u64()).collect();
        let b: Vec<u64> = (0..40).map(|_| back.next_u64()).collect();
        assert_eq!(a, b);
        let mut bad = saved.clone();
        bad.seed = "zz".into();
        assert!(bad.restore().is_none());
    }
}
