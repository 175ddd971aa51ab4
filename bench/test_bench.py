"""Unit tests for the benchmark harness's Python parts.

Run: bench/.venv/bin/python -m unittest discover -s bench -p 'test_*.py'
(the bench_table tests need only the standard library; the torch_train tests are skipped when
torch is not importable, e.g. under a Python without bench/.venv).
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

    import torch_train  # noqa: E402

    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


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


if __name__ == "__main__":
    unittest.main()
