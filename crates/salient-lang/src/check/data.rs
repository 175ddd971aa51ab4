//! `data KIND { ... }`: the dataset, its image shape, classes, subset sizes and normalisation.

use super::reader::{whole_value, Settings};
use super::{empty_body, sweep, Ctx};
use crate::ast::{Decl, Entry, Value, ValueKind};
use crate::diag::{Code, Diagnostic};
use crate::suggest;
use salient_ir::{DataKind, DataSpec, ImageShape};

pub const KINDS: &[&str] = &["mnist", "fashion_mnist", "idx", "cifar10", "synthetic"];
const KEYS: &[&str] = &[
    "dir",
    "train",
    "test",
    "mean",
    "std",
    "shape",
    "classes",
    "train_files",
    "test_files",
    "noise",
    "seed",
];
/// Largest channel count, height or width accepted.
const MAX_DIM: u64 = 4096;
/// Most classes a data set may have: labels are bytes (IDX label files, salient-data's
/// `Dataset`), and the loader refuses more than 256.
pub const MAX_CLASSES: usize = 256;

pub fn lower(ctx: &mut Ctx, d: &Decl) -> Option<DataSpec> {
    let kind = d.kind.as_ref()?;
    if !KINDS.contains(&kind.name.as_str()) {
        ctx.push(
            Diagnostic::new(
                Code::UnknownKind,
                kind.span,
                format!("unknown data kind `{}`", kind.name),
            )
            .with_label("unknown data kind")
            .with_help(suggest::help(&kind.name, KINDS)),
        );
        return None;
    }
    let k = kind.name.as_str();
    let empty = empty_body(d);
    let body = d.body.as_ref().unwrap_or(&empty);
    let (_, points) = sweep::expand(ctx, "data", "`data`", body, false);
    let body = &points[0].body;
    let settings = body.entries.iter().filter_map(|e| match e {
        Entry::Setting(s) => Some(s),
        Entry::Item(v) => {
            ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    v.span,
                    "`data` holds settings `key = value`, not items",
                )
                .with_label("expected `key = value`"),
            );
            None
        }
    });
    let settings: Vec<_> = settings.collect();
    let what = format!("`data {k}`");
    let s = Settings::new(ctx, what.clone(), d.head_span(), settings, &allowed_keys(k));

    // Shape and classes: fixed by the kind, or given.
    let fixed = match k {
        "mnist" | "fashion_mnist" => Some((ImageShape { c: 1, h: 28, w: 28 }, 10)),
        "cifar10" => Some((ImageShape { c: 3, h: 32, w: 32 }, 10)),
        _ => None,
    };
    let (shape, classes) = match fixed {
        Some((shape, classes)) => {
            for key in ["shape", "classes"] {
                if let Some(v) = s.get(key) {
                    ctx.push(
                        Diagnostic::new(
                            Code::Incompatible,
                            v.span,
                            format!(
                                "{what} has a fixed {key} ({}), it cannot be set",
                                fixed_text(key, shape, classes)
                            ),
                        )
                        .with_label("cannot be set")
                        .with_help(
                            "use `data idx { shape = (c, h, w)  classes = N }` for other IDX sets",
                        ),
                    );
                }
            }
            (Some(shape), Some(classes))
        }
        None => {
            let default = (k == "synthetic").then_some((ImageShape { c: 1, h: 28, w: 28 }, 10));
            let shape = match s.get("shape") {
                Some(v) => shape_value(ctx, v).inspect(|sh| {
                    // IDX image files are 3-d (count, rows, cols): one channel. The shape is
                    // kept so that the models are still checked against it.
                    if k == "idx" && sh.c != 1 {
                        ctx.push(
                            Diagnostic::new(
                                Code::Incompatible,
                                v.span,
                                format!(
                                    "`data idx` images have one channel, but `shape` asks for {}",
                                    sh.c
                                ),
                            )
                            .with_label("IDX images are (1, rows, cols)")
                            .with_help(format!(
                                "IDX image files hold count x rows x cols bytes: write `shape = (1, {}, {})`; for colour images use `data cifar10`",
                                sh.h, sh.w
                            )),
                        );
                    }
                }),
                None => {
                    if default.is_none() {
                        s.missing(ctx, "shape", "(1, 28, 28)");
                    }
                    default.map(|d| d.0)
                }
            };
            let classes = match s.whole(ctx, "classes") {
                Some((n, span)) => {
                    if !(2..=MAX_CLASSES as u64).contains(&n) {
                        ctx.range_error(
                            span,
                            format!("`classes` must be between 2 and {MAX_CLASSES}, found {n}"),
                            Some("labels are stored as bytes (IDX label files and the loader's datasets), so at most 256 classes"),
                        );
                    }
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    (2..=MAX_CLASSES).contains(&n).then_some(n)
                }
                None => {
                    if default.is_none() && s.get("classes").is_none() {
                        s.missing(ctx, "classes", "10");
                    }
                    default.map(|d| d.1)
                }
            };
            (shape, classes)
        }
    };

    let dir = match s.string(ctx, "dir") {
        Some(dir) => dir,
        None => match k {
            "mnist" => "data/mnist".to_string(),
            "fashion_mnist" => "data/fashion_mnist".to_string(),
            "cifar10" => "data/cifar-10-batches-bin".to_string(),
            "idx" => {
                if s.get("dir").is_none() {
                    s.missing(ctx, "dir", "\"data/my_idx_set\"");
                }
                String::new()
            }
            _ => String::new(),
        },
    };

    let train = s
        .whole(ctx, "train")
        .map(|v| ctx.whole_between("train", v, 1, 100_000_000));
    let test = s
        .whole(ctx, "test")
        .map(|v| ctx.whole_between("test", v, 1, 100_000_000));

    let channels = shape.map(|sh| sh.c);
    // On an error the identity stands in, so that models are still checked against the shape.
    let mean = per_channel(ctx, &s, "mean", channels, &what, 0.0, false)
        .or_else(|| Some(vec![0.0; channels?]));
    let std = per_channel(ctx, &s, "std", channels, &what, 1.0, true)
        .or_else(|| Some(vec![1.0; channels?]));

    let kind_ir = match k {
        "mnist" => DataKind::Mnist,
        "fashion_mnist" => DataKind::FashionMnist,
        "idx" => DataKind::Idx,
        "cifar10" => {
            let train_files = files(ctx, &s, "train_files")
                .unwrap_or_else(|| (1..=5).map(|i| format!("data_batch_{i}.bin")).collect());
            let test_files =
                files(ctx, &s, "test_files").unwrap_or_else(|| vec!["test_batch.bin".to_string()]);
            DataKind::Cifar10 {
                train_files,
                test_files,
            }
        }
        _ => {
            let noise = s
                .num(ctx, "noise")
                .map_or(0.1, |v| ctx.non_negative("noise", v));
            let seed = s.whole(ctx, "seed").map_or(0, |(v, _)| v);
            DataKind::Synthetic {
                train: train.unwrap_or(1000),
                test: test.unwrap_or(500),
                noise: noise as f32,
                seed,
            }
        }
    };
    let (train, test) = match &kind_ir {
        DataKind::Synthetic { train, test, .. } => (Some(*train), Some(*test)),
        _ => (train, test),
    };
    Some(DataSpec {
        kind: kind_ir,
        dir,
        train,
        test,
        mean: mean?,
        std: std?,
        shape: shape?,
        classes: classes?,
    })
}

