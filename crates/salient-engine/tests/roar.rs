//! Known-answer tests of ROAR and KAR (Hooker et al. 2019) on a synthetic task where only four
//! known pixels carry the label: removing them (ROAR with the oracle ranking) must drop the
//! retrained model to chance, keeping only them (KAR) must not, and removing half of the other
//! pixels (ROAR with the anti-oracle ranking) must not either. Then the metric itself, through
//! the `Metric` trait: its rows, and its cache (a rerun retrains nothing and computes no map).
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use salient_data::{Dataset, Splits};
use salient_engine::metrics::roar::{self, Mode, Ranking, Retrain, RetrainJob};
use salient_engine::metrics::{Env, Metric, RunInfo};
use salient_engine::regime;
use salient_engine::saliency::{self, Objective, Saliency, SaliencyContext, SaliencyError};
use salient_engine::train::{self, TrainInputs};
use salient_engine::EngineError;
use salient_ir::results::{
    KAR, KAR_RANDOM, KAR_RANDOM_STD, KAR_SCORE, KAR_STD, ROAR, ROAR_RANDOM, ROAR_RANDOM_STD,
    ROAR_SCORE, ROAR_STD,
};
use salient_ir::{Experiment, ImageShape, RetrainSpec};
use salient_nn::Network;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// The only pixels (of 8 x 8) whose value depends on the label.
const INFORMATIVE: [usize; 4] = [9, 22, 45, 54];
const SIDE: usize = 8;
const P: usize = SIDE * SIDE;
/// round(6% of 64) = 4: exactly the informative pixels.
const K_INFORMATIVE: u32 = 6;

/// `n` images, balanced labels: every pixel U(0, 1) except the informative ones, which are
/// 0.25 (class 0) or 0.75 (class 1) plus U(-0.15, 0.15).
fn known_pixels(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * P);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let y = (i % 2) as u8;
        for p in 0..P {
            let v = if INFORMATIVE.contains(&p) {
                0.25 + 0.5 * y as f32 + rng.gen_range(-0.15f32..0.15)
            } else {
                rng.gen::<f32>()
            };
            images.push(v);
        }
        labels.push(y);
    }
    Dataset {
        images,
        labels,
        shape: ImageShape {
            c: 1,
            h: SIDE,
            w: SIDE,
        },
        classes: 2,
    }
}

fn splits() -> Splits {
    Splits {
        train: known_pixels(2000, 1),
        test: known_pixels(500, 2),
        fingerprint: "known-pixels-test-v1".into(),
        files: Vec::new(),
    }
}

const SPEC: &str = r#"
experiment roar_known
data synthetic { shape = (1, 8, 8)  classes = 2  train = 2000  test = 500  noise = 0.2  seed = 7 }
model mlp {
  flatten
  dense(out = 16)
  relu
  dense(out = 2)
}
train { optimizer = adam  lr = 1e-2  epochs = 6  batch = 50  seed = 0 }
regime standard
saliency gradient { sign = absolute }
saliency gradient_input
"#;

fn experiment() -> Experiment {
    let out = salient_lang::check("roar_test.exp", SPEC);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    out.experiment
        .unwrap_or_else(|| panic!("spec does not check: {msgs:?}"))
}

/// Every image ranked the same way: the informative pixels first (`oracle`) or last.
fn fixed_ranking(images: usize, oracle: bool) -> Vec<f32> {
    let one: Vec<f32> = (0..P)
        .map(|p| match (INFORMATIVE.contains(&p), oracle) {
            (true, true) | (false, false) => 1.0,
            _ => 0.0,
        })
        .collect();
    (0..images).flat_map(|_| one.iter().copied()).collect()
}

