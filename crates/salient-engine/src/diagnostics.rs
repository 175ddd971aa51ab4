//! Evaluation sanity diagnostics: automatic warnings that a robustness evaluation may be wrong
//! (Carlini et al. 2019, "On evaluating adversarial robustness"; Athalye et al. 2018,
//! "Obfuscated gradients give a false sense of security"; Croce and Hein 2020, AutoAttack's
//! `checks.py` flags).
//!
//! The rules are pure functions of one run's numbers ([`RunEvaluation`]: clean accuracy, the
//! robust accuracy of each attack with its kind, norm and eps, and an eval-mode determinism
//! measurement) and give a list of [`Finding`]s. They need no network: [`diagnose_rows`] runs
//! them on the rows of a `results.csv` and the experiment's attack specs. The runner adds the
//! determinism measurement ([`probe_determinism`]), prints one warning line per finding and
//! writes each run's findings to `runs/<run>/diagnostics.csv` ([`diagnose_run`], [`write_csv`];
//! one row per finding, header only when there is none) with the run's other files; the
//! top-level `diagnostics.csv` is their merge in the spec's order of runs, rebuilt with
//! `results.csv` ([`crate::results::Merger`]), so processes sharing an output folder lose no
//! finding. Every check reads one run only (none compares two runs), so merging the runs'
//! files is all the top-level file needs.
//!
//! The checks (ids as in the `check` column; docs/attacks.md, "Diagnostics", gives the
//! reasoning behind each threshold):
//!
//! | id | fires when (same norm and eps) |
//! | --- | --- |
//! | `blackbox_beats_whitebox` | acc(black-box) < min acc(white-box) - [`ORDER_MARGIN`] |
//! | `single_step_stronger` | acc(single-step) < min acc(multi-step) - [`ORDER_MARGIN`] |
//! | `single_step_gap` | acc(single) - acc(multi) >= [`SINGLE_STEP_GAP_MIN`] and (clean - acc(single)) / (clean - acc(multi)) < [`SINGLE_STEP_SHARE_MAX`] |
//! | `not_monotone_in_eps` | one attack: acc(eps) > min over smaller eps of acc + [`ORDER_MARGIN`] |
//! | `large_eps_not_zero` | eps >= the radius that reaches the uniform gray image, and min acc over attacks > 1/classes + [`LARGE_EPS_SLACK`] |
//! | `apgd_below_pgd` | min acc(PGD) - min acc(APGD, APGD-T, AutoAttack) > [`APGD_MARGIN`] |
//! | `eval_nondeterministic` | two eval-mode forwards of the same images differ by more than [`EVAL_TOLERANCE`] (AutoAttack's `check_randomized` statistic) or change a prediction |
use crate::error::EngineError;
use crate::eval::logits_of;
use crate::losses::argmax_rows;
use crate::results::ResultRow;
use dfdx::prelude::*;
use salient_data::Dataset;
use salient_ir::{Attack, AutoAttackComponent, Experiment, Norm};
use salient_nn::Network;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Margin (accuracy, as a fraction) by which an attack expected to be weaker must beat one
/// expected to be at least as strong before it is reported: a black-box attack against the
/// best white-box one, a single-step attack against the best multi-step one, an attack at a
/// larger eps against itself at a smaller eps. The attacks run independently on the same
/// images, so a few images broken by one attack and missed by another (different random
/// starts, different local optima) are ordinary; 1 point is 5 images of 500, 10 of 1000.
/// (AutoAttack's `check_square_sr` uses 0.002, but there Square only attacks what the whole
/// white-box ensemble left robust, so every point it wins is an ensemble miss.)
pub const ORDER_MARGIN: f64 = 0.01;

/// `single_step_gap`: the smallest accuracy gap (single-step minus multi-step) reported. Below
/// it the share statistic is dominated by noise (a small multi-step drop in the denominator).
pub const SINGLE_STEP_GAP_MIN: f64 = 0.2;

