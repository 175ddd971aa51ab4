//! `salient plan SPEC --slurm|--k8s`: write what a cluster needs to run a spec's grid as an array
//! of tasks, each running `salient run SPEC --out DIR --quiet --tasks N` (the task's index comes
//! from the scheduler: `SLURM_ARRAY_TASK_ID`, Kubernetes' `JOB_COMPLETION_INDEX`; see
//! `run.rs`).
//!
//! - `--slurm`: a bash script to run on a login node (`bash submit.sh`). It submits the array
//!   job (`sbatch --parsable`, the job script in a here-document with `#SBATCH --array=0-(N-1)%K`)
//!   and then one `salient report DIR` job with `--dependency=afterany:<array job id>`, so the
//!   report is drawn once every task has ended, whether or not some failed.
//! - `--k8s`: a Kubernetes Indexed Job manifest (`completionMode: Indexed`, `completions: N`,
//!   `parallelism: K`) whose pods mount one shared volume (a ReadWriteMany claim to name).
//!
//! The spec is checked first: the same diagnostics and exit codes as `salient check` (1 errors,
//! 2 unreadable). Bad options (a malformed `--time`, `--tasks 0`, a newline in a value) exit 2.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["slurm", "k8s"])))]
pub struct PlanArgs {
    /// The .exp spec whose grid to plan.
    pub spec: PathBuf,
    /// Write a Slurm submission script: a job array over the grid and a report job after it.
    #[arg(long)]
    pub slurm: bool,
    /// Write a Kubernetes Indexed Job manifest (YAML).
    #[arg(long)]
    pub k8s: bool,
    /// The shared output directory every task writes into (default: the spec's report
    /// directory, `reports/<experiment>`). With `--k8s`, a relative path is under `--mount`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Number of array tasks (default: one per run). Runs are shared among them balanced by
    /// estimated cost, as `salient run --tasks N` does.
    #[arg(long, value_name = "N")]
    pub tasks: Option<usize>,
    /// At most K tasks at once (Slurm's `%K` throttle; Kubernetes' `parallelism`). Default:
    /// all tasks at once.
    #[arg(long, value_name = "K")]
    pub max_parallel: Option<usize>,
    /// Plan only these runs (ids or globs, as `salient run --only`); passed on to every task.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Slurm partition (`#SBATCH --partition`).
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm account (`#SBATCH --account`).
    #[arg(long)]
    pub account: Option<String>,
    /// Time limit per task, Slurm's format: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
    /// `D-HH:MM:SS` (Slurm `--time`; Kubernetes: the pod's `activeDeadlineSeconds`).
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// GPUs per task (Slurm `--gpus`: each array task is its own job; Kubernetes
    /// `nvidia.com/gpu`). With GPUs the tasks run with `--device cuda` unless `--device` says.
    #[arg(long, value_name = "G")]
    pub gpus: Option<u32>,
    /// CPU cores per task (Slurm `--cpus-per-task`; Kubernetes cpu request).
    #[arg(long, value_name = "C")]
    pub cpus: Option<u32>,
    /// Memory per task: a number with an optional K, M, G or T suffix (Slurm `--mem`;
    /// Kubernetes memory request and limit, as Ki/Mi/Gi/Ti).
    #[arg(long, value_name = "M")]
    pub mem: Option<String>,
    /// The device the tasks train on (default: cuda with `--gpus` of 1 or more, else cpu).
    #[arg(long, value_enum)]
    pub device: Option<crate::run::Device>,
    /// The salient command on the cluster's nodes (a path or a name on PATH).
    #[arg(long, default_value = "salient", value_name = "CMD")]
    pub salient: String,
    /// An extra option for the array job's `#SBATCH` lines, e.g. `--sbatch=--qos=long` or
    /// `--sbatch=--gres=gpu:1` (a cluster without `select/cons_tres`); repeatable.
    #[arg(long, value_name = "OPT", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// A shell line run before `salient` in each Slurm task (e.g. `module load cuda`);
    /// repeatable.
    #[arg(long, value_name = "LINE")]
    pub setup: Vec<String>,
    /// Time limit of the Slurm report job.
    #[arg(long, default_value = "00:30:00", value_name = "T")]
    pub report_time: String,
    /// Job name (default: `salient-<experiment>`, lowercased with `_` as `-` for Kubernetes).
    #[arg(long)]
    pub name: Option<String>,
    /// Container image with salient on PATH (required with `--k8s`).
    #[arg(long)]
    pub image: Option<String>,
    /// Kubernetes: the PersistentVolumeClaim (ReadWriteMany) holding the specs, data and output.
    #[arg(long, default_value = "salient-shared", value_name = "CLAIM")]
    pub pvc: String,
    /// Kubernetes: where the shared volume is mounted; the pods' working directory.
    #[arg(long, default_value = "/shared", value_name = "PATH")]
    pub mount: String,
    /// Write to FILE instead of stdout (a Slurm script is made executable).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn main(args: PlanArgs) -> ExitCode {
    let (file, _, exp) = match crate::check::checked_spec(&args.spec, "no plan was written") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runs = match salient_engine::runner::select_runs(&exp, &args.only) {
        Ok(s) => s.len(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&exp.report.dir));
    let plan = Plan {
        spec: file.clone(),
        out: out_dir.display().to_string(),
        experiment: exp.name.clone(),
        runs,
    };
    let text = if args.slurm {
        slurm(&args, &plan)
    } else {
        k8s(&args, &plan)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let tasks = args.tasks.unwrap_or(runs);
    if tasks > runs {
        eprintln!(
            "warning: {tasks} tasks for {runs} run(s): {} task(s) will find no run and exit at once",
            tasks - runs
        );
    }
    match &args.output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
            #[cfg(unix)]
            if args.slurm {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
            }
            eprintln!(
                "wrote {} ({} task(s) over {runs} run(s))",
                path.display(),
                tasks
            );
            ExitCode::SUCCESS
        }
    }
}

