//! A network compiled from the IR's [`ModelDef`]: input normalisation, then the layers in order.
//!
//! The network owns its parameters (flat [`Param`]s named like the equivalent PyTorch
//! `nn.Sequential` state dict, `layers.{i}.weight` ...), its compiled layers, and a ChaCha8
//! generator for dropout, so that training is bit-identical for the same seed.

use crate::layers::{build_error, Batch, Ctx, Layer};
use crate::{Mode, NnError, Param};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use salient_ir::{ModelDef, Shape};

/// ChaCha stream of the initialisation generator (the dropout generator uses stream 1;
/// `reinit_layer(i, seed)` uses stream 2 + i).
const INIT_STREAM: u64 = 0;
const DROPOUT_STREAM: u64 = 1;

/// The fixed first op `(x - mean) / std` per channel, as `x * scale + shift` over the
/// channels-last features; `None` for the identity (mean 0, std 1).
#[derive(Clone, Debug)]
struct Normalize<D: Device<f32>> {
    scale: Tensor<(usize,), f32, D>,
    shift: Tensor<(usize,), f32, D>,
}

#[derive(Clone, Debug)]
pub struct Network<D: Device<f32>> {
    def: ModelDef,
    params: Vec<Param<D>>,
    layers: Vec<Layer<D>>,
    normalize: Option<Normalize<D>>,
    dropout_rng: ChaCha8Rng,
    portable: bool,
    input_grad: bool,
    param_grad: bool,
    dev: D,
}

impl<D: Device<f32>> Network<D> {
    /// Build from the checked IR; `mean`/`std` per channel (or one value for all channels)
    /// become the first, fixed op `(x - mean) / std`. Weights are initialised like PyTorch's
    /// defaults (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv/dense weights and biases) from a
    /// ChaCha8 generator seeded with `seed`, layer by layer in order: deterministic.
    pub fn new(
        def: &ModelDef,
        mean: &[f32],
        std: &[f32],
        seed: u64,
        dev: &D,
    ) -> Result<Self, NnError> {
        let err = |reason: String| NnError::Build {
            model: def.name.clone(),
            reason,
        };
        let normalize = Self::normalize(def.input, mean, std, dev).map_err(err)?;
        let mut params = Vec::new();
        let mut layers = Vec::with_capacity(def.layers.len());
        let mut shape = def.input;
        for (i, ld) in def.layers.iter().enumerate() {
            if ld.input != shape {
                return Err(build_error(
                    &def.name,
                    i,
                    ld,
                    format!(
                        "expects input {} but the previous layer gives {}",
                        ld.input, shape
                    ),
                ));
            }
            let layer = Layer::build(ld, &format!("layers.{i}"), &mut params, dev)
                .map_err(|r| build_error(&def.name, i, ld, r))?;
            layers.push(layer);
            shape = ld.output;
        }
        if shape != def.output {
            return Err(err(format!(
                "the last layer gives {shape} but the model declares output {}",
                def.output
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(INIT_STREAM);
        for l in &layers {
            l.reset(&mut params, &mut rng);
        }
        let trainable: usize = params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.numel())
            .sum();
        if trainable != def.params {
            return Err(err(format!(
                "the layers hold {trainable} trainable parameters but the definition counts {}",
                def.params
            )));
        }
        let mut dropout_rng = ChaCha8Rng::seed_from_u64(seed);
        dropout_rng.set_stream(DROPOUT_STREAM);
        Ok(Self {
            def: def.clone(),
            params,
            layers,
            normalize,
            dropout_rng,
            portable: false,
            input_grad: true,
            param_grad: true,
            dev: dev.clone(),
        })
    }

    fn normalize(
        input: Shape,
        mean: &[f32],
        std: &[f32],
        dev: &D,
    ) -> Result<Option<Normalize<D>>, String> {
        let (channels, numel) = match input {
            Shape::Image { c, .. } => (c, input.numel()),
            Shape::Flat(n) => (1, n),
        };
        for (what, v) in [("mean", mean), ("std", std)] {
            if v.len() != channels && v.len() != 1 {
                return Err(format!(
                    "normalisation {what} has {} values but the input {input} has {channels} channel(s)",
                    v.len()
                ));
            }
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("normalisation std {s} must be positive and finite"));
        }
        if mean.iter().all(|m| *m == 0.0) && std.iter().all(|s| *s == 1.0) {
            return Ok(None);
        }
        let at = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i % channels] };
        // Channels-last: feature i belongs to channel i % c.
        let scale: Vec<f32> = (0..numel).map(|i| 1.0 / at(std, i)).collect();
        let shift: Vec<f32> = (0..numel).map(|i| -at(mean, i) / at(std, i)).collect();
        Ok(Some(Normalize {
            scale: dev.tensor_from_vec(scale, (numel,)),
            shift: dev.tensor_from_vec(shift, (numel,)),
        }))
    }

