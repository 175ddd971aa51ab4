//! Every layer's forward against a naive loop reference, and its backward (input and parameter
//! gradients) against central finite differences, on the CPU kernels and on the portable
//! (gather-based, CUDA) path.

#[path = "layers_util.rs"]
mod util;

use salient_ir::{Layer, Projection, Shape};
use salient_nn::Mode;
use util::*;

fn img(c: usize, h: usize, w: usize) -> Shape {
    Shape::Image { c, h, w }
}

fn conv(out: usize, kernel: usize, stride: usize, padding: usize) -> Layer {
    Layer::Conv {
        out,
        kernel,
        stride,
        padding,
    }
}

#[test]
fn conv_forward_matches_naive_loops() {
    // (c, h, w, out, k, stride, pad): padding, stride 2 with a leftover row, 1x1, k = input.
    let cases = [
        (3, 7, 6, 4, 3, 2, 1),
        (2, 6, 6, 3, 5, 1, 2),
        (4, 5, 5, 2, 1, 1, 0),
        (1, 4, 4, 2, 4, 1, 0),
        (2, 8, 7, 3, 3, 3, 2),
    ];
    for (ci, (c, h, w, o, k, s, p)) in cases.into_iter().enumerate() {
        for portable in [false, true] {
            let mut net = net(img(c, h, w), vec![conv(o, k, s, p)], ci as u64);
            net.set_portable(portable);
            let b = 2;
            let x = uniform(&mut rng(ci as u64), b * c * h * w, -1.0, 1.0);
            let y = forward(&mut net, &x, b, Mode::Eval);
            let want = conv_ref(
                &x,
                b,
                (c, h, w),
                &param(&net, "layers.0.weight"),
                Some(&param(&net, "layers.0.bias")),
                o,
                k,
                s,
                p,
            );
            assert_close(
                &y,
                &want,
                1e-5,
                &format!("conv case {ci} portable={portable}"),
            );
        }
    }
}

#[test]
fn conv_gradients_match_finite_differences() {
    for portable in [false, true] {
        for (c, h, w, o, k, s, p) in [(2, 5, 6, 3, 3, 2, 1), (3, 4, 4, 2, 3, 1, 1)] {
            let mut net = net(img(c, h, w), vec![conv(o, k, s, p)], 3);
            net.set_portable(portable);
            let x = uniform(&mut rng(4), 2 * c * h * w, -1.0, 1.0);
            let n = check_gradients(&mut net, &x, 2, Mode::Train, 1e-2, 1e-2, 1e-3);
            assert!(n > 50);
        }
    }
}

#[test]
fn pooling_forward_matches_naive_loops() {
    // (c, h, w, size, stride): even, odd (floor), overlapping windows, stride > size.
    let cases = [
        (3, 6, 6, 2, 2),
        (2, 5, 7, 2, 2),
        (2, 7, 7, 3, 2),
        (1, 8, 8, 2, 3),
        (3, 4, 4, 4, 1),
    ];
    for (ci, (c, h, w, k, s)) in cases.into_iter().enumerate() {
        for max in [true, false] {
            for portable in [false, true] {
                let layer = if max {
                    Layer::MaxPool { size: k, stride: s }
                } else {
                    Layer::AvgPool { size: k, stride: s }
                };
                let mut net = net(img(c, h, w), vec![layer], 0);
                net.set_portable(portable);
                let x = uniform(&mut rng(ci as u64), 3 * c * h * w, -1.0, 1.0);
                let y = forward(&mut net, &x, 3, Mode::Eval);
                let want = pool_ref(&x, 3, (c, h, w), k, s, max);
                assert_close(
                    &y,
                    &want,
                    1e-6,
                    &format!("pool case {ci} max={max} portable={portable}"),
                );
            }
        }
    }
}

#[test]
fn pooling_gradients_match_finite_differences() {
    for max in [true, false] {
        for portable in [false, true] {
            for (c, h, w, k, s) in [(2, 5, 5, 2, 2), (2, 6, 5, 3, 2), (1, 4, 4, 2, 1)] {
                let layer = if max {
                    Layer::MaxPool { size: k, stride: s }
                } else {
                    Layer::AvgPool { size: k, stride: s }
                };
                let mut net = net(img(c, h, w), vec![layer], 0);
                net.set_portable(portable);
                // Distinct values 0.05 apart: eps = 1e-2 never changes which input is the max.
                let x = distinct(&mut rng(7), 2 * c * h * w, 0.05);
                check_gradients(&mut net, &x, 2, Mode::Train, 1e-2, 1e-2, 1e-3);
            }
        }
    }
}

