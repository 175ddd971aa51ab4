//! Shape inference, once: the output shape and parameter count of each layer kind, and the
//! projection a residual block's shortcut needs. The checker (`salient-lang`, which turns a
//! [`ShapeError`] into a diagnostic with a span and help) and the network builder's
//! hand-written models (`salient-nn`'s `layers::infer`) both call these functions, so the two
//! can never disagree on a shape or a parameter count.
//!
//! Parameter counts, as PyTorch's modules have them: conv `k*k*c_in*out + out` (with bias),
//! dense `in*out + out`, batchnorm `2*c` (weight and bias; the running statistics are buffers),
//! a residual projection `c_in*out` (a bias-free 1x1 convolution, as torchvision's and the
//! CIFAR ResNets' shortcuts).
use crate::{Layer, Projection, Shape};
use std::fmt;

/// Why a layer does not fit its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// `layer` (`conv`, `maxpool`, `avgpool`) needs an image and gets a flat vector.
    NeedsImage { layer: &'static str, input: Shape },
    /// `dense` needs a flat vector and gets an image.
    NeedsFlat { input: Shape },
    /// The kernel is larger than the padded input (`ph` x `pw`).
    KernelTooLarge {
        kernel: usize,
        padding: usize,
        ph: usize,
        pw: usize,
        input: Shape,
    },
    /// The pooling window is larger than the input (`h` x `w`).
    WindowTooLarge { size: usize, h: usize, w: usize },
    /// A residual body maps `input` to `output`, which no 1x1 projection with a stride matches.
    ResidualMismatch { input: Shape, output: Shape },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::NeedsImage { layer, input } => {
                write!(f, "`{layer}` needs an image input, but gets {}", describe(*input))
            }
            ShapeError::NeedsFlat { input } => {
                write!(f, "`dense` needs a flat input, but gets {}", describe(*input))
            }
            ShapeError::KernelTooLarge {
                kernel,
                padding,
                ph,
                pw,
                input,
            } => write!(
                f,
                "kernel {kernel}x{kernel} is larger than the padded input {ph}x{pw} (input {input}, padding {padding})"
            ),
            ShapeError::WindowTooLarge { size, h, w } => {
                write!(f, "window {size}x{size} is larger than the input {h}x{w}")
            }
            ShapeError::ResidualMismatch { input, output } => write!(
                f,
                "the body turns {input} into {output}, and no 1x1 projection with a stride can match that"
            ),
        }
    }
}

impl std::error::Error for ShapeError {}

/// A shape in words: `an image 1x28x28 (c x h x w)`, `a flat vector of 10`.
pub fn describe(s: Shape) -> String {
    match s {
        Shape::Image { .. } => format!("an image {s} (c x h x w)"),
        Shape::Flat(n) => format!("a flat vector of {n}"),
    }
}

/// The output shape and parameter count of `layer` on `input`. A residual block's own shape
/// and count are its body's ([`residual_projection`] adds the shortcut's): this returns
/// `(input, 0)` for it, as for the shape-keeping layers (activations, dropout). Counts saturate
/// instead of overflowing (the checker reports absurd sizes, it must not wrap).
pub fn layer_output(layer: &Layer, input: Shape) -> Result<(Shape, usize), ShapeError> {
    let image = |name: &'static str| match input {
        Shape::Image { c, h, w } => Ok((c, h, w)),
        Shape::Flat(_) => Err(ShapeError::NeedsImage { layer: name, input }),
    };
    Ok(match *layer {
        Layer::Conv {
            out,
            kernel,
            stride,
            padding,
        } => {
            let (c, h, w) = image("conv")?;
            let (ph, pw) = (h + 2 * padding, w + 2 * padding);
            if kernel > ph || kernel > pw {
                return Err(ShapeError::KernelTooLarge {
                    kernel,
                    padding,
                    ph,
                    pw,
                    input,
                });
            }
            let stride = stride.max(1);
            let params = kernel
                .saturating_mul(kernel)
                .saturating_mul(c)
                .saturating_mul(out)
                .saturating_add(out);
            let o = Shape::Image {
                c: out,
                h: (ph - kernel) / stride + 1,
                w: (pw - kernel) / stride + 1,
            };
            (o, params)
        }
        Layer::MaxPool { size, stride } | Layer::AvgPool { size, stride } => {
            let name = match layer {
                Layer::MaxPool { .. } => "maxpool",
                _ => "avgpool",
            };
            let (c, h, w) = image(name)?;
            if size > h || size > w {
                return Err(ShapeError::WindowTooLarge { size, h, w });
            }
            let stride = stride.max(1);
            let o = Shape::Image {
                c,
                h: (h - size) / stride + 1,
                w: (w - size) / stride + 1,
            };
            (o, 0)
        }
        Layer::Dense { out } => match input {
            Shape::Flat(n) => (Shape::Flat(out), n.saturating_mul(out).saturating_add(out)),
            Shape::Image { .. } => return Err(ShapeError::NeedsFlat { input }),
        },
        Layer::Flatten => (Shape::Flat(input.numel()), 0),
        Layer::BatchNorm { .. } => {
            let c = match input {
                Shape::Image { c, .. } => c,
                Shape::Flat(n) => n,
            };
            (input, c.saturating_mul(2))
        }
        Layer::Relu
        | Layer::LeakyRelu { .. }
        | Layer::Tanh
        | Layer::Sigmoid
        | Layer::Dropout { .. }
        | Layer::Residual { .. } => (input, 0),
    })
}

