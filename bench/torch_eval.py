#!/usr/bin/env python3
"""PyTorch side of salient's evaluation-throughput benchmark (issue #5, item 5).

Computes, on the first N MNIST test images (batches of B, eval mode), the same thing as
`crates/salient-engine/examples/bench_eval.rs`, with the algorithms of docs/attacks.md,
docs/saliency.md and docs/metrics.md written in plain PyTorch, and prints one JSON line:

    {"impl": "pytorch", "task": "pgd", "images": 1000, "img_per_s": 123.4, "robust_accuracy": 0.01, ...}

Tasks:

- ``pgd``: PGD-Linf (Madry et al. 2018) with a random start, on logits with the summed
  cross-entropy, under salient's evaluation protocol: only examples classified correctly are
  attacked; with g_t = grad_x CE(z(x + delta_t), y),

      delta_0 ~ U(-eps, eps)^n, then delta_0 = clip_[0,1](x + delta_0) - x
      delta_{t+1} = clip_[0,1](x + clip_[-eps,eps](delta_t + a * sign(g_t))) - x

  every iterate is checked (argmax of the logits of the same forward pass that gives g_t, and
  the final point), and an example leaves the working batch as soon as one iterate is
  misclassified. Robust accuracy = (1/n) sum_i 1[example i never misclassified].
  img/s = images attacked / wall time.
- ``saliency``: S = |d log p_y / dx| (Simonyan et al. 2014; one backward pass of
  sum_i log softmax(z_i)_{y_i}), then per example the Gini index of the pixel scores
  s_p = sum_c |S_{p,c}| (Hurley and Rickard 2009),

      G = 1 - 2 sum_{k=1..P} (c_(k) / ||c||_1) (P - k + 1/2) / P,  c sorted increasingly (0 if c = 0)

  and the deletion AUC (Petsiuk et al. 2018): pixels ranked by decreasing score (ties: lower
  index first), for t = 0..T the top round(t P / T) set to 0, p_y = softmax(z(x_t))_y, AUC =
  sum_{t=1..T} (p_{t-1} + p_t) / (2T). img/s = images / wall time of maps and metrics.

The network is the quickstart CNN of bench/torch_train.py (same layer indices, so a salient
checkpoint's state-dict names ``layers.{i}.weight`` match) behind the input normalisation
(x - 0.1307) / 0.3081, as in salient. ``--weights`` loads a ``model.safetensors`` written by
``salient run`` (PyTorch layout; read with the ``safetensors`` package when installed, else
with the small reader below, which implements the documented file format); without it the
network keeps PyTorch's default initialisation and accuracies are not comparable with salient's.

Timing: ``time.perf_counter()`` around the whole task on the N images, after ``--warmup``
untimed runs of the task on the first batch; images are decoded before timing. Threads:
``torch.set_num_threads(T)`` (bench/run_eval.sh also exports OMP_NUM_THREADS and
MKL_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    sys.exit(f"torch_eval.py: cannot import torch ({err}); run bench/setup.sh and use bench/.venv/bin/python")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch_train  # noqa: E402

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
IMAGE_SHAPE = (1, 28, 28)  # (C, H, W)
TASKS = ("pgd", "saliency")


class QuickstartNet(nn.Module):
    """The quickstart CNN behind salient's input normalisation (x - mean) / std.

    Input: (B, H*W*C) channels-last pixels in [0, 1] (for one channel the same memory as
    (B, 1, 28, 28)). ``layers`` is torch_train.build_model("quickstart"), whose indices are the
    IR's layer indices, so the state dict is salient's checkpoint layout.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch_train.build_model("quickstart")

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = IMAGE_SHAPE
        x = x.reshape(-1, h, w, c).permute(0, 3, 1, 2)
        return (x - MNIST_MEAN) / MNIST_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalise(x))

    def layer_names(self) -> list[str]:
        """salient's layer names: kind and 1-based ordinal (conv1, relu1, ..., dense2)."""
        kinds = {nn.Conv2d: "conv", nn.ReLU: "relu", nn.MaxPool2d: "maxpool", nn.Flatten: "flatten",
                 nn.Linear: "dense", nn.Dropout: "dropout"}
        counts: dict[str, int] = {}
        names = []
        for layer in self.layers:
            kind = kinds[type(layer)]
            counts[kind] = counts.get(kind, 0) + 1
            names.append(f"{kind}{counts[kind]}")
        return names

    def forward_taps(self, x: torch.Tensor, taps: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits and the outputs of the layers at indices ``taps`` (in that order)."""
        out = {}
        h = self.normalise(x)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i in taps:
                out[i] = h
        return h, [out[i] for i in taps]


# --- Data and weights ----------------------------------------------------------------------------


def read_idx(path: str) -> tuple[list[int], bytes]:
    """Dimensions and raw bytes of an (optionally gzipped) IDX file of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = list(struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim]))
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(dims):
        raise ValueError(f"{path}: {len(body)} data bytes for dimensions {dims}")
    return dims, body