/// `single_step_gap`: the single-step attack must achieve less than this share of the
/// multi-step attack's accuracy drop from clean. On a network whose loss is close to linear
/// inside the eps ball, FGSM (the maximiser of the linearised loss, Goodfellow et al. 2015)
/// gets most of PGD's drop; catastrophic overfitting (Wong et al. 2020; Andriushchenko and
/// Flammarion 2020) is the opposite extreme: FGSM barely moves the accuracy while PGD breaks
/// nearly every image. A quarter separates the two.
pub const SINGLE_STEP_SHARE_MAX: f64 = 0.25;

/// `apgd_below_pgd`: how far below the best PGD the best parameter-free attack (APGD, APGD-T,
/// AutoAttack) may go before the configured PGD is called weak. APGD is built to be somewhat
/// stronger than a fixed-step PGD, so a few points are expected; Croce and Hein (2020) found
/// reported evaluations "often" off by more than 10 points. 5 points is half of that.
pub const APGD_MARGIN: f64 = 0.05;

/// `large_eps_not_zero`: slack over 1/classes (the accuracy of one constant prediction on a
/// balanced test set), for class imbalance (MNIST's most frequent test class is 11.35%).
pub const LARGE_EPS_SLACK: f64 = 0.05;

/// `eval_nondeterministic`: AutoAttack's `check_randomized` threshold on the L2 distance of
/// L2-normalised logits of the same image in two forwards.
pub const EVAL_TOLERANCE: f64 = 1e-4;

/// Images the determinism probe forwards (AutoAttack's `check_randomized` uses its batch, 250).
pub const DETERMINISM_IMAGES: usize = 250;

/// Forwards of the same batch (AutoAttack's `check_randomized`: 5).
pub const DETERMINISM_REPEATS: usize = 5;

/// How an attack uses the model, for the comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackClass {
    /// One gradient step (FGSM).
    SingleStep,
    /// Iterative gradient-based (PGD, APGD, FAB, C&W, DeepFool, AutoAttack with a white-box
    /// component).
    MultiStep,
    /// Uses only the model's outputs (Square).
    BlackBox,
}

/// The attack's part in `apgd_below_pgd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The configured fixed-step PGD.
    Pgd,
    /// A parameter-free reference attack (APGD, APGD-T, AutoAttack).
    Reference,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttackKind {
    pub class: AttackClass,
    pub role: Role,
}

/// The class and role of an attack. One exhaustive match (no catch-all), so that a new
/// `Attack` variant does not compile until it is classified here.
pub fn classify(attack: &Attack) -> AttackKind {
    use AttackClass::*;
    let kind = |class, role| AttackKind { class, role };
    match attack {
        Attack::Fgsm { .. } => kind(SingleStep, Role::Other),
        Attack::Pgd { .. } => kind(MultiStep, Role::Pgd),
        Attack::Apgd { .. } | Attack::ApgdT { .. } => kind(MultiStep, Role::Reference),
        Attack::Square { .. } => kind(BlackBox, Role::Other),
        Attack::Fab { .. } | Attack::Cw { .. } | Attack::DeepFool { .. } => {
            kind(MultiStep, Role::Other)
        }
        Attack::AutoAttack {
            version,
            components,
            ..
        } => {
            let mut parts = components.clone();
            if parts.is_empty() {
                parts = version.components();
            }
            let black_box = !parts.is_empty()
                && parts
                    .iter()
                    .all(|c| matches!(c, AutoAttackComponent::Square));
            if black_box {
                kind(BlackBox, Role::Other)
            } else {
                kind(MultiStep, Role::Reference)
            }
        }
    }
}

/// The smallest radius at which every image of [0, 1]^d can be moved to the uniform gray image
/// (0.5 everywhere): 0.5 in Linf, 0.5 * sqrt(d) in L2. At or above it an attack can make every
/// image the same, so accuracy can be pushed to the share of the class predicted for gray.
pub fn gray_radius(norm: Norm, input_dim: usize) -> f64 {
    match norm {
        Norm::Linf => 0.5,
        Norm::L2 => 0.5 * (input_dim as f64).sqrt(),
    }
}

