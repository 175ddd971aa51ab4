#!/usr/bin/env python3
"""Collects the benchmark programs' JSON lines and renders the Markdown comparison table.

Used by bench/run.sh; standard library only, so it runs under any Python >= 3.8.

    bench_table.py record --out FILE --impl salient|pytorch --model M --input-grad 0|1 --repeat R < stdout
        Finds the program's one JSON line in its stdout, checks it (impl, model, batch, steps and a
        positive finite img_per_s), adds the run's variant and repeat index, appends it to FILE.

    bench_table.py render --in FILE [--machine S] [--cores N] [--rustc S] [--dfdx S] [--threads N]
                       [--date S] [--commit S] [--load S]
        Prints the Markdown report: a header naming machine, versions and method, then one row
        per (model, variant) with the median img/s of each implementation over the repeats, its
        min-max range, and the ratio salient / PyTorch of the medians (target >= 1.5).

    bench_table.py record-eval --out FILE --impl salient|pytorch --task pgd|saliency --repeat R < stdout
    bench_table.py render-eval --in FILE [same header options]
        Evaluation throughput (bench/run_eval.sh, issue #5 item 5): checks a bench_eval /
        torch_eval.py line (task, images, batch, a positive finite img_per_s, accuracies in
        [0, 1], finite metric values) and renders one row per task: median img/s of each side,
        ratio salient / PyTorch, and the sanity values (clean / robust accuracy for PGD, mean
        Gini / deletion AUC for saliency) of both sides.

    bench_table.py record-regime --out FILE --impl salient|pytorch --regime NAME --repeat R < stdout
    bench_table.py render-regimes --in FILE [same header options]
        Per-step cost of the training regimes (bench/run_regimes.sh, issue #6 item 8): checks a
        bench_regimes / torch_regimes.py line (regime, batch, steps, a positive finite
        ms_per_step) and renders one row per regime: median ms/step of each side, each side's
        ratio to its own standard step, and the speed ratio salient / PyTorch (= PyTorch ms /
        salient ms; above 1 salient is faster).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass

IMPLS = ("salient", "pytorch")
TARGET_RATIO = 1.5  # issue #3 item 8: salient >= 1.5x PyTorch's CPU training throughput


class BenchError(Exception):
    """A program's output or a results file that cannot be used; the message names the cause."""


def parse_program_output(text: str, source: str) -> dict:
    """The single JSON object line in a program's stdout (other lines, e.g. logs, are ignored)."""
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchError(f"{source}: line {number} is not valid JSON ({err}): {line[:200]}") from None
        if isinstance(value, dict):
            objects.append(value)
    if len(objects) != 1:
        raise BenchError(f"{source}: expected exactly one JSON object line on stdout, found {len(objects)}")
    return objects[0]


def validate(result: dict, impl: str, model: str, source: str) -> None:
    """Checks that `result` is the run that was asked for and that its throughput is usable."""
    for key, wanted in (("impl", impl), ("model", model)):
        if result.get(key) != wanted:
            raise BenchError(f"{source}: field '{key}' is {result.get(key)!r}, expected {wanted!r}")
    for key in ("batch", "steps"):
        if not isinstance(result.get(key), int) or result[key] < 1:
            raise BenchError(f"{source}: field '{key}' must be a positive integer, got {result.get(key)!r}")
    rate = result.get("img_per_s")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not math.isfinite(rate) or rate <= 0:
        raise BenchError(f"{source}: field 'img_per_s' must be a positive finite number, got {rate!r}")


def record(args: argparse.Namespace) -> int:
    source = f"{args.impl} --model {args.model}" + (" --input-grad" if args.input_grad else "")
    result = parse_program_output(sys.stdin.read(), source)
    validate(result, args.impl, args.model, source)
    if "input_grad" in result and result["input_grad"] is not bool(args.input_grad):
        raise BenchError(f"{source}: reports input_grad={result['input_grad']!r}, expected {bool(args.input_grad)}")
    result["input_grad"] = bool(args.input_grad)
    result["repeat"] = args.repeat
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(json.dumps(result, sort_keys=True) + "\n")
    print(f"  {source} (repeat {args.repeat}): {result['img_per_s']:.1f} img/s", file=sys.stderr)
    return 0


