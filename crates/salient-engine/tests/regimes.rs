//! Known-answer tests of the training regimes and their building blocks, on linear models whose
//! input gradients are known in closed form: losses (CE, KL with its gradient), the SGT mask,
//! PGD, adversarial training, SGT + adversarial (combined), the lp_dual steps (l1 box, elastic
//! net, groups), activation sensitivity. A binary linear model f(x) = x W + b has the CE input
//! gradient g = p_o (w_o - w_y) (o the other class), whose sign does not depend on x.
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_engine::attack::{pgd, AttackLoss, PgdConfig};
use salient_engine::losses::{ce_mean, kl_mean, one_hot};
use salient_engine::regime::combined::combined_loss;
use salient_engine::regime::lp_dual::{
    self, ascent_step, elastic_prox, fast_step, group_index, Groups, Layout,
};
use salient_engine::regime::sensitivity::{adversarial_noise, sensitivity_loss};
use salient_engine::regime::sgt::mask_lowest;
use salient_engine::regime::{self, Regime, StepContext, Targets};
use salient_ir::Shape as IShape;
use salient_ir::{
    AdversarialParams, CombinedParams, Fill, InnerLoss, Layer, LayerDef, LpDualMode, LpDualParams,
    Noise, Norm, RegimeInstance, SaliencySign, SensitivityParams, SgtParams, TrainAttack,
    TrainAttackMethod,
};
use salient_nn::layers::infer::model_def;
use salient_nn::{Mode, Network};

type Dev = Cpu;
type M = Tensor<(usize, usize), f32, Dev>;

fn dev() -> Dev {
    Cpu::default()
}

fn mat(v: &[f32], rows: usize) -> M {
    dev().tensor_from_vec(v.to_vec(), (rows, v.len() / rows))
}

fn ctx(seed: u64) -> StepContext {
    StepContext {
        rng: ChaCha8Rng::seed_from_u64(seed),
        epoch: 0,
        step: 0,
        steps_per_epoch: 1,
    }
}

fn targets(labels: &[usize], classes: usize) -> Targets<Dev> {
    Targets {
        labels: labels.to_vec(),
        onehot: one_hot(&dev(), labels, classes),
    }
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y} (tol {tol})");
    }
}

// ---- host reference maths ---------------------------------------------------------------------

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn ce(z: &[f64], y: usize) -> f64 {
    -softmax(z)[y].ln()
}

fn kl(zp: &[f64], zq: &[f64]) -> f64 {
    let (p, q) = (softmax(zp), softmax(zq));
    p.iter().zip(&q).map(|(a, b)| a * (a.ln() - b.ln())).sum()
}

/// A linear model on a c x h x w image: flatten, dense(classes), with W (in, out) and b given.
struct Linear {
    net: Network<Dev>,
    w: Vec<f64>,
    b: Vec<f64>,
    n: usize,
    k: usize,
}

impl Linear {
    fn new(c: usize, h: usize, w: usize, weights: &[f32], bias: &[f32]) -> Self {
        let k = bias.len();
        let def = model_def(
            "lin",
            IShape::Image { c, h, w },
            vec![Layer::Flatten, Layer::Dense { out: k }],
        )
        .unwrap();
        let mut net = Network::new(&def, &[0.0], &[1.0], 0, &dev()).unwrap();
        net.params_mut()[0].value.copy_from(weights);
        net.params_mut()[1].value.copy_from(bias);
        Linear {
            net,
            w: weights.iter().map(|&v| v as f64).collect(),
            b: bias.iter().map(|&v| v as f64).collect(),
            n: c * h * w,
            k,
        }
    }

    /// Logits of one example (c = 1, so the flatten order is the channels-last order).
    fn logits(&self, x: &[f32]) -> Vec<f64> {
        (0..self.k)
            .map(|j| {
                self.b[j]
                    + (0..self.n)
                        .map(|i| x[i] as f64 * self.w[i * self.k + j])
                        .sum::<f64>()
            })
            .collect()
    }

    /// Input gradient of CE(f(x), y) of one example: (p - e_y) W^T.
    fn ce_grad(&self, x: &[f32], y: usize) -> Vec<f64> {
        let p = softmax(&self.logits(x));
        (0..self.n)
            .map(|i| {
                (0..self.k)
                    .map(|j| (p[j] - (j == y) as u8 as f64) * self.w[i * self.k + j])
                    .sum()
            })
            .collect()
    }

    fn ce_mean(&self, x: &[f32], labels: &[usize]) -> f64 {
        labels
            .iter()
            .enumerate()
            .map(|(b, &y)| ce(&self.logits(&x[b * self.n..(b + 1) * self.n]), y))
            .sum::<f64>()
            / labels.len() as f64
    }
}

/// 2 x 3 single-channel images, 2 classes; every w_1 - w_0 entry distinct and non-zero.
fn binary() -> Linear {
    #[rustfmt::skip]
    let w = [
        0.5, -0.3,
        -0.2, 0.4,
        0.1, 0.9,
        0.7, -0.6,
        -0.4, -0.1,
        0.3, 0.2,
    ];
    Linear::new(1, 2, 3, &w, &[0.1, -0.05])
}

const X2: [f32; 12] = [
    0.3, 0.5, 0.6, 0.4, 0.55, 0.45, 0.35, 0.65, 0.5, 0.4, 0.6, 0.7,
];

fn sgn(v: f64) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

// ---- losses ------------------------------------------------------------------------------------

