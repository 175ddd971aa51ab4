//! The typed, fully resolved experiment: what `salient check` produces from a `.exp` file and what
//! the engine consumes without re-reading text.
//!
//! Everything here is plain data (serde), already validated: every reference resolved, every sweep
//! expanded, every default filled in, every model's shapes inferred. Pixel values are in [0, 1];
//! every `eps` is in pixel units of the [0, 1] image (normalisation is part of the model).
//!
//! The flow is one way: text -> `salient-lang` (parse + check) -> [`Experiment`] -> engine.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod results;
pub mod shape;
use std::fmt;

/// Version of the IR layout; stored in checkpoints so that a stale checkpoint is never reused.
pub const IR_VERSION: u32 = 1;

/// A whole checked experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// `experiment NAME` (an identifier).
    pub name: String,
    pub data: DataSpec,
    /// Every model the spec defines, in definition order, with inferred shapes.
    pub models: Vec<ModelDef>,
    /// The expanded training grid: one entry per model to train.
    pub runs: Vec<TrainRun>,
    /// The expanded evaluation attacks (one entry per attack and sweep point, e.g. per eps).
    pub attacks: Vec<AttackSpec>,
    /// The expanded saliency methods.
    pub saliency: Vec<SaliencySpec>,
    /// The metrics to compute, in spec order.
    pub metrics: Vec<MetricSpec>,
    pub eval: EvalSpec,
    pub report: ReportSpec,
    /// Values of every list (sweep) in the spec, by dotted path (`train.seed`,
    /// `attack.pgd.eps`, ...), in the order written.
    pub sweeps: BTreeMap<String, Vec<String>>,
}

impl Experiment {
    pub fn model(&self, name: &str) -> Option<&ModelDef> {
        self.models.iter().find(|m| m.name == name)
    }
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/// The dataset. One per experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub kind: DataKind,
    /// Directory holding the files (relative paths are relative to the current directory).
    pub dir: String,
    /// Use only the first `train` training examples (None: all).
    pub train: Option<usize>,
    /// Use only the first `test` test examples (None: all).
    pub test: Option<usize>,
    /// Per-channel mean and std of the input normalisation `(x - mean) / std`, applied inside the
    /// model. Length equals `shape.c`. Identity is mean 0, std 1.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Image shape (channels, height, width) of one example.
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataKind {
    /// MNIST: IDX files, 1x28x28, 10 classes.
    Mnist,
    /// Fashion-MNIST: IDX files, 1x28x28, 10 classes.
    FashionMnist,
    /// Any IDX set laid out as MNIST is (`train-images-idx3-ubyte[.gz]` ...).
    Idx,
    /// CIFAR-10 binary batches: 3x32x32, 10 classes. `files` names the batch files to read for
    /// training and test; the defaults are the official `data_batch_1..5.bin` / `test_batch.bin`.
    Cifar10 {
        train_files: Vec<String>,
        test_files: Vec<String>,
    },
    /// Synthetic, linearly separable-ish data for tests: class-dependent patterns plus noise.
    Synthetic {
        train: usize,
        test: usize,
        noise: f32,
        seed: u64,
    },
}

/// Shape of one image: channels, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl ImageShape {
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/// Shape of an activation of one example.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// Channels x height x width (stored channels-last by the engine).
    Image { c: usize, h: usize, w: usize },
    /// A flat feature vector.
    Flat(usize),
}

impl Shape {
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Image { c, h, w } => c * h * w,
            Shape::Flat(n) => n,
        }
    }
}