    pub fn def(&self) -> &ModelDef {
        &self.def
    }

    /// x: (B, H*W*C), pixels in [0, 1], channels-last. Returns logits (B, classes).
    /// Train mode: dropout active, batchnorm uses batch statistics and updates running stats.
    pub fn forward<T: Tape<f32, D> + Merge<NoneTape>>(
        &mut self,
        x: Batch<D, T>,
        mode: Mode,
    ) -> Batch<D, T> {
        self.run(x, mode, &[]).0
    }

    /// Same as [`Network::forward`], also returning the outputs of the top-level layers at
    /// indices `taps` (into `def.layers`, in the order given), each (B, numel) in channels-last
    /// order, without tape but being the very tensors of the graph (same ids): re-attach the
    /// tape (`let (l, tape) = logits.split_tape(); tap.put_tape(tape)`) to build a penalty on
    /// them whose gradient flows into the parameters and the input.
    ///
    /// Panics if a tap index is not below `def.layers.len()` (a caller bug: resolve layer
    /// names with [`Network::layer_index`]).
    pub fn forward_taps<T: Tape<f32, D> + Merge<NoneTape>>(
        &mut self,
        x: Batch<D, T>,
        mode: Mode,
        taps: &[usize],
    ) -> (Batch<D, T>, Vec<Batch<D, NoneTape>>) {
        let n = self.layers.len();
        if let Some(bad) = taps.iter().find(|&&t| t >= n) {
            panic!(
                "forward_taps: layer index {bad} out of range (model `{}` has {n} layers)",
                self.def.name
            );
        }
        self.run(x, mode, taps)
    }

    fn run<T: Tape<f32, D>>(
        &mut self,
        x: Batch<D, T>,
        mode: Mode,
        taps: &[usize],
    ) -> (Batch<D, T>, Vec<Batch<D, NoneTape>>) {
        let shape = *x.shape();
        assert_eq!(
            shape.1,
            self.def.input.numel(),
            "model `{}` expects {} features per example ({}), got {}",
            self.def.name,
            self.def.input.numel(),
            self.def.input,
            shape.1
        );
        let normalize = |x: Batch<D, T>| match &self.normalize {
            Some(n) => {
                x * n.scale.clone().broadcast_like::<_, Axis<0>>(&shape)
                    + n.shift.clone().broadcast_like::<_, Axis<0>>(&shape)
            }
            None => x,
        };
        let mut y = if self.input_grad {
            normalize(x)
        } else {
            // The normalisation runs off the tape, so x gets no gradient entry and no backward
            // work is spent on it; the tape continues from the normalised input.
            let (x, tape) = x.split_tape();
            let (y, _) = normalize(x.put_tape(T::default())).split_tape();
            y.put_tape(tape)
        };
        let mut tapped: Vec<Option<Batch<D, NoneTape>>> = vec![None; taps.len()];
        let mut ctx = Ctx {
            params: &mut self.params,
            mode,
            rng: &mut self.dropout_rng,
            portable: self.portable,
            input_grad: self.input_grad,
            param_grad: self.param_grad,
        };
        let mut i = 0;
        while i < self.layers.len() {
            // A conv + relu (+ 2x2 max pool) chain runs as one op; a layer whose output is
            // tapped ends the chain.
            let (head, rest) = self.layers.split_at_mut(i + 1);
            let mut open = 0;
            while open < rest.len().min(2) && !taps.contains(&(i + open)) {
                open += 1;
            }
            let (out, fused) = head[i].forward_fused(y, &rest[..open], &mut ctx);
            y = out;
            let last = i + fused;
            for j in i..=last {
                if taps.contains(&j) {
                    let (plain, tape) = y.split_tape();
                    for (slot, _) in tapped.iter_mut().zip(taps).filter(|(_, &t)| t == j) {
                        *slot = Some(plain.clone());
                    }
                    y = plain.put_tape(tape);
                }
            }
            i = last + 1;
        }
        (
            y,
            tapped
                .into_iter()
                .map(|t| t.expect("every tap index was visited"))
                .collect(),
        )
    }

