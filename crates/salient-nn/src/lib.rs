//! salient-nn: runtime-shaped layers on dfdx (stable Rust), networks built from the IR,
//! optimizers and safetensors checkpoints.
pub mod param;
pub use param::Param;
