//! Known-answer tests of the saliency methods: linear models (the gradient is a weight column,
//! or that column minus the softmax-weighted mean column for log p_y), completeness of
//! integrated gradients on a small nonlinear model, SmoothGrad / VarGrad of a linear model, and
//! clear errors for bad input.
use dfdx::prelude::*;
use salient_engine::saliency::integrated::{IntegratedGradients, Rule};
use salient_engine::saliency::smoothgrad::SmoothGrad;
use salient_engine::saliency::{
    self, npy, objective_values, Objective, Saliency, SaliencyContext, SaliencyError,
};
use salient_ir::{Baseline, Layer, SaliencyMethod, SaliencySign, Shape, SmoothGradVariant};
use salient_nn::layers::infer::model_def;
use salient_nn::Network;

type Mat = Tensor<(usize, usize), f32, Cpu>;

/// A linear model z = W^T x + b with W given as [in][out] rows.
fn linear(w: &[&[f32]], b: &[f32]) -> Network<Cpu> {
    let (n_in, n_out) = (w.len(), b.len());
    let def = model_def("lin", Shape::Flat(n_in), vec![Layer::Dense { out: n_out }]).unwrap();
    let mut net = Network::new(&def, &[0.0], &[1.0], 0, &Cpu::default()).unwrap();
    let flat: Vec<f32> = w.iter().flat_map(|r| r.iter().copied()).collect();
    for p in net.params_mut() {
        if p.name.ends_with("weight") {
            p.value.copy_from(&flat);
        } else {
            p.value.copy_from(b);
        }
    }
    net
}

/// A small nonlinear model: dense 4 -> 6, tanh, dense 6 -> 3 (seeded PyTorch-style init).
fn nonlinear(seed: u64) -> Network<Cpu> {
    let def = model_def(
        "mlp",
        Shape::Flat(4),
        vec![
            Layer::Dense { out: 6 },
            Layer::Tanh,
            Layer::Dense { out: 3 },
        ],
    )
    .unwrap();
    Network::new(&def, &[0.0], &[1.0], seed, &Cpu::default()).unwrap()
}

fn mat(rows: &[&[f32]]) -> Mat {
    let n = rows[0].len();
    Cpu::default().tensor_from_vec(
        rows.iter().flat_map(|r| r.iter().copied()).collect(),
        (rows.len(), n),
    )
}

fn close(a: &[f32], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (*x as f64 - y).abs() <= tol,
            "element {i}: got {x}, expected {y} (tol {tol})\n got {a:?}\nwant {b:?}"
        );
    }
}

const W: [[f32; 3]; 4] = [
    [1.0, -2.0, 0.5],
    [0.0, 3.0, -1.0],
    [2.0, 1.0, 1.0],
    [-1.0, 0.0, 4.0],
];
const B: [f32; 3] = [0.1, -0.2, 0.3];

fn w_rows() -> Vec<&'static [f32]> {
    W.iter().map(|r| &r[..]).collect()
}

/// Hand computation: d log p_y / dx = W[:, y] - sum_j p_j W[:, j], p = softmax(W^T x + b).
fn logprob_grad(x: &[f32], y: usize) -> Vec<f64> {
    let z: Vec<f64> = (0..3)
        .map(|j| B[j] as f64 + (0..4).map(|i| W[i][j] as f64 * x[i] as f64).sum::<f64>())
        .collect();
    let m = z.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    let p: Vec<f64> = e.iter().map(|v| v / s).collect();
    (0..4)
        .map(|i| W[i][y] as f64 - (0..3).map(|j| p[j] * W[i][j] as f64).sum::<f64>())
        .collect()
}

const X0: [f32; 4] = [0.2, 0.9, 0.4, 0.7];
const X1: [f32; 4] = [1.0, 0.0, 0.5, 0.3];

#[test]
fn gradient_of_the_logit_of_a_linear_model_is_the_weight_column() {
    let mut net = linear(&w_rows(), &B);
    let x = mat(&[&X0, &X1]);
    let mut g = saliency::gradient::Gradient {
        sign: SaliencySign::Signed,
        objective: Objective::Logit,
    };
    let s = g.map(&mut net, &x, &[1, 2]).unwrap().as_vec();
    let want: Vec<f64> = (0..4)
        .map(|i| W[i][1] as f64)
        .chain((0..4).map(|i| W[i][2] as f64))
        .collect();
    close(&s, &want, 1e-6);
    let mut a = saliency::gradient::Gradient {
        sign: SaliencySign::Absolute,
        objective: Objective::Logit,
    };
    let s = a.map(&mut net, &x, &[1, 2]).unwrap().as_vec();
    close(&s, &want.iter().map(|v| v.abs()).collect::<Vec<_>>(), 1e-6);
}