/// The robust accuracy of one attack at one eps.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackAccuracy {
    /// The attack's name in results.csv.
    pub attack: String,
    pub kind: AttackKind,
    pub norm: Norm,
    pub eps: f64,
    pub accuracy: f64,
}

/// The eval-mode determinism measurement of one network ([`probe_determinism`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Determinism {
    /// Images forwarded.
    pub images: usize,
    /// Forwards of the whole batch.
    pub repeats: usize,
    /// Max over images and pairs of forwards of || z1/|z1| - z2/|z2| ||_2 (z: logits).
    pub repeat_diff: f64,
    /// Images whose predicted class differs between two of the forwards.
    pub repeat_changed: usize,
    /// The same statistic between the whole batch and the batch forwarded as two halves.
    pub split_diff: f64,
    pub split_changed: usize,
}

/// Everything the rules read about one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEvaluation {
    pub run: String,
    pub clean_accuracy: Option<f64>,
    pub attacks: Vec<AttackAccuracy>,
    /// Number of classes (for `large_eps_not_zero`).
    pub classes: usize,
    /// Input features per example (for the L2 gray radius).
    pub input_dim: usize,
    pub determinism: Option<Determinism>,
}

/// The checks, with their ids in `diagnostics.csv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    BlackboxBeatsWhitebox,
    SingleStepStronger,
    SingleStepGap,
    NotMonotoneInEps,
    LargeEpsNotZero,
    ApgdBelowPgd,
    EvalNondeterministic,
}

impl Check {
    pub const ALL: [Check; 7] = [
        Check::BlackboxBeatsWhitebox,
        Check::SingleStepStronger,
        Check::SingleStepGap,
        Check::NotMonotoneInEps,
        Check::LargeEpsNotZero,
        Check::ApgdBelowPgd,
        Check::EvalNondeterministic,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Check::BlackboxBeatsWhitebox => "blackbox_beats_whitebox",
            Check::SingleStepStronger => "single_step_stronger",
            Check::SingleStepGap => "single_step_gap",
            Check::NotMonotoneInEps => "not_monotone_in_eps",
            Check::LargeEpsNotZero => "large_eps_not_zero",
            Check::ApgdBelowPgd => "apgd_below_pgd",
            Check::EvalNondeterministic => "eval_nondeterministic",
        }
    }
}

/// One warning: a row of `diagnostics.csv`.
///
/// `value` and `reference` are the two numbers compared (accuracies as fractions, or the
/// determinism statistic and 0); `statistic` is the quantity held against `threshold` (a
/// difference of accuracies, the share of `single_step_gap`, the accuracy of
/// `large_eps_not_zero`, the logit distance of `eval_nondeterministic`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub run: String,
    /// The check's id ([`Check::id`]).
    pub check: String,
    /// The attacks involved, `a vs b` where two are compared; empty for determinism.
    pub attacks: String,
    /// `linf` / `l2`; empty for determinism.
    pub norm: Option<String>,
    pub eps: Option<f64>,
    pub value: f64,
    pub reference: f64,
    pub statistic: f64,
    pub threshold: f64,
    pub message: String,
}

/// The columns of `diagnostics.csv`, in order.
pub const CSV_HEADER: [&str; 10] = [
    "run",
    "check",
    "attacks",
    "norm",
    "eps",
    "value",
    "reference",
    "statistic",
    "threshold",
    "message",
];

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn ppoints(x: f64) -> String {
    format!("{:.1}", x * 100.0)
}

fn same_eps(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn class_name(c: AttackClass) -> &'static str {
    match c {
        AttackClass::SingleStep => "single-step",
        AttackClass::MultiStep => "multi-step",
        AttackClass::BlackBox => "black-box",
    }
}

/// The attack with the lowest accuracy among `xs` (the first of equals).
fn strongest<'a>(xs: impl Iterator<Item = &'a AttackAccuracy>) -> Option<&'a AttackAccuracy> {
    xs.fold(None, |best: Option<&AttackAccuracy>, a| match best {
        Some(b) if b.accuracy <= a.accuracy => Some(b),
        _ => Some(a),
    })
}

