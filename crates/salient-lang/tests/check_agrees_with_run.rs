//! Inputs that `salient check` used to accept and `salient run` then refused or mishandled
//! (issue #16, "what check accepts, run runs"): each is now a check diagnostic with a code and a
//! span, or is accepted because run handles it.

use salient_lang::{check, Code, Severity};

/// A valid spec whose `model`, `data`, `train`, `regime` and extra lines can be replaced.
fn spec(data: &str, model: &str, train: &str, extra: &str) -> String {
    format!("experiment t\n{data}\nmodel {model}\ntrain {{ {train} }}\nregime standard\n{extra}\n")
}

const DATA: &str = "data synthetic { shape = (1, 8, 8)  classes = 10  train = 64  test = 32 }";
const MODEL: &str = "m { flatten dense(out = 10) }";

/// Assert that checking `src` reports `code` with the given severity and the primary span
/// covering exactly `span_text`; returns the diagnostic's message.
fn expect(src: &str, code: Code, severity: Severity, span_text: &str) -> String {
    let out = check("t.exp", src);
    let found: Vec<String> = out
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{} `{}`: {}",
                d.code,
                src.get(d.span.start..d.span.end).unwrap_or("<bad span>"),
                d.message
            )
        })
        .collect();
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no {code} in {found:#?}"));
    assert_eq!(d.severity, severity, "{found:#?}");
    assert_eq!(&src[d.span.start..d.span.end], span_text, "{found:#?}");
    if severity == Severity::Error {
        assert!(out.experiment.is_none());
    }
    d.message.clone()
}

fn clean(src: &str) -> salient_ir::Experiment {
    let out = check("t.exp", src);
    let r = salient_lang::render("t.exp", src, &out.diagnostics, false);
    assert!(out.diagnostics.is_empty(), "{r}");
    out.experiment.expect("experiment")
}

// 1. Names: never a panic, and run ids usable as file names.

#[test]
fn a_model_name_of_65536_characters_is_an_error_not_a_panic() {
    let name = "m".repeat(65_536);
    let src = spec(
        DATA,
        &format!("{name} {{ flatten dense(out = 10) }}"),
        "epochs = 1",
        "",
    );
    let msg = expect(&src, Code::Limit, Severity::Error, &name);
    assert!(msg.contains("65536 bytes") && msg.contains("64"), "{msg}");
    // Rendering the diagnostic of such a line must not panic either.
    let out = check("t.exp", &src);
    let text = salient_lang::render("t.exp", &src, &out.diagnostics, false);
    assert!(text.contains("salient::E002"), "{text}");
}

#[test]
fn a_300_character_model_name_is_an_error() {
    let name = "n".repeat(300);
    let src = spec(
        DATA,
        &format!("{name} {{ flatten dense(out = 10) }}"),
        "epochs = 1",
        "",
    );
    expect(&src, Code::Limit, Severity::Error, &name);
}

#[test]
fn a_64_byte_name_is_accepted_and_its_run_id_fits() {
    let name = "a".repeat(salient_lang::MAX_IDENT);
    let src = spec(
        DATA,
        &format!("{name} {{ flatten dense(out = 10) }}"),
        "epochs = 1",
        "",
    );
    let exp = clean(&src);
    assert!(exp.runs[0].id.len() <= salient_lang::MAX_RUN_ID);
    let name = "a".repeat(salient_lang::MAX_IDENT + 1);
    let src = spec(
        DATA,
        &format!("{name} {{ flatten dense(out = 10) }}"),
        "epochs = 1",
        "",
    );
    expect(&src, Code::Limit, Severity::Error, &name);
}

#[test]
fn long_names_and_sweep_values_composing_a_long_run_id_are_an_error() {
    let model = "m".repeat(64);
    let regime = "r".repeat(64);
    let lr = format!("0.{}1", "0".repeat(60));
    let src = format!(
        "experiment t\n{DATA}\nmodel {model} {{ flatten dense(out = 10) }}\n\
         train {{ epochs = 1  lr = [{lr}, 0.1]  batch = [1000000, 2] }}\nregime standard as {regime}\n"
    );
    let msg = expect(&src, Code::BadSweep, Severity::Error, &regime);
    assert!(msg.contains("the limit is 200"), "{msg}");
}

// 2. Strings and the byte-order mark.

#[test]
fn an_unknown_string_escape_is_an_error_at_the_escape() {
    let data = "data idx { dir = \"data/\\q\"  shape = (1, 8, 8)  classes = 10 }";
    let msg = expect(
        &spec(data, MODEL, "epochs = 1", ""),
        Code::Syntax,
        Severity::Error,
        "\\q",
    );
    assert!(msg.contains("unknown escape `\\q`"), "{msg}");
}