#[test]
fn ce_mean_matches_hand_value() {
    let z = [1.0f32, -0.5, 0.25, 0.0, 2.0, -1.0];
    let loss = ce_mean(mat(&z, 2), &one_hot(&dev(), &[2, 1], 3)).as_vec()[0] as f64;
    let want = (ce(&[1.0, -0.5, 0.25], 2) + ce(&[0.0, 2.0, -1.0], 1)) / 2.0;
    assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
}

fn kl_value_and_grads(p: &[f32], q: &[f32]) -> (f32, Vec<f32>, Vec<f32>) {
    let (pt, qt) = (mat(p, 2), mat(q, 2));
    let traced = pt.clone().traced(Gradients::leaky());
    let (plain, tape) = traced.split_tape();
    let loss = kl_mean(plain, qt.clone().put_tape(tape));
    let value = loss.retaped::<NoneTape>().as_vec()[0];
    let g = loss.backward();
    (value, g.get(&pt).as_vec(), g.get(&qt).as_vec())
}

#[test]
fn kl_mean_value_and_gradient_match_finite_differences() {
    let p = [0.3f32, -1.2, 0.8, 1.5, 0.1, -0.4];
    let q = [-0.6f32, 0.9, 0.2, 0.0, 1.1, -2.0];
    let (value, gp, gq) = kl_value_and_grads(&p, &q);
    let f = |p: &[f32], q: &[f32]| {
        let d = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        (kl(&d(&p[..3]), &d(&q[..3])) + kl(&d(&p[3..]), &d(&q[3..]))) / 2.0
    };
    assert!((value as f64 - f(&p, &q)).abs() < 1e-6);
    let h = 1e-3f32;
    for i in 0..6 {
        let (mut pp, mut pm) = (p, p);
        pp[i] += h;
        pm[i] -= h;
        let fd = (f(&pp, &q) - f(&pm, &q)) / (2.0 * h as f64);
        assert!(
            (gp[i] as f64 - fd).abs() < 1e-4,
            "dKL/dp[{i}] {} vs {fd}",
            gp[i]
        );
        let (mut qp, mut qm) = (q, q);
        qp[i] += h;
        qm[i] -= h;
        let fd = (f(&p, &qp) - f(&p, &qm)) / (2.0 * h as f64);
        assert!(
            (gq[i] as f64 - fd).abs() < 1e-4,
            "dKL/dq[{i}] {} vs {fd}",
            gq[i]
        );
    }
    // KL(p || p) = 0 with zero gradient.
    let (v0, g0, _) = kl_value_and_grads(&p, &p);
    assert!(v0.abs() < 1e-6);
    close(&g0, &[0.0; 6], 1e-6, "grad of KL(p||p)");
}

// ---- the SGT mask ------------------------------------------------------------------------------

fn sgt(k: f64, saliency: SaliencySign, fill: Fill) -> SgtParams {
    SgtParams {
        k,
        saliency,
        fill,
        lambda: 1.0,
    }
}

/// One 2x2 image with 2 channels; channel-mean saliency per position: 1, -2, 0.5, -0.5.
const MX: [f32; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
const MS: [f32; 8] = [-1.0, 3.0, -2.0, -2.0, 0.5, 0.5, 4.0, -5.0];

fn masked_positions(out: &[f32]) -> Vec<usize> {
    (0..4)
        .filter(|&p| out[2 * p..2 * p + 2] != MX[2 * p..2 * p + 2])
        .collect()
}

#[test]
fn sgt_mask_signed_picks_the_lowest_channel_mean_and_fills_a_constant() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = mask_lowest(
        &MX,
        &MS,
        1,
        2,
        &sgt(0.5, SaliencySign::Signed, Fill::Constant(0.25)),
        &[],
        &mut rng,
    );
    // Signed order: position 1 (-2), 3 (-0.5), 2 (0.5), 0 (1): the lowest two are 1 and 3.
    close(
        &out,
        &[0.1, 0.2, 0.25, 0.25, 0.5, 0.6, 0.25, 0.25],
        0.0,
        "masked",
    );
}

#[test]
fn sgt_mask_absolute_breaks_ties_by_position_and_fills_the_channel_mean() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = mask_lowest(
        &MX,
        &MS,
        1,
        2,
        &sgt(0.5, SaliencySign::Absolute, Fill::Mean),
        &[0.11, 0.99],
        &mut rng,
    );
    // |mean|: 1, 2, 0.5, 0.5: positions 2 and 3 (tie broken by position).
    close(
        &out,
        &[0.1, 0.2, 0.3, 0.4, 0.11, 0.99, 0.11, 0.99],
        0.0,
        "masked",
    );
    // k = 0.3 of 4 positions rounds to 1: only position 2.
    let out = mask_lowest(
        &MX,
        &MS,
        1,
        2,
        &sgt(0.3, SaliencySign::Absolute, Fill::Mean),
        &[0.11, 0.99],
        &mut rng,
    );
    assert_eq!(masked_positions(&out), vec![2]);
}

