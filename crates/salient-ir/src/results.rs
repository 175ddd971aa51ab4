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
