//! Network-level behaviour: parameter count and names, deterministic PyTorch-style init,
//! normalisation, dropout (train/eval, determinism), the forward_taps gradient pattern,
//! reinit_layer, and clear errors for inconsistent definitions.

#[path = "layers_util.rs"]
mod util;

use dfdx::prelude::*;
use salient_ir::{Layer, Projection, Shape};
use salient_nn::layers::infer::model_def;
use salient_nn::{Mode, Network, NnError};
use util::*;

fn img(c: usize, h: usize, w: usize) -> Shape {
    Shape::Image { c, h, w }
}

fn body(kinds: Vec<Layer>) -> Vec<salient_ir::LayerDef> {
    kinds
        .into_iter()
        .map(|kind| salient_ir::LayerDef {
            name: String::new(),
            kind,
            input: Shape::Flat(0),
            output: Shape::Flat(0),
            params: 0,
        })
        .collect()
}

/// A model using every layer kind.
fn everything() -> Vec<Layer> {
    vec![
        Layer::Conv {
            out: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
        },
        Layer::BatchNorm {
            momentum: 0.1,
            eps: 1e-5,
        },
        Layer::Relu,
        Layer::Residual {
            body: body(vec![
                Layer::Conv {
                    out: 6,
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                },
                Layer::Tanh,
            ]),
            projection: Some(Projection { out: 6, stride: 2 }),
        },
        Layer::MaxPool { size: 2, stride: 2 },
        Layer::Dropout { p: 0.3 },
        Layer::Flatten,
        Layer::Dense { out: 8 },
        Layer::Sigmoid,
        Layer::LeakyRelu { slope: 0.2 },
        Layer::Dense { out: 3 },
    ]
}

#[test]
fn parameter_count_names_and_torch_layouts() {
    let def = model_def("all", img(2, 8, 8), everything()).unwrap();
    let net = Network::new(&def, &[0.5, 0.4], &[0.2, 0.3], 0, &Cpu::default()).unwrap();
    // conv 3*3*2*4+4, bn 2*4, body conv 3*3*4*6+6, shortcut 4*6, dense 6*2*2*8+8, dense 8*3+3.
    let expected = (72 + 4) + 8 + (216 + 6) + 24 + (192 + 8) + (24 + 3);
    assert_eq!(def.params, expected);
    assert_eq!(net.num_params(), expected);
    let got: Vec<(String, Vec<usize>, bool)> = net
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.torch_shape(), p.trainable))
        .collect();
    let want = [
        ("layers.0.weight", vec![4, 2, 3, 3], true),
        ("layers.0.bias", vec![4], true),
        ("layers.1.weight", vec![4], true),
        ("layers.1.bias", vec![4], true),
        ("layers.1.running_mean", vec![4], false),
        ("layers.1.running_var", vec![4], false),
        ("layers.3.body.0.weight", vec![6, 4, 3, 3], true),
        ("layers.3.body.0.bias", vec![6], true),
        ("layers.3.shortcut.weight", vec![6, 4, 1, 1], true),
        ("layers.7.weight", vec![8, 24], true),
        ("layers.7.bias", vec![8], true),
        ("layers.10.weight", vec![3, 8], true),
        ("layers.10.bias", vec![3], true),
    ];
    let want: Vec<(String, Vec<usize>, bool)> = want
        .into_iter()
        .map(|(n, s, t)| (n.to_string(), s, t))
        .collect();
    assert_eq!(got, want);
    for p in net.params() {
        assert_eq!(p.value.shape().0, p.numel(), "{} is stored flat", p.name);
    }
}

