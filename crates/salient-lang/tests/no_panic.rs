//! No input panics or hangs: random text, random token soup and mutations of the real specs all
//! produce a result (and an experiment only when there are no errors).

use proptest::prelude::*;
use std::time::Instant;

const QUICKSTART: &str = include_str!("../../../specs/quickstart.exp");
const KIM: &str = include_str!("../../../specs/kim_adversarial_paper.exp");

fn assert_sane(src: &str) {
    let start = Instant::now();
    let out = salient_lang::check("fuzz.exp", src);
    assert!(start.elapsed().as_secs() < 2, "took {:?}", start.elapsed());
    assert_eq!(out.experiment.is_some(), out.errors().next().is_none());
    for d in &out.diagnostics {
        assert!(
            d.span.start <= d.span.end && d.span.end <= src.len(),
            "{d:?}"
        );
        let _ = d.line_col(src);
    }
    let _ = salient_lang::render("fuzz.exp", src, &out.diagnostics, false);
}

/// Fragments of the language, so random sequences reach the checker, not only the parser.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("experiment x ".to_string()),
        Just("data mnist ".to_string()),
        Just("data synthetic { shape = (1, 4, 4) classes = 2 } ".to_string()),
        Just("model m { flatten dense(out = 2) } ".to_string()),
        Just("model m { conv(out = 2, kernel = 3) relu residual(body = (conv(out = 2, kernel = 1))) } ".to_string()),
        Just("train { epochs = [1, 2] seed = 0 } ".to_string()),
        Just("regime sgt { k = [0.5, 0.9] } ".to_string()),
        Just("regime sensitivity { layers = (relu1) } ".to_string()),
        Just("attack pgd { eps = 8/255 } ".to_string()),
        Just("saliency smoothgrad ".to_string()),
        Just("metrics { sparseness masking_curve } ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("=".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("# c\n".to_string()),
        "[a-z_]{1,8} ".prop_map(|s| s),
        "-?[0-9]{1,4}(\\.[0-9]{1,3})?(e-?[0-9]{1,3})? ".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        assert_sane(&s);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(token(), 0..40)) {
        assert_sane(&tokens.concat());
    }

    #[test]
    fn mutated_specs_never_panic(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..4, token()), 1..6),
    ) {
        let mut src = if which == 0 { QUICKSTART.to_string() } else { KIM.to_string() };
        for (at, op, tok) in edits {
            let mut i = at.index(src.len() + 1);
            while !src.is_char_boundary(i) { i -= 1; }
            match op {
                0 => src.insert_str(i, &tok),
                1 => { let mut j = (i + tok.len()).min(src.len()); while !src.is_char_boundary(j) { j -= 1; } src.replace_range(i..j, ""); }
                2 => src.truncate(i),
                _ => { let mut j = (i + 3).min(src.len()); while !src.is_char_boundary(j) { j -= 1; } src.replace_range(i..j, &tok); }
            }
        }
        assert_sane(&src);
    }
}

#[test]
fn pathological_inputs() {
    for src in [
        String::new(),
        "(".repeat(100_000),
        "[".repeat(33),
        "{".repeat(32),
        "experiment ".repeat(10_000),
        format!("data mnist {{ dir = \"{}", "x".repeat(10_000)),
        "attack pgd { eps = 1e999 }".to_string(),
        "train { seed = [0,1,2,3,4,5,6,7,8,9] epochs = [1,2,3,4,5,6,7,8,9,10] batch = [1,2,3,4,5,6,7,8,9,10,11] }".to_string(),
        "model m { residual(body = (residual(body = (residual(body = (relu)))))) }".to_string(),
        "\u{0}\u{feff}é💥 = [".to_string(),
    ] {
        assert_sane(&src);
    }
}