impl From<ImageShape> for Shape {
    fn from(s: ImageShape) -> Self {
        Shape::Image {
            c: s.c,
            h: s.h,
            w: s.w,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shape::Image { c, h, w } => write!(f, "{c}x{h}x{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// A named model with inferred shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDef {
    pub name: String,
    pub input: Shape,
    /// Output shape; always `Flat(classes)` after checking.
    pub output: Shape,
    pub layers: Vec<LayerDef>,
    /// Total number of trainable parameters.
    pub params: usize,
}

/// One layer with its resolved name and shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerDef {
    /// Unique within the model: the kind and its 1-based ordinal among layers of that kind in the
    /// whole model, depth-first (`conv1`, `relu2`, `residual1`, ...). Used by the sensitivity
    /// regime to name layers.
    pub name: String,
    pub kind: Layer,
    pub input: Shape,
    pub output: Shape,
    /// Trainable parameters of this layer (including those inside a residual block).
    pub params: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Layer {
    /// 2-D convolution with bias. Output h = (h + 2*padding - kernel) / stride + 1.
    Conv {
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    /// Max pooling over `size` x `size` windows, moving by `stride`.
    MaxPool {
        size: usize,
        stride: usize,
    },
    /// Average pooling over `size` x `size` windows, moving by `stride`.
    AvgPool {
        size: usize,
        stride: usize,
    },
    /// Fully connected with bias. Needs a flat input.
    Dense {
        out: usize,
    },
    Relu,
    LeakyRelu {
        slope: f32,
    },
    Tanh,
    Sigmoid,
    /// Image -> flat, in (c, h, w) order as PyTorch flattens NCHW.
    Flatten,
    /// Inverted dropout, active in training mode only.
    Dropout {
        p: f32,
    },
    /// Batch normalisation over channels (image) or features (flat), with running statistics.
    BatchNorm {
        momentum: f32,
        eps: f32,
    },
    /// y = body(x) + shortcut(x). The shortcut is the identity when the body keeps the shape,
    /// else a 1x1 convolution with the body's stride (`projection`).
    Residual {
        body: Vec<LayerDef>,
        projection: Option<Projection>,
    },
}

impl Layer {
    /// The kind's name as the language writes it and as layer names use it (`conv` in
    /// `conv1`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Layer::Conv { .. } => "conv",
            Layer::MaxPool { .. } => "maxpool",
            Layer::AvgPool { .. } => "avgpool",
            Layer::Dense { .. } => "dense",
            Layer::Relu => "relu",
            Layer::LeakyRelu { .. } => "leaky_relu",
            Layer::Tanh => "tanh",
            Layer::Sigmoid => "sigmoid",
            Layer::Flatten => "flatten",
            Layer::Dropout { .. } => "dropout",
            Layer::BatchNorm { .. } => "batchnorm",
            Layer::Residual { .. } => "residual",
        }
    }
}

/// The 1x1 convolution that matches shapes on a residual shortcut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    pub out: usize,
    pub stride: usize,
}

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

/// One model to train: the Cartesian point of the training grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainRun {
    /// Stable, filesystem-safe id, unique in the experiment: `model-regime-seedN` (plus sweep
    /// values when a list made several variants), e.g. `cnn-sgt_k0.5-seed0`.
    pub id: String,
    /// Name of the model (a key into `Experiment::models`).
    pub model: String,
    pub regime: RegimeInstance,
    pub train: TrainConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub optimizer: Optimizer,
    pub lr: f64,
    pub schedule: Schedule,
    /// L2 penalty coefficient, added to the gradient (coupled) for every optimizer.
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    Sgd { momentum: f64, nesterov: bool },
    Adam { beta1: f64, beta2: f64, eps: f64 },
    Adadelta { rho: f64, eps: f64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    Constant,
    /// lr * gamma^(floor(epoch / every)).
    Step {
        every: usize,
        gamma: f64,
    },
    /// Cosine annealing from lr to 0 over all steps of the run.
    Cosine,
}

// ---------------------------------------------------------------------------------------------
// Regimes
// ---------------------------------------------------------------------------------------------

/// A regime with its resolved parameters and a display label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegimeInstance {
    /// The name the spec gave (`regime sgt as sgt_abs`), or the kind's name.
    pub name: String,
    /// `name` plus the sweep values that distinguish this variant, e.g. `sgt[lambda=0.5]`;
    /// equal to `name` when the regime has no lists.
    pub label: String,
    pub regime: Regime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Regime {
    Standard,
    Sgt(SgtParams),
    Adversarial(AdversarialParams),
    Combined(CombinedParams),
    LpDual(LpDualParams),
    Sensitivity(SensitivityParams),
}

impl Regime {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Regime::Standard => "standard",
            Regime::Sgt(_) => "sgt",
            Regime::Adversarial(_) => "adversarial",
            Regime::Combined(_) => "combined",
            Regime::LpDual(_) => "lp_dual",
            Regime::Sensitivity(_) => "sensitivity",
        }
    }
}