#[test]
fn masked_replaces_the_top_pixels_or_all_but_them_on_every_channel() {
    // One 2 x 2 image of 2 channels; pixel scores (3, 1, 3, 0): order 0, 2 (tie: lower first), 1, 3.
    let data = Dataset {
        images: vec![1., 2., 3., 4., 5., 6., 7., 8.],
        labels: vec![0],
        shape: ImageShape { c: 2, h: 2, w: 2 },
        classes: 2,
    };
    let scores = [3.0, 1.0, 3.0, 0.0];
    let fill = [9.0, -9.0];
    let roar50 = roar::masked(&data, &scores, 50, Mode::Roar, &fill).unwrap();
    assert_eq!(roar50.images, [9., -9., 3., 4., 9., -9., 7., 8.]);
    let kar50 = roar::masked(&data, &scores, 50, Mode::Kar, &fill).unwrap();
    assert_eq!(kar50.images, [1., 2., 9., -9., 5., 6., 9., -9.]);
    // round(0.3 * 4) = 1: only the first of the tie.
    let roar30 = roar::masked(&data, &scores, 30, Mode::Roar, &fill).unwrap();
    assert_eq!(roar30.images, [9., -9., 3., 4., 5., 6., 7., 8.]);
    assert_eq!(roar30.labels, data.labels);
    // KAR at 100% keeps everything; ROAR at 100% replaces everything.
    assert_eq!(
        roar::masked(&data, &scores, 100, Mode::Kar, &fill).unwrap(),
        data
    );
    assert_eq!(
        roar::masked(&data, &scores, 100, Mode::Roar, &fill)
            .unwrap()
            .images,
        [9., -9., 9., -9., 9., -9., 9., -9.]
    );
    // Bad input is an error.
    assert!(matches!(
        roar::masked(&data, &scores[..3], 50, Mode::Roar, &fill),
        Err(SaliencyError::Shape { .. })
    ));
    assert!(matches!(
        roar::masked(&data, &scores, 50, Mode::Roar, &fill[..1]),
        Err(SaliencyError::Shape { .. })
    ));
    assert!(matches!(
        roar::masked(&data, &scores, 101, Mode::Roar, &fill),
        Err(SaliencyError::Param(_))
    ));
}

#[test]
fn random_masking_is_seeded_and_replaces_the_same_count_per_image() {
    let data = known_pixels(20, 3);
    let fill = [-1.0];
    let a = roar::masked_random(&data, 11, 25, Mode::Roar, &fill).unwrap();
    let b = roar::masked_random(&data, 11, 25, Mode::Roar, &fill).unwrap();
    let c = roar::masked_random(&data, 12, 25, Mode::Roar, &fill).unwrap();
    assert_eq!(a, b, "same seed, same masks");
    assert_ne!(a, c, "another seed, other masks");
    for i in 0..data.len() {
        let replaced = a.image(i).iter().filter(|&&v| v == -1.0).count();
        assert_eq!(replaced, 16, "round(25% of 64) pixels of image {i}");
    }
    let kar = roar::masked_random(&data, 11, 25, Mode::Kar, &fill).unwrap();
    for i in 0..data.len() {
        // KAR with the same ranking replaces exactly the pixels ROAR keeps.
        for (p, (&r, &k)) in a.image(i).iter().zip(kar.image(i)).enumerate() {
            assert!(
                (r == -1.0) != (k == -1.0),
                "image {i} pixel {p}: replaced by both or neither"
            );
        }
    }
}

fn retrained(
    exp: &Experiment,
    data: &Splits,
    mode: Mode,
    percent: u32,
    ranking: Ranking<'_>,
) -> f64 {
    let model = exp.model("mlp").unwrap();
    let interrupt = AtomicBool::new(false);
    let fill = data.train.channel_mean();
    let job = RetrainJob {
        label: "known-pixels",
        model,
        mean: &exp.data.mean,
        std: &exp.data.std,
        train_config: &exp.runs[0].train,
        train: &data.train,
        test: &data.test,
        mode,
        percent,
        fill: &fill,
        eval_batch: 500,
        interrupt: &interrupt,
        quiet: true,
    };
    roar::retrain_accuracy(&Cpu::default(), &job, ranking)
        .unwrap()
        .accuracy
}

#[test]
fn oracle_roar_drops_to_chance_and_kar_keeps_the_label() {
    let exp = experiment();
    let data = splits();
    let (ntr, nte) = (data.train.len(), data.test.len());
    let o = (fixed_ranking(ntr, true), fixed_ranking(nte, true));
    let a = (fixed_ranking(ntr, false), fixed_ranking(nte, false));
    let oracle = Ranking::Scores {
        train: &o.0,
        test: &o.1,
    };
    let anti = Ranking::Scores {
        train: &a.0,
        test: &a.1,
    };
    let full = retrained(&exp, &data, Mode::Kar, 100, oracle);
    assert!(full > 0.9, "the unmodified task is learnt: {full}");
    let roar = retrained(&exp, &data, Mode::Roar, K_INFORMATIVE, oracle);
    assert!(
        roar < 0.6,
        "ROAR removing the 4 informative pixels must fall to chance: {roar}"
    );
    let kar = retrained(&exp, &data, Mode::Kar, K_INFORMATIVE, oracle);
    assert!(
        kar > 0.9,
        "KAR keeping only the 4 informative pixels must keep the label: {kar}"
    );
    let roar_anti = retrained(&exp, &data, Mode::Roar, 50, anti);
    assert!(
        roar_anti > 0.9,
        "ROAR removing half of the uninformative pixels must not hurt: {roar_anti}"
    );
    let kar_anti = retrained(&exp, &data, Mode::Kar, 50, anti);
    assert!(
        kar_anti < 0.6,
        "KAR keeping only uninformative pixels must fall to chance: {kar_anti}"
    );
}

