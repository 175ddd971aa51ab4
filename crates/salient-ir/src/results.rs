//! The schema of the tidy result files a run writes and a report reads: `results.csv` (one
//! [`ResultRow`] per run, metric and, where it applies, attack, eps, saliency method, curve point
//! and class) and `training.csv` (one [`CurveRow`] per run and epoch). The engine writes them,
//! `salient-report` reads them: one definition serves both. Optional columns default to empty
//! when absent, so older files still read.
use crate::TrainRun;
use serde::{Deserialize, Serialize};

/// One tidy result row. Empty optional fields are written as empty cells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub run: String,
    pub model: String,
    /// The regime's label (name plus the sweep values that distinguish it).
    pub regime: String,
    pub seed: u64,
    pub metric: String,
    /// Attack name (robust accuracy; `worst_case` for the per-example worst case over attacks).
    #[serde(default)]
    pub attack: Option<String>,
    #[serde(default)]
    pub eps: Option<f64>,
    /// Saliency method name (saliency metrics).
    #[serde(default)]
    pub saliency: Option<String>,
    /// The curve's abscissa where a metric is a curve (e.g. the masked percentage p of the
    /// masking curve, the fraction of pixels deleted).
    #[serde(default)]
    pub point: Option<f64>,
    #[serde(default)]
    pub class: Option<usize>,
    pub value: f64,
}

impl ResultRow {
    pub fn new(run: &TrainRun, metric: &str, value: f64) -> Self {
        ResultRow {
            run: run.id.clone(),
            model: run.model.clone(),
            regime: run.regime.label.clone(),
            seed: run.train.seed,
            metric: metric.to_string(),
            attack: None,
            eps: None,
            saliency: None,
            point: None,
            class: None,
            value,
        }
    }
}

/// One row of the training curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    pub run: String,
    pub model: String,
    pub regime: String,
    pub seed: u64,
    pub epoch: usize,
    pub loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Metric of AutoAttack's breakdown rows: per component (`attack` = `NAME/COMPONENT`, e.g.
/// `autoattack/apgd-t`), the fraction of the evaluated examples that component broke first.
pub const AUTOATTACK_BROKEN: &str = "autoattack_broken";
/// Metric of a minimum-norm attack's median smallest perturbation (`attack` = its name).
pub const MEDIAN_PERTURBATION: &str = "median_perturbation";

// The `metric` names of the rows. Each metric's engine file writes its rows under these names
// and the report finds them by the same constants, so a name lives in one place.

/// Clean test accuracy of a run.
pub const CLEAN_ACCURACY: &str = "clean_accuracy";
/// Accuracy under an attack at an eps (`attack`, `eps`).
pub const ROBUST_ACCURACY: &str = "robust_accuracy";
/// Per-class clean accuracy (`class`).
pub const CLASS_ACCURACY: &str = "class_accuracy";
/// A run that failed (diverged, or could not be built, trained or evaluated): value 1, no other
/// rows for that run; the reason is in `runs/<id>/failed.txt`.
pub const FAILED: &str = "failed";
/// Wall time of a run's training (seconds; a reused checkpoint keeps its recorded time).
pub const TRAIN_SECONDS: &str = "train_seconds";
/// The eps of the attack a run was trained against (`attack` = its norm, `eps`); 0 for a
/// standard run. Rows only for standard and adversarially trained runs.
pub const TRAIN_EPS: &str = "train_eps";
/// Wall time of a saliency method's maps on the evaluated examples.
pub const SALIENCY_SECONDS: &str = "saliency_seconds";
/// Gini index of the pixel scores (mean over examples).
pub const SPARSENESS: &str = "sparseness";
/// Entropy of the normalised pixel scores (mean over examples).
pub const COMPLEXITY: &str = "complexity";
/// |<x, g>| / ||g|| (mean over examples).
pub const ALIGNMENT: &str = "alignment";
/// Deletion AUC (mean over examples) and its curve (`point` = fraction deleted).
pub const DELETION: &str = "deletion";
pub const DELETION_CURVE: &str = "deletion_curve";
/// Insertion AUC (mean over examples) and its curve (`point` = fraction inserted).
pub const INSERTION: &str = "insertion";
pub const INSERTION_CURVE: &str = "insertion_curve";
/// Masking accuracy curve (`point` = percent masked), by the map and by a random ranking.
pub const MASKING_CURVE: &str = "masking_curve";
pub const MASKING_CURVE_RANDOM: &str = "masking_curve_random";
/// Max-sensitivity (mean over examples with a non-zero map).
pub const MAX_SENSITIVITY: &str = "max_sensitivity";
/// Cascading randomisation: mean Spearman rho (`point` = index of the layer re-initialised).
pub const RANDOMIZATION: &str = "randomization";
/// Share of the top pixels in the largest connected component (mean over examples).
pub const CONNECTEDNESS: &str = "connectedness";
/// ROAR / KAR: test accuracy after retraining (`point` = percent removed / kept; mean over the
/// retraining seeds), its sample standard deviation over the seeds, the same two for a random
/// ranking of the pixels (the baseline; the same values in every method's rows), and the
/// summary score (mean over the percents of the gap to the random ranking: random - method for
/// ROAR, method - random for KAR; positive = the map ranks pixels better than chance).
pub const ROAR: &str = "roar";
pub const ROAR_STD: &str = "roar_std";
pub const ROAR_RANDOM: &str = "roar_random";
pub const ROAR_RANDOM_STD: &str = "roar_random_std";
pub const ROAR_SCORE: &str = "roar_score";
pub const KAR: &str = "kar";
pub const KAR_STD: &str = "kar_std";
pub const KAR_RANDOM: &str = "kar_random";
pub const KAR_RANDOM_STD: &str = "kar_random_std";
pub const KAR_SCORE: &str = "kar_score";
