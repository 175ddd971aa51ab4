//! Optimizers against torch's update rules: hand-computed values, an f64 re-implementation
//! of torch's algorithms followed literally, skipping rules, errors, and real training.

use dfdx::prelude::*;
use salient_nn::optim::{
    self, Adadelta, AdadeltaConfig, Adam, AdamConfig, Optimizer, Sgd, SgdConfig,
};
use salient_nn::{NnError, Param};

/// The device under test: Cpu, or Cuda with the `cuda` feature (needs a GPU).
#[cfg(not(feature = "cuda"))]
type Dev = Cpu;
#[cfg(feature = "cuda")]
type Dev = Cuda;

fn param(dev: &Dev, name: &str, values: &[f32], trainable: bool) -> Param<Dev> {
    Param {
        name: name.to_string(),
        shape: vec![values.len()],
        to_torch: vec![0],
        value: dev.tensor_from_vec(values.to_vec(), (values.len(),)),
        trainable,
    }
}

fn values(p: &Param<Dev>) -> Vec<f32> {
    p.value.as_vec()
}

/// Gradients of `Σ_i Σ_j p_i[j] · c_i[j]` (so the gradient of `p_i` is exactly `c_i`);
/// params with `None` take no part in the graph and have no gradient.
fn grads_for(dev: &Dev, params: &[Param<Dev>], coeffs: &[Option<Vec<f32>>]) -> Gradients<f32, Dev> {
    let mut loss: Option<Tensor<(), f32, Dev, OwnedTape<f32, Dev>>> = None;
    for (p, c) in params.iter().zip(coeffs) {
        let Some(c) = c else { continue };
        let c = dev.tensor_from_vec(c.clone(), (c.len(),));
        let term = (p.value.retaped::<OwnedTape<f32, Dev>>() * c).sum();
        loss = Some(match loss {
            None => term,
            Some(l) => l + term,
        });
    }
    loss.expect("at least one parameter takes part").backward()
}

fn assert_close(actual: &[f32], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let err = (a as f64 - e).abs();
        assert!(
            err <= tol * (1.0 + e.abs()),
            "{what}[{i}]: got {a}, expected {e} (error {err:e})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// f64 re-implementations of torch.optim's documented algorithms (single tensor, literal).
// ---------------------------------------------------------------------------------------------

trait Reference {
    fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64);
}

struct RefSgd {
    momentum: f64,
    nesterov: bool,
    wd: f64,
    buf: Option<Vec<f64>>,
}

impl Reference for RefSgd {
    fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64) {
        // g_t = g_t + λ θ_{t-1}
        let mut g: Vec<f64> = g
            .iter()
            .zip(p.iter())
            .map(|(g, p)| g + self.wd * p)
            .collect();
        if self.momentum != 0.0 {
            let b = match self.buf.take() {
                None => g.clone(),
                Some(b) => b
                    .iter()
                    .zip(&g)
                    .map(|(b, g)| self.momentum * b + g)
                    .collect(),
            };
            g = if self.nesterov {
                g.iter()
                    .zip(&b)
                    .map(|(g, b)| g + self.momentum * b)
                    .collect()
            } else {
                b.clone()
            };
            self.buf = Some(b);
        }
        for (p, g) in p.iter_mut().zip(&g) {
            *p -= lr * g;
        }
    }
}

