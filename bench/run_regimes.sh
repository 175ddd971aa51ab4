#!/usr/bin/env bash
# Per-step cost of each training regime: salient vs PyTorch, side by side (issue #6 item 8).
#
# Usage: bench/run_regimes.sh [--steps N] [--warmup W] [--repeats R] [--threads T] [--batch B]
#                             [--regimes "standard sgt ..."] [--out DIR] [--torch-only]
#   --steps N      timed steps per run (default 20)
#   --warmup W     untimed steps before them (default 3)
#   --repeats R    runs of each program per regime; the table shows the median (default 3)
#   --threads T    threads for both implementations (default 2)
#   --batch B      batch size (default 128)
#   --regimes L    regimes to run (default all nine: standard sgt pgd_at fgsm_rs trades combined
#                  lp_l1 lp_group sensitivity; settings in bench/README.md); the table's
#                  "× standard" column needs standard among them
#   --out DIR      where results-regimes.md and results-regimes.jsonl go (default bench/)
#   --torch-only   skip the Rust side (salient cells show "—")
#
# For each regime, runs the Rust example (crates/salient-engine/examples/bench_regimes.rs) and
# the PyTorch script (bench/torch_regimes.py) alternately (salient, pytorch, salient, ...), with
# the same thread count: RAYON_NUM_THREADS=T for salient; OMP_NUM_THREADS=T, MKL_NUM_THREADS=T
# and torch.set_num_threads(T) for PyTorch. ms/step comes from each program's JSON line (timed
# inside the program, start-up excluded). Prints the Markdown table and writes it to
# DIR/results-regimes.md; the raw JSON lines go to DIR/results-regimes.jsonl.
#
# Needs: bench/setup.sh run once (bench/.venv with torch), cargo. Respects CARGO_TARGET_DIR.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$bench_dir/.." && pwd)"
python="$bench_dir/.venv/bin/python"

all_regimes="standard sgt pgd_at fgsm_rs trades combined lp_l1 lp_group sensitivity"
steps=20
warmup=3
repeats=3
threads=2
batch=128
regimes="$all_regimes"
out_dir="$bench_dir"
torch_only=0

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
    echo "run_regimes.sh: $*" >&2
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
    --regimes) need_value "$@"; regimes="$2"; shift 2 ;;
    --out) need_value "$@"; out_dir="$2"; shift 2 ;;
    --torch-only) torch_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

for regime in $regimes; do
    [[ " $all_regimes " == *" $regime "* ]] || die "unknown regime '$regime' (expected some of: $all_regimes)"
done
mkdir -p "$out_dir" || die "cannot create '$out_dir'"
out_dir="$(cd "$out_dir" && pwd)"

[[ -x "$python" ]] || die "$python not found: run bench/setup.sh first"
"$python" -c 'import torch' 2>/dev/null || die "torch does not import in bench/.venv: run bench/setup.sh --force"

cd "$root"

# --- Build the Rust example ------------------------------------------------------------------
salient_bin=""
if [[ $torch_only -eq 0 ]]; then
    echo "run_regimes.sh: building the bench_regimes example (release)" >&2
    cargo build --quiet --release --example bench_regimes -p salient-engine
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    salient_bin="$target_dir/release/examples/bench_regimes"
    [[ -x "$salient_bin" ]] || die "built example not found at $salient_bin"
fi

# --- Run ---------------------------------------------------------------------------------------
jsonl="$out_dir/results-regimes.jsonl"
table="$out_dir/results-regimes.md"
: >"$jsonl"

common=(--batch "$batch" --steps "$steps" --warmup "$warmup")

# run_one IMPL REGIME REPEAT: runs one program and records its JSON line.
run_one() {
    local impl="$1" regime="$2" repeat="$3" out
    if [[ "$impl" == salient ]]; then
        out="$(RAYON_NUM_THREADS="$threads" "$salient_bin" --regime "$regime" "${common[@]}")" ||
            die "salient bench_regimes failed for --regime $regime"
    else
        out="$(OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" "$python" "$bench_dir/torch_regimes.py" \
            --regime "$regime" --threads "$threads" "${common[@]}")" ||
            die "torch_regimes.py failed for --regime $regime"
    fi
    printf '%s\n' "$out" | "$python" "$bench_dir/bench_table.py" record-regime --out "$jsonl" --impl "$impl" \
        --regime "$regime" --repeat "$repeat" || die "unusable output from $impl for --regime $regime"
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
impls="salient pytorch"
[[ $torch_only -eq 1 ]] && impls="pytorch"

echo "run_regimes.sh: batch $batch, $steps steps after $warmup warm-up, $threads threads, $repeats repeats" >&2
for regime in $regimes; do
    for ((repeat = 1; repeat <= repeats; repeat++)); do
        for impl in $impls; do
            run_one "$impl" "$regime" "$repeat"
        done
    done
done

# --- Report ------------------------------------------------------------------------------------
load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
machine="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
dfdx_version="$(awk '$0 == "name = \"dfdx\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
"$python" "$bench_dir/bench_table.py" render-regimes --in "$jsonl" \
    --machine "${machine:-unknown CPU}" --cores "$(nproc)" --rustc "$(rustc --version)" \
    --dfdx "${dfdx_version:-?}" --threads "$threads" \
    --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --load "$load_before → $load_after" >"$table"
cat "$table"
echo "run_regimes.sh: wrote $table and $jsonl" >&2
