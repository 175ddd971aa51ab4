//! End to end with the crate's `Network`: each optimizer trains a small conv net with
//! batchnorm (loss falls, running statistics are left to the network), and a checkpoint of
//! the trained network loads into a differently initialised one with identical outputs.

use std::collections::BTreeMap;

use dfdx::prelude::*;
use salient_ir::{Layer, Shape};
use salient_nn::layers::infer::model_def;
use salient_nn::optim::{self, Optimizer};
use salient_nn::{checkpoint, Mode, Network};

#[cfg(not(feature = "cuda"))]
type Dev = Cpu;
#[cfg(feature = "cuda")]
type Dev = Cuda;

const N: usize = 24;
const SIDE: usize = 8;
const CLASSES: usize = 3;

fn def() -> salient_ir::ModelDef {
    let layers = vec![
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
        Layer::MaxPool { size: 2, stride: 2 },
        Layer::Flatten,
        Layer::Dense { out: CLASSES },
    ];
    model_def(
        "tiny",
        Shape::Image {
            c: 1,
            h: SIDE,
            w: SIDE,
        },
        layers,
    )
    .unwrap()
}

type Mat = Tensor<(usize, usize), f32, Dev>;

/// Deterministic images in [0, 1] and labels (an LCG), plus one-hot targets.
fn data(dev: &Dev) -> (Mat, Mat) {
    let mut state = 7u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1u32 << 24) as f32
    };
    let x: Vec<f32> = (0..N * SIDE * SIDE).map(|_| next()).collect();
    let mut onehot = vec![0.0f32; N * CLASSES];
    for i in 0..N {
        onehot[i * CLASSES + i % CLASSES] = 1.0;
    }
    (
        dev.tensor_from_vec(x, (N, SIDE * SIDE)),
        dev.tensor_from_vec(onehot, (N, CLASSES)),
    )
}

fn train(opt: &mut dyn Optimizer<Dev>, lr: f64, steps: usize) -> (Network<Dev>, f32, f32) {
    let dev = Dev::default();
    let mut net = Network::new(&def(), &[0.5], &[0.25], 1, &dev).unwrap();
    let (x, y) = data(&dev);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward(x.clone().leaky_trace(), Mode::Train);
        let loss = cross_entropy_with_logits_loss(logits, y.clone());
        losses.push(loss.array());
        let grads = loss.backward();
        opt.step(net.params_mut(), &grads, lr).unwrap();
    }
    (net, losses[0], *losses.last().unwrap())
}

#[test]
fn each_optimizer_trains_a_conv_net() {
    let cases = [
        (
            "sgd",
            salient_ir::Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            0.05,
            1e-4,
            60,
        ),
        (
            "adam",
            salient_ir::Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            0.01,
            1e-4,
            60,
        ),
        (
            "adadelta",
            salient_ir::Optimizer::Adadelta {
                rho: 0.9,
                eps: 1e-6,
            },
            1.0,
            0.0,
            200,
        ),
    ];
    for (name, ir, lr, wd, steps) in cases {
        let mut opt = optim::build::<Dev>(&ir, wd);
        let (net, first, last) = train(opt.as_mut(), lr, steps);
        eprintln!("{name}: cross-entropy {first:.4} -> {last:.4} in {steps} steps");
        assert!(last < 0.5 * first, "{name}: {first} -> {last}");
        // Batchnorm running statistics are buffers: moved by the network, not the optimizer.
        let var = net
            .params()
            .iter()
            .find(|p| p.name.ends_with("running_var"))
            .unwrap();
        assert!(!var.trainable);
    }
}

#[test]
fn trained_checkpoint_reloads_into_a_fresh_network() {
    let mut opt = optim::build::<Dev>(
        &salient_ir::Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        0.0,
    );
    let (mut trained, _, _) = train(opt.as_mut(), 0.01, 10);
    let dir = std::env::temp_dir().join(format!("salient-nn-optim-network-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.safetensors");
    let meta: BTreeMap<String, String> = [("model".to_string(), "tiny".to_string())].into();
    checkpoint::save(trained.params(), &path, &meta).unwrap();

    let dev = Dev::default();
    let mut fresh = Network::new(&def(), &[0.5], &[0.25], 99, &dev).unwrap();
    assert_eq!(checkpoint::load(fresh.params_mut(), &path).unwrap(), meta);
    let _ = std::fs::remove_dir_all(&dir);

    let (x, _) = data(&dev);
    let a = trained.forward(x.clone(), Mode::Eval).as_vec();
    let b = fresh.forward(x, Mode::Eval).as_vec();
    assert_eq!(a, b, "eval outputs must be identical after loading");
}
