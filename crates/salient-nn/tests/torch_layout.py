#!/usr/bin/env python3
"""Checks a checkpoint written by salient-nn from Python, with `safetensors.numpy`.

`tests/checkpoint.rs::layout_fixture_for_python` writes the file to a temporary directory and
runs this script on it (`cargo test -p salient-nn --test checkpoint layout_fixture_for_python`).

It asserts the PyTorch layout: conv weight (out, in, kh, kw) with
W[o, i, y, x] = 1000*o + 100*i + 10*y + x (the engine stored it as [y][x][i][o]), dense
weight (out, in) with W[o, i] = 100*o + i (engine [i][o]), float32 everywhere, and the header
metadata. Needs safetensors and numpy (bench/.venv plus
`pip install --no-deps -r crates/salient-nn/tests/requirements-layout.txt`); the Rust test fails
under CI without them and says SKIPPED elsewhere.
"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

K, CIN, COUT, IN, OUT = 3, 2, 4, 5, 3


def main(path: str) -> None:
    t = load_file(path)
    assert set(t) == {
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.running_var",
        "layers.3.weight",
        "layers.3.scale",
    }, sorted(t)
    for name, a in t.items():
        assert a.dtype == np.float32, (name, a.dtype)

    conv = t["layers.0.weight"]
    assert conv.shape == (COUT, CIN, K, K), conv.shape
    o, i, y, x = np.meshgrid(
        np.arange(COUT), np.arange(CIN), np.arange(K), np.arange(K), indexing="ij"
    )
    np.testing.assert_array_equal(conv, 1000 * o + 100 * i + 10 * y + x)

    dense = t["layers.3.weight"]
    assert dense.shape == (OUT, IN), dense.shape
    o, i = np.meshgrid(np.arange(OUT), np.arange(IN), indexing="ij")
    np.testing.assert_array_equal(dense, 100 * o + i)

    np.testing.assert_array_equal(t["layers.0.bias"], [0.5, -1.5, 2.5, -0.0])
    np.testing.assert_array_equal(t["layers.1.running_var"], [1, 2, 3, 4])
    assert t["layers.3.scale"].shape == () and t["layers.3.scale"] == 7.25

    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta == {"written_by": "salient-nn tests"}, meta

    print(json.dumps({"ok": True, "tensors": {k: list(v.shape) for k, v in sorted(t.items())}}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} CHECKPOINT.safetensors")
    main(sys.argv[1])
