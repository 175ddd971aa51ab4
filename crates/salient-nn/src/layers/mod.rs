//! Runtime-shaped layers on dfdx, compiled from the IR's [`LayerDef`]s.
//!
//! Every layer maps a [`Batch`] `(B, features)` to a `Batch`; images are stored channels-last,
//! features in (h, w, c) order, and each layer knows its input shape from the IR and reshapes
//! internally (free for contiguous tensors). Parameters live in the network's flat list of
//! [`Param`]s; a layer holds indices into it and, in its forward pass, takes
//! `param.value.retaped::<T>()` and reshapes it, so gradients land on the flat tensor's id.
//! See `docs/layers.md` for every layer's formula, layout and initialisation.

pub mod activation;
pub mod batchnorm;
pub mod conv;
pub mod conv_c1;
pub mod conv_cpu;
pub mod cpu_op;
pub mod dense;
pub mod dense_cpu;
pub mod dropout;
pub mod flatten;
pub mod gather;
pub mod infer;
pub mod init;
pub mod kernels;
pub mod pool;
pub mod residual;
pub mod winograd;

use crate::{Mode, NnError, Param};
use activation::Activation;
use batchnorm::BatchNorm;
use conv::Conv;
use conv_cpu::Act;
use dense::Dense;
use dfdx::prelude::*;
use dropout::Dropout;
use flatten::Flatten;
use pool::Pool;
use rand_chacha::ChaCha8Rng;
use residual::Residual;
use salient_ir::{Layer as IrLayer, LayerDef, Shape};

/// Activations of a batch: (B, features), features in channels-last order (h, w, c).
pub type Batch<D, T> = Tensor<(usize, usize), f32, D, T>;

/// What a forward pass needs besides the input: the parameters (batchnorm updates its running
/// statistics in them), the mode, the dropout generator, whether to force the portable
/// (gather-based) spatial ops even on the CPU, whether the current layer's input needs a
/// gradient and whether parameter gradients are wanted.
pub struct Ctx<'a, D: Device<f32>> {
    pub params: &'a mut [Param<D>],
    pub mode: Mode,
    pub rng: &'a mut ChaCha8Rng,
    pub portable: bool,
    /// Whether d loss / d (this layer's input) is needed. False when the caller disabled the
    /// input gradient ([`crate::Network::set_input_grad`]), until the first layer with
    /// parameters: after each such layer [`Layer::forward`] sets it to
    /// `input_grad || param_grad`. Layers may then skip that gradient (the CPU convolution and
    /// dense layer skip dX).
    pub input_grad: bool,
    /// Whether the parameters need gradients ([`crate::Network::set_param_grad`]). When false
    /// (input-gradient passes), the CPU convolution and dense layer skip dW and db, and
    /// eval-mode batchnorm on the CPU puts gamma and beta off the tape.
    pub param_grad: bool,
    /// Whether the CPU Winograd convolution gives bit-identical outputs to positions with
    /// identical receptive fields, so that a max pooling after it sees exact ties as exact
    /// ties (`winograd::equal_fields`, docs/layers.md "Exact ties after Winograd"). The
    /// network sets it to its input-gradient switch: on for every pass whose product is
    /// d/dx (saliency maps, attacks, the regimes' inner passes), off for the training passes,
    /// which then run exactly as before.
    pub exact_ties: bool,
}

impl<D: Device<f32>> Ctx<'_, D> {
    /// Whether the CPU slice kernels apply (device is `Cpu` and portable ops are not forced).
    pub fn fast_cpu(&self) -> bool {
        !self.portable && cpu_op::is_cpu::<D>()
    }

    /// The gradients the current layer's backward pass must produce.
    pub fn needs(&self) -> dense_cpu::Needs {
        dense_cpu::Needs {
            input: self.input_grad,
            params: self.param_grad,
        }
    }

    /// After a layer with parameters: its output needs a gradient if its input did or if its
    /// parameters do.
    fn passed_params(&mut self) {
        self.input_grad |= self.param_grad;
    }
}

