#!/usr/bin/env python3
"""PyTorch side of salient's per-step regime cost benchmark (issue #6, item 8).

Times one optimizer step of a training regime on the quickstart CNN (bench/torch_eval.py's
QuickstartNet: normalisation inside, salient's layer indices), a fixed batch of the first
``--batch`` MNIST training images, plain SGD (lr 0.01), and prints one JSON line:

    {"impl": "pytorch", "regime": "sgt", "batch": 128, "steps": 20, "ms_per_step": 45.6, ...}

Each regime is written in plain PyTorch following docs/regimes.md, pass for pass as
crates/salient-engine/src/regime does it: inner passes (attacks, saliency) in eval mode with
summed losses and ``torch.autograd.grad`` (the outer gradient treats their results as
constants), training passes in train mode on one graph. CE is the mean cross-entropy,
KL(p || q) = (1/B) sum_i sum_j p_ij (log p_ij - log q_ij) with gradients through both.

| name | loss (per batch) |
|---|---|
| standard | CE(f(x)) |
| sgt | CE(f(x)) + 1 * KL(p(x) || p(x~)), x~: the 50 % lowest signed d log p_y/dx pixels set to U[min x, max x] |
| pgd_at | CE(f(x_adv)), x_adv = PGD-10 Linf eps 0.3, step 0.075, random start, CE |
| fgsm_rs | CE(f(x_adv)), one step of 0.375 from a random start in the eps 0.3 ball |
| trades | CE(f(x)) + 6 * KL(p(x) || p(x_adv)), x_adv climbing KL(p(x) || p(x')) from x + 0.001 N(0, I), 10 steps |
| combined | CE(f(x)) + CE(f(x_adv)) + 1 * KL(p(x) || p(mask(x_adv))), PGD-10 as pgd_at, SGT mask of x_adv |
| lp_l1 | CE(f(x + d)), d = 0.1 sign(grad_x CE), clipped to the box |
| lp_group | CE(f(x + d)), d: 7 steps of per-group (4x4 patch) normalised ascent, step (2.5/7) * 1, projected on ||d_G|| <= 1 |
| sensitivity | CE(f(x)) + 1 * sum_{l in relu2, relu3} mean |a_l(clip(x + d)) - a_l(x)|, d ~ N(0, 0.1^2) |

One step: zero the gradients, the regime's loss, ``loss.item()`` (salient reads the loss value
too), backward, SGD update. ms/step = wall time of ``--steps`` timed steps / steps, after
``--warmup`` untimed steps. ``--weights`` starts from a salient checkpoint: the first step's
loss (``first_loss``) is then the same number on both sides for the deterministic regimes
(standard, lp_l1, lp_group). ``torch.set_num_threads(T)``; bench/run_regimes.sh also exports
OMP_NUM_THREADS and MKL_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable

try:
    import torch
    import torch.nn.functional as F
except ImportError as err:  # pragma: no cover - depends on the environment
    sys.exit(f"torch_regimes.py: cannot import torch ({err}); run bench/setup.sh and use bench/.venv/bin/python")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from torch_eval import IMAGE_SHAPE, QuickstartNet, load_mnist, read_safetensors, round_half_up  # noqa: E402

LEARNING_RATE = 0.01
EPS = 0.3  # pgd_at, fgsm_rs, trades, combined
PGD_STEPS = 10
PGD_STEP_SIZE = 0.075  # 2.5 * eps / steps
FGSM_STEP_SIZE = 0.375  # 1.25 * eps
TRADES_BETA = 6.0
SGT_K = 0.5
SGT_LAMBDA = 1.0
LP_L1_EPS = 0.1
LP_GROUP_EPS = 1.0
LP_GROUP_SIZE = 4
LP_GROUP_STEPS = 7
LP_GROUP_FRACTION = 2.5 / LP_GROUP_STEPS
SENSITIVITY_LAYERS = ("relu2", "relu3")
SENSITIVITY_SIGMA = 0.1
SENSITIVITY_LAMBDA = 1.0
TINY = 1e-12


# --- Shared pieces ---------------------------------------------------------------------------------


def ce_mean(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def kl_mean(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """(1/B) sum p (log p - log q), p = softmax(p_logits), q = softmax(q_logits); both carry grads."""
    log_p = F.log_softmax(p_logits, dim=1)
    return (log_p.exp() * (log_p - F.log_softmax(q_logits, dim=1))).sum() / p_logits.shape[0]


def input_gradient(net: QuickstartNet, x: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """d loss(f(x)) / dx with the network in eval mode (an inner pass); a constant."""
    net.eval()
    xg = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(net(xg)), xg)
    net.train()
    return g


def pgd(net, x, y, eps, step_size, steps, generator) -> torch.Tensor:
    """PGD-Linf on the summed CE from a random start U(-eps, eps), eval mode; x_adv in the box."""
    delta = (torch.rand(x.shape, generator=generator) * 2.0 - 1.0) * eps
    delta = (x + delta).clamp(0.0, 1.0) - x
    for _ in range(steps):
        g = input_gradient(net, x + delta, lambda z: F.cross_entropy(z, y, reduction="sum"))
        delta = (delta + step_size * g.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0.0, 1.0) - x
    return (x + delta).clamp(0.0, 1.0)


def sgt_mask(net, x, y, k, generator) -> torch.Tensor:
    """SGT's x~: per image the round(k P) pixel positions with the smallest signed saliency
    S = d log p_y / dx (eval mode, mean over channels; ties: lower position first) set, every
    channel, to U[min x, max x] of that image."""
    c = IMAGE_SHAPE[0]
    b = x.shape[0]
    g = input_gradient(net, x, lambda z: -F.cross_entropy(z, y, reduction="sum"))
    s = g.reshape(b, -1, c).mean(2)
    p = s.shape[1]
    count = min(round_half_up(k * p), p)
    lowest = s.sort(dim=1, stable=True).indices[:, :count]
    lo = x.min(1, keepdim=True).values
    hi = x.max(1, keepdim=True).values
    fill = lo[:, :, None] + (hi - lo)[:, :, None] * torch.rand(b, count, c, generator=generator)
    masked = x.detach().clone().reshape(b, p, c)
    masked.scatter_(1, lowest[:, :, None].expand(b, count, c), fill)
    return masked.reshape(b, -1)


class Groups:
    """size x size spatial patches of one channel, tiling the channels-last (H, W, C) image."""

    def __init__(self, size: int) -> None:
        c, h, w = IMAGE_SHAPE
        if h % size or w % size:
            raise ValueError(f"lp_group: {size}x{size} patches must tile the {h}x{w} image exactly here")
        self.size, self.shape = size, (h // size, size, w // size, size, c)

    def norms(self, t: torch.Tensor) -> torch.Tensor:
        """||t_G||_2 per group: (B, H/s, W/s, C)."""
        return t.reshape(-1, *self.shape).square().sum(dim=(2, 4)).sqrt()

    def expand(self, per_group: torch.Tensor) -> torch.Tensor:
        """(B, H/s, W/s, C) -> (B, N), each value on its group's features."""
        b = per_group.shape[0]
        return per_group[:, :, None, :, None, :].expand(b, *self.shape).reshape(b, -1)

    def scale_to(self, t: torch.Tensor, eps: float) -> torch.Tensor:
        return t * self.expand(eps / (self.norms(t) + TINY))

    def project(self, t: torch.Tensor, eps: float) -> torch.Tensor:
        return t * self.expand((eps / (self.norms(t) + TINY)).clamp(0.0, 1.0))


