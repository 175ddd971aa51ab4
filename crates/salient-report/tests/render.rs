//! Rendering the fixture report (tests/fixtures/report: a made-up 3-regime x 2-seed run with
//! attacks, saliency metrics, curves and maps of 4 MNIST digits): every figure exists at its
//! pixel size, is not blank, and renders byte-identically twice; missing data skips figures.
use salient_report::{generate, FigureStatus};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/report")
}

/// A fresh copy of the fixture (reports are written into the run directory).
fn copy_fixture(tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("salient-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    copy_dir(&fixture(), &dst);
    dst
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

/// Decode an RGB(A) 8-bit PNG: (width, height, luminance per pixel).
fn decode(path: &Path) -> (u32, u32, Vec<f64>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "{}: expected colour, got {:?}",
        path.display(),
        info.color_type
    );
    let lum = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect();
    (info.width, info.height, lum)
}

fn rendered(figures: &[FigureStatus]) -> Vec<&FigureStatus> {
    figures.iter().filter(|f| f.outcome.is_ok()).collect()
}

#[test]
fn every_figure_renders_at_its_size_and_is_not_blank() {
    let dir = copy_fixture("figures");
    let out = generate(&dir).unwrap();
    let names: Vec<&str> = rendered(&out.figures)
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "robust_accuracy",
            "tradeoff",
            "saliency_gradient",
            "saliency_integrated_gradients",
            "masking",
            "deletion_insertion",
            "randomization",
            "class_accuracy",
            "training"
        ]
    );
    for f in rendered(&out.figures) {
        let r = f.outcome.as_ref().unwrap();
        let (w, h, lum) = decode(&r.png);
        assert_eq!((w, h), r.size, "{}", f.name);
        assert!(
            w >= 500 && h >= 300,
            "{}: {w}x{h} is too small to read",
            f.name
        );
        let mean = lum.iter().sum::<f64>() / lum.len() as f64;
        let var = lum.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / lum.len() as f64;
        let inked = lum.iter().filter(|&&v| v < 200.0).count() as f64 / lum.len() as f64;
        // A blank white canvas has variance 0; axes and text alone give a few hundred.
        assert!(
            var > 300.0,
            "{}: pixel variance {var:.1} looks blank",
            f.name
        );
        assert!(
            inked > 0.01,
            "{}: only {:.2}% of pixels drawn",
            f.name,
            inked * 100.0
        );
        let svg = std::fs::read_to_string(&r.svg).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}: not an SVG document",
            f.name
        );
        assert!(svg.contains("<text"), "{}: the SVG has no text", f.name);
        assert!(
            !svg.contains("data:png;"),
            "{}: embedded bitmaps need a real MIME type",
            f.name
        );
    }
    // The saliency grids embed their heatmaps as PNG images, not one <rect> per pixel.
    let grid = std::fs::read_to_string(dir.join("figures/saliency_gradient.svg")).unwrap();
    assert!(
        grid.matches("data:image/png;base64,").count() >= 4 * 4,
        "image + 3 regimes per row, 4 rows"
    );
    assert!(grid.len() < 600_000, "saliency SVG is {} bytes", grid.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn golden_report_renders_identically_twice() {
    let a = copy_fixture("golden-a");
    let b = copy_fixture("golden-b");
    let out_a = generate(&a).unwrap();
    let first: Vec<Vec<u8>> = rendered(&out_a.figures)
        .iter()
        .map(|f| std::fs::read(&f.outcome.as_ref().unwrap().png).unwrap())
        .collect();
    // Again in the same directory (over the previous output) and in another directory.
    let again = generate(&a).unwrap();
    let out_b = generate(&b).unwrap();
    for out in [&again, &out_b] {
        let pngs: Vec<Vec<u8>> = rendered(&out.figures)
            .iter()
            .map(|f| std::fs::read(&f.outcome.as_ref().unwrap().png).unwrap())
            .collect();
        assert_eq!(pngs.len(), first.len());
        for (i, (x, y)) in first.iter().zip(&pngs).enumerate() {
            assert!(
                x == y,
                "figure {} differs between renders",
                out.figures[i].name
            );
        }
    }
    for file in ["summary.csv", "summary.md", "index.html"] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

/// Mean and sample std, computed here from the fixture's text, independently of the crate.
fn by_hand(results: &str, regime: &str, metric: &str, attack: &str, eps: &str) -> (f64, f64) {
    let vals: Vec<f64> = results
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|c| {
            c[2] == regime
                && c[4] == metric
                && c[5] == attack
                && c[6] == eps
                && c[8].is_empty()
                && c[9].is_empty()
        })
        .map(|c| c[10].parse().unwrap())
        .collect();
    assert_eq!(vals.len(), 2, "two seeds");
    let m = (vals[0] + vals[1]) / 2.0;
    (m, (vals[0] - vals[1]).abs() / 2f64.sqrt())
}

#[test]
fn summary_tables_hold_mean_and_std_over_seeds() {
    let dir = copy_fixture("summary");
    generate(&dir).unwrap();
    let results = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    for (regime, metric, attack, eps) in [
        ("standard", "clean_accuracy", "", ""),
        ("fgsm_rs", "robust_accuracy", "pgd", "0.3"),
        ("sgt", "robust_accuracy", "worst_case", "0.1"),
    ] {
        let (m, s) = by_hand(&results, regime, metric, attack, eps);
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("cnn,{regime},,{metric},{attack},{eps},,")))
            .unwrap_or_else(|| panic!("{regime} {metric} {attack} {eps} missing:\n{csv}"));
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols[7], "2");
        assert!(
            (cols[8].parse::<f64>().unwrap() - m).abs() < 1e-12,
            "{line}"
        );
        assert!(
            (cols[9].parse::<f64>().unwrap() - s).abs() < 1e-12,
            "{line}"
        );
    }
    // Curves and per-class rows are not summary metrics.
    assert!(!csv.contains("masking_curve") && !csv.contains("class_accuracy"));
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let (m, s) = by_hand(&results, "standard", "clean_accuracy", "", "");
    let cell = format!("{:.2} ± {:.2}", m * 100.0, s * 100.0);
    let row = md
        .lines()
        .find(|l| l.starts_with("| clean accuracy (%) |"))
        .unwrap();
    assert!(row.contains(&cell), "{row} should contain {cell}");
    assert!(
        md.contains("| metric | standard (n=2) | sgt (n=2) | fgsm_rs (n=2) |"),
        "{md}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn index_is_one_self_contained_page() {
    let dir = copy_fixture("index");
    let out = generate(&dir).unwrap();
    let html = std::fs::read_to_string(&out.index).unwrap();
    assert_eq!(
        html.matches("<img src=\"data:image/png;base64,").count(),
        rendered(&out.figures).len()
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network references"
    );
    assert!(!html.contains("<script"), "no scripts");
    assert!(
        html.contains("experiment quickstart"),
        "the spec text is on the page"
    );
    assert!(html.contains("<h1>quickstart</h1>"));
    assert!(html.contains("<table>") && html.contains("robust accuracy (%): worst_case, ε = 0.3"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn absent_data_skips_figures_and_says_why() {
    let dir = std::env::temp_dir().join(format!("salient-report-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Only training.csv and a clean accuracy: no attacks, no saliency, no maps.
    let training = std::fs::read_to_string(fixture().join("training.csv")).unwrap();
    std::fs::write(dir.join("training.csv"), training).unwrap();
    std::fs::write(dir.join("results.csv"), "run,model,regime,seed,metric,attack,eps,saliency,point,class,value\ncnn-standard-seed0,cnn,standard,0,clean_accuracy,,,,,,0.98\n").unwrap();
    let out = generate(&dir).unwrap();
    let status: Vec<(&str, bool)> = out
        .figures
        .iter()
        .map(|f| (f.name.as_str(), f.outcome.is_ok()))
        .collect();
    assert_eq!(
        status,
        [
            ("robust_accuracy", false),
            ("tradeoff", false),
            ("saliency", false),
            ("masking", false),
            ("deletion_insertion", false),
            ("randomization", false),
            ("roar_kar", false),
            ("accuracy_interpretability", false),
            ("class_accuracy", false),
            ("training", true)
        ]
    );
    let html = std::fs::read_to_string(&out.index).unwrap();
    assert!(
        html.contains("Skipped: no robust_accuracy rows in results.csv."),
        "{html}"
    );
    assert!(html.contains("spec.exp is not in the directory"));
    assert!(!dir.join("figures/robust_accuracy.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Kim et al.'s experiment by hand: a standard run and Linf-trained runs at two eps, each with
/// ROAR / KAR curves (two retraining seeds' mean and std), the random baseline, the scores and
/// connectedness of `gradient`.
#[test]
fn retraining_figures_and_scores_from_hand_made_rows() {
    let dir = std::env::temp_dir().join(format!("salient-report-roar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv =
        String::from("run,model,regime,seed,metric,attack,eps,saliency,point,class,value\n");
    let runs = [
        ("cnn-standard-seed0", "standard", "", 0.0, 0.99, 0.0),
        (
            "cnn-at_eps0.1-seed0",
            "at[eps=0.1]",
            "linf",
            0.1,
            0.98,
            0.05,
        ),
        (
            "cnn-at_eps0.3-seed0",
            "at[eps=0.3]",
            "linf",
            0.3,
            0.93,
            0.15,
        ),
    ];
    for (run, regime, norm, eps, acc, gain) in runs {
        let head = format!("{run},cnn,{regime},0");
        csv += &format!("{head},clean_accuracy,,,,,,{acc}\n");
        csv += &format!("{head},train_eps,{norm},{eps},,,,{eps}\n");
        csv += &format!("{head},connectedness,,,gradient,,,{}\n", 0.5 + gain);
        for k in [10, 30, 50, 70, 90] {
            let random = acc - 0.004 * k as f64;
            let roar = random - gain * (1.0 - k as f64 / 100.0);
            let kar = 0.1 + 0.009 * k as f64 + gain;
            for (metric, value) in [
                ("roar", roar),
                ("roar_std", 0.01),
                ("roar_random", random),
                ("roar_random_std", 0.005),
                ("kar", kar.min(acc)),
                ("kar_std", 0.02),
                ("kar_random", 0.1 + 0.009 * k as f64),
                ("kar_random_std", 0.01),
            ] {
                csv += &format!("{head},{metric},,,gradient,{k},,{value}\n");
            }
        }
        csv += &format!("{head},roar_score,,,gradient,,,{}\n", gain * 0.5);
        csv += &format!("{head},kar_score,,,gradient,,,{gain}\n");
    }
    std::fs::write(dir.join("results.csv"), csv).unwrap();
    let out = generate(&dir).unwrap();
    for name in ["roar_kar", "accuracy_interpretability"] {
        let f = out.figures.iter().find(|f| f.name == name).unwrap();
        let r = f
            .outcome
            .as_ref()
            .unwrap_or_else(|why| panic!("{name} skipped: {why}"));
        let (w, h, lum) = decode(&r.png);
        assert_eq!((w, h), r.size, "{name}");
        let dark = lum.iter().filter(|&&l| l < 200.0).count();
        assert!(dark > 1000, "{name} is nearly blank ({dark} dark pixels)");
    }
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let saliency = md.split("## Saliency").nth(1).expect("a saliency table");
    for label in [
        "| connectedness: gradient |",
        "| ROAR score (% points below random): gradient |",
        "| KAR score (% points above random): gradient |",
    ] {
        assert!(saliency.contains(label), "{label} not in\n{md}");
    }
    // Per-percent curves and the training eps are not summary rows.
    let summary = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    for metric in [",roar,", ",roar_random,", ",kar_std,", ",train_eps,"] {
        assert!(!summary.contains(metric), "{metric} in\n{summary}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("salient-report-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("maps/run0")).unwrap();
    let e = generate(&dir).unwrap_err().to_string();
    assert!(e.contains("results.csv does not exist"), "{e}");
    std::fs::write(
        dir.join("results.csv"),
        "run,model,regime,seed,metric,value\nr,m,s,0,clean_accuracy,0.5\n",
    )
    .unwrap();
    std::fs::write(dir.join("maps/images.npy"), b"not an npy file").unwrap();
    std::fs::write(dir.join("maps/run0/gradient.npy"), b"\x93NUMPY").unwrap();
    let e = generate(&dir).unwrap_err().to_string();
    assert!(e.contains("images.npy") && e.contains("magic"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_runs_are_listed_in_a_highlighted_section() {
    let dir = std::env::temp_dir().join(format!("salient-report-failed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let csv = "run,model,regime,seed,metric,attack,eps,saliency,point,class,value\n\
               m-standard-seed0,m,standard,0,clean_accuracy,,,,,,0.9\n\
               m-big_lr-seed0,m,big_lr,0,failed,,,,,,1\n";
    std::fs::write(dir.join("results.csv"), csv).unwrap();
    generate(&dir).unwrap();
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        html.contains("<h2>Failed runs</h2>"),
        "no failed-runs section"
    );
    assert!(html.contains("<code>m-big_lr-seed0</code> (big_lr)"));
    assert!(html.contains("href=\"#failed\""));
    assert!(!html.contains("<code>m-standard-seed0</code>"));
    // Without failed rows there is no such section.
    let csv = "run,model,regime,seed,metric,attack,eps,saliency,point,class,value\n\
               m-standard-seed0,m,standard,0,clean_accuracy,,,,,,0.9\n";
    std::fs::write(dir.join("results.csv"), csv).unwrap();
    generate(&dir).unwrap();
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(!html.contains("Failed runs"));
    let _ = std::fs::remove_dir_all(&dir);
}