#[test]
fn the_documented_escapes_are_accepted() {
    let data = "data idx { dir = \"a\\\"b\\\\c\\nd\\te\"  shape = (1, 8, 8)  classes = 10 }";
    let exp = clean(&spec(data, MODEL, "epochs = 1", ""));
    assert_eq!(exp.data.dir, "a\"b\\c\nd\te");
}

#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let src = format!("\u{feff}{}", spec(DATA, MODEL, "epochs = 1", ""));
    let exp = clean(&src);
    assert_eq!(exp.name, "t");
    // Spans still count the mark's bytes: an error after it points at the right text.
    let bad = format!("\u{feff}{}", spec(DATA, MODEL, "epochs = 0", ""));
    expect(&bad, Code::OutOfRange, Severity::Error, "0");
}

#[test]
fn a_byte_order_mark_elsewhere_is_still_an_error() {
    let src = spec(DATA, MODEL, "epochs = 1", "\u{feff}");
    let out = check("t.exp", &src);
    assert!(
        out.errors().any(|d| d.code == Code::Syntax),
        "{:?}",
        out.diagnostics
    );
}

// 3. Values run refuses: learning rate, classes, IDX channels.

#[test]
fn a_learning_rate_past_f32_is_an_error_not_a_warning() {
    let src = spec(DATA, MODEL, "epochs = 1  lr = 1e308", "");
    let msg = expect(&src, Code::OutOfRange, Severity::Error, "1e308");
    assert!(msg.contains("32-bit"), "{msg}");
    // Adam's first bias correction multiplies lr by 1 / (1 - beta1) = 10.
    let src = spec(DATA, MODEL, "epochs = 1  lr = 1e38", "");
    expect(&src, Code::OutOfRange, Severity::Error, "1e38");
    let src = spec(DATA, MODEL, "epochs = 1  lr = 1e38  optimizer = sgd", "");
    let out = check("t.exp", &src);
    assert!(out.is_ok(), "{:?}", out.diagnostics);
    assert!(out.diagnostics.iter().all(|d| d.code == Code::LargeLr));
}

#[test]
fn a_step_schedule_growing_the_learning_rate_past_f32_is_an_error_at_the_schedule() {
    let src = spec(
        DATA,
        MODEL,
        "epochs = 1000  optimizer = sgd  schedule = step(every = 1, gamma = 2)",
        "",
    );
    expect(
        &src,
        Code::OutOfRange,
        Severity::Error,
        "step(every = 1, gamma = 2)",
    );
    // 100 epochs double 99 times: 0.01 * 2^99 is about 6e27, finite in f32.
    clean(&spec(
        DATA,
        MODEL,
        "epochs = 100  optimizer = sgd  schedule = step(every = 1, gamma = 2)",
        "",
    ));
}

#[test]
fn synthetic_and_idx_classes_stop_at_256_as_the_loader_does() {
    let data = "data synthetic { shape = (1, 8, 8)  classes = 100000 }";
    let msg = expect(
        &spec(data, "m { flatten dense(out = 100000) }", "epochs = 1", ""),
        Code::OutOfRange,
        Severity::Error,
        "100000",
    );
    assert!(msg.contains("between 2 and 256"), "{msg}");
    let data = "data idx { dir = \"d\"  shape = (1, 8, 8)  classes = 257 }";
    expect(
        &spec(data, "m { flatten dense(out = 257) }", "epochs = 1", ""),
        Code::OutOfRange,
        Severity::Error,
        "257",
    );
    let data = "data synthetic { shape = (1, 8, 8)  classes = 256 }";
    clean(&spec(
        data,
        "m { flatten dense(out = 256) }",
        "epochs = 1",
        "",
    ));
}

#[test]
fn idx_images_have_one_channel() {
    let data = "data idx { dir = \"d\"  shape = (3, 32, 32)  classes = 10 }";
    let msg = expect(
        &spec(data, MODEL, "epochs = 1", ""),
        Code::Incompatible,
        Severity::Error,
        "(3, 32, 32)",
    );
    assert!(msg.contains("one channel"), "{msg}");
    let data = "data idx { dir = \"d\"  shape = (1, 32, 32)  classes = 10 }";
    clean(&spec(data, MODEL, "epochs = 1", ""));
}

// 4. Attacks that need more classes than the model has.

fn two_classes(extra: &str) -> String {
    spec(
        "data synthetic { shape = (1, 8, 8)  classes = 2 }",
        "m { flatten dense(out = 2) }",
        "epochs = 1",
        &format!("{extra}\nmetrics {{ clean_accuracy robust_accuracy }}"),
    )
}

