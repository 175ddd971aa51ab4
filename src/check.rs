//! `salient check FILE...` (owned by the language work: see crates/salient-lang).
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// The .exp files to check.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
}

pub fn main(_args: CheckArgs) -> ExitCode {
    ExitCode::from(2)
}