impl RunEvaluation {
    /// The (norm, eps) points at which attacks ran, in order of first appearance.
    fn points(&self) -> Vec<(Norm, f64)> {
        let mut out: Vec<(Norm, f64)> = Vec::new();
        for a in &self.attacks {
            if !out.iter().any(|&(n, e)| n == a.norm && same_eps(e, a.eps)) {
                out.push((a.norm, a.eps));
            }
        }
        out
    }

    fn at(&self, norm: Norm, eps: f64) -> impl Iterator<Item = &AttackAccuracy> {
        self.attacks
            .iter()
            .filter(move |a| a.norm == norm && same_eps(a.eps, eps))
    }

    fn finding(
        &self,
        check: Check,
        attacks: String,
        at: Option<(Norm, f64)>,
        numbers: [f64; 4],
        message: String,
    ) -> Finding {
        let [value, reference, statistic, threshold] = numbers;
        Finding {
            run: self.run.clone(),
            check: check.id().to_string(),
            attacks,
            norm: at.map(|(n, _)| n.to_string()),
            eps: at.map(|(_, e)| e),
            value,
            reference,
            statistic,
            threshold,
            message,
        }
    }
}

/// Every finding of one run, in the order of [`Check::ALL`].
pub fn check_run(ev: &RunEvaluation) -> Vec<Finding> {
    let mut out = Vec::new();
    let points = ev.points();
    // An attack expected to be weaker (black-box, single-step) beating the strongest of a class
    // expected to be stronger.
    let mut order = |check: Check, weak: AttackClass, strong: &[AttackClass], why: &str| {
        for &(norm, eps) in &points {
            let Some(best) = strongest(ev.at(norm, eps).filter(|a| strong.contains(&a.kind.class)))
            else {
                continue;
            };
            for a in ev.at(norm, eps).filter(|a| a.kind.class == weak) {
                let lead = best.accuracy - a.accuracy;
                if lead > ORDER_MARGIN {
                    out.push(ev.finding(
                        check,
                        format!("{} vs {}", a.attack, best.attack),
                        Some((norm, eps)),
                        [a.accuracy, best.accuracy, lead, ORDER_MARGIN],
                        format!(
                            "{} ({}) leaves {} at {norm} eps {eps}, {} points below the strongest {} attack {} ({}; margin {} points): {why}",
                            a.attack,
                            class_name(weak),
                            pct(a.accuracy),
                            ppoints(lead),
                            strong.iter().map(|&c| class_name(c)).collect::<Vec<_>>().join("/"),
                            best.attack,
                            pct(best.accuracy),
                            ppoints(ORDER_MARGIN),
                        ),
                    ));
                }
            }
        }
    };
    order(
        Check::BlackboxBeatsWhitebox,
        AttackClass::BlackBox,
        &[AttackClass::SingleStep, AttackClass::MultiStep],
        "the gradient attacks miss images a gradient-free attack breaks, a sign of gradient masking (Athalye et al. 2018; Carlini et al. 2019); trust the lower number and strengthen the white-box attack",
    );
    order(
        Check::SingleStepStronger,
        AttackClass::SingleStep,
        &[AttackClass::MultiStep],
        "an iterative attack should be at least as strong as one step (Carlini et al. 2019); gradient masking or a misconfigured iterative attack (step size, steps)",
    );

    // Catastrophic overfitting: the single-step attack barely works where the multi-step one does.
    if let Some(clean) = ev.clean_accuracy {
        for &(norm, eps) in &points {
            let Some(multi) = strongest(
                ev.at(norm, eps)
                    .filter(|a| a.kind.class == AttackClass::MultiStep),
            ) else {
                continue;
            };
            for a in ev
                .at(norm, eps)
                .filter(|a| a.kind.class == AttackClass::SingleStep)
            {
                let gap = a.accuracy - multi.accuracy;
                let multi_drop = clean - multi.accuracy;
                if gap < SINGLE_STEP_GAP_MIN || multi_drop <= 0.0 {
                    continue;
                }
                let share = (clean - a.accuracy) / multi_drop;
                if share < SINGLE_STEP_SHARE_MAX {
                    out.push(ev.finding(
                        Check::SingleStepGap,
                        format!("{} vs {}", a.attack, multi.attack),
                        Some((norm, eps)),
                        [a.accuracy, multi.accuracy, share, SINGLE_STEP_SHARE_MAX],
                        format!(
                            "{} (single-step) leaves {} at {norm} eps {eps} but {} leaves {} (clean {}): one step achieves {:.0}% of the multi-step accuracy drop (< {:.0}%): catastrophic overfitting or a loss far from linear in the eps ball (Wong et al. 2020); single-step numbers overstate this model's robustness",
                            a.attack,
                            pct(a.accuracy),
                            multi.attack,
                            pct(multi.accuracy),
                            pct(clean),
                            share * 100.0,
                            SINGLE_STEP_SHARE_MAX * 100.0,
                        ),
                    ));
                }
            }
        }
    }

    // One attack at growing eps.
    let mut seen: Vec<(&str, Norm)> = Vec::new();
    for a in &ev.attacks {
        if seen.contains(&(a.attack.as_str(), a.norm)) {
            continue;
        }
        seen.push((a.attack.as_str(), a.norm));
        let mut curve: Vec<&AttackAccuracy> = ev
            .attacks
            .iter()
            .filter(|b| b.attack == a.attack && b.norm == a.norm)
            .collect();
        curve.sort_by(|x, y| x.eps.total_cmp(&y.eps));
        for (j, b) in curve.iter().enumerate() {
            let Some(low) = strongest(
                curve[..j]
                    .iter()
                    .copied()
                    .filter(|c| !same_eps(c.eps, b.eps)),
            ) else {
                continue;
            };
            let rise = b.accuracy - low.accuracy;
            if rise > ORDER_MARGIN {
                out.push(ev.finding(
                    Check::NotMonotoneInEps,
                    b.attack.clone(),
                    Some((b.norm, b.eps)),
                    [b.accuracy, low.accuracy, rise, ORDER_MARGIN],
                    format!(
                        "{} leaves {} at {} eps {}, {} points more than at the smaller eps {} ({}; margin {} points): robust accuracy cannot rise with the budget (Carlini et al. 2019); the attack is not converging at the larger eps (step size, steps, masking)",
                        b.attack,
                        pct(b.accuracy),
                        b.norm,
                        b.eps,
                        ppoints(rise),
                        low.eps,
                        pct(low.accuracy),
                        ppoints(ORDER_MARGIN),
                    ),
                ));
            }
        }
    }

    // A budget that reaches the gray image.
    if ev.classes > 0 {
        let bound = 1.0 / ev.classes as f64 + LARGE_EPS_SLACK;
        for &(norm, eps) in &points {
            let radius = gray_radius(norm, ev.input_dim);
            if eps + 1e-12 < radius {
                continue;
            }
            let Some(best) = strongest(ev.at(norm, eps)) else {
                continue;
            };
            if best.accuracy > bound {
                out.push(ev.finding(
                    Check::LargeEpsNotZero,
                    best.attack.clone(),
                    Some((norm, eps)),
                    [best.accuracy, 1.0 / ev.classes as f64, best.accuracy, bound],
                    format!(
                        "at {norm} eps {eps} (>= {radius:.3}, enough to turn every image into uniform gray) a working attack leaves about 1/{} of the images; the strongest attack here, {}, leaves {} (> {}): the attacks fail where success is guaranteed (Carlini et al. 2019)",
                        ev.classes,
                        best.attack,
                        pct(best.accuracy),
                        pct(bound),
                    ),
                ));
            }
        }
    }

    // The configured PGD against a parameter-free reference attack.
    for &(norm, eps) in &points {
        let pgd = strongest(ev.at(norm, eps).filter(|a| a.kind.role == Role::Pgd));
        let reference = strongest(ev.at(norm, eps).filter(|a| a.kind.role == Role::Reference));
        let (Some(pgd), Some(reference)) = (pgd, reference) else {
            continue;
        };
        let lead = pgd.accuracy - reference.accuracy;
        if lead > APGD_MARGIN {
            out.push(ev.finding(
                Check::ApgdBelowPgd,
                format!("{} vs {}", reference.attack, pgd.attack),
                Some((norm, eps)),
                [reference.accuracy, pgd.accuracy, lead, APGD_MARGIN],
                format!(
                    "{} leaves {} at {norm} eps {eps}, {} points below {} ({}; margin {} points): the configured PGD is weak (Croce and Hein 2020); report the lower number and do not read PGD alone",
                    reference.attack,
                    pct(reference.accuracy),
                    ppoints(lead),
                    pgd.attack,
                    pct(pgd.accuracy),
                    ppoints(APGD_MARGIN),
                ),
            ));
        }
    }

    if let Some(d) = &ev.determinism {
        let cases = [
            (
                d.repeat_diff,
                d.repeat_changed,
                format!(
                    "the same {} images forwarded {} times in eval mode",
                    d.images, d.repeats
                ),
            ),
            (
                d.split_diff,
                d.split_changed,
                format!(
                    "the same {} images forwarded as one batch and as two halves",
                    d.images
                ),
            ),
        ];
        for (diff, changed, what) in cases {
            if diff > EVAL_TOLERANCE || changed > 0 {
                out.push(ev.finding(
                    Check::EvalNondeterministic,
                    String::new(),
                    None,
                    [diff, 0.0, diff, EVAL_TOLERANCE],
                    format!(
                        "{what} give different logits (max L2 distance of normalised logits {diff:.2e} > {EVAL_TOLERANCE:.0e}; {changed} predictions changed): the model is not deterministic in eval mode, so single-draw attacks and accuracies are unreliable (use expectation over transformation, Athalye et al. 2018; AutoAttack's version = rand)"
                    ),
                ));
            }
        }
    }
    out
}

