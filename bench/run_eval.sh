#!/usr/bin/env bash
# Evaluation-throughput benchmark: salient vs PyTorch, side by side (issue #5 item 5).
#
# Usage: bench/run_eval.sh [--weights PATH] [--images N] [--batch B] [--warmup W] [--repeats R]
#                          [--threads T] [--tasks "pgd saliency"] [--steps S] [--out DIR] [--torch-only]
#   --weights PATH  a model.safetensors written by `salient run` (quickstart CNN), loaded by both
#                   sides so that their accuracies can be compared; without it each side uses
#                   its own random initialisation (the table then says the values are not
#                   comparable). E.g. reports/mnist_regimes/runs/cnn-standard-seed0/model.safetensors
#   --images N      first N MNIST test images (default 1000)
#   --batch B       evaluation batch (default 500, the engine's eval default)
#   --warmup W      untimed runs of the task on the first batch, per program run (default 1)
#   --repeats R     runs of each program per task; the table shows the median (default 3)
#   --threads T     threads for both implementations (default 2)
#   --tasks L       "pgd" (PGD-40 Linf eps 0.3, step 0.01, random start) and/or "saliency"
#                   (|d log p_y / dx|, Gini sparseness, deletion AUC 20 steps) (default both)
#   --steps S       PGD steps (default 40)
#   --out DIR       where results-eval.md and results-eval.jsonl go (default bench/)
#   --torch-only    skip the Rust side (salient cells show "—")
#
# For each task, runs the Rust example (crates/salient-engine/examples/bench_eval.rs) and the
# PyTorch script (bench/torch_eval.py) alternately (salient, pytorch, salient, ...), with the
# same thread count: RAYON_NUM_THREADS=T for salient; OMP_NUM_THREADS=T, MKL_NUM_THREADS=T and
# torch.set_num_threads(T) for PyTorch. img/s and the sanity values (accuracies, mean Gini,
# mean deletion AUC) come from each program's JSON line (timed inside the program, data
# decoding and start-up excluded). Prints the Markdown table and writes it to
# DIR/results-eval.md; the raw JSON lines go to DIR/results-eval.jsonl.
#
# Needs: bench/setup.sh run once (bench/.venv with torch), cargo. Respects CARGO_TARGET_DIR.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$bench_dir/.." && pwd)"
python="$bench_dir/.venv/bin/python"

weights=""
images=1000
batch=500
warmup=1
repeats=3
threads=2
tasks="pgd saliency"
steps=40
out_dir="$bench_dir"
torch_only=0

usage() { sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
    echo "run_eval.sh: $*" >&2
    exit 1
}
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value (see --help)"; }
positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "option $1 needs a positive integer, got '$2'"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
    --weights) need_value "$@"; weights="$2"; shift 2 ;;
    --images) need_value "$@"; positive "$1" "$2"; images="$2"; shift 2 ;;
    --batch) need_value "$@"; positive "$1" "$2"; batch="$2"; shift 2 ;;
    --warmup) need_value "$@"; [[ "$2" =~ ^[0-9]+$ ]] || die "option --warmup needs an integer >= 0, got '$2'"; warmup="$2"; shift 2 ;;
    --repeats) need_value "$@"; positive "$1" "$2"; repeats="$2"; shift 2 ;;
    --threads) need_value "$@"; positive "$1" "$2"; threads="$2"; shift 2 ;;
    --tasks) need_value "$@"; tasks="$2"; shift 2 ;;
    --steps) need_value "$@"; positive "$1" "$2"; steps="$2"; shift 2 ;;
    --out) need_value "$@"; out_dir="$2"; shift 2 ;;
    --torch-only) torch_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

for task in $tasks; do
    [[ "$task" == pgd || "$task" == saliency ]] || die "unknown task '$task' (expected pgd or saliency)"
done
weights_args=()
if [[ -n "$weights" ]]; then
    [[ -f "$weights" ]] || die "weights file '$weights' not found"
    weights="$(cd "$(dirname "$weights")" && pwd)/$(basename "$weights")"
    weights_args=(--weights "$weights")
fi
mkdir -p "$out_dir" || die "cannot create '$out_dir'"
out_dir="$(cd "$out_dir" && pwd)"

[[ -x "$python" ]] || die "$python not found: run bench/setup.sh first"
"$python" -c 'import torch' 2>/dev/null || die "torch does not import in bench/.venv: run bench/setup.sh --force"

cd "$root"

# --- Build the Rust example ------------------------------------------------------------------
salient_bin=""
if [[ $torch_only -eq 0 ]]; then
    echo "run_eval.sh: building the bench_eval example (release)" >&2
    cargo build --quiet --release --example bench_eval -p salient-engine
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    salient_bin="$target_dir/release/examples/bench_eval"
    [[ -x "$salient_bin" ]] || die "built example not found at $salient_bin"
fi

# --- Run ---------------------------------------------------------------------------------------
jsonl="$out_dir/results-eval.jsonl"
table="$out_dir/results-eval.md"
: >"$jsonl"

common=(--images "$images" --batch "$batch" --warmup "$warmup" --steps "$steps" "${weights_args[@]}")

# run_one IMPL TASK REPEAT: runs one program and records its JSON line.
run_one() {
    local impl="$1" task="$2" repeat="$3" out
    if [[ "$impl" == salient ]]; then
        out="$(RAYON_NUM_THREADS="$threads" "$salient_bin" --task "$task" "${common[@]}")" ||
            die "salient bench_eval failed for --task $task"
    else
        out="$(OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" "$python" "$bench_dir/torch_eval.py" \
            --task "$task" --threads "$threads" "${common[@]}")" ||
            die "torch_eval.py failed for --task $task"
    fi
    printf '%s\n' "$out" | "$python" "$bench_dir/bench_table.py" record-eval --out "$jsonl" --impl "$impl" \
        --task "$task" --repeat "$repeat" || die "unusable output from $impl for --task $task"
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
impls="salient pytorch"
[[ $torch_only -eq 1 ]] && impls="pytorch"

echo "run_eval.sh: $images images, batch $batch, $warmup warm-up, $threads threads, $repeats repeats${weights:+, weights $weights}" >&2
for task in $tasks; do
    for ((repeat = 1; repeat <= repeats; repeat++)); do
        for impl in $impls; do
            run_one "$impl" "$task" "$repeat"
        done
    done
done

# --- Report ------------------------------------------------------------------------------------
load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
machine="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
dfdx_version="$(awk '$0 == "name = \"dfdx\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
"$python" "$bench_dir/bench_table.py" render-eval --in "$jsonl" \
    --machine "${machine:-unknown CPU}" --cores "$(nproc)" --rustc "$(rustc --version)" \
    --dfdx "${dfdx_version:-?}" --threads "$threads" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --load "$load_before → $load_after" >"$table"
cat "$table"
echo "run_eval.sh: wrote $table and $jsonl" >&2
