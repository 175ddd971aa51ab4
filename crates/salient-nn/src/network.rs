//! A network compiled from the IR's [`ModelDef`]: input normalisation, then the layers in order.
//!
//! The network owns its parameters (flat [`Param`]s named like the equivalent PyTorch
//! `nn.Sequential` state dict, `layers.{i}.weight` ...), its compiled layers, and a ChaCha8
//! generator for dropout, so that training is bit-identical for the same seed.

use crate::layers::{build_error, cpu_op, Batch, Ctx, Layer};
use crate::{Mode, NnError, Param};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use salient_ir::{ModelDef, Shape};
use std::sync::Arc;

/// ChaCha stream of the initialisation generator (the dropout generator uses stream 1;
/// `reinit_layer(i, seed)` uses stream 2 + i).
const INIT_STREAM: u64 = 0;
const DROPOUT_STREAM: u64 = 1;

/// The fixed first op `(x - mean) / std` per channel, as `x * scale + shift` over the
/// channels-last features; `None` for the identity (mean 0, std 1).
///
/// y[b, i] = x[b, i] * scale[i] + shift[i],  dL/dx[b, i] = scale[i] * dL/dy[b, i].
/// On the CPU (unless the network is `portable`) this is one op over the rows in parallel
/// ([`affine_rows`], [`scale_rows_into`]); elsewhere two broadcast dfdx ops. Both round the
/// product, then the sum (no fused multiply-add): bit-identical, forward and backward.
#[derive(Clone, Debug)]
struct Normalize<D: Device<f32>> {
    scale: Tensor<(usize,), f32, D>,
    shift: Tensor<(usize,), f32, D>,
    /// Host copies of `scale` and `shift` for the CPU op.
    host_scale: Arc<[f32]>,
    host_shift: Arc<[f32]>,
}

impl<D: Device<f32>> Normalize<D> {
    /// x * scale + shift per row; `fast` selects the CPU op (ignored unless the device is the
    /// CPU).
    fn apply<T: Tape<f32, D>>(&self, x: Batch<D, T>, fast: bool) -> Batch<D, T> {
        let shape = *x.shape();
        if fast && cpu_op::is_cpu::<D>() {
            let scale = self.host_scale.clone();
            return cpu_op::cpu_op(
                x,
                shape,
                |x, y| affine_rows(x, y, &self.host_scale, &self.host_shift),
                move |_, gy, gx| scale_rows_into(gy, gx, &scale),
            );
        }
        x * self.scale.clone().broadcast_like::<_, Axis<0>>(&shape)
            + self.shift.clone().broadcast_like::<_, Axis<0>>(&shape)
    }
}

/// Rows in one rayon task of the normalisation kernels.
const NORMALIZE_ROWS: usize = 16;

/// Forward kernel: y[r, i] = x[r, i] * scale[i] + shift[i] for every row r of `scale.len()`.
fn affine_rows(x: &[f32], y: &mut [f32], scale: &[f32], shift: &[f32]) {
    let f = scale.len();
    if f == 0 {
        return;
    }
    y.par_chunks_mut(f * NORMALIZE_ROWS)
        .zip(x.par_chunks(f * NORMALIZE_ROWS))
        .for_each(|(y, x)| {
            for (y, x) in y.chunks_exact_mut(f).zip(x.chunks_exact(f)) {
                for (((y, &x), &s), &t) in y.iter_mut().zip(x).zip(scale).zip(shift) {
                    *y = x * s + t;
                }
            }
        });
}

/// Backward kernel: gx[r, i] += scale[i] * gy[r, i].
fn scale_rows_into(gy: &[f32], gx: &mut [f32], scale: &[f32]) {
    let f = scale.len();
    if f == 0 {
        return;
    }
    gx.par_chunks_mut(f * NORMALIZE_ROWS)
        .zip(gy.par_chunks(f * NORMALIZE_ROWS))
        .for_each(|(gx, gy)| {
            for (gx, gy) in gx.chunks_exact_mut(f).zip(gy.chunks_exact(f)) {
                for ((gx, &gy), &s) in gx.iter_mut().zip(gy).zip(scale) {
                    *gx += s * gy;
                }
            }
        });
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
            scale: dev.tensor_from_vec(scale.clone(), (numel,)),
            shift: dev.tensor_from_vec(shift.clone(), (numel,)),
            host_scale: scale.into(),
            host_shift: shift.into(),
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
        let fast = !self.portable && cpu_op::is_cpu::<D>();
        let normalize = |x: Batch<D, T>| match &self.normalize {
            Some(n) => n.apply(x, fast),
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
            exact_ties: self.input_grad,
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

    /// The dropout generator as it is now (a checkpoint that resumes training saves it).
    pub fn dropout_rng(&self) -> &ChaCha8Rng {
        &self.dropout_rng
    }

    /// Put back a dropout generator saved with [`Network::dropout_rng`].
    pub fn set_dropout_rng(&mut self, rng: ChaCha8Rng) {
        self.dropout_rng = rng;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn cpu_normalisation_is_bit_identical_to_the_broadcast_ops() {
        let dev = Cpu::default();
        let input = Shape::Image { c: 3, h: 2, w: 3 };
        let n = Network::normalize(input, &[0.1, 0.5, 0.9], &[0.3, 0.25, 0.7], &dev)
            .unwrap()
            .expect("not the identity");
        // 37 rows: not a multiple of the rows per task.
        let (b, f) = (37, input.numel());
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let xv: Vec<f32> = (0..b * f).map(|_| rng.gen()).collect();
        let wv: Vec<f32> = (0..b * f).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let run = |fast: bool| {
            let x = dev.tensor_from_vec(xv.clone(), (b, f));
            let w = dev.tensor_from_vec(wv.clone(), (b, f));
            let y = n.apply(x.leaky_trace(), fast);
            let yv = y.retaped::<NoneTape>().as_vec();
            let grads = (y * w).sum().backward();
            (yv, grads.get(&x).as_vec())
        };
        let (y_ref, g_ref) = run(false);
        let (y, g) = run(true);
        assert_eq!(bits(&y), bits(&y_ref));
        assert_eq!(bits(&g), bits(&g_ref));
        // Feature i of a row is channel i % 3: (x - mean) / std up to rounding.
        let (mean, std) = ([0.1f32, 0.5, 0.9], [0.3f32, 0.25, 0.7]);
        for (i, (y, x)) in y.iter().zip(&xv).enumerate() {
            let ch = i % f % 3;
            assert!((y - (x - mean[ch]) / std[ch]).abs() < 1e-5);
            assert_eq!(g[i], wv[i] * (1.0 / std[ch]));
        }
    }
}