/// The rules' input for every run in `rows` (in order of first appearance), from a
/// `results.csv` and the experiment that wrote it. Robust-accuracy rows whose attack is not
/// an attack spec of `exp` (the `worst_case` rows, attacks since removed from the spec) are
/// left out. No determinism measurement (it needs the network).
pub fn evaluations_from_rows(rows: &[ResultRow], exp: &Experiment) -> Vec<RunEvaluation> {
    let mut out: Vec<RunEvaluation> = Vec::new();
    for row in rows {
        let i = match out.iter().position(|e| e.run == row.run) {
            Some(i) => i,
            None => {
                out.push(RunEvaluation {
                    run: row.run.clone(),
                    clean_accuracy: None,
                    attacks: Vec::new(),
                    classes: exp.data.classes,
                    input_dim: exp.data.shape.numel(),
                    determinism: None,
                });
                out.len() - 1
            }
        };
        let ev = &mut out[i];
        match row.metric.as_str() {
            "clean_accuracy" => ev.clean_accuracy = Some(row.value),
            "robust_accuracy" => {
                let (Some(name), Some(eps)) = (&row.attack, row.eps) else {
                    continue;
                };
                // The spec of this name at this eps, else any spec of this name (minimum-norm
                // attacks write one row per point of their curve).
                let named = || exp.attacks.iter().filter(|s| &s.name == name);
                let Some(spec) = named()
                    .find(|s| same_eps(s.eps(), eps))
                    .or_else(|| named().next())
                else {
                    continue;
                };
                ev.attacks.push(AttackAccuracy {
                    attack: name.clone(),
                    kind: classify(&spec.attack),
                    norm: spec.norm(),
                    eps,
                    accuracy: row.value,
                });
            }
            _ => {}
        }
    }
    out
}