struct RefAdam {
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Reference for RefAdam {
    fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64) {
        self.t += 1;
        if self.m.is_empty() {
            self.m = vec![0.0; p.len()];
            self.v = vec![0.0; p.len()];
        }
        for i in 0..p.len() {
            let g = g[i] + self.wd * p[i];
            self.m[i] = self.b1 * self.m[i] + (1.0 - self.b1) * g;
            self.v[i] = self.b2 * self.v[i] + (1.0 - self.b2) * g * g;
            let m_hat = self.m[i] / (1.0 - self.b1.powi(self.t));
            let v_hat = self.v[i] / (1.0 - self.b2.powi(self.t));
            p[i] -= lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }
}

struct RefAdadelta {
    rho: f64,
    eps: f64,
    wd: f64,
    v: Vec<f64>,
    u: Vec<f64>,
}

impl Reference for RefAdadelta {
    fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64) {
        if self.v.is_empty() {
            self.v = vec![0.0; p.len()];
            self.u = vec![0.0; p.len()];
        }
        for i in 0..p.len() {
            let g = g[i] + self.wd * p[i];
            self.v[i] = self.rho * self.v[i] + (1.0 - self.rho) * g * g;
            let delta = (self.u[i] + self.eps).sqrt() / (self.v[i] + self.eps).sqrt() * g;
            self.u[i] = self.rho * self.u[i] + (1.0 - self.rho) * delta * delta;
            p[i] -= lr * delta;
        }
    }
}

/// Runs `opt` and `reference` side by side over the gradient sequence `gs` and compares after
/// every step.
fn compare(
    mut opt: Box<dyn Optimizer<Dev>>,
    mut reference: impl Reference,
    init: &[f32],
    gs: &[Vec<f32>],
    lr: f64,
    tol: f64,
    what: &str,
) {
    let dev = Dev::default();
    let mut params = vec![param(&dev, "w", init, true)];
    let mut expected: Vec<f64> = init.iter().map(|&v| v as f64).collect();
    for (t, g) in gs.iter().enumerate() {
        let grads = grads_for(&dev, &params, &[Some(g.clone())]);
        opt.step(&mut params, &grads, lr).unwrap();
        let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
        reference.step(&mut expected, &g64, lr);
        assert_close(
            &values(&params[0]),
            &expected,
            tol,
            &format!("{what} step {}", t + 1),
        );
    }
}

fn gradient_sequence() -> Vec<Vec<f32>> {
    vec![
        vec![0.5, -1.0, 2.0, 0.0],
        vec![0.25, 0.75, -3.0, 1e-3],
        vec![-1.5, 0.1, 0.5, -2.0],
    ]
}

const INIT: [f32; 4] = [1.0, -0.5, 0.25, 2.0];

// ---------------------------------------------------------------------------------------------
// Hand-computed values.
// ---------------------------------------------------------------------------------------------

#[test]
fn sgd_plain_by_hand() {
    // p ← p − lr·g with g = 2, lr = 0.1: 1 → 0.8 → 0.6 → 0.4
    let dev = Dev::default();
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    });
    let mut ps = vec![param(&dev, "w", &[1.0], true)];
    for expected in [0.8, 0.6, 0.4] {
        let grads = grads_for(&dev, &ps, &[Some(vec![2.0])]);
        opt.step(&mut ps, &grads, 0.1).unwrap();
        assert_close(&values(&ps[0]), &[expected], 1e-6, "sgd");
    }
}

#[test]
fn sgd_momentum_and_nesterov_by_hand() {
    // g = 1, μ = 0.9, lr = 0.1.
    // momentum: b = 1, 1.9, 2.71        → p = 0.9, 0.71, 0.439
    // nesterov: g + μb = 1.9, 2.71, 3.439 → p = 0.81, 0.539, 0.1951
    let dev = Dev::default();
    for (nesterov, expected) in [(false, [0.9, 0.71, 0.439]), (true, [0.81, 0.539, 0.1951])] {
        let mut opt = Sgd::new(SgdConfig {
            momentum: 0.9,
            nesterov,
            weight_decay: 0.0,
        });
        let mut ps = vec![param(&dev, "w", &[1.0], true)];
        for e in expected {
            let grads = grads_for(&dev, &ps, &[Some(vec![1.0])]);
            opt.step(&mut ps, &grads, 0.1).unwrap();
            assert_close(&values(&ps[0]), &[e], 1e-6, &format!("nesterov={nesterov}"));
        }
    }
}

