"""Time the official AutoAttack (pyautoattack, Croce and Hein's code) per component on the images
and weights a `validate_dump` run wrote (bench/aa_speed/run.sh does both sides).

    bench/.venv/bin/python bench/aa_speed/official.py DUMP_DIR [--eps 0.1] [--threads 2]

DUMP_DIR holds validate_dump's images.npy, labels.npy and dump.json (model, mean, std, weights).
Runs AutoAttack(version='standard', norm='Linf') on all images in one batch and prints, per
component, the wall time of its perturb() calls and the points it ran on, then the robust
accuracy, as one JSON line.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "validate"))
sys.path.insert(0, os.path.dirname(HERE))

import compare  # noqa: E402  (bench/validate/compare.py: the PyTorch twin of salient's network)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.dump, "dump.json")) as fh:
        dump = json.load(fh)
    net = compare.load_net(dump["model"], dump["mean"], dump["std"], dump["weights"])
    x = compare.nchw(np.load(os.path.join(args.dump, "images.npy")))
    y = torch.from_numpy(np.load(os.path.join(args.dump, "labels.npy"))).long()

    from pyautoattack import AutoAttack

    aa = AutoAttack(net, norm="Linf", eps=args.eps, version="standard", seed=args.seed, device="cpu")
    aa.verbose = False
    times: dict = {}
    points: dict = {}

    def timed(name, attack):
        inner = attack.perturb

        def perturb(xb, yb, *a, **k):
            t0 = time.perf_counter()
            out = inner(xb, yb, *a, **k)
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0
            points[name] = points.get(name, 0) + int(xb.shape[0])
            print(f"official: {name} on {int(xb.shape[0])} points: {times[name]:.3f} s", file=sys.stderr, flush=True)
            return out

        attack.perturb = perturb

    # In the standard version each component object runs once per batch in this order:
    # apgd (ce), apgd_targeted (apgd-t), fab (fab-t), square.
    timed("apgd-ce", aa.apgd)
    timed("apgd-t", aa.apgd_targeted)
    timed("fab-t", aa.fab)
    timed("square", aa.square)
    t0 = time.perf_counter()
    adv = aa.run_standard_evaluation(x, y, batch_size=len(x))
    total = time.perf_counter() - t0
    if isinstance(adv, tuple):
        adv = adv[0]
    robust = compare.robust_flags(net, x, y, adv)
    print(json.dumps({"impl": "official", "images": len(x), "eps": args.eps, "threads": args.threads,
                      "seconds": {k: round(v, 2) for k, v in times.items()}, "points": points,
                      "total_s": round(total, 2), "robust_accuracy": float(robust.mean())}))


if __name__ == "__main__":
    main()