#[test]
fn init_is_deterministic_and_follows_pytorch_bounds() {
    let def = model_def("all", img(2, 8, 8), everything()).unwrap();
    let dev = Cpu::default();
    let a = Network::new(&def, &[0.0], &[1.0], 42, &dev).unwrap();
    let b = Network::new(&def, &[0.0], &[1.0], 42, &dev).unwrap();
    let c = Network::new(&def, &[0.0], &[1.0], 43, &dev).unwrap();
    for ((pa, pb), pc) in a.params().iter().zip(b.params()).zip(c.params()) {
        assert_eq!(
            pa.value.as_vec(),
            pb.value.as_vec(),
            "{}: same seed, same values",
            pa.name
        );
        let fan_in = match pa.name.as_str() {
            "layers.0.weight" | "layers.0.bias" => 2 * 9,
            "layers.3.body.0.weight" | "layers.3.body.0.bias" => 4 * 9,
            "layers.3.shortcut.weight" => 4,
            "layers.7.weight" | "layers.7.bias" => 24,
            "layers.10.weight" | "layers.10.bias" => 8,
            "layers.1.weight" | "layers.1.running_var" => {
                assert!(pa.value.as_vec().iter().all(|v| *v == 1.0));
                continue;
            }
            _ => {
                assert!(pa.value.as_vec().iter().all(|v| *v == 0.0), "{}", pa.name);
                continue;
            }
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let v = pa.value.as_vec();
        assert!(
            v.iter().all(|x| x.abs() <= bound),
            "{} within U(-{bound}, {bound})",
            pa.name
        );
        let spread = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            v.len() < 8 || spread > 0.5 * bound,
            "{} uses the range",
            pa.name
        );
        assert_ne!(
            pa.value.as_vec(),
            pc.value.as_vec(),
            "{}: other seed, other values",
            pa.name
        );
    }
}

#[test]
fn normalisation_is_applied_per_channel_channels_last() {
    let def = model_def("n", img(2, 1, 2), vec![Layer::Flatten]).unwrap();
    let mut net = Network::new(&def, &[0.5, 0.25], &[0.5, 2.0], 0, &Cpu::default()).unwrap();
    // Channels-last input (h=0,w=0,c=0), (0,0,1), (0,1,0), (0,1,1); output in (c,h,w) order.
    let y = forward(&mut net, &[1.0, 4.25, 0.0, 0.25], 1, Mode::Eval);
    assert_eq!(y, vec![1.0, -1.0, 2.0, 0.0]);
}

#[test]
fn dropout_is_inverted_in_train_identity_in_eval_and_seeded() {
    let def = model_def("d", Shape::Flat(4000), vec![Layer::Dropout { p: 0.25 }]).unwrap();
    let dev = Cpu::default();
    let mut a = Network::new(&def, &[0.0], &[1.0], 7, &dev).unwrap();
    let mut b = Network::new(&def, &[0.0], &[1.0], 7, &dev).unwrap();
    let mut c = Network::new(&def, &[0.0], &[1.0], 8, &dev).unwrap();
    let x = vec![1.0f32; 4000];
    assert_eq!(forward(&mut a, &x, 1, Mode::Eval), x);
    let ya = forward(&mut a, &x, 1, Mode::Train);
    let zeros = ya.iter().filter(|v| **v == 0.0).count();
    assert!(
        (850..1150).contains(&zeros),
        "about p = 25% dropped, got {zeros}"
    );
    assert!(
        ya.iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6),
        "kept values scaled by 1/(1-p)"
    );
    assert_eq!(
        ya,
        forward(&mut b, &x, 1, Mode::Train),
        "same seed, same mask"
    );
    assert_ne!(
        ya,
        forward(&mut c, &x, 1, Mode::Train),
        "other seed, other mask"
    );
    assert_ne!(
        ya,
        forward(&mut a, &x, 1, Mode::Train),
        "a fresh mask every pass"
    );
    a.reseed_dropout(7);
    b.reseed_dropout(7);
    assert_eq!(
        forward(&mut a, &x, 1, Mode::Train),
        forward(&mut b, &x, 1, Mode::Train)
    );
    // The gradient goes through the same mask.
    let mut d = Network::new(&def, &[0.0], &[1.0], 7, &dev).unwrap();
    let (gx, _) = gradients(&mut d, &x, 1, &x, Mode::Train);
    assert_eq!(gx, ya);
}

#[test]
fn training_is_bit_identical_for_the_same_seed() {
    let def = model_def("all", img(2, 8, 8), everything()).unwrap();
    let run = || {
        let mut net = Network::new(&def, &[0.1], &[0.3], 3, &Cpu::default()).unwrap();
        let x = uniform(&mut rng(1), 4 * 128, 0.0, 1.0);
        let r = uniform(&mut rng(2), 4 * 3, -1.0, 1.0);
        for _ in 0..3 {
            let (_, gp) = gradients(&mut net, &x, 4, &r, Mode::Train);
            for (p, g) in net.params_mut().iter_mut().zip(gp) {
                if let Some(g) = g {
                    let v: Vec<f32> = p
                        .value
                        .as_vec()
                        .iter()
                        .zip(&g)
                        .map(|(v, g)| v - 0.1 * g)
                        .collect();
                    p.value.copy_from(&v);
                }
            }
        }
        net.params()
            .iter()
            .flat_map(|p| p.value.as_vec())
            .collect::<Vec<f32>>()
    };
    assert_eq!(run(), run());
}