#[test]
fn adam_by_hand() {
    // A constant gradient c gives m̂ = c and v̂ = c² at every step, so each step moves
    // p by lr·c/(|c| + ε) ≈ lr·sign(c): 1 → 0.9 → 0.8 → 0.7 for c = 0.5, and the other way
    // for c = −4.
    let dev = Dev::default();
    let mut opt = Adam::new(AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    });
    let mut ps = vec![param(&dev, "w", &[1.0, 1.0], true)];
    for expected in [[0.9, 1.1], [0.8, 1.2], [0.7, 1.3]] {
        let grads = grads_for(&dev, &ps, &[Some(vec![0.5, -4.0])]);
        opt.step(&mut ps, &grads, 0.1).unwrap();
        assert_close(&values(&ps[0]), &expected, 1e-6, "adam");
    }
}

#[test]
fn adadelta_by_hand() {
    // g = 1, ρ = 0.9, ε = 1e-6, lr = 1, p0 = 1:
    // v1 = 0.1;  Δ1 = √(1e-6)/√(0.100001) = 0.0031622619;  p1 = 0.9968377381
    // u1 = 0.1·Δ1² = 9.99999e-7
    // v2 = 0.19; Δ2 = √(u1 + 1e-6)/√(0.190001) = 0.0032444217;  p2 = 0.9935933164
    let dev = Dev::default();
    let mut opt = Adadelta::new(AdadeltaConfig {
        rho: 0.9,
        eps: 1e-6,
        weight_decay: 0.0,
    });
    let mut ps = vec![param(&dev, "w", &[1.0], true)];
    for expected in [0.996_837_738_1, 0.993_593_316_4] {
        let grads = grads_for(&dev, &ps, &[Some(vec![1.0])]);
        opt.step(&mut ps, &grads, 1.0).unwrap();
        assert_close(&values(&ps[0]), &[expected], 1e-7, "adadelta");
    }
}

#[test]
fn weight_decay_is_added_to_the_gradient() {
    // Zero gradient, wd = 0.5, lr = 0.1: p ← p − lr·wd·p = 0.95·p for plain SGD.
    let dev = Dev::default();
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.5,
    });
    let mut ps = vec![param(&dev, "w", &[2.0, -4.0], true)];
    for expected in [[1.9, -3.8], [1.805, -3.61]] {
        let grads = grads_for(&dev, &ps, &[Some(vec![0.0, 0.0])]);
        opt.step(&mut ps, &grads, 0.1).unwrap();
        assert_close(&values(&ps[0]), &expected, 1e-6, "sgd weight decay");
    }
    // Adam normalises the decayed gradient: the first step is lr·sign(wd·p).
    let mut opt = Adam::new(AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.5,
    });
    let mut ps = vec![param(&dev, "w", &[2.0, -4.0], true)];
    let grads = grads_for(&dev, &ps, &[Some(vec![0.0, 0.0])]);
    opt.step(&mut ps, &grads, 0.1).unwrap();
    assert_close(&values(&ps[0]), &[1.9, -3.9], 1e-6, "adam weight decay");
}

// ---------------------------------------------------------------------------------------------
// Against the literal f64 references, with weight decay and changing gradients.
// ---------------------------------------------------------------------------------------------

#[test]
fn sgd_matches_torch_rule() {
    for (momentum, nesterov, wd) in [(0.0, false, 0.0), (0.9, false, 1e-2), (0.8, true, 5e-2)] {
        let cfg = SgdConfig {
            momentum,
            nesterov,
            weight_decay: wd,
        };
        let reference = RefSgd {
            momentum,
            nesterov,
            wd,
            buf: None,
        };
        compare(
            Box::new(Sgd::new(cfg)),
            reference,
            &INIT,
            &gradient_sequence(),
            0.05,
            1e-6,
            &format!("{cfg:?}"),
        );
    }
}