/// A network trained on the unmodified task (the run `evaluate`s).
fn trained_net(exp: &Experiment, data: &Splits) -> Network<Cpu> {
    let run = &exp.runs[0];
    let model = exp.model(&run.model).unwrap();
    let dev = Cpu::default();
    let mut net = Network::new(model, &exp.data.mean, &exp.data.std, run.train.seed, &dev).unwrap();
    let mut regime = regime::build::<Cpu>(&run.regime, &data.train.channel_mean(), model).unwrap();
    let interrupt = AtomicBool::new(false);
    let inputs = TrainInputs {
        run,
        train: &data.train,
        test: &data.test,
        eval_batch: 500,
        interrupt: &interrupt,
    };
    let progress = salient_engine::progress::RunProgress::new(&run.id, true);
    train::train(&mut net, regime.as_mut(), &inputs, &progress).unwrap();
    net
}

fn method(exp: &Experiment, index: usize, data: &Splits) -> Box<dyn Saliency<Cpu>> {
    let ctx = SaliencyContext {
        objective: Objective::LogProb,
        channel_mean: data.train.channel_mean(),
        seed: 0,
    };
    saliency::build::<Cpu>(&exp.saliency[index].method, &ctx).unwrap()
}

/// Run `metric` for saliency method `index` of the spec, with the out folder `out`.
fn finish(
    metric: &mut Retrain,
    exp: &Experiment,
    data: &Splits,
    net: &mut Network<Cpu>,
    index: usize,
    out: &Path,
    interrupt: &AtomicBool,
) -> Result<Vec<salient_engine::results::ResultRow>, EngineError> {
    let mut m = method(exp, index, data);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut env = Env {
        net,
        method: m.as_mut(),
        rng: &mut rng,
    };
    let info = RunInfo {
        exp,
        run: &exp.runs[0],
        data,
        method: &exp.saliency[index],
        out_dir: out,
        interrupt,
        quiet: true,
    };
    Metric::<Cpu>::finish(metric, &mut env, &info)
}

fn value(rows: &[salient_engine::results::ResultRow], metric: &str, point: Option<f64>) -> f64 {
    let hits: Vec<_> = rows
        .iter()
        .filter(|r| r.metric == metric && r.point == point)
        .collect();
    assert_eq!(hits.len(), 1, "one row {metric} at {point:?}: {rows:?}");
    hits[0].value
}

