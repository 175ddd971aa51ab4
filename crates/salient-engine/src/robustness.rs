//! Robust accuracy: every evaluation attack of the experiment on the first
//! `eval.attack_samples` test examples, and the per-example worst case over attacks.
//!
//! For an attack A, robust accuracy = (1/n) sum_i 1[f(A(x_i)) = y_i] (an example misclassified
//! without attack counts as not robust). For a norm and eps at which attacks ran, the worst case
//! is (1/n) sum_i prod_A 1[f(A(x_i)) = y_i]: an example is robust only if it survives every
//! attack at that norm and eps (AutoAttack's protocol), so it is never above any single attack.
//!
//! Rows (metric `robust_accuracy`): one per attack spec (`attack` = its name, `eps`), then one
//! per (norm, eps) with `attack` = `worst_case` (Linf) or `worst_case_l2` (L2).
//!
//! Seeding: each attack spec gets its own ChaCha8 stream of a generator seeded with
//! `eval.seed`, the stream chosen by a hash of the attack's name and eps, so adding or removing
//! an attack leaves the others' results unchanged. Batches of `eval.batch` examples are
//! attacked in order.
use crate::attack::eval::{attack_with, build_named, named};
use crate::attack::AttackError;
use crate::error::EngineError;
use crate::results::ResultRow;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_data::Dataset;
use salient_ir::{Attack, AttackSpec, Experiment, MetricSpec, Norm, TrainRun};
use salient_nn::Network;

/// Per-example robustness of every attack on the evaluated examples.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackResult {
    pub name: String,
    pub norm: Norm,
    pub eps: f64,
    /// Per evaluated example: still correct after the attack.
    pub robust: Vec<bool>,
    /// AutoAttack: the components in order, and per example the one that broke it.
    pub components: Vec<String>,
    pub broken_by: Vec<Option<usize>>,
    /// Minimum-norm attacks: per example the smallest adversarial perturbation found (0 for
    /// examples misclassified without attack, infinite where none was found).
    pub min_norms: Option<Vec<f32>>,
}

impl AttackResult {
    pub fn accuracy(&self) -> f64 {
        fraction(&self.robust)
    }
}

/// The worst case over attacks at one norm and eps.
#[derive(Clone, Debug, PartialEq)]
pub struct WorstCase {
    pub norm: Norm,
    pub eps: f64,
    /// Names of the attacks combined.
    pub attacks: Vec<String>,
    pub robust: Vec<bool>,
}

impl WorstCase {
    pub fn name(&self) -> &'static str {
        match self.norm {
            Norm::Linf => "worst_case",
            Norm::L2 => "worst_case_l2",
        }
    }

    pub fn accuracy(&self) -> f64 {
        fraction(&self.robust)
    }
}

fn fraction(v: &[bool]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().filter(|&&r| r).count() as f64 / v.len() as f64
    }
}

/// Result rows of robust accuracy for one trained run (empty unless the experiment asks for
/// `robust_accuracy` and has attacks).
pub fn robustness_rows<D: Device<f32>>(
    net: &mut Network<D>,
    exp: &Experiment,
    test: &Dataset,
    run: &TrainRun,
) -> Result<Vec<ResultRow>, EngineError> {
    if !exp
        .metrics
        .iter()
        .any(|m| matches!(m, MetricSpec::RobustAccuracy))
        || exp.attacks.is_empty()
    {
        return Ok(Vec::new());
    }
    let n = exp.eval.attack_samples.min(test.len());
    let results = evaluate_attacks(net, &exp.attacks, test, n, exp.eval.batch, exp.eval.seed)
        .map_err(|source| match crate::stop::requested() {
            true => EngineError::Interrupted,
            false => EngineError::Attack {
                run: run.id.clone(),
                source,
            },
        })?;
    let mut rows = Vec::new();
    for r in &results {
        let mut row = ResultRow::new(run, "robust_accuracy", r.accuracy());
        row.attack = Some(r.name.clone());
        row.eps = Some(r.eps);
        rows.push(row);
        rows.extend(breakdown_rows(run, r));
    }
    // A minimum-norm attack gives one result per curve point; its median once.
    let mut medians_done: Vec<&str> = Vec::new();
    for r in &results {
        if let (Some(norms), false) = (&r.min_norms, medians_done.contains(&r.name.as_str())) {
            medians_done.push(&r.name);
            let mut row = ResultRow::new(
                run,
                MEDIAN_PERTURBATION,
                crate::attack::min_norm::median(norms) as f64,
            );
            row.attack = Some(r.name.clone());
            rows.push(row);
        }
    }
    for w in worst_cases(&results) {
        let mut row = ResultRow::new(run, "robust_accuracy", w.accuracy());
        row.attack = Some(w.name().to_string());
        row.eps = Some(w.eps);
        rows.push(row);
    }
    Ok(rows)
}

