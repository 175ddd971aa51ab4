//! `salient report DIR` on the fixture run directory (tests/fixtures/report): exit status,
//! files written, messages; and the browser check of the page when chromium is installed.
use std::path::{Path, PathBuf};
use std::process::Command;

fn salient() -> Command {
    Command::new(env!("CARGO_BIN_EXE_salient"))
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else if e
            .path()
            .extension()
            .is_some_and(|x| x == "csv" || x == "npy" || x == "exp")
        {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

fn fixture_copy(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("salient-report-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report"),
        &dir,
    );
    dir
}

#[test]
fn report_subcommand_writes_the_whole_report() {
    let dir = fixture_copy("ok");
    let out = salient().arg("report").arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "robust_accuracy",
        "tradeoff",
        "saliency_gradient",
        "saliency_integrated_gradients",
        "masking",
        "deletion_insertion",
        "randomization",
        "class_accuracy",
        "training",
    ] {
        for ext in ["png", "svg"] {
            let f = dir.join(format!("figures/{name}.{ext}"));
            assert!(
                f.is_file() && f.metadata().unwrap().len() > 1000,
                "{} missing or tiny",
                f.display()
            );
        }
        assert!(stdout.contains(&format!("figure {name}")), "{stdout}");
    }
    for f in ["index.html", "summary.csv", "summary.md"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert!(
        stdout.contains("report: ") && stdout.contains("index.html"),
        "{stdout}"
    );
    // --quiet prints nothing and regenerates the same PNGs.
    let before = std::fs::read(dir.join("figures/robust_accuracy.png")).unwrap();
    let quiet = salient()
        .args(["report", "--quiet"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(quiet.status.success() && quiet.stdout.is_empty());
    assert_eq!(
        before,
        std::fs::read(dir.join("figures/robust_accuracy.png")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_subcommand_explains_bad_directories() {
    let missing =
        std::env::temp_dir().join(format!("salient-report-cli-none-{}", std::process::id()));
    let out = salient().arg("report").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
    std::fs::create_dir_all(&missing).unwrap();
    let out = salient().arg("report").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither results.csv nor training.csv") && err.contains("salient run"),
        "{err}"
    );
    std::fs::remove_dir_all(&missing).unwrap();
}

/// scripts/browser-test.sh in headless chromium: every image decodes, no console errors, a
/// screenshot is written. Skipped (passes with a note) when chromium is not installed.
#[test]
fn report_page_loads_in_headless_chromium() {
    let has_chromium = ["chromium", "chromium-browser"].iter().any(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !has_chromium {
        eprintln!("skipped: chromium is not installed (apt-get install -y chromium)");
        return;
    }
    let dir = fixture_copy("browser");
    assert!(salient()
        .args(["report", "--quiet"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    let shot = dir.join("screenshot.png");
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/browser-test.sh"))
        .arg(&dir)
        .arg(&shot)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("IMAGES 9") && stdout.contains("BROKEN 0") && stdout.contains("ERRORS 0"),
        "{stdout}"
    );
    assert!(
        shot.metadata().unwrap().len() > 10_000,
        "screenshot too small"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