/// loss(x) = sum(logits * r) + sum over taps of 0.5 * sum(tap^2), built with the
/// split_tape / put_tape pattern; returns the loss value and the gradients if `tape`.
#[allow(clippy::type_complexity)]
fn taps_loss(
    net: &mut Network<Cpu>,
    x: &[f32],
    r: &[f32],
    taps: &[usize],
) -> (
    f64,
    Option<Gradients<f32, Cpu>>,
    Tensor<(usize, usize), f32, Cpu>,
) {
    let dev = Cpu::default();
    let xt = batch(x, 2);
    let (logits, tapped) =
        net.forward_taps(xt.clone().traced(Gradients::leaky()), Mode::Train, taps);
    let rt = dev.tensor_from_vec(r.to_vec(), *logits.shape());
    let (logits, mut tape) = logits.split_tape();
    let mut penalty_value = 0.0f64;
    let mut penalty: Option<Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>> = None;
    for t in tapped {
        penalty_value += t
            .as_vec()
            .iter()
            .map(|v| 0.5 * (*v as f64).powi(2))
            .sum::<f64>();
        let term = t.put_tape(tape).square().sum() * 0.5;
        let (term, rest) = term.split_tape();
        tape = rest;
        penalty = Some(match penalty {
            Some(p) => p + term,
            None => term.put_tape(OwnedTape::default()),
        });
    }
    let main = logits.put_tape(tape) * rt;
    let value = dot(&main.as_vec(), &vec![1.0; r.len()]) + penalty_value;
    let loss = match penalty {
        Some(p) => main.sum() + p,
        None => main.sum(),
    };
    (value, Some(loss.backward()), xt)
}

#[test]
fn forward_taps_penalty_gradient_matches_finite_differences() {
    let layers = vec![
        Layer::Conv {
            out: 3,
            kernel: 3,
            stride: 1,
            padding: 1,
        },
        Layer::Tanh,
        Layer::AvgPool { size: 2, stride: 2 },
        Layer::Flatten,
        Layer::Dense { out: 5 },
        Layer::Sigmoid,
        Layer::Dense { out: 2 },
    ];
    let def = model_def("t", img(2, 4, 4), layers).unwrap();
    let mut net = Network::new(&def, &[0.0], &[1.0], 1, &Cpu::default()).unwrap();
    let taps = [1, 5];
    let x = uniform(&mut rng(3), 2 * 32, -1.0, 1.0);
    let r = uniform(&mut rng(4), 4, -1.0, 1.0);
    // The taps are the very tensors of the graph: same values as a plain forward's layers.
    let (_, tapped) = net.forward_taps(batch(&x, 2), Mode::Eval, &taps);
    assert_eq!(tapped.len(), 2);
    assert_eq!(*tapped[0].shape(), (2, 48));
    assert_eq!(*tapped[1].shape(), (2, 5));
    let (_, grads, xt) = taps_loss(&mut net, &x, &r, &taps);
    let grads = grads.unwrap();
    let gx = grads.get(&xt).as_vec();
    let eps = 1e-2f32;
    let f = |net: &mut Network<Cpu>, x: &[f32]| taps_loss(net, x, &r, &taps).0;
    for i in (0..x.len()).step_by(5) {
        let mut xp = x.clone();
        xp[i] += eps;
        let fp = f(&mut net, &xp);
        xp[i] -= 2.0 * eps;
        let fm = f(&mut net, &xp);
        let num = (fp - fm) / (2.0 * eps as f64);
        assert!(
            (gx[i] as f64 - num).abs() <= 1e-2 * num.abs().max(gx[i].abs() as f64) + 1e-3,
            "x[{i}]: {} vs {num}",
            gx[i]
        );
    }
    // Parameter gradients, including the conv before the first tap (the penalty must reach it).
    for pi in 0..net.params().len() {
        let g = grads.get(&net.params()[pi].value).as_vec();
        let base = net.params()[pi].value.as_vec();
        for i in (0..base.len()).step_by(7) {
            let mut v = base.clone();
            v[i] += eps;
            net.params_mut()[pi].value.copy_from(&v);
            let fp = f(&mut net, &x);
            v[i] -= 2.0 * eps;
            net.params_mut()[pi].value.copy_from(&v);
            let fm = f(&mut net, &x);
            net.params_mut()[pi].value.copy_from(&base);
            let num = (fp - fm) / (2.0 * eps as f64);
            let name = &net.params()[pi].name;
            assert!(
                (g[i] as f64 - num).abs() <= 1e-2 * num.abs().max(g[i].abs() as f64) + 1e-3,
                "{name}[{i}]: {} vs {num}",
                g[i]
            );
        }
    }
    // Without the penalty the conv gradient differs: the taps really contribute.
    let (_, g0, _) = taps_loss(&mut net, &x, &r, &[]);
    assert_ne!(
        g0.unwrap().get(&net.params()[0].value).as_vec(),
        grads.get(&net.params()[0].value).as_vec()
    );
}