/// The shortcut of a residual block whose body maps `input` to `output`: none (the identity)
/// when they are equal, else the 1x1 projection (its output channels and the smallest stride s
/// with `(h - 1) / s + 1` = h' on both sides) and its parameter count `c_in * out` (no bias).
pub fn residual_projection(
    input: Shape,
    output: Shape,
) -> Result<Option<(Projection, usize)>, ShapeError> {
    if input == output {
        return Ok(None);
    }
    let mismatch = ShapeError::ResidualMismatch { input, output };
    match (input, output) {
        (
            Shape::Image { c, h, w },
            Shape::Image {
                c: oc,
                h: oh,
                w: ow,
            },
        ) => (1..=h.max(w))
            .find(|s| (h - 1) / s + 1 == oh && (w - 1) / s + 1 == ow)
            .map(|stride| Some((Projection { out: oc, stride }, c.saturating_mul(oc))))
            .ok_or(mismatch),
        _ => Err(mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(c: usize, h: usize, w: usize) -> Shape {
        Shape::Image { c, h, w }
    }

    #[test]
    fn known_shapes_and_counts() {
        let conv = Layer::Conv {
            out: 16,
            kernel: 5,
            stride: 1,
            padding: 2,
        };
        assert_eq!(
            layer_output(&conv, img(1, 28, 28)),
            Ok((img(16, 28, 28), 416))
        );
        let pool = Layer::MaxPool { size: 2, stride: 2 };
        assert_eq!(
            layer_output(&pool, img(16, 28, 28)),
            Ok((img(16, 14, 14), 0))
        );
        assert_eq!(
            layer_output(&Layer::Flatten, img(32, 7, 7)),
            Ok((Shape::Flat(1568), 0))
        );
        let dense = Layer::Dense { out: 128 };
        assert_eq!(
            layer_output(&dense, Shape::Flat(1568)),
            Ok((Shape::Flat(128), 1568 * 128 + 128))
        );
        let bn = Layer::BatchNorm {
            momentum: 0.1,
            eps: 1e-5,
        };
        assert_eq!(layer_output(&bn, img(64, 8, 8)), Ok((img(64, 8, 8), 128)));
    }

    #[test]
    fn misfits_are_errors() {
        let dense = Layer::Dense { out: 3 };
        assert!(matches!(
            layer_output(&dense, img(1, 2, 2)),
            Err(ShapeError::NeedsFlat { .. })
        ));
        let conv = Layer::Conv {
            out: 1,
            kernel: 7,
            stride: 1,
            padding: 0,
        };
        let e = layer_output(&conv, img(1, 5, 5)).unwrap_err();
        assert!(e.to_string().contains("kernel 7x7"), "{e}");
        assert!(matches!(
            layer_output(&conv, Shape::Flat(25)),
            Err(ShapeError::NeedsImage { layer: "conv", .. })
        ));
    }

    #[test]
    fn residual_projections_as_resnets_have_them() {
        // ResNet's downsampling block: 64x32x32 -> 128x16x16, a 1x1 stride-2 conv, no bias.
        assert_eq!(
            residual_projection(img(64, 32, 32), img(128, 16, 16)),
            Ok(Some((
                Projection {
                    out: 128,
                    stride: 2
                },
                64 * 128
            )))
        );
        assert_eq!(residual_projection(img(8, 4, 4), img(8, 4, 4)), Ok(None));
        assert!(residual_projection(img(8, 4, 4), Shape::Flat(128)).is_err());
        assert!(residual_projection(img(8, 4, 4), img(8, 5, 5)).is_err());
    }
}
