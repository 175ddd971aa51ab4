#!/usr/bin/env bash
# CPU training-throughput benchmark: salient (dfdx) vs PyTorch, side by side (issue #3 item 8).
#
# Usage: bench/run.sh [--steps N] [--warmup W] [--repeats R] [--threads T] [--batch B]
#                     [--models "quickstart ismail"] [--variants "plain input-grad"] [--torch-only]
#   --steps N      timed training steps per run (default 30)
#   --warmup W     untimed steps before them (default 5)
#   --repeats R    runs of each program per row; the table shows the median (default 3)
#   --threads T    threads for both implementations (default 2)
#   --batch B      batch size (default 128)
#   --models L     models to run (default "quickstart ismail")
#   --variants L   "plain" (weights' gradient only) and/or "input-grad" (also the input's
#                  gradient, as a saliency map or attack step needs) (default both)
#   --torch-only   skip the Rust side (salient cells show "—")
#
# For each model and variant, runs the Rust example and the PyTorch script one after the other,
# alternating (salient, pytorch, salient, pytorch, ...) so that a drift in machine speed hits both
# alike, with the same thread count: RAYON_NUM_THREADS=T for salient; OMP_NUM_THREADS=T,
# MKL_NUM_THREADS=T and torch.set_num_threads(T) for PyTorch. The throughput comes from each
# program's own JSON line (timed inside the program, excluding start-up). Prints the Markdown
# table and writes it to bench/results-cpu.md; the raw JSON lines go to bench/results-cpu.jsonl.
#
# Needs: bench/setup.sh run once (creates bench/.venv with torch), cargo. Respects
# CARGO_TARGET_DIR.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$bench_dir/.." && pwd)"
python="$bench_dir/.venv/bin/python"

steps=30
warmup=5
repeats=3
threads=2
batch=128
models="quickstart ismail"
variants="plain input-grad"
torch_only=0

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
    echo "run.sh: $*" >&2
    exit 1
}
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value (see --help)"; }
positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "option $1 needs a positive integer, got '$2'"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
    --steps) need_value "$@"; positive "$1" "$2"; steps="$2"; shift 2 ;;
    --warmup) need_value "$@"; [[ "$2" =~ ^[0-9]+$ ]] || die "option --warmup needs an integer >= 0, got '$2'"; warmup="$2"; shift 2 ;;
    --repeats) need_value "$@"; positive "$1" "$2"; repeats="$2"; shift 2 ;;
    --threads) need_value "$@"; positive "$1" "$2"; threads="$2"; shift 2 ;;
    --batch) need_value "$@"; positive "$1" "$2"; batch="$2"; shift 2 ;;
    --models) need_value "$@"; models="$2"; shift 2 ;;
    --variants) need_value "$@"; variants="$2"; shift 2 ;;
    --torch-only) torch_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

for model in $models; do
    [[ "$model" == quickstart || "$model" == ismail ]] || die "unknown model '$model' (expected quickstart or ismail)"
done
for variant in $variants; do
    [[ "$variant" == plain || "$variant" == input-grad ]] || die "unknown variant '$variant' (expected plain or input-grad)"
done

[[ -x "$python" ]] || die "$python not found: run bench/setup.sh first"
"$python" -c 'import torch' 2>/dev/null || die "torch does not import in bench/.venv: run bench/setup.sh --force"

cd "$root"

# --- Build the Rust example ------------------------------------------------------------------
salient_bin=""
if [[ $torch_only -eq 0 ]]; then
    [[ -f crates/salient-nn/examples/throughput.rs ]] ||
        die "crates/salient-nn/examples/throughput.rs does not exist (yet); use --torch-only to measure PyTorch alone"
    echo "run.sh: building the throughput example (release)" >&2
    cargo build --quiet --release --example throughput -p salient-nn
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    salient_bin="$target_dir/release/examples/throughput"
    [[ -x "$salient_bin" ]] || die "built example not found at $salient_bin"
fi

# --- Run ---------------------------------------------------------------------------------------
jsonl="$bench_dir/results-cpu.jsonl"
table="$bench_dir/results-cpu.md"
: >"$jsonl"

# run_one IMPL MODEL INPUT_GRAD(0|1) REPEAT: runs one program and records its JSON line.
run_one() {
    local impl="$1" model="$2" input_grad="$3" repeat="$4" out
    local grad_flag=()
    [[ "$input_grad" -eq 1 ]] && grad_flag=(--input-grad)
    if [[ "$impl" == salient ]]; then
        out="$(RAYON_NUM_THREADS="$threads" "$salient_bin" --model "$model" --batch "$batch" \
            --steps "$steps" --warmup "$warmup" "${grad_flag[@]}")" ||
            die "salient throughput example failed for --model $model ${grad_flag[*]}"
    else
        out="$(OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" "$python" "$bench_dir/torch_train.py" \
            --model "$model" --batch "$batch" --steps "$steps" --warmup "$warmup" --threads "$threads" \
            "${grad_flag[@]}")" ||
            die "torch_train.py failed for --model $model ${grad_flag[*]}"
    fi
    printf '%s\n' "$out" | "$python" "$bench_dir/bench_table.py" record --out "$jsonl" --impl "$impl" \
        --model "$model" --input-grad "$input_grad" --repeat "$repeat" ||
        die "unusable output from $impl for --model $model ${grad_flag[*]}"
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
impls="salient pytorch"
[[ $torch_only -eq 1 ]] && impls="pytorch"

echo "run.sh: batch $batch, $steps steps after $warmup warm-up, $threads threads, $repeats repeats" >&2
for model in $models; do
    for variant in $variants; do
        input_grad=0
        [[ "$variant" == input-grad ]] && input_grad=1
        for ((repeat = 1; repeat <= repeats; repeat++)); do
            for impl in $impls; do
                run_one "$impl" "$model" "$input_grad" "$repeat"
            done
        done
    done
done

# --- Report ------------------------------------------------------------------------------------
load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
machine="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
dfdx_version="$(awk '$0 == "name = \"dfdx\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
"$python" "$bench_dir/bench_table.py" render --in "$jsonl" \
    --machine "${machine:-unknown CPU}" --cores "$(nproc)" --rustc "$(rustc --version)" \
    --dfdx "${dfdx_version:-?}" --threads "$threads" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --load "$load_before → $load_after" >"$table"
cat "$table"
echo "run.sh: wrote $table and $jsonl" >&2