#[test]
fn adam_matches_torch_rule() {
    for (b1, b2, eps, wd) in [(0.9, 0.999, 1e-8, 0.0), (0.5, 0.9, 1e-3, 0.1)] {
        let cfg = AdamConfig {
            beta1: b1,
            beta2: b2,
            eps,
            weight_decay: wd,
        };
        let reference = RefAdam {
            b1,
            b2,
            eps,
            wd,
            t: 0,
            m: vec![],
            v: vec![],
        };
        compare(
            Box::new(Adam::new(cfg)),
            reference,
            &INIT,
            &gradient_sequence(),
            0.01,
            1e-6,
            &format!("{cfg:?}"),
        );
    }
}

#[test]
fn adadelta_matches_torch_rule() {
    for (rho, eps, wd, lr) in [(0.9, 1e-6, 0.0, 1.0), (0.5, 1e-3, 0.1, 0.5)] {
        let cfg = AdadeltaConfig {
            rho,
            eps,
            weight_decay: wd,
        };
        let reference = RefAdadelta {
            rho,
            eps,
            wd,
            v: vec![],
            u: vec![],
        };
        compare(
            Box::new(Adadelta::new(cfg)),
            reference,
            &INIT,
            &gradient_sequence(),
            lr,
            1e-6,
            &format!("{cfg:?}"),
        );
    }
}

#[test]
fn build_dispatches_on_the_ir() {
    let ir = salient_ir::Optimizer::Sgd {
        momentum: 0.9,
        nesterov: true,
    };
    let reference = RefSgd {
        momentum: 0.9,
        nesterov: true,
        wd: 1e-3,
        buf: None,
    };
    compare(
        optim::build(&ir, 1e-3),
        reference,
        &INIT,
        &gradient_sequence(),
        0.1,
        1e-6,
        "build sgd",
    );

    let ir = salient_ir::Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-7,
    };
    let reference = RefAdam {
        b1: 0.9,
        b2: 0.99,
        eps: 1e-7,
        wd: 0.0,
        t: 0,
        m: vec![],
        v: vec![],
    };
    compare(
        optim::build(&ir, 0.0),
        reference,
        &INIT,
        &gradient_sequence(),
        0.01,
        1e-6,
        "build adam",
    );

    let ir = salient_ir::Optimizer::Adadelta {
        rho: 0.95,
        eps: 1e-6,
    };
    let reference = RefAdadelta {
        rho: 0.95,
        eps: 1e-6,
        wd: 1e-2,
        v: vec![],
        u: vec![],
    };
    compare(
        optim::build(&ir, 1e-2),
        reference,
        &INIT,
        &gradient_sequence(),
        1.0,
        1e-6,
        "build adadelta",
    );
}

// ---------------------------------------------------------------------------------------------
// What is skipped, and state bookkeeping.
// ---------------------------------------------------------------------------------------------

fn all_optimizers() -> Vec<(&'static str, Box<dyn Optimizer<Dev>>)> {
    vec![
        (
            "sgd",
            Box::new(Sgd::new(SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.1,
            })),
        ),
        (
            "adam",
            Box::new(Adam::new(AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
            })),
        ),
        (
            "adadelta",
            Box::new(Adadelta::new(AdadeltaConfig {
                rho: 0.9,
                eps: 1e-6,
                weight_decay: 0.1,
            })),
        ),
    ]
}

#[test]
fn buffers_and_params_without_gradient_are_skipped() {
    let dev = Dev::default();
    for (name, mut opt) in all_optimizers() {
        let mut ps = vec![
            param(&dev, "layers.0.weight", &[1.0, 2.0], true),
            param(&dev, "layers.1.running_mean", &[3.0, 4.0], false),
            param(&dev, "layers.2.weight", &[5.0], true),
        ];
        for _ in 0..3 {
            // The buffer has a gradient but is not trainable; layers.2 takes no part.
            let grads = grads_for(
                &dev,
                &ps,
                &[Some(vec![1.0, -1.0]), Some(vec![1.0, 1.0]), None],
            );
            opt.step(&mut ps, &grads, 0.1).unwrap();
        }
        assert_ne!(
            values(&ps[0]),
            [1.0, 2.0],
            "{name}: trainable param must move"
        );
        assert_eq!(values(&ps[1]), [3.0, 4.0], "{name}: buffer must not move");
        assert_eq!(
            values(&ps[2]),
            [5.0],
            "{name}: param without gradient must not move"
        );
    }
}

