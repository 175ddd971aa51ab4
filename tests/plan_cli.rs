//! `salient plan SPEC --slurm|--k8s` (issue #14, item 3): the Slurm submission script (job array
//! with `%K` throttle, each task running `salient run ... --tasks N`, a report job after the array
//! with `afterany`) and the Kubernetes Indexed Job manifest. Through the built binary.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Four tiny runs (a sweep over the learning rate).
const GRID: &str = r#"
experiment plan_grid
data synthetic { shape = (1, 6, 6)  classes = 3  train = 96  test = 48  noise = 0.2  seed = 7 }
model net { flatten dense(out = 3) }
train { optimizer = sgd  lr = [0.01, 0.02, 0.05, 0.1]  epochs = 1  batch = 16  seed = 0 }
regime standard
"#;

fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let spec = dir.join(name);
    std::fs::write(&spec, text).unwrap();
    spec
}

fn plan(spec: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salient"))
        .arg("plan")
        .arg(spec)
        .args(extra)
        .output()
        .unwrap()
}

fn ok_stdout(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The here-document of a job in the script: the lines between `<<'TAG'` and `TAG`.
fn heredoc<'a>(script: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<<'{tag}'");
    let mut lines = script.lines().skip_while(|l| !l.contains(&open));
    assert!(lines.next().is_some(), "no <<'{tag}' in:\n{script}");
    lines.take_while(|l| *l != tag).collect()
}

#[test]
fn slurm_script_runs_an_array_and_a_report_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "grid.exp", GRID);
    let spec_s = spec.to_str().unwrap();
    let out = dir.path().join("shared out");
    let o = plan(
        &spec,
        &[
            "--slurm",
            "--out",
            out.to_str().unwrap(),
            "--partition",
            "gpu",
            "--time",
            "04:00:00",
            "--gpus",
            "1",
            "--cpus",
            "4",
            "--mem",
            "16G",
            "--max-parallel",
            "2",
            "--sbatch=--qos=long",
        ],
    );
    let script = ok_stdout(&o);
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");

    let array = heredoc(&script, "SALIENT_ARRAY_JOB");
    assert_eq!(array[0], "#!/bin/bash");
    for line in [
        "#SBATCH --array=0-3%2",
        "#SBATCH --job-name=salient-plan_grid",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=04:00:00",
        "#SBATCH --gpus=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=16G",
        "#SBATCH --qos=long",
        // SIGTERM before the time limit (salient stops and keeps its epoch checkpoint) and
        // requeueing of preempted tasks (they resume).
        "#SBATCH --signal=B:TERM@120",
        "#SBATCH --requeue",
    ] {
        assert!(array.contains(&line), "{line} missing from {array:#?}");
    }
    let quoted_out = format!("'{}'", out.to_str().unwrap());
    let run =
        format!("exec salient run {spec_s} --out {quoted_out} --quiet --device cuda --tasks 4");
    assert_eq!(array.last(), Some(&run.as_str()), "{array:#?}");
    assert!(
        script.contains("array_job=$(sbatch --parsable "),
        "the array is submitted with --parsable: {script}"
    );

    let report = heredoc(&script, "SALIENT_REPORT_JOB");
    assert!(report.contains(&"#SBATCH --partition=gpu"), "{report:#?}");
    assert!(
        !report
            .iter()
            .any(|l| l.contains("--gpus") || l.contains("--array")),
        "the report job needs no GPU and is no array: {report:#?}"
    );
    assert_eq!(
        report.last(),
        Some(&format!("exec salient report {quoted_out}").as_str())
    );
    let submit = script
        .lines()
        .find(|l| l.contains("<<'SALIENT_REPORT_JOB'"))
        .unwrap();
    assert!(
        submit.contains("--dependency=afterany:\"$array_job\""),
        "{submit}"
    );
    // The array's id is read before the report job is submitted.
    let (before, _) = script.split_once("<<'SALIENT_REPORT_JOB'").unwrap();
    assert!(before.contains("array_job=${array_job%%;*}"), "{script}");

    // bash accepts it.
    let path = dir.path().join("submit.sh");
    std::fs::write(&path, &script).unwrap();
    let b = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash must be installed to check the script's syntax");
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
}

