//! `salient run` on grids split over processes and runs that fail: a diverging run stays local
//! (issue #14, item 5), exact `--only` and `--task I --tasks N` selection (item 2), and several
//! processes sharing one output folder (item 1). Through the built binary.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Three tiny runs that differ only by learning rate; `lr = 1e6` diverges at once.
const DIVERGING: &str = r#"
experiment cluster_diverge
data synthetic { shape = (1, 6, 6)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = [0.05, 1e6, 0.1]  epochs = 2  batch = 16  seed = 0 }
regime standard
"#;

fn salient() -> Command {
    Command::new(env!("CARGO_BIN_EXE_salient"))
}

fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let spec = dir.join(name);
    std::fs::write(&spec, text).unwrap();
    spec
}

fn run(spec: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = salient();
    cmd.args([
        "run",
        spec.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    cmd.args(extra);
    cmd.env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("JOB_COMPLETION_INDEX");
    cmd.output().unwrap()
}

/// (run, metric) pairs of results.csv, in file order.
fn result_rows(out: &Path) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(out.join("results.csv")).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].to_string(), rec[4].to_string(), rec[10].to_string())
        })
        .collect()
}

#[test]
fn a_diverging_run_is_recorded_and_the_others_finish() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "diverge.exp", DIVERGING);
    let out = dir.path().join("out");
    let o = run(&spec, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("1 run(s) failed"), "{stderr}");
    let bad = "net-standard-lr1e6-seed0";
    assert!(stderr.contains(bad) && stderr.contains("diverged"), "{stderr}");
    let rows = result_rows(&out);
    let ids: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        v.dedup();
        v
    };
    assert_eq!(
        ids,
        ["net-standard-lr0.05-seed0", bad, "net-standard-lr0.1-seed0"],
        "rows in the spec's order"
    );
    for id in ["net-standard-lr0.05-seed0", "net-standard-lr0.1-seed0"] {
        assert!(
            rows.iter().any(|r| r.0 == id && r.1 == "clean_accuracy"),
            "{id} finished: {rows:?}"
        );
        assert!(out.join("runs").join(id).join("model.safetensors").is_file());
        assert!(!rows.iter().any(|r| r.0 == id && r.1 == "failed"));
    }
    let bad_rows: Vec<_> = rows.iter().filter(|r| r.0 == bad).collect();
    assert_eq!(bad_rows.len(), 1, "{bad_rows:?}");
    assert_eq!(bad_rows[0].1, "failed");
    assert_eq!(bad_rows[0].2.parse::<f64>().unwrap(), 1.0);
    let why = std::fs::read_to_string(out.join("runs").join(bad).join("failed.txt")).unwrap();
    assert!(why.contains("diverged at epoch 1"), "{why}");
    assert!(!out.join("runs").join(bad).join("run.json").exists());
    // The training curves of the two finished runs only.
    let training = std::fs::read_to_string(out.join("training.csv")).unwrap();
    assert!(!training.contains(bad), "{training}");
    assert_eq!(training.matches("net-standard-lr0.05-seed0").count(), 2);
}