/// A state saved with `state()` after some steps and loaded with `set_state()` into a fresh
/// optimizer continues bit for bit as the original (what resuming from an epoch checkpoint
/// needs); a parameter that never had a gradient still starts fresh; a state of another kind or
/// another parameter list is an error that leaves the optimizer as it was.
#[test]
fn a_saved_state_continues_bit_for_bit() {
    let dev = Dev::default();
    let fresh = all_optimizers();
    for ((name, mut opt), (_, mut twin)) in all_optimizers().into_iter().zip(fresh) {
        let mut ps = vec![
            param(&dev, "layers.0.weight", &INIT, true),
            param(&dev, "layers.1.weight", &[0.5, -0.25], true),
        ];
        let seq = gradient_sequence();
        for g in &seq {
            // layers.1 gets no gradient before the save: no state for it yet.
            let grads = grads_for(&dev, &ps, &[Some(g.clone()), None]);
            opt.step(&mut ps, &grads, 0.1).unwrap();
        }
        let saved = opt.state();
        assert_eq!(saved.optimizer, name);
        assert!(
            saved.tensors.keys().all(|k| k.starts_with("0.")),
            "{name}: {:?}",
            saved.tensors.keys()
        );
        let mut ps_twin: Vec<Param<Dev>> = ps
            .iter()
            .map(|p| param(&dev, &p.name, &values(p), true))
            .collect();
        twin.set_state(&saved, &ps_twin).unwrap();
        assert_eq!(twin.state(), saved, "{name}: the state reads back");
        for g in seq.iter().rev() {
            let coeffs = [Some(g.clone()), Some(vec![1.0, -2.0])];
            let grads = grads_for(&dev, &ps, &coeffs);
            opt.step(&mut ps, &grads, 0.05).unwrap();
            let grads = grads_for(&dev, &ps_twin, &coeffs);
            twin.step(&mut ps_twin, &grads, 0.05).unwrap();
        }
        for (a, b) in ps.iter().zip(&ps_twin) {
            let bits = |p: &Param<Dev>| values(p).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b), "{name}: {}", a.name);
        }
        // Errors: another kind's state, a state for a parameter list it does not fit.
        let mut other = saved.clone();
        other.optimizer = "rmsprop".into();
        let err = twin.set_state(&other, &ps_twin).unwrap_err().to_string();
        assert!(err.contains("rmsprop"), "{name}: {err}");
        let short = vec![param(&dev, "layers.0.weight", &[1.0], true)];
        assert!(twin.set_state(&saved, &short).is_err(), "{name}");
        assert_eq!(twin.state().optimizer, name);
        assert!(
            !twin.state().tensors.is_empty(),
            "{name}: unchanged by a failed load"
        );
    }
}

#[test]
fn state_is_created_when_a_param_first_gets_a_gradient() {
    // layers.1 gets no gradient for two steps, then one: its first update must be a first
    // step (fresh momentum buffer), as in torch.
    let dev = Dev::default();
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    });
    let mut ps = vec![
        param(&dev, "a", &[0.0], true),
        param(&dev, "b", &[1.0], true),
    ];
    for _ in 0..2 {
        let grads = grads_for(&dev, &ps, &[Some(vec![1.0]), None]);
        opt.step(&mut ps, &grads, 0.1).unwrap();
    }
    let grads = grads_for(&dev, &ps, &[Some(vec![1.0]), Some(vec![1.0])]);
    opt.step(&mut ps, &grads, 0.1).unwrap();
    // a: buffers 1, 1.9, 2.71, so p = −(0.1 + 0.19 + 0.271); b: a fresh buffer 1.
    assert_close(&values(&ps[0]), &[-0.561], 1e-6, "a");
    assert_close(&values(&ps[1]), &[0.9], 1e-6, "b");
}

