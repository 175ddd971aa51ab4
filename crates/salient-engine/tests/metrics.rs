//! Known-answer tests of the interpretability metrics: each against a value computed by hand on
//! a small input (a few numbers, or a linear model whose outputs follow from its weights).
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_engine::metrics::deletion::{self, Direction};
use salient_engine::metrics::randomization::{cascade, cascade_order, ranks, spearman};
use salient_engine::metrics::{self, alignment, complexity, masking, max_sensitivity, sparseness};
use salient_engine::saliency::gradient::Gradient;
use salient_engine::saliency::{Objective, Saliency, SaliencyError};
use salient_ir::{Fill, Layer, SaliencySign, Shape};
use salient_nn::layers::infer::model_def;
use salient_nn::{Mode, Network};

type Mat = Tensor<(usize, usize), f32, Cpu>;

fn mat(rows: &[&[f32]]) -> Mat {
    let n = rows[0].len();
    Cpu::default().tensor_from_vec(
        rows.iter().flat_map(|r| r.iter().copied()).collect(),
        (rows.len(), n),
    )
}

/// Two classes on 4 inputs: z0 = w . x, z1 = b1 (constant).
fn two_class(w: [f32; 4], b1: f32) -> Network<Cpu> {
    let def = model_def("lin", Shape::Flat(4), vec![Layer::Dense { out: 2 }]).unwrap();
    let mut net = Network::new(&def, &[0.0], &[1.0], 0, &Cpu::default()).unwrap();
    let weight: Vec<f32> = w.iter().flat_map(|&v| [v, 0.0]).collect();
    for p in net.params_mut() {
        if p.name.ends_with("weight") {
            p.value.copy_from(&weight);
        } else {
            p.value.copy_from(&[0.0, b1]);
        }
    }
    net
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn gini_index_matches_hurley_rickard_by_hand() {
    // Sorted c = (0, 0, 1, 3), ||c||_1 = 4, N = 4:
    // G = 1 - 2 [ (1/4)(4 - 3 + 1/2)/4 + (3/4)(4 - 4 + 1/2)/4 ] = 1 - 2 (0.09375 + 0.09375) = 0.625.
    assert!((sparseness::gini(&[3.0, 0.0, -1.0, 0.0]) - 0.625).abs() < 1e-12);
    assert!(sparseness::gini(&[2.0; 5]).abs() < 1e-12, "uniform: 0");
    assert!(
        (sparseness::gini(&[0.0, 0.0, 7.0, 0.0]) - 0.75).abs() < 1e-12,
        "one non-zero of N: 1 - 1/N"
    );
    assert_eq!(
        sparseness::gini(&[0.0; 3]),
        0.0,
        "zero map taken as uniform"
    );
    assert_eq!(
        sparseness::per_example(&[3.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0], 2),
        vec![0.625, 0.0]
    );
}

#[test]
fn entropy_complexity_matches_by_hand() {
    // |S| = (1, 1, 2) -> P = (1/4, 1/4, 1/2): H = 2 (1/4) ln 4 + (1/2) ln 2 = 1.5 ln 2.
    assert!((complexity::entropy(&[1.0, -1.0, 2.0]) - 1.5 * 2f64.ln()).abs() < 1e-12);
    assert_eq!(complexity::entropy(&[0.0, 5.0, 0.0]), 0.0);
    assert!((complexity::entropy(&[3.0; 8]) - 8f64.ln()).abs() < 1e-12);
    assert!(
        (complexity::entropy(&[0.0; 8]) - 8f64.ln()).abs() < 1e-12,
        "zero map taken as uniform"
    );
}

#[test]
fn pixel_scores_sum_absolute_channels_and_order_breaks_ties_by_index() {
    // Two pixels of two channels each.
    assert_eq!(
        metrics::pixel_scores(&[1.0, -2.0, 3.0, 0.5, 0.0, 0.0, -1.0, 1.0], 2, 2),
        vec![3.0, 3.5, 0.0, 2.0]
    );
    assert_eq!(
        metrics::order_desc(&[1.0, 3.0, 1.0, 3.0, 2.0]),
        vec![1, 3, 4, 0, 2]
    );
    assert_eq!(metrics::count_of(0.25, 10), 3, "2.5 rounds away from zero");
    assert_eq!(metrics::count_of(1.0, 10), 10);
}

#[test]
fn trapezoid_auc_by_hand() {
    // (1 + 0.5)/2 * 0.5 + (0.5 + 0)/2 * 0.5 = 0.5
    assert!((metrics::trapezoid_auc(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
    assert!((metrics::trapezoid_auc(&[0.0, 1.0, 1.0, 1.0, 0.0]) - 0.75).abs() < 1e-12);
    assert_eq!(metrics::trapezoid_auc(&[0.3]), 0.0);
}

#[test]
fn deletion_and_insertion_curves_of_a_linear_model_by_hand() {
    // z0 = 4 x1 + 3 x2 + 2 x3 + 1 x4, z1 = 0: p0 = sigmoid(z0). x = ones, saliency = w.
    let mut net = two_class([4.0, 3.0, 2.0, 1.0], 0.0);
    let x = mat(&[&[1.0; 4]]);
    let pixel = [4.0, 3.0, 2.0, 1.0];
    let del = deletion::curves(&mut net, &x, &[0], &pixel, 1, 4, Direction::Deletion, 0.0).unwrap();
    // Deleting the top 0..4 pixels leaves z0 = 10, 6, 3, 1, 0.
    let want: Vec<f64> = [10.0, 6.0, 3.0, 1.0, 0.0]
        .iter()
        .map(|&z| sigmoid(z))
        .collect();
    for (a, b) in del[0].iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "deletion {:?} vs {want:?}", del[0]);
    }
    let auc = metrics::trapezoid_auc(&del[0]);
    let hand = (want[0] + 2.0 * (want[1] + want[2] + want[3]) + want[4]) / 8.0;
    assert!((auc - hand).abs() < 1e-6);
    // Inserting the top 0..4 pixels into a black canvas: z0 = 0, 4, 7, 9, 10.
    let ins =
        deletion::curves(&mut net, &x, &[0], &pixel, 1, 4, Direction::Insertion, 0.0).unwrap();
    let want: Vec<f64> = [0.0, 4.0, 7.0, 9.0, 10.0]
        .iter()
        .map(|&z| sigmoid(z))
        .collect();
    for (a, b) in ins[0].iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "insertion {:?} vs {want:?}", ins[0]);
    }
    // Two steps on 4 pixels: k = 0, 2, 4; a reversed (bad) map deletes slower.
    let good =
        deletion::curves(&mut net, &x, &[0], &pixel, 1, 2, Direction::Deletion, 0.0).unwrap();
    let bad = deletion::curves(
        &mut net,
        &x,
        &[0],
        &[1.0, 2.0, 3.0, 4.0],
        1,
        2,
        Direction::Deletion,
        0.0,
    )
    .unwrap();
    assert!((good[0][1] - sigmoid(3.0)).abs() < 1e-6 && (bad[0][1] - sigmoid(7.0)).abs() < 1e-6);
    assert!(metrics::trapezoid_auc(&good[0]) < metrics::trapezoid_auc(&bad[0]));
    // Label 1 uses p1 = 1 - p0.
    let del1 =
        deletion::curves(&mut net, &x, &[1], &pixel, 1, 4, Direction::Deletion, 0.0).unwrap();
    assert!((del1[0][1] - (1.0 - sigmoid(6.0))).abs() < 1e-6);
    assert!(matches!(
        deletion::curves(&mut net, &x, &[0], &pixel, 1, 0, Direction::Deletion, 0.0),
        Err(SaliencyError::Param(_))
    ));
    assert!(matches!(
        deletion::curves(
            &mut net,
            &x,
            &[0],
            &pixel[..3],
            1,
            4,
            Direction::Deletion,
            0.0
        ),
        Err(SaliencyError::Shape { .. })
    ));
}