#[test]
fn sgt_mask_random_fill_stays_within_the_image_range_per_image() {
    // Two images: the second has a narrow range [0.4, 0.6].
    let x: Vec<f32> = MX
        .iter()
        .cloned()
        .chain([0.4, 0.6, 0.5, 0.45, 0.55, 0.5, 0.6, 0.4])
        .collect();
    let s: Vec<f32> = MS.iter().cloned().chain(MS.iter().map(|v| -v)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let out = mask_lowest(
        &x,
        &s,
        2,
        2,
        &sgt(0.5, SaliencySign::Signed, Fill::Random),
        &[],
        &mut rng,
    );
    assert_eq!(masked_positions(&out[..8]), vec![1, 3]);
    // Second image, negated saliency: lowest are positions 0 (-1) and 2 (-0.5).
    for (b, masked, (lo, hi)) in [
        (0usize, [1usize, 3], (0.1f32, 0.8f32)),
        (1, [0, 2], (0.4, 0.6)),
    ] {
        for p in 0..4 {
            for c in 0..2 {
                let (v, orig) = (out[b * 8 + 2 * p + c], x[b * 8 + 2 * p + c]);
                if masked.contains(&p) {
                    assert!(
                        (lo..=hi).contains(&v),
                        "image {b} position {p}: {v} outside [{lo}, {hi}]"
                    );
                } else {
                    assert_eq!(v, orig, "image {b} position {p} must be kept");
                }
            }
        }
    }
}

// ---- PGD and adversarial training ---------------------------------------------------------------

fn cfg(
    norm: Norm,
    eps: f32,
    step_size: f32,
    steps: usize,
    random_start: bool,
    loss: AttackLoss,
) -> PgdConfig {
    PgdConfig {
        norm,
        eps,
        step_size,
        steps,
        random_start,
        loss,
    }
}

/// The Linf adversarial example of the binary model: x + eps sign(w_o - w_y), clipped.
fn linf_adv(lin: &Linear, x: &[f32], labels: &[usize], eps: f32) -> Vec<f32> {
    let n = lin.n;
    let mut out = x.to_vec();
    for (b, &y) in labels.iter().enumerate() {
        for i in 0..n {
            let dir = sgn(lin.w[i * 2 + (1 - y)] - lin.w[i * 2 + y]);
            out[b * n + i] = (x[b * n + i] + eps * dir).clamp(0.0, 1.0);
        }
    }
    out
}

#[test]
fn pgd_linf_on_a_linear_model_moves_every_pixel_by_eps_against_the_margin() {
    let mut lin = binary();
    let mut x = X2;
    x[1] = 0.97; // its step is +0.1 for label 0 (w_1 - w_0 = 0.6 > 0): clipped at 1
    let labels = [0usize, 1];
    let want = linf_adv(&lin, &x, &labels, 0.1);
    assert_eq!(want[1], 1.0);
    for loss in [AttackLoss::Ce, AttackLoss::CwMargin] {
        let got = pgd(
            &mut lin.net,
            &mat(&x, 2),
            &one_hot(&dev(), &labels, 2),
            &cfg(Norm::Linf, 0.1, 0.04, 5, false, loss),
            Mode::Eval,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        close(&got.as_vec(), &want, 1e-6, "pgd linf");
    }
}

#[test]
fn pgd_l2_on_a_linear_model_reaches_the_sphere_along_the_gradient() {
    let mut lin = binary();
    let labels = [0usize, 1];
    let got = pgd(
        &mut lin.net,
        &mat(&X2, 2),
        &one_hot(&dev(), &labels, 2),
        &cfg(Norm::L2, 0.3, 0.1, 6, false, AttackLoss::Ce),
        Mode::Eval,
        &mut ChaCha8Rng::seed_from_u64(0),
    );
    let mut want = X2.to_vec();
    for (b, &y) in labels.iter().enumerate() {
        let dir: Vec<f64> = (0..6)
            .map(|i| lin.w[i * 2 + 1 - y] - lin.w[i * 2 + y])
            .collect();
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        for i in 0..6 {
            want[b * 6 + i] += (0.3 * dir[i] / norm) as f32;
        }
    }
    close(&got.as_vec(), &want, 1e-5, "pgd l2");
}

#[test]
fn pgd_random_start_stays_in_the_ball_and_the_box() {
    let mut lin = binary();
    let x = [
        0.0f32, 1.0, 0.5, 0.02, 0.98, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
    ];
    let oh = one_hot(&dev(), &[1, 0], 2);
    for (norm, eps) in [(Norm::Linf, 0.1f32), (Norm::L2, 0.5)] {
        for seed in 0..5 {
            let got = pgd(
                &mut lin.net,
                &mat(&x, 2),
                &oh,
                &cfg(norm, eps, 1.25 * eps, 1, true, AttackLoss::Ce),
                Mode::Eval,
                &mut ChaCha8Rng::seed_from_u64(seed),
            )
            .as_vec();
            assert!(got.iter().all(|v| (0.0..=1.0).contains(v)));
            for b in 0..2 {
                let d: Vec<f32> = (0..6).map(|i| got[b * 6 + i] - x[b * 6 + i]).collect();
                let size = match norm {
                    Norm::Linf => d.iter().fold(0.0f32, |m, v| m.max(v.abs())),
                    Norm::L2 => d.iter().map(|v| v * v).sum::<f32>().sqrt(),
                };
                assert!(size <= eps + 1e-5, "{norm} perturbation {size} > {eps}");
            }
        }
    }
}

fn attack(norm: Norm, eps: f64, step_size: f64, steps: usize, random_start: bool) -> TrainAttack {
    TrainAttack {
        method: if steps == 1 {
            TrainAttackMethod::Fgsm
        } else {
            TrainAttackMethod::Pgd
        },
        norm,
        eps,
        step_size,
        steps,
        random_start,
        warmup: 0.0,
    }
}

fn instance(r: salient_ir::Regime) -> RegimeInstance {
    RegimeInstance {
        name: r.kind_name().into(),
        label: r.kind_name().into(),
        regime: r,
    }
}

fn step_loss(
    r: &salient_ir::Regime,
    net: &mut Network<Dev>,
    x: &[f32],
    labels: &[usize],
    classes: usize,
    mean: &[f32],
) -> f64 {
    let def = net.def().clone();
    let mut reg: Box<dyn Regime<Dev>> = regime::build(&instance(r.clone()), mean, &def).unwrap();
    let out = reg.step(
        net,
        &mat(x, labels.len()),
        &targets(labels, classes),
        &mut ctx(0),
    );
    out.loss.retaped::<NoneTape>().as_vec()[0] as f64
}

#[test]
fn adversarial_mix_loss_is_the_weighted_clean_and_adversarial_ce() {
    let mut lin = binary();
    let labels = [0usize, 1];
    let x_adv = linf_adv(&lin, &X2, &labels, 0.1);
    for mix in [0.0, 0.25] {
        let r = salient_ir::Regime::Adversarial(AdversarialParams {
            attack: attack(Norm::Linf, 0.1, 0.05, 3, false),
            loss: InnerLoss::Ce,
            trades_beta: None,
            mix,
        });
        let got = step_loss(&r, &mut lin.net, &X2, &labels, 2, &[]);
        let want = (1.0 - mix) * lin.ce_mean(&x_adv, &labels) + mix * lin.ce_mean(&X2, &labels);
        assert!((got - want).abs() < 1e-5, "mix {mix}: {got} vs {want}");
    }
}

#[test]
fn eps_warmup_ramps_the_training_attack_linearly_over_its_epochs() {
    // 10 steps per epoch, warm-up over 2 epochs: after step 5 of epoch 0 (t = 0.5 epochs) the
    // attack runs at a quarter of eps (and of the step size); from epoch 2 on at full eps.
    let mut lin = binary();
    let labels = [0usize, 1];
    let mut a = attack(Norm::Linf, 0.1, 0.05, 3, false);
    a.warmup = 2.0;
    let r = salient_ir::Regime::Adversarial(AdversarialParams {
        attack: a.clone(),
        loss: InnerLoss::Ce,
        trades_beta: None,
        mix: 0.0,
    });
    let def = lin.net.def().clone();
    let mut reg: Box<dyn Regime<Dev>> = regime::build(&instance(r), &[], &def).unwrap();
    for (epoch, step, factor) in [
        (0usize, 4usize, 0.25f32),
        (1, 4, 0.75),
        (2, 0, 1.0),
        (5, 9, 1.0),
    ] {
        let mut c = ctx(0);
        c.epoch = epoch;
        c.step = step;
        c.steps_per_epoch = 10;
        let ramped = regime::ramped_attack(&a, &c);
        assert!(
            (ramped.eps - 0.1 * factor as f64).abs() < 1e-12,
            "{ramped:?}"
        );
        assert!(
            (ramped.step_size - 0.05 * factor as f64).abs() < 1e-12,
            "{ramped:?}"
        );
        let out = reg.step(&mut lin.net, &mat(&X2, 2), &targets(&labels, 2), &mut c);
        let got = out.loss.retaped::<NoneTape>().as_vec()[0] as f64;
        let want = lin.ce_mean(&linf_adv(&lin, &X2, &labels, 0.1 * factor), &labels);
        assert!(
            (got - want).abs() < 1e-5,
            "epoch {epoch} step {step}: {got} vs {want}"
        );
    }
    // Without a warm-up the attack is unchanged from the first step.
    let mut c = ctx(0);
    c.steps_per_epoch = 10;
    a.warmup = 0.0;
    assert_eq!(regime::ramped_attack(&a, &c), a);
}

#[test]
fn trades_loss_is_at_least_the_clean_ce_and_grows_with_beta() {
    let mut lin = binary();
    let labels = [0usize, 1];
    let clean = lin.ce_mean(&X2, &labels);
    let loss = |beta: f64, lin: &mut Linear| {
        let r = salient_ir::Regime::Adversarial(AdversarialParams {
            attack: attack(Norm::Linf, 0.1, 0.03, 5, false),
            loss: InnerLoss::Ce,
            trades_beta: Some(beta),
            mix: 0.0,
        });
        step_loss(&r, &mut lin.net, &X2, &labels, 2, &[])
    };
    let (l1, l6) = (loss(1.0, &mut lin), loss(6.0, &mut lin));
    // KL >= 0 and the inner maximisation finds a point with KL > 0.
    assert!(
        l1 > clean + 1e-4 && l6 > l1,
        "clean {clean}, beta 1 {l1}, beta 6 {l6}"
    );
    // The same inner point for both betas: L = CE + beta * KL, so KL = (l6 - l1) / 5.
    let kl = (l6 - l1) / 5.0;
    assert!((l1 - (clean + kl)).abs() < 1e-5, "{l1} vs {clean} + {kl}");
}

// ---- SGT and combined: full losses ---------------------------------------------------------------

/// The SGT mask of the binary model at `x` by hand: saliency d log p_y / dx = p_o (w_y - w_o);
/// the `count` lowest (signed) positions set to `fill`.
fn hand_mask(lin: &Linear, x: &[f32], labels: &[usize], count: usize, fill: f32) -> Vec<f32> {
    let mut out = x.to_vec();
    for (b, &y) in labels.iter().enumerate() {
        let xb = &x[b * 6..(b + 1) * 6];
        let g = lin.ce_grad(xb, y);
        let mut order: Vec<usize> = (0..6).collect();
        order.sort_by(|&i, &j| (-g[i]).total_cmp(&-g[j]));
        for &i in &order[..count] {
            out[b * 6 + i] = fill;
        }
    }
    out
}

fn kl_mean_host(lin: &Linear, xp: &[f32], xq: &[f32], batch: usize) -> f64 {
    (0..batch)
        .map(|b| {
            kl(
                &lin.logits(&xp[b * 6..(b + 1) * 6]),
                &lin.logits(&xq[b * 6..(b + 1) * 6]),
            )
        })
        .sum::<f64>()
        / batch as f64
}

#[test]
fn sgt_loss_is_ce_plus_lambda_kl_to_the_hand_masked_input() {
    let mut lin = binary();
    let labels = [0usize, 1];
    let masked = hand_mask(&lin, &X2, &labels, 3, 0.0);
    let r = salient_ir::Regime::Sgt(SgtParams {
        k: 0.5,
        saliency: SaliencySign::Signed,
        fill: Fill::Constant(0.0),
        lambda: 2.0,
    });
    let got = step_loss(&r, &mut lin.net, &X2, &labels, 2, &[0.5]);
    let want = lin.ce_mean(&X2, &labels) + 2.0 * kl_mean_host(&lin, &X2, &masked, 2);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn combined_loss_masks_the_adversarial_example() {
    let mut lin = binary();
    let labels = [0usize, 1];
    let x_adv = linf_adv(&lin, &X2, &labels, 0.1);
    let masked = hand_mask(&lin, &x_adv, &labels, 3, 0.0);
    let (cw, aw, lambda) = (0.5, 2.0, 1.5);
    let r = salient_ir::Regime::Combined(CombinedParams {
        sgt: SgtParams {
            k: 0.5,
            saliency: SaliencySign::Signed,
            fill: Fill::Constant(0.0),
            lambda,
        },
        attack: attack(Norm::Linf, 0.1, 0.05, 3, false),
        clean_weight: cw,
        adv_weight: aw,
    });
    let got = step_loss(&r, &mut lin.net, &X2, &labels, 2, &[0.5]);
    let want = cw * lin.ce_mean(&X2, &labels)
        + aw * lin.ce_mean(&x_adv, &labels)
        + lambda * kl_mean_host(&lin, &X2, &masked, 2);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // adv_weight 0 drops the adversarial CE (and its pass) but keeps the masked KL.
    let r0 = salient_ir::Regime::Combined(CombinedParams {
        adv_weight: 0.0,
        ..match r {
            salient_ir::Regime::Combined(p) => p,
            _ => unreachable!(),
        }
    });
    let got0 = step_loss(&r0, &mut lin.net, &X2, &labels, 2, &[0.5]);
    assert!((got0 - (want - aw * lin.ce_mean(&x_adv, &labels))).abs() < 1e-5);
}

#[test]
fn combined_loss_gradient_flows_through_all_three_passes() {
    let mut lin = binary();
    let labels = [0usize, 1];
    let oh = one_hot(&dev(), &labels, 2);
    let x_adv = linf_adv(&lin, &X2, &labels, 0.1);
    let masked = hand_mask(&lin, &x_adv, &labels, 3, 0.0);
    let p = CombinedParams {
        sgt: SgtParams {
            k: 0.5,
            saliency: SaliencySign::Signed,
            fill: Fill::Constant(0.0),
            lambda: 1.5,
        },
        attack: attack(Norm::Linf, 0.1, 0.05, 3, false),
        clean_weight: 0.5,
        adv_weight: 2.0,
    };
    let out = combined_loss(
        &mut lin.net,
        &mat(&X2, 2),
        mat(&x_adv, 2),
        mat(&masked, 2),
        &oh,
        &p,
    );
    let grads = out.loss.backward();
    let (gw, gb) = (
        grads.get(&lin.net.params()[0].value).as_vec(),
        grads.get(&lin.net.params()[1].value).as_vec(),
    );
    let analytic: Vec<f32> = gw.into_iter().chain(gb).collect();
    let base: Vec<Vec<f32>> = (0..2).map(|i| lin.net.params()[i].value.as_vec()).collect();
    let h = 1e-3f32;
    for (j, &a) in analytic.iter().enumerate() {
        let (which, i) = if j < 12 { (0, j) } else { (1, j - 12) };
        let mut f = |delta: f32| {
            let mut v = base[which].clone();
            v[i] += delta;
            lin.net.params_mut()[which].value.copy_from(&v);
            let o = combined_loss(
                &mut lin.net,
                &mat(&X2, 2),
                mat(&x_adv, 2),
                mat(&masked, 2),
                &oh,
                &p,
            );
            lin.net.params_mut()[which].value.copy_from(&base[which]);
            o.loss.retaped::<NoneTape>().as_vec()[0] as f64
        };
        let fd = (f(h) - f(-h)) / (2.0 * h as f64);
        assert!((a as f64 - fd).abs() < 1e-3, "parameter {j}: {a} vs {fd}");
    }
}

// ---- lp_dual -----------------------------------------------------------------------------------

fn lp(mode: LpDualMode, steps: usize) -> LpDualParams {
    LpDualParams {
        mode,
        steps,
        step_fraction: 2.5 / steps as f64,
    }
}

#[test]
fn l1_box_fast_step_is_eps_sign_g_inside_the_box() {
    let mut lin = binary();
    let labels = [0usize, 1];
    let mut x = X2;
    x[1] = 0.98; // label 0, w_1 - w_0 = 0.6 > 0: pushed up, clipped at 1
    x[7] = 0.01; // label 1, w_0 - w_1 = -0.6 < 0: pushed down, clipped at 0
    let oh = one_hot(&dev(), &labels, 2);
    for steps in [1, 7] {
        let d = lp_dual::perturbation(
            &mut lin.net,
            &mat(&x, 2),
            &oh,
            &lp(LpDualMode::L1Box { eps: 0.1 }, steps),
            None,
        )
        .as_vec();
        let want: Vec<f32> = linf_adv(&lin, &x, &labels, 0.1)
            .iter()
            .zip(&x)
            .map(|(a, b)| a - b)
            .collect();
        close(&d, &want, 1e-6, "l1 box step");
        assert!(d.iter().all(|v| v.abs() <= 0.1 + 1e-7));
        assert!(d
            .iter()
            .zip(&x)
            .all(|(d, x)| (0.0..=1.0).contains(&(x + d))));
    }
    // On a given gradient: exactly eps * sign(g), zeros kept.
    let g = mat(&[0.3, -2.0, 0.0, 1e-6], 1);
    close(
        &fast_step::<Dev>(&LpDualMode::L1Box { eps: 0.2 }, &g, None).as_vec(),
        &[0.2, -0.2, 0.0, 0.2],
        0.0,
        "eps sign g",
    );
}

#[test]
fn elastic_net_fast_step_is_eps1_sign_g_plus_two_eps2_g() {
    let (eps1, eps2) = (0.05f64, 0.2f64);
    let mode = LpDualMode::ElasticNet { eps1, eps2 };
    let g = mat(&[0.3, -2.0, 0.0, 0.01], 1);
    let want = [0.05 + 0.4 * 0.3, -0.05 - 0.4 * 2.0, 0.0, 0.05 + 0.4 * 0.01];
    close(
        &fast_step::<Dev>(&mode, &g, None).as_vec(),
        &want,
        1e-6,
        "elastic step",
    );
    // Through the network: g is the per-example CE gradient (p - e_y) W^T.
    let mut lin = binary();
    let labels = [0usize, 1];
    let d = lp_dual::perturbation(
        &mut lin.net,
        &mat(&X2, 2),
        &one_hot(&dev(), &labels, 2),
        &lp(mode, 1),
        None,
    )
    .as_vec();
    let mut want = Vec::new();
    for (b, &y) in labels.iter().enumerate() {
        for gi in lin.ce_grad(&X2[b * 6..(b + 1) * 6], y) {
            want.push((eps1 * sgn(gi) as f64 + 2.0 * eps2 * gi) as f32);
        }
    }
    close(&d, &want, 1e-6, "elastic perturbation");
}

#[test]
fn elastic_prox_matches_hand_values_and_its_optimality_condition() {
    let (eps1, eps2, a) = (0.1f32, 0.05f32, 0.1f32);
    let y = [0.05f32, 0.3, -0.5, -0.1];
    let u = elastic_prox(mat(&y, 1), mat(&[a; 4], 1), eps1, eps2).as_vec();
    // 0.3 -> 0.3 - 0.1 * 0.2 / 0.2 = 0.2; -0.5 -> -(0.5 - 0.1 * 0.4 / 0.2) = -0.3.
    close(&u, &[0.05, 0.2, -0.3, -0.1], 1e-6, "prox");
    // Optimality of argmin (u - y)^2 / (2a) + (|u| - eps1)_+^2 / (4 eps2) where |u| > eps1.
    for (u, y) in u.iter().zip(&y).filter(|(u, _)| u.abs() > eps1) {
        let r = (u - y) / a + u.signum() * (u.abs() - eps1) / (2.0 * eps2);
        assert!(r.abs() < 1e-5, "stationarity {r}");
    }
}

#[test]
fn iterative_ascent_with_a_constant_gradient_converges_to_the_fast_step() {
    let layout = Layout { c: 2, h: 3, w: 3 };
    let groups = Groups::<Dev>::new(&dev(), layout, 2);
    let gv: Vec<f32> = (0..36)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 10.0)
        .collect();
    let g = mat(&gv, 2);
    for mode in [
        LpDualMode::L1Box { eps: 0.1 },
        LpDualMode::ElasticNet {
            eps1: 0.05,
            eps2: 0.1,
        },
        LpDualMode::Group { eps: 0.3, group: 2 },
    ] {
        let mut d: M = dev().zeros_like(&(2, 18));
        for _ in 0..200 {
            d = ascent_step(&mode, d, &g, 0.5, Some(&groups));
        }
        close(
            &d.as_vec(),
            &fast_step(&mode, &g, Some(&groups)).as_vec(),
            1e-4,
            &format!("{mode:?}"),
        );
    }
}

#[test]
fn group_index_tiles_patches_per_channel_with_partial_edges() {
    // 3 x 5 image, 2 channels, 2 x 2 patches: 2 rows x 3 columns of patches, per channel.
    let (idx, count) = group_index(Layout { c: 2, h: 3, w: 5 }, 2);
    assert_eq!(count, 12);
    let at = |y: usize, x: usize, c: usize| idx[(y * 5 + x) * 2 + c];
    assert_eq!((at(0, 0, 0), at(0, 0, 1), at(1, 1, 1)), (0, 1, 1));
    assert_eq!(at(0, 4, 0), 4); // partial column: patch 2 of row 0
    assert_eq!(at(2, 0, 1), 7); // partial row: patch 3, channel 1
    assert_eq!(at(2, 4, 0), 10); // the 1 x 1 corner patch
    let mut sizes = vec![0; count];
    idx.iter().for_each(|&g| sizes[g] += 1);
    assert_eq!(sizes, vec![4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1]);
}

#[test]
fn group_step_gives_every_group_norm_eps() {
    let layout = Layout { c: 2, h: 3, w: 5 };
    let groups = Groups::<Dev>::new(&dev(), layout, 2);
    let (idx, count) = group_index(layout, 2);
    let mut gv: Vec<f32> = (0..60)
        .map(|i| ((i * 53 % 23) as f32 - 11.0) / 7.0)
        .collect();
    // A group whose gradient is zero stays unperturbed: group 0 of example 0.
    (0..30).filter(|&i| idx[i] == 0).for_each(|i| gv[i] = 0.0);
    let d = fast_step(
        &LpDualMode::Group { eps: 0.4, group: 2 },
        &mat(&gv, 2),
        Some(&groups),
    )
    .as_vec();
    for b in 0..2 {
        let mut norms = vec![0.0f32; count];
        (0..30).for_each(|i| norms[idx[i]] += d[b * 30 + i].powi(2));
        for (gi, n) in norms.iter().enumerate() {
            let want = if b == 0 && gi == 0 { 0.0 } else { 0.4 };
            assert!(
                (n.sqrt() - want).abs() < 1e-5,
                "example {b} group {gi}: norm {}",
                n.sqrt()
            );
        }
        // Same direction as g within each group.
        assert!((0..30).all(|i| d[b * 30 + i] * gv[b * 30 + i] >= 0.0));
    }
}

#[test]
fn group_perturbation_through_a_network_keeps_group_norms_eps_in_the_box_middle() {
    // A 2-channel 4 x 5 image (partial last column of 2 x 2 patches), x = 0.5, eps 0.3.
    let def = model_def(
        "g",
        IShape::Image { c: 2, h: 4, w: 5 },
        vec![Layer::Flatten, Layer::Dense { out: 3 }],
    )
    .unwrap();
    let mut net = Network::<Dev>::new(&def, &[0.0], &[1.0], 5, &dev()).unwrap();
    let layout = Layout::of(&def);
    let groups = Groups::<Dev>::new(&dev(), layout, 2);
    let (idx, count) = group_index(layout, 2);
    let x = mat(&[0.5; 80], 2);
    for steps in [1, 7] {
        let d = lp_dual::perturbation(
            &mut net,
            &x,
            &one_hot(&dev(), &[0, 2], 3),
            &lp(LpDualMode::Group { eps: 0.3, group: 2 }, steps),
            Some(&groups),
        )
        .as_vec();
        for b in 0..2 {
            let mut norms = vec![0.0f32; count];
            (0..40).for_each(|i| norms[idx[i]] += d[b * 40 + i].powi(2));
            // Linear model: the gradient's direction is fixed, so 7 steps end on the sphere too.
            norms.iter().for_each(|n| {
                assert!(
                    (n.sqrt() - 0.3).abs() < 1e-4,
                    "steps {steps}: group norm {}",
                    n.sqrt()
                )
            });
        }
    }
}

// ---- sensitivity ---------------------------------------------------------------------------------

fn sens(layers: &[&str], adversarial: bool) -> SensitivityParams {
    SensitivityParams {
        layers: layers.iter().map(|s| s.to_string()).collect(),
        noise: Noise::Gaussian,
        sigma: 0.1,
        lambda: 1.0,
        adversarial,
    }
}

/// Hand value: CE + lambda * (mean |x~ - x| [flatten1] + mean |(x~ - x) W| [dense1]).
fn sensitivity_hand(lin: &Linear, x: &[f32], d: &[f32], labels: &[usize], lambda: f64) -> f64 {
    let xt: Vec<f32> = x
        .iter()
        .zip(d)
        .map(|(a, b)| (a + b).clamp(0.0, 1.0))
        .collect();
    let dx: Vec<f64> = xt.iter().zip(x).map(|(a, b)| (a - b) as f64).collect();
    let flat = dx.iter().map(|v| v.abs()).sum::<f64>() / dx.len() as f64;
    let mut dense = 0.0;
    for b in 0..labels.len() {
        for k in 0..2 {
            dense += (0..6)
                .map(|i| dx[b * 6 + i] * lin.w[i * 2 + k])
                .sum::<f64>()
                .abs();
        }
    }
    lin.ce_mean(x, labels) + lambda * (flat + dense / (2 * labels.len()) as f64)
}

const D2: [f32; 12] = [
    0.1, -0.05, 0.2, 0.0, -0.15, 0.08, 0.7, -0.02, 0.03, -0.7, 0.01, 0.12,
];

#[test]
fn sensitivity_loss_equals_the_hand_value_for_a_fixed_perturbation() {
    let mut lin = binary();
    let labels = [1usize, 0];
    // x + d leaves the box at position 6 (0.35 + 0.7, clipped to 1) and 9 (0.4 - 0.7, to 0).
    let out = sensitivity_loss(
        &mut lin.net,
        &mat(&X2, 2),
        &mat(&D2, 2),
        &one_hot(&dev(), &labels, 2),
        &[0, 1],
        0.7,
        1,
    );
    let got = out.loss.retaped::<NoneTape>().as_vec()[0] as f64;
    let want = sensitivity_hand(&lin, &X2, &D2, &labels, 0.7);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn sensitivity_loss_gradient_flows_through_both_passes() {
    let mut lin = binary();
    let labels = [1usize, 0];
    let oh = one_hot(&dev(), &labels, 2);
    let out = sensitivity_loss(&mut lin.net, &mat(&X2, 2), &mat(&D2, 2), &oh, &[1], 2.0, 1);
    let grads = out.loss.backward();
    let gw = grads.get(&lin.net.params()[0].value).as_vec();
    let w0: Vec<f32> = lin.w.iter().map(|&v| v as f32).collect();
    let h = 1e-3f32;
    for i in 0..12 {
        let mut f = |delta: f32| {
            let mut w = w0.clone();
            w[i] += delta;
            lin.net.params_mut()[0].value.copy_from(&w);
            let o = sensitivity_loss(&mut lin.net, &mat(&X2, 2), &mat(&D2, 2), &oh, &[1], 2.0, 1);
            o.loss.retaped::<NoneTape>().as_vec()[0] as f64
        };
        let fd = (f(h) - f(-h)) / (2.0 * h as f64);
        assert!(
            (gw[i] as f64 - fd).abs() < 2e-3,
            "dL/dW[{i}]: {} vs {fd}",
            gw[i]
        );
    }
}

#[test]
fn sensitivity_penalty_ignores_dropout_noise() {
    // With d = 0 both passes draw the same dropout mask: the penalty is exactly 0.
    let def = model_def(
        "dr",
        IShape::Flat(6),
        vec![
            Layer::Dense { out: 8 },
            Layer::Dropout { p: 0.5 },
            Layer::Dense { out: 2 },
        ],
    )
    .unwrap();
    let mut net = Network::<Dev>::new(&def, &[0.0], &[1.0], 2, &dev()).unwrap();
    let oh = one_hot(&dev(), &[0, 1], 2);
    let zero: M = dev().zeros_like(&(2, 6));
    let with = sensitivity_loss(&mut net, &mat(&X2, 2), &zero, &oh, &[1, 2], 1.0, 9);
    let without = sensitivity_loss(&mut net, &mat(&X2, 2), &zero, &oh, &[1, 2], 0.0, 9);
    let (a, b) = (
        with.loss.retaped::<NoneTape>().as_vec()[0],
        without.loss.retaped::<NoneTape>().as_vec()[0],
    );
    assert_eq!(a, b, "penalty with d = 0 must vanish");
    close(
        &with.logits.as_vec(),
        &without.logits.as_vec(),
        0.0,
        "same dropout mask from the same seed",
    );
}

#[test]
fn adversarial_noise_takes_one_signed_step_up_the_penalty() {
    let mut lin = binary();
    // Small d, x in the middle: no clipping. Penalty on dense1: mean_{b,k} |(d W)_{bk}|, whose
    // gradient in d_{b,i} is sum_k sign((d W)_{bk}) W_{ik} / (B K).
    let d: Vec<f32> = D2.iter().map(|v| v * 0.1).collect();
    let got = adversarial_noise(&mut lin.net, &mat(&X2, 2), mat(&d, 2), &[1], 0.05).as_vec();
    let mut want = d.clone();
    for b in 0..2 {
        let r: Vec<f64> = (0..2)
            .map(|k| (0..6).map(|i| d[b * 6 + i] as f64 * lin.w[i * 2 + k]).sum())
            .collect();
        for i in 0..6 {
            let g: f64 = (0..2).map(|k| sgn(r[k]) as f64 * lin.w[i * 2 + k]).sum();
            want[b * 6 + i] += 0.05 * sgn(g);
        }
    }
    close(&got, &want, 1e-6, "adversarial d");
}

// ---- building regimes ----------------------------------------------------------------------------

#[test]
fn build_checks_layer_names_and_group_sizes_against_the_model() {
    let def = model_def(
        "r",
        IShape::Image { c: 1, h: 4, w: 4 },
        vec![Layer::Flatten, Layer::Dense { out: 2 }],
    )
    .unwrap();
    let ok = regime::build::<Dev>(
        &instance(salient_ir::Regime::Sensitivity(sens(
            &["dense1", "flatten1"],
            false,
        ))),
        &[],
        &def,
    );
    assert!(ok.is_ok());
    let err = regime::build::<Dev>(
        &instance(salient_ir::Regime::Sensitivity(sens(&["relu9"], false))),
        &[],
        &def,
    )
    .err()
    .unwrap();
    assert!(err.contains("relu9") && err.contains("flatten1"), "{err}");
    let err = regime::build::<Dev>(
        &instance(salient_ir::Regime::LpDual(lp(
            LpDualMode::Group { eps: 1.0, group: 5 },
            1,
        ))),
        &[],
        &def,
    )
    .err()
    .unwrap();
    assert!(err.contains("5x5") && err.contains("4x4"), "{err}");
    assert!(regime::build::<Dev>(
        &instance(salient_ir::Regime::LpDual(lp(
            LpDualMode::Group { eps: 1.0, group: 4 },
            1
        ))),
        &[],
        &def
    )
    .is_ok());
}

#[test]
fn build_reports_a_layer_inside_a_residual_block() {
    let body = vec![Layer::Dense { out: 16 }, Layer::Relu];
    let body: Vec<LayerDef> = body
        .into_iter()
        .map(|kind| LayerDef {
            name: String::new(),
            kind,
            input: IShape::Flat(0),
            output: IShape::Flat(0),
            params: 0,
        })
        .collect();
    let def = model_def(
        "r",
        IShape::Flat(16),
        vec![
            Layer::Residual {
                body,
                projection: None,
            },
            Layer::Dense { out: 2 },
        ],
    )
    .unwrap();
    let err = regime::build::<Dev>(
        &instance(salient_ir::Regime::Sensitivity(sens(&["relu1"], false))),
        &[],
        &def,
    )
    .err()
    .unwrap();
    assert!(err.contains("residual"), "{err}");
}