/// Saliency-guided training (Ismail et al. 2021).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgtParams {
    /// Fraction of features masked per image, in (0, 1). Default 0.5.
    pub k: f64,
    /// Rank features by the signed gradient (default, as the authors' code) or by |gradient|.
    pub saliency: SaliencySign,
    pub fill: Fill,
    /// Weight of KL(p(x) || p(x~)). Default 1.
    pub lambda: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaliencySign {
    Signed,
    Absolute,
}

/// What replaces a masked feature.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fill {
    /// Uniform random in [min(x), max(x)] of that image.
    Random,
    /// The dataset's per-channel mean pixel value.
    Mean,
    /// A constant pixel value in [0, 1].
    Constant(f32),
}

/// Perturbation norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Norm {
    Linf,
    L2,
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        })
    }
}

/// The inner attack of a training regime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainAttack {
    pub method: TrainAttackMethod,
    pub norm: Norm,
    pub eps: f64,
    /// Step size per iteration (pixel units). For FGSM with random start, Wong et al. use
    /// 1.25 * eps.
    pub step_size: f64,
    /// Iterations (1 for FGSM).
    pub steps: usize,
    pub random_start: bool,
    /// Epochs over which eps (and the step size with it) ramps linearly from 0 to its value;
    /// 0 = the full eps from the first step. Not serialised when 0, so the checkpoint keys of
    /// specs without a warm-up are what they were before the option existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainAttackMethod {
    Pgd,
    Fgsm,
}

/// The loss the inner maximisation climbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InnerLoss {
    /// Cross-entropy.
    Ce,
    /// Carlini-Wagner margin: max_{j != y} z_j - z_y (Kim et al. option).
    CwMargin,
}

/// Adversarial training: Madry PGD-AT, fast FGSM-RS, TRADES.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdversarialParams {
    pub attack: TrainAttack,
    pub loss: InnerLoss,
    /// TRADES: loss CE(x) + beta * KL(p(x) || p(x_adv)), inner loss KL. None: Madry.
    pub trades_beta: Option<f64>,
    /// Weight of the clean loss when mixing: loss = (1 - mix) * CE(x_adv) + mix * CE(x).
    /// 0 = adversarial examples only (Madry, Kim et al.). Ignored with TRADES.
    pub mix: f64,
}

/// SGT + adversarial training (Guesmi et al. 2024):
/// `clean_weight * CE(x) + adv_weight * CE(x_adv) + lambda * KL(p(x) || p(mask(x_adv)))`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CombinedParams {
    pub sgt: SgtParams,
    pub attack: TrainAttack,
    pub clean_weight: f64,
    pub adv_weight: f64,
}

/// Norm-regularised adversarial training (Gong, Dou, Farnia 2024).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LpDualParams {
    pub mode: LpDualMode,
    /// 1 = fast (closed-form step); more = iterative projected ascent.
    pub steps: usize,
    /// Step size for the iterative mode, as a fraction of eps (default 2.5 / steps).
    pub step_fraction: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LpDualMode {
    /// R = indicator of ||d||_inf <= eps; R*(g) = eps ||g||_1.
    L1Box { eps: f64 },
    /// R(d) = ||(|d| - eps1)_+||^2 / (4 eps2); R*(g) = eps1 ||g||_1 + eps2 ||g||_2^2.
    ElasticNet { eps1: f64, eps2: f64 },
    /// Each group (group x group spatial patch of one channel) has ||d_G||_2 <= eps.
    Group { eps: f64, group: usize },
}

