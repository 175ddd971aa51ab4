"""Unit tests for the benchmark harness's Python parts.

Run: bench/.venv/bin/python -m unittest discover -s bench -p 'test_*.py'
(the bench_table tests need only the standard library; the torch_train, torch_eval and
torch_regimes tests are skipped when torch is not importable, e.g. under a Python without
bench/.venv).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest
import unittest.mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_table  # noqa: E402

try:
    import torch  # noqa: F401

    import torch_eval  # noqa: E402
    import torch_regimes  # noqa: E402
    import torch_train  # noqa: E402

    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

MNIST_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist")


def line(**fields) -> str:
    base = {"impl": "salient", "model": "quickstart", "batch": 128, "steps": 10, "img_per_s": 100.0}
    base.update(fields)
    return json.dumps(base)


class ParseProgramOutput(unittest.TestCase):
    def test_picks_the_json_line_among_log_lines(self):
        text = "compiling...\n" + line(img_per_s=42.5) + "\ndone\n"
        self.assertEqual(bench_table.parse_program_output(text, "x")["img_per_s"], 42.5)

    def test_rejects_no_json_line(self):
        with self.assertRaisesRegex(bench_table.BenchError, "found 0"):
            bench_table.parse_program_output("no json here\n", "x")

    def test_rejects_two_json_lines(self):
        with self.assertRaisesRegex(bench_table.BenchError, "found 2"):
            bench_table.parse_program_output(line() + "\n" + line() + "\n", "x")

    def test_rejects_broken_json_naming_the_line(self):
        with self.assertRaisesRegex(bench_table.BenchError, "line 2"):
            bench_table.parse_program_output("log\n{\"impl\": \n", "x")


class Validate(unittest.TestCase):
    def test_accepts_a_matching_result(self):
        bench_table.validate(json.loads(line()), "salient", "quickstart", "x")

    def test_rejects_another_model(self):
        with self.assertRaisesRegex(bench_table.BenchError, "'model'"):
            bench_table.validate(json.loads(line(model="ismail")), "salient", "quickstart", "x")

    def test_rejects_another_impl(self):
        with self.assertRaisesRegex(bench_table.BenchError, "'impl'"):
            bench_table.validate(json.loads(line()), "pytorch", "quickstart", "x")

    def test_rejects_non_positive_or_non_finite_rates(self):
        for bad in (0, -3.0, "fast", None, True):
            with self.subTest(rate=bad), self.assertRaisesRegex(bench_table.BenchError, "img_per_s"):
                bench_table.validate(json.loads(line(img_per_s=bad)), "salient", "quickstart", "x")
        result = json.loads(line())
        result["img_per_s"] = float("nan")
        with self.assertRaisesRegex(bench_table.BenchError, "img_per_s"):
            bench_table.validate(result, "salient", "quickstart", "x")

    def test_rejects_missing_steps(self):
        result = json.loads(line())
        del result["steps"]
        with self.assertRaisesRegex(bench_table.BenchError, "'steps'"):
            bench_table.validate(result, "salient", "quickstart", "x")


class Record(unittest.TestCase):
    def record(self, stdout: str, input_grad: int) -> tuple[int, str, str]:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "r.jsonl")
            argv = ["record", "--out", path, "--impl", "salient", "--model", "quickstart",
                    "--input-grad", str(input_grad), "--repeat", "2"]
            err = io.StringIO()
            with unittest.mock.patch("sys.stdin", io.StringIO(stdout)), contextlib.redirect_stderr(err):
                code = bench_table.main(argv)
            written = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
            return code, written, err.getvalue()

    def test_appends_the_annotated_result(self):
        code, written, _ = self.record("warming up\n" + line(img_per_s=7.5) + "\n", 1)
        self.assertEqual(code, 0)
        result = json.loads(written)
        self.assertEqual((result["img_per_s"], result["input_grad"], result["repeat"]), (7.5, True, 2))

    def test_rejects_a_run_of_the_other_variant(self):
        code, written, err = self.record(line(input_grad=True) + "\n", 0)
        self.assertEqual((code, written), (1, ""))
        self.assertIn("input_grad", err)


class Render(unittest.TestCase):
    def render(self, records: list[dict]) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "r.jsonl")
            with open(path, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in records)
            args = bench_table.parse_args(["render", "--in", path, "--machine", "Test CPU", "--cores", "2"])
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(bench_table.render(args), 0)
            return out.getvalue()

    def test_medians_ratio_and_verdict(self):
        records = [
            {"impl": "salient", "model": "ismail", "batch": 128, "steps": 5, "img_per_s": r, "input_grad": False}
            for r in (290.0, 300.0, 1000.0)
        ] + [
            {"impl": "pytorch", "model": "ismail", "batch": 128, "steps": 5, "img_per_s": r, "input_grad": False,
             "torch": "2.15.0", "warmup": 2}
            for r in (100.0, 250.0, 50.0)
        ]
        table = self.render(records)
        # medians 300 and 100 -> 3.00x, meets the 1.5x target; ranges shown.
        self.assertIn("| ismail | no | 300 (290–1,000) | 100 (50–250) | 3.00× | yes |", table)
        self.assertIn("Test CPU, 2 cores", table)
        self.assertIn("torch 2.15.0", table)

    def test_below_target_and_missing_side(self):
        records = [
            {"impl": "salient", "model": "quickstart", "batch": 128, "steps": 5, "img_per_s": 140.0, "input_grad": True},
            {"impl": "pytorch", "model": "quickstart", "batch": 128, "steps": 5, "img_per_s": 100.0, "input_grad": True},
            {"impl": "pytorch", "model": "ismail", "batch": 128, "steps": 5, "img_per_s": 80.0, "input_grad": False},
        ]
        table = self.render(records)
        self.assertIn("| quickstart | yes | 140 | 100 | 1.40× | no |", table)
        self.assertIn("| ismail | no | — | 80 | — | — |", table)

    def test_empty_results_file_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "empty.jsonl")
            open(path, "w").close()
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                self.assertEqual(bench_table.main(["render", "--in", path]), 1)
            self.assertIn("no results recorded", err.getvalue())


@unittest.skipUnless(HAVE_TORCH, "torch not importable (run bench/setup.sh)")
class TorchTrain(unittest.TestCase):
    def test_models_map_a_batch_to_ten_logits(self):
        for name, params in (("quickstart", 215_370), ("ismail", 1_199_882)):
            with self.subTest(model=name):
                model = torch_train.build_model(name)
                self.assertEqual(model(torch.rand(3, 1, 28, 28)).shape, (3, 10))
                self.assertEqual(sum(p.numel() for p in model.parameters()), params)

    def test_run_reports_throughput_and_input_gradient(self):
        args = torch_train.parse_args(
            ["--model", "quickstart", "--batch", "4", "--steps", "2", "--warmup", "1", "--threads", "1", "--input-grad"]
        )
        result = torch_train.run(args)
        self.assertEqual(
            {k: result[k] for k in ("impl", "model", "batch", "steps", "threads", "input_grad")},
            {"impl": "pytorch", "model": "quickstart", "batch": 4, "steps": 2, "threads": 1, "input_grad": True},
        )
        self.assertGreater(result["img_per_s"], 0)
        self.assertEqual(result["torch"], torch.__version__)

    def test_training_lowers_the_loss_on_a_fixed_batch(self):
        short = torch_train.run(torch_train.parse_args(["--model", "quickstart", "--batch", "8", "--steps", "1", "--warmup", "0"]))
        longer = torch_train.run(torch_train.parse_args(["--model", "quickstart", "--batch", "8", "--steps", "20", "--warmup", "0"]))
        self.assertLess(longer["final_loss"], short["final_loss"])

    def test_rejects_bad_arguments(self):
        for argv in (["--model", "resnet"], ["--model", "ismail", "--steps", "0"], ["--model", "ismail", "--warmup", "-1"]):
            with self.subTest(argv=argv), contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                torch_train.parse_args(argv)


# --- Evaluation and regime tables -------------------------------------------------------------


def eval_line(**fields) -> str:
    base = {"impl": "salient", "task": "pgd", "images": 1000, "batch": 500, "img_per_s": 50.0,
            "clean_accuracy": 0.99, "robust_accuracy": 0.01}
    base.update(fields)
    return json.dumps(base)


def regime_line(**fields) -> str:
    base = {"impl": "salient", "regime": "sgt", "batch": 128, "steps": 20, "ms_per_step": 120.0}
    base.update(fields)
    return json.dumps(base)


def run_main(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with unittest.mock.patch("sys.stdin", io.StringIO(stdin)), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = bench_table.main(argv)
    return code, out.getvalue(), err.getvalue()


def write_records(directory: str, records: list[dict]) -> str:
    path = os.path.join(directory, "r.jsonl")
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    return path


class ValidateEval(unittest.TestCase):
    def test_accepts_pgd_and_saliency_results(self):
        bench_table.validate_eval(json.loads(eval_line()), "salient", "pgd", "x")
        saliency = json.loads(eval_line(task="saliency", gini=0.55, deletion_auc=0.26))
        del saliency["robust_accuracy"]
        bench_table.validate_eval(saliency, "salient", "saliency", "x")

    def test_rejects_another_task_or_impl(self):
        with self.assertRaisesRegex(bench_table.BenchError, "'task'"):
            bench_table.validate_eval(json.loads(eval_line()), "salient", "saliency", "x")
        with self.assertRaisesRegex(bench_table.BenchError, "'impl'"):
            bench_table.validate_eval(json.loads(eval_line()), "pytorch", "pgd", "x")

    def test_rejects_missing_or_out_of_range_values(self):
        for field, bad in (("robust_accuracy", None), ("robust_accuracy", 1.5), ("clean_accuracy", -0.1),
                           ("img_per_s", 0), ("img_per_s", float("inf")), ("images", 0), ("batch", True)):
            result = json.loads(eval_line())
            result[field] = bad
            with self.subTest(field=field, value=bad), self.assertRaisesRegex(bench_table.BenchError, field):
                bench_table.validate_eval(result, "salient", "pgd", "x")

    def test_saliency_needs_its_metric_values(self):
        result = json.loads(eval_line(task="saliency", gini=0.5))
        with self.assertRaisesRegex(bench_table.BenchError, "deletion_auc"):
            bench_table.validate_eval(result, "salient", "saliency", "x")


class RecordEvalAndRegime(unittest.TestCase):
    def test_record_eval_appends_with_the_repeat(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "e.jsonl")
            argv = ["record-eval", "--out", path, "--impl", "pytorch", "--task", "pgd", "--repeat", "3"]
            code, _, _ = run_main(argv, "log line\n" + eval_line(impl="pytorch", img_per_s=12.5) + "\n")
            self.assertEqual(code, 0)
            with open(path, encoding="utf-8") as handle:
                result = json.loads(handle.read())
            self.assertEqual((result["img_per_s"], result["repeat"], result["impl"]), (12.5, 3, "pytorch"))

    def test_record_regime_rejects_a_non_positive_time(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "r.jsonl")
            argv = ["record-regime", "--out", path, "--impl", "salient", "--regime", "sgt", "--repeat", "1"]
            code, _, err = run_main(argv, regime_line(ms_per_step=0) + "\n")
            self.assertEqual(code, 1)
            self.assertIn("ms_per_step", err)
            self.assertFalse(os.path.exists(path))

    def test_record_regime_rejects_another_regime(self):
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["record-regime", "--out", os.path.join(tmp, "r.jsonl"), "--impl", "salient", "--regime",
                    "trades", "--repeat", "1"]
            code, _, err = run_main(argv, regime_line() + "\n")
            self.assertEqual(code, 1)
            self.assertIn("'regime'", err)


class RenderEval(unittest.TestCase):
    def render(self, records: list[dict]) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            code, out, err = run_main(["render-eval", "--in", write_records(tmp, records), "--threads", "2"])
            self.assertEqual(code, 0, err)
            return out

    def records(self, weights):
        pgd = [dict(json.loads(eval_line(impl=impl, img_per_s=rate, robust_accuracy=robust)), weights=weights)
               for impl, rate, robust in (("salient", 100.0, 0.02), ("pytorch", 40.0, 0.03), ("salient", 120.0, 0.02),
                                          ("pytorch", 50.0, 0.01), ("salient", 300.0, 0.02), ("pytorch", 45.0, 0.05))]
        saliency = [dict(json.loads(eval_line(impl=impl, task="saliency", img_per_s=rate, gini=gini,
                                              deletion_auc=0.25)), weights=weights)
                    for impl, rate, gini in (("salient", 200.0, 0.5513), ("pytorch", 400.0, 0.5512))]
        return pgd + saliency

    def test_medians_ratio_and_sanity_values(self):
        table = self.render(self.records("runs/m.safetensors"))
        # pgd medians 120 (100-300) and 45 (40-50): 2.67x; robust accuracy medians 0.02 and 0.03.
        self.assertIn("| pgd | 120 (100–300) | 45 (40–50) | 2.67× | clean accuracy 0.9900, robust accuracy 0.0200 | "
                      "clean accuracy 0.9900, robust accuracy 0.0300 |", table)
        self.assertIn("| saliency | 200 | 400 | 0.50× | clean accuracy 0.9900, gini 0.5513, deletion auc 0.2500 |", table)
        self.assertIn("same weights (runs/m.safetensors)", table)

    def test_random_weights_are_flagged_as_not_comparable(self):
        self.assertIn("**not** comparable", self.render(self.records(None)))

    def test_missing_side(self):
        table = self.render([json.loads(eval_line(impl="pytorch", img_per_s=80.0))])
        self.assertIn("| pgd | — | 80 | — | — | clean accuracy 0.9900, robust accuracy 0.0100 |", table)

    def test_method_describes_only_the_tasks_run(self):
        table = self.render([json.loads(eval_line(eps=0.3, step_size=0.01, steps=40))])
        self.assertIn("eps 0.3, step 0.01, 40 steps", table)
        self.assertNotIn("deletion AUC", table)

    def test_a_file_of_the_other_benchmark_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            code, _, err = run_main(["render-eval", "--in", write_records(tmp, [json.loads(regime_line())])])
            self.assertEqual(code, 1)
            self.assertIn("not a results file of this benchmark", err)


class RenderRegimes(unittest.TestCase):
    def render(self, records: list[dict]) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            code, out, err = run_main(["render-regimes", "--in", write_records(tmp, records)])
            self.assertEqual(code, 0, err)
            return out

    def test_ratios_to_standard_and_speed_ratio(self):
        rows = [("salient", "standard", 20.0), ("pytorch", "standard", 40.0), ("salient", "standard", 22.0),
                ("pytorch", "standard", 44.0), ("salient", "standard", 18.0), ("pytorch", "standard", 36.0),
                ("salient", "pgd_at", 230.0), ("pytorch", "pgd_at", 400.0)]
        table = self.render([json.loads(regime_line(impl=i, regime=r, ms_per_step=ms)) for i, r, ms in rows])
        # standard medians 20 and 40: PyTorch / salient speed 2.00x.
        self.assertIn("| standard | 20.0 (18.0–22.0) | 1.00× | 40.0 (36.0–44.0) | 1.00× | 2.00× |", table)
        # pgd_at: 230 / 20 = 11.50x, 400 / 40 = 10.00x, speed 400 / 230 = 1.74x.
        self.assertIn("| pgd_at | 230.0 | 11.50× | 400.0 | 10.00× | 1.74× |", table)

    def test_without_standard_or_one_side(self):
        table = self.render([json.loads(regime_line(impl="pytorch", regime="trades", ms_per_step=300.0))])
        self.assertIn("| trades | — | — | 300.0 | — | — |", table)


# --- PyTorch sides of the evaluation and regime benchmarks -----------------------------------------


class Linear2(torch.nn.Module if HAVE_TORCH else object):
    """z_0 = v . x + b, z_1 = 0: a two-class linear model with a known attack and saliency."""

    def __init__(self, v, b=0.0):
        super().__init__()
        self.v = torch.tensor(v, dtype=torch.float32)
        self.b = b

    def forward(self, x):
        z0 = x @ self.v + self.b
        return torch.stack([z0, torch.zeros_like(z0)], dim=1)


@unittest.skipUnless(HAVE_TORCH, "torch not importable (run bench/setup.sh)")
class TorchEval(unittest.TestCase):
    def test_gini_hand_values(self):
        scores = torch.tensor([[0.0, 0.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]])
        # docs/metrics.md: (0, 0, 1, 3) -> 0.625; uniform -> 0; all-zero -> 0; one non-zero -> 1 - 1/N.
        for got, want in zip(torch_eval.gini(scores).tolist(), (0.625, 0.0, 0.0, 0.75)):
            self.assertAlmostEqual(got, want, places=12)

    def test_deletion_curve_of_a_linear_model(self):
        # docs/metrics.md: z_0 = 4x1 + 3x2 + 2x3 + x4, z_1 = 0 at x = 1 -> p_0 = sigmoid(10, 6, 3, 1, 0).
        net = Linear2([4.0, 3.0, 2.0, 1.0])
        x, y = torch.ones(1, 4), torch.tensor([0])
        scores = torch_eval.pixel_scores(torch_eval.gradient_saliency(net, x, y), 1)
        curve = torch_eval.deletion_curves(net, x, y, scores, 1, 4)
        want = torch.sigmoid(torch.tensor([10.0, 6.0, 3.0, 1.0, 0.0], dtype=torch.float64))
        torch.testing.assert_close(curve[0], want, rtol=1e-6, atol=1e-7)
        auc = float(torch_eval.trapezoid_auc(curve)[0])
        self.assertAlmostEqual(auc, float((want[:-1] + want[1:]).sum() / 8), places=6)

    def test_deletion_ties_go_to_the_lower_index(self):
        net = Linear2([1.0, 1.0, 0.0, 0.0])
        x, y = torch.ones(1, 4), torch.tensor([0])
        # Scores (1, 1, 0, 0) and steps 4: t = 1 removes pixel 0 only -> z_0 = 1.
        curve = torch_eval.deletion_curves(net, x, y, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), 1, 4)
        self.assertAlmostEqual(float(curve[0, 1]), float(torch.sigmoid(torch.tensor(1.0))), places=6)

    def test_gradient_saliency_of_a_linear_model(self):
        # d log p_0 / dx = (1 - p_0) v for z_0 = v.x, z_1 = 0.
        net = Linear2([2.0, -1.0, 0.5])
        x, y = torch.tensor([[0.2, 0.4, 0.6]]), torch.tensor([0])
        p0 = torch.sigmoid(torch.tensor(0.2 * 2 - 0.4 + 0.3))
        torch.testing.assert_close(torch_eval.gradient_saliency(net, x, y)[0],
                                   (1 - p0) * torch.tensor([2.0, 1.0, 0.5]))

    def test_pgd_breaks_exactly_the_examples_the_linf_optimum_breaks(self):
        # Margin z_0 - z_1 = v.x + b; the Linf-optimal attack lowers it by eps ||v||_1 = 0.1 * 3.
        net = Linear2([1.0, -1.0, 1.0], b=-0.5)  # margin 0 at x = 0.5
        x = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
        x[1, 0] += 0.35  # margin 0.35 > 0.3: robust
        x[2, 0] += 0.25  # margin 0.25 < 0.3: broken
        x[0, 0] -= 0.4  # margin -0.4: misclassified already, not robust, not attacked
        y = torch.tensor([0, 0, 0])
        robust = torch_eval.pgd_robust(net, x, y, 0.1, 0.025, 20, torch.Generator().manual_seed(0))
        self.assertEqual(robust.tolist(), [False, True, False])

    def test_pgd_step_stays_in_the_ball_and_the_box(self):
        x = torch.tensor([[0.0, 0.5, 1.0]])
        delta = torch_eval.pgd_step(x, torch.zeros_like(x), torch.tensor([[-1.0, 1.0, 1.0]]), 0.3, 0.5)
        torch.testing.assert_close(delta, torch.tensor([[0.0, 0.3, 0.0]]))

    def test_safetensors_reader_round_trip(self):
        a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
        b = torch.tensor([1.5, -2.0])
        header = {"__metadata__": {"k": "v"},
                  "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}}
        raw = json.dumps(header).encode()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.safetensors")
            with open(path, "wb") as handle:
                handle.write(len(raw).to_bytes(8, "little") + raw + a.numpy().tobytes() + b.numpy().tobytes())
            tensors = torch_eval.read_safetensors(path)
        self.assertEqual(sorted(tensors), ["a", "b"])
        torch.testing.assert_close(tensors["a"], a)
        torch.testing.assert_close(tensors["b"], b)

    def test_safetensors_reader_rejects_another_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "notes.md")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("# not a checkpoint, just some notes\n")
            with self.assertRaisesRegex(ValueError, "not a safetensors file"):
                torch_eval.read_safetensors(path)

    def test_network_uses_salient_names_and_normalises_inside(self):
        net = torch_eval.QuickstartNet()
        self.assertEqual(net.layer_names(), ["conv1", "relu1", "maxpool1", "conv2", "relu2", "maxpool2", "flatten1",
                                             "dense1", "relu3", "dense2"])
        self.assertEqual(sorted(net.state_dict()), sorted(f"layers.{i}.{p}" for i in (0, 3, 7, 9)
                                                          for p in ("weight", "bias")))
        x = torch.rand(2, 784)
        torch.testing.assert_close(net(x), net.layers(((x - 0.1307) / 0.3081).reshape(2, 1, 28, 28)))
        logits, taps = net.forward_taps(x, [4, 8])
        torch.testing.assert_close(logits, net(x))
        self.assertEqual([t.shape for t in taps], [(2, 32, 14, 14), (2, 128)])

    @unittest.skipUnless(os.path.exists(os.path.join(MNIST_DIR, "t10k-labels-idx1-ubyte.gz")), "no MNIST")
    def test_mnist_loader(self):
        x, y = torch_eval.load_mnist(MNIST_DIR, "t10k", 3)
        self.assertEqual((x.shape, y.tolist()), ((3, 784), [7, 2, 1]))  # MNIST's first test labels
        self.assertTrue(0.0 <= float(x.min()) and float(x.max()) == 1.0)
        with self.assertRaisesRegex(ValueError, "holds only 10000"):
            torch_eval.load_mnist(MNIST_DIR, "t10k", 10001)

    @unittest.skipUnless(os.path.exists(os.path.join(MNIST_DIR, "t10k-labels-idx1-ubyte.gz")), "no MNIST")
    def test_run_reports_both_tasks(self):
        for task, keys in (("pgd", ("robust_accuracy",)), ("saliency", ("gini", "deletion_auc"))):
            with self.subTest(task=task):
                args = torch_eval.parse_args(["--task", task, "--images", "6", "--batch", "4", "--steps", "2",
                                              "--deletion-steps", "2", "--threads", "1", "--data", MNIST_DIR])
                result = torch_eval.run(args)
                bench_table.validate_eval(result, "pytorch", task, "run")
                self.assertEqual((result["images"], result["weights"]), (6, None))
                self.assertTrue(all(k in result for k in keys))

    def test_rejects_bad_arguments(self):
        for argv in (["--task", "apgd"], ["--task", "pgd", "--images", "0"], ["--task", "pgd", "--eps", "-1"]):
            with self.subTest(argv=argv), contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                torch_eval.parse_args(argv)


@unittest.skipUnless(HAVE_TORCH, "torch not importable (run bench/setup.sh)")
class TorchRegimes(unittest.TestCase):
    def test_kl_is_zero_for_equal_distributions_and_flows_into_both_arguments(self):
        p = torch.tensor([[1.0, 2.0, 0.5]], requires_grad=True)
        q = torch.tensor([[0.0, 2.0, 1.0]], requires_grad=True)
        self.assertAlmostEqual(float(torch_regimes.kl_mean(p.detach(), p.detach())), 0.0, places=6)
        torch_regimes.kl_mean(p, q).backward()
        self.assertGreater(float(p.grad.abs().sum()), 0)
        self.assertGreater(float(q.grad.abs().sum()), 0)

    def test_sgt_masks_the_lowest_signed_saliency(self):
        # d log p_0 / dx = (1 - p_0) v: the lowest saliency positions are those of the lowest v.
        net = Linear2([3.0, -2.0, 1.0, -1.0, 0.0, 2.0])
        x = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.9]])
        masked = torch_regimes.sgt_mask(net, x, torch.tensor([0]), 0.5, torch.Generator().manual_seed(1))
        changed = (masked != x)[0].tolist()
        self.assertEqual(changed, [False, True, False, True, True, False])  # v = -2, -1, 0
        self.assertTrue(bool(((masked >= 0.1) & (masked <= 0.9)).all()))

    def test_groups_norms_scale_and_projection(self):
        groups = torch_regimes.Groups(4)
        t = torch.zeros(1, 784)
        t[0, :4] = 1.0  # image row 0, x 0..3
        t[0, 28:32] = 1.0  # row 1
        t[0, 56:60] = 1.0
        t[0, 84:88] = 1.0  # the whole top-left 4x4 patch: norm 4
        self.assertAlmostEqual(float(groups.norms(t)[0, 0, 0, 0]), 4.0, places=5)
        self.assertEqual(float(groups.norms(t).sum()), 4.0)
        torch.testing.assert_close(groups.scale_to(t, 2.0), t * 0.5)
        torch.testing.assert_close(groups.project(t, 8.0), t)
        torch.testing.assert_close(groups.project(t, 1.0), t * 0.25)

    def test_pgd_stays_in_the_ball_and_the_box(self):
        net = torch_eval.QuickstartNet()
        x = torch.rand(3, 784)
        x[:, :10] = 0.0
        x_adv = torch_regimes.pgd(net, x, torch.tensor([1, 2, 3]), 0.3, 0.075, 3, torch.Generator().manual_seed(0))
        self.assertLessEqual(float((x_adv - x).abs().max()), 0.3 + 1e-6)
        self.assertTrue(bool(((x_adv >= 0) & (x_adv <= 1)).all()))

    def test_every_regime_gives_a_finite_loss_with_parameter_gradients(self):
        torch.manual_seed(0)
        net = torch_eval.QuickstartNet().train()
        x, y = torch.rand(4, 784), torch.tensor([0, 1, 2, 3])
        for name, regime in torch_regimes.REGIMES.items():
            with self.subTest(regime=name):
                net.zero_grad(set_to_none=True)
                loss = regime(net, x, y, torch.Generator().manual_seed(0))
                self.assertEqual(loss.shape, ())
                self.assertTrue(torch.isfinite(loss))
                loss.backward()
                self.assertTrue(all(p.grad is not None for p in net.parameters()))

    @unittest.skipUnless(os.path.exists(os.path.join(MNIST_DIR, "train-labels-idx1-ubyte.gz")), "no MNIST")
    def test_run_reports_the_step_time(self):
        args = torch_regimes.parse_args(["--regime", "lp_l1", "--batch", "8", "--steps", "2", "--warmup", "0",
                                         "--threads", "1", "--data", MNIST_DIR])
        result = torch_regimes.run(args)
        bench_table.validate_regime(result, "pytorch", "lp_l1", "run")
        self.assertEqual((result["batch"], result["steps"]), (8, 2))

    def test_rejects_bad_arguments(self):
        for argv in (["--regime", "mart"], ["--regime", "sgt", "--steps", "0"], ["--regime", "sgt", "--lr", "0"]):
            with self.subTest(argv=argv), contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                torch_regimes.parse_args(argv)


if __name__ == "__main__":
    unittest.main()