/// One compiled layer.
#[derive(Clone, Debug)]
pub enum Layer<D: Device<f32>> {
    Conv(Conv<D>),
    Pool(Pool<D>),
    Dense(Dense),
    Activation(Activation),
    Flatten(Flatten),
    Dropout(Dropout),
    BatchNorm(BatchNorm),
    Residual(Residual<D>),
}

fn image(s: Shape) -> Option<(usize, usize, usize)> {
    match s {
        Shape::Image { c, h, w } => Some((c, h, w)),
        Shape::Flat(_) => None,
    }
}

/// Output side of a sliding window, or None if the window does not fit.
fn out_side(n: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    if k == 0 || stride == 0 || n + 2 * pad < k {
        return None;
    }
    Some((n + 2 * pad - k) / stride + 1)
}

impl<D: Device<f32>> Layer<D> {
    /// Compiles `def` (its parameters named `{prefix}.weight` ...), registering its parameters
    /// in `params` (zero-filled; call [`Layer::reset`] to initialise). `Err(reason)` when the
    /// definition is inconsistent (the checker should have caught it).
    pub fn build(
        def: &LayerDef,
        prefix: &str,
        params: &mut Vec<Param<D>>,
        dev: &D,
    ) -> Result<Self, String> {
        let want = |got: Shape| {
            if got == def.output {
                Ok(())
            } else {
                Err(format!(
                    "output shape {} does not match the declared {}",
                    got, def.output
                ))
            }
        };
        let needs_image =
            || image(def.input).ok_or_else(|| format!("needs an image input, found {}", def.input));
        let layer = match &def.kind {
            IrLayer::Conv {
                out,
                kernel,
                stride,
                padding,
            } => {
                let (c, h, w) = needs_image()?;
                let ho = out_side(h, *kernel, *stride, *padding);
                let wo = out_side(w, *kernel, *stride, *padding);
                let (Some(ho), Some(wo)) = (ho, wo) else {
                    return Err(format!(
                        "kernel {kernel} (stride {stride}, padding {padding}) does not fit input {}",
                        def.input
                    ));
                };
                want(Shape::Image {
                    c: *out,
                    h: ho,
                    w: wo,
                })?;
                Layer::Conv(Conv::new(
                    (c, h, w),
                    *out,
                    *kernel,
                    *stride,
                    *padding,
                    true,
                    prefix,
                    params,
                    dev,
                ))
            }
            IrLayer::MaxPool { size, stride } | IrLayer::AvgPool { size, stride } => {
                let (c, h, w) = needs_image()?;
                let (Some(ho), Some(wo)) = (
                    out_side(h, *size, *stride, 0),
                    out_side(w, *size, *stride, 0),
                ) else {
                    return Err(format!(
                        "window {size} (stride {stride}) does not fit input {}",
                        def.input
                    ));
                };
                want(Shape::Image { c, h: ho, w: wo })?;
                let max = matches!(def.kind, IrLayer::MaxPool { .. });
                Layer::Pool(Pool::new((c, h, w), *size, *stride, max))
            }
            IrLayer::Dense { out } => {
                let Shape::Flat(inp) = def.input else {
                    return Err(format!(
                        "needs a flat input, found {} (add a flatten)",
                        def.input
                    ));
                };
                want(Shape::Flat(*out))?;
                Layer::Dense(Dense::new(inp, *out, prefix, params, dev))
            }
            IrLayer::Relu => Self::activation(def, Activation::Relu)?,
            IrLayer::LeakyRelu { slope } => Self::activation(def, Activation::LeakyRelu(*slope))?,
            IrLayer::Tanh => Self::activation(def, Activation::Tanh)?,
            IrLayer::Sigmoid => Self::activation(def, Activation::Sigmoid)?,
            IrLayer::Flatten => {
                want(Shape::Flat(def.input.numel()))?;
                Layer::Flatten(Flatten {
                    image: image(def.input),
                })
            }
            IrLayer::Dropout { p } => {
                if !(0.0..1.0).contains(p) {
                    return Err(format!("dropout p = {p} is outside [0, 1)"));
                }
                want(def.input)?;
                Layer::Dropout(Dropout { p: *p })
            }
            IrLayer::BatchNorm { momentum, eps } => {
                if !eps.is_finite() || *eps <= 0.0 || !(0.0..=1.0).contains(momentum) {
                    return Err(format!("batchnorm needs eps > 0 and momentum in [0, 1], found eps {eps}, momentum {momentum}"));
                }
                want(def.input)?;
                let c = match def.input {
                    Shape::Image { c, .. } => c,
                    Shape::Flat(n) => n,
                };
                Layer::BatchNorm(BatchNorm::new(c, *momentum, *eps, prefix, params, dev))
            }
            IrLayer::Residual { body, projection } => {
                let mut layers = Vec::with_capacity(body.len());
                let mut shape = def.input;
                for (j, inner) in body.iter().enumerate() {
                    if inner.input != shape {
                        return Err(format!(
                            "body layer {j} (`{}`) expects input {} but receives {}",
                            inner.name, inner.input, shape
                        ));
                    }
                    let layer = Self::build(inner, &format!("{prefix}.body.{j}"), params, dev)
                        .map_err(|e| format!("body layer {j} (`{}`): {e}", inner.name))?;
                    layers.push(layer);
                    shape = inner.output;
                }
                want(shape)?;
                let shortcut = match projection {
                    None if shape == def.input => None,
                    None => {
                        return Err(format!(
                            "body maps {} to {} but there is no projection on the shortcut",
                            def.input, shape
                        ))
                    }
                    Some(p) => {
                        let (c, h, w) = needs_image()?;
                        let projected =
                            match (out_side(h, 1, p.stride, 0), out_side(w, 1, p.stride, 0)) {
                                (Some(ho), Some(wo)) => Some(Shape::Image {
                                    c: p.out,
                                    h: ho,
                                    w: wo,
                                }),
                                _ => None,
                            };
                        if projected != Some(shape) {
                            return Err(format!(
                                "projection (out {}, stride {}) of input {} does not give the body's output {}",
                                p.out, p.stride, def.input, shape
                            ));
                        }
                        let prefix = format!("{prefix}.shortcut");
                        Some(Conv::new(
                            (c, h, w),
                            p.out,
                            1,
                            p.stride,
                            0,
                            false,
                            &prefix,
                            params,
                            dev,
                        ))
                    }
                };
                Layer::Residual(Residual {
                    body: layers,
                    shortcut,
                })
            }
        };
        Ok(layer)
    }

