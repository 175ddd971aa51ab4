//! The plain gradient and gradient x input.
//!
//! - Gradient (Simonyan, Vedaldi, Zisserman 2014, "Deep inside convolutional networks"):
//!   `S(x) = d obj_y / dx`, or its absolute value `|d obj_y / dx|`.
//! - Gradient x input (Shrikumar et al. 2016, "Not just a black box"): `S(x) = x * d obj_y / dx`,
//!   elementwise, with x the raw [0, 1] pixels the network receives.
//!
//! For a linear model `z = W^T x + b` the gradient of the logit `z_y` is the column `W[:, y]`;
//! the gradient of `log p_y` is `W[:, y] - sum_j p_j W[:, j]`.
use super::{class_gradient, Objective, Saliency, SaliencyError};
use crate::ops::Mat;
use dfdx::prelude::*;
use salient_ir::SaliencySign;
use salient_nn::Network;

/// `d obj_y / dx`, signed or absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gradient {
    pub sign: SaliencySign,
    pub objective: Objective,
}

impl<D: Device<f32>> Saliency<D> for Gradient {
    fn map(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
    ) -> Result<Mat<D>, SaliencyError> {
        let (g, _) = class_gradient(net, x, labels, self.objective)?;
        Ok(match self.sign {
            SaliencySign::Signed => g,
            SaliencySign::Absolute => g.abs(),
        })
    }
}

/// `x * d obj_y / dx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GradientInput {
    pub objective: Objective,
}

impl<D: Device<f32>> Saliency<D> for GradientInput {
    fn map(
        &mut self,
        net: &mut Network<D>,
        x: &Mat<D>,
        labels: &[usize],
    ) -> Result<Mat<D>, SaliencyError> {
        let (g, _) = class_gradient(net, x, labels, self.objective)?;
        Ok(g * x.clone())
    }
}