pub use salient_ir::results::{AUTOATTACK_BROKEN, MEDIAN_PERTURBATION};

/// AutoAttack's breakdown: one row per component, in order.
fn breakdown_rows(run: &TrainRun, r: &AttackResult) -> Vec<ResultRow> {
    let n = r.robust.len().max(1) as f64;
    r.components
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let broke = r.broken_by.iter().filter(|b| **b == Some(k)).count();
            let mut row = ResultRow::new(run, AUTOATTACK_BROKEN, broke as f64 / n);
            row.attack = Some(format!("{}/{c}", r.name));
            row.eps = Some(r.eps);
            row
        })
        .collect()
}

/// The error of [`evaluate_attacks`] when this thread's stop flag ([`crate::stop`]) is raised:
/// it stops within one attack batch (the attacks' own loops stop at their next step).
pub const INTERRUPTED: &str = "interrupted (SIGINT or SIGTERM)";

/// Run every attack on the first `n` examples of `data`, `batch` at a time. Fails with
/// [`INTERRUPTED`] when a stop is requested ([`crate::stop`]), at the latest after the current
/// batch.
pub fn evaluate_attacks<D: Device<f32>>(
    net: &mut Network<D>,
    attacks: &[AttackSpec],
    data: &Dataset,
    n: usize,
    batch: usize,
    seed: u64,
) -> Result<Vec<AttackResult>, AttackError> {
    let n = n.min(data.len());
    let features = data.shape.numel();
    let all: Vec<usize> = (0..n).collect();
    let mut out = Vec::with_capacity(attacks.len());
    for spec in attacks {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream_of(spec));
        let mut attack = build_named(net, spec)?;
        let mut robust = Vec::with_capacity(n);
        let mut broken_by = Vec::with_capacity(n);
        let mut min_norms: Option<Vec<f32>> = None;
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for idx in all.chunks(batch.max(1)) {
            if crate::stop::requested() {
                return Err(AttackError(INTERRUPTED.to_string()));
            }
            data.gather(idx, &mut xs, &mut ys);
            let x = net
                .device()
                .tensor_from_vec(std::mem::take(&mut xs), (idx.len(), features));
            let outcome =
                attack_with(net, attack.as_mut(), &x, &ys, &mut rng).map_err(|e| named(spec, e))?;
            // An attack stopped early by a signal returns what it had: not a result.
            if crate::stop::requested() {
                return Err(AttackError(INTERRUPTED.to_string()));
            }
            robust.extend(outcome.robust);
            broken_by.extend(outcome.broken_by);
            if let Some(norms) = outcome.min_norms {
                min_norms.get_or_insert_with(Vec::new).extend(norms);
            }
            drop(x);
            crate::train::trim_cache(net.device());
        }
        let components = match &spec.attack {
            Attack::AutoAttack { components, .. } => {
                components.iter().map(|c| c.name().to_string()).collect()
            }
            _ => Vec::new(),
        };
        match (spec.curve(), min_norms) {
            (Some(curve), Some(norms)) => {
                // One result per eps of the curve, read off the minimal perturbations.
                for &eps in curve {
                    out.push(AttackResult {
                        name: spec.name.clone(),
                        norm: spec.norm(),
                        eps,
                        robust: norms.iter().map(|&d| d as f64 > eps).collect(),
                        components: Vec::new(),
                        broken_by: vec![None; norms.len()],
                        min_norms: Some(norms.clone()),
                    });
                }
            }
            (_, min_norms) => out.push(AttackResult {
                name: spec.name.clone(),
                norm: spec.norm(),
                eps: spec.eps(),
                robust,
                components,
                broken_by,
                min_norms,
            }),
        }
    }
    Ok(out)
}

/// The per-example worst case at each (norm, eps) where an attack ran, in order of first
/// appearance.
pub fn worst_cases(results: &[AttackResult]) -> Vec<WorstCase> {
    let mut out: Vec<WorstCase> = Vec::new();
    for r in results {
        match out.iter_mut().find(|w| w.norm == r.norm && w.eps == r.eps) {
            Some(w) => {
                w.attacks.push(r.name.clone());
                for (a, b) in w.robust.iter_mut().zip(&r.robust) {
                    *a &= *b;
                }
            }
            None => out.push(WorstCase {
                norm: r.norm,
                eps: r.eps,
                attacks: vec![r.name.clone()],
                robust: r.robust.clone(),
            }),
        }
    }
    out
}

/// The ChaCha stream of an attack spec: FNV-1a of its name and eps bits.
fn stream_of(spec: &AttackSpec) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in spec.name.bytes().chain(spec.eps().to_bits().to_le_bytes()) {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
