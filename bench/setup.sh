#!/usr/bin/env bash
# Creates bench/.venv (git-ignored) with the pinned CPU-usable PyTorch that bench/torch_train.py
# and bench/run.sh need, from PyPI only.
#
# Usage: bench/setup.sh [--force]
#   --force   delete bench/.venv and install from scratch
# Environment: PYTHON (default python3; torch 2.15 needs Python >= 3.11).
#
# Why `--no-deps`: PyPI's Linux x86_64 torch wheels are CUDA builds (the CPU-only index is not
# reachable here) and declare ~20 CUDA/triton wheels as dependencies: 2.9 GB of wheels in all.
# Importing torch and training on the CPU needs only the CUDA libraries torch's shared objects
# are linked against; bench/requirements-torch-cpu.txt lists exactly those plus torch's
# pure-Python dependencies, all pinned (2.4 GB of wheels, 4.1 GB installed; triton, cusolver,
# cuda-bindings, cccl and nvtx are left out), and is installed with `pip install --no-deps` so
# that pip does not pull the rest. No GPU or driver is needed. Measured on the 2-core dev
# machine: about 2.5 min from nothing (downloads at ~180 MB/s), ~25 s when already installed.
#
# The script is idempotent: when bench/.venv already holds an install made from the current
# requirements file (recorded in bench/.venv/.requirements.sha256) and torch imports, it only
# re-runs the smoke test. It ends by training one tiny step of each benchmark model.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$bench_dir/.venv"
requirements="$bench_dir/requirements-torch-cpu.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

force=0
for arg in "$@"; do
    case "$arg" in
    --force) force=1 ;;
    -h | --help)
        sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "setup.sh: unknown argument '$arg' (expected --force or --help)" >&2
        exit 2
        ;;
    esac
done

start=$(date +%s)

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup.sh: '$python' not found; set PYTHON to a Python >= 3.11 interpreter" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "setup.sh: $("$python" --version 2>&1) is too old: torch 2.15 needs Python >= 3.11 (set PYTHON)" >&2
    exit 1
fi

wanted_hash="$(sha256sum "$requirements" | cut -d' ' -f1)"

if [[ $force -eq 1 && -d "$venv" ]]; then
    echo "setup.sh: removing $venv"
    rm -rf "$venv"
fi

if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted_hash" ]] && "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    echo "setup.sh: $venv is up to date with $(basename "$requirements")"
else
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "setup.sh: creating $venv with $("$python" --version 2>&1)"
        "$python" -m venv "$venv"
    fi
    echo "setup.sh: installing $(basename "$requirements") (pip install --no-deps; 2.4 GB of wheels)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --requirement "$requirements"
    echo "$wanted_hash" >"$stamp"
fi

# Smoke test: both benchmark models import, train one step, and compute an input gradient.
for model in quickstart ismail; do
    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 "$venv/bin/python" "$bench_dir/torch_train.py" \
        --model "$model" --batch 8 --steps 1 --warmup 1 --threads 2 --input-grad >/dev/null
done

version="$("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
size="$(du -sh "$venv" | cut -f1)"
echo "setup.sh: ok: torch $version in $venv ($size) after $(($(date +%s) - start)) s"