/// What both targets need from the checked spec.
struct Plan {
    spec: String,
    out: String,
    experiment: String,
    /// Number of runs selected (after `--only`).
    runs: usize,
}

/// `(N, K)`: tasks and how many at once, validated.
fn counts(args: &PlanArgs, plan: &Plan) -> Result<(usize, usize), String> {
    if plan.runs == 0 {
        return Err("the spec selects no run: nothing to plan".to_string());
    }
    let n = args.tasks.unwrap_or(plan.runs);
    if n == 0 {
        return Err("--tasks must be at least 1".to_string());
    }
    let k = match args.max_parallel {
        Some(0) => return Err("--max-parallel must be at least 1".to_string()),
        Some(k) => k.min(n),
        None => n,
    };
    Ok((n, k))
}

/// The device the tasks pass to `salient run`.
fn device(args: &PlanArgs) -> &'static str {
    match args.device {
        Some(crate::run::Device::Cuda) => "cuda",
        Some(crate::run::Device::Cpu) => "cpu",
        None if args.gpus.unwrap_or(0) > 0 => "cuda",
        None => "cpu",
    }
}

/// The argv of each task's `salient run` (the index comes from the scheduler's environment).
fn run_argv(args: &PlanArgs, plan: &Plan, tasks: usize) -> Vec<String> {
    let mut v = vec![
        args.salient.clone(),
        "run".to_string(),
        plan.spec.clone(),
        "--out".to_string(),
        plan.out.clone(),
        "--quiet".to_string(),
        "--device".to_string(),
        device(args).to_string(),
    ];
    if !args.only.is_empty() {
        v.push("--only".to_string());
        v.push(args.only.join(","));
    }
    v.push("--tasks".to_string());
    v.push(tasks.to_string());
    v
}

/// Reject control characters (a newline would end a `#SBATCH` line or a here-document).
fn no_newline(what: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{what} must not contain a newline or control character"
        ));
    }
    Ok(())
}

/// Seconds in a Slurm time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
pub fn slurm_time_seconds(t: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "time limit `{t}`: expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (Slurm's format)"
        )
    };
    let num = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (days, rest) = match t.split_once('-') {
        Some((d, rest)) => (Some(num(d)?), rest),
        None => (None, t),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Result<_, _>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86400 + h * 3600,
        (Some(d), [h, m]) => d * 86400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(format!("time limit `{t}` is zero"));
    }
    Ok(secs)
}

/// `16G` -> (16, 'G'); a number with an optional K/M/G/T suffix (Slurm's default unit is M).
fn parse_mem(m: &str) -> Result<(u64, char), String> {
    let bad = || {
        format!("memory `{m}`: expected a number with an optional K, M, G or T suffix (e.g. 16G)")
    };
    let (digits, unit) = match m.chars().last() {
        Some(c) if "KMGTkmgt".contains(c) => (&m[..m.len() - 1], c.to_ascii_uppercase()),
        _ => (m, 'M'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!("memory `{m}` is zero"));
    }
    Ok((n, unit))
}

