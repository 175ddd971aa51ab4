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
