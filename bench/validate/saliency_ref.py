#!/usr/bin/env python3
"""Independent float64 reference for salient's saved saliency maps (issue #12).

For every run of a `salient run` output directory DIR (default reports/quickstart) this script
loads the run's weights ``DIR/runs/<run>/model.safetensors`` into the equivalent PyTorch
``nn.Sequential`` (bench/torch_eval.py's loader and QuickstartNet, imported, not copied),
converts the network to float64, and recomputes from ``DIR/maps/<run>/images.npy`` and
``labels.npy`` the maps of the spec's saliency methods (read from ``DIR/experiment.json``):

- ``gradient``: g(x) = d log softmax(z(x))_y / dx (signed, or |g| for ``sign = absolute``);
- ``integrated_gradients`` (zero baseline): S = x * (1/m) sum_{k=0}^{m-1} g(a_k x),
  a_k = (k + 1/2)/m, the midpoint rule of docs/saliency.md;
- ``gradient_input``: x * g(x).

Max pooling is PyTorch's: the gradient of a window goes to its first maximum in scan order.
Convolutions are summed in the same order at every position ([`ShiftConv`]), so that identical
receptive fields give bit-identical values and exact ties stay ties (PyTorch's float64 conv2d
can put them 1 ulp apart).
Maps are channels-last, (images, H, W, C). For each image and method it prints
max|salient - ref| / max|ref| and exits with status 1 if any exceeds ``--tol`` (default 1e-4),
2 on bad input. The ``ties`` column counts, per image, the windows of the network's max-pooling
layers whose (positive) maximum is attained more than once in float64: exactly the windows where
the gradient depends on the tie rule.

    bench/.venv/bin/python bench/validate/saliency_ref.py /tmp/qs [--run standard] [--tol 1e-4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    sys.exit(f"saliency_ref.py: cannot import numpy/torch ({err}); run bench/setup.sh and use bench/.venv/bin/python")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch_eval  # noqa: E402  (bench/torch_eval.py: QuickstartNet, read_safetensors)


def fail(message: str) -> "NoReturn":  # type: ignore[name-defined]
    print(f"saliency_ref.py: {message}", file=sys.stderr)
    sys.exit(2)


class ShiftConv(nn.Module):
    """A float64 convolution (stride 1 or more, zero padding) summed in the same order at every
    output position: y = b + sum over (ky, kx, ci) of shifted input slices times scalar weights,
    all elementwise. Positions with identical receptive fields therefore get bit-identical
    outputs, so exact ties stay exact ties for the max pooling that follows.

    PyTorch's own float64 conv2d does not guarantee this: on the quickstart SGT model it gives
    two positions of the bottom row with identical receptive fields values 1 ulp apart
    (relative gap 4.6e-16), and max pooling then sends the gradient to the "larger" one instead
    of the first, an artifact of its summation order that moved the reference by up to 4% of
    the map's maximum."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError(f"unsupported convolution {conv}")
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride = conv.stride
        self.padding = conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (ph, pw), (sh, sw) = self.padding, self.stride
        out, cin, kh, kw = self.weight.shape
        xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
        ho = (xp.shape[2] - kh) // sh + 1
        wo = (xp.shape[3] - kw) // sw + 1
        y = torch.zeros(x.shape[0], out, ho, wo, dtype=x.dtype)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        for ky in range(kh):
            for kx in range(kw):
                patch = xp[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]
                for ci in range(cin):
                    y = y + patch[:, ci : ci + 1] * self.weight[None, :, ci, ky, kx, None, None]
        return y


def load_net(weights: str) -> torch_eval.QuickstartNet:
    """The run's network in float64, every convolution a [`ShiftConv`]."""
    try:
        net = torch_eval.build_net(weights)
    except (OSError, ValueError, RuntimeError) as err:
        fail(f"cannot load {weights}: {err}")
    net = net.double().eval()
    for i, layer in enumerate(net.layers):
        if isinstance(layer, nn.Conv2d):
            net.layers[i] = ShiftConv(layer)
    return net


