//! Shared helpers for the layer and network tests (included with `#[path]`, also compiled
//! alone as an empty test target): hand-built models, naive references, finite differences.
#![allow(dead_code)]

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use salient_ir::{Layer, Shape};
use salient_nn::layers::infer::model_def;
use salient_nn::{Mode, Network};

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * rng.gen::<f32>()).collect()
}

/// Values in (-1, 1) at least `gap` away from 0 (keeps relu-like kinks out of finite differences).
pub fn away_from_zero(rng: &mut ChaCha8Rng, n: usize, gap: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v = gap + (1.0 - gap) * rng.gen::<f32>();
            if rng.gen::<bool>() {
                v
            } else {
                -v
            }
        })
        .collect()
}

/// A shuffled grid: all values distinct, pairwise at least `step` apart (no ties for max pool).
pub fn distinct(rng: &mut ChaCha8Rng, n: usize, step: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * step).collect();
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        v.swap(i, j);
    }
    v
}

/// A network with identity normalisation.
pub fn net(input: Shape, layers: Vec<Layer>, seed: u64) -> Network<Cpu> {
    let def = model_def("test", input, layers).expect("test model is valid");
    Network::new(&def, &[0.0], &[1.0], seed, &Cpu::default()).expect("test network builds")
}

pub fn batch(x: &[f32], b: usize) -> Tensor<(usize, usize), f32, Cpu> {
    Cpu::default().tensor_from_vec(x.to_vec(), (b, x.len() / b))
}

/// Forward without tape; returns the output values.
pub fn forward(net: &mut Network<Cpu>, x: &[f32], b: usize, mode: Mode) -> Vec<f32> {
    net.forward(batch(x, b), mode).as_vec()
}

/// The linear functional used for gradient checks: sum_i y_i r_i, on the host in f64.
pub fn dot(y: &[f32], r: &[f32]) -> f64 {
    assert_eq!(y.len(), r.len());
    y.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// Analytic gradients of sum(y * r): (d/dx, d/dparam for every parameter, None for buffers).
pub fn gradients(
    net: &mut Network<Cpu>,
    x: &[f32],
    b: usize,
    r: &[f32],
    mode: Mode,
) -> (Vec<f32>, Vec<Option<Vec<f32>>>) {
    let dev = Cpu::default();
    let xt = batch(x, b);
    let y = net.forward(xt.clone().traced(Gradients::leaky()), mode);
    let rt = dev.tensor_from_vec(r.to_vec(), *y.shape());
    let grads = (y * rt).sum().backward();
    let gx = grads.get(&xt).as_vec();
    let gp = net
        .params()
        .iter()
        .map(|p| p.trainable.then(|| grads.get(&p.value).as_vec()))
        .collect();
    (gx, gp)
}

/// Up to `max` coordinates of a tensor of `n` elements: all if small, else a random sample.
fn coords(rng: &mut ChaCha8Rng, n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        (0..n).collect()
    } else {
        (0..max).map(|_| rng.gen_range(0..n)).collect()
    }
}

fn close(analytic: f32, numeric: f64, rel: f64, abs: f64) -> bool {
    let a = analytic as f64;
    (a - numeric).abs() <= rel * a.abs().max(numeric.abs()) + abs
}

/// Compares the analytic gradients of sum(y * r) with central finite differences
/// (f(v + eps) - f(v - eps)) / (2 eps), on the input and on every trainable parameter.
/// Returns the number of coordinates checked; panics with the first mismatch.
pub fn check_gradients(
    net: &mut Network<Cpu>,
    x: &[f32],
    b: usize,
    mode: Mode,
    eps: f32,
    rel: f64,
    abs: f64,
) -> usize {
    let mut rg = rng(99);
    let n_out = forward(net, x, b, mode).len();
    let r = uniform(&mut rg, n_out, -1.0, 1.0);
    let (gx, gp) = gradients(net, x, b, &r, mode);
    let mut checked = 0;
    for i in coords(&mut rg, x.len(), 48) {
        let mut xp = x.to_vec();
        xp[i] += eps;
        let fp = dot(&forward(net, &xp, b, mode), &r);
        xp[i] -= 2.0 * eps;
        let fm = dot(&forward(net, &xp, b, mode), &r);
        let num = (fp - fm) / (2.0 * eps as f64);
        assert!(
            close(gx[i], num, rel, abs),
            "d/dx[{i}]: analytic {} vs numeric {num}",
            gx[i]
        );
        checked += 1;
    }
    for (pi, g) in gp.iter().enumerate() {
        let Some(g) = g else { continue };
        let name = net.params()[pi].name.clone();
        let base = net.params()[pi].value.as_vec();
        for i in coords(&mut rg, base.len(), 24) {
            let mut v = base.clone();
            v[i] += eps;
            net.params_mut()[pi].value.copy_from(&v);
            let fp = dot(&forward(net, x, b, mode), &r);
            v[i] -= 2.0 * eps;
            net.params_mut()[pi].value.copy_from(&v);
            let fm = dot(&forward(net, x, b, mode), &r);
            net.params_mut()[pi].value.copy_from(&base);
            let num = (fp - fm) / (2.0 * eps as f64);
            assert!(
                close(g[i], num, rel, abs),
                "d/d{name}[{i}]: analytic {} vs numeric {num}",
                g[i]
            );
            checked += 1;
        }
    }
    checked
}

pub fn assert_close(a: &[f32], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (*x as f64 - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs reference {y}"
        );
    }
}

/// Naive convolution on channels-last data, weight (k, k, c, o) row-major.
#[allow(clippy::too_many_arguments)]
pub fn conv_ref(
    x: &[f32],
    b: usize,
    (c, h, w): (usize, usize, usize),
    wt: &[f32],
    bias: Option<&[f32]>,
    o: usize,
    k: usize,
    s: usize,
    p: usize,
) -> Vec<f64> {
    let ho = (h + 2 * p - k) / s + 1;
    let wo = (w + 2 * p - k) / s + 1;
    let mut y = vec![0.0f64; b * ho * wo * o];
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for co in 0..o {
                    let mut acc = bias.map_or(0.0, |bb| bb[co] as f64);
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky) as isize - p as isize;
                            let ix = (ox * s + kx) as isize - p as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            for ci in 0..c {
                                let xv =
                                    x[((n * h + iy as usize) * w + ix as usize) * c + ci] as f64;
                                acc += xv * wt[((ky * k + kx) * c + ci) * o + co] as f64;
                            }
                        }
                    }
                    y[((n * ho + oy) * wo + ox) * o + co] = acc;
                }
            }
        }
    }
    y
}

/// Naive max (or average) pooling on channels-last data.
pub fn pool_ref(
    x: &[f32],
    b: usize,
    (c, h, w): (usize, usize, usize),
    k: usize,
    s: usize,
    max: bool,
) -> Vec<f64> {
    let ho = (h - k) / s + 1;
    let wo = (w - k) / s + 1;
    let mut y = Vec::with_capacity(b * ho * wo * c);
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ci in 0..c {
                    let vals = (0..k * k).map(|j| {
                        x[((n * h + oy * s + j / k) * w + ox * s + j % k) * c + ci] as f64
                    });
                    y.push(if max {
                        vals.fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        vals.sum::<f64>() / (k * k) as f64
                    });
                }
            }
        }
    }
    y
}

/// Parameter values of `net` by name.
pub fn param(net: &Network<Cpu>, name: &str) -> Vec<f32> {
    net.params()
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
        .value
        .as_vec()
}
