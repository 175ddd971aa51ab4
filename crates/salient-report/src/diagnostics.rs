//! The "Evaluation diagnostics" section of the report: the warnings `salient run` wrote to
//! `diagnostics.csv` (one row per finding of the engine's sanity checks: a black-box attack
//! beating the white-box ones, a single-step attack far weaker or stronger than the
//! multi-step ones, accuracy rising with eps, a budget that reaches the gray image without
//! bringing accuracy near zero, APGD far below PGD, a model that is not deterministic in eval
//! mode; docs/attacks.md, "Diagnostics"). The report reads the file only, never the engine.
//!
//! Columns: `run,check,attacks,norm,eps,value,reference,statistic,threshold,message`.
use crate::error::ReportError;
use crate::html::escape;
use serde::Deserialize;
use std::path::Path;

/// One row of `diagnostics.csv`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Diagnostic {
    pub run: String,
    pub check: String,
    #[serde(default)]
    pub attacks: String,
    #[serde(default)]
    pub norm: Option<String>,
    #[serde(default)]
    pub eps: Option<f64>,
    pub value: f64,
    pub reference: f64,
    pub statistic: f64,
    pub threshold: f64,
    pub message: String,
}

/// The rows of `dir/diagnostics.csv`; `None` when the directory has no such file (written by
/// an older `salient run`, or by hand).
pub fn load(dir: &Path) -> Result<Option<Vec<Diagnostic>>, ReportError> {
    let path = dir.join("diagnostics.csv");
    if !path.is_file() {
        return Ok(None);
    }
    let err = |e: csv::Error| ReportError::Csv {
        path: path.clone(),
        reason: e.to_string(),
    };
    let mut r = csv::Reader::from_path(&path).map_err(err)?;
    let rows = r
        .deserialize()
        .collect::<Result<Vec<Diagnostic>, _>>()
        .map_err(err)?;
    Ok(Some(rows))
}

/// One line per finding for the terminal and the page's notes.
pub fn summary_line(rows: &[Diagnostic]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut runs: Vec<&str> = rows.iter().map(|d| d.run.as_str()).collect();
    runs.dedup();
    Some(format!(
        "{} evaluation diagnostic warning(s) for {} run(s) ({}): see diagnostics.csv",
        rows.len(),
        runs.len(),
        runs.join(", ")
    ))
}

/// CSS of the section (appended to the page's style).
pub const STYLE: &str = ".diag{border:2px solid #c9302c;background:#fdf2f2;padding:4px 16px 12px;margin:1em 0}.diag h2{color:#a94442;border-bottom-color:#e4b9b9}.diag td{white-space:normal;text-align:left}.diag-ok{color:#3c763d;background:#dff0d8;border:1px solid #c3e0b5;padding:8px 12px}";

/// The section's HTML: a highlighted box with one table row per finding, a short "all checks
/// passed" line when the file has no rows, nothing when there is no file.
pub fn section_html(rows: Option<&[Diagnostic]>) -> String {
    let Some(rows) = rows else {
        return String::new();
    };
    if rows.is_empty() {
        return "<h2 id=\"diagnostics\">Evaluation diagnostics</h2>\n<p class=\"diag-ok\">No warnings: every evaluation sanity check passed (<a href=\"diagnostics.csv\">diagnostics.csv</a>).</p>\n".to_string();
    }
    let mut h = String::from(
        "<section class=\"diag\">\n<h2 id=\"diagnostics\">Evaluation diagnostics</h2>\n",
    );
    h.push_str(&format!(
        "<p><strong>{} warning(s)</strong>: some robust-accuracy numbers below may not mean what they seem (Carlini et al. 2019; Athalye et al. 2018; Croce and Hein 2020). Also in <a href=\"diagnostics.csv\">diagnostics.csv</a>.</p>\n",
        rows.len()
    ));
    h.push_str("<table>\n<thead><tr><th>run</th><th>check</th><th>attacks</th><th>eps</th><th>what was seen</th></tr></thead>\n<tbody>\n");
    for d in rows {
        let eps = match (&d.norm, d.eps) {
            (Some(n), Some(e)) => format!("{n} {e}"),
            (None, Some(e)) => format!("{e}"),
            _ => String::new(),
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&d.run),
            escape(&d.check),
            escape(&d.attacks),
            escape(&eps),
            escape(&d.message)
        ));
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "run,check,attacks,norm,eps,value,reference,statistic,threshold,message\n\
cnn-fgsm_rs-seed0,single_step_gap,fgsm vs pgd,linf,0.3,0.89,0.02,0.08,0.25,fgsm leaves <89.0%>\n\
cnn-x,eval_nondeterministic,,,,0.3,0.0,0.3,0.0001,\"logits differ, 4 predictions changed\"\n";

    #[test]
    fn reads_the_file_and_highlights_every_finding() {
        let dir = tempfile_dir();
        assert_eq!(load(&dir).unwrap(), None);
        assert_eq!(section_html(None), "");
        std::fs::write(dir.join("diagnostics.csv"), CSV).unwrap();
        let rows = load(&dir).unwrap().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].check, "single_step_gap");
        assert_eq!(rows[0].eps, Some(0.3));
        assert_eq!(rows[1].norm, None);
        assert_eq!(rows[1].eps, None);
        assert_eq!(rows[1].message, "logits differ, 4 predictions changed");
        let h = section_html(Some(&rows));
        assert!(h.starts_with("<section class=\"diag\">"));
        assert!(h.contains("<strong>2 warning(s)</strong>"));
        assert!(h.contains("<td>linf 0.3</td>"));
        assert!(h.contains("fgsm leaves &lt;89.0%&gt;"), "{h}");
        assert!(summary_line(&rows)
            .unwrap()
            .starts_with("2 evaluation diagnostic warning(s) for 2 run(s)"));
        // Header only: the checks ran and passed.
        std::fs::write(dir.join("diagnostics.csv"), CSV.lines().next().unwrap()).unwrap();
        let rows = load(&dir).unwrap().unwrap();
        assert!(rows.is_empty());
        assert!(section_html(Some(&rows)).contains("No warnings"));
        assert_eq!(summary_line(&rows), None);
        // A malformed file is an error naming it.
        std::fs::write(dir.join("diagnostics.csv"), "run,check\nx,y,z\n").unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("diagnostics.csv"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "salient-report-diag-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