#[test]
fn gradient_of_log_p_y_of_a_linear_model_matches_the_hand_computation() {
    let mut net = linear(&w_rows(), &B);
    let x = mat(&[&X0, &X1]);
    let mut g = saliency::gradient::Gradient {
        sign: SaliencySign::Signed,
        objective: Objective::LogProb,
    };
    let s = g.map(&mut net, &x, &[0, 2]).unwrap().as_vec();
    let want: Vec<f64> = logprob_grad(&X0, 0)
        .into_iter()
        .chain(logprob_grad(&X1, 2))
        .collect();
    close(&s, &want, 1e-5);
    // The default objective of `build` is log p_y.
    let ctx = SaliencyContext {
        objective: Objective::default(),
        channel_mean: vec![0.0],
        seed: 0,
    };
    let mut built = saliency::build::<Cpu>(
        &SaliencyMethod::Gradient {
            sign: SaliencySign::Signed,
        },
        &ctx,
    )
    .unwrap();
    close(
        &built.map(&mut net, &x, &[0, 2]).unwrap().as_vec(),
        &want,
        1e-5,
    );
}

#[test]
fn gradient_times_input_is_the_elementwise_product() {
    let mut net = linear(&w_rows(), &B);
    let x = mat(&[&X0, &X1]);
    let mut gi = saliency::gradient::GradientInput {
        objective: Objective::LogProb,
    };
    let s = gi.map(&mut net, &x, &[1, 0]).unwrap().as_vec();
    let g0 = logprob_grad(&X0, 1);
    let g1 = logprob_grad(&X1, 0);
    let want: Vec<f64> = (0..4)
        .map(|i| g0[i] * X0[i] as f64)
        .chain((0..4).map(|i| g1[i] * X1[i] as f64))
        .collect();
    close(&s, &want, 1e-5);
}

#[test]
fn integrated_gradients_of_a_linear_logit_is_exact_with_one_step() {
    let mut net = linear(&w_rows(), &B);
    let x = mat(&[&X0]);
    for rule in [Rule::Midpoint, Rule::Trapezoid] {
        let mut ig =
            IntegratedGradients::new(1, Baseline::Zero, rule, Objective::Logit, vec![0.0], 0)
                .unwrap();
        let s = ig.map(&mut net, &x, &[2]).unwrap().as_vec();
        let want: Vec<f64> = (0..4).map(|i| X0[i] as f64 * W[i][2] as f64).collect();
        close(&s, &want, 1e-6);
    }
}

/// Sum of attributions minus (obj(x) - obj(x0)), per example.
fn completeness_gap(
    net: &mut Network<Cpu>,
    ig: &mut IntegratedGradients,
    x: &Mat,
    x0: &Mat,
    labels: &[usize],
) -> Vec<f64> {
    let s = ig.map_from(net, x, x0, labels).unwrap().as_vec();
    let fx = objective_values(net, x, labels, ig.objective).unwrap();
    let f0 = objective_values(net, x0, labels, ig.objective).unwrap();
    s.chunks(4)
        .zip(fx.iter().zip(&f0))
        .map(|(row, (a, b))| row.iter().map(|&v| v as f64).sum::<f64>() - (*a as f64 - *b as f64))
        .collect()
}