/// Activation-sensitivity regularisation (Moshe et al. 2022), first-order reading:
/// `CE(x) + lambda * sum_l mean_j |a_l(x + d) - a_l(x)|`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensitivityParams {
    /// Layer names (see [`LayerDef::name`]) whose outputs are regularised.
    pub layers: Vec<String>,
    pub noise: Noise,
    /// Noise scale: std of the Gaussian, or half-width of the uniform box.
    pub sigma: f64,
    pub lambda: f64,
    /// Also perturb adversarially: one signed-gradient step of size sigma on the regulariser.
    pub adversarial: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Noise {
    Gaussian,
    Uniform,
}

// ---------------------------------------------------------------------------------------------
// Evaluation: attacks, saliency, metrics
// ---------------------------------------------------------------------------------------------

/// An evaluation attack at one sweep point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSpec {
    /// The name the spec gave, or the kind's name (`pgd`, `pgd_l2` ...).
    pub name: String,
    pub attack: Attack,
}

impl AttackSpec {
    /// The attack's budget: its eps; for a minimum-norm attack, the largest point of its curve.
    pub fn eps(&self) -> f64 {
        match &self.attack {
            Attack::Fgsm { eps }
            | Attack::Pgd { eps, .. }
            | Attack::Apgd { eps, .. }
            | Attack::ApgdT { eps, .. }
            | Attack::Square { eps, .. }
            | Attack::Fab { eps, .. }
            | Attack::AutoAttack { eps, .. } => *eps,
            Attack::Cw { curve, .. } | Attack::DeepFool { curve, .. } => {
                curve.iter().copied().fold(0.0, f64::max)
            }
        }
    }
    pub fn norm(&self) -> Norm {
        self.attack.norm()
    }
    /// Minimum-norm attacks: the eps points at which robust accuracy is read off the
    /// per-example minimal perturbations. `None` for attacks run at one eps.
    pub fn curve(&self) -> Option<&[f64]> {
        match &self.attack {
            Attack::Cw { curve, .. } | Attack::DeepFool { curve, .. } => Some(curve),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Attack {
    /// Linf only.
    Fgsm { eps: f64 },
    Pgd {
        norm: Norm,
        eps: f64,
        step_size: f64,
        steps: usize,
        random_start: bool,
        restarts: usize,
    },
    Apgd {
        norm: Norm,
        eps: f64,
        loss: ApgdLoss,
        steps: usize,
        restarts: usize,
    },
    Square {
        norm: Norm,
        eps: f64,
        queries: usize,
        p_init: f64,
    },
    /// APGD-T: APGD on the targeted DLR loss, once per target class (the `targets` classes
    /// with the highest clean logits other than the true one), on the examples still robust.
    ApgdT {
        norm: Norm,
        eps: f64,
        steps: usize,
        restarts: usize,
        targets: usize,
    },
    /// FAB (Croce and Hein 2020): untargeted when `targets` is 0, else FAB-T over the
    /// `targets` classes with the highest clean logits.
    Fab {
        norm: Norm,
        eps: f64,
        steps: usize,
        restarts: usize,
        targets: usize,
    },
    /// AutoAttack (Croce and Hein 2020): its components run in order, each on the examples
    /// the earlier ones left robust.
    AutoAttack {
        norm: Norm,
        eps: f64,
        version: AutoAttackVersion,
        components: Vec<AutoAttackComponent>,
    },
    /// Carlini-Wagner L2 (minimum norm), read off at the eps points of `curve`.
    Cw {
        steps: usize,
        binary_steps: usize,
        lr: f64,
        initial_const: f64,
        confidence: f64,
        curve: Vec<f64>,
    },
    /// DeepFool (minimum norm), read off at the eps points of `curve`.
    DeepFool {
        norm: Norm,
        steps: usize,
        overshoot: f64,
        candidates: usize,
        curve: Vec<f64>,
    },
}

impl Attack {
    /// The norm of the attack's budget (FGSM: Linf; CW: L2).
    pub fn norm(&self) -> Norm {
        match self {
            Attack::Fgsm { .. } => Norm::Linf,
            Attack::Cw { .. } => Norm::L2,
            Attack::Pgd { norm, .. }
            | Attack::Apgd { norm, .. }
            | Attack::ApgdT { norm, .. }
            | Attack::Square { norm, .. }
            | Attack::Fab { norm, .. }
            | Attack::AutoAttack { norm, .. }
            | Attack::DeepFool { norm, .. } => *norm,
        }
    }
}

/// AutoAttack's versions (Croce and Hein's `version` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoAttackVersion {
    /// APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries).
    Standard,
    /// APGD-CE and APGD-DLR (5 restarts each), FAB (5 restarts), Square (5000 queries),
    /// APGD-T, FAB-T.
    Plus,
    /// For randomised defences: APGD-CE and APGD-DLR with expectation over 20 draws (EOT).
    Rand,
    /// The components the spec lists.
    Custom,
}

/// One component of AutoAttack, named as in Croce and Hein's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoAttackComponent {
    ApgdCe,
    ApgdDlr,
    ApgdT,
    Fab,
    FabT,
    Square,
}

impl AutoAttackComponent {
    pub const ALL: [AutoAttackComponent; 6] = [
        AutoAttackComponent::ApgdCe,
        AutoAttackComponent::ApgdDlr,
        AutoAttackComponent::ApgdT,
        AutoAttackComponent::Fab,
        AutoAttackComponent::FabT,
        AutoAttackComponent::Square,
    ];
    /// The name Croce and Hein's code prints (`apgd-ce`, `apgd-t`, `fab-t`, `square` ...).
    pub fn name(self) -> &'static str {
        match self {
            AutoAttackComponent::ApgdCe => "apgd-ce",
            AutoAttackComponent::ApgdDlr => "apgd-dlr",
            AutoAttackComponent::ApgdT => "apgd-t",
            AutoAttackComponent::Fab => "fab",
            AutoAttackComponent::FabT => "fab-t",
            AutoAttackComponent::Square => "square",
        }
    }
}

