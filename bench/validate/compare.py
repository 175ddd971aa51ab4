#!/usr/bin/env python3
"""Agreement of salient with the reference implementations (issue #12 item 5).

Reads a folder written by ``examples/validate_dump.rs`` (images, labels, salient's logits,
per-example robust flags of every attack, saliency maps, per-example metric values, the exact
noise salient used, the randomised networks of the cascade; settings in ``dump.json``), loads the
same weights into the equivalent PyTorch network, recomputes everything with the reference
packages, and prints one table row per comparison:

    what | n | salient | reference | difference | tolerance | PASS/FAIL | note

Exit status 1 if a row FAILs, 0 otherwise (rows that could not run say ``not run`` and do not
fail). ``bench/validate/run.sh`` builds everything and calls this script; the method and the
measured table are in docs/validation.md.

References and what is compared (salient's definitions: docs/attacks.md, docs/saliency.md,
docs/metrics.md):

- the network: salient's eval-mode logits vs PyTorch's on the same images (max |diff| relative
  to max |logit|, tolerance 1e-5): checks the loader before anything else;
- attacks (robust accuracy = fraction of the n examples classified correctly before and after
  the attack; tolerance one point, 0.01; both are random, so both values are reported):
  ``pgd`` vs torchattacks.PGD (same eps, steps, step size, random start), ``apgd`` (loss ce /
  dlr) vs AutoAttack's APGDAttack (same steps, restarts, loss), ``square`` vs AutoAttack's
  SquareAttack (same queries, p_init, schedule rescaled to the budget), ``apgd_t`` vs
  APGDAttack_targeted, ``fab`` vs FABAttack_PT, an ``autoattack`` attack vs
  AutoAttack(version=...) when the spec has one (else a ``not run`` row);
- saliency maps (objective log softmax(z)_y of the true label; tolerance: per image,
  max |S - R| <= 1e-4 max |R|, judged on the images with 1 - p_y >= 1e-2, where float32 can
  meet it; all images as an INFO row with PyTorch's own float32-vs-float64 error): gradient vs captum Saliency (abs per ``sign``), gradient_input
  vs captum InputXGradient, integrated_gradients vs captum IntegratedGradients
  (method='riemann_middle', same steps, the same baseline), smoothgrad vs captum Saliency
  averaged over salient's own noise samples (the noise is in the dump: captum's NoiseTunnel
  draws its own, so the map would differ by the Monte-Carlo error);
- metrics on salient's maps (tolerance 1e-3 on every per-example value; the same metrics with
  Captum's maps as INFO rows, which add the map differences): sparseness vs
  quantus.Sparseness, complexity vs quantus.Complexity, max_sensitivity vs
  quantus.MaxSensitivity (salient's perturbations through ``perturb_func``, salient's maps at
  x + d through ``explain_func``), randomization vs quantus.MPRT (cascading, top down, Spearman
  of |S|; Quantus's own re-initialisation replaced by salient's randomised weights, whose draws
  differ from torch's, and salient's maps of them through ``explain_func``). Sparseness and
  complexity are normalised per example (Quantus's default divides by the batch's max, after
  which Sparseness's +1e-7 dominates tiny maps).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    sys.exit(f"compare.py: cannot import torch ({err}); run bench/validate/run.sh (it uses bench/.venv)")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/: torch_eval's safetensors reader

import torch_eval  # noqa: E402

# Tolerances of issue #12 item 5.
ATTACK_TOL = 0.01  # robust accuracy: one point
MAP_TOL = 1e-4  # per image, relative to the image's max |reference|
METRIC_TOL = 1e-3  # every per-example value
LOGIT_TOL = 1e-5  # the loader check, relative to the max |logit|


# --- Table -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    what: str
    n: int
    salient: float | None
    reference: float | None
    difference: float | None
    tolerance: float | None
    status: str  # PASS, FAIL, INFO (reported, not judged) or "not run"
    note: str = ""


def check_row(what: str, n: int, salient: float, reference: float, difference: float, tolerance: float,
              note: str = "") -> Row:
    """A compared row: PASS when |difference| <= tolerance (and both are finite), else FAIL. The
    comparison allows for rounding (0.655 - 0.665 is 0.010000000000000009 in binary floating
    point: two examples of 200 are exactly one point)."""
    ok = math.isfinite(difference) and abs(difference) <= tolerance * (1 + 1e-9)
    return Row(what, n, salient, reference, difference, tolerance, "PASS" if ok else "FAIL", note)


def info(row: Row, note: str = "") -> Row:
    """The same numbers, reported but not judged (the exit status ignores it)."""
    return dataclasses.replace(row, status="INFO", note=(note + "; " if note else "") + row.note)


def not_run(what: str, why: str) -> Row:
    return Row(what, 0, None, None, None, None, "not run", why)


def fmt(v: float | None) -> str:
    if v is None:
        return ""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if v != v:
        return "nan"
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{v:.2e}"
    return f"{v:.4f}"


def render_table(rows: list[Row]) -> str:
    head = "| what | n | salient | reference | difference | tolerance | result | note |\n"
    head += "|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r.what} | {r.n} | {fmt(r.salient)} | {fmt(r.reference)} | {fmt(r.difference)} | "
        f"{fmt(r.tolerance)} | {r.status} | {r.note} |\n"
        for r in rows
    )
    return head + body


def exit_code(rows: list[Row]) -> int:
    return 1 if any(r.status == "FAIL" for r in rows) else 0


def map_errors(salient: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per image: max |S - R| / max |R| (0 where both are all zero; inf where only R is)."""
    s = salient.reshape(salient.shape[0], -1).astype(np.float64)
    r = reference.reshape(reference.shape[0], -1).astype(np.float64)
    if s.shape != r.shape:
        raise ValueError(f"map shapes differ: salient {salient.shape}, reference {reference.shape}")
    diff = np.abs(s - r).max(1)
    scale = np.abs(r).max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, np.inf, 0.0))
    return err