def load_records(path: str) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise BenchError(f"{path}:{number}: not valid JSON ({err})") from None
    if not records:
        raise BenchError(f"{path}: no results recorded")
    return records


@dataclass
class Summary:
    """Median and range of one implementation's img/s over the repeats of one row."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, rates: list[float]) -> "Summary":
        return cls(statistics.median(rates), min(rates), max(rates), len(rates))

    def cell(self) -> str:
        if self.runs == 1:
            return f"{self.median:,.0f}"
        return f"{self.median:,.0f} ({self.low:,.0f}–{self.high:,.0f})"


def summarise(records: list[dict]) -> list[tuple[str, bool, dict[str, Summary]]]:
    """Rows (model, input_grad, {impl: Summary}) in first-seen order of (model, input_grad)."""
    rows: dict[tuple[str, bool], dict[str, list[float]]] = {}
    for result in records:
        key = (result["model"], bool(result.get("input_grad", False)))
        rows.setdefault(key, {}).setdefault(result["impl"], []).append(float(result["img_per_s"]))
    return [
        (model, input_grad, {impl: Summary.of(rates) for impl, rates in by_impl.items()})
        for (model, input_grad), by_impl in rows.items()
    ]


def single_value(records: list[dict], key: str, impl: str | None = None) -> str:
    """The one value of `key` over the records (of `impl`), or the distinct values joined."""
    values = sorted({str(r[key]) for r in records if key in r and (impl is None or r["impl"] == impl)})
    return ", ".join(values) if values else "—"


def render(args: argparse.Namespace) -> int:
    records = load_records(args.input)
    rows = summarise(records)
    repeats = max(s.runs for _, _, by_impl in rows for s in by_impl.values())
    lines = [
        "### CPU training throughput: salient vs PyTorch",
        "",
        f"- Machine: {args.machine}, {args.cores} cores; both implementations run with {args.threads} threads "
        "(salient: `RAYON_NUM_THREADS`; PyTorch: `torch.set_num_threads`, `OMP_NUM_THREADS`, `MKL_NUM_THREADS`).",
        f"- Versions: {args.rustc}; dfdx {args.dfdx}; torch {single_value(records, 'torch', 'pytorch')}.",
        f"- Method: SGD (lr 0.01) with cross-entropy on a fixed random batch in [0, 1], batch "
        f"{single_value(records, 'batch')}, timed steps: {single_value(records, 'steps')}, after "
        f"warm-up steps: {single_value(records, 'warmup', 'pytorch')}; train mode (dropout on); "
        "img/s = batch × steps / wall time of the timed steps, as printed by each program. "
        f"The two programs run one after the other, alternating; runs of each per row: {repeats}; "
        "cells show the median (min–max). \"input grad\" rows also compute the gradient "
        "w.r.t. the input in the same backward pass.",
    ]
    if args.date or args.commit:
        lines.append(f"- Run: {args.date or '—'}, commit {args.commit or '—'}.")
    if args.load:
        lines.append(f"- Load average (1, 5, 15 min) before → after the runs: {args.load}.")
    lines += [
        "",
        f"| model | input grad | salient img/s | PyTorch img/s | salient / PyTorch | ≥ {TARGET_RATIO}× |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for model, input_grad, by_impl in rows:
        ours, theirs = by_impl.get("salient"), by_impl.get("pytorch")
        if ours and theirs:
            ratio = ours.median / theirs.median
            ratio_cell, verdict = f"{ratio:.2f}×", ("yes" if ratio >= TARGET_RATIO else "no")
        else:
            ratio_cell, verdict = "—", "—"
        lines.append(
            f"| {model} | {'yes' if input_grad else 'no'} | {ours.cell() if ours else '—'} | "
            f"{theirs.cell() if theirs else '—'} | {ratio_cell} | {verdict} |"
        )
    print("\n".join(lines))
    return 0


# --- Evaluation and regime benchmarks (issue #5 item 5, issue #6 item 8) -----------------------

EVAL_TASKS = ("pgd", "saliency")
# The sanity values each evaluation task reports, with whether they are fractions in [0, 1].
EVAL_VALUES = {
    "pgd": (("clean_accuracy", True), ("robust_accuracy", True)),
    "saliency": (("clean_accuracy", True), ("gini", False), ("deletion_auc", True)),
}


def check_number(result: dict, key: str, source: str, *, positive: bool = False, fraction: bool = False) -> float:
    """result[key] as a float: a finite number (and > 0, or in [0, 1], when asked)."""
    value = result.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise BenchError(f"{source}: field '{key}' must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise BenchError(f"{source}: field '{key}' must be positive, got {value!r}")
    if fraction and not 0.0 <= value <= 1.0:
        raise BenchError(f"{source}: field '{key}' must be in [0, 1], got {value!r}")
    return float(value)


def check_count(result: dict, key: str, source: str) -> None:
    value = result.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BenchError(f"{source}: field '{key}' must be a positive integer, got {value!r}")


def check_field(result: dict, key: str, wanted: str, source: str) -> None:
    if result.get(key) != wanted:
        raise BenchError(f"{source}: field '{key}' is {result.get(key)!r}, expected {wanted!r}")


def validate_eval(result: dict, impl: str, task: str, source: str) -> None:
    """Checks that `result` is an evaluation run of `task` by `impl` with usable numbers."""
    check_field(result, "impl", impl, source)
    check_field(result, "task", task, source)
    for key in ("images", "batch"):
        check_count(result, key, source)
    check_number(result, "img_per_s", source, positive=True)
    for key, fraction in EVAL_VALUES[task]:
        check_number(result, key, source, fraction=fraction)


def validate_regime(result: dict, impl: str, regime: str, source: str) -> None:
    """Checks that `result` is a step-cost run of `regime` by `impl` with a usable time."""
    check_field(result, "impl", impl, source)
    check_field(result, "regime", regime, source)
    for key in ("batch", "steps"):
        check_count(result, key, source)
    check_number(result, "ms_per_step", source, positive=True)


def append_record(path: str, result: dict, repeat: int) -> None:
    result["repeat"] = repeat
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(result, sort_keys=True) + "\n")


def record_eval(args: argparse.Namespace) -> int:
    source = f"{args.impl} --task {args.task}"
    result = parse_program_output(sys.stdin.read(), source)
    validate_eval(result, args.impl, args.task, source)
    append_record(args.out, result, args.repeat)
    print(f"  {source} (repeat {args.repeat}): {result['img_per_s']:.1f} img/s", file=sys.stderr)
    return 0


def record_regime(args: argparse.Namespace) -> int:
    source = f"{args.impl} --regime {args.regime}"
    result = parse_program_output(sys.stdin.read(), source)
    validate_regime(result, args.impl, args.regime, source)
    append_record(args.out, result, args.repeat)
    print(f"  {source} (repeat {args.repeat}): {result['ms_per_step']:.1f} ms/step", file=sys.stderr)
    return 0


def grouped(records: list[dict], key: str, value: str) -> dict[str, dict[str, list[dict]]]:
    """{records[key]: {impl: [records]}} in first-seen order of records[key]; `value` must be
    present in each record (a results file of the other benchmark is an error)."""
    rows: dict[str, dict[str, list[dict]]] = {}
    for number, result in enumerate(records, start=1):
        if key not in result or value not in result or result.get("impl") not in IMPLS:
            raise BenchError(f"record {number} has no '{key}', '{value}' or known 'impl': not a results file of this benchmark")
        rows.setdefault(result[key], {}).setdefault(result["impl"], []).append(result)
    return rows


def header_lines(args: argparse.Namespace, records: list[dict], title: str, method: str) -> list[str]:
    lines = [
        f"### {title}",
        "",
        f"- Machine: {args.machine}, {args.cores} cores; both implementations run with {args.threads} threads "
        "(salient: `RAYON_NUM_THREADS`; PyTorch: `torch.set_num_threads`, `OMP_NUM_THREADS`, `MKL_NUM_THREADS`).",
        f"- Versions: {args.rustc}; dfdx {args.dfdx}; torch {single_value(records, 'torch', 'pytorch')}.",
        f"- Method: {method}",
    ]
    if args.date or args.commit:
        lines.append(f"- Run: {args.date or '—'}, commit {args.commit or '—'}.")
    if args.load:
        lines.append(f"- Load average (1, 5, 15 min) before → after the runs: {args.load}.")
    return lines


def median_of(results: list[dict], key: str) -> float:
    return statistics.median(float(r[key]) for r in results)


def render_eval(args: argparse.Namespace) -> int:
    records = load_records(args.input)
    rows = grouped(records, "task", "img_per_s")
    repeats = max(len(runs) for by_impl in rows.values() for runs in by_impl.values())
    weights = single_value(records, "weights")
    if any(r.get("weights") is None for r in records):
        weights_note = ("both sides use their own random initialisation (no `--weights`): the accuracies and "
                        "metric values are **not** comparable between the two columns")
    else:
        weights_note = f"both sides load the same weights ({weights}): the sanity values should agree"
    tasks = []
    if "pgd" in rows:
        tasks.append(
            "`pgd`: PGD-Linf with a random start, cross-entropy on logits "
            f"(eps {single_value(records, 'eps')}, step {single_value(records, 'step_size')}, "
            f"{single_value(records, 'steps')} steps), only correctly classified examples attacked, every iterate "
            "checked, broken examples leave the batch; img/s = images attacked / wall time."
        )
    if "saliency" in rows:
        tasks.append(
            "`saliency`: S = |d log p_y / dx|, then the Gini index and the deletion AUC "
            f"({single_value(records, 'deletion_steps')} steps); img/s = images / wall time of maps and metrics."
        )
    method = (
        f"the first {single_value(records, 'images')} MNIST test images, batch {single_value(records, 'batch')}, "
        f"eval mode, quickstart CNN. {' '.join(tasks)} "
        f"After {single_value(records, 'warmup')} untimed run(s) on the first batch; runs of each per row: "
        f"{repeats}, alternating; cells show the median (min–max). Weights: {weights_note}."
    )
    lines = header_lines(args, records, "Evaluation throughput: salient vs PyTorch", method)
    lines += [
        "",
        "| task | salient img/s | PyTorch img/s | salient / PyTorch | salient: sanity values | PyTorch: sanity values |",
        "|---|---:|---:|---:|---|---|",
    ]
    for task, by_impl in rows.items():
        cells = []
        for impl in IMPLS:
            runs = by_impl.get(impl)
            cells.append(Summary.of([float(r["img_per_s"]) for r in runs]).cell() if runs else "—")
        ours, theirs = by_impl.get("salient"), by_impl.get("pytorch")
        ratio = f"{median_of(ours, 'img_per_s') / median_of(theirs, 'img_per_s'):.2f}×" if ours and theirs else "—"
        sanity = []
        for impl in IMPLS:
            runs = by_impl.get(impl)
            keys = [k for k, _ in EVAL_VALUES.get(task, ())]
            sanity.append(
                ", ".join(f"{k.replace('_', ' ')} {median_of(runs, k):.4f}" for k in keys if all(k in r for r in runs))
                if runs else "—"
            )
        lines.append(f"| {task} | {cells[0]} | {cells[1]} | {ratio} | {sanity[0]} | {sanity[1]} |")
    print("\n".join(lines))
    return 0


def render_regimes(args: argparse.Namespace) -> int:
    records = load_records(args.input)
    rows = grouped(records, "regime", "ms_per_step")
    repeats = max(len(runs) for by_impl in rows.values() for runs in by_impl.values())
    method = (
        f"one training step of each regime on the quickstart CNN, batch {single_value(records, 'batch')} of MNIST "
        "training images (fixed), train mode, plain SGD (lr 0.01): the regime's inner eval-mode passes, its "
        "training passes, backward, update (docs/regimes.md). ms/step = wall time of "
        f"{single_value(records, 'steps')} timed steps / steps, after {single_value(records, 'warmup')} warm-up "
        f"steps; runs of each per row: {repeats}, alternating; cells show the median (min–max). "
        "\"× standard\" is the regime's median ms/step over the same implementation's standard step; "
        "\"salient / PyTorch\" is the speed ratio PyTorch ms ÷ salient ms (above 1: salient is faster)."
    )
    lines = header_lines(args, records, "Per-step cost of the training regimes: salient vs PyTorch", method)
    lines += [
        "",
        "| regime | salient ms/step | salient × standard | PyTorch ms/step | PyTorch × standard | salient / PyTorch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    standard = {impl: median_of(rows["standard"][impl], "ms_per_step")
                for impl in IMPLS if impl in rows.get("standard", {})}
    for regime, by_impl in rows.items():
        cells = []
        for impl in IMPLS:
            runs = by_impl.get(impl)
            if not runs:
                cells += ["—", "—"]
                continue
            ms = median_of(runs, "ms_per_step")
            summary = Summary.of([float(r["ms_per_step"]) for r in runs])
            ms_cell = f"{ms:,.1f}" if summary.runs == 1 else f"{ms:,.1f} ({summary.low:,.1f}–{summary.high:,.1f})"
            cells += [ms_cell, f"{ms / standard[impl]:.2f}×" if impl in standard else "—"]
        ours, theirs = by_impl.get("salient"), by_impl.get("pytorch")
        speed = f"{median_of(theirs, 'ms_per_step') / median_of(ours, 'ms_per_step'):.2f}×" if ours and theirs else "—"
        lines.append(f"| {regime} | {' | '.join(cells)} | {speed} |")
    print("\n".join(lines))
    return 0


def add_header_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--in", dest="input", required=True)
    parser.add_argument("--machine", default="unknown CPU")
    parser.add_argument("--cores", default="?")
    parser.add_argument("--rustc", default="rustc ?")
    parser.add_argument("--dfdx", default="?")
    parser.add_argument("--threads", default="?")
    parser.add_argument("--date", default="")
    parser.add_argument("--commit", default="")
    parser.add_argument("--load", default="", help="load averages before and after, as text")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    rec = commands.add_parser("record", help="validate one program's JSON line and append it")
    rec.add_argument("--out", required=True)
    rec.add_argument("--impl", choices=IMPLS, required=True)
    rec.add_argument("--model", required=True)
    rec.add_argument("--input-grad", type=int, choices=(0, 1), required=True)
    rec.add_argument("--repeat", type=int, required=True)
    rec.set_defaults(run=record)

    ren = commands.add_parser("render", help="print the Markdown table")
    ren.add_argument("--in", dest="input", required=True)
    ren.add_argument("--machine", default="unknown CPU")
    ren.add_argument("--cores", default="?")
    ren.add_argument("--rustc", default="rustc ?")
    ren.add_argument("--dfdx", default="?")
    ren.add_argument("--threads", default="?")
    ren.add_argument("--date", default="")
    ren.add_argument("--commit", default="")
    ren.add_argument("--load", default="", help="load averages before and after, as text")
    ren.set_defaults(run=render)

    rec_eval = commands.add_parser("record-eval", help="validate one evaluation program's JSON line and append it")
    rec_eval.add_argument("--out", required=True)
    rec_eval.add_argument("--impl", choices=IMPLS, required=True)
    rec_eval.add_argument("--task", choices=EVAL_TASKS, required=True)
    rec_eval.add_argument("--repeat", type=int, required=True)
    rec_eval.set_defaults(run=record_eval)

    ren_eval = commands.add_parser("render-eval", help="print the evaluation-throughput table")
    add_header_options(ren_eval)
    ren_eval.set_defaults(run=render_eval)

    rec_regime = commands.add_parser("record-regime", help="validate one regime program's JSON line and append it")
    rec_regime.add_argument("--out", required=True)
    rec_regime.add_argument("--impl", choices=IMPLS, required=True)
    rec_regime.add_argument("--regime", required=True)
    rec_regime.add_argument("--repeat", type=int, required=True)
    rec_regime.set_defaults(run=record_regime)

    ren_regimes = commands.add_parser("render-regimes", help="print the per-step regime cost table")
    add_header_options(ren_regimes)
    ren_regimes.set_defaults(run=render_regimes)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.run(args)
    except (BenchError, OSError) as err:
        print(f"bench_table.py: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
