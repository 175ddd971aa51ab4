//! Helpers shared by the checker's integration tests.
#![allow(dead_code)]
use salient_ir::Experiment;

/// Check `text`, assert it has no diagnostic at all (the rendered ones in the message), and
/// return the experiment.
pub fn clean(text: &str) -> Experiment {
    let out = salient_lang::check("t.exp", text);
    let rendered = salient_lang::render("t.exp", text, &out.diagnostics, false);
    assert!(out.diagnostics.is_empty(), "{rendered}");
    out.experiment.expect("experiment")
}

/// `"Code: message"` of each diagnostic of `text`.
pub fn codes(text: &str) -> Vec<String> {
    salient_lang::check("t.exp", text)
        .diagnostics
        .iter()
        .map(|d| format!("{:?}: {}", d.code, d.message))
        .collect()
}