/// A word for a POSIX shell: as is when it has only safe characters, else single-quoted.
pub fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A value of an `#SBATCH` line: letters, digits and `_.:-,+@=` only (sbatch splits these lines
/// on blanks and has no quoting one can rely on).
fn sbatch_value(what: &str, v: &str) -> Result<String, String> {
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-,+@=/".contains(&b))
    {
        return Err(format!(
            "{what} `{v}`: use letters, digits and _ . : - , + @ = / only"
        ));
    }
    Ok(v.to_string())
}

const ARRAY_EOF: &str = "SALIENT_ARRAY_JOB";
const REPORT_EOF: &str = "SALIENT_REPORT_JOB";

fn slurm(args: &PlanArgs, plan: &Plan) -> Result<String, String> {
    let (n, k) = counts(args, plan)?;
    for (what, v) in [
        ("the spec path", plan.spec.as_str()),
        ("--out", plan.out.as_str()),
        ("--salient", args.salient.as_str()),
    ] {
        no_newline(what, v)?;
    }
    for o in &args.only {
        no_newline("--only", o)?;
    }
    for line in &args.setup {
        no_newline("--setup", line)?;
        if line.trim() == ARRAY_EOF {
            return Err(format!("--setup `{line}` would end the job script"));
        }
    }
    let name = sbatch_value(
        "--name",
        &args
            .name
            .clone()
            .unwrap_or_else(|| format!("salient-{}", plan.experiment)),
    )?;
    let mut common = Vec::new();
    if let Some(p) = &args.partition {
        common.push(format!("--partition={}", sbatch_value("--partition", p)?));
    }
    if let Some(a) = &args.account {
        common.push(format!("--account={}", sbatch_value("--account", a)?));
    }
    let mut task_opts = Vec::new();
    if let Some(t) = &args.time {
        slurm_time_seconds(t)?;
        task_opts.push(format!("--time={t}"));
    }
    if let Some(g) = args.gpus.filter(|&g| g > 0) {
        task_opts.push(format!("--gpus={g}"));
    }
    if let Some(c) = args.cpus {
        if c == 0 {
            return Err("--cpus must be at least 1".to_string());
        }
        task_opts.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &args.mem {
        let (num, unit) = parse_mem(m)?;
        task_opts.push(format!("--mem={num}{unit}"));
    }
    for o in &args.sbatch {
        if !o.starts_with('-') {
            return Err(format!(
                "--sbatch `{o}`: an sbatch option starts with - (e.g. --qos=long)"
            ));
        }
        task_opts.push(sbatch_value("--sbatch", o)?);
    }
    slurm_time_seconds(&args.report_time).map_err(|e| format!("--report-time: {e}"))?;

    let throttle = if k < n {
        format!("%{k}")
    } else {
        String::new()
    };
    let array = format!("0-{}{throttle}", n - 1);
    let run = run_argv(args, plan, n)
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    let report = [args.salient.as_str(), "report", plan.out.as_str()]
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    // Slurm expands %x, %A, %a in --output; a literal % in the folder is written %%.
    let logs = format!("{}/slurm", plan.out);
    let log_pattern = |file: &str| sh_quote(&format!("{}/{file}", logs.replace('%', "%%")));

    let mut s = String::new();
    s += "#!/bin/bash\n";
    s += &format!(
        "# Written by `salient plan --slurm` for experiment {}: {} run(s) of {} as a job array of\n",
        plan.experiment, plan.runs, plan.spec
    );
    s += &format!(
        "# {n} task(s){}, then one `salient report` job once every task has ended (afterany).\n",
        if k < n {
            format!(", at most {k} at once")
        } else {
            String::new()
        }
    );
    s += "#\n";
    s += "# Submit from a login node, in the directory the paths below are relative to:\n";
    s += "#     bash THIS_FILE\n";
    s += "# Every task writes into the same output folder, which must be on a filesystem shared by\n";
    s += "# the nodes (docs/cluster.md). Logs: <out>/slurm/.\n";
    s += "set -euo pipefail\n\n";
    s += "command -v sbatch >/dev/null || { echo \"sbatch not found: run this on a Slurm login node\" >&2; exit 1; }\n";
    s += &format!(
        "[ -f {spec} ] || {{ echo \"spec \"{spec}\" not found (run this from the directory it is relative to)\" >&2; exit 1; }}\n",
        spec = sh_quote(&plan.spec)
    );
    s += &format!("mkdir -p {}\n\n", sh_quote(&logs));

    s += "# The array: task i runs the i-th share of the grid (salient reads SLURM_ARRAY_TASK_ID).
";
    s += &format!(
        "array_job=$(sbatch --parsable --output={} <<'{ARRAY_EOF}'\n",
        log_pattern("%x-%A_%a.out")
    );
    s += "#!/bin/bash\n";
    s += &format!("#SBATCH --job-name={name}\n");
    s += &format!("#SBATCH --array={array}\n");
    // SIGTERM to the task (the batch shell, which `exec`s salient) 2 minutes before its time
    // limit: salient stops within a step, keeping its last epoch checkpoint; a preempted or
    // failed node's task is requeued and resumes from it (docs/cluster.md).
    s += "# salient stops within a step on SIGTERM and a rerun resumes from the last epoch:\n";
    s += "#SBATCH --signal=B:TERM@120\n";
    s += "#SBATCH --requeue\n";
    for o in common.iter().chain(&task_opts) {
        s += &format!("#SBATCH {o}\n");
    }
    for line in &args.setup {
        s += line;
        s += "\n";
    }
    s += &format!("exec {run}\n");
    s += &format!("{ARRAY_EOF}\n)\n");
    s += "array_job=${array_job%%;*}  # --parsable prints <id> or <id>;<cluster>\n\n";

    s += "# The report, drawn from every run's files once the whole array has ended (done or failed).\n";
    s += &format!(
        "report_job=$(sbatch --parsable --dependency=afterany:\"$array_job\" --output={} <<'{REPORT_EOF}'\n",
        log_pattern("%x-%j.out")
    );
    s += "#!/bin/bash\n";
    s += &format!("#SBATCH --job-name={name}-report\n");
    for o in &common {
        s += &format!("#SBATCH {o}\n");
    }
    s += &format!("#SBATCH --time={}\n", args.report_time);
    s += "#SBATCH --cpus-per-task=1\n";
    s += &format!("exec {report}\n");
    s += &format!("{REPORT_EOF}\n)\n");
    s += "report_job=${report_job%%;*}\n\n";
    s += &format!(
        "echo \"submitted array job $array_job ({n} task(s)) and report job $report_job; output in \"{}\n",
        sh_quote(&plan.out)
    );
    Ok(s)
}

/// A YAML scalar: a JSON string literal (YAML's double-quoted style accepts JSON's escapes).
fn y(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// A Kubernetes object name: lowercase letters, digits and `-`, at most 63 characters (an
/// Indexed Job's pods add a suffix to it).
fn k8s_name(raw: &str) -> Result<String, String> {
    let n: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .collect();
    let ok = !n.is_empty()
        && n.len() <= 63
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if !ok {
        return Err(format!(
            "job name `{raw}` is not a Kubernetes name (lowercase letters, digits, '-', at most 63): pass --name"
        ));
    }
    Ok(n)
}

fn k8s(args: &PlanArgs, plan: &Plan) -> Result<String, String> {
    let (n, k) = counts(args, plan)?;
    let Some(image) = &args.image else {
        return Err(
            "--k8s needs --image IMAGE (a container image with salient on PATH)".to_string(),
        );
    };
    if !args.sbatch.is_empty() {
        return Err("--sbatch is for --slurm".to_string());
    }
    if !args.setup.is_empty() {
        return Err("--setup is for --slurm; with --k8s, put the setup in the image".to_string());
    }
    if !args.mount.starts_with('/') {
        return Err(format!("--mount `{}` must be an absolute path", args.mount));
    }
    let name = k8s_name(
        &args
            .name
            .clone()
            .unwrap_or_else(|| format!("salient-{}", plan.experiment)),
    )?;
    let pvc = k8s_name(&args.pvc)
        .map_err(|_| format!("--pvc `{}` is not a Kubernetes name", args.pvc))?;
    let deadline = match &args.time {
        Some(t) => Some(slurm_time_seconds(t)?),
        None => None,
    };
    let mem = match &args.mem {
        Some(m) => {
            let (num, unit) = parse_mem(m)?;
            Some(format!("{num}{unit}i"))
        }
        None => None,
    };
    if args.cpus == Some(0) {
        return Err("--cpus must be at least 1".to_string());
    }
    let argv = run_argv(args, plan, n);
    let command = argv.iter().map(|w| y(w)).collect::<Vec<_>>().join(", ");

    let mut s = String::new();
    s += &format!(
        "# Written by `salient plan --k8s` for experiment {}: {} run(s) of {} as an Indexed Job of\n",
        plan.experiment, plan.runs, plan.spec
    );
    s +=
        &format!("# {n} completion(s), at most {k} at once; salient reads JOB_COMPLETION_INDEX.\n");
    s += &format!(
        "# The pods mount the ReadWriteMany claim {pvc} at {} and work there: the spec, its data and\n",
        args.mount
    );
    s +=
        "# the output folder are on it (relative paths are under it). Create the claim, copy the\n";
    s += "# spec and data onto it, then:  kubectl apply -f THIS_FILE\n";
    s += &format!(
        "# When it is complete (kubectl wait --for=condition=complete job/{name} --timeout=-1s), draw\n"
    );
    s += &format!(
        "# the report from the shared folder: {} report {}\n",
        args.salient, plan.out
    );
    s += "# backoffLimitPerIndex (Kubernetes 1.29+) keeps a failed index from stopping the others.\n";
    s += "apiVersion: batch/v1\n";
    s += "kind: Job\n";
    s += "metadata:\n";
    s += &format!("  name: {}\n", y(&name));
    s += "  labels:\n";
    s += "    app.kubernetes.io/name: salient\n";
    s += &format!(
        "    salient/experiment: {}\n",
        y(&k8s_name(&plan.experiment).unwrap_or_else(|_| "experiment".to_string()))
    );
    s += "spec:\n";
    s += "  completionMode: Indexed\n";
    s += &format!("  completions: {n}\n");
    s += &format!("  parallelism: {k}\n");
    s += "  backoffLimitPerIndex: 1\n";
    s += "  template:\n";
    s += "    metadata:\n";
    s += "      labels:\n";
    s += "        app.kubernetes.io/name: salient\n";
    s += "    spec:\n";
    s += "      restartPolicy: Never\n";
    if let Some(d) = deadline {
        s += &format!("      activeDeadlineSeconds: {d}\n");
    }
    s += "      containers:\n";
    s += "        - name: salient\n";
    s += &format!("          image: {}\n", y(image));
    s += &format!("          workingDir: {}\n", y(&args.mount));
    s += &format!("          command: [{command}]\n");
    let gpus = args.gpus.filter(|&g| g > 0);
    if args.cpus.is_some() || mem.is_some() || gpus.is_some() {
        s += "          resources:\n";
        if args.cpus.is_some() || mem.is_some() {
            s += "            requests:\n";
            if let Some(c) = args.cpus {
                s += &format!("              cpu: {}\n", y(&c.to_string()));
            }
            if let Some(m) = &mem {
                s += &format!("              memory: {}\n", y(m));
            }
        }
        if mem.is_some() || gpus.is_some() {
            s += "            limits:\n";
            if let Some(m) = &mem {
                s += &format!("              memory: {}\n", y(m));
            }
            if let Some(g) = gpus {
                s += &format!("              nvidia.com/gpu: {g}\n");
            }
        }
    }
    s += "          volumeMounts:\n";
    s += "            - name: shared\n";
    s += &format!("              mountPath: {}\n", y(&args.mount));
    s += "      volumes:\n";
    s += "        - name: shared\n";
    s += "          persistentVolumeClaim:\n";
    s += &format!(
        "            claimName: {}  # a ReadWriteMany claim (NFS, CephFS, ...)\n",
        y(&pvc)
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times() {
        assert_eq!(slurm_time_seconds("90"), Ok(5400));
        assert_eq!(slurm_time_seconds("10:30"), Ok(630));
        assert_eq!(slurm_time_seconds("04:00:00"), Ok(14400));
        assert_eq!(slurm_time_seconds("1-12"), Ok(129600));
        assert_eq!(slurm_time_seconds("2-00:30"), Ok(174600));
        assert_eq!(slurm_time_seconds("1-00:00:01"), Ok(86401));
        for bad in ["", "4h", "1:2:3:4", "-1", "1-", "0", "a-1"] {
            assert!(slurm_time_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("specs/a.exp"), "specs/a.exp");
        assert_eq!(sh_quote("my dir"), "'my dir'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("*-seed1"), "'*-seed1'");
    }
}