#[test]
fn masking_curve_of_a_linear_model_by_hand() {
    // z0 = 4 x1 + 3 x2 + 2 x3 + x4, z1 = 5. Example A: x = ones, label 0 (z0 = 10). Masking its
    // top 0, 1, 2, 3 pixels (p = 0, 25, 50, 75) leaves z0 = 10, 6, 3, 1: correct, correct, wrong,
    // wrong. Example B: x = (0, 0, 0, 1), label 1: z0 <= 1 < 5 always, correct at every p.
    let mut net = two_class([4.0, 3.0, 2.0, 1.0], 5.0);
    let x = mat(&[&[1.0; 4], &[0.0, 0.0, 0.0, 1.0]]);
    let pixel = [4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let fill: Mat = Cpu::default().zeros_like(&(2, 4));
    let hits = masking::correct_counts(
        &mut net,
        &x,
        &[0, 1],
        &pixel,
        1,
        &[0.0, 25.0, 50.0, 75.0],
        &fill,
    )
    .unwrap();
    assert_eq!(hits, vec![2, 2, 1, 1]);
    // A constant fill of 0.5 for A: p = 50 gives z0 = 2 + 1.5 + 2 + 1 = 6.5 > 5: still correct.
    let half: Mat = Cpu::default().ones_like(&(2, 4)) * 0.5;
    let hits = masking::correct_counts(&mut net, &x, &[0, 1], &pixel, 1, &[50.0], &half).unwrap();
    assert_eq!(hits, vec![2]);
    assert!(masking::correct_counts(&mut net, &x, &[0, 1], &pixel, 1, &[120.0], &fill).is_err());
}

#[test]
fn masking_fills_by_hand() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = [0.2, 0.4, 0.6, 0.8, 0.1, 0.1, 0.9, 0.5];
    assert_eq!(
        masking::fill_values(&x, 2, 2, Fill::Constant(0.3), &[], &mut rng).unwrap(),
        vec![0.3; 8]
    );
    assert_eq!(
        masking::fill_values(&x, 2, 2, Fill::Mean, &[0.1, 0.7], &mut rng).unwrap(),
        vec![0.1, 0.7, 0.1, 0.7, 0.1, 0.7, 0.1, 0.7]
    );
    let r = masking::fill_values(&x, 2, 2, Fill::Random, &[], &mut rng).unwrap();
    assert!(
        r[..4].iter().all(|v| (0.2..=0.8).contains(v))
            && r[4..].iter().all(|v| (0.1..=0.9).contains(v)),
        "{r:?}"
    );
    assert!(masking::fill_values(&x, 2, 2, Fill::Mean, &[0.1, 0.2, 0.3], &mut rng).is_err());
}