#[test]
fn maxpool_tie_sends_gradient_to_first_maximum_like_pytorch() {
    let mut net = net(img(1, 2, 2), vec![Layer::MaxPool { size: 2, stride: 2 }], 0);
    let (gx, _) = gradients(&mut net, &[0.5, 0.5, 0.5, 0.5], 1, &[1.0], Mode::Train);
    assert_eq!(gx, vec![1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn dense_forward_and_gradients() {
    let mut net = net(Shape::Flat(7), vec![Layer::Dense { out: 5 }], 1);
    let x = uniform(&mut rng(1), 3 * 7, -1.0, 1.0);
    let y = forward(&mut net, &x, 3, Mode::Eval);
    let (w, bias) = (param(&net, "layers.0.weight"), param(&net, "layers.0.bias"));
    let mut want = vec![0.0f64; 15];
    for n in 0..3 {
        for o in 0..5 {
            want[n * 5 + o] = bias[o] as f64
                + (0..7)
                    .map(|i| x[n * 7 + i] as f64 * w[i * 5 + o] as f64)
                    .sum::<f64>();
        }
    }
    assert_close(&y, &want, 1e-5, "dense");
    check_gradients(&mut net, &x, 3, Mode::Train, 1e-2, 1e-2, 1e-3);
}

#[test]
#[allow(clippy::type_complexity)]
fn activations_forward_and_gradients() {
    let acts: [(Layer, fn(f64) -> f64); 4] = [
        (Layer::Relu, |v| v.max(0.0)),
        (Layer::LeakyRelu { slope: 0.1 }, |v| {
            if v >= 0.0 {
                v
            } else {
                0.1 * v
            }
        }),
        (Layer::Tanh, f64::tanh),
        (Layer::Sigmoid, |v| 1.0 / (1.0 + (-v).exp())),
    ];
    for (layer, f) in acts {
        let mut net = net(Shape::Flat(10), vec![layer.clone()], 0);
        let x = away_from_zero(&mut rng(2), 30, 0.05);
        let y = forward(&mut net, &x, 3, Mode::Eval);
        let want: Vec<f64> = x.iter().map(|v| f(*v as f64)).collect();
        assert_close(&y, &want, 1e-6, &format!("{layer:?}"));
        check_gradients(&mut net, &x, 3, Mode::Train, 1e-2, 1e-2, 1e-3);
    }
}

#[test]
fn flatten_produces_pytorch_chw_order() {
    let (c, h, w) = (3, 2, 4);
    let mut net = net(img(c, h, w), vec![Layer::Flatten], 0);
    let x: Vec<f32> = (0..2 * c * h * w).map(|i| i as f32).collect();
    let y = forward(&mut net, &x, 2, Mode::Eval);
    for n in 0..2 {
        for ci in 0..c {
            for yy in 0..h {
                for xx in 0..w {
                    let torch = n * c * h * w + (ci * h + yy) * w + xx;
                    let ours = n * c * h * w + (yy * w + xx) * c + ci;
                    assert_eq!(y[torch], x[ours]);
                }
            }
        }
    }
    let (gx, _) = gradients(&mut net, &x, 2, &y, Mode::Train);
    assert_eq!(gx, x, "flatten's backward is the inverse permutation");
}

#[test]
fn flatten_then_dense_equals_pytorch_with_exported_weight() {
    // PyTorch: y = W_torch @ flatten_chw(x) + b, with W_torch = engine weight permuted by to_torch.
    let (c, h, w, o) = (2, 3, 3, 4);
    let mut net = net(
        img(c, h, w),
        vec![Layer::Flatten, Layer::Dense { out: o }],
        5,
    );
    let p = &net.params()[0];
    assert_eq!(
        (p.name.as_str(), p.torch_shape()),
        ("layers.1.weight", vec![o, c * h * w])
    );
    let engine = p.value.as_vec(); // (in, out)
    let torch_w = |oo: usize, i: usize| engine[i * o + oo];
    let bias = param(&net, "layers.1.bias");
    let x = uniform(&mut rng(3), c * h * w, -1.0, 1.0);
    let y = forward(&mut net, &x, 1, Mode::Eval);
    let nchw: Vec<f32> = (0..c * h * w)
        .map(|i| {
            let (ci, yy, xx) = (i / (h * w), (i / w) % h, i % w);
            x[(yy * w + xx) * c + ci]
        })
        .collect();
    let want: Vec<f64> = (0..o)
        .map(|oo| {
            bias[oo] as f64
                + (0..c * h * w)
                    .map(|i| torch_w(oo, i) as f64 * nchw[i] as f64)
                    .sum::<f64>()
        })
        .collect();
    assert_close(&y, &want, 1e-5, "flatten+dense");
}

fn bn_ref(
    x: &[f32],
    rows: usize,
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for r in 0..rows {
        for j in 0..c {
            mean[j] += x[r * c + j] as f64 / rows as f64;
        }
    }
    for r in 0..rows {
        for j in 0..c {
            var[j] += (x[r * c + j] as f64 - mean[j]).powi(2) / rows as f64;
        }
    }
    let y = (0..rows * c)
        .map(|i| {
            let j = i % c;
            (x[i] as f64 - mean[j]) / (var[j] + eps).sqrt() * gamma[j] as f64 + beta[j] as f64
        })
        .collect();
    (y, mean, var)
}

#[test]
fn batchnorm_train_and_eval_match_pytorch_formulas() {
    for (shape, c, rows_per) in [(img(3, 2, 2), 3, 4), (Shape::Flat(5), 5, 1)] {
        let (momentum, eps) = (0.1f32, 1e-5f32);
        let mut net = net(shape, vec![Layer::BatchNorm { momentum, eps }], 0);
        // Non-trivial affine parameters.
        let gamma = uniform(&mut rng(1), c, 0.5, 1.5);
        let beta = uniform(&mut rng(2), c, -0.5, 0.5);
        net.params_mut()[0].value.copy_from(&gamma);
        net.params_mut()[1].value.copy_from(&beta);
        let b = 4;
        let x = uniform(&mut rng(3), b * shape.numel(), -2.0, 3.0);
        let rows = b * rows_per;
        let y = forward(&mut net, &x, b, Mode::Train);
        let (want, mean, var) = bn_ref(&x, rows, c, &gamma, &beta, eps as f64);
        assert_close(&y, &want, 1e-4, "batchnorm train");
        // Running stats: 0.9 * (0, 1) + 0.1 * (mean, unbiased var).
        let rm = param(&net, "layers.0.running_mean");
        let rv = param(&net, "layers.0.running_var");
        let want_rm: Vec<f64> = mean.iter().map(|m| 0.1 * m).collect();
        let want_rv: Vec<f64> = var
            .iter()
            .map(|v| 0.9 + 0.1 * v * rows as f64 / (rows - 1) as f64)
            .collect();
        assert_close(&rm, &want_rm, 1e-5, "running_mean");
        assert_close(&rv, &want_rv, 1e-5, "running_var");
        // Eval uses the running statistics.
        let ye = forward(&mut net, &x, b, Mode::Eval);
        let want_e: Vec<f64> = (0..x.len())
            .map(|i| {
                let j = i % c;
                (x[i] as f64 - rm[j] as f64) / (rv[j] as f64 + eps as f64).sqrt() * gamma[j] as f64
                    + beta[j] as f64
            })
            .collect();
        assert_close(&ye, &want_e, 1e-5, "batchnorm eval");
        // Eval does not move the running statistics.
        assert_eq!(param(&net, "layers.0.running_mean"), rm);
        check_gradients(&mut net, &x, b, Mode::Train, 1e-2, 2e-2, 2e-3);
        check_gradients(&mut net, &x, b, Mode::Eval, 1e-2, 1e-2, 1e-3);
    }
}

fn block(projection: Option<Projection>, stride: usize, out: usize) -> Layer {
    let inner = |kind| salient_ir::LayerDef {
        name: String::new(),
        kind,
        input: Shape::Flat(0),
        output: Shape::Flat(0),
        params: 0,
    };
    Layer::Residual {
        body: vec![
            inner(conv(out, 3, stride, 1)),
            inner(Layer::Tanh),
            inner(conv(out, 3, 1, 1)),
        ],
        projection,
    }
}

#[test]
fn residual_forward_matches_composed_reference() {
    let (c, h, w) = (2, 5, 5);
    for (projection, stride, out) in [(None, 1, 2), (Some(Projection { out: 3, stride: 2 }), 2, 3)]
    {
        for portable in [false, true] {
            let mut net = net(img(c, h, w), vec![block(projection, stride, out)], 11);
            net.set_portable(portable);
            let names: Vec<_> = net.params().iter().map(|p| p.name.clone()).collect();
            let mut want_names = vec![
                "layers.0.body.0.weight",
                "layers.0.body.0.bias",
                "layers.0.body.2.weight",
                "layers.0.body.2.bias",
            ];
            if projection.is_some() {
                want_names.push("layers.0.shortcut.weight");
            }
            assert_eq!(names, want_names);
            let x = uniform(&mut rng(5), 2 * c * h * w, -1.0, 1.0);
            let y = forward(&mut net, &x, 2, Mode::Eval);
            let (w0, b0) = (
                param(&net, "layers.0.body.0.weight"),
                param(&net, "layers.0.body.0.bias"),
            );
            let (w2, b2) = (
                param(&net, "layers.0.body.2.weight"),
                param(&net, "layers.0.body.2.bias"),
            );
            let a: Vec<f32> = conv_ref(&x, 2, (c, h, w), &w0, Some(&b0), out, 3, stride, 1)
                .iter()
                .map(|v| v.tanh() as f32)
                .collect();
            let ho = (h + 2 - 3) / stride + 1;
            let body = conv_ref(&a, 2, (out, ho, ho), &w2, Some(&b2), out, 3, 1, 1);
            let skip: Vec<f64> = match projection {
                None => x.iter().map(|v| *v as f64).collect(),
                Some(p) => conv_ref(
                    &x,
                    2,
                    (c, h, w),
                    &param(&net, "layers.0.shortcut.weight"),
                    None,
                    p.out,
                    1,
                    p.stride,
                    0,
                ),
            };
            let want: Vec<f64> = body.iter().zip(&skip).map(|(a, b)| a + b).collect();
            assert_close(
                &y,
                &want,
                1e-5,
                &format!("residual projection={projection:?} portable={portable}"),
            );
            check_gradients(&mut net, &x, 2, Mode::Train, 1e-2, 1e-2, 1e-3);
        }
    }
}

#[test]
fn cpu_kernels_and_portable_path_agree_on_a_deep_model() {
    let layers = vec![
        conv(4, 3, 1, 1),
        Layer::BatchNorm {
            momentum: 0.1,
            eps: 1e-5,
        },
        Layer::LeakyRelu { slope: 0.01 },
        Layer::MaxPool { size: 2, stride: 2 },
        block(Some(Projection { out: 6, stride: 2 }), 2, 6),
        Layer::AvgPool { size: 2, stride: 1 },
        Layer::Flatten,
        Layer::Dense { out: 3 },
    ];
    let (mut fast, mut port) = (
        net(img(3, 10, 10), layers.clone(), 7),
        net(img(3, 10, 10), layers, 7),
    );
    port.set_portable(true);
    let x = uniform(&mut rng(8), 4 * 300, 0.0, 1.0);
    let r = uniform(&mut rng(9), 4 * 3, -1.0, 1.0);
    let (gx_f, gp_f) = gradients(&mut fast, &x, 4, &r, Mode::Train);
    let (gx_p, gp_p) = gradients(&mut port, &x, 4, &r, Mode::Train);
    let to64 = |v: &[f32]| v.iter().map(|a| *a as f64).collect::<Vec<_>>();
    assert_close(&gx_f, &to64(&gx_p), 1e-4, "input gradient");
    for (a, b) in gp_f.iter().zip(&gp_p) {
        if let (Some(a), Some(b)) = (a, b) {
            assert_close(a, &to64(b), 1e-4, "parameter gradient");
        }
    }
    let (yf, yp) = (
        forward(&mut fast, &x, 4, Mode::Eval),
        forward(&mut port, &x, 4, Mode::Eval),
    );
    assert_close(&yf, &to64(&yp), 1e-5, "eval logits");
}