#[test]
fn apgd_dlr_on_two_classes_is_an_error_naming_the_class_count() {
    let msg = expect(
        &two_classes("attack apgd { eps = 0.1  loss = dlr }"),
        Code::Incompatible,
        Severity::Error,
        "dlr",
    );
    assert!(
        msg.contains("at least 3 classes") && msg.contains("has 2"),
        "{msg}"
    );
    // Three classes are enough for DLR.
    clean(&spec(
        "data synthetic { shape = (1, 8, 8)  classes = 3 }",
        "m { flatten dense(out = 3) }",
        "epochs = 1",
        "attack apgd { eps = 0.1  loss = dlr }\nmetrics { clean_accuracy robust_accuracy }",
    ));
}

#[test]
fn apgd_t_needs_four_classes_and_at_most_classes_minus_one_targets() {
    let msg = expect(
        &two_classes("attack apgd_t { eps = 0.1 }"),
        Code::Incompatible,
        Severity::Error,
        "attack apgd_t",
    );
    assert!(
        msg.contains("at least 4 classes") && msg.contains("has 2"),
        "{msg}"
    );
    let five = |attack: &str| {
        spec(
            "data synthetic { shape = (1, 8, 8)  classes = 5 }",
            "m { flatten dense(out = 5) }",
            "epochs = 1",
            &format!("{attack}\nmetrics {{ clean_accuracy robust_accuracy }}"),
        )
    };
    let msg = expect(
        &five("attack apgd_t { eps = 0.1  targets = 5 }"),
        Code::Incompatible,
        Severity::Error,
        "5",
    );
    assert!(msg.contains("at most 4"), "{msg}");
    // Left out, targets is min(9, classes - 1), as AutoAttack's.
    let exp = clean(&five("attack apgd_t { eps = 0.1 }"));
    assert!(
        matches!(
            exp.attacks[0].attack,
            salient_ir::Attack::ApgdT { targets: 4, .. }
        ),
        "{:?}",
        exp.attacks[0].attack
    );
}

#[test]
fn fab_t_with_more_targets_than_other_classes_is_an_error() {
    let msg = expect(
        &two_classes("attack fab { eps = 0.1  targets = 3 }"),
        Code::Incompatible,
        Severity::Error,
        "3",
    );
    assert!(
        msg.contains("has 2 classes") && msg.contains("at most 1"),
        "{msg}"
    );
    clean(&two_classes("attack fab { eps = 0.1  targets = 1 }"));
}

#[test]
fn autoattack_components_needing_dlr_on_too_few_classes_are_an_error() {
    // The standard version includes APGD-T.
    let msg = expect(
        &two_classes("attack autoattack { eps = 0.1 }"),
        Code::Incompatible,
        Severity::Error,
        "attack autoattack",
    );
    assert!(msg.contains("`apgd_t`") && msg.contains("has 2"), "{msg}");
    expect(
        &two_classes("attack autoattack { eps = 0.1  components = (apgd_ce, apgd_dlr) }"),
        Code::Incompatible,
        Severity::Error,
        "(apgd_ce, apgd_dlr)",
    );
    clean(&two_classes(
        "attack autoattack { eps = 0.1  components = (apgd_ce, fab_t, square) }",
    ));
}

// 5. Regime layers and attacks the engine would skip.

#[test]
fn a_sensitivity_layer_inside_a_residual_block_is_an_error() {
    let model = "r { conv(out = 4, kernel = 3, padding = 1) relu \
                 residual(body = (conv(out = 4, kernel = 3, padding = 1), relu)) \
                 flatten dense(out = 10) }";
    let src = format!(
        "experiment t\n{DATA}\nmodel {model}\ntrain {{ epochs = 1 }}\n\
         regime sensitivity {{ layers = (relu2) }}\n"
    );
    let msg = expect(&src, Code::UnknownModelLayer, Severity::Error, "relu2");
    assert!(msg.contains("residual block `residual1`"), "{msg}");
    // The block itself, and top-level layers, are accepted.
    let ok = src.replace("layers = (relu2)", "layers = (relu1, residual1)");
    clean(&ok);
}

#[test]
fn attacks_without_robust_accuracy_are_a_warning() {
    let src = spec(
        DATA,
        MODEL,
        "epochs = 1",
        "attack pgd { eps = 0.1 }\nmetrics { clean_accuracy }",
    );
    let msg = expect(&src, Code::AttacksNotMeasured, Severity::Warning, "metrics");
    assert!(msg.contains("no attack will run"), "{msg}");
    let out = check("t.exp", &src);
    let help = out.diagnostics[0].help.clone().unwrap_or_default();
    assert!(help.contains("add `robust_accuracy`"), "{help}");
    // Without a `metrics` section the default includes robust_accuracy.
    clean(&spec(DATA, MODEL, "epochs = 1", "attack pgd { eps = 0.1 }"));
}