/// A parameter-free "saliency" S(x) = x, so that S(x + d) - S(x) = d exactly.
struct Identity;
impl Saliency<Cpu> for Identity {
    fn map(&mut self, _: &mut Network<Cpu>, x: &Mat, _: &[usize]) -> Result<Mat, SaliencyError> {
        Ok(x.clone())
    }
}

#[test]
fn max_sensitivity_by_hand() {
    let mut net = two_class([4.0, 3.0, 2.0, 1.0], 0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // S(x) = x, x = (2, 0, 0, 0): ratio = ||d|| / 2 with d uniform in [-0.5, 0.5]^4, whose
    // supremum is sqrt(4 * 0.25) / 2 = 0.5; the max of 400 draws comes close from below.
    let x = mat(&[&[2.0, 0.0, 0.0, 0.0], &[0.0; 4]]);
    let s = x.clone();
    let v =
        max_sensitivity::per_example(&mut Identity, &mut net, &x, &[0, 1], &s, 0.5, 400, &mut rng)
            .unwrap();
    let a = v[0].unwrap();
    assert!(a <= 0.5 + 1e-6 && a > 0.4, "{a}");
    assert_eq!(v[1], None, "a zero map has no relative sensitivity");
    // The gradient of a linear logit does not move at all.
    let mut g = Gradient {
        sign: SaliencySign::Signed,
        objective: Objective::Logit,
    };
    let x = mat(&[&[0.5; 4]]);
    let s = g.map(&mut net, &x, &[0]).unwrap();
    let v = max_sensitivity::per_example(&mut g, &mut net, &x, &[0], &s, 0.3, 5, &mut rng).unwrap();
    assert_eq!(v, vec![Some(0.0)]);
    assert!(
        max_sensitivity::per_example(&mut g, &mut net, &x, &[0], &s, 0.0, 5, &mut rng).is_err()
    );
    assert!(
        max_sensitivity::per_example(&mut g, &mut net, &x, &[0], &s, 0.1, 0, &mut rng).is_err()
    );
}

#[test]
fn spearman_by_hand() {
    assert_eq!(ranks(&[10.0, 30.0, 20.0]), vec![1.0, 3.0, 2.0]);
    assert_eq!(ranks(&[1.0, 1.0, 2.0]), vec![1.5, 1.5, 3.0]);
    assert!((spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]) + 1.0).abs() < 1e-12);
    // 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60 = 0.8 (no ties).
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
    assert_eq!(
        spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]),
        0.0,
        "constant map: 0"
    );
}

