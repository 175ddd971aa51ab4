//! `salient plan --slurm` against a real Slurm (issue #14, item 6): a one-node cluster started
//! from Debian's packages by `scripts/slurm/local-cluster.sh` in a temp folder, a 4-run synthetic
//! spec submitted with the script `salient plan` writes (a job array of 4 tasks, 2 at once, and
//! the report job after it), and the merged results compared with a sequential `salient run` of
//! the same spec, timing columns aside.
//!
//! Needs Slurm and munge (`bash scripts/slurm/local-cluster.sh install`) and root (the test
//! cluster runs with `SlurmUser=root`). Without them the test fails under CI (`CI=true`, which
//! `.ci/run` sets after installing them) and elsewhere prints `SKIPPED: ...` and passes.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Four runs (epochs 1, 2 x seeds 0, 1) that train in well under a second each, with an attack
/// so that results.csv has evaluation rows besides clean accuracy.
const SPEC: &str = r#"
experiment slurm_grid
data synthetic { shape = (1, 6, 6)  classes = 3  train = 192  test = 96  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = 0.05  epochs = [1, 2]  batch = 16  seed = [0, 1] }
regime standard
attack fgsm { eps = 0.1 }
"#;

const RUNS: usize = 4;
/// How long the array and the report job may take, queueing included.
const JOBS_TIMEOUT: Duration = Duration::from_secs(300);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/local-cluster.sh")
}

/// Whether the tests run under CI: `CI` set to anything but empty, `false` or `0`.
fn under_ci() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    !(ci.is_empty() || ci == "false" || ci == "0")
}

/// Under CI a missing prerequisite is a failure; elsewhere the test says so loudly and passes.
fn skip(reason: &str) {
    if under_ci() {
        panic!(
            "slurm_cluster: {reason}\n(CI=true: run `bash scripts/slurm/local-cluster.sh install` as root first; .ci/run does)"
        );
    }
    eprintln!(
        "SKIPPED: slurm_cluster: {reason} (install with `bash scripts/slurm/local-cluster.sh install` as root; under CI=true this fails)"
    );
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The running cluster; dropping it stops the daemons (also when the test fails).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Result<Cluster, String> {
        // Two ports nothing listens on now (held together so they differ); the script writes
        // them into slurm.conf, so that clusters of other tests or runs do not collide.
        let (ctld, slurmd) = {
            let a = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let b = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            )
        };
        let o = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir)
            .env("LOCAL_SLURM_CTLD_PORT", ctld.to_string())
            .env("LOCAL_SLURM_SLURMD_PORT", slurmd.to_string())
            .output()
            .map_err(|e| format!("cannot run bash {}: {e}", script().display()))?;
        if !o.status.success() {
            // The script stops what it started when it fails.
            return Err(format!(
                "the local Slurm cluster did not start:\n{}",
                text(&o)
            ));
        }
        Ok(Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
        })
    }

    /// A client command (sbatch, squeue, ...) pointed at this cluster.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// The daemons' logs, for failure messages.
    fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["slurmctld.log", "slurmd.log"] {
            let path = self.dir.join("log").join(name);
            let body = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})"));
            let lines: Vec<&str> = body.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            s += &format!(
                "---- {} (last 40 lines)\n{}\n",
                path.display(),
                tail.join("\n")
            );
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("slurm_cluster: stopping the cluster failed:\n{}", text(&o)),
            Err(e) => eprintln!("slurm_cluster: cannot run the stop script: {e}"),
        }
    }
}

/// Every file under `OUT/slurm/` (the jobs' logs), for failure messages.
fn job_logs(out: &Path) -> String {
    let mut s = String::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(out.join("slurm"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    if entries.is_empty() {
        s += &format!("(no job log under {})\n", out.join("slurm").display());
    }
    for p in entries {
        s += &format!(
            "---- {}\n{}\n",
            p.display(),
            std::fs::read_to_string(&p).unwrap_or_else(|e| format!("({e})"))
        );
    }
    s
}

/// A CSV file as its header and rows, with the named columns dropped and the rows whose
/// `metric` column is in `drop_metrics` left out.
fn csv_without(
    path: &Path,
    drop_columns: &[&str],
    drop_metrics: &[&str],
) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !drop_columns.contains(&header[i].as_str()))
        .collect();
    let metric = header.iter().position(|h| h == "metric");
    let rows = r
        .records()
        .map(|rec| rec.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|rec| match metric {
            Some(m) => !drop_metrics.contains(&&rec[m]),
            None => true,
        })
        .map(|rec| keep.iter().map(|&i| rec[i].to_string()).collect())
        .collect();
    (keep.iter().map(|&i| header[i].clone()).collect(), rows)
}

/// Final Slurm job states (the job is no longer pending or running).
const FINAL: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
];