def map_row(what: str, salient: np.ndarray, reference: np.ndarray, tol: float = MAP_TOL,
            index: np.ndarray | None = None) -> Row:
    """Per-image relative errors; ``index`` maps the rows back to image numbers for the note."""
    err = map_errors(salient, reference)
    if err.size == 0:
        return not_run(what, "no image")
    index = np.arange(len(err)) if index is None else index
    bad = int((err > tol).sum())
    worst = int(index[err.argmax()])
    note = f"{bad}/{len(err)} images over; worst image {worst}; median rel. err {np.median(err):.1e}"
    return check_row(what + " (max per-image rel. err)", len(err), float(np.abs(salient).mean()),
                     float(np.abs(reference).mean()), float(err.max()), tol, note)


# Images whose true class has 1 - p_y below this are ill-conditioned in float32: the gradient of
# log p_y scales with 1 - p_y, which float32 computes from p_y near 1 with an absolute error of
# ~6e-8, so that its relative error (and the map's) is ~6e-8 / (1 - p_y) in any float32 code.
CONDITIONING = 1e-2


def map_rows(what: str, salient: np.ndarray, reference: np.ndarray, reference64: np.ndarray,
             p_true: np.ndarray) -> list[Row]:
    """The judged row on the well-conditioned images (1 - p_y >= CONDITIONING), then all images
    as INFO with PyTorch's own float32-vs-float64 error on the same images for scale."""
    keep = np.flatnonzero(1.0 - p_true >= CONDITIONING)
    judged = map_row(f"{what}, images with 1 - p_y >= {CONDITIONING:g}", salient[keep], reference[keep],
                     index=keep)
    floor = map_errors(reference, reference64)
    floor_keep = floor[keep] if keep.size else np.zeros(1)
    judged.note += f"; PyTorch f32 vs f64 here: max {floor_keep.max():.1e}"
    everything = info(map_row(f"{what}, all images", salient, reference),
                      f"PyTorch f32 vs f64 on the same images: median {np.median(floor):.1e}, max {floor.max():.1e}")
    return [judged, everything]