#[test]
fn an_attack_of_a_billion_steps_stays_a_warning() {
    let src = spec(
        DATA,
        MODEL,
        "epochs = 1",
        "attack pgd { eps = 0.1  steps = 1000000000 }",
    );
    expect(&src, Code::ManySteps, Severity::Warning, "1000000000");
    assert!(check("t.exp", &src).is_ok());
}

// 6. Memory: what a training run holds, estimated from the IR's shapes.

#[test]
fn ten_billion_parameters_are_a_memory_error_at_the_model() {
    let model = "big { flatten dense(out = 100000) relu dense(out = 100000) relu dense(out = 10) }";
    let msg = expect(
        &spec(DATA, model, "epochs = 1", ""),
        Code::MemoryLimit,
        Severity::Error,
        "big",
    );
    assert!(msg.contains("the limit is 32 GiB"), "{msg}");
}

#[test]
fn a_4096_by_4096_synthetic_input_is_a_memory_error() {
    let data = "data synthetic { shape = (1, 4096, 4096)  classes = 10 }";
    let src = spec(data, MODEL, "epochs = 1  batch = 1", "eval { batch = 1 }");
    // 1500 images of 16.8M pixels in f32: about 94 GiB of data.
    let msg = expect(&src, Code::MemoryLimit, Severity::Error, "data synthetic");
    assert!(msg.contains("data 93.8 GiB"), "{msg}");
}

#[test]
fn activations_times_the_batch_are_a_memory_error_at_the_batch() {
    // A small model (338k parameters) on 3x128x128 whose activations (input, conv, relu, conv:
    // (3 + 3 x 32) x 128 x 128 values, then 2 x 32 x 32 x 32 and 10) need 2 x 4 B x 1.69M =
    // 12.9 MiB per example: at batch 4096, 51.5 GiB.
    let data = "data synthetic { shape = (3, 128, 128)  classes = 10  train = 4096  test = 32 }";
    let model =
        "c { conv(out = 32, kernel = 3, padding = 1) relu conv(out = 32, kernel = 3, padding = 1) \
                 maxpool(size = 4) flatten dense(out = 10) }";
    let src = spec(data, model, "epochs = 1  batch = 4096", "");
    let msg = expect(&src, Code::MemoryLimit, Severity::Error, "4096");
    assert!(msg.contains("activations"), "{msg}");
    // The same at batch 64 fits.
    clean(&spec(
        data,
        model,
        "epochs = 1  batch = 64",
        "eval { batch = 64 }",
    ));
    // And `max_memory` raises the ceiling.
    clean(&spec(
        data,
        model,
        "epochs = 1  batch = 4096  max_memory = 128",
        "",
    ));
}

#[test]
fn max_memory_cannot_be_swept_and_is_not_in_run_ids() {
    let src = spec(DATA, MODEL, "epochs = 1  max_memory = [8, 16]", "");
    expect(&src, Code::SweepNotAllowed, Severity::Error, "[8, 16]");
    let exp = clean(&spec(DATA, MODEL, "epochs = 1  max_memory = 8", ""));
    assert_eq!(exp.runs[0].id, "m-standard-seed0");
    expect(
        &spec(DATA, MODEL, "epochs = 1  max_memory = 0", ""),
        Code::OutOfRange,
        Severity::Error,
        "0",
    );
}

#[test]
fn the_memory_estimate_adds_its_parts() {
    let exp = clean(&spec(
        DATA,
        MODEL,
        "epochs = 1  batch = 32",
        "eval { batch = 100 }",
    ));
    let est = salient_lang::training_memory(&exp, &exp.runs[0]).expect("estimate");
    // 64 -> 10 dense: 650 parameters; adam keeps two states.
    assert_eq!(est.weights, 4.0 * 650.0);
    assert_eq!(est.gradients, 4.0 * 650.0);
    assert_eq!(est.optimizer, 8.0 * 650.0);
    // Input 64, flatten 64, dense 10: 138 values, kept and differentiated.
    assert_eq!(est.per_example, 2.0 * 4.0 * 138.0);
    // The eval batch of 100 holds at most the 32 test examples: the train batch of 32 counts.
    assert_eq!(est.batch, 32);
    assert_eq!(est.activations, est.per_example * 32.0);
    assert_eq!(est.data, 4.0 * 64.0 * 96.0);
    assert_eq!(
        est.total,
        est.weights + est.gradients + est.optimizer + est.activations + est.data
    );
    // A train batch of 128 holds at most the 64 training examples; plain SGD keeps no state.
    let exp = clean(&spec(
        DATA,
        MODEL,
        "epochs = 1  batch = 128  optimizer = sgd",
        "eval { batch = 16 }",
    ));
    let est = salient_lang::training_memory(&exp, &exp.runs[0]).expect("estimate");
    assert_eq!(est.batch, 64);
    assert_eq!(est.optimizer, 0.0);
}
