//! `salient run` on grids split over processes and runs that fail: a diverging run stays local
//! (issue #14, item 5), exact `--only` and `--task I --tasks N` selection (item 2), and several
//! processes sharing one output folder (item 1). Through the built binary.
use std::path::{Path, PathBuf};
use std::process::Output;

/// Three tiny runs that differ only by learning rate; `lr = 1e6` diverges at once.
const DIVERGING: &str = r#"
experiment cluster_diverge
data synthetic { shape = (1, 6, 6)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = [0.05, 1e6, 0.1]  epochs = 2  batch = 16  seed = 0 }
regime standard
"#;

mod common;
use common::salient;

fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let spec = dir.join(name);
    std::fs::write(&spec, text).unwrap();
    spec
}

fn run(spec: &Path, out: &Path, extra: &[&str]) -> Output {
    common::salient_run(spec, out).args(extra).output().unwrap()
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
    assert!(
        stderr.contains(bad) && stderr.contains("diverged"),
        "{stderr}"
    );
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
        assert!(out
            .join("runs")
            .join(id)
            .join("model.safetensors")
            .is_file());
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

/// Six tiny runs: epochs 1..3 (cost 1, 2, 3) x seeds 0, 1; and seeds 1, 10, 11 for `--only`.
const GRID: &str = r#"
experiment cluster_grid
data synthetic { shape = (1, 6, 6)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = 0.05  epochs = [1, 2, 3]  batch = 16  seed = [0, 1] }
regime standard
"#;

const SEEDS: &str = r#"
experiment cluster_seeds
data synthetic { shape = (1, 6, 6)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = 0.05  epochs = 1  batch = 16  seed = [1, 10, 11] }
regime standard
"#;

/// The run ids of results.csv, each once, in file order.
fn result_ids(out: &Path) -> Vec<String> {
    let mut ids: Vec<String> = result_rows(out).into_iter().map(|r| r.0).collect();
    ids.dedup();
    ids
}

fn run_ids_of(spec: &Path) -> Vec<(String, f64)> {
    let o = salient()
        .args([
            "check",
            "--format",
            "json",
            "--runs",
            spec.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["diagnostics"], serde_json::json!([]));
    assert_eq!(v["files"][0]["file"], spec.to_str().unwrap());
    v["files"][0]["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["cost"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn only_selects_exact_ids_and_glob_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "seeds.exp", SEEDS);
    let ids: Vec<String> = run_ids_of(&spec).into_iter().map(|r| r.0).collect();
    assert_eq!(
        ids,
        [
            "net-standard-seed1",
            "net-standard-seed10",
            "net-standard-seed11"
        ]
    );

    // A substring is no longer a selection: a usage error listing the ids.
    let out = dir.path().join("o");
    let o = run(&spec, &out, &["--only", "seed1"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--only seed1") && stderr.contains("net-standard-seed10"),
        "{stderr}"
    );

    let o = run(&spec, &out, &["--only", "*-seed1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(result_ids(&out), ["net-standard-seed1"]);

    let out2 = dir.path().join("o2");
    let o = run(&spec, &out2, &["--only", "net-standard-seed11,*-seed1[0]"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        result_ids(&out2),
        ["net-standard-seed10", "net-standard-seed11"]
    );

    let o = run(&spec, &out2, &["--only", "*-seed2*"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tasks_split_the_grid_into_disjoint_shares_balanced_by_cost() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "grid.exp", GRID);
    let all = run_ids_of(&spec);
    assert_eq!(all.len(), 6);
    let cost = |id: &str| all.iter().find(|r| r.0 == id).unwrap().1;
    // Costs are epochs x 96 training examples.
    assert_eq!(cost("net-standard-epochs3-seed1"), 3.0 * 96.0);

    // Task 0 from the flags, task 1 from Slurm's array variables (array 4-5).
    let a = dir.path().join("a");
    let o = run(&spec, &a, &["--task", "0", "--tasks", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = dir.path().join("b");
    let o = {
        let mut cmd = salient();
        cmd.args(["run", spec.to_str().unwrap(), "--quiet", "--out"])
            .arg(&b)
            .env("SLURM_ARRAY_TASK_ID", "5")
            .env("SLURM_ARRAY_TASK_MIN", "4")
            .env("SLURM_ARRAY_TASK_COUNT", "2")
            .env_remove("JOB_COMPLETION_INDEX");
        cmd.output().unwrap()
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ia, ib) = (result_ids(&a), result_ids(&b));
    assert_eq!(ia.len() + ib.len(), 6, "{ia:?} {ib:?}");
    let mut union: Vec<String> = ia.iter().chain(&ib).cloned().collect();
    union.sort();
    let mut expected: Vec<String> = all.iter().map(|r| r.0.clone()).collect();
    expected.sort();
    assert_eq!(union, expected, "disjoint shares covering the grid");
    let load = |ids: &[String]| ids.iter().map(|id| cost(id)).sum::<f64>();
    assert_eq!(load(&ia), load(&ib), "{ia:?} {ib:?}");

    // Kubernetes: the index from JOB_COMPLETION_INDEX, the count from --tasks; more tasks than
    // runs leaves a task empty, which is not an error.
    let c = dir.path().join("c");
    let o = {
        let mut cmd = salient();
        cmd.args([
            "run",
            spec.to_str().unwrap(),
            "--quiet",
            "--tasks",
            "7",
            "--out",
        ])
        .arg(&c)
        .env("JOB_COMPLETION_INDEX", "6")
        .env_remove("SLURM_ARRAY_TASK_ID");
        cmd.output().unwrap()
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no run falls to this task"));

    let o = run(&spec, &c, &["--task", "2", "--tasks", "2"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("out of range"), "{stderr}");
}

/// Three runs (seeds 0..2), long enough that processes started together overlap.
const SHARED: &str = r#"
experiment cluster_shared
data synthetic { shape = (1, 6, 6)  classes = 3  train = 480  test = 96  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = 0.05  epochs = EPOCHS  batch = 16  seed = [0, 1, 2] }
regime standard
attack fgsm { eps = 0.1 }
"#;

fn spawn_run(spec: &Path, out: &Path, only: &str) -> std::process::Child {
    common::salient_run(spec, out)
        .args(["--only", only])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Lines of a CSV file, header dropped.
fn data_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn concurrent_processes_on_one_folder_lose_and_duplicate_no_row() {
    let ids = [
        "net-standard-seed0",
        "net-standard-seed1",
        "net-standard-seed2",
    ];
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let spec = write_spec(dir.path(), "shared.exp", &SHARED.replace("EPOCHS", "6"));
        let out = dir.path().join("out");
        let children: Vec<_> = ids.iter().map(|id| spawn_run(&spec, &out, id)).collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(String::from_utf8_lossy(&o.stdout).contains("trained 1 run(s)"));
        }
        // The merged files hold every row of every run's own files, once, in the spec's order.
        for file in ["results.csv", "training.csv"] {
            let merged = data_lines(&out.join(file));
            let mut expected = Vec::new();
            for id in ids {
                let own = data_lines(&out.join("runs").join(id).join(file));
                assert!(!own.is_empty(), "round {round}: {id} has no {file}");
                expected.extend(own);
            }
            assert_eq!(merged, expected, "round {round}: {file}");
        }
        let rows = result_rows(&out);
        for id in ids {
            let clean = rows
                .iter()
                .filter(|r| r.0 == id && r.1 == "clean_accuracy")
                .count();
            assert_eq!(clean, 1, "round {round}: {id}");
            assert!(!out.join("runs").join(id).join("lock").exists());
        }
        assert!(!out.join(".merge.lock").exists());
        assert_eq!(data_lines(&out.join("training.csv")).len(), 3 * 6);
        if round == 0 {
            // `salient report` rebuilds the merged files from the runs' own files.
            let before = std::fs::read_to_string(out.join("results.csv")).unwrap();
            std::fs::write(out.join("results.csv"), "").unwrap();
            let o = salient()
                .args(["report", "--quiet"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(
                std::fs::read_to_string(out.join("results.csv")).unwrap(),
                before
            );
        }
    }
}

#[test]
fn a_locked_run_is_skipped_and_a_stale_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "shared.exp", &SHARED.replace("EPOCHS", "150"));
    let out = dir.path().join("out");
    let id = "net-standard-seed0";
    let lock = out.join("runs").join(id).join("lock");
    let first = spawn_run(&spec, &out, id);
    let started = std::time::Instant::now();
    while !lock.exists() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the first process never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let holder = std::fs::read_to_string(&lock).unwrap();
    assert!(holder.contains(&format!("pid={}", first.id())), "{holder}");
    let second = run(&spec, &out, &["--only", id]);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("trained 1 run(s)"));
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("skipped {id}: locked by another process")),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&second.stdout).contains("trained 0 run(s), reused 0"));
    assert!(!lock.exists(), "the lock is removed when the run finishes");
    assert_eq!(data_lines(&out.join("training.csv")).len(), 150);

    // A lock left by a dead process on this host is taken over (pid beyond Linux's pid_max).
    if Path::new("/proc/self").exists() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let curve = std::fs::read_to_string(out.join("training.csv")).unwrap();
        std::fs::write(&lock, format!("pid=4194305 host={} since=0\n", host.trim())).unwrap();
        let o = run(&spec, &out, &["--only", id]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("reused 1"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(!lock.exists());
        // The reused run's curve comes back from run.json with the same floats.
        assert_eq!(
            std::fs::read_to_string(out.join("training.csv")).unwrap(),
            curve
        );
    } else {
        panic!("this test needs Linux's /proc to make a lock whose process is dead");
    }
}

/// `SHARED` with a configured PGD that is no attack (one step of 1e-4 from the clean image):
/// FGSM at the same eps beats it on every run, so `single_step_stronger` fires for each.
fn flagged(epochs: usize) -> String {
    SHARED.replace("EPOCHS", &epochs.to_string()).replace(
        "attack fgsm { eps = 0.1 }",
        "attack fgsm { eps = 0.3 }\nattack pgd { norm = linf  eps = 0.3  steps = 1  step_size = 0.0001  random_start = false }",
    )
}

#[test]
fn concurrent_processes_on_one_folder_lose_no_finding() {
    let ids = [
        "net-standard-seed0",
        "net-standard-seed1",
        "net-standard-seed2",
    ];
    for round in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let spec = write_spec(dir.path(), "flagged.exp", &flagged(6));
        let out = dir.path().join("out");
        let children: Vec<_> = ids.iter().map(|id| spawn_run(&spec, &out, id)).collect();
        for (id, c) in ids.iter().zip(children) {
            let o = c.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "round {round}: {stderr}");
            assert!(
                stderr.contains(&format!("warning [single_step_stronger] {id}:")),
                "round {round}: {stderr}"
            );
        }
        // Each run's findings are in its own file, and the merged file holds all of them, once,
        // in the spec's order.
        let merged = data_lines(&out.join("diagnostics.csv"));
        let mut expected = Vec::new();
        for id in ids {
            let own = data_lines(&out.join("runs").join(id).join("diagnostics.csv"));
            assert!(
                own.iter()
                    .any(|l| l.starts_with(&format!("{id},single_step_stronger,"))),
                "round {round}: {id}: {own:?}"
            );
            expected.extend(own);
        }
        assert_eq!(merged, expected, "round {round}");
        let header = std::fs::read_to_string(out.join("diagnostics.csv")).unwrap();
        assert!(
            header.starts_with("run,check,attacks,norm,eps,"),
            "{header}"
        );
        if round == 0 {
            // `salient report` rebuilds diagnostics.csv from the runs' files too.
            std::fs::write(out.join("diagnostics.csv"), "").unwrap();
            let o = salient()
                .args(["report", "--quiet"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(data_lines(&out.join("diagnostics.csv")), expected);
        }
    }
}
