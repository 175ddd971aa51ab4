//! Input gradients: the first-order building block of every regime, attack and saliency method.
//!
//! dfdx has no double backward, so anything that needs a gradient of a gradient is written in
//! first-order form: an input gradient is computed here, then treated as a constant.
//!
//! An input-gradient pass needs d loss / d x only, like PyTorch's `torch.autograd.grad(loss,
//! x)`: [`InputGradScope`] switches the network to input gradient on, parameter gradients off
//! ([`Network::set_input_grad`], [`Network::set_param_grad`]) and restores both afterwards, so
//! the CPU layers skip their dW and db GEMMs (about a third of a convolution's backward work).
use crate::losses::Logits;
use crate::ops::Mat;
use dfdx::prelude::*;
use salient_nn::{Mode, Network};
use std::ops::{Deref, DerefMut};

/// The network set up for input-gradient passes: input gradient on, parameter gradients off.
/// Dropping the scope (also when unwinding from a panic) restores the previous settings.
pub struct InputGradScope<'a, D: Device<f32>> {
    net: &'a mut Network<D>,
    input_grad: bool,
    param_grad: bool,
}

impl<'a, D: Device<f32>> InputGradScope<'a, D> {
    pub fn new(net: &'a mut Network<D>) -> Self {
        let (input_grad, param_grad) = (net.input_grad(), net.param_grad());
        net.set_input_grad(true);
        net.set_param_grad(false);
        Self {
            net,
            input_grad,
            param_grad,
        }
    }
}

impl<D: Device<f32>> Deref for InputGradScope<'_, D> {
    type Target = Network<D>;
    fn deref(&self) -> &Network<D> {
        self.net
    }
}

impl<D: Device<f32>> DerefMut for InputGradScope<'_, D> {
    fn deref_mut(&mut self) -> &mut Network<D> {
        self.net
    }
}

impl<D: Device<f32>> Drop for InputGradScope<'_, D> {
    fn drop(&mut self) {
        self.net.set_input_grad(self.input_grad);
        self.net.set_param_grad(self.param_grad);
    }
}