    /// Index in `def.layers` of the top-level layer called `name` (e.g. `conv2`).
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.def.layers.iter().position(|l| l.name == name)
    }

    pub fn params(&self) -> &[Param<D>] {
        &self.params
    }

    /// All parameters, including batchnorm buffers (`trainable == false`).
    pub fn params_mut(&mut self) -> &mut [Param<D>] {
        &mut self.params
    }

    /// Number of trainable scalars; equals `def().params`.
    pub fn num_params(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.numel())
            .sum()
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Re-initialise the parameters of top-level layer `index` (for the randomisation sanity
    /// check), like PyTorch's `reset_parameters`, from a generator seeded with `seed` on a
    /// stream specific to `index`. Batchnorm goes back to gamma 1, beta 0, running stats 0/1.
    /// Layers without parameters, and indices out of range, are left alone.
    pub fn reinit_layer(&mut self, index: usize, seed: u64) {
        if let Some(layer) = self.layers.get(index) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(2 + index as u64);
            layer.reset(&mut self.params, &mut rng);
        }
    }

    /// Indices into [`Network::params`] of the parameters and buffers of top-level layer `index`.
    pub fn layer_params(&self, index: usize) -> Vec<usize> {
        self.layers
            .get(index)
            .map(|l| l.param_indices())
            .unwrap_or_default()
    }

    /// Restart the dropout generator from `seed` (e.g. at the start of each training run).
    pub fn reseed_dropout(&mut self, seed: u64) {
        self.dropout_rng = ChaCha8Rng::seed_from_u64(seed);
        self.dropout_rng.set_stream(DROPOUT_STREAM);
    }

    /// Whether the forward pass must make d loss / d x available (default true). With
    /// `false`, for plain training where only parameter gradients are read, the input's tape
    /// is moved past the normalisation and the layers before the first one with parameters
    /// skip their input gradient (on the CPU the first convolution skips its dX GEMM and
    /// col2im). The input then has no entry in the gradients: `grads.get(&x)` panics in dfdx
    /// (keep the default whenever the input gradient is read: attacks, saliency,
    /// input-gradient penalties). Parameter gradients are identical either way.
    pub fn set_input_grad(&mut self, input_grad: bool) {
        self.input_grad = input_grad;
    }

    /// Whether the input gradient is computed (see [`Network::set_input_grad`]).
    pub fn input_grad(&self) -> bool {
        self.input_grad
    }

    /// Whether the backward pass computes the parameters' gradients (default true). With
    /// `false`, for passes that only read d loss / d x (attacks, saliency, the regimes' inner
    /// passes, like PyTorch's `torch.autograd.grad(loss, x)`), the CPU convolution and dense
    /// layer skip their dW and db GEMMs and eval-mode batchnorm keeps gamma and beta off the
    /// tape: the parameters may then have no entry in the gradients (`grads.get(&p.value)`
    /// panics in dfdx; never step an optimizer on such gradients). The input gradient is
    /// bit-identical either way. The portable (CUDA) ops still compute every gradient.
    pub fn set_param_grad(&mut self, param_grad: bool) {
        self.param_grad = param_grad;
    }

    /// Whether parameter gradients are computed (see [`Network::set_param_grad`]).
    pub fn param_grad(&self) -> bool {
        self.param_grad
    }

    /// Force the portable spatial ops (gather-based im2col and pooling, what CUDA runs) even on
    /// the CPU. For tests and benchmarks; the results agree with the CPU kernels.
    pub fn set_portable(&mut self, portable: bool) {
        self.portable = portable;
    }
}
