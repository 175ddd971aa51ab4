//! salient-nn: runtime-shaped layers on dfdx (stable Rust), networks built from the IR,
//! optimizers and safetensors checkpoints.
pub mod bench_models;
pub mod checkpoint;
pub mod error;
pub mod layers;
pub mod mode;
pub mod network;
pub mod optim;
pub mod param;
pub mod schedule;
pub use error::NnError;
pub use layers::Batch;
pub use mode::Mode;
pub use network::Network;
pub use param::Param;
