//! `Network::set_param_grad(false)` (input-gradient passes) and the fused CPU dense op:
//! input gradients bit-identical with and without parameter gradients over several geometries,
//! no parameter gradient computed when off, the dense op against naive f64 loops, finite
//! differences and dfdx's own `matmul + broadcast add` (bit-identical), thread-count
//! determinism, and parameter gradients of training steps unchanged by the switches.

#[path = "layers_util.rs"]
mod util;

use dfdx::prelude::*;
use salient_ir::{Layer, Shape};
use salient_nn::layers::dense_cpu;
use salient_nn::{Mode, Network};
use util::*;

fn conv(out: usize, kernel: usize, stride: usize, padding: usize) -> Layer {
    Layer::Conv {
        out,
        kernel,
        stride,
        padding,
    }
}

/// (input, layers, batch): conv + relu + pool + dense networks of several geometries (padding,
/// stride with leftovers, a 1x1 convolution, average pooling, a conv not followed by relu,
/// batchnorm), batches above the 16 reduction groups and not divisible by them.
fn cases() -> Vec<(Shape, Vec<Layer>, usize)> {
    let bn = Layer::BatchNorm {
        momentum: 0.1,
        eps: 1e-5,
    };
    vec![
        (
            Shape::Image { c: 2, h: 8, w: 8 },
            vec![
                conv(4, 3, 1, 1),
                Layer::Relu,
                Layer::MaxPool { size: 2, stride: 2 },
                conv(5, 3, 1, 0),
                Layer::Relu,
                Layer::Flatten,
                Layer::Dense { out: 6 },
                Layer::Relu,
                Layer::Dense { out: 3 },
            ],
            19,
        ),
        (
            Shape::Image { c: 3, h: 9, w: 7 },
            vec![
                conv(4, 3, 2, 1),
                Layer::Relu,
                conv(6, 1, 1, 0),
                Layer::Relu,
                Layer::AvgPool { size: 2, stride: 1 },
                Layer::Flatten,
                Layer::Dense { out: 5 },
            ],
            37,
        ),
        (
            Shape::Image { c: 1, h: 10, w: 10 },
            vec![
                conv(3, 5, 1, 2),
                bn.clone(),
                Layer::Relu,
                Layer::MaxPool { size: 3, stride: 2 },
                conv(4, 2, 2, 0),
                Layer::Tanh,
                Layer::Flatten,
                Layer::Dense { out: 7 },
                bn,
                Layer::Relu,
                Layer::Dense { out: 4 },
            ],
            33,
        ),
    ]
}

/// d sum(y * r) / dx with the given switches, and whether any parameter got a gradient entry
/// with a nonzero value.
fn input_grad(
    net: &mut Network<Cpu>,
    x: &[f32],
    b: usize,
    r: &[f32],
    mode: Mode,
    param_grad: bool,
) -> (Vec<f32>, bool) {
    net.set_param_grad(param_grad);
    assert_eq!(net.param_grad(), param_grad);
    let xt = batch(x, b);
    let y = net.forward(xt.clone().traced(Gradients::leaky()), mode);
    let rt = Cpu::default().tensor_from_vec(r.to_vec(), *y.shape());
    let mut grads = (y * rt).sum().backward();
    let gx = grads.get(&xt).as_vec();
    let params: Vec<_> = net.params().iter().map(|p| p.value.clone()).collect();
    let any_param = params.iter().any(|p| {
        grads
            .get_or_alloc_mut(p)
            .expect("allocates")
            .iter()
            .any(|g| *g != 0.0)
    });
    net.set_param_grad(true);
    (gx, any_param)
}

#[test]
fn input_gradients_are_bit_identical_without_parameter_gradients() {
    for (ci, (input, layers, b)) in cases().into_iter().enumerate() {
        let mut net = net(input, layers, 10 + ci as u64);
        let x = uniform(&mut rng(20 + ci as u64), b * input.numel(), 0.0, 1.0);
        let n_out = forward(&mut net, &x, b, Mode::Eval).len();
        let r = uniform(&mut rng(30 + ci as u64), n_out, -1.0, 1.0);
        // Train mode first: batchnorm's running statistics move, so eval mode sees them.
        for mode in [Mode::Train, Mode::Eval] {
            let (with, p_with) = input_grad(&mut net, &x, b, &r, mode, true);
            let (without, p_without) = input_grad(&mut net, &x, b, &r, mode, false);
            assert!(with.iter().any(|g| *g != 0.0), "case {ci}: zero gradient");
            assert!(p_with, "case {ci} {mode:?}: parameter gradients by default");
            assert_eq!(with, without, "case {ci} {mode:?}: input gradients differ");
            if mode == Mode::Eval {
                assert!(!p_without, "case {ci}: no parameter gradient when off");
            }
            // The portable ops agree with the fast ones (and compute parameter gradients
            // regardless of the switch).
            net.set_portable(true);
            let (port, _) = input_grad(&mut net, &x, b, &r, mode, false);
            net.set_portable(false);
            let to64: Vec<f64> = port.iter().map(|v| *v as f64).collect();
            assert_close(
                &without,
                &to64,
                1e-5,
                &format!("case {ci} {mode:?} portable"),
            );
        }
    }
}

