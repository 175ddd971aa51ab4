//! salient-engine: runs a checked experiment (`salient_ir::Experiment`): trains each run with its
//! regime (or reuses its checkpoint), evaluates it, and writes tidy results.
//!
//! Everything is written once over dfdx's `Device<f32>`: the same code runs on `Cpu` and, with
//! the `cuda` feature, on `Cuda`.
pub mod attack;
pub mod diagnostics;
pub mod error;
pub mod eval;
pub mod grad;
pub mod interpret;
pub mod losses;
pub mod metrics;
pub mod ops;
pub mod progress;
pub mod regime;
pub mod results;
pub mod resume;
pub mod robustness;
pub mod runner;
pub mod saliency;
pub mod stop;
pub mod store;
pub mod train;

pub use error::EngineError;
pub use runner::{run, DeviceKind, RunOptions, RunReport};
