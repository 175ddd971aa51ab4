//! Every file in `tests/specs/invalid/` holds one mistake and a header
//! `# expect: CODE | message fragment | text under the primary span`. The checker must report
//! that diagnostic (code, message, span), produce no experiment, and render the same text as the
//! committed snapshot in `tests/specs/snapshots/`.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Expect {
    code: String,
    message: String,
    span_text: String,
}

fn header(source: &str, file: &str) -> Expect {
    let line = source.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{file}: first line must be `# expect: ...`"));
    let parts: Vec<&str> = rest.split(" | ").collect();
    assert_eq!(
        parts.len(),
        3,
        "{file}: header needs CODE | message | span text"
    );
    Expect {
        code: parts[0].trim().to_string(),
        message: parts[1].trim().to_string(),
        span_text: parts[2].trim().to_string(),
    }
}

#[test]
fn each_invalid_spec_gets_its_diagnostic() {
    let dir = repo_root().join("tests/specs/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/specs/invalid exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "exp"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} invalid specs", files.len());
    let mut failures = Vec::new();
    let mut rendered = Vec::new();
    for path in &files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let source = std::fs::read_to_string(path).expect("readable");
        let want = header(&source, &name);
        let out = salient_lang::check(&format!("{name}.exp"), &source);
        if out.experiment.is_some() {
            failures.push(format!("{name}: checked clean, expected {}", want.code));
            continue;
        }
        let found = out.diagnostics.iter().any(|d| {
            d.code.as_str() == want.code
                && d.message.contains(&want.message)
                && source.get(d.span.start..d.span.end) == Some(want.span_text.as_str())
        });
        if !found {
            let got: Vec<String> = out
                .diagnostics
                .iter()
                .map(|d| {
                    format!(
                        "{} {:?} at {:?}",
                        d.code,
                        d.message,
                        source.get(d.span.start..d.span.end).unwrap_or("")
                    )
                })
                .collect();
            failures.push(format!(
                "{name}: wanted {} {:?} at {:?}; got {got:#?}",
                want.code, want.message, want.span_text
            ));
        }
        rendered.push((
            name,
            salient_lang::render(
                &format!(
                    "{}.exp",
                    path.file_stem().and_then(|s| s.to_str()).unwrap_or("")
                ),
                &source,
                &out.diagnostics,
                false,
            ),
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for (name, rendered) in rendered {
        insta::with_settings!({
            snapshot_path => repo_root().join("tests/specs/snapshots"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, rendered);
        });
    }
}
