//! Errors of report generation: every one names the file or figure it is about.
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid results table: {reason}")]
    Csv { path: PathBuf, reason: String },
    #[error("{path}: not a readable NPY array: {reason}")]
    Npy { path: PathBuf, reason: String },
    #[error("{path} does not exist: nothing to report (run `salient run` first)")]
    NoResults { path: PathBuf },
    #[error("{path}: not a valid experiment.json: {reason}")]
    Experiment { path: PathBuf, reason: String },
    #[error("figure {figure}: {reason}")]
    Plot { figure: String, reason: String },
}

impl ReportError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn plot(figure: &str, reason: impl std::fmt::Display) -> Self {
        ReportError::Plot {
            figure: figure.to_string(),
            reason: reason.to_string(),
        }
    }
}