# --- Regimes: each returns the loss of one batch -------------------------------------------------


def standard(net, x, y, generator):
    return ce_mean(net(x), y)


def sgt(net, x, y, generator):
    x_masked = sgt_mask(net, x, y, SGT_K, generator)
    clean = net(x)
    return ce_mean(clean, y) + SGT_LAMBDA * kl_mean(clean, net(x_masked))


def pgd_at(net, x, y, generator):
    x_adv = pgd(net, x, y, EPS, PGD_STEP_SIZE, PGD_STEPS, generator)
    return ce_mean(net(x_adv), y)


def fgsm_rs(net, x, y, generator):
    x_adv = pgd(net, x, y, EPS, FGSM_STEP_SIZE, 1, generator)
    return ce_mean(net(x_adv), y)


def trades(net, x, y, generator):
    net.eval()
    with torch.no_grad():
        p_clean = net(x)
    net.train()
    xa = (x + 0.001 * torch.randn(x.shape, generator=generator)).clamp(0.0, 1.0)
    for _ in range(PGD_STEPS):
        g = input_gradient(net, xa, lambda z: kl_mean(p_clean, z))
        delta = (xa + PGD_STEP_SIZE * g.sign() - x).clamp(-EPS, EPS)
        xa = (x + delta).clamp(0.0, 1.0)
    clean = net(x)
    return ce_mean(clean, y) + TRADES_BETA * kl_mean(clean, net(xa))


