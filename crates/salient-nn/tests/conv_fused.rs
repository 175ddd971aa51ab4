//! The fused CPU convolution (+ relu) inside a network: same outputs and gradients as the
//! portable path (separate dfdx ops), finite differences, and `set_input_grad(false)` leaving
//! every parameter gradient bit-identical while giving the input no gradient.

#[path = "layers_util.rs"]
mod util;

use dfdx::prelude::*;
use salient_ir::{Layer, Shape};
use salient_nn::Mode;
use util::*;

fn layers() -> Vec<Layer> {
    let conv = |out, kernel, padding| Layer::Conv {
        out,
        kernel,
        stride: 1,
        padding,
    };
    vec![
        conv(4, 3, 1),
        Layer::Relu,
        Layer::MaxPool { size: 2, stride: 2 },
        conv(5, 3, 0),
        Layer::Relu,
        Layer::Flatten,
        Layer::Dense { out: 3 },
        Layer::Relu,
        Layer::Dense { out: 2 },
    ]
}

const INPUT: Shape = Shape::Image { c: 2, h: 8, w: 8 };

#[test]
fn fused_conv_relu_agrees_with_the_portable_path() {
    let (mut fast, mut port) = (net(INPUT, layers(), 3), net(INPUT, layers(), 3));
    port.set_portable(true);
    let x = uniform(&mut rng(1), 3 * 128, 0.0, 1.0);
    let r = uniform(&mut rng(2), 3 * 2, -1.0, 1.0);
    let (gx_f, gp_f) = gradients(&mut fast, &x, 3, &r, Mode::Train);
    let (gx_p, gp_p) = gradients(&mut port, &x, 3, &r, Mode::Train);
    let to64 = |v: &[f32]| v.iter().map(|a| *a as f64).collect::<Vec<_>>();
    assert!(
        gx_f.iter().any(|g| *g != 0.0),
        "input gradient is not trivially zero"
    );
    assert_close(&gx_f, &to64(&gx_p), 1e-5, "input gradient");
    for (a, b) in gp_f.iter().zip(&gp_p) {
        if let (Some(a), Some(b)) = (a, b) {
            assert_close(a, &to64(b), 1e-5, "parameter gradient");
        }
    }
    let (yf, yp) = (
        forward(&mut fast, &x, 3, Mode::Eval),
        forward(&mut port, &x, 3, Mode::Eval),
    );
    assert_close(&yf, &to64(&yp), 1e-6, "logits");
}

#[test]
fn fused_conv_relu_gradients_match_finite_differences() {
    // No max pool here: its kinks plus relu's make central differences with a usable step
    // unreliable; the pooled model is covered by the agreement with the portable path above.
    let conv = |out, padding| Layer::Conv {
        out,
        kernel: 3,
        stride: 1,
        padding,
    };
    let layers = vec![
        conv(3, 1),
        Layer::Relu,
        conv(2, 0),
        Layer::Relu,
        Layer::Flatten,
        Layer::Dense { out: 2 },
    ];
    let mut net = net(Shape::Image { c: 2, h: 5, w: 5 }, layers, 5);
    let x = uniform(&mut rng(6), 2 * 50, 0.0, 1.0);
    let n = check_gradients(&mut net, &x, 2, Mode::Train, 2e-3, 1e-2, 1e-3);
    assert!(n > 50);
}

#[test]
fn without_input_grad_parameter_gradients_are_identical() {
    let dev = Cpu::default();
    let x = uniform(&mut rng(7), 4 * 128, 0.0, 1.0);
    let r = uniform(&mut rng(8), 4 * 2, -1.0, 1.0);
    let run = |input_grad: bool| {
        let mut net = net(INPUT, layers(), 9);
        net.set_input_grad(input_grad);
        assert_eq!(net.input_grad(), input_grad);
        let xt = batch(&x, 4);
        let y = net.forward(xt.clone().traced(Gradients::leaky()), Mode::Train);
        let rt = dev.tensor_from_vec(r.clone(), *y.shape());
        let mut grads = (y * rt).sum().backward();
        let gp: Vec<Vec<f32>> = net
            .params()
            .iter()
            .map(|p| grads.get(&p.value).as_vec())
            .collect();
        // Whether x received a gradient entry: allocate-or-get and look for a nonzero value.
        let gx_nonzero = grads
            .get_or_alloc_mut(&xt)
            .expect("allocates")
            .iter()
            .any(|g| *g != 0.0);
        (gp, gx_nonzero)
    };
    let (with, gx_with) = run(true);
    let (without, gx_without) = run(false);
    assert!(gx_with, "the input gradient is computed by default");
    assert!(!gx_without, "no input gradient when disabled");
    assert_eq!(with, without, "parameter gradients are bit-identical");
}

/// The Winograd and direct kernels have a plain build and an AVX2 build chosen at run time; both
/// are the same source and must give the same bits (Rust never fuses a multiply and an add on
/// its own). A training step of a network that uses both paths (1-channel 5x5 first layer:
/// direct; 3x3 and 5x5 layers on 8 channels: Winograd; conv+relu+pool fused) is run with each
/// build: loss, input gradient and every parameter gradient are bit-identical. (On a CPU without
/// AVX2 both runs take the plain build and the test is trivially true.)
#[test]
fn plain_and_avx2_builds_of_the_kernels_agree_bit_for_bit() {
    use dfdx::prelude::*;
    use salient_ir::{Layer, Shape};
    use salient_nn::layers::infer::model_def;
    use salient_nn::layers::kernels::force_plain_build;
    use salient_nn::{Mode, Network};
    let conv = |out, kernel, padding| Layer::Conv {
        out,
        kernel,
        stride: 1,
        padding,
    };
    let layers = vec![
        conv(8, 5, 2),
        Layer::Relu,
        Layer::MaxPool { size: 2, stride: 2 },
        conv(12, 3, 1),
        Layer::Relu,
        conv(9, 5, 2),
        Layer::Relu,
        Layer::MaxPool { size: 2, stride: 2 },
        Layer::Flatten,
        Layer::Dense { out: 10 },
    ];
    let def = model_def("k", Shape::Image { c: 1, h: 14, w: 14 }, layers).unwrap();
    let dev = Cpu::default();
    let b = 5;
    let x: Vec<f32> = (0..b * 196)
        .map(|i| ((i * 37 % 101) as f32) / 101.0)
        .collect();
    let mut onehot = vec![0.0f32; b * 10];
    for i in 0..b {
        onehot[i * 10 + (i * 3) % 10] = 1.0;
    }
    let step = |plain: bool| {
        force_plain_build(plain);
        if plain {
            assert!(
                !salient_nn::layers::kernels::avx2(),
                "the plain build is forced"
            );
        }
        let mut net = Network::new(&def, &[0.5], &[0.25], 1, &dev).unwrap();
        let xt = dev.tensor_from_vec(x.clone(), (b, 196));
        let y = dev.tensor_from_vec(onehot.clone(), (b, 10));
        let logits = net.forward(xt.clone().traced(Gradients::leaky()), Mode::Train);
        let loss = cross_entropy_with_logits_loss(logits, y);
        let value = loss.array();
        let grads = loss.backward();
        let mut all = vec![value];
        all.extend(grads.get(&xt).as_vec());
        for p in net.params() {
            all.extend(grads.get(&p.value).as_vec());
        }
        force_plain_build(false);
        all.into_iter().map(f32::to_bits).collect::<Vec<_>>()
    };
    let (plain, fast) = (step(true), step(false));
    assert_eq!(plain.len(), fast.len());
    assert!(plain == fast, "plain and AVX2 builds differ");
}