#[test]
fn reinit_layer_touches_only_that_layer() {
    let def = model_def("all", img(2, 8, 8), everything()).unwrap();
    let mut net = Network::new(&def, &[0.0], &[1.0], 0, &Cpu::default()).unwrap();
    let before: Vec<Vec<f32>> = net.params().iter().map(|p| p.value.as_vec()).collect();
    net.reinit_layer(3, 99);
    let touched = net.layer_params(3);
    assert_eq!(touched.len(), 3);
    for (i, p) in net.params().iter().enumerate() {
        if touched.contains(&i) {
            assert_ne!(p.value.as_vec(), before[i], "{} re-initialised", p.name);
        } else {
            assert_eq!(p.value.as_vec(), before[i], "{} untouched", p.name);
        }
    }
    net.reinit_layer(2, 99); // relu: no parameters
    net.reinit_layer(100, 99); // out of range: ignored
    assert_eq!(net.params()[0].value.as_vec(), before[0]);
}

#[test]
fn inconsistent_definitions_are_clear_errors() {
    let dev = Cpu::default();
    let good = model_def(
        "m",
        img(1, 6, 6),
        vec![
            Layer::Conv {
                out: 2,
                kernel: 3,
                stride: 1,
                padding: 0,
            },
            Layer::Flatten,
            Layer::Dense { out: 3 },
        ],
    )
    .unwrap();
    let msg = |r: Result<Network<Cpu>, NnError>| match r {
        Err(e @ NnError::Build { .. }) => e.to_string(),
        Err(e) => panic!("wrong error kind: {e}"),
        Ok(_) => panic!("expected an error"),
    };
    let mut wrong_count = good.clone();
    wrong_count.params += 1;
    let m = msg(Network::new(&wrong_count, &[0.0], &[1.0], 0, &dev));
    assert!(
        m.contains("`m`") && m.contains("trainable parameters"),
        "{m}"
    );
    let mut wrong_shape = good.clone();
    wrong_shape.layers[0].output = Shape::Image { c: 2, h: 5, w: 5 };
    let m = msg(Network::new(&wrong_shape, &[0.0], &[1.0], 0, &dev));
    assert!(
        m.contains("layer 0 (`conv1`)") && m.contains("2x5x5"),
        "{m}"
    );
    let mut dense_on_image = good.clone();
    dense_on_image.layers.remove(1);
    dense_on_image.layers[1].input = dense_on_image.layers[0].output;
    let m = msg(Network::new(&dense_on_image, &[0.0], &[1.0], 0, &dev));
    assert!(m.contains("dense1") && m.contains("flat"), "{m}");
    let m = msg(Network::new(&good, &[0.0, 0.0], &[1.0], 0, &dev));
    assert!(m.contains("mean") && m.contains("1 channel"), "{m}");
    let m = msg(Network::new(&good, &[0.0], &[0.0], 0, &dev));
    assert!(m.contains("std"), "{m}");
    assert!(Network::new(&good, &[0.0], &[1.0], 0, &dev).is_ok());
}