def find_file(directory: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{directory}: neither {stem} nor {stem}.gz")


def load_mnist(directory: str, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images of the split ("train" or "t10k") as (n, 784) floats b / 255 and labels
    (an error if the split has fewer than n)."""
    dims, images = read_idx(find_file(directory, f"{split}-images-idx3-ubyte"))
    ldims, labels = read_idx(find_file(directory, f"{split}-labels-idx1-ubyte"))
    if len(dims) != 3 or ldims != dims[:1]:
        raise ValueError(f"{directory}: {split} images {dims} and labels {ldims} do not match")
    if n > dims[0]:
        raise ValueError(f"{directory}: asked for the first {n} {split} images, but the file holds only {dims[0]}")
    size = dims[1] * dims[2]
    x = torch.frombuffer(bytearray(images[: n * size]), dtype=torch.uint8).reshape(n, size)
    y = torch.frombuffer(bytearray(labels[:n]), dtype=torch.uint8).long()
    return x.float() / 255.0, y


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """The F32 tensors of a safetensors file: 8-byte little-endian header length, JSON header
    {name: {dtype, shape, data_offsets}}, then the data (the format salient writes)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (length,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8 : 8 + length])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a safetensors file (its header is not JSON: {err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (its header is not a JSON object)")
    data = raw[8 + length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32).reshape(info["shape"])
    return tensors


def build_net(weights: str | None) -> QuickstartNet:
    net = QuickstartNet()
    if weights:
        net.load_state_dict(read_safetensors(weights), strict=True)
    return net.eval()


# --- PGD under salient's evaluation protocol ------------------------------------------------------


def pgd_step(x: torch.Tensor, delta: torch.Tensor, g: torch.Tensor, eps: float, step_size: float) -> torch.Tensor:
    """delta_{t+1} = clip_[0,1](x + clip_[-eps,eps](delta + a sign(g))) - x."""
    delta = (delta + step_size * g.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0.0, 1.0) - x


def pgd_robust(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per example: still classified correctly after PGD-Linf (module docstring), as booleans."""
    with torch.no_grad():
        robust = net(x).argmax(1) == y
    rows = robust.nonzero().squeeze(1)
    if rows.numel() == 0:
        return robust
    x0, y0 = x[rows], y[rows]
    delta = (torch.rand(x0.shape, generator=generator) * 2.0 - 1.0) * eps
    delta = (x0 + delta).clamp(0.0, 1.0) - x0
    for _ in range(steps):
        xa = (x0 + delta).requires_grad_(True)
        logits = net(xa)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, y0, reduction="sum"), xa)
        wrong = logits.detach().argmax(1) != y0
        delta = pgd_step(x0, delta, g, eps, step_size)
        if wrong.any():
            robust[rows[wrong]] = False
            keep = ~wrong
            if not keep.any():
                return robust
            x0, y0, delta, rows = x0[keep], y0[keep], delta[keep], rows[keep]
    with torch.no_grad():
        wrong = net((x0 + delta).clamp(0.0, 1.0)).argmax(1) != y0
    robust[rows[wrong]] = False
    return robust


# --- Gradient saliency, Gini, deletion ------------------------------------------------------------


def gradient_saliency(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """S = |d log p_y / dx| per example (one backward pass of the summed objective)."""
    xg = x.detach().requires_grad_(True)
    objective = F.log_softmax(net(xg), dim=1).gather(1, y[:, None]).sum()
    (g,) = torch.autograd.grad(objective, xg)
    return g.abs()


def pixel_scores(s: torch.Tensor, channels: int) -> torch.Tensor:
    """s_p = sum_c |S_{p,c}| over channels-last features: (B, N) -> (B, N / C)."""
    return s.abs().reshape(s.shape[0], -1, channels).sum(2)


def gini(scores: torch.Tensor) -> torch.Tensor:
    """Gini index of each row of non-negative scores (float64); 0 for an all-zero row."""
    c = scores.double().abs().sort(dim=1).values
    total = c.sum(1, keepdim=True)
    p = c.shape[1]
    k = torch.arange(1, p + 1, dtype=torch.float64)
    weights = (p - k + 0.5) / p
    g = 1.0 - 2.0 * ((c / total) * weights).sum(1)
    ok = (total.squeeze(1) > 0) & torch.isfinite(total.squeeze(1))
    return torch.where(ok, g, torch.zeros_like(g))


def round_half_up(value: float) -> int:
    """Rust's f64::round for non-negative values (halves away from zero)."""
    return int(math.floor(value + 0.5))


def deletion_curves(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, scores: torch.Tensor, channels: int, steps: int,
    fill: float = 0.0,
) -> torch.Tensor:
    """(B, T + 1) true-class probabilities as the top round(t P / T) pixels are set to ``fill``."""
    b, p = scores.shape
    order = scores.sort(dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(p).expand(b, p))
    ranks = ranks.repeat_interleave(channels, dim=1)  # channels-last: feature p*C + c
    curves = torch.empty(b, steps + 1, dtype=torch.float64)
    with torch.no_grad():
        for t in range(steps + 1):
            k = min(round_half_up(t / steps * p), p)
            xt = torch.where(ranks < k, torch.full_like(x, fill), x)
            curves[:, t] = F.softmax(net(xt), dim=1).gather(1, y[:, None]).squeeze(1).double()
    return curves


def trapezoid_auc(curves: torch.Tensor) -> torch.Tensor:
    """sum_{t=1..T} (y_{t-1} + y_t) / (2T) per row."""
    steps = curves.shape[1] - 1
    return ((curves[:, :-1] + curves[:, 1:]) / 2.0).sum(1) / steps


# --- Tasks ----------------------------------------------------------------------------------------


def run_pgd(net, x, y, args, generator) -> dict:
    robust = [pgd_robust(net, xb, yb, args.eps, args.step_size, args.steps, generator)
              for xb, yb in zip(x.split(args.batch), y.split(args.batch))]
    robust = torch.cat(robust)
    return {"robust_accuracy": int(robust.sum()) / robust.numel()}


def run_saliency(net, x, y, args, generator) -> dict:
    del generator  # deterministic
    channels = IMAGE_SHAPE[0]
    ginis, aucs = [], []
    for xb, yb in zip(x.split(args.batch), y.split(args.batch)):
        scores = pixel_scores(gradient_saliency(net, xb, yb), channels)
        ginis.append(gini(scores))
        aucs.append(trapezoid_auc(deletion_curves(net, xb, yb, scores, channels, args.deletion_steps)))
    return {"gini": float(torch.cat(ginis).mean()), "deletion_auc": float(torch.cat(aucs).mean())}


TASK_FUNCTIONS = {"pgd": run_pgd, "saliency": run_saliency}


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
    parser = argparse.ArgumentParser(description="PyTorch evaluation throughput (one JSON line).")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--images", type=positive_int, default=1000, help="first N test images (default 1000)")
    parser.add_argument("--batch", type=positive_int, default=500, help="batch size (default 500)")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed runs on the first batch (default 1)")
    parser.add_argument("--weights", default=None, help="a salient model.safetensors (default: random init)")
    parser.add_argument("--data", default="data/mnist", help="MNIST directory (default data/mnist)")
    parser.add_argument("--steps", type=positive_int, default=40, help="PGD steps (default 40)")
    parser.add_argument("--eps", type=positive_float, default=0.3, help="PGD Linf radius (default 0.3)")
    parser.add_argument("--step-size", type=positive_float, default=0.01, help="PGD step size (default 0.01)")
    parser.add_argument("--deletion-steps", type=positive_int, default=20, help="deletion curve steps T (default 20)")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the init and the random starts (default 0)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = build_net(args.weights)
    x, y = load_mnist(args.data, "t10k", args.images)
    with torch.no_grad():
        clean = int((net(x).argmax(1) == y).sum()) / x.shape[0]
    task = TASK_FUNCTIONS[args.task]
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.warmup):
        task(net, x[: args.batch], y[: args.batch], args, generator)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    values = task(net, x, y, args, generator)
    seconds = time.perf_counter() - start
    result = {
        "impl": "pytorch",
        "task": args.task,
        "model": "quickstart",
        "images": int(x.shape[0]),
        "batch": args.batch,
        "warmup": args.warmup,
        "threads": args.threads,
        "seconds": round(seconds, 6),
        "img_per_s": round(x.shape[0] / seconds, 2),
        "clean_accuracy": clean,
        "weights": args.weights,
        "torch": torch.__version__,
        **values,
    }
    if args.task == "pgd":
        result.update(steps=args.steps, eps=args.eps, step_size=args.step_size)
    else:
        result["deletion_steps"] = args.deletion_steps
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        print(f"torch_eval.py: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