#[test]
fn integrated_gradients_satisfy_completeness_on_a_nonlinear_model() {
    let mut net = nonlinear(3);
    // Scale up the weights so that tanh is far from linear on [0, 1] inputs.
    for p in net.params_mut() {
        let v: Vec<f32> = p.value.as_vec().iter().map(|w| w * 4.0).collect();
        p.value.copy_from(&v);
    }
    let x = mat(&[&X0, &X1, &[0.9, 0.1, 0.8, 0.2]]);
    let labels = [0, 1, 2];
    for objective in [Objective::LogProb, Objective::Logit] {
        for (baseline, mean) in [
            (Baseline::Zero, vec![0.0]),
            (Baseline::Mean, vec![0.3]),
            (Baseline::Uniform, vec![0.0]),
        ] {
            for rule in [Rule::Midpoint, Rule::Trapezoid] {
                let mut ig =
                    IntegratedGradients::new(128, baseline, rule, objective, mean.clone(), 5)
                        .unwrap();
                let x0 = ig.baseline_for(&net, &x).unwrap();
                let gap = completeness_gap(&mut net, &mut ig, &x, &x0, &labels);
                for g in &gap {
                    assert!(
                        g.abs() < 2e-3,
                        "{objective:?} {baseline:?} {rule:?}: completeness gap {g}"
                    );
                }
                // The difference obj(x) - obj(x0) is not trivially small: the test has teeth.
                let fx = objective_values(&mut net, &x, &labels, objective).unwrap();
                let f0 = objective_values(&mut net, &x0, &labels, objective).unwrap();
                assert!(fx.iter().zip(&f0).any(|(a, b)| (a - b).abs() > 0.1));
            }
        }
    }
    // Few steps leave a larger gap than many: the quadrature converges.
    let x0 = Cpu::default().zeros_like(x.shape());
    let mut coarse = IntegratedGradients::new(
        2,
        Baseline::Zero,
        Rule::Midpoint,
        Objective::LogProb,
        vec![0.0],
        0,
    )
    .unwrap();
    let mut fine = IntegratedGradients::new(
        128,
        Baseline::Zero,
        Rule::Midpoint,
        Objective::LogProb,
        vec![0.0],
        0,
    )
    .unwrap();
    let gc: f64 = completeness_gap(&mut net, &mut coarse, &x, &x0, &labels)
        .iter()
        .map(|g| g.abs())
        .sum();
    let gf: f64 = completeness_gap(&mut net, &mut fine, &x, &x0, &labels)
        .iter()
        .map(|g| g.abs())
        .sum();
    assert!(
        gf < gc,
        "128 steps (gap {gf}) should beat 2 steps (gap {gc})"
    );
}

#[test]
fn mean_baseline_follows_the_channels_last_layout() {
    let def = model_def(
        "img",
        Shape::Image { c: 2, h: 1, w: 2 },
        vec![Layer::Flatten, Layer::Dense { out: 2 }],
    )
    .unwrap();
    let net = Network::new(&def, &[0.0], &[1.0], 0, &Cpu::default()).unwrap();
    let x: Mat = Cpu::default().zeros_like(&(2, 4));
    let mut ig = IntegratedGradients::new(
        4,
        Baseline::Mean,
        Rule::Midpoint,
        Objective::LogProb,
        vec![0.25, 0.75],
        0,
    )
    .unwrap();
    assert_eq!(
        ig.baseline_for(&net, &x).unwrap().as_vec(),
        vec![0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75]
    );
    let mut bad = IntegratedGradients::new(
        4,
        Baseline::Mean,
        Rule::Midpoint,
        Objective::LogProb,
        vec![0.1, 0.2, 0.3],
        0,
    )
    .unwrap();
    assert!(matches!(
        bad.baseline_for(&net, &x),
        Err(SaliencyError::Shape { .. })
    ));
}

#[test]
fn smoothgrad_of_a_linear_logit_is_its_gradient_and_vargrad_is_zero() {
    let mut net = linear(&w_rows(), &B);
    let x = mat(&[&X0, &X1]);
    let labels = [1, 2];
    let want: Vec<f64> = (0..4)
        .map(|i| W[i][1] as f64)
        .chain((0..4).map(|i| W[i][2] as f64))
        .collect();
    let mut sg = SmoothGrad::new(16, 0.3, SmoothGradVariant::Mean, Objective::Logit, 1).unwrap();
    close(
        &sg.map(&mut net, &x, &labels).unwrap().as_vec(),
        &want,
        1e-5,
    );
    let mut sq = SmoothGrad::new(16, 0.3, SmoothGradVariant::Squared, Objective::Logit, 1).unwrap();
    close(
        &sq.map(&mut net, &x, &labels).unwrap().as_vec(),
        &want.iter().map(|v| v * v).collect::<Vec<_>>(),
        1e-4,
    );
    let mut var =
        SmoothGrad::new(16, 0.3, SmoothGradVariant::VarGrad, Objective::Logit, 1).unwrap();
    close(
        &var.map(&mut net, &x, &labels).unwrap().as_vec(),
        &[0.0; 8],
        1e-9,
    );
}