impl AutoAttackVersion {
    /// The components a version runs, in order (`Custom` has none of its own).
    pub fn components(self) -> Vec<AutoAttackComponent> {
        use AutoAttackComponent::*;
        match self {
            AutoAttackVersion::Standard => vec![ApgdCe, ApgdT, FabT, Square],
            AutoAttackVersion::Plus => vec![ApgdCe, ApgdDlr, Fab, Square, ApgdT, FabT],
            AutoAttackVersion::Rand => vec![ApgdCe, ApgdDlr],
            AutoAttackVersion::Custom => Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApgdLoss {
    Ce,
    Dlr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaliencySpec {
    pub name: String,
    pub method: SaliencyMethod,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SaliencyMethod {
    /// d log p_y / dx (signed) or its absolute value.
    Gradient { sign: SaliencySign },
    /// x * d log p_y / dx.
    GradientInput,
    /// (x - x0) * mean_{a} grad(x0 + a (x - x0)), a on `steps` Riemann points.
    IntegratedGradients { steps: usize, baseline: Baseline },
    /// Mean of gradients at x + N(0, sigma^2), sigma in pixel units.
    SmoothGrad {
        samples: usize,
        sigma: f64,
        variant: SmoothGradVariant,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Baseline {
    /// All-zero (black) image.
    Zero,
    /// The dataset's mean pixel.
    Mean,
    /// Uniform random noise image.
    Uniform,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmoothGradVariant {
    Mean,
    Squared,
    VarGrad,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetricSpec {
    CleanAccuracy,
    /// Accuracy under each attack, plus the per-example worst case over all attacks at each eps.
    RobustAccuracy,
    /// Gini index of |saliency| (Chalasani et al. 2020).
    Sparseness,
    /// Entropy of the normalised |saliency| (Bhatt et al. 2020).
    Complexity,
    /// Deletion AUC (Petsiuk et al. 2018), in `steps` steps.
    Deletion {
        steps: usize,
    },
    /// Insertion AUC (Petsiuk et al. 2018), in `steps` steps.
    Insertion {
        steps: usize,
    },
    /// Ismail et al.'s masking accuracy-drop curve at `percents` (0..90 by 10 by default).
    MaskingCurve {
        percents: Vec<u32>,
        fill: Fill,
    },
    /// Yeh et al. 2019: max over `samples` uniform perturbations of radius `radius` of
    /// ||S(x + d) - S(x)|| / ||S(x)||.
    MaxSensitivity {
        radius: f64,
        samples: usize,
    },
    /// Adebayo et al. 2018: cascading randomisation, similarity per layer.
    Randomization,
    /// Etmann et al. 2019: |<x, g>| / ||g||.
    Alignment,
    /// Connectedness of the top `top` percent of each map's pixels: the share of them in the
    /// largest 8-connected component (1 for one blob, 1/m for m scattered pixels).
    Connectedness {
        top: u32,
    },
    /// Hooker et al. 2019: remove the top-k% pixels of every training and test image, retrain
    /// from scratch, test accuracy.
    Roar(RetrainSpec),
    /// Hooker et al. 2019: keep only the top-k% pixels (the rest replaced), retrain, test accuracy.
    Kar(RetrainSpec),
}

/// The settings of ROAR and KAR (remove / keep and retrain).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrainSpec {
    /// The percentages k of pixels removed (ROAR) or kept (KAR), increasing, in (0, 100).
    pub percents: Vec<u32>,
    /// Retraining runs per point (seeds 0..seeds). Hooker et al. use 5.
    pub seeds: usize,
    /// Epochs of each retraining; `None`: the run's own.
    pub epochs: Option<usize>,
    /// Also retrain on a random ranking of the pixels (the baseline).
    pub random: bool,
}

impl MetricSpec {
    pub fn name(&self) -> &'static str {
        match self {
            MetricSpec::CleanAccuracy => "clean_accuracy",
            MetricSpec::RobustAccuracy => "robust_accuracy",
            MetricSpec::Sparseness => "sparseness",
            MetricSpec::Complexity => "complexity",
            MetricSpec::Deletion { .. } => "deletion",
            MetricSpec::Insertion { .. } => "insertion",
            MetricSpec::MaskingCurve { .. } => "masking_curve",
            MetricSpec::MaxSensitivity { .. } => "max_sensitivity",
            MetricSpec::Randomization => "randomization",
            MetricSpec::Alignment => "alignment",
            MetricSpec::Connectedness { .. } => "connectedness",
            MetricSpec::Roar(_) => "roar",
            MetricSpec::Kar(_) => "kar",
        }
    }
}

/// How much of the test set each kind of evaluation uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    /// Batch size for evaluation. Default 500.
    pub batch: usize,
    /// Test examples attacked (the first N). Default 1000.
    pub attack_samples: usize,
    /// Test examples for saliency metrics. Default 500.
    pub saliency_samples: usize,
    /// Seed for attack random starts and metric noise. Default 0.
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSpec {
    /// Output directory; default `reports/<experiment name>`.
    pub dir: String,
    pub tables: Vec<String>,
    pub figures: Vec<String>,
    /// Number of test images whose saliency maps are saved for the report. Default 8.
    pub images: usize,
}

impl Experiment {
    /// Counts of what the experiment implies: trained models, (model, attack point) pairs, and
    /// (model, saliency method) pairs.
    pub fn counts(&self) -> (usize, usize, usize) {
        let runs = self.runs.len();
        (runs, runs * self.attacks.len(), runs * self.saliency.len())
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
