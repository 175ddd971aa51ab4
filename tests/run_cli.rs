//! `salient run` end to end through the binary: exit codes, results.csv, checkpoint reuse.
use std::process::Command;

const SPEC: &str = r#"
experiment cli_tiny
data synthetic { shape = (1, 8, 8)  classes = 3  train = 192  test = 96  noise = 0.2  seed = 7 }
model net { conv(out = 4, kernel = 3, padding = 1) relu maxpool(size = 2) flatten dense(out = 3) }
train { optimizer = adam  lr = 1e-2  epochs = 8  batch = 32  seed = 0 }
regime standard
attack fgsm { eps = 0.1 }
"#;

fn salient() -> Command {
    Command::new(env!("CARGO_BIN_EXE_salient"))
}

#[test]
fn run_writes_results_and_reuses_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("tiny.exp");
    std::fs::write(&spec, SPEC).unwrap();
    let out = dir.path().join("out");
    let first = salient()
        .args([
            "run",
            spec.to_str().unwrap(),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "exit {:?}: {stderr}", first.status);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("trained 1 run(s), reused 0"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(
        csv.starts_with("run,model,regime,seed,metric,attack,eps,saliency,point,class,value"),
        "{csv}"
    );
    assert!(
        csv.contains("net-standard-seed0,net,standard,0,clean_accuracy"),
        "{csv}"
    );
    for f in [
        "training.csv",
        "spec.exp",
        "experiment.json",
        "runs/net-standard-seed0/model.safetensors",
        "runs/net-standard-seed0/run.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }

    let second = salient()
        .args([
            "run",
            spec.to_str().unwrap(),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("trained 0 run(s), reused 1"));
}

#[test]
fn run_rejects_an_invalid_spec_with_exit_1_and_a_missing_file_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.exp");
    std::fs::write(&spec, SPEC.replace("epochs = 8", "epochs = 0")).unwrap();
    let out = salient()
        .args([
            "run",
            spec.to_str().unwrap(),
            "--quiet",
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.path().join("o").exists(),
        "nothing is written for an invalid spec"
    );

    let out = salient()
        .args(["run", dir.path().join("nope.exp").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_reports_bad_data_with_exit_3_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    // A truncated image file: the header claims 60000 images.
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28];
    bytes.extend(vec![0u8; 100]);
    std::fs::write(data.join("train-images-idx3-ubyte"), bytes).unwrap();
    // Complete, valid label files, so that the images file is the one at fault.
    for (name, n) in [
        ("train-labels-idx1-ubyte", 60000u32),
        ("t10k-labels-idx1-ubyte", 10000),
    ] {
        let mut labels = vec![0, 0, 8, 1];
        labels.extend(n.to_be_bytes());
        labels.extend(vec![0u8; n as usize]);
        std::fs::write(data.join(name), labels).unwrap();
    }
    let spec = dir.path().join("bad_data.exp");
    std::fs::write(&spec, format!("experiment e\ndata idx {{ dir = \"{}\"  shape = (1, 28, 28)  classes = 10 }}\nmodel m {{ flatten dense(out = 10) }}\ntrain {{ epochs = 1 }}\nregime standard\n", data.display())).unwrap();
    let out = salient()
        .args([
            "run",
            spec.to_str().unwrap(),
            "--quiet",
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("train-images-idx3-ubyte"), "{stderr}");
}

#[test]
fn run_only_selects_runs_and_keeps_the_rows_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("two.exp");
    std::fs::write(
        &spec,
        SPEC.replace("regime standard", "regime standard\nregime sgt { k = 0.5 }")
            .replace("epochs = 8", "epochs = 2"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = |only: &str| {
        salient()
            .args(["run", spec.to_str().unwrap(), "--quiet", "--out"])
            .arg(&out)
            .args(["--only", only])
            .output()
            .unwrap()
    };
    let runs_in = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        let mut ids: Vec<String> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        ids.dedup();
        ids
    };

    // The second run of the spec first: only it is trained and written.
    // `--only` takes exact ids or glob patterns (a bare `sgt` is not a substring match).
    let sgt = run("*-sgt-*");
    assert!(
        sgt.status.success(),
        "{}",
        String::from_utf8_lossy(&sgt.stderr)
    );
    assert!(String::from_utf8_lossy(&sgt.stdout).contains("trained 1 run(s), reused 0"));
    assert_eq!(runs_in("results.csv"), ["net-sgt-seed0"]);
    let sgt_rows = std::fs::read_to_string(out.join("results.csv")).unwrap();

    // Then the first: the sgt rows are kept unchanged, and the rows follow the spec's order.
    let std_run = run("net-standard-seed0");
    assert!(std_run.status.success());
    assert_eq!(
        runs_in("results.csv"),
        ["net-standard-seed0", "net-sgt-seed0"]
    );
    assert_eq!(
        runs_in("training.csv"),
        ["net-standard-seed0", "net-sgt-seed0"]
    );
    let both = std::fs::read_to_string(out.join("results.csv")).unwrap();
    for line in sgt_rows.lines().skip(1) {
        assert!(both.contains(line), "lost row {line}");
    }

    // A pattern that matches nothing is a usage error naming the runs; nothing is touched.
    let none = run("trades");
    assert_eq!(none.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("trades") && stderr.contains("net-standard-seed0, net-sgt-seed0"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("results.csv")).unwrap(),
        both
    );
}