#[test]
fn smoothgrad_noise_matters_on_a_nonlinear_model_and_is_seeded() {
    let mut net = nonlinear(1);
    let x = mat(&[&X0, &X1]);
    let labels = [0, 2];
    let mut g = saliency::gradient::Gradient {
        sign: SaliencySign::Signed,
        objective: Objective::LogProb,
    };
    let plain = g.map(&mut net, &x, &labels).unwrap().as_vec();
    // sigma = 0: every sample is the gradient itself.
    let mut zero = SmoothGrad::new(5, 0.0, SmoothGradVariant::Mean, Objective::LogProb, 0).unwrap();
    close(
        &zero.map(&mut net, &x, &labels).unwrap().as_vec(),
        &plain.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        1e-6,
    );
    let run = |seed| {
        SmoothGrad::new(8, 0.5, SmoothGradVariant::VarGrad, Objective::LogProb, seed)
            .unwrap()
            .map(&mut nonlinear(1), &x, &labels)
            .unwrap()
            .as_vec()
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a, b, "same seed, same map");
    assert_ne!(a, c, "another seed draws other noise");
    assert!(
        a.iter().all(|v| *v >= 0.0) && a.iter().any(|v| *v > 0.0),
        "a variance is >= 0 and here not all 0: {a:?}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let mut net = linear(&w_rows(), &B);
    let mut g = saliency::gradient::Gradient {
        sign: SaliencySign::Signed,
        objective: Objective::LogProb,
    };
    let wrong_width = Cpu::default().zeros_like(&(2, 5));
    let e = g.map(&mut net, &wrong_width, &[0, 1]).unwrap_err();
    assert!(e.to_string().contains("4 features"), "{e}");
    let x = mat(&[&X0, &X1]);
    assert_eq!(
        g.map(&mut net, &x, &[0, 3]).unwrap_err(),
        SaliencyError::Label {
            index: 1,
            label: 3,
            classes: 3
        }
    );
    assert!(matches!(
        g.map(&mut net, &x, &[0]),
        Err(SaliencyError::Shape { .. })
    ));
    let ctx = SaliencyContext {
        objective: Objective::LogProb,
        channel_mean: vec![],
        seed: 0,
    };
    let bad = [
        SaliencyMethod::IntegratedGradients {
            steps: 0,
            baseline: Baseline::Zero,
        },
        SaliencyMethod::IntegratedGradients {
            steps: 8,
            baseline: Baseline::Mean,
        },
        SaliencyMethod::SmoothGrad {
            samples: 0,
            sigma: 0.1,
            variant: SmoothGradVariant::Mean,
        },
        SaliencyMethod::SmoothGrad {
            samples: 1,
            sigma: 0.1,
            variant: SmoothGradVariant::VarGrad,
        },
        SaliencyMethod::SmoothGrad {
            samples: 4,
            sigma: -0.1,
            variant: SmoothGradVariant::Mean,
        },
        SaliencyMethod::SmoothGrad {
            samples: 4,
            sigma: f64::NAN,
            variant: SmoothGradVariant::Mean,
        },
    ];
    for m in bad {
        let e = saliency::build::<Cpu>(&m, &ctx)
            .err()
            .unwrap_or_else(|| panic!("{m:?} should be rejected"));
        assert!(matches!(e, SaliencyError::Param(_)), "{m:?}: {e}");
    }
}

#[test]
fn npy_files_have_a_valid_v1_header_and_little_endian_data() {
    let bytes = npy::encode(&[1.0f32, -2.5, 0.0, 3.0, 4.0, 5.0], &[1, 2, 3, 1]).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "data starts at a multiple of 64");
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3, 1), }"),
        "{header}"
    );
    assert!(header.ends_with('\n'));
    let data: Vec<f32> = bytes[10 + hlen..]
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data, vec![1.0, -2.5, 0.0, 3.0, 4.0, 5.0]);
    let labels = npy::encode(&[3i64, 7], &[2]).unwrap();
    let hlen = u16::from_le_bytes([labels[8], labels[9]]) as usize;
    assert!(std::str::from_utf8(&labels[10..10 + hlen])
        .unwrap()
        .contains("'descr': '<i8', 'fortran_order': False, 'shape': (2,)"));
    assert_eq!(labels.len(), 10 + hlen + 16);
    assert!(npy::encode(&[1.0f32; 5], &[2, 3]).is_err());
}
