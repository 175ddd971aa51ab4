//! The same training step on the CPU and on CUDA (needs the `cuda` feature and a GPU): the
//! quickstart and Ismail et al. networks, same seed, same batch of real-valued inputs, train mode
//! without dropout randomness differences (dropout masks come from the network's own host
//! generator, so they are identical on both devices). The CPU runs the fused CPU kernels
//! (Winograd, direct first layer, conv+relu+pool), CUDA the portable dfdx graph (gather-based
//! im2col + matmul): loss, logits, every parameter gradient and the input gradient must agree
//! to a relative tolerance of 1e-3 of each tensor's largest magnitude.
#![cfg(feature = "cuda")]

use dfdx::prelude::*;
use salient_ir::{Layer, Shape};
use salient_nn::layers::infer::model_def;
use salient_nn::{Mode, Network};

fn quickstart() -> Vec<Layer> {
    salient_nn::bench_models::layers("quickstart").expect("known model")
}

fn ismail() -> Vec<Layer> {
    salient_nn::bench_models::layers("ismail").expect("known model")
}

/// (loss, logits, parameter gradients by name, input gradient) of one train-mode step.
fn step<D: Device<f32>>(
    dev: &D,
    layers: Vec<Layer>,
    x: &[f32],
    labels: &[usize],
) -> (f32, Vec<f32>, Vec<(String, Vec<f32>)>, Vec<f32>) {
    let b = labels.len();
    let def = model_def("net", Shape::Image { c: 1, h: 28, w: 28 }, layers).unwrap();
    let mut net = Network::new(&def, &[0.1307], &[0.3081], 3, dev).unwrap();
    let xt = dev.tensor_from_vec(x.to_vec(), (b, 784));
    let mut onehot = vec![0.0f32; b * 10];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * 10 + l] = 1.0;
    }
    let y = dev.tensor_from_vec(onehot, (b, 10));
    let logits = net.forward(xt.clone().traced(Gradients::leaky()), Mode::Train);
    let logits_host = logits.retaped::<NoneTape>().as_vec();
    let loss = cross_entropy_with_logits_loss(logits, y);
    let value = loss.as_vec()[0];
    let grads = loss.backward();
    let params = net
        .params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| (p.name.clone(), grads.get(&p.value).as_vec()))
        .collect();
    (value, logits_host, params, grads.get(&xt).as_vec())
}

fn close(what: &str, cpu: &[f32], gpu: &[f32]) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: length");
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = cpu
        .iter()
        .zip(gpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("{what}: max |cpu - cuda| = {worst:.3e} (largest |cpu| {scale:.3e})");
    assert!(
        worst <= 1e-3 * scale,
        "{what}: CPU and CUDA differ by {worst} (largest magnitude {scale})"
    );
}

fn compare(name: &str, layers: fn() -> Vec<Layer>) {
    let b = 32;
    let mut state = 11u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1u32 << 24) as f32
    };
    let x: Vec<f32> = (0..b * 784).map(|_| next()).collect();
    let labels: Vec<usize> = (0..b).map(|i| (i * 7 + 3) % 10).collect();
    let (l_cpu, z_cpu, g_cpu, gx_cpu) = step(&Cpu::default(), layers(), &x, &labels);
    let (l_gpu, z_gpu, g_gpu, gx_gpu) = step(&Cuda::default(), layers(), &x, &labels);
    println!("{name}: loss cpu {l_cpu} cuda {l_gpu}");
    assert!(
        (l_cpu - l_gpu).abs() <= 1e-4 * l_cpu.abs().max(1.0),
        "{name}: loss {l_cpu} vs {l_gpu}"
    );
    close(&format!("{name} logits"), &z_cpu, &z_gpu);
    for ((n, a), (m, c)) in g_cpu.iter().zip(&g_gpu) {
        assert_eq!(n, m);
        close(&format!("{name} d loss / d {n}"), a, c);
    }
    close(&format!("{name} d loss / d x"), &gx_cpu, &gx_gpu);
}

#[test]
fn quickstart_step_agrees_between_cpu_and_cuda() {
    compare("quickstart", quickstart);
}

#[test]
fn ismail_step_agrees_between_cpu_and_cuda() {
    compare("ismail", ismail);
}