#[test]
fn zero_learning_rate_leaves_params_unchanged() {
    let dev = Dev::default();
    for (name, mut opt) in all_optimizers() {
        let mut ps = vec![param(&dev, "w", &INIT, true)];
        let grads = grads_for(&dev, &ps, &[Some(vec![1.0, 2.0, 3.0, 4.0])]);
        opt.step(&mut ps, &grads, 0.0).unwrap();
        assert_eq!(values(&ps[0]), INIT, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, never panics.
// ---------------------------------------------------------------------------------------------

fn step_error(mut opt: Box<dyn Optimizer<Dev>>, lr: f64) -> NnError {
    let dev = Dev::default();
    let mut ps = vec![param(&dev, "w", &[1.0], true)];
    let grads = grads_for(&dev, &ps, &[Some(vec![1.0])]);
    let err = opt.step(&mut ps, &grads, lr).unwrap_err();
    assert_eq!(
        values(&ps[0]),
        [1.0],
        "a failed step must not move the parameter"
    );
    err
}

#[test]
fn invalid_hyperparameters_are_errors() {
    let cases: Vec<(Box<dyn Optimizer<Dev>>, f64, &str)> = vec![
        (
            optim::build(
                &salient_ir::Optimizer::Adam {
                    beta1: 1.0,
                    beta2: 0.999,
                    eps: 1e-8,
                },
                0.0,
            ),
            0.1,
            "beta1",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Adam {
                    beta1: 0.9,
                    beta2: -0.1,
                    eps: 1e-8,
                },
                0.0,
            ),
            0.1,
            "beta2",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Adam {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: f64::NAN,
                },
                0.0,
            ),
            0.1,
            "eps",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Sgd {
                    momentum: -0.5,
                    nesterov: false,
                },
                0.0,
            ),
            0.1,
            "momentum",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Sgd {
                    momentum: 0.0,
                    nesterov: true,
                },
                0.0,
            ),
            0.1,
            "nesterov",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Sgd {
                    momentum: 0.9,
                    nesterov: false,
                },
                -1.0,
            ),
            0.1,
            "weight_decay",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Adadelta {
                    rho: 1.5,
                    eps: 1e-6,
                },
                0.0,
            ),
            1.0,
            "rho",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Adadelta {
                    rho: 0.9,
                    eps: 1e-6,
                },
                0.0,
            ),
            -1.0,
            "learning rate",
        ),
        (
            optim::build(
                &salient_ir::Optimizer::Sgd {
                    momentum: 0.9,
                    nesterov: false,
                },
                0.0,
            ),
            f64::INFINITY,
            "learning rate",
        ),
    ];
    for (opt, lr, needle) in cases {
        let err = step_error(opt, lr);
        assert!(matches!(err, NnError::Optimizer { .. }), "{err:?}");
        assert!(
            err.to_string().contains(needle),
            "`{err}` should name `{needle}`"
        );
    }
}