/// (path, modification time) of every record.json under `<out>/retrain`.
fn records(out: &Path) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(out.join("retrain"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path().join("record.json");
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn metric_rows_and_a_rerun_retrains_nothing() {
    let exp = experiment();
    let data = splits();
    let mut net = trained_net(&exp, &data);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let interrupt = AtomicBool::new(false);
    let spec = RetrainSpec {
        percents: vec![K_INFORMATIVE, 50],
        seeds: 2,
        epochs: Some(4),
        random: true,
    };

    // First run: 2 percents x 2 seeds x (method + random) = 8 trainings.
    let mut roar = Retrain::new(Mode::Roar, spec.clone());
    let rows = finish(&mut roar, &exp, &data, &mut net, 0, out, &interrupt).unwrap();
    assert_eq!(roar.trained(), 8);
    assert_eq!(roar.reused(), 0);
    assert_eq!(
        roar.mapped(),
        2500,
        "maps of the whole training and test sets"
    );
    assert_eq!(rows.len(), 2 * 4 + 1, "{rows:?}");
    for r in &rows {
        assert_eq!(r.run, exp.runs[0].id);
        assert!(r.saliency.is_none(), "the caller names the method");
        assert!(r.value.is_finite());
    }
    let g6 = value(&rows, ROAR, Some(6.0));
    let r6 = value(&rows, ROAR_RANDOM, Some(6.0));
    let g50 = value(&rows, ROAR, Some(50.0));
    let r50 = value(&rows, ROAR_RANDOM, Some(50.0));
    for m in [ROAR_STD, ROAR_RANDOM_STD] {
        for k in [6.0, 50.0] {
            let sd = value(&rows, m, Some(k));
            assert!((0.0..0.5).contains(&sd), "{m} at {k}: {sd}");
        }
    }
    // |gradient| of the trained network ranks the informative pixels first: removing its top
    // 6% hurts far more than removing a random 6%.
    assert!(g6 < 0.75, "gradient ROAR 6%: {g6}");
    assert!(r6 > 0.8, "random ROAR 6%: {r6}");
    let score = value(&rows, ROAR_SCORE, None);
    let want = ((r6 - g6) + (r50 - g50)) / 2.0;
    assert!((score - want).abs() < 1e-12, "score {score} vs {want}");
    assert!(
        score > 0.1,
        "the gradient beats the random ranking: {score}"
    );

    // Rerun on the same folder: every point cached, no map, no training, same rows.
    let before = records(out);
    assert_eq!(before.len(), 8);
    let mut again = Retrain::new(Mode::Roar, spec.clone());
    let rows2 = finish(&mut again, &exp, &data, &mut net, 0, out, &interrupt).unwrap();
    assert_eq!((again.trained(), again.reused(), again.mapped()), (0, 8, 0));
    assert_eq!(rows2, rows);
    assert_eq!(records(out), before, "no record rewritten");

    // Another method of the same run shares the random baseline: only its own points train.
    let mut other = Retrain::new(Mode::Roar, spec.clone());
    finish(&mut other, &exp, &data, &mut net, 1, out, &interrupt).unwrap();
    assert_eq!((other.trained(), other.reused()), (4, 4));

    // An added percent costs only its own points.
    let mut more = Retrain::new(
        Mode::Roar,
        RetrainSpec {
            percents: vec![K_INFORMATIVE, 30, 50],
            ..spec.clone()
        },
    );
    let rows3 = finish(&mut more, &exp, &data, &mut net, 0, out, &interrupt).unwrap();
    assert_eq!((more.trained(), more.reused()), (4, 8));
    assert_eq!(rows3.len(), 3 * 4 + 1);
    assert_eq!(value(&rows3, ROAR, Some(6.0)), g6);

    // KAR: the rows of its own names; keeping the top 6% of the gradient keeps the label.
    let mut kar = Retrain::new(
        Mode::Kar,
        RetrainSpec {
            percents: vec![K_INFORMATIVE],
            seeds: 1,
            epochs: Some(4),
            random: true,
        },
    );
    let rows = finish(&mut kar, &exp, &data, &mut net, 0, out, &interrupt).unwrap();
    assert_eq!(rows.len(), 5);
    let k6 = value(&rows, KAR, Some(6.0));
    let kr6 = value(&rows, KAR_RANDOM, Some(6.0));
    assert_eq!(value(&rows, KAR_STD, Some(6.0)), 0.0, "one seed: 0");
    assert_eq!(value(&rows, KAR_RANDOM_STD, Some(6.0)), 0.0);
    assert!((value(&rows, KAR_SCORE, None) - (k6 - kr6)).abs() < 1e-12);
    assert!(k6 > kr6 + 0.1, "gradient KAR {k6} vs random {kr6}");
}

/// A method that returns NaN everywhere.
struct NanMaps;

impl Saliency<Cpu> for NanMaps {
    fn map(
        &mut self,
        _: &mut Network<Cpu>,
        x: &Tensor<(usize, usize), f32, Cpu>,
        _: &[usize],
    ) -> Result<Tensor<(usize, usize), f32, Cpu>, SaliencyError> {
        Ok(x.clone() * f32::NAN)
    }
}

#[test]
fn bad_input_is_an_error_and_interrupt_stops_the_maps() {
    let exp = experiment();
    let data = splits();
    let model = exp.model("mlp").unwrap();
    let mut net = Network::new(model, &exp.data.mean, &exp.data.std, 0, &Cpu::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let spec = |percents: Vec<u32>, seeds: usize| RetrainSpec {
        percents,
        seeds,
        epochs: Some(1),
        random: false,
    };
    let param = |r: Result<Vec<_>, EngineError>, what: &str| match r {
        Err(EngineError::Saliency(SaliencyError::Param(m))) => assert!(m.contains(what), "{m}"),
        other => panic!("expected a parameter error about {what}, got {other:?}"),
    };
    for (p, what) in [
        (vec![0], "percent 0"),
        (vec![100], "percent 100"),
        (vec![50, 30], "increasing"),
        (vec![], "no percents"),
    ] {
        let mut m = Retrain::new(Mode::Roar, spec(p, 1));
        param(
            finish(&mut m, &exp, &data, &mut net, 0, dir.path(), &stop),
            what,
        );
    }
    let mut m = Retrain::new(Mode::Kar, spec(vec![50], 0));
    param(
        finish(&mut m, &exp, &data, &mut net, 0, dir.path(), &stop),
        "seeds",
    );

    // A model the experiment does not define.
    let mut bad = exp.clone();
    bad.runs[0].model = "nope".into();
    let mut m = Retrain::new(Mode::Roar, spec(vec![50], 1));
    param(
        finish(&mut m, &bad, &data, &mut net, 0, dir.path(), &stop),
        "`nope`",
    );

    // Empty data.
    let mut empty = data.clone();
    empty.test = empty.test.subset(0);
    let mut m = Retrain::new(Mode::Roar, spec(vec![50], 1));
    param(
        finish(&mut m, &exp, &empty, &mut net, 0, dir.path(), &stop),
        "empty",
    );

    // A NaN in the maps names the image.
    let mut m = Retrain::new(Mode::Roar, spec(vec![50], 1));
    let mut nan = NanMaps;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut env = Env {
        net: &mut net,
        method: &mut nan,
        rng: &mut rng,
    };
    let info = RunInfo {
        exp: &exp,
        run: &exp.runs[0],
        data: &data,
        method: &exp.saliency[0],
        out_dir: dir.path(),
        interrupt: &stop,
        quiet: true,
    };
    param(
        Metric::<Cpu>::finish(&mut m, &mut env, &info),
        "training image 0 has a non-finite value",
    );

    // Ctrl-C before the maps: interrupted, nothing cached.
    let stop = AtomicBool::new(true);
    let mut m = Retrain::new(Mode::Roar, spec(vec![50], 1));
    let r = finish(&mut m, &exp, &data, &mut net, 0, dir.path(), &stop);
    assert!(matches!(r, Err(EngineError::Interrupted)), "{r:?}");
    assert_eq!(m.trained(), 0);
    assert!(!dir.path().join("retrain").exists());
}

const E2E: &str = r#"
experiment roar_e2e
data synthetic { shape = (1, 8, 8)  classes = 3  train = 192  test = 96  noise = 0.2  seed = 7 }
model mlp {
  flatten
  dense(out = 16)
  relu
  dense(out = 3)
}
train { optimizer = adam  lr = 1e-2  epochs = 3  batch = 32  seed = 0 }
regime standard
saliency gradient { sign = absolute }
metrics {
  roar(percents = (30, 60), seeds = 2, epochs = 2)
  kar(percents = (30, 60), seeds = 1, epochs = 2, random = false)
}
"#;

#[test]
fn salient_run_writes_the_rows_and_a_second_run_retrains_nothing() {
    let out = salient_lang::check("roar_e2e.exp", E2E);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    let exp = out
        .experiment
        .unwrap_or_else(|| panic!("spec does not check: {msgs:?}"));
    let dir = tempfile::tempdir().unwrap();
    let opts = salient_engine::RunOptions {
        out_dir: dir.path().to_path_buf(),
        device: salient_engine::DeviceKind::Cpu,
        quiet: true,
        retrain: false,
        only: Vec::new(),
        interrupt: std::sync::Arc::new(AtomicBool::new(false)),
    };
    salient_engine::run(&exp, E2E, &opts).unwrap();
    let rows = |dir: &Path| -> Vec<_> {
        salient_engine::results::read_results(&dir.join("results.csv"))
            .unwrap()
            .into_iter()
            .filter(|r| r.metric.starts_with("roar") || r.metric.starts_with("kar"))
            .collect()
    };
    let first = rows(dir.path());
    // ROAR: 2 percents x (mean, std, random, random std) + score; KAR without random: 2 x 2.
    assert_eq!(first.len(), 2 * 4 + 1 + 2 * 2, "{first:?}");
    for r in &first {
        assert_eq!(r.saliency.as_deref(), Some("gradient"), "{r:?}");
        assert!(r.value.is_finite());
    }
    for (metric, k) in [
        (ROAR, 30.0),
        (ROAR_RANDOM, 60.0),
        (KAR, 30.0),
        (KAR_STD, 60.0),
    ] {
        value(&first, metric, Some(k));
    }
    value(&first, ROAR_SCORE, None);
    assert!(first
        .iter()
        .all(|r| r.metric != KAR_RANDOM && r.metric != KAR_SCORE));
    // ROAR: 2 x 2 x (method + random); KAR: 2 x 1.
    let before = records(dir.path());
    assert_eq!(before.len(), 2 * 2 * 2 + 2);
    salient_engine::run(&exp, E2E, &opts).unwrap();
    assert_eq!(records(dir.path()), before, "the rerun retrained nothing");
    assert_eq!(rows(dir.path()), first);
}