def log_prob_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d log softmax(z(x))_y / dx for a batch x (B, N) in float64 (examples independent)."""
    x = x.detach().clone().requires_grad_(True)
    logp = torch.log_softmax(net(x), dim=1)
    obj = logp.gather(1, y[:, None]).sum()
    (g,) = torch.autograd.grad(obj, x)
    return g


def reference_map(net: nn.Module, method: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    (kind, params), = method.items()
    if kind == "Gradient":
        g = log_prob_gradient(net, x, y)
        return g.abs() if params.get("sign") == "Absolute" else g
    if kind == "GradientInput":
        return x * log_prob_gradient(net, x, y)
    if kind == "IntegratedGradients":
        if params.get("baseline") != "Zero":
            raise NotImplementedError(f"integrated gradients with baseline {params.get('baseline')}")
        m = int(params["steps"])
        # All m points in one batch (examples are independent in eval mode).
        alphas = torch.tensor([(k + 0.5) / m for k in range(m)], dtype=x.dtype)
        xs = (alphas[:, None, None] * x[None]).reshape(m * x.shape[0], -1)
        g = log_prob_gradient(net, xs, y.repeat(m)).reshape(m, *x.shape)
        return x * (g.sum(0) / m)
    raise NotImplementedError(kind)


def pool_ties(net: torch_eval.QuickstartNet, x: torch.Tensor) -> np.ndarray:
    """Per image, the number of max-pooling windows (all pooling layers, all channels) whose
    positive maximum occurs more than once."""
    ties = np.zeros(x.shape[0], dtype=np.int64)
    h = net.normalise(x)
    with torch.no_grad():
        for layer in net.layers:
            if isinstance(layer, nn.MaxPool2d):
                k = layer.kernel_size
                s = layer.stride
                win = h.unfold(2, k, s).unfold(3, k, s).flatten(-2)  # (B, C, Ho, Wo, k*k)
                top = win.max(dim=-1, keepdim=True).values
                tied = ((win == top).sum(-1) > 1) & (top[..., 0] > 0)
                ties += tied.flatten(1).sum(1).numpy()
            h = layer(h)
    return ties


def npy(path: str) -> np.ndarray:
    try:
        return np.load(path)
    except (OSError, ValueError) as err:
        fail(f"cannot read {path}: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default="reports/quickstart", help="salient run output directory")
    parser.add_argument("--run", action="append", default=[], help="only runs whose id contains this text")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest allowed max|diff| / max|ref| per map")
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)

    exp_path = os.path.join(args.dir, "experiment.json")
    try:
        with open(exp_path) as handle:
            exp = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        fail(f"cannot read {exp_path}: {err}")
    data = exp["data"]
    if data["mean"] != [torch_eval.MNIST_MEAN] or data["std"] != [torch_eval.MNIST_STD]:
        fail(f"normalisation {data['mean']}/{data['std']} is not torch_eval's MNIST one")
    shape = (data["shape"]["h"], data["shape"]["w"], data["shape"]["c"])
    if shape != (28, 28, 1):
        fail(f"input shape {shape} is not the quickstart CNN's (28, 28, 1)")
    methods = {s["name"]: s["method"] for s in exp["saliency"]}

    maps_root = os.path.join(args.dir, "maps")
    runs = sorted(os.listdir(maps_root)) if os.path.isdir(maps_root) else []
    runs = [r for r in runs if not args.run or any(t in r for t in args.run)]
    if not runs:
        fail(f"no saved maps under {maps_root}")

    worst_all = 0.0
    summary = []
    for run in runs:
        net = load_net(os.path.join(args.dir, "runs", run, "model.safetensors"))
        mdir = os.path.join(maps_root, run)
        images = npy(os.path.join(mdir, "images.npy"))
        labels = npy(os.path.join(mdir, "labels.npy"))
        if images.ndim != 4 or images.shape[1:] != shape or labels.shape != (images.shape[0],):
            fail(f"{mdir}: images {images.shape} / labels {labels.shape} do not match (images, 28, 28, 1)")
        b = images.shape[0]
        x = torch.from_numpy(images.astype(np.float64).reshape(b, -1))
        y = torch.from_numpy(labels.astype(np.int64))
        ties = pool_ties(net, x)
        print(f"== {run}: {b} images, pool windows with tied maxima per image: {ties.tolist()}")
        for name, method in methods.items():
            path = os.path.join(mdir, f"{name}.npy")
            if not os.path.exists(path):
                print(f"   {name}: no {path}, skipped")
                continue
            got = npy(path).astype(np.float64)
            if got.shape != images.shape:
                fail(f"{path}: shape {got.shape}, expected {images.shape}")
            try:
                ref = reference_map(net, method, x, y).detach().numpy().reshape(images.shape)
            except NotImplementedError as err:
                print(f"   {name}: no reference for {err}, skipped")
                continue
            rel = []
            for i in range(b):
                scale = np.abs(ref[i]).max()
                diff = np.abs(got[i] - ref[i]).max()
                rel.append(diff / scale if scale > 0 else diff)
            worst = max(rel)
            worst_all = max(worst_all, worst)
            bad = sum(r > args.tol for r in rel)
            print(f"   {name:24s} max rel diff {worst:.3e}  ({bad}/{b} above {args.tol:g})  per image: "
                  + " ".join(f"{r:.1e}" for r in rel))
            summary.append((run, name, worst, bad))
    print("\nsummary (run, method, worst max|diff|/max|ref|, maps above tol):")
    for run, name, worst, bad in summary:
        print(f"  {run:28s} {name:24s} {worst:.3e}  {bad}")
    return 1 if worst_all > args.tol else 0


if __name__ == "__main__":
    sys.exit(main())
