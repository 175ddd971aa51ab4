//! Helpers shared by the attack tests (`attacks.rs`, `attack_fab.rs`, `attack_minnorm.rs`):
//! the CPU device, seeded generators, a linear model on 1x4x4 images and a tiny random CNN.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_engine::losses::argmax_rows;
use salient_ir::{Layer, ModelDef, Shape as IrShape};
use salient_nn::layers::infer::model_def;
use salient_nn::{Mode, Network};

pub type Dev = Cpu;
pub type Mat = Tensor<(usize, usize), f32, Dev>;

/// Pixels of [`linear_net`]'s 1x4x4 image.
pub const N: usize = 16;

pub fn dev() -> Dev {
    Cpu::seed_from_u64(0)
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A 1x4x4 image flattened into one dense layer: logits z = W^T x + b, W stored (16, classes)
/// row-major (`w[i * classes + k]` multiplies pixel i into logit k).
pub fn linear_net(w: &[f32], b: &[f32]) -> Network<Dev> {
    let classes = b.len();
    let def = model_def(
        "lin",
        IrShape::Image { c: 1, h: 4, w: 4 },
        vec![Layer::Flatten, Layer::Dense { out: classes }],
    )
    .unwrap();
    let mut net = Network::new(&def, &[0.0], &[1.0], 0, &dev()).unwrap();
    net.params_mut()[0].value.copy_from(w);
    net.params_mut()[1].value.copy_from(b);
    net
}

/// A small random CNN on 2x6x6 images with 4 classes, with dropout (eval mode must ignore it).
pub fn tiny_cnn(seed: u64) -> Network<Dev> {
    let def = model_def(
        "cnn",
        IrShape::Image { c: 2, h: 6, w: 6 },
        vec![
            Layer::Conv {
                out: 4,
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2 },
            Layer::Flatten,
            Layer::Dropout { p: 0.5 },
            Layer::Dense { out: 4 },
        ],
    )
    .unwrap();
    Network::new(&def, &[0.5, 0.4], &[0.3, 0.2], seed, &dev()).unwrap()
}

/// Eval-mode logits of every row of `x`.
pub fn logits(net: &mut Network<Dev>, x: &Mat) -> Vec<f32> {
    net.forward(x.clone(), Mode::Eval).as_vec()
}

/// Eval-mode predicted class of every row of `x` (first maximum).
pub fn predictions(net: &mut Network<Dev>, x: &Mat) -> Vec<usize> {
    let classes = net.def().output.numel();
    argmax_rows(&logits(net, x), classes)
}

/// A ReLU MLP on 1 x side x side images: flatten, dense 32, ReLU, dense `classes`.
pub fn mlp_def(side: usize, classes: usize) -> ModelDef {
    model_def(
        "mlp",
        IrShape::Image {
            c: 1,
            h: side,
            w: side,
        },
        vec![
            Layer::Flatten,
            Layer::Dense { out: 32 },
            Layer::Relu,
            Layer::Dense { out: classes },
        ],
    )
    .unwrap()
}

/// A committed reference fixture, `tests/fixtures/<rel>`: JSON holding the weights `w1`, `b1`,
/// `w2`, `b2` of a 16-32-10 ReLU MLP on 1x4x4 images (Dense weights stored (in, out)), the
/// images `x` (rows of [`N`] pixels), their `labels` and the reference's own keys.
pub struct Fixture {
    pub json: serde_json::Value,
}

impl Fixture {
    pub fn load(rel: &str) -> Fixture {
        let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the committed fixture {path}: {e}"));
        Fixture {
            json: serde_json::from_str(&text).unwrap(),
        }
    }

    /// The numbers under `key`, as f32.
    pub fn floats(&self, key: &str) -> Vec<f32> {
        self.json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    }

    pub fn labels(&self) -> Vec<usize> {
        self.json["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    }

    /// The images, one row each.
    pub fn x(&self) -> Mat {
        let x = self.floats("x");
        let rows = x.len() / N;
        dev().tensor_from_vec(x, (rows, N))
    }

    /// The fixture's MLP with its weights.
    pub fn mlp(&self) -> Network<Dev> {
        let mut net = Network::new(&mlp_def(4, 10), &[0.0], &[1.0], 0, &dev()).unwrap();
        for (i, k) in ["w1", "b1", "w2", "b2"].iter().enumerate() {
            net.params_mut()[i].value.copy_from(&self.floats(k));
        }
        net
    }
}
