//! Checkpoints: `<out>/runs/<run id>/model.safetensors` (PyTorch layout, loadable with
//! `safetensors.torch.load_file`) next to `run.json` (the checked IR of the run, its key, the
//! training curve). A later `salient run` of the same spec reuses a checkpoint whose key matches.
//!
//! The key is the SHA-256 of everything that determines the trained weights: the IR version, the
//! run (model name, regime with its parameters, training configuration and seed), the model
//! definition, the data spec and the fingerprint of the data files. Changing an attack, a metric
//! or the report does not retrain; changing the data, the model or a training setting does.
use crate::error::EngineError;
use crate::train::EpochLog;
use dfdx::prelude::*;
use salient_ir::{DataSpec, ModelDef, TrainRun, IR_VERSION};
use salient_nn::{checkpoint, Network};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

pub fn run_key(run: &TrainRun, model: &ModelDef, data: &DataSpec, fingerprint: &str) -> String {
    let payload = serde_json::json!({
        "ir_version": IR_VERSION,
        "run": { "model": run.model, "regime": run.regime.regime, "train": run.train },
        "model": model,
        "data": data,
        "data_fingerprint": fingerprint,
    });
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
        let tmp = dir.join("run.json.tmp");
        let text = serde_json::to_string_pretty(record).map_err(|e| EngineError::Results {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(|e| EngineError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| EngineError::io(&path, e))
    }
}