/// Gradient of `loss(f(x))` with respect to the input `x` (B, N), with the network in `mode`,
/// together with the logits f(x) (no tape). Runs in an [`InputGradScope`]: no parameter
/// gradient is computed (on the CPU), and the network's gradient settings are restored on
/// return.
pub fn input_gradient<D, L>(
    net: &mut Network<D>,
    x: &Mat<D>,
    mode: Mode,
    loss: L,
) -> (Mat<D>, Logits<D, NoneTape>)
where
    D: Device<f32>,
    L: FnOnce(Logits<D, OwnedTape<f32, D>>) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>>,
{
    let mut net = InputGradScope::new(net);
    let xt = x.clone().traced(Gradients::leaky());
    let logits = net.forward(xt, mode);
    let plain = logits.retaped::<NoneTape>();
    let grads = loss(logits).backward();
    (grads.get(x), plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{ce_sum, one_hot};
    use crate::regime::{self, StepContext, Targets};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use salient_ir::{
        AdversarialParams, Fill, InnerLoss, Layer, Noise, Norm, Regime, RegimeInstance,
        SaliencySign, SensitivityParams, SgtParams, Shape, TrainAttack, TrainAttackMethod,
    };
    use salient_nn::layers::infer::model_def;

    const INPUT: Shape = Shape::Image { c: 1, h: 6, w: 6 };
    const BATCH: usize = 18;

    fn net() -> Network<Cpu> {
        let conv = |out, padding| Layer::Conv {
            out,
            kernel: 3,
            stride: 1,
            padding,
        };
        let layers = vec![
            conv(3, 1),
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2 },
            conv(4, 0),
            Layer::Relu,
            Layer::Flatten,
            Layer::Dense { out: 3 },
        ];
        let def = model_def("cnn", INPUT, layers).expect("valid model");
        Network::new(&def, &[0.5], &[0.25], 1, &Cpu::default()).expect("builds")
    }

    fn data() -> (Tensor<(usize, usize), f32, Cpu>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x: Vec<f32> = (0..BATCH * 36).map(|_| rng.gen()).collect();
        let labels = (0..BATCH).map(|i| i % 3).collect();
        (Cpu::default().tensor_from_vec(x, (BATCH, 36)), labels)
    }

    #[test]
    fn input_gradient_is_the_same_for_every_switch_and_restores_them() {
        let (x, labels) = data();
        let onehot = one_hot(&Cpu::default(), &labels, 3);
        let mut net = net();
        let mut first: Option<Vec<f32>> = None;
        for (input, param) in [(true, true), (false, true), (true, false), (false, false)] {
            net.set_input_grad(input);
            net.set_param_grad(param);
            let (g, _) = input_gradient(&mut net, &x, Mode::Eval, |z| ce_sum(z, &onehot));
            assert_eq!((net.input_grad(), net.param_grad()), (input, param));
            let g = g.as_vec();
            assert!(g.iter().any(|v| *v != 0.0), "nonzero gradient");
            match &first {
                None => first = Some(g),
                Some(f) => assert_eq!(f, &g, "same gradient with ({input}, {param})"),
            }
        }
    }

    #[test]
    fn input_gradient_restores_the_switches_when_the_loss_panics() {
        let (x, _) = data();
        let mut net = net();
        net.set_input_grad(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            input_gradient(&mut net, &x, Mode::Eval, |_| panic!("loss fails"))
        }));
        assert!(caught.is_err());
        assert_eq!((net.input_grad(), net.param_grad()), (false, true));
    }

    /// Loss and parameter gradients of one regime step with the training passes' input
    /// gradient on (the runner's former setting) or off (now).
    fn step(regime: &Regime, input_grad: bool) -> (f32, Vec<Vec<f32>>) {
        let (x, labels) = data();
        let mut net = net();
        net.set_input_grad(input_grad);
        let inst = RegimeInstance {
            name: regime.kind_name().into(),
            label: regime.kind_name().into(),
            regime: regime.clone(),
        };
        let mut reg = regime::build::<Cpu>(&inst, &[0.5], net.def()).expect("regime builds");
        let y = Targets {
            onehot: one_hot(&Cpu::default(), &labels, 3),
            labels,
        };
        let mut ctx = StepContext {
            rng: ChaCha8Rng::seed_from_u64(3),
            epoch: 0,
            step: 0,
            steps_per_epoch: 1,
        };
        let out = reg.step(&mut net, &x, &y, &mut ctx);
        assert_eq!(net.input_grad(), input_grad, "the step restores the switch");
        let loss = out.loss.array();
        let grads = out.loss.backward();
        let g = net.params().iter().map(|p| grads.get(&p.value).as_vec());
        (loss, g.collect())
    }

    #[test]
    fn regime_steps_are_unchanged_without_the_training_input_gradient() {
        let attack = TrainAttack {
            method: TrainAttackMethod::Pgd,
            norm: Norm::Linf,
            eps: 0.1,
            step_size: 0.03,
            steps: 3,
            random_start: true,
            warmup: 0.0,
        };
        let adversarial = |trades_beta, mix| {
            Regime::Adversarial(AdversarialParams {
                attack: attack.clone(),
                loss: InnerLoss::Ce,
                trades_beta,
                mix,
            })
        };
        let regimes = [
            Regime::Standard,
            adversarial(None, 0.0),
            adversarial(None, 0.5),
            adversarial(Some(6.0), 0.0),
            Regime::Sgt(SgtParams {
                k: 0.5,
                saliency: SaliencySign::Signed,
                fill: Fill::Random,
                lambda: 1.0,
            }),
            Regime::Sensitivity(SensitivityParams {
                layers: vec!["relu1".into(), "relu2".into()],
                noise: Noise::Gaussian,
                sigma: 0.1,
                lambda: 1.0,
                adversarial: true,
            }),
        ];
        for r in &regimes {
            let (loss_on, g_on) = step(r, true);
            let (loss_off, g_off) = step(r, false);
            assert_eq!(loss_on, loss_off, "{}: loss", r.kind_name());
            assert!(g_on.iter().flatten().any(|v| *v != 0.0));
            assert_eq!(g_on, g_off, "{}: parameter gradients", r.kind_name());
        }
    }
}