#[test]
fn switches_off_leave_an_untouched_graph() {
    // Neither input nor parameter gradients: the backward pass has nothing to compute, the
    // parameters get no gradient entry and a later pass is unaffected.
    let (input, layers, b) = cases().remove(0);
    let mut net = net(input, layers, 3);
    let x = uniform(&mut rng(4), b * input.numel(), 0.0, 1.0);
    net.set_input_grad(false);
    net.set_param_grad(false);
    let y = net.forward(batch(&x, b).traced(Gradients::leaky()), Mode::Eval);
    let mut grads = y.sum().backward();
    for p in net.params() {
        let g = grads.get_or_alloc_mut(&p.value).expect("allocates");
        assert!(g.iter().all(|v| *v == 0.0), "{} got a gradient", p.name);
    }
}

/// Naive f64 dense layer: (y, dW, db, dX) for output gradient gy.
fn dense_ref(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (inp, out): (usize, usize),
    gy: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = x.len() / inp;
    let (mut y, mut gw, mut gb, mut gx) = (
        vec![0.0; n * out],
        vec![0.0; inp * out],
        vec![0.0; out],
        vec![0.0; n * inp],
    );
    for r in 0..n {
        for j in 0..out {
            let mut acc = b[j] as f64;
            for i in 0..inp {
                acc += x[r * inp + i] as f64 * w[i * out + j] as f64;
            }
            y[r * out + j] = acc;
            let g = gy[r * out + j] as f64;
            gb[j] += g;
            for i in 0..inp {
                gw[i * out + j] += x[r * inp + i] as f64 * g;
                gx[r * inp + i] += w[i * out + j] as f64 * g;
            }
        }
    }
    (y, gw, gb, gx)
}

#[test]
fn dense_kernels_match_naive_loops() {
    // Batch 1 (gemm's vector path), k <= 2 (its outer-product path), a GEMM-sized case.
    for (ci, &(n, inp, out)) in [(1, 9, 4), (5, 2, 3), (37, 70, 13), (130, 300, 10)]
        .iter()
        .enumerate()
    {
        let mut g = rng(40 + ci as u64);
        let x = uniform(&mut g, n * inp, -1.0, 1.0);
        let w = uniform(&mut g, inp * out, -1.0, 1.0);
        let b = uniform(&mut g, out, -1.0, 1.0);
        let gy = uniform(&mut g, n * out, -1.0, 1.0);
        let (y_ref, gw_ref, gb_ref, gx_ref) = dense_ref(&x, &w, &b, (inp, out), &gy);
        let mut y = vec![f32::NAN; n * out];
        dense_cpu::forward(&x, &w, &b, (inp, out), &mut y);
        assert_close(&y, &y_ref, 1e-5, &format!("case {ci} y"));
        // Gradients accumulate: start from 1 and subtract it again.
        let (mut gw, mut gb, mut gx) = (vec![1.0; w.len()], vec![1.0; out], vec![1.0; x.len()]);
        dense_cpu::backward(
            Some(&x),
            Some(&w),
            (inp, out),
            &gy,
            Some(&mut gw),
            Some(&mut gb),
            Some(&mut gx),
        );
        let minus1 = |v: &[f32]| v.iter().map(|a| a - 1.0).collect::<Vec<_>>();
        assert_close(&minus1(&gw), &gw_ref, 1e-5, &format!("case {ci} dW"));
        assert_close(&minus1(&gb), &gb_ref, 1e-5, &format!("case {ci} db"));
        assert_close(&minus1(&gx), &gx_ref, 1e-5, &format!("case {ci} dX"));
        // dX alone (no x saved, no dW/db) is the same dX; dW alone is the same dW.
        let mut gx2 = vec![1.0; x.len()];
        let (none_w, none_b): (Option<&mut [f32]>, Option<&mut [f32]>) = (None, None);
        dense_cpu::backward(
            None,
            Some(&w),
            (inp, out),
            &gy,
            none_w,
            none_b,
            Some(&mut gx2),
        );
        assert_eq!(gx2, gx, "case {ci} dX without dW");
        let mut gw2 = vec![1.0; w.len()];
        dense_cpu::backward(Some(&x), None, (inp, out), &gy, Some(&mut gw2), None, None);
        assert_eq!(gw2, gw, "case {ci} dW without dX");
    }
}