def values_row(what: str, salient: np.ndarray, reference: np.ndarray, tol: float = METRIC_TOL,
               note: str = "") -> Row:
    """Per-example values: salient / reference columns are means, difference the worst |diff|
    over the examples where both are finite (examples salient leaves out are NaN)."""
    s = np.asarray(salient, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if s.shape != r.shape:
        raise ValueError(f"{what}: {s.size} salient values, {r.size} reference values")
    both = np.isfinite(s) & np.isfinite(r)
    if not both.any():
        return Row(what, 0, None, None, None, tol, "FAIL", "no example has both values")
    d = np.abs(s[both] - r[both])
    extra = f"{int((~both).sum())} left out (NaN); " if (~both).any() else ""
    return check_row(what, int(both.sum()), float(s[both].mean()), float(r[both].mean()), float(d.max()), tol,
                     (note + "; " if note else "") + f"{extra}worst example {int(np.flatnonzero(both)[d.argmax()])}")


# --- The network -----------------------------------------------------------------------------------


class Normalise(nn.Module):
    """(x - mean) / std per channel, on NCHW (or flat) input: part of salient's network."""

    def __init__(self, mean: list[float], std: list[float], channels: int) -> None:
        super().__init__()
        c = channels
        m = mean * c if len(mean) == 1 else mean
        s = std * c if len(std) == 1 else std
        self.register_buffer("mean", torch.tensor(m, dtype=torch.float32).reshape(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(s, dtype=torch.float32).reshape(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def torch_layer(kind, in_shape: dict) -> nn.Module:
    """The PyTorch module of one IR layer (``kind`` as serde writes salient_ir::Layer)."""
    if isinstance(kind, str):
        name, p = kind, {}
    else:
        ((name, p),) = kind.items()
    if name == "Conv":
        return nn.Conv2d(in_shape["Image"]["c"], p["out"], p["kernel"], stride=p["stride"], padding=p["padding"])
    if name == "MaxPool":
        return nn.MaxPool2d(p["size"], stride=p["stride"])
    if name == "AvgPool":
        return nn.AvgPool2d(p["size"], stride=p["stride"])
    if name == "Dense":
        return nn.Linear(in_shape["Flat"], p["out"])
    if name == "Relu":
        return nn.ReLU()
    if name == "LeakyRelu":
        return nn.LeakyReLU(p["slope"])
    if name == "Tanh":
        return nn.Tanh()
    if name == "Sigmoid":
        return nn.Sigmoid()
    if name == "Flatten":
        return nn.Flatten()
    if name == "Dropout":
        return nn.Dropout(p["p"])
    raise ValueError(f"layer kind {name} has no PyTorch counterpart in compare.py")


class SalientNet(nn.Module):
    """salient's network in PyTorch: input NCHW in [0, 1], normalisation inside, then the IR's
    layers as ``layers`` (state-dict names ``layers.{i}.weight``, salient's checkpoint layout)."""

    def __init__(self, model: dict, mean: list[float], std: list[float]) -> None:
        super().__init__()
        shape = model["input"]
        channels = shape["Image"]["c"] if "Image" in shape else 1
        self.normalise = Normalise(mean, std, channels)
        self.layers = nn.Sequential(*[torch_layer(l["kind"], l["input"]) for l in model["layers"]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalise(x))


def load_net(model: dict, mean, std, weights: str) -> SalientNet:
    net = SalientNet(model, mean, std)
    net.layers.load_state_dict(
        {k.removeprefix("layers."): v for k, v in torch_eval.read_safetensors(weights).items()}, strict=True)
    return net.eval()


def nchw(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) channels-last -> (N, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def nhwc(t: torch.Tensor | np.ndarray) -> np.ndarray:
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else t
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


# --- Attacks ---------------------------------------------------------------------------------------


def robust_flags(net: nn.Module, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor) -> np.ndarray:
    """salient's definition: correct before and after the attack."""
    with torch.no_grad():
        clean = net(x).argmax(1) == y
        after = net(adv).argmax(1) == y
    return (clean & after).numpy()


def reference_attack(kind: str, p: dict, net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
                     seed: int) -> np.ndarray:
    """Per-example robust flags of the reference implementation of one salient attack."""
    if p.get("norm", "Linf") != "Linf":
        raise NotImplementedError("only Linf attacks are compared")
    torch.manual_seed(seed)
    out = []
    if kind == "Pgd":
        import torchattacks

        atk = torchattacks.PGD(net, eps=p["eps"], alpha=p["step_size"], steps=p["steps"],
                               random_start=p["random_start"])
        for xb, yb in zip(x.split(batch), y.split(batch)):
            robust = robust_flags(net, xb, yb, atk(xb, yb))
            for _ in range(p.get("restarts", 1) - 1):  # restarts: attack the survivors again
                rows = np.flatnonzero(robust)
                if rows.size == 0:
                    break
                idx = torch.from_numpy(rows)
                again = robust_flags(net, xb[idx], yb[idx], atk(xb[idx], yb[idx]))
                robust[rows] = again
            out.append(robust)
    elif kind == "Apgd":
        from pyautoattack.autopgd_base import APGDAttack

        atk = APGDAttack(net, n_iter=p["steps"], norm="Linf", n_restarts=p["restarts"], eps=p["eps"],
                         seed=seed, loss=p["loss"].lower(), device="cpu")
        for xb, yb in zip(x.split(batch), y.split(batch)):
            out.append(robust_flags(net, xb, yb, atk.perturb(xb, yb)))
    elif kind == "ApgdT":
        from pyautoattack.autopgd_base import APGDAttack_targeted

        atk = APGDAttack_targeted(net, n_iter=p["steps"], norm="Linf", n_restarts=p["restarts"], eps=p["eps"],
                                  seed=seed, n_target_classes=p["targets"], device="cpu")
        for xb, yb in zip(x.split(batch), y.split(batch)):
            out.append(robust_flags(net, xb, yb, atk.perturb(xb, yb)))
    elif kind == "Fab":
        from pyautoattack.fab_pt import FABAttack_PT

        targeted = p["targets"] > 0
        atk = FABAttack_PT(net, norm="Linf", n_restarts=p["restarts"], n_iter=p["steps"], eps=p["eps"], seed=seed,
                           targeted=targeted, n_target_classes=max(p["targets"], 1), device="cpu")
        for xb, yb in zip(x.split(batch), y.split(batch)):
            out.append(robust_flags(net, xb, yb, atk.perturb(xb, yb)))
    elif kind == "Square":
        from pyautoattack.square import SquareAttack

        atk = SquareAttack(net, norm="Linf", n_queries=p["queries"], eps=p["eps"], p_init=p["p_init"],
                           n_restarts=1, seed=seed, loss="margin", resc_schedule=True, device="cpu")
        for xb, yb in zip(x.split(batch), y.split(batch)):
            out.append(robust_flags(net, xb, yb, atk.perturb(xb, yb)))
    elif kind.lower() == "autoattack":
        from pyautoattack import AutoAttack

        version = str(p.get("version", "standard")).lower()
        if version not in ("standard", "plus", "rand"):
            raise NotImplementedError(f"AutoAttack version {version}: only standard, plus and rand are compared")
        aa = AutoAttack(net, norm="Linf", eps=p["eps"], version=version, seed=seed, device="cpu")
        aa.verbose = False
        adv = aa.run_standard_evaluation(x, y, batch_size=batch)
        if isinstance(adv, tuple):  # pyautoattack returns (x_adv, y_adv) in some versions
            adv = adv[0]
        out.append(robust_flags(net, x, y, adv))
    else:
        raise NotImplementedError(f"no reference for attack kind {kind}")
    return np.concatenate(out)


REFERENCE_NAMES = {
    "Pgd": "torchattacks.PGD",
    "Apgd": "AutoAttack APGDAttack",
    "Square": "AutoAttack SquareAttack",
    "ApgdT": "AutoAttack APGDAttack_targeted",
    "Fab": "AutoAttack FABAttack_PT",
    "AutoAttack": "AutoAttack(version=standard)",
}


def attack_kind(params: dict) -> tuple[str, dict]:
    if isinstance(params, str):
        return params, {}
    ((kind, p),) = params.items()
    return kind, p


def compare_attacks(dump: dict, folder: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int,
                    only: set[str] | None, seed: int) -> list[Row]:
    rows = []
    batch = dump["eval"]["batch"]
    has_autoattack = False
    for a in dump["attacks"]:
        kind, p = attack_kind(a["params"])
        if kind.lower() == "autoattack":
            has_autoattack = True
        what = f"{a['name']} eps={p.get('eps')} vs {REFERENCE_NAMES.get(kind, kind)}"
        if only is not None and a["name"] not in only:
            rows.append(not_run(what, "not selected (--attacks)"))
            continue
        flags = np.load(os.path.join(folder, a["file"]))[:n].astype(bool)
        started = time.perf_counter()
        try:
            ref = reference_attack(kind, p, net, x[:n], y[:n], batch, seed)
        except NotImplementedError as err:
            rows.append(not_run(what, str(err)))
            continue
        seconds = time.perf_counter() - started
        s, r = float(flags.mean()), float(ref.mean())
        both = int((flags & ref).sum())
        note = (f"robust in both {both}, only salient {int((flags & ~ref).sum())}, "
                f"only reference {int((~flags & ref).sum())}; reference {seconds:.0f} s")
        rows.append(check_row(what, n, s, r, s - r, ATTACK_TOL, note))
        print(f"compare.py: {what}: salient {s:.4f}, reference {r:.4f} ({seconds:.0f} s)", file=sys.stderr)
    if not has_autoattack:
        eps = sorted({attack_kind(a["params"])[1].get("eps") for a in dump["attacks"]} - {None})
        rows.append(not_run(f"autoattack vs AutoAttack(version=standard) eps={eps[-1] if eps else ''}",
                            "the spec has no `attack autoattack`"))
    return rows


# --- Saliency --------------------------------------------------------------------------------------


def log_prob(net: nn.Module):
    """Captum's forward function: log softmax(z); with target=y it differentiates log p_y."""
    return lambda inp: F.log_softmax(net(inp), dim=1)


def method_kind(method) -> tuple[str, dict]:
    if isinstance(method, str):
        return method, {}
    ((kind, p),) = method.items()
    return kind, p


def reference_map(method, net: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor | None,
                  channel_mean: list[float] | None = None) -> torch.Tensor:
    """The Captum map of one salient method (NCHW in, NCHW out); ``noise`` (samples, N, C, H, W)
    is SmoothGrad's noise."""
    from captum.attr import InputXGradient, IntegratedGradients, Saliency

    kind, p = method_kind(method)
    f = log_prob(net)
    y = y.long()
    if kind == "Gradient":
        return Saliency(f).attribute(x, target=y, abs=p["sign"] == "Absolute")
    if kind == "GradientInput":
        return InputXGradient(f).attribute(x, target=y)
    if kind == "IntegratedGradients":
        if p["baseline"] == "Zero":
            base = torch.zeros_like(x)
        elif p["baseline"] == "Mean" and channel_mean is not None:
            base = torch.tensor(channel_mean, dtype=x.dtype).reshape(1, -1, 1, 1).expand_as(x).contiguous()
        else:
            raise NotImplementedError(f"integrated gradients with a {p['baseline']} baseline")
        return IntegratedGradients(f).attribute(x, baselines=base, target=y, n_steps=p["steps"],
                                                method="riemann_middle", internal_batch_size=x.shape[0])
    if kind == "SmoothGrad":
        if noise is None:
            raise NotImplementedError("smoothgrad without salient's noise")
        sal = Saliency(f)
        grads = torch.stack([sal.attribute(x + e, target=y, abs=False) for e in noise])
        if p["variant"] == "Mean":
            return grads.mean(0)
        if p["variant"] == "Squared":
            return grads.square().mean(0)
        return grads.var(0, unbiased=False)
    raise NotImplementedError(f"no reference for saliency method {kind}")


REFERENCE_MAPS = {
    "Gradient": "captum Saliency",
    "GradientInput": "captum InputXGradient",
    "IntegratedGradients": "captum IntegratedGradients (riemann_middle)",
    "SmoothGrad": "captum Saliency on salient's noisy inputs",
}


def batched_map(method, net, x, y, noise, batch: int) -> np.ndarray:
    parts = []
    for i in range(0, x.shape[0], batch):
        nb = None if noise is None else noise[:, i:i + batch]
        parts.append(reference_map(method, net, x[i:i + batch], y[i:i + batch], nb).detach())
    return torch.cat(parts).numpy()


# --- Metrics (Quantus) -----------------------------------------------------------------------------


class ReplayNoise:
    """A Quantus ``perturb_func`` that adds salient's perturbation d_s at its s-th call."""

    def __init__(self, noise: np.ndarray) -> None:  # (samples, N, features)
        self.noise = noise
        self.calls = 0

    def __call__(self, arr: np.ndarray, indices=None, **kwargs) -> np.ndarray:
        d = self.noise[self.calls]
        self.calls += 1
        if d.shape != arr.shape:
            raise ValueError(f"perturbation {d.shape} for an input of {arr.shape}")
        return (arr + d).astype(arr.dtype)


def nchw_stack(maps: np.ndarray) -> np.ndarray:
    """(K, M, H, W, C) -> (K, M, C, H, W)."""
    return np.ascontiguousarray(maps.transpose(0, 1, 4, 2, 3))


class ReplayMaps:
    """A Quantus ``explain_func`` that returns salient's precomputed maps, the k-th array at the
    k-th call (MaxSensitivity explains x + d_s once per sample, in order)."""

    def __init__(self, maps: list[np.ndarray]) -> None:
        self.maps = maps
        self.calls = 0

    def __call__(self, model=None, inputs=None, targets=None, **kwargs) -> np.ndarray:
        a = self.maps[self.calls]
        self.calls += 1
        if inputs is not None and np.shape(inputs) != a.shape:
            raise ValueError(f"replayed map {a.shape} for inputs of {np.shape(inputs)}")
        return a


class ModelMaps:
    """A Quantus ``explain_func`` that returns salient's precomputed maps of the network it is
    called with (by identity): MPRT explains the trained network, then each randomised one."""

    def __init__(self, by_model: dict[int, np.ndarray]) -> None:
        self.by_model = by_model

    def __call__(self, model=None, inputs=None, targets=None, **kwargs) -> np.ndarray:
        if id(model) not in self.by_model:
            raise ValueError("no salient maps for this network")
        a = self.by_model[id(model)]
        if inputs is not None and np.shape(inputs) != a.shape:
            raise ValueError(f"salient's maps {a.shape} for inputs of {np.shape(inputs)}")
        return a


def explain_func_for(method):
    """A Quantus ``explain_func``: the Captum map of ``method`` (deterministic methods only)."""

    def explain(model, inputs, targets, **kwargs):
        xt = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        yt = torch.as_tensor(np.asarray(targets)).long()
        return reference_map(method, model, xt, yt, None).detach().numpy()

    return explain


@contextlib.contextmanager
def salient_randomisation(networks: list[tuple[str, nn.Module]]):
    """Make Quantus's PyTorchModel yield salient's cascade (the same randomised weights) instead of
    re-initialising layers with torch's generator."""
    from quantus.helpers.model.pytorch_model import PyTorchModel

    original = PyTorchModel.get_random_layer_generator
    original_len = PyTorchModel.random_layer_generator_length

    def generator(self, order="top_down", seed=42):
        if order != "top_down":
            raise ValueError("salient's cascade is top down")
        yield from networks

    PyTorchModel.get_random_layer_generator = generator
    PyTorchModel.random_layer_generator_length = property(lambda self: len(networks))
    try:
        yield
    finally:
        PyTorchModel.get_random_layer_generator = original
        PyTorchModel.random_layer_generator_length = original_len


def compare_metrics(dump: dict, folder: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    spec: dict) -> list[Row]:
    import quantus

    rows = []
    m = dump["map_examples"]
    kind, _ = method_kind(spec["method"])
    s_map = nchw(np.load(os.path.join(folder, spec["file"])))
    xb, yb, ab = x[:m].numpy(), y[:m].numpy(), s_map.numpy()
    name = spec["name"]
    files = spec.get("metrics", {})
    common = dict(disable_warnings=True, display_progressbar=False)
    # Quantus normalises by the max over the whole batch by default, then Sparseness adds 1e-7
    # to every value: for a confident example whose map is ~1e-7 that epsilon dominates. Both
    # metrics are scale-invariant in salient (and in the papers): normalise per example.
    per_example = dict(normalise=True, normalise_func_kwargs={"normalise_axes": (1, 2, 3)})
    if "sparseness" in files:
        ref = quantus.Sparseness(**per_example, **common)(model=net, x_batch=xb, y_batch=yb, a_batch=ab.copy(),
                                          batch_size=m, channel_first=True)
        rows.append(values_row(f"sparseness {name} vs quantus.Sparseness",
                               np.load(os.path.join(folder, files["sparseness"])), np.array(ref)))
    if "complexity" in files:
        ref = quantus.Complexity(**per_example, **common)(model=net, x_batch=xb, y_batch=yb, a_batch=ab.copy(),
                                          batch_size=m, channel_first=True)
        rows.append(values_row(f"complexity {name} vs quantus.Complexity",
                               np.load(os.path.join(folder, files["complexity"])), np.array(ref)))
    if "max_sensitivity" in files:
        what = f"max_sensitivity {name} vs quantus.MaxSensitivity"
        if kind == "SmoothGrad":
            rows.append(not_run(what, "the method's own noise inside the metric is not replayed"))
        else:
            meta = files["max_sensitivity_noise"]
            noise = np.load(os.path.join(folder, meta["file"]))  # (samples, M, H, W, C)
            noise = noise.transpose(0, 1, 4, 2, 3).reshape(noise.shape[0], m, -1)
            salient_values = np.load(os.path.join(folder, files["max_sensitivity"]))

            def run_metric(explain):
                metric = quantus.MaxSensitivity(nr_samples=meta["samples"], perturb_func=ReplayNoise(noise),
                                                lower_bound=meta["radius"], abs=False, normalise=False, **common)
                return np.array(metric(model=net, x_batch=xb, y_batch=yb, a_batch=ab.copy(), batch_size=m,
                                       channel_first=True, explain_func=explain), dtype=np.float64)

            if "max_sensitivity_maps" in files:
                maps = nchw_stack(np.load(os.path.join(folder, files["max_sensitivity_maps"])))
                rows.append(values_row(what + " (salient's maps)", salient_values, run_metric(ReplayMaps(list(maps))),
                                       note="salient's perturbations and its maps at x + d: the definition"))
            rows.append(info(values_row(what + " (captum's maps)", salient_values,
                                        run_metric(explain_func_for(spec["method"]))),
                             "end to end: the maps at x + d from captum, so the map differences add in"))
    if "randomization" in files:
        meta = files["randomization"]
        what = f"randomization {name} vs quantus.MPRT"
        if kind == "SmoothGrad":
            rows.append(not_run(what, "the method's own noise on the randomised networks is not replayed"))
        else:
            import copy

            salient_rho = np.load(os.path.join(folder, meta["file"])).reshape(meta["shape"])
            nets = []
            for step in dump["randomized_networks"]:
                r = copy.deepcopy(net)
                r.layers.load_state_dict({k.removeprefix("layers."): v for k, v in torch_eval.read_safetensors(
                    os.path.join(folder, step["file"])).items()}, strict=True)
                nets.append((step["name"], r.eval()))

            def run_mprt(explain):
                with salient_randomisation(nets):
                    metric = quantus.MPRT(layer_order="top_down", abs=True, normalise=True, **common)
                    return metric(model=net, x_batch=xb, y_batch=yb, a_batch=ab.copy(), batch_size=m,
                                  channel_first=True, explain_func=explain)

            variants = []
            if "randomization_maps" in files:
                maps = nchw_stack(np.load(os.path.join(folder, files["randomization_maps"])))
                by_model = {id(net): s_map.numpy()}
                by_model.update({id(r): maps[k] for k, (_, r) in enumerate(nets)})
                variants.append(("salient's maps", ModelMaps(by_model), False,
                                 "salient's randomised weights and maps: the definition"))
            variants.append(("captum's maps", explain_func_for(spec["method"]), True,
                             "end to end: salient's randomised weights, the maps from captum"))
            for label, explain, end_to_end, note in variants:
                scores = run_mprt(explain)
                for k, layer_name in enumerate(meta["names"]):
                    ref = np.array(scores[layer_name], dtype=np.float64)
                    # salient counts a constant map as rho = 0; scipy gives NaN
                    ref = np.where(np.isnan(ref), 0.0, ref)
                    row = values_row(f"{what}, after {layer_name} ({label})", salient_rho[k], ref)
                    rows.append(info(row, note) if end_to_end else dataclasses.replace(row, note=note + "; " + row.note))
    return rows


# --- Main ------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", help="folder written by validate_dump")
    ap.add_argument("--attack-images", type=int, default=None,
                    help="compare the attacks on the first N dumped examples (default: all)")
    ap.add_argument("--attacks", default=None, help="comma-separated attack names to run (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: attacks,maps,metrics")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", default=None, help="also write the table (Markdown) to this file")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = args.dump
    with open(os.path.join(folder, "dump.json")) as fh:
        dump = json.load(fh)
    skip = set(filter(None, args.skip.split(",")))
    net = load_net(dump["model"], dump["mean"], dump["std"], dump["weights"])
    for p in net.parameters():
        p.requires_grad_(False)
    images = np.load(os.path.join(folder, "images.npy"))
    x = nchw(images)
    y = torch.from_numpy(np.load(os.path.join(folder, "labels.npy"))).long()
    rows = []

    salient_logits = np.load(os.path.join(folder, "logits.npy"))
    with torch.no_grad():
        logits = torch.cat([net(xb) for xb in x.split(500)]).numpy()
    err = float(np.abs(logits - salient_logits).max() / np.abs(salient_logits).max())
    agree = float((logits.argmax(1) == salient_logits.argmax(1)).mean())
    rows.append(check_row("network: logits vs PyTorch (max rel. err)", len(x), float((salient_logits.argmax(1) == y.numpy()).mean()),
                          float((logits.argmax(1) == y.numpy()).mean()), err, LOGIT_TOL,
                          f"salient/reference columns: clean accuracy; argmax agreement {agree:.4f}"))

    if "attacks" not in skip:
        n = min(args.attack_images or dump["n"], dump["n"])
        only = set(args.attacks.split(",")) if args.attacks else None
        rows += compare_attacks(dump, folder, net, x, y, n, only, args.seed)
    m = dump["map_examples"]
    net64 = load_net(dump["model"], dump["mean"], dump["std"], dump["weights"]).double()
    for p in net64.parameters():
        p.requires_grad_(False)
    p_true = torch.softmax(torch.from_numpy(salient_logits).double(), 1)[torch.arange(len(y)), y].numpy()
    for spec in dump["saliency"]:
        kind, _ = method_kind(spec["method"])
        what = f"map {spec['name']} vs {REFERENCE_MAPS.get(kind, kind)}"
        if "maps" not in skip:
            noise = None
            if "noise_file" in spec:
                noise = np.load(os.path.join(folder, spec["noise_file"]))  # (samples, M, H, W, C)
                noise = torch.from_numpy(noise).permute(0, 1, 4, 2, 3).contiguous()
            try:
                ref = batched_map(spec["method"], net, x[:m], y[:m], noise, dump["eval"]["batch"])
                ref64 = batched_map(spec["method"], net64, x[:m].double(), y[:m],
                                    None if noise is None else noise.double(), dump["eval"]["batch"])
            except NotImplementedError as err:
                rows.append(not_run(what, str(err)))
            else:
                rows += map_rows(what, np.load(os.path.join(folder, spec["file"])), nhwc(ref), nhwc(ref64),
                                 p_true[:m])
        if "metrics" not in skip:
            rows += compare_metrics(dump, folder, net, x, y, spec)

    table = render_table(rows)
    print(table)
    if args.table:
        with open(args.table, "w") as fh:
            fh.write(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([dataclasses.asdict(r) for r in rows], fh, indent=1)
    return exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