/// The script submits what it says: with fake `sbatch` on PATH that records its arguments and
/// standard input, running it submits the array, then the report depending on the array's id.
#[test]
fn slurm_script_submits_through_sbatch() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "grid.exp", GRID);
    let script_path = dir.path().join("submit.sh");
    let o = plan(
        &spec,
        &[
            "--slurm",
            "--out",
            dir.path().join("out").to_str().unwrap(),
            "--tasks",
            "3",
            "--output",
            script_path.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "--output writes the file, not stdout");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("sbatch.log");
    let fake = format!(
        "#!/bin/bash\nn=$(ls {log}.*.args 2>/dev/null | wc -l)\necho \"$*\" > {log}.$n.args\ncat > {log}.$n.stdin\necho $((1000 + n))\\;cluster1\n",
        log = log.display()
    );
    std::fs::write(bin.join("sbatch"), fake).unwrap();
    let chmod = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    chmod(&bin.join("sbatch"));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let r = Command::new("bash")
        .arg(&script_path)
        .env("PATH", path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        dir.path().join("out/slurm").is_dir(),
        "the log folder exists before submission"
    );
    let read = |f: &str| std::fs::read_to_string(format!("{}.{f}", log.display())).unwrap();
    let array_stdin = read("0.stdin");
    assert!(
        array_stdin.contains("#SBATCH --array=0-2\n"),
        "{array_stdin}"
    );
    assert!(array_stdin.contains("--tasks 3\n"), "{array_stdin}");
    assert!(read("0.args").starts_with("--parsable --output="));
    let report_args = read("1.args");
    assert!(
        report_args.contains("--dependency=afterany:1000 "),
        "the cluster suffix of --parsable is dropped: {report_args}"
    );
    assert!(read("1.stdin").contains(" report "));
    assert!(
        stdout.contains("array job 1000") && stdout.contains("report job 1001"),
        "{stdout}"
    );
}

#[test]
fn k8s_manifest_is_an_indexed_job() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "grid.exp", GRID);
    let o = plan(
        &spec,
        &[
            "--k8s",
            "--image",
            "ghcr.io/lab/salient:1",
            "--out",
            "reports/plan_grid",
            "--max-parallel",
            "3",
            "--gpus",
            "1",
            "--mem",
            "8G",
            "--time",
            "2:00:00",
        ],
    );
    let y = ok_stdout(&o);
    for line in [
        "apiVersion: batch/v1",
        "kind: Job",
        "  name: \"salient-plan-grid\"",
        "  completionMode: Indexed",
        "  completions: 4",
        "  parallelism: 3",
        "      restartPolicy: Never",
        "      activeDeadlineSeconds: 7200",
        "          image: \"ghcr.io/lab/salient:1\"",
        "          workingDir: \"/shared\"",
        "              memory: \"8Gi\"",
        "              nvidia.com/gpu: 1",
        "              mountPath: \"/shared\"",
    ] {
        assert!(y.lines().any(|l| l == line), "{line:?} missing from\n{y}");
    }
    let command = format!(
        "          command: [\"salient\", \"run\", {}, \"--out\", \"reports/plan_grid\", \"--quiet\", \"--device\", \"cuda\", \"--tasks\", \"4\"]",
        serde_json::to_string(spec.to_str().unwrap()).unwrap()
    );
    assert!(
        y.lines().any(|l| l == command),
        "{command}\nmissing from\n{y}"
    );
    assert!(y.contains("claimName: \"salient-shared\""), "{y}");
    assert!(!y.contains('\t'), "YAML has no tabs");
}

#[test]
fn k8s_needs_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "grid.exp", GRID);
    let o = plan(&spec, &["--k8s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--image"));
}

#[test]
fn a_spec_with_errors_gets_the_checkers_diagnostics_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let bad = GRID.replace("regime standard", "regime nonsense_regime");
    let spec = write_spec(dir.path(), "bad.exp", &bad);
    let check = Command::new(env!("CARGO_BIN_EXE_salient"))
        .arg("check")
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1), "the fixture has an error");
    for target in ["--slurm", "--k8s"] {
        let o = plan(&spec, &[target, "--image", "x"]);
        assert_eq!(o.status.code(), check.status.code(), "{target}");
        assert!(o.stdout.is_empty(), "no plan is written");
        let stderr = String::from_utf8_lossy(&o.stderr);
        let check_err = String::from_utf8_lossy(&check.stderr);
        let first = check_err.lines().next().unwrap();
        assert!(stderr.contains(first), "{stderr}\nvs check:\n{check_err}");
    }
    let missing = plan(&dir.path().join("nope.exp"), &["--slurm"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn bad_options_are_errors_not_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "grid.exp", GRID);
    for (args, needle) in [
        (&["--slurm", "--time", "4h"][..], "time limit"),
        (&["--slurm", "--mem", "lots"][..], "memory"),
        (&["--slurm", "--tasks", "0"][..], "--tasks"),
        (&["--slurm", "--max-parallel", "0"][..], "--max-parallel"),
        (&["--slurm", "--partition", "gpu a"][..], "--partition"),
        (&["--slurm", "--sbatch", "qos=long"][..], "--sbatch"),
    ] {
        let o = plan(&spec, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Neither target: a usage error.
    assert_eq!(plan(&spec, &[]).status.code(), Some(2));
}