/// The keys each kind accepts. `shape`/`classes` are accepted everywhere so that setting them on
/// a fixed-shape kind gets a precise message rather than "unknown setting".
fn allowed_keys(kind: &str) -> Vec<&'static str> {
    KEYS.iter()
        .copied()
        .filter(|key| match *key {
            "train_files" | "test_files" => kind == "cifar10",
            "noise" | "seed" => kind == "synthetic",
            "dir" => kind != "synthetic",
            _ => true,
        })
        .collect()
}

fn fixed_text(key: &str, shape: ImageShape, classes: usize) -> String {
    if key == "shape" {
        format!("{}x{}x{}", shape.c, shape.h, shape.w)
    } else {
        classes.to_string()
    }
}

/// `(c, h, w)`, each a whole number in 1..=4096.
fn shape_value(ctx: &mut Ctx, v: &Value) -> Option<ImageShape> {
    let ValueKind::Tuple(items) = &v.kind else {
        ctx.push(
            Diagnostic::new(
                Code::WrongType,
                v.span,
                format!(
                    "`shape` expects a tuple `(c, h, w)`, found {}",
                    v.kind.describe()
                ),
            )
            .with_label("expected `(c, h, w)`"),
        );
        return None;
    };
    if items.len() != 3 {
        ctx.push(
            Diagnostic::new(
                Code::WrongType,
                v.span,
                format!(
                    "`shape` expects 3 numbers `(c, h, w)`, found {}",
                    items.len()
                ),
            )
            .with_label("expected `(c, h, w)`"),
        );
        return None;
    }
    let mut dims = [0usize; 3];
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match whole_value(ctx, "shape", item) {
            Some(n) if (1..=MAX_DIM).contains(&n) => dims[i] = n as usize,
            Some(n) => {
                ctx.range_error(
                    item.span,
                    format!("each `shape` dimension must be between 1 and {MAX_DIM}, found {n}"),
                    None,
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(ImageShape {
        c: dims[0],
        h: dims[1],
        w: dims[2],
    })
}

/// A per-channel vector: a number (one channel) or a tuple of numbers, as long as `channels`.
fn per_channel(
    ctx: &mut Ctx,
    s: &Settings,
    key: &str,
    channels: Option<usize>,
    what: &str,
    default: f32,
    positive: bool,
) -> Option<Vec<f32>> {
    let Some(v) = s.get(key) else {
        return Some(vec![default; channels?]);
    };
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Tuple(items) => items.iter().collect(),
        ValueKind::Number { .. } => vec![v],
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    v.span,
                    format!(
                        "`{key}` expects a number per channel `(a, b, c)`, found {}",
                        other.describe()
                    ),
                )
                .with_label("expected numbers"),
            );
            return None;
        }
    };
    let mut out = Vec::new();
    for item in &items {
        match &item.kind {
            ValueKind::Number { value, text } => {
                if positive && *value <= 0.0 {
                    ctx.range_error(
                        item.span,
                        format!("`{key}` must be greater than 0, found {text}"),
                        Some("the input is divided by std"),
                    );
                }
                out.push(*value as f32);
            }
            other => {
                ctx.push(
                    Diagnostic::new(
                        Code::WrongType,
                        item.span,
                        format!("`{key}` expects numbers, found {}", other.describe()),
                    )
                    .with_label("expected a number"),
                );
                return None;
            }
        }
    }
    let c = channels?;
    if out.len() != c {
        let plural = if c == 1 { "" } else { "s" };
        ctx.push(
            Diagnostic::new(
                Code::Incompatible,
                v.span,
                format!(
                    "`{key}` has {} values but {what} images have {c} channel{plural}",
                    out.len()
                ),
            )
            .with_label(format!("expected {c} value{plural}")),
        );
        return None;
    }
    Some(out)
}

/// A tuple of file names (or one string).
fn files(ctx: &mut Ctx, s: &Settings, key: &str) -> Option<Vec<String>> {
    let v = s.get(key)?;
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Tuple(items) => items.iter().collect(),
        ValueKind::Str(_) => vec![v],
        other => {
            ctx.push(
                Diagnostic::new(
                    Code::WrongType,
                    v.span,
                    format!(
                        "`{key}` expects a tuple of strings, found {}",
                        other.describe()
                    ),
                )
                .with_label("expected `(\"a.bin\", ...)`"),
            );
            return None;
        }
    };
    if items.is_empty() {
        ctx.range_error(v.span, format!("`{key}` needs at least one file"), None);
        return None;
    }
    let mut out = Vec::new();
    for item in items {
        match &item.kind {
            ValueKind::Str(f) => out.push(f.clone()),
            other => {
                ctx.push(
                    Diagnostic::new(
                        Code::WrongType,
                        item.span,
                        format!(
                            "`{key}` expects file names as strings, found {}",
                            other.describe()
                        ),
                    )
                    .with_label("expected a string"),
                );
                return None;
            }
        }
    }
    Some(out)
}