/// Every finding of every run in `rows` ([`evaluations_from_rows`] then [`check_run`]).
pub fn diagnose_rows(rows: &[ResultRow], exp: &Experiment) -> Vec<Finding> {
    evaluations_from_rows(rows, exp)
        .iter()
        .flat_map(check_run)
        .collect()
}

/// Per row of two logit matrices (rows x `classes`): the largest L2 distance between the
/// L2-normalised rows (AutoAttack's `check_randomized` statistic) and the number of rows whose
/// argmax differs.
pub fn compare_logits(a: &[f32], b: &[f32], classes: usize) -> (f64, usize) {
    fn unit(r: &[f32]) -> Vec<f64> {
        let n = r
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt()
            + 1e-10;
        r.iter().map(|&v| v as f64 / n).collect()
    }
    let mut max = 0.0f64;
    if classes == 0 || a.len() != b.len() {
        return (f64::INFINITY, 0);
    }
    for (ra, rb) in a.chunks(classes).zip(b.chunks(classes)) {
        let d = unit(ra)
            .into_iter()
            .zip(unit(rb))
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt();
        // A NaN logit is as non-deterministic as it gets.
        max = if d.is_nan() {
            f64::INFINITY
        } else {
            max.max(d)
        };
    }
    let changed = argmax_rows(a, classes)
        .into_iter()
        .zip(argmax_rows(b, classes))
        .filter(|(x, y)| x != y)
        .count();
    (max, changed)
}

