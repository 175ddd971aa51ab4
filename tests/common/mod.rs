//! Shared by the integration tests that run the built `salient` binary.
#![allow(dead_code)]
use std::path::Path;
use std::process::Command;

/// The variables by which a scheduler hands a process its task index (`salient run` reads them
/// when `--task` is not given): removed so that a test run inside a Slurm job or a Kubernetes
/// pod runs the whole grid.
pub const TASK_VARIABLES: [&str; 4] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "JOB_COMPLETION_INDEX",
];

/// The built binary with the scheduler's task variables removed.
pub fn salient() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_salient"));
    for v in TASK_VARIABLES {
        cmd.env_remove(v);
    }
    cmd
}

/// `salient run SPEC --quiet --out OUT`.
pub fn salient_run(spec: &Path, out: &Path) -> Command {
    let mut cmd = salient();
    cmd.args(["run", spec.to_str().unwrap(), "--quiet", "--out"])
        .arg(out);
    cmd
}
