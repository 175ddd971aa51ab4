//! `index.html`: one self-contained page (no network, no scripts): the spec text, the summary
//! table and every figure, PNGs inlined as base64 `data:` URIs; the SVG and PNG files beside it
//! are linked for download. Skipped figures are listed with the reason.
use crate::base64;
use crate::figures::Rendered;
use crate::table::Summary;

/// A figure as the page shows it.
pub struct PageFigure<'a> {
    pub name: &'a str,
    pub title: &'a str,
    pub caption: &'a str,
    /// The rendered files and the PNG's bytes, or why the figure is absent.
    pub outcome: Result<(&'a Rendered, &'a [u8]), &'a str>,
}

pub struct Page<'a> {
    pub experiment: &'a str,
    pub spec: Option<&'a str>,
    pub summary: &'a Summary,
    pub figures: Vec<PageFigure<'a>>,
    pub notes: &'a [String],
    /// The rows of `diagnostics.csv` (`None`: the directory has none).
    pub diagnostics: Option<&'a [crate::diagnostics::Diagnostic]>,
    /// AutoAttack's per-component breakdown (empty: no AutoAttack ran).
    pub breakdown: Vec<crate::breakdown::Breakdown>,
    /// (run id, regime label) of every run recorded as failed (`failed` rows).
    pub failed: Vec<(String, String)>,
}

/// The runs recorded as failed (a `failed` row: diverged, or its training or evaluation
/// failed), in the order of the rows, each once.
pub fn failed_runs(rows: &[salient_ir::results::ResultRow]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.metric == salient_ir::results::FAILED)
    {
        if !out.iter().any(|(id, _)| *id == r.run) {
            out.push((r.run.clone(), r.regime.clone()));
        }
    }
    out
}

