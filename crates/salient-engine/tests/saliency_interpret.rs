//! `interpret_rows` end to end on a tiny synthetic experiment: the rows it returns (names,
//! points, ranges), the NPY files it saves, determinism, and errors instead of panics.
use dfdx::prelude::*;
use salient_engine::interpret::interpret_rows;
use salient_engine::results::ResultRow;
use salient_engine::EngineError;
use salient_nn::Network;
use std::path::Path;

const SPEC: &str = r#"
experiment tiny
data synthetic { shape = (2, 6, 6)  classes = 3  train = 48  test = 30  noise = 0.2  seed = 7 }
model net {
  conv(out = 4, kernel = 3, padding = 1)
  relu
  maxpool(size = 2)
  flatten
  dense(out = 3)
}
train { epochs = 1  batch = 16  seed = 0 }
regime standard
saliency gradient { sign = signed }
saliency gradient_input
saliency integrated_gradients { steps = 6  baseline = mean }
saliency smoothgrad as vg { samples = 3  sigma = 0.1  variant = vargrad }
metrics {
  clean_accuracy
  sparseness
  complexity
  deletion(steps = 4)
  insertion(steps = 5)
  masking_curve(percents = (0, 30, 60), fill = mean)
  max_sensitivity(radius = 0.05, samples = 2)
  randomization
  alignment
}
eval { saliency_samples = 20  batch = 8  seed = 3 }
report { images = 3 }
"#;

fn experiment() -> salient_ir::Experiment {
    let out = salient_lang::check("tiny.exp", SPEC);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    out.experiment
        .unwrap_or_else(|| panic!("spec does not check: {msgs:?}"))
}

fn setup() -> (salient_ir::Experiment, salient_data::Splits, Network<Cpu>) {
    let exp = experiment();
    let data = salient_data::load(&exp.data).unwrap();
    let net = Network::new(
        &exp.models[0],
        &exp.data.mean,
        &exp.data.std,
        0,
        &Cpu::default(),
    )
    .unwrap();
    (exp, data, net)
}

fn npy_shape(path: &Path) -> (String, usize) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    (
        std::str::from_utf8(&bytes[10..10 + hlen])
            .unwrap()
            .to_string(),
        bytes.len() - 10 - hlen,
    )
}

fn rows_of<'a>(rows: &'a [ResultRow], method: &str, metric: &str) -> Vec<&'a ResultRow> {
    rows.iter()
        .filter(|r| r.saliency.as_deref() == Some(method) && r.metric == metric)
        .collect()
}

