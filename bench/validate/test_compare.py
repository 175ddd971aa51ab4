"""Fast tests of bench/validate/compare.py: the table and tolerance logic, the weight loader on a
tiny model, the layout conversions, the noise replay and one Captum map against a hand formula.
No training, no dump: `bench/.venv/bin/python -m pytest bench/validate/test_compare.py`."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402


# --- table and tolerances --------------------------------------------------------------------------


def test_check_row_passes_at_the_tolerance_and_fails_above_it():
    assert compare.check_row("a", 10, 0.5, 0.49, 0.01, 0.01).status == "PASS"
    assert compare.check_row("a", 10, 0.5, 0.49, -0.01, 0.01).status == "PASS"
    assert compare.check_row("a", 10, 0.5, 0.48, 0.0101, 0.01).status == "FAIL"
    assert compare.check_row("a", 10, 0.5, 0.48, -0.0101, 0.01).status == "FAIL"


def test_check_row_passes_exactly_one_point_despite_rounding():
    s, r = 131 / 200, 133 / 200  # two examples of 200: one point
    assert abs(s - r) > 0.01  # in binary floating point
    assert compare.check_row("a", 200, s, r, s - r, 0.01).status == "PASS"
    assert compare.check_row("a", 200, s, 0.668, s - 0.668, 0.01).status == "FAIL"


def test_check_row_fails_on_nan_and_inf():
    assert compare.check_row("a", 1, 0.0, 0.0, float("nan"), 1.0).status == "FAIL"
    assert compare.check_row("a", 1, 0.0, 0.0, float("inf"), 1.0).status == "FAIL"


def test_exit_code_is_one_only_with_a_failure():
    ok = compare.check_row("a", 1, 0.0, 0.0, 0.0, 1.0)
    bad = compare.check_row("b", 1, 0.0, 2.0, 2.0, 1.0)
    skipped = compare.not_run("c", "why")
    assert compare.exit_code([ok, skipped]) == 0
    assert compare.exit_code([ok, bad, skipped]) == 1


def test_render_table_has_one_line_per_row_and_the_verdicts():
    rows = [compare.check_row("pgd eps=0.1", 1000, 0.662, 0.665, -0.003, 0.01, "note here"),
            compare.not_run("autoattack", "no spec")]
    table = compare.render_table(rows).strip().splitlines()
    assert len(table) == 4
    assert table[2].startswith("| pgd eps=0.1 | 1000 | 0.6620 | 0.6650 | -0.0030 | 0.0100 | PASS | note here |")
    assert "not run" in table[3] and "no spec" in table[3]


def test_map_errors_are_relative_to_each_images_max():
    ref = np.array([[1.0, -2.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    sal = np.array([[1.0, -2.0002, 0.0], [0.0, 0.0, 0.0], [0.0, 1e-9, 0.0]])
    err = compare.map_errors(sal, ref)
    assert err[0] == pytest.approx(1e-4)  # 0.0002 / 2
    assert err[1] == 0.0  # both all zero
    assert math.isinf(err[2])  # salient non-zero where the reference is all zero


def test_map_row_counts_the_images_over_the_tolerance():
    ref = np.ones((4, 2, 2, 1))
    sal = ref.copy()
    sal[1, 0, 0, 0] += 1e-3
    row = compare.map_row("m", sal, ref)
    assert row.status == "FAIL"
    assert row.difference == pytest.approx(1e-3)
    assert "1/4 images over" in row.note and "worst image 1" in row.note
    assert compare.map_row("m", ref, ref).status == "PASS"


def test_values_row_leaves_out_nan_examples_and_takes_the_worst_difference():
    row = compare.values_row("v", np.array([0.1, np.nan, 0.3]), np.array([0.1005, 0.2, 0.3]))
    assert row.n == 2 and row.status == "PASS"
    assert row.difference == pytest.approx(5e-4)
    assert "1 left out" in row.note
    assert compare.values_row("v", np.array([0.1, 0.2]), np.array([0.1, 0.2021])).status == "FAIL"


def test_values_row_rejects_different_lengths():
    with pytest.raises(ValueError):
        compare.values_row("v", np.zeros(3), np.zeros(4))


# --- the network loader ----------------------------------------------------------------------------

TINY = {
    "name": "tiny",
    "input": {"Image": {"c": 2, "h": 4, "w": 4}},
    "layers": [
        {"name": "conv1", "kind": {"Conv": {"out": 3, "kernel": 3, "stride": 1, "padding": 1}},
         "input": {"Image": {"c": 2, "h": 4, "w": 4}}},
        {"name": "relu1", "kind": "Relu", "input": {"Image": {"c": 3, "h": 4, "w": 4}}},
        {"name": "maxpool1", "kind": {"MaxPool": {"size": 2, "stride": 2}}, "input": {"Image": {"c": 3, "h": 4, "w": 4}}},
        {"name": "flatten1", "kind": "Flatten", "input": {"Image": {"c": 3, "h": 2, "w": 2}}},
        {"name": "dense1", "kind": {"Dense": {"out": 5}}, "input": {"Flat": 12}},
    ],
}


def tiny_weights(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    w = {
        "layers.0.weight": torch.randn(3, 2, 3, 3, generator=g),
        "layers.0.bias": torch.randn(3, generator=g),
        "layers.4.weight": torch.randn(5, 12, generator=g),
        "layers.4.bias": torch.randn(5, generator=g),
    }
    path = str(tmp_path / "model.safetensors")
    save_file(w, path)
    return w, path


def test_loader_builds_the_network_with_normalisation_and_salient_names(tmp_path):
    w, path = tiny_weights(tmp_path)
    mean, std = [0.2, 0.4], [0.5, 0.25]
    net = compare.load_net(TINY, mean, std, path)
    x = torch.rand(6, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    xn = (x - torch.tensor(mean).reshape(1, 2, 1, 1)) / torch.tensor(std).reshape(1, 2, 1, 1)
    h = F.max_pool2d(F.relu(F.conv2d(xn, w["layers.0.weight"], w["layers.0.bias"], padding=1)), 2)
    want = F.linear(h.flatten(1), w["layers.4.weight"], w["layers.4.bias"])
    with torch.no_grad():
        got = net(x)
    assert torch.allclose(got, want, atol=1e-5)


def test_loader_rejects_missing_weights(tmp_path):
    from safetensors.torch import save_file

    w, _ = tiny_weights(tmp_path)
    del w["layers.4.bias"]
    path = str(tmp_path / "partial.safetensors")
    save_file(w, path)
    with pytest.raises(RuntimeError):
        compare.load_net(TINY, [0.0], [1.0], path)


def test_channels_last_round_trip():
    a = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)  # N, H, W, C
    t = compare.nchw(a)
    assert t.shape == (2, 2, 3, 4)
    assert t[1, 1, 2, 3] == a[1, 2, 3, 1]
    assert np.array_equal(compare.nhwc(t), a)


# --- noise replay and a Captum map -----------------------------------------------------------------


def test_replay_noise_adds_the_samples_in_call_order():
    noise = np.stack([np.full((2, 3), 0.1 * (s + 1), dtype=np.float32) for s in range(3)])
    replay = compare.ReplayNoise(noise)
    x = np.zeros((2, 3), dtype=np.float32)
    for s in range(3):
        assert np.allclose(replay(arr=x, indices=None, lower_bound=0.1), 0.1 * (s + 1))
    with pytest.raises(ValueError):
        compare.ReplayNoise(noise)(arr=np.zeros((3, 3), dtype=np.float32))


def test_gradient_map_of_a_linear_model_is_the_log_softmax_gradient():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(5, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 0, 1])
    W = lin[1].weight.detach()
    p = F.softmax(lin(x), dim=1).detach()
    want = (W[y] - p @ W).reshape(5, 1, 2, 2)  # d log p_y / dx = W_y - sum_j p_j W_j
    got = compare.reference_map({"Gradient": {"sign": "Signed"}}, lin, x, y, None)
    assert torch.allclose(got, want, atol=1e-6)
    absolute = compare.reference_map({"Gradient": {"sign": "Absolute"}}, lin, x, y, None)
    assert torch.allclose(absolute, want.abs(), atol=1e-6)
    # SmoothGrad with all-zero noise is the gradient itself.
    smooth = compare.reference_map({"SmoothGrad": {"samples": 2, "sigma": 0.1, "variant": "Mean"}}, lin, x, y,
                                   torch.zeros(2, 5, 1, 2, 2))
    assert torch.allclose(smooth, want, atol=1e-6)


def test_info_rows_do_not_change_the_exit_code():
    bad = compare.check_row("b", 1, 0.0, 2.0, 2.0, 1.0, "n")
    row = compare.info(bad, "why")
    assert row.status == "INFO" and row.note == "why; n" and row.difference == 2.0
    assert compare.exit_code([row]) == 0


def test_map_rows_judge_only_the_well_conditioned_images():
    ref = np.ones((3, 2, 2, 1))
    sal = ref.copy()
    sal[0] += 0.5  # image 0 is ill-conditioned (1 - p_y < 1e-2): reported, not judged
    p_true = np.array([0.9999, 0.5, 0.2])
    judged, everything = compare.map_rows("m", sal, ref, ref, p_true)
    assert judged.status == "PASS" and judged.n == 2
    assert everything.status == "INFO" and everything.n == 3 and "1/3 images over" in everything.note
    sal[2] += 1e-3
    judged, _ = compare.map_rows("m", sal, ref, ref, p_true)
    assert judged.status == "FAIL" and "worst image 2" in judged.note


def test_replayed_maps_come_back_in_call_order_and_by_network():
    maps = [np.full((2, 1, 2, 2), float(k)) for k in range(3)]
    replay = compare.ReplayMaps(maps)
    for k in range(3):
        assert np.all(replay(model=None, inputs=np.zeros((2, 1, 2, 2)), targets=None) == k)
    a, b = object(), object()
    by = compare.ModelMaps({id(a): maps[1], id(b): maps[2]})
    assert np.all(by(model=b, inputs=np.zeros((2, 1, 2, 2))) == 2)
    with pytest.raises(ValueError):
        by(model=object(), inputs=np.zeros((2, 1, 2, 2)))