/// Forward the first `images` examples of `data` `repeats` times in eval mode, and once as two
/// halves, and compare the logits ([`compare_logits`] over every pair of forwards).
pub fn probe_determinism<D: Device<f32>>(
    net: &mut Network<D>,
    data: &Dataset,
    images: usize,
    repeats: usize,
) -> Determinism {
    let n = images.min(data.len());
    let idx: Vec<usize> = (0..n).collect();
    let classes = data.classes;
    let forwards: Vec<Vec<f32>> = (0..repeats.max(2))
        .map(|_| logits_of(net, data, &idx))
        .collect();
    let (mut repeat_diff, mut repeat_changed) = (0.0f64, 0usize);
    for i in 0..forwards.len() {
        for j in i + 1..forwards.len() {
            let (d, c) = compare_logits(&forwards[i], &forwards[j], classes);
            repeat_diff = repeat_diff.max(d);
            repeat_changed = repeat_changed.max(c);
        }
    }
    let (mut split_diff, mut split_changed) = (0.0, 0);
    if n >= 2 {
        let (lo, hi) = idx.split_at(n / 2);
        let mut halves = logits_of(net, data, lo);
        halves.extend(logits_of(net, data, hi));
        (split_diff, split_changed) = compare_logits(&forwards[0], &halves, classes);
    }
    Determinism {
        images: n,
        repeats: forwards.len(),
        repeat_diff,
        repeat_changed,
        split_diff,
        split_changed,
    }
}

/// Write `diagnostics.csv` (temp file + rename): the header, then one row per finding.
pub fn write_csv(path: &Path, findings: &[Finding]) -> Result<(), EngineError> {
    crate::results::write_csv_iter(path, findings.iter(), Some(&CSV_HEADER)).map(|_| ())
}

/// Read a `diagnostics.csv` back (missing file: no findings).
pub fn read_csv(path: &Path) -> Result<Vec<Finding>, EngineError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    crate::results::read_csv(path)
}

/// The warning line the terminal shows for a finding.
pub fn warning_line(f: &Finding) -> String {
    format!("warning [{}] {}: {}", f.check, f.run, f.message)
}

/// Every finding of the run `run`: the rules on its rows among `rows`, plus its determinism
/// measurement when given. What the runner writes to `runs/<run>/diagnostics.csv`; the
/// top-level `diagnostics.csv` is the merge of those files ([`crate::results::Merger`]).
pub fn diagnose_run(
    rows: &[ResultRow],
    exp: &Experiment,
    run: &str,
    determinism: Option<Determinism>,
) -> Vec<Finding> {
    let mine: Vec<ResultRow> = rows.iter().filter(|r| r.run == run).cloned().collect();
    let mut ev = evaluations_from_rows(&mine, exp)
        .pop()
        .unwrap_or_else(|| RunEvaluation {
            run: run.to_string(),
            clean_accuracy: None,
            attacks: Vec::new(),
            classes: exp.data.classes,
            input_dim: exp.data.shape.numel(),
            determinism: None,
        });
    ev.determinism = determinism;
    check_run(&ev)
}
