#!/usr/bin/env bash
# Agreement of salient with the reference implementations (issue #12 item 5; docs/validation.md).
#
# Usage: bench/validate/run.sh [--runs ID,...] [--n N] [--attack-images N] [--attacks NAME,...]
#                              [--skip attacks,maps,metrics] [--spec FILE] [--out DIR] [--no-setup]
#   --runs           run ids of the quickstart to compare (default cnn-standard-seed0)
#   --n              test examples dumped and attacked (default 1000; maps: eval.saliency_samples)
#   --attack-images  compare the attacks on the first N of them only (default: all)
#   --attacks        only these attacks of the spec (default: all)
#   --skip           parts compare.py skips
#   --spec           the spec whose attacks/saliency/metrics are compared (default bench/validate/validate.exp)
#   --out            output folder (default bench/validate/out)
#   --no-setup       do not run bench/setup.sh and pip (bench/.venv is ready)
#
# Steps: (1) bench/setup.sh (torch in bench/.venv), then the pinned reference packages of
# bench/validate/requirements.txt with `pip install --no-deps`; (2) trains the quickstart models
# with `salient run specs/quickstart.exp --out OUT/quickstart` (reuses them when they are there:
# about 4 min on 2 cores the first time); (3) examples/validate_dump.rs dumps salient's attacks,
# maps and metrics for each run; (4) compare.py recomputes them with torchattacks, AutoAttack,
# Captum and Quantus and prints the table (OUT/<run>/table.md). Exit status 1 if a row fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

runs="cnn-standard-seed0"
n=1000
attack_images=""
attacks=""
skip=""
spec="bench/validate/validate.exp"
out="bench/validate/out"
setup=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --n) n="$2"; shift 2 ;;
    --attack-images) attack_images="$2"; shift 2 ;;
    --attacks) attacks="$2"; shift 2 ;;
    --skip) skip="$2"; shift 2 ;;
    --spec) spec="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-setup) setup=0; shift ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

py="$root/bench/.venv/bin/python"
if [[ $setup -eq 1 ]]; then
    bench/setup.sh
    "$py" -m pip install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.txt"
fi
"$py" -c 'import torchattacks, captum, quantus, pyautoattack' || {
    echo "run.sh: the reference packages do not import; run without --no-setup" >&2
    exit 1
}

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-2}"
cargo build --release --bin salient --example validate_dump
salient="$root/target/release/salient"
dump_bin="$root/target/release/examples/validate_dump"

trained="$out/quickstart"
"$salient" run specs/quickstart.exp --out "$trained" --quiet

status=0
IFS=',' read -r -a run_ids <<<"$runs"
for run in "${run_ids[@]}"; do
    dir="$out/$run"
    echo "run.sh: $run: salient's side (validate_dump $spec, N = $n)"
    start=$(date +%s)
    "$dump_bin" "$spec" "$trained/runs/$run" "$n" "$dir"
    echo "run.sh: $run: dump took $(($(date +%s) - start)) s"
    args=("$dir" --table "$dir/table.md" --json "$dir/table.json")
    [[ -n "$attack_images" ]] && args+=(--attack-images "$attack_images")
    [[ -n "$attacks" ]] && args+=(--attacks "$attacks")
    [[ -n "$skip" ]] && args+=(--skip "$skip")
    echo "run.sh: $run: the reference side (compare.py)"
    start=$(date +%s)
    "$py" "$here/compare.py" "${args[@]}" || status=1
    echo "run.sh: $run: compare took $(($(date +%s) - start)) s; commit $(git rev-parse --short HEAD)"
done
exit $status