fn mlp() -> (Shape, Vec<Layer>) {
    (
        Shape::Flat(23),
        vec![
            Layer::Dense { out: 17 },
            Layer::Tanh,
            Layer::Dense { out: 9 },
            Layer::Sigmoid,
            Layer::Dense { out: 4 },
        ],
    )
}

#[test]
fn dense_op_gradients_match_finite_differences() {
    let (input, layers) = mlp();
    let mut net = net(input, layers, 50);
    let x = uniform(&mut rng(51), 3 * 23, -1.0, 1.0);
    let n = check_gradients(&mut net, &x, 3, Mode::Train, 1e-2, 1e-2, 1e-3);
    assert!(n > 100, "checked {n} coordinates");
}

#[test]
fn dense_op_is_bit_identical_to_dfdx_matmul() {
    // Dense-only network: `portable` swaps the fused op for dfdx's matmul + broadcast add.
    let (input, layers) = mlp();
    let x = uniform(&mut rng(61), 41 * 23, -1.0, 1.0);
    let r = uniform(&mut rng(62), 41 * 4, -1.0, 1.0);
    let mut fast = net(input, layers.clone(), 60);
    let mut port = net(input, layers, 60);
    port.set_portable(true);
    assert_eq!(
        forward(&mut fast, &x, 41, Mode::Eval),
        forward(&mut port, &x, 41, Mode::Eval),
        "logits"
    );
    let (gx_f, gp_f) = gradients(&mut fast, &x, 41, &r, Mode::Train);
    let (gx_p, gp_p) = gradients(&mut port, &x, 41, &r, Mode::Train);
    assert_eq!(gx_f, gx_p, "input gradient");
    assert_eq!(gp_f, gp_p, "parameter gradients");
}

#[test]
fn dense_op_is_bit_identical_for_any_thread_count() {
    let (n, inp, out) = (150, 200, 70);
    let mut g = rng(70);
    let x = uniform(&mut g, n * inp, -1.0, 1.0);
    let w = uniform(&mut g, inp * out, -1.0, 1.0);
    let b = uniform(&mut g, out, -1.0, 1.0);
    let gy = uniform(&mut g, n * out, -1.0, 1.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let mut y = vec![0.0; n * out];
            dense_cpu::forward(&x, &w, &b, (inp, out), &mut y);
            let (mut gw, mut gb, mut gx) = (vec![0.0; w.len()], vec![0.0; out], vec![0.0; x.len()]);
            dense_cpu::backward(
                Some(&x),
                Some(&w),
                (inp, out),
                &gy,
                Some(&mut gw),
                Some(&mut gb),
                Some(&mut gx),
            );
            (y, gw, gb, gx)
        })
    };
    assert_eq!(run(1), run(3));
}

/// Parameter gradients of a training pass on `x`: d mean(y * r) / d params, with the given
/// input-gradient switch.
fn train_grads(net: &mut Network<Cpu>, x: &[f32], b: usize, r: &[f32]) -> Vec<Vec<f32>> {
    let y = net.forward(batch(x, b).traced(Gradients::leaky()), Mode::Train);
    let rt = Cpu::default().tensor_from_vec(r.to_vec(), *y.shape());
    let grads = (y * rt).mean().backward();
    net.params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| grads.get(&p.value).as_vec())
        .collect()
}

#[test]
fn training_parameter_gradients_are_unchanged() {
    // Standard step (input gradient off vs on) and an adversarial-training-like step (an
    // input-gradient pass with parameter gradients off, then the training pass on the
    // perturbed batch, vs the same with every gradient computed, the former default).
    for (ci, (input, layers, b)) in cases().into_iter().enumerate() {
        let x = uniform(&mut rng(80 + ci as u64), b * input.numel(), 0.0, 1.0);
        let make = || net(input, layers.clone(), 90 + ci as u64);
        let n_out = forward(&mut make(), &x, b, Mode::Eval).len();
        let r = uniform(&mut rng(85 + ci as u64), n_out, -1.0, 1.0);
        let step = |new: bool| {
            let mut net = make();
            net.set_input_grad(!new);
            let standard = train_grads(&mut net, &x, b, &r);
            // Inner pass: one signed-gradient step of size 0.1 from x.
            net.set_input_grad(true);
            let (g, _) = input_grad(&mut net, &x, b, &r, Mode::Eval, !new);
            net.set_input_grad(!new);
            let xa: Vec<f32> = x
                .iter()
                .zip(&g)
                .map(|(v, g)| (v + 0.1 * g.signum()).clamp(0.0, 1.0))
                .collect();
            (standard, train_grads(&mut net, &xa, b, &r))
        };
        let (old_std, old_adv) = step(false);
        let (new_std, new_adv) = step(true);
        assert_eq!(old_std, new_std, "case {ci}: standard step");
        assert_eq!(old_adv, new_adv, "case {ci}: adversarial step");
    }
}