#[test]
fn a_grid_submitted_with_salient_plan_runs_as_a_job_array_and_merges_like_a_sequential_run() {
    for tool in ["slurmctld", "slurmd", "munged", "sbatch", "squeue"] {
        let found = Command::new("bash")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return skip(&format!("{tool} is not installed"));
        }
    }
    let euid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if euid != "0" {
        return skip(&format!(
            "the local cluster runs slurmctld and slurmd as root, and this test runs as uid {euid}"
        ));
    }

    let tmp = tempfile::Builder::new()
        .prefix("salient-slurm-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    // Declared after `tmp`, so dropped (daemons stopped) before the folder is removed.
    let cluster = match Cluster::start(&dir.join("cluster")) {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };

    std::fs::write(dir.join("grid.exp"), SPEC).unwrap();
    let salient = env!("CARGO_BIN_EXE_salient");
    // Relative spec and output paths: the jobs run in the directory submit.sh was run from.
    let o = Command::new(salient)
        .current_dir(dir)
        .args([
            "plan",
            "grid.exp",
            "--slurm",
            "--out",
            "out",
            "--salient",
            salient,
            "--max-parallel",
            "2",
            "--partition",
            "debug",
            "--time",
            "00:10:00",
            "--cpus",
            "1",
            "--mem",
            "256M",
            "-o",
            "submit.sh",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "salient plan: {}", text(&o));

    let o = cluster
        .cmd("bash")
        .current_dir(dir)
        .arg("submit.sh")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("SLURM_ARRAY_TASK_MIN")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bash submit.sh: {}\n{}",
        text(&o),
        cluster.logs()
    );
    // "submitted array job <A> (4 task(s)) and report job <R>; output in out"
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let after = |w: &str| -> String {
        let pos = words
            .windows(3)
            .position(|p| p[0] == w && p[1] == "job")
            .unwrap_or_else(|| panic!("no `{w} job <id>` in submit.sh's output: {stdout}"));
        words[pos + 2].trim_end_matches(';').to_string()
    };
    let (array, report) = (after("array"), after("report"));
    for id in [&array, &report] {
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "job id `{id}` in: {stdout}"
        );
    }

    // Wait until the array's tasks and the report job have all ended.
    let out = dir.join("out");
    let started = Instant::now();
    let states: BTreeMap<String, String> = loop {
        let o = cluster
            .cmd("squeue")
            .args(["-h", "-r", "-t", "all", "-o", "%i %T", "-j"])
            .arg(format!("{array},{report}"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "squeue: {}\n{}",
            text(&o),
            cluster.logs()
        );
        let states: BTreeMap<String, String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, st)| (id.to_string(), st.trim().to_string()))
            .collect();
        let done = states.len() == RUNS + 1 && states.values().all(|s| FINAL.contains(&s.as_str()));
        if done {
            eprintln!(
                "slurm_cluster: the array's {RUNS} tasks and the report job ended {:.1}s after submission",
                started.elapsed().as_secs_f64()
            );
            break states;
        }
        if started.elapsed() > JOBS_TIMEOUT {
            panic!(
                "the jobs did not end within {}s; squeue says {states:?}\n{}{}",
                JOBS_TIMEOUT.as_secs(),
                job_logs(&out),
                cluster.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut expected: Vec<String> = (0..RUNS).map(|i| format!("{array}_{i}")).collect();
    expected.push(report.clone());
    expected.sort();
    assert_eq!(
        states.keys().cloned().collect::<Vec<_>>(),
        expected,
        "{states:?}"
    );
    assert!(
        states.values().all(|s| s == "COMPLETED"),
        "every task and the report job complete: {states:?}\n{}{}",
        job_logs(&out),
        cluster.logs()
    );

    // Each task's log, each task trained one run (4 tasks for 4 runs, balanced by cost).
    for i in 0..RUNS {
        let log = out
            .join("slurm")
            .join(format!("salient-slurm_grid-{array}_{i}.out"));
        let body = std::fs::read_to_string(&log).unwrap_or_else(|e| {
            panic!("task {i}'s log {}: {e}\n{}", log.display(), job_logs(&out))
        });
        assert!(
            body.contains("trained 1 run(s)"),
            "task {i}: {body}\n{}",
            job_logs(&out)
        );
    }
    let report_log = out
        .join("slurm")
        .join(format!("salient-slurm_grid-report-{report}.out"));
    let body = std::fs::read_to_string(&report_log)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", report_log.display(), job_logs(&out)));
    assert!(body.contains("report: "), "{body}");

    // The report job drew index.html after every run had written its files (afterany).
    let index = out.join("index.html");
    let drawn = std::fs::metadata(&index)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", index.display(), job_logs(&out)));
    for entry in std::fs::read_dir(out.join("runs")).unwrap() {
        let run_results = entry.unwrap().path().join("results.csv");
        let written = std::fs::metadata(&run_results)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{}: {e}", run_results.display()));
        assert!(
            written <= drawn,
            "{} is newer than index.html",
            run_results.display()
        );
    }

    // The same spec run sequentially in one process.
    let seq = dir.join("seq");
    let o = Command::new(salient)
        .current_dir(dir)
        .args(["run", "grid.exp", "--quiet", "--out"])
        .arg(&seq)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("SLURM_ARRAY_TASK_MIN")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert!(o.status.success(), "sequential salient run: {}", text(&o));

    // results.csv: the same rows in the same order, train_seconds (wall time) aside.
    let (h_array, r_array) = csv_without(&out.join("results.csv"), &[], &["train_seconds"]);
    let (h_seq, r_seq) = csv_without(&seq.join("results.csv"), &[], &["train_seconds"]);
    assert_eq!(h_array, h_seq);
    assert!(
        r_seq.len() > RUNS * 2,
        "the sequential run wrote {} rows",
        r_seq.len()
    );
    let runs_seen: std::collections::BTreeSet<&str> =
        r_array.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(runs_seen.len(), RUNS, "{runs_seen:?}");
    assert_eq!(
        r_array, r_seq,
        "results.csv of the job array (left) and of the sequential run (right)"
    );
    // training.csv: the same curves, the epoch's wall time and throughput aside.
    let timing = ["seconds", "images_per_second"];
    let (h_array, t_array) = csv_without(&out.join("training.csv"), &timing, &[]);
    let (h_seq, t_seq) = csv_without(&seq.join("training.csv"), &timing, &[]);
    assert_eq!(h_array, h_seq);
    assert_eq!(t_seq.len(), 2 * (1 + 2), "epochs 1 and 2 for two seeds");
    assert_eq!(
        t_array, t_seq,
        "training.csv of the job array (left) and of the sequential run (right)"
    );
    drop(cluster);
}
