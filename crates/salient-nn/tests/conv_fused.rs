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
