//! Standard training: minimise the mean cross-entropy of the clean batch,
//! `L = mean_i CE(f(x_i), y_i)`.
use super::{Regime, StepContext, StepOutput, Targets};
use crate::losses::ce_mean;
use dfdx::prelude::*;
use salient_nn::{Mode, Network};

pub struct Standard;

impl<D: Device<f32>> Regime<D> for Standard {
    fn step(
        &mut self,
        net: &mut Network<D>,
        x: &Tensor<(usize, usize), f32, D>,
        y: &Targets<D>,
        _ctx: &mut StepContext,
    ) -> StepOutput<D> {
        let logits = net.forward(x.clone().traced(Gradients::leaky()), Mode::Train);
        let plain = logits.retaped::<NoneTape>();
        StepOutput {
            loss: ce_mean(logits, &y.onehot),
            logits: plain,
        }
    }
}