#[test]
fn changed_parameter_list_is_an_error() {
    let dev = Dev::default();
    for (name, mut opt) in all_optimizers() {
        let mut ps = vec![param(&dev, "w", &[1.0, 2.0], true)];
        let grads = grads_for(&dev, &ps, &[Some(vec![1.0, 1.0])]);
        opt.step(&mut ps, &grads, 0.1).unwrap();
        let mut other = vec![param(&dev, "v", &[1.0, 2.0, 3.0], true)];
        let grads = grads_for(&dev, &other, &[Some(vec![1.0, 1.0, 1.0])]);
        let err = opt.step(&mut other, &grads, 0.1).unwrap_err();
        assert!(matches!(err, NnError::Shape { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains("`v`"), "{name}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Real training: linear regression with each optimizer.
// ---------------------------------------------------------------------------------------------

/// Fits y = x·w + b (3 features, 64 samples, noiseless) and returns (initial, final) MSE.
fn fit_linear_regression(opt: &mut dyn Optimizer<Dev>, lr: f64, steps: usize) -> (f32, f32) {
    let dev = Dev::default();
    let (n, k) = (64usize, 3usize);
    let true_w = [1.5f32, -2.0, 0.5];
    let true_b = 0.3f32;
    // Deterministic inputs in [-1, 1] from a small LCG.
    let mut state = 12345u32;
    let mut rand = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    };
    let xt: Vec<f32> = (0..k * n).map(|_| rand()).collect(); // (k, n): x transposed
    let y: Vec<f32> = (0..n)
        .map(|j| (0..k).map(|i| true_w[i] * xt[i * n + j]).sum::<f32>() + true_b)
        .collect();
    let xt = dev.tensor_from_vec(xt, (k, n));
    let y = dev.tensor_from_vec(y, (1usize, n));

    let mut params = vec![
        Param {
            name: "layers.0.weight".into(),
            shape: vec![k, 1],
            to_torch: vec![1, 0],
            value: dev.zeros_like(&(k,)),
            trainable: true,
        },
        param(&dev, "layers.0.bias", &[0.0], true),
    ];
    let mut losses = Vec::new();
    for _ in 0..=steps {
        let w = params[0]
            .value
            .retaped::<OwnedTape<f32, Dev>>()
            .reshape_like(&(1usize, k));
        let b = params[1].value.retaped::<OwnedTape<f32, Dev>>();
        let pred = w.matmul(xt.clone()) + b.broadcast_like::<_, Axis<1>>(&(1usize, n));
        let loss = (pred - y.clone()).square().mean();
        losses.push(loss.array());
        let grads = loss.backward();
        opt.step(&mut params, &grads, lr).unwrap();
    }
    (losses[0], *losses.last().unwrap())
}

#[test]
fn each_optimizer_fits_a_linear_regression() {
    type Case = (&'static str, Box<dyn Optimizer<Dev>>, f64, usize);
    let cases: Vec<Case> = vec![
        (
            "sgd",
            Box::new(Sgd::new(SgdConfig {
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            })),
            0.3,
            300,
        ),
        (
            "sgd momentum",
            Box::new(Sgd::new(SgdConfig {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            })),
            0.05,
            300,
        ),
        (
            "sgd nesterov",
            Box::new(Sgd::new(SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.0,
            })),
            0.05,
            300,
        ),
        (
            "adam",
            Box::new(Adam::new(AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            })),
            0.05,
            300,
        ),
        (
            "adadelta",
            Box::new(Adadelta::new(AdadeltaConfig {
                rho: 0.9,
                eps: 1e-6,
                weight_decay: 0.0,
            })),
            1.0,
            3000,
        ),
    ];
    for (name, mut opt, lr, steps) in cases {
        let (first, last) = fit_linear_regression(opt.as_mut(), lr, steps);
        eprintln!("{name}: mse {first:.4} -> {last:.3e} after {steps} steps");
        assert!(first > 1.0, "{name}: initial loss {first}");
        assert!(
            last < 1e-3,
            "{name}: loss {first} -> {last} after {steps} steps"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The skipped-gradient lookup is silent (no panic message on stderr).
// ---------------------------------------------------------------------------------------------

/// Runs a step where a parameter has no gradient in a child test process and checks that its
/// stderr holds no panic message (dfdx's lookup panics internally; we catch it quietly).
#[test]
fn missing_gradient_is_silent() {
    const CHILD: &str = "SALIENT_OPTIM_SILENT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let dev = Dev::default();
        let mut ps = vec![
            param(&dev, "a", &[1.0], true),
            param(&dev, "b", &[2.0], true),
        ];
        let grads = grads_for(&dev, &ps, &[Some(vec![1.0]), None]);
        let mut opt = Sgd::new(SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        });
        opt.step(&mut ps, &grads, 0.1).unwrap();
        assert_eq!(values(&ps[1]), [2.0]);
        eprintln!("child done");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "missing_gradient_is_silent",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stderr}");
    assert!(
        stderr.contains("child done"),
        "child did not run the step: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic message leaked: {stderr}"
    );
}