def combined(net, x, y, generator):
    x_adv = pgd(net, x, y, EPS, PGD_STEP_SIZE, PGD_STEPS, generator)
    x_masked = sgt_mask(net, x_adv, y, SGT_K, generator)
    clean = net(x)
    kl = SGT_LAMBDA * kl_mean(clean, net(x_masked))
    return ce_mean(clean, y) + ce_mean(net(x_adv), y) + kl


def lp_l1(net, x, y, generator):
    g = input_gradient(net, x, lambda z: F.cross_entropy(z, y, reduction="sum"))
    d = (x + LP_L1_EPS * g.sign()).clamp(0.0, 1.0) - x
    return ce_mean(net(x + d), y)


def lp_group(net, x, y, generator):
    groups = Groups(LP_GROUP_SIZE)
    d = torch.zeros_like(x)
    for _ in range(LP_GROUP_STEPS):
        g = input_gradient(net, x + d, lambda z: F.cross_entropy(z, y, reduction="sum"))
        d = groups.project(d + groups.scale_to(g, LP_GROUP_FRACTION * LP_GROUP_EPS), LP_GROUP_EPS)
        d = (x + d).clamp(0.0, 1.0) - x
    return ce_mean(net(x + d), y)


def sensitivity(net, x, y, generator):
    names = net.layer_names()
    taps = [names.index(name) for name in SENSITIVITY_LAYERS]
    d = SENSITIVITY_SIGMA * torch.randn(x.shape, generator=generator)
    clean, clean_taps = net.forward_taps(x, taps)
    _, noisy_taps = net.forward_taps((x + d).clamp(0.0, 1.0), taps)
    penalty = sum((n - c).abs().mean() for n, c in zip(noisy_taps, clean_taps))
    return ce_mean(clean, y) + SENSITIVITY_LAMBDA * penalty


REGIMES: dict[str, Callable] = {
    "standard": standard,
    "sgt": sgt,
    "pgd_at": pgd_at,
    "fgsm_rs": fgsm_rs,
    "trades": trades,
    "combined": combined,
    "lp_l1": lp_l1,
    "lp_group": lp_group,
    "sensitivity": sensitivity,
}


# --- Driver ----------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="PyTorch per-step cost of salient's regimes (one JSON line).")
    parser.add_argument("--regime", choices=tuple(REGIMES), required=True)
    parser.add_argument("--batch", type=positive_int, default=128, help="batch size (default 128)")
    parser.add_argument("--steps", type=positive_int, default=20, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--lr", type=positive_float, default=LEARNING_RATE, help="SGD learning rate (default 0.01)")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--data", default="data/mnist", help="MNIST directory (default data/mnist)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the init and the regime's draws (default 0)")
    parser.add_argument("--weights", default=None, help="start from a salient model.safetensors (default: random init)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = QuickstartNet()
    if args.weights:
        net.load_state_dict(read_safetensors(args.weights), strict=True)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr)
    x, y = load_mnist(args.data, "train", args.batch)
    if x.shape[0] < args.batch:
        raise ValueError(f"the training set has {x.shape[0]} images, fewer than the batch")
    regime = REGIMES[args.regime]
    generator = torch.Generator().manual_seed(args.seed)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = regime(net, x, y, generator)
        value = float(loss.item())
        if not math.isfinite(value):
            raise RuntimeError(f"the loss is {value}")
        loss.backward()
        optimizer.step()
        return value

    first = None
    for _ in range(args.warmup):
        value = step()
        first = value if first is None else first
    start = time.perf_counter()
    for _ in range(args.steps):
        value = step()
        first = value if first is None else first
    seconds = time.perf_counter() - start
    return {
        "impl": "pytorch",
        "regime": args.regime,
        "model": "quickstart",
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "lr": args.lr,
        "threads": args.threads,
        "seconds": round(seconds, 6),
        "ms_per_step": round(1e3 * seconds / args.steps, 3),
        "img_per_s": round(args.batch * args.steps / seconds, 2),
        "first_loss": round(first, 6),
        "final_loss": round(value, 6),
        "weights": args.weights,
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"torch_regimes.py: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
