//! `salient check`: exit codes (0 valid, 1 errors, 2 unreadable file / usage), the summary of a
//! valid file, and `--format json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn salient(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salient"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run salient")
}

fn tmp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("salient-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn valid_specs_exit_0_with_a_summary() {
    let specs: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("specs"))
        .expect("specs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "exp"))
        .map(|p| p.display().to_string())
        .collect();
    let args: Vec<&str> = std::iter::once("check")
        .chain(specs.iter().map(|s| s.as_str()))
        .collect();
    let out = salient(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("quickstart.exp: ok"), "{stdout}");
    assert!(stdout.contains("215,370 params"), "{stdout}");
    assert!(stdout.contains("attack.fgsm.eps = [0.1, 0.3]"), "{stdout}");
    assert!(
        stdout.contains("3 training runs, 15 attack evaluations"),
        "{stdout}"
    );
    // The quickstart CNN's largest run: weights 215,370 x 4 bytes = 841.3 KiB.
    assert!(
        stdout.contains("memory (estimate, largest run cnn-standard-seed0): ")
            && stdout.contains("weights 841.3 KiB"),
        "{stdout}"
    );
}

#[test]
fn errors_exit_1_and_every_error_is_reported() {
    let bad = tmp_file(
        "bad.exp",
        "experiment bad\ndata mnist { std = (0) }\nmodel m { conv(out = 4, kernel = 3) dense(out = 10) }\n\
         train { model = n  epochs = -1 }\nregime sgt { k = 2 }\natack pgd { eps = 0.3 }\n",
    );
    let out = salient(&["check", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for code in [
        "salient::E021",
        "salient::E060",
        "salient::E050",
        "salient::E010",
    ] {
        assert!(stderr.contains(code), "{code} missing from:\n{stderr}");
    }
    assert!(stderr.contains("did you mean `attack`?"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour when not a terminal");
}

#[test]
fn json_lists_diagnostics_with_positions() {
    let bad = tmp_file("json.exp", "experiment j\ndata mnist\nmodel m { flatten dense(out = 10) }\ntrain { epochs = 0 }\nregime standard\n");
    let out = salient(&["check", "--format", "json", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let diags = v.as_array().expect("an array");
    assert_eq!(diags.len(), 1, "{v:#}");
    let d = &diags[0];
    assert_eq!(d["code"], "salient::E021");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 4);
    assert_eq!(d["column"], 18);
    assert!(d["message"]
        .as_str()
        .expect("message")
        .contains("`epochs` must be between 1"));
    assert!(d["file"].as_str().expect("file").ends_with("json.exp"));
    assert!(d.get("help").is_some());
}

#[test]
fn json_of_a_valid_file_is_an_empty_array() {
    let out = salient(&["check", "--format", "json", "specs/quickstart.exp"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v, serde_json::json!([]));
}

#[test]
fn missing_file_exits_2() {
    let out = salient(&["check", "specs/quickstart.exp", "does/not/exist.exp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read does/not/exist.exp"));
    // Even in JSON mode, and the readable file is still checked.
    let out = salient(&["check", "--format", "json", "does/not/exist.exp"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v[0]["code"], "salient::io");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(salient(&["check"]).status.code(), Some(2));
    assert_eq!(
        salient(&["check", "--format", "xml", "specs/quickstart.exp"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn warnings_alone_exit_0() {
    let warn = tmp_file(
        "warn.exp",
        "experiment w\ndata mnist\nmodel m { flatten dense(out = 10) }\ntrain { epochs = 1 }\nregime standard\nattack fgsm { eps = 0.9 }\n",
    );
    let out = salient(&["check", warn.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("salient::W001"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 warning)"));
}

// Issue #16, "what check accepts, run runs": inputs check used to accept and run then refused
// (or check itself panicked on). Each must now be a check error: exit 1, the code on stderr,
// and no panic (exit 101).

/// `experiment t`, a small synthetic data set, `model`, `train`, `regime standard`, `extra`.
fn hostile_spec(data: &str, model: &str, train: &str, extra: &str) -> String {
    format!("experiment t\n{data}\nmodel {model}\ntrain {{ {train} }}\nregime standard\n{extra}\n")
}

const SMALL_DATA: &str =
    "data synthetic { shape = (1, 8, 8)  classes = 10  train = 64  test = 32 }";

/// Check `text` through the binary and assert exit 1 with `code` reported.
fn check_rejects(name: &str, text: &str, code: &str) {
    let path = tmp_file(name, text);
    let out = salient(&["check", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    assert!(stderr.contains(code), "{name}: expected {code} in {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
}

#[test]
fn a_model_name_of_65536_characters_is_exit_1_not_a_panic() {
    let name = "m".repeat(65_536);
    let text = hostile_spec(
        SMALL_DATA,
        &format!("{name} {{ flatten dense(out = 10) }}"),
        "epochs = 1",
        "",
    );
    check_rejects("long_name.exp", &text, "salient::E002");
}

#[test]
fn a_300_character_model_name_is_rejected() {
    let name = "n".repeat(300);
    let text = hostile_spec(
        SMALL_DATA,
        &format!("{name} {{ flatten dense(out = 10) }}"),
        "epochs = 1",
        "",
    );
    check_rejects("name300.exp", &text, "salient::E002");
}

#[test]
fn an_unknown_string_escape_is_rejected() {
    let data = "data idx { dir = \"data/\\q\"  shape = (1, 8, 8)  classes = 10 }";
    let text = hostile_spec(data, "m { flatten dense(out = 10) }", "epochs = 1", "");
    check_rejects("escape.exp", &text, "salient::E001");
}

#[test]
fn a_byte_order_mark_at_the_start_is_accepted() {
    let text = format!(
        "\u{feff}{}",
        hostile_spec(
            SMALL_DATA,
            "m { flatten dense(out = 10) }",
            "epochs = 1",
            ""
        )
    );
    let path = tmp_file("bom.exp", &text);
    let out = salient(&["check", path.to_str().expect("utf-8")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn values_run_refuses_are_check_errors() {
    let m10 = "m { flatten dense(out = 10) }";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "lr.exp",
            hostile_spec(SMALL_DATA, m10, "epochs = 1  lr = 1e308", ""),
            "salient::E021",
        ),
        (
            "classes.exp",
            hostile_spec(
                "data synthetic { shape = (1, 8, 8)  classes = 100000 }",
                "m { flatten dense(out = 100000) }",
                "epochs = 1",
                "",
            ),
            "salient::E021",
        ),
        (
            "idx3.exp",
            hostile_spec(
                "data idx { dir = \"data/x\"  shape = (3, 32, 32)  classes = 10 }",
                m10,
                "epochs = 1",
                "",
            ),
            "salient::E022",
        ),
        (
            "dlr2.exp",
            hostile_spec(
                "data synthetic { shape = (1, 8, 8)  classes = 2 }",
                "m { flatten dense(out = 2) }",
                "epochs = 1",
                "attack apgd { eps = 0.1  loss = dlr }",
            ),
            "salient::E022",
        ),
        (
            "sens_residual.exp",
            hostile_spec(
                SMALL_DATA,
                "r { conv(out = 4, kernel = 3, padding = 1) relu residual(body = (conv(out = 4, kernel = 3, padding = 1), relu)) flatten dense(out = 10) }",
                "epochs = 1",
                "regime sensitivity as s { layers = (relu2) }",
            ),
            "salient::E051",
        ),
        (
            "params10b.exp",
            hostile_spec(
                SMALL_DATA,
                "big { flatten dense(out = 100000) relu dense(out = 100000) relu dense(out = 10) }",
                "epochs = 1",
                "",
            ),
            "salient::E072",
        ),
        (
            "input4096.exp",
            hostile_spec(
                "data synthetic { shape = (1, 4096, 4096)  classes = 10 }",
                m10,
                "epochs = 1  batch = 1",
                "eval { batch = 1 }",
            ),
            "salient::E072",
        ),
        (
            "activations.exp",
            hostile_spec(
                "data synthetic { shape = (3, 128, 128)  classes = 10  train = 4096  test = 32 }",
                "c { conv(out = 32, kernel = 3, padding = 1) relu conv(out = 32, kernel = 3, padding = 1) maxpool(size = 4) flatten dense(out = 10) }",
                "epochs = 1  batch = 4096",
                "",
            ),
            "salient::E072",
        ),
    ];
    for (name, text, code) in &cases {
        check_rejects(name, text, code);
    }
}

#[test]
fn run_refuses_a_spec_over_the_memory_limit_before_allocating() {
    // Was: "memory allocation of N bytes failed", exit 134, after generating the data.
    let text = hostile_spec(
        "data synthetic { shape = (1, 4096, 4096)  classes = 10 }",
        "m { flatten dense(out = 10) }",
        "epochs = 1  batch = 1",
        "eval { batch = 1 }",
    );
    let path = tmp_file("run_memory.exp", &text);
    let out_dir = path.with_extension("out");
    let out = salient(&[
        "run",
        path.to_str().expect("utf-8"),
        "--out",
        out_dir.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("salient::E072"), "{stderr}");
}

#[test]
fn attacks_without_robust_accuracy_warn_with_help() {
    let text = hostile_spec(
        SMALL_DATA,
        "m { flatten dense(out = 10) }",
        "epochs = 1",
        "attack pgd { eps = 0.1 }\nmetrics { clean_accuracy }",
    );
    let path = tmp_file("no_robust.exp", &text);
    let out = salient(&["check", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("salient::W008"), "{stderr}");
    assert!(stderr.contains("add `robust_accuracy`"), "{stderr}");
}
