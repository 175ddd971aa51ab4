#!/usr/bin/env bash
# GPU run for issue #4, executed ON the GPU machine from the repository root (it has no Rust):
# the Cuda tests, the CPU-vs-CUDA training step, training throughput next to PyTorch on the same
# GPU, and the quickstart spec on CUDA. Results go to $OUT (default ./gpu-out).
#
# Prepare .gpu/ on the build machine first (it is ignored by git; carry it to the GPU machine):
#   eval "$(scripts/cuda-toolchain.sh --print-env)"
#   export CARGO_TARGET_DIR=target/cuda
#   cargo build --release --features cuda
#   cargo build --release --features cuda --example throughput -p salient-nn
#   cargo test --release --no-run --features cuda -p salient-nn \
#       --test optim --test optim_network --test checkpoint --test cuda_vs_cpu
#   scripts/cuda/bundle.sh target/cuda/release/salient .gpu/bundle
#   mkdir -p .gpu/bin && cp target/cuda/release/examples/throughput .gpu/bin/
#   for t in optim optim_network checkpoint cuda_vs_cpu; do
#       cp "$(ls -t target/cuda/release/deps/$t-* | grep -v '\.d$' | head -1)" .gpu/bin/$t; done
#   strip .gpu/bin/* .gpu/bundle/salient
set -u
cd "$(dirname "$0")/.."
G=.gpu
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
# CUDA 13 cuBLAS / NVRTC from PyTorch's wheels (docs/cuda.md, "Shared libraries").
LIB=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))' 2>/dev/null)
export LD_LIBRARY_PATH="$LIB:${LD_LIBRARY_PATH:-}"
$G/bundle/setup.sh 2>&1 | tail -6
for t in optim optim_network checkpoint; do
    echo "== test $t"
    timeout 120 $G/bin/$t --test-threads=1 2>&1 | tail -3
done
echo "== test cuda_vs_cpu"
timeout 180 $G/bin/cuda_vs_cpu --nocapture --test-threads=1 2>&1 | grep -vE "^$" | tail -40
echo "== throughput, salient and PyTorch alternating"
for m in quickstart ismail; do for r in 1 2 3; do for ig in "" "--input-grad"; do
    timeout 120 $G/bin/throughput --device cuda --model $m --steps 50 --warmup 10 --phases $ig
    timeout 120 python3 bench/torch_train.py --device cuda --model $m --steps 50 --warmup 10 --threads 16 $ig
done; done; done 2>&1 | tee "$OUT/bench.jsonl"
echo "== quickstart on cuda (standard regime)"
timeout 330 $G/bundle/salient run specs/quickstart.exp --device cuda --only '*-standard-*' --out "$OUT/qs" >"$OUT/qs.log" 2>&1
echo "exit $?"
grep -v "^\s*$" "$OUT/qs.log" | tail -25