/// A highlighted section listing the failed runs (empty when none failed).
fn failed_html(failed: &[(String, String)]) -> String {
    if failed.is_empty() {
        return String::new();
    }
    let mut h = String::from(
        "<section class=\"diag\" id=\"failed\">\n<h2>Failed runs</h2>\n<p>These runs diverged or failed and have no other results; the reason of each is in <code>runs/&lt;run id&gt;/failed.txt</code>, and a rerun of the spec trains them again.</p>\n<ul>\n",
    );
    for (id, regime) in failed {
        h.push_str(&format!(
            "<li><code>{}</code> ({})</li>\n",
            escape(id),
            escape(regime)
        ));
    }
    h.push_str("</ul>\n</section>\n");
    h
}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Inline `code` spans written with backticks in captions.
fn caption_html(s: &str) -> String {
    escape(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

const STYLE: &str = r#"
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;color:#1e1e1e;background:#fafafa;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:24px 32px 64px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.06)}
h1{font-size:1.8em;margin:.2em 0 .1em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666;margin:0 0 1em}nav a{margin-right:1em}
pre{background:#f4f4f4;border:1px solid #e2e2e2;padding:12px;overflow:auto;font-size:.85em;max-height:28em}
table{border-collapse:collapse;font-size:.92em;margin:.5em 0}th,td{border:1px solid #ddd;padding:5px 10px}
th{background:#f2f5f9;text-align:center}td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td:first-child{text-align:left;white-space:normal}
tbody tr:nth-child(even){background:#fbfbfb}
figure{margin:1.5em 0 2.5em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;max-width:60em;margin-top:.4em}figcaption .files{font-size:.85em;color:#777}
.skipped{color:#8a6d3b;background:#fcf8e3;border:1px solid #f3e3b5;padding:8px 12px}
code{background:#f1f1f1;padding:0 3px;border-radius:3px}
"#;

/// The page's HTML text.
pub fn render(page: &Page) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str(&format!(
        "<title>salient report: {}</title>\n<style>{STYLE}{}</style>\n</head>\n<body>\n<main>\n",
        escape(page.experiment),
        crate::diagnostics::STYLE
    ));
    h.push_str(&format!("<h1>{}</h1>\n<p class=\"sub\">salient report, regenerated from <code>results.csv</code>, <code>training.csv</code> and the saved saliency maps.</p>\n", escape(page.experiment)));
    h.push_str("<nav><a href=\"#summary\">Summary</a><a href=\"#figures\">Figures</a><a href=\"#spec\">Spec</a>");
    if !page.failed.is_empty() {
        h.push_str("<a href=\"#failed\">Failed runs</a>");
    }
    if page.diagnostics.is_some() {
        h.push_str("<a href=\"#diagnostics\">Diagnostics</a>");
    }
    h.push_str("</nav>\n");
    h.push_str(&failed_html(&page.failed));
    h.push_str(&crate::diagnostics::section_html(page.diagnostics));

    h.push_str("<h2 id=\"summary\">Summary</h2>\n");
    if page.summary.is_empty() {
        h.push_str("<p class=\"skipped\">No scalar metrics in results.csv for the tables the spec's <code>report { tables }</code> chose.</p>\n");
    } else {
        h.push_str(&summary_html(page.summary));
        h.push_str("<p class=\"sub\">Mean ± sample standard deviation over n seeds (no ± for a single seed). Also in <a href=\"summary.csv\">summary.csv</a> and <a href=\"summary.md\">summary.md</a>.</p>\n");
    }

    h.push_str(&crate::breakdown::section_html(&page.breakdown));

    h.push_str("<h2 id=\"figures\">Figures</h2>\n");
    for f in &page.figures {
        h.push_str(&format!(
            "<figure id=\"fig-{}\">\n<h3>{}</h3>\n",
            escape(f.name),
            escape(f.title)
        ));
        match &f.outcome {
            Ok((rendered, png)) => {
                let (w, hgt) = rendered.size;
                h.push_str(&format!(
                    "<img src=\"data:image/png;base64,{}\" width=\"{w}\" height=\"{hgt}\" alt=\"{}\">\n",
                    base64::encode(png),
                    escape(f.title)
                ));
                h.push_str(&format!(
                    "<figcaption>{} <span class=\"files\">Files: <a href=\"figures/{n}.svg\">{n}.svg</a>, <a href=\"figures/{n}.png\">{n}.png</a>.</span></figcaption>\n",
                    caption_html(f.caption),
                    n = escape(f.name)
                ));
            }
            Err(why) => h.push_str(&format!(
                "<p class=\"skipped\">Skipped: {}.</p>\n",
                escape(why)
            )),
        }
        h.push_str("</figure>\n");
    }
    if !page.notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in page.notes {
            h.push_str(&format!("<li>{}</li>\n", escape(n)));
        }
        h.push_str("</ul>\n");
    }

    h.push_str("<h2 id=\"spec\">Spec</h2>\n");
    match page.spec {
        Some(s) => h.push_str(&format!("<pre>{}</pre>\n", escape(s))),
        None => h.push_str("<p class=\"skipped\">spec.exp is not in the directory.</p>\n"),
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn summary_html(s: &Summary) -> String {
    let mut h = String::new();
    for (name, metrics) in &s.sections {
        h.push_str(&format!(
            "<h3 id=\"table-{}\">{}</h3>\n<table>\n<thead><tr><th>metric</th>",
            escape(name),
            escape(&crate::table::section_title(name))
        ));
        for (g, label) in s.group_labels.iter().enumerate() {
            h.push_str(&format!(
                "<th>{}<br><small>n = {}</small></th>",
                escape(label),
                s.seeds(g)
            ));
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for &m in metrics {
            h.push_str(&format!("<tr><td>{}</td>", escape(&s.metrics[m].label())));
            for g in 0..s.group_labels.len() {
                h.push_str(&format!("<td>{}</td>", escape(&s.cell_text(m, g))));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_formats_code_spans() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            caption_html("under `pgd` at <0.1>"),
            "under <code>pgd</code> at &lt;0.1&gt;"
        );
    }
}
