#!/usr/bin/env python3
"""PyTorch side of salient's CPU training-throughput benchmark (issue #3, item 8).

Trains one of the two benchmark MNIST CNNs with plain SGD (lr 0.01, no momentum, no weight
decay) and softmax cross-entropy on a fixed batch of random inputs in [0, 1], and prints one JSON
line with the throughput:

    {"impl": "pytorch", "model": "quickstart", "batch": 128, "steps": 50, "threads": 2,
     "img_per_s": 1234.5, "torch": "2.15.0+cu132", ...}

img/s = batch * steps / seconds, where seconds is `time.perf_counter()` around the `steps` timed
steps, taken after `warmup` untimed steps (which let oneDNN pick and cache its kernels and the
allocator reach its steady state). One step is: forward, loss, zero grads, backward, SGD update.
With `--input-grad` the input batch also requires grad and its gradient is computed in the same
backward pass (the step a gradient saliency map or an FGSM/PGD attack step needs).

The model stays in train mode (dropout active), as on the Rust side. Data are generated once,
outside the timed region, from a fixed seed, so only the training step is measured. The models
mirror the Rust ones layer for layer (NCHW, float32):

- quickstart: Conv2d(1,16,5,p=2) ReLU MaxPool2d(2) Conv2d(16,32,5,p=2) ReLU MaxPool2d(2)
  Flatten Linear(1568,128) ReLU Linear(128,10)
- ismail (the MNIST CNN of Ismail et al.): Conv2d(1,32,3) ReLU Conv2d(32,64,3) ReLU
  MaxPool2d(2) Dropout(0.25) Flatten Linear(9216,128) ReLU Dropout(0.5) Linear(128,10)

Thread count: `torch.set_num_threads(T)` (intra-op pool). bench/run.sh also exports
OMP_NUM_THREADS and MKL_NUM_THREADS = T before starting Python so that no library pool is sized
to the machine's core count instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    sys.exit(
        f"torch_train.py: cannot import torch ({err}); run bench/setup.sh and use bench/.venv/bin/python"
    )

MODELS = ("quickstart", "ismail")
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
LEARNING_RATE = 0.01


def build_model(name: str) -> nn.Sequential:
    """The benchmark network `name`, with PyTorch's default initialisation."""
    if name == "quickstart":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, NUM_CLASSES),
        )
    if name == "ismail":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(9216, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, NUM_CLASSES),
        )
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="PyTorch CPU training throughput for salient's benchmark models (one JSON line).",
    )
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--batch", type=positive_int, default=128, help="batch size (default 128)")
    parser.add_argument("--steps", type=positive_int, default=50, help="timed steps (default 50)")
    parser.add_argument("--warmup", type=non_negative_int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--input-grad",
        action="store_true",
        help="also compute the gradient w.r.t. the input batch in the same backward pass",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, data and dropout (default 0)")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where to train (default cpu); with cuda the timing is bracketed by torch.cuda.synchronize()",
    )
    return parser.parse_args(argv)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    input_grad: bool,
) -> torch.Tensor:
    """One SGD step on (x, y); returns the loss (a 0-d tensor, not synchronised)."""
    optimizer.zero_grad(set_to_none=True)
    if input_grad:
        x.grad = None
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    device = torch.device(args.device)
    model = build_model(args.model).to(device)
    model.train()  # dropout active, as on the Rust side
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()

    generator = torch.Generator().manual_seed(args.seed)
    x = torch.rand((args.batch, *IMAGE_SHAPE), generator=generator).to(device)  # uniform in [0, 1)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator).to(device)
    x.requires_grad_(args.input_grad)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        train_step(model, optimizer, loss_fn, x, y, args.input_grad)

    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = train_step(model, optimizer, loss_fn, x, y, args.input_grad)
    sync()
    seconds = time.perf_counter() - start

    final_loss = float(loss.item())
    if not math.isfinite(final_loss):
        raise RuntimeError(f"training diverged: final loss is {final_loss}")
    if args.input_grad and (x.grad is None or x.grad.shape != x.shape):
        raise RuntimeError("--input-grad: the input gradient was not computed")

    return {
        "impl": "pytorch",
        "device": args.device,
        "model": args.model,
        "batch": args.batch,
        "steps": args.steps,
        "threads": args.threads,
        "img_per_s": round(args.batch * args.steps / seconds, 2),
        "torch": torch.__version__,
        "input_grad": args.input_grad,
        "warmup": args.warmup,
        "seconds": round(seconds, 6),
        "final_loss": round(final_loss, 6),
    }


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(run(parse_args(argv))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