#[test]
fn randomization_cascade_by_hand_and_leaves_the_trained_network_alone() {
    let def = model_def(
        "mlp",
        Shape::Flat(4),
        vec![
            Layer::Dense { out: 5 },
            Layer::Relu,
            Layer::Dense { out: 2 },
        ],
    )
    .unwrap();
    let mut net = Network::new(&def, &[0.0], &[1.0], 3, &Cpu::default()).unwrap();
    assert_eq!(
        cascade_order(&net),
        vec![2, 0],
        "layers with parameters, top down"
    );
    let x = mat(&[&[0.1, 0.5, 0.9, 0.3], &[0.7, 0.2, 0.4, 0.8]]);
    let labels = [0, 1];
    let before = net.forward(x.clone(), Mode::Eval).as_vec();
    // A map that ignores the parameters keeps rank correlation 1 throughout.
    let id = Identity.map(&mut net, &x, &labels).unwrap();
    let steps = cascade(&mut Identity, &net, &x, &labels, &id, 9).unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| (s.layer, s.name.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "dense2"), (0, "dense1")]
    );
    assert!(steps
        .iter()
        .all(|s| s.similarity.iter().all(|r| (r - 1.0).abs() < 1e-12)));
    // The gradient map: each step's value is the Spearman correlation of |S| of the trained
    // network and of a copy re-initialised by hand the same way.
    let mut g = Gradient {
        sign: SaliencySign::Signed,
        objective: Objective::LogProb,
    };
    let trained = g.map(&mut net, &x, &labels).unwrap();
    let steps = cascade(&mut g, &net, &x, &labels, &trained, 9).unwrap();
    let mut copy = net.clone();
    let t = metrics::pixel_scores(&trained.as_vec(), 2, 1);
    for step in &steps {
        copy.reinit_layer(step.layer, 9);
        let r = metrics::pixel_scores(&g.map(&mut copy, &x, &labels).unwrap().as_vec(), 2, 1);
        for i in 0..2 {
            assert!(
                (step.similarity[i] - spearman(&t[i * 4..i * 4 + 4], &r[i * 4..i * 4 + 4])).abs()
                    < 1e-12
            );
        }
    }
    assert!(
        steps.last().unwrap().similarity.iter().any(|r| *r < 0.999),
        "a fully random network changes the map"
    );
    assert_eq!(
        net.forward(x, Mode::Eval).as_vec(),
        before,
        "the trained network is untouched"
    );
}

#[test]
fn alignment_by_hand() {
    let x = mat(&[&[3.0, 4.0], &[1.0, 0.0], &[1.0, 1.0], &[0.0, 0.0]]);
    let s = mat(&[&[4.0, -3.0], &[-2.0, 0.0], &[1.0, 0.0], &[1.0, 1.0]]);
    let a = alignment::per_example(&x, &s);
    let want = [0.0, 1.0, 1.0 / 2f64.sqrt(), 0.0];
    for (v, w) in a.iter().zip(want) {
        assert!((v - w).abs() < 1e-6, "{a:?} vs {want:?}");
    }
}