#[test]
fn interpret_rows_gives_every_metric_for_every_method_and_saves_maps() {
    let (exp, data, mut net) = setup();
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("maps");
    let rows = interpret_rows(&mut net, &exp, &data, &exp.runs[0], &maps).unwrap();
    let ln_p = (36f64).ln();
    for method in ["gradient", "gradient_input", "integrated_gradients", "vg"] {
        let one = |metric: &str| {
            let r = rows_of(&rows, method, metric);
            assert_eq!(r.len(), 1, "{method} {metric}: {r:?}");
            assert_eq!(r[0].run, exp.runs[0].id);
            assert!(r[0].point.is_none());
            r[0].value
        };
        let gini = one("sparseness");
        assert!((0.0..1.0).contains(&gini), "{method}: gini {gini}");
        let h = one("complexity");
        assert!(
            h > 0.0 && h <= ln_p + 1e-9,
            "{method}: entropy {h} of 36 pixels"
        );
        for (name, steps) in [("deletion", 4usize), ("insertion", 5)] {
            let auc = one(name);
            assert!((0.0..=1.0).contains(&auc));
            let curve = rows_of(&rows, method, &format!("{name}_curve"));
            let points: Vec<f64> = curve.iter().map(|r| r.point.unwrap()).collect();
            let want: Vec<f64> = (0..=steps).map(|t| t as f64 / steps as f64).collect();
            assert_eq!(points, want);
            // The AUC of the mean curve is the mean of the AUCs (both trapezoids).
            let ys: Vec<f64> = curve.iter().map(|r| r.value).collect();
            assert!((salient_engine::metrics::trapezoid_auc(&ys) - auc).abs() < 1e-9);
        }
        // Deletion and insertion meet at the ends: the full image and the black canvas.
        let d = rows_of(&rows, method, "deletion_curve");
        let i = rows_of(&rows, method, "insertion_curve");
        assert!(
            (d[0].value - i.last().unwrap().value).abs() < 1e-6
                && (d.last().unwrap().value - i[0].value).abs() < 1e-6
        );
        for name in ["masking_curve", "masking_curve_random"] {
            let m = rows_of(&rows, method, name);
            assert_eq!(
                m.iter().map(|r| r.point.unwrap()).collect::<Vec<_>>(),
                vec![0.0, 30.0, 60.0]
            );
            assert!(m.iter().all(|r| (0.0..=1.0).contains(&r.value)));
        }
        // At p = 0 nothing is masked: both curves are the clean accuracy of those examples.
        assert_eq!(
            rows_of(&rows, method, "masking_curve")[0].value,
            rows_of(&rows, method, "masking_curve_random")[0].value
        );
        assert!(one("max_sensitivity") >= 0.0);
        let rand = rows_of(&rows, method, "randomization");
        assert_eq!(
            rand.iter().map(|r| r.point.unwrap()).collect::<Vec<_>>(),
            vec![4.0, 0.0],
            "dense1 then conv1"
        );
        assert!(rand.iter().all(|r| (-1.0..=1.0).contains(&r.value)));
        let a = one("alignment");
        assert!((0.0..=1.0).contains(&a));
        assert!(one("saliency_seconds") >= 0.0);
        let (header, data_len) = npy_shape(&maps.join(format!("{method}.npy")));
        assert!(
            header.contains("'descr': '<f4'") && header.contains("'shape': (3, 6, 6, 2)"),
            "{header}"
        );
        assert_eq!(data_len, 3 * 72 * 4);
    }
    assert!(
        rows.iter().all(|r| r.metric != "clean_accuracy"),
        "clean accuracy is the runner's"
    );
    let (header, image_bytes) = npy_shape(&maps.join("images.npy"));
    assert!(header.contains("'shape': (3, 6, 6, 2)") && image_bytes == 3 * 72 * 4);
    let (header, len) = npy_shape(&maps.join("labels.npy"));
    assert!(header.contains("'descr': '<i8'") && header.contains("'shape': (3,)") && len == 24);
    // The images file holds the first test images exactly.
    let bytes = std::fs::read(maps.join("images.npy")).unwrap();
    let pixels: Vec<f32> = bytes[bytes.len() - image_bytes..]
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(pixels, data.test.images[..3 * 72]);
}

#[test]
fn interpret_rows_is_repeatable() {
    let (exp, data, mut net) = setup();
    let dir = tempfile::tempdir().unwrap();
    let strip = |rows: Vec<ResultRow>| {
        rows.into_iter()
            .filter(|r| r.metric != "saliency_seconds")
            .collect::<Vec<_>>()
    };
    let a =
        strip(interpret_rows(&mut net, &exp, &data, &exp.runs[0], &dir.path().join("a")).unwrap());
    let b =
        strip(interpret_rows(&mut net, &exp, &data, &exp.runs[0], &dir.path().join("b")).unwrap());
    assert_eq!(a, b);
    assert_eq!(
        std::fs::read(dir.path().join("a/vg.npy")).unwrap(),
        std::fs::read(dir.path().join("b/vg.npy")).unwrap()
    );
}

#[test]
fn no_saliency_gives_no_rows_and_bad_data_is_an_error() {
    let (mut exp, data, mut net) = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut none = exp.clone();
    none.saliency.clear();
    assert!(
        interpret_rows(&mut net, &none, &data, &exp.runs[0], dir.path())
            .unwrap()
            .is_empty()
    );
    // Test images of another shape than the model's input.
    let mut wrong = data.clone();
    wrong.test.shape.c = 1;
    wrong.test.images.truncate(wrong.test.len() * 36);
    let err = interpret_rows(&mut net, &exp, &wrong, &exp.runs[0], dir.path()).unwrap_err();
    assert!(matches!(err, EngineError::Saliency(_)), "{err}");
    assert!(err.to_string().contains("72 features"), "{err}");
    exp.eval.saliency_samples = 0;
    let err = interpret_rows(&mut net, &exp, &data, &exp.runs[0], dir.path()).unwrap_err();
    assert!(err.to_string().contains("no test examples"), "{err}");
}
