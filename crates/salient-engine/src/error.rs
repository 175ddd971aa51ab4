//! Errors of a run. Each names its cause and where it happened; none is a panic.
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Data(#[from] salient_data::DataError),

    #[error("run `{run}`: {source}")]
    Nn {
        run: String,
        #[source]
        source: salient_nn::NnError,
    },

    /// A non-finite loss or a loss that exploded: the run stops, finished runs are kept.
    #[error("run `{run}` diverged at epoch {epoch}, step {step}: the training loss is {loss} (try a smaller learning rate)")]
    Diverged {
        run: String,
        epoch: usize,
        step: usize,
        loss: f32,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {reason}")]
    Results { path: PathBuf, reason: String },

    #[error("device `cuda` requested, but this binary was built without the `cuda` feature (rebuild with `cargo build --release --features cuda`)")]
    CudaNotBuilt,

    #[error("device: {0}")]
    Device(String),

    #[error("--only {pattern}: no run id of the spec is `{pattern}` or matches it as a glob pattern (runs: {runs})")]
    NoSuchRun { pattern: String, runs: String },

    #[error("interrupted (SIGINT or SIGTERM): every finished run and the last epoch checkpoint were kept")]
    Interrupted,

    /// Bad input to an evaluation attack (shapes, labels, parameters).
    #[error("run `{run}`: {source}")]
    Attack {
        run: String,
        #[source]
        source: crate::attack::AttackError,
    },

    /// Bad input to a saliency method or metric (shapes, labels, parameters).
    #[error("saliency: {0}")]
    Saliency(#[from] crate::saliency::SaliencyError),
}

impl EngineError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }
}