    fn activation(def: &LayerDef, a: Activation) -> Result<Self, String> {
        if def.output != def.input {
            return Err(format!(
                "output shape {} does not match the input {}",
                def.output, def.input
            ));
        }
        Ok(Layer::Activation(a))
    }

    /// (Re)initialises this layer's parameters like PyTorch's `reset_parameters`, drawing from
    /// `rng` in parameter order (depth-first for residual blocks, shortcut last).
    pub fn reset(&self, params: &mut [Param<D>], rng: &mut ChaCha8Rng) {
        match self {
            Layer::Conv(c) => c.reset(params, rng),
            Layer::Dense(d) => d.reset(params, rng),
            Layer::BatchNorm(b) => b.reset(params),
            Layer::Residual(r) => {
                for l in &r.body {
                    l.reset(params, rng);
                }
                if let Some(s) = &r.shortcut {
                    s.reset(params, rng);
                }
            }
            Layer::Pool(_) | Layer::Activation(_) | Layer::Flatten(_) | Layer::Dropout(_) => {}
        }
    }

    /// Indices (into the network's parameter list) of every parameter and buffer of this layer.
    pub fn param_indices(&self) -> Vec<usize> {
        match self {
            Layer::Conv(c) => c.param_indices(),
            Layer::Dense(d) => vec![d.weight, d.bias],
            Layer::BatchNorm(b) => b.param_indices(),
            Layer::Residual(r) => {
                let mut v: Vec<usize> = r.body.iter().flat_map(|l| l.param_indices()).collect();
                if let Some(s) = &r.shortcut {
                    v.extend(s.param_indices());
                }
                v
            }
            Layer::Pool(_) | Layer::Activation(_) | Layer::Flatten(_) | Layer::Dropout(_) => vec![],
        }
    }

