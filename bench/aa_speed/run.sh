#!/usr/bin/env bash
# AutoAttack's time on the CPU, per component, salient vs the official AutoAttack (pyautoattack),
# same images, same weights, same thread count (bench/RESULTS.md, "AutoAttack on the CPU").
#
# Usage: bench/aa_speed/run.sh [--n 100] [--threads 2] [--run-dir DIR] [--out DIR] [--skip-official]
#   --n              first N MNIST test images (default 100)
#   --threads        threads of both sides (default 2)
#   --run-dir        a quickstart run folder with model.safetensors (default: the quickstart
#                    standard model of bench/validate/out/aa1000)
#   --out            output folder (default bench/aa_speed/out)
#   --skip-official  salient's side only
#
# salient: examples/validate_dump.rs on bench/aa_speed/aa_full.exp (AutoAttack standard, Linf,
# eps 0.1) with SALIENT_AA_TIMES=1, which prints each component's wall time and working set.
# official: bench/aa_speed/official.py on the images and weights that dump wrote.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

n=100
threads=2
run_dir="bench/validate/out/aa1000/quickstart/runs/cnn-standard-seed0"
out="bench/aa_speed/out"
official=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --n) n="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --run-dir) run_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --skip-official) official=0; shift ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"
cargo build --release --example validate_dump
mkdir -p "$out"
dir="$out/n$n"
start=$(date +%s.%N)
SALIENT_AA_TIMES=1 target/release/examples/validate_dump bench/aa_speed/aa_full.exp "$run_dir" "$n" "$dir" \
    2> >(tee "$dir.salient.log" >&2)
end=$(date +%s.%N)
echo "salient: validate_dump total $(echo "$end - $start" | bc) s; robust accuracy $(grep -o '"robust_accuracy": [0-9.]*' "$dir/dump.json")"
if [[ $official -eq 1 ]]; then
    bench/.venv/bin/python "$here/official.py" "$dir" --eps 0.1 --threads "$threads" | tee "$dir.official.json"
fi