    pub fn forward<T: Tape<f32, D>>(&mut self, x: Batch<D, T>, ctx: &mut Ctx<D>) -> Batch<D, T> {
        let y = self.forward_inner(x, ctx);
        if self.has_params() {
            ctx.passed_params();
        }
        y
    }

    /// Runs this layer and, on the CPU, the layers of `next` that fuse into it: a convolution
    /// followed by relu runs as one op, and followed by relu then a 2x2 max pooling of stride 2
    /// as one op too. Returns the output and how many layers of `next` were consumed. The
    /// caller passes in `next` only layers whose own outputs nobody asked to see.
    pub fn forward_fused<T: Tape<f32, D>>(
        &mut self,
        x: Batch<D, T>,
        next: &[Layer<D>],
        ctx: &mut Ctx<D>,
    ) -> (Batch<D, T>, usize) {
        match self {
            Layer::Conv(c) if Self::fuses_relu(next.first()) && ctx.fast_cpu() => {
                let pool = Self::fuses_pool(next.get(1));
                let act = if pool { Act::ReluMaxPool2 } else { Act::Relu };
                let y = c.forward_act(x, ctx, act);
                ctx.passed_params();
                (y, 1 + pool as usize)
            }
            _ => (self.forward(x, ctx), 0),
        }
    }

    /// Whether `next` is a plain relu (fusable into a preceding convolution).
    fn fuses_relu(next: Option<&Layer<D>>) -> bool {
        matches!(next, Some(Layer::Activation(Activation::Relu)))
    }

    /// Whether `next` is a 2x2 max pooling of stride 2 (fusable after conv + relu).
    fn fuses_pool(next: Option<&Layer<D>>) -> bool {
        matches!(next, Some(Layer::Pool(p)) if p.max && p.size == 2 && p.stride == 2)
    }

    /// Whether this layer holds parameters (after it, activations depend on them).
    fn has_params(&self) -> bool {
        match self {
            Layer::Conv(_) | Layer::Dense(_) | Layer::BatchNorm(_) => true,
            Layer::Residual(r) => r.shortcut.is_some() || r.body.iter().any(|l| l.has_params()),
            Layer::Pool(_) | Layer::Activation(_) | Layer::Flatten(_) | Layer::Dropout(_) => false,
        }
    }

    fn forward_inner<T: Tape<f32, D>>(&mut self, x: Batch<D, T>, ctx: &mut Ctx<D>) -> Batch<D, T> {
        match self {
            Layer::Conv(c) => c.forward(x, ctx),
            Layer::Pool(p) => p.forward(x, ctx),
            Layer::Dense(d) => d.forward(x, ctx),
            Layer::Activation(a) => a.forward(x),
            Layer::Flatten(f) => f.forward(x, ctx),
            Layer::Dropout(d) => d.forward(x, ctx),
            Layer::BatchNorm(b) => b.forward(x, ctx),
            Layer::Residual(r) => r.forward(x, ctx),
        }
    }
}

/// Wraps a layer-build failure into the crate error, naming the model and the layer.
pub(crate) fn build_error(model: &str, index: usize, def: &LayerDef, reason: String) -> NnError {
    NnError::Build {
        model: model.to_string(),
        reason: format!("layer {index} (`{}`): {reason}", def.name),
    }
}
