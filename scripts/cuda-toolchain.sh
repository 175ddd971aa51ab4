#!/usr/bin/env bash
# Installs a pinned CUDA 13.0 build toolchain into the repo's ignored `.cuda/`
# folder, so that `cargo build --features cuda` (dfdx 0.13 -> cudarc 0.9) compiles
# and links on a machine without a GPU, a driver or a system CUDA install.
# See docs/cuda.md for the why and the details.
#
# What it does (idempotent; a second run with nothing changed takes < 1 s):
#   1. `pip download`s the wheels pinned, with sha256, in scripts/cuda/requirements.txt
#      (nvcc/nvvm/crt/runtime 13.0.88 + cccl 13.0.85, ~104 MB) into .cuda/wheels/ (kept as a cache);
#   2. `pip install --target`s them into .cuda/site/ (never the system) and points
#      .cuda/root at site/nvidia/cu13, which is already a CUDA root (bin/ include/
#      lib/ nvvm/); adds lib64 and targets/x86_64-linux/{include,lib} links, the
#      paths nvcc.profile and cudarc's build.rs look in;
#   3. generates link stubs root/lib/stubs/lib{cuda,cublas,cublasLt,nvrtc}.so from
#      scripts/cuda/lib*.syms (gcc -shared, SONAMEs libcuda.so.1, libcublas.so.13,
#      libcublasLt.so.13, libnvrtc.so.13), so the binary records the real
#      libraries, which it loads at run time on the GPU machine;
#   4. generates .cuda/stub-bin/nvidia-smi, which answers dfdx's build-script query
#      `nvidia-smi --query-gpu=compute_cap --format=csv` with 9.0 (H100/H200);
#   5. checks the result (nvcc targets sm_90, compiles a kernel to PTX) and
#      prints the environment to build with.
#
# Usage:
#   scripts/cuda-toolchain.sh               install if needed, then print the exports
#   eval "$(scripts/cuda-toolchain.sh --print-env)"
#                                           install if needed (progress on stderr),
#                                           print only the exports (stdout)
#   scripts/cuda-toolchain.sh --force       delete .cuda/ (except the wheel cache) and reinstall
#
# Environment: SALIENT_CUDA_DIR (default <repo>/.cuda), CC (default cc),
#   CUDA_STUB_COMPUTE_CAP (default 9.0; what the nvidia-smi stub reports).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore # we install into .cuda/, not the system

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cuda_dir="${SALIENT_CUDA_DIR:-$repo/.cuda}"
reqs="$here/cuda/requirements.txt"
root="$cuda_dir/root"
stubs="$root/lib/stubs"
stub_bin="$cuda_dir/stub-bin"
# Bumped whenever the layout this script produces changes, to force a rebuild.
layout_version=1

print_env=0
force=0
for arg in "$@"; do
    case "$arg" in
        --print-env) print_env=1 ;;
        --force) force=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "cuda-toolchain: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done

log() { echo "cuda-toolchain: $*" >&2; }
die() {
    echo "cuda-toolchain: error: $*" >&2
    exit 1
}

# Under `eval "$(... --print-env)"` a failure would otherwise eval an empty
# string and "succeed"; make the eval itself fail instead.
if [[ $print_env == 1 ]]; then
    # shellcheck disable=SC2154 # rc is assigned inside the trap string
    trap 'rc=$?; if [[ $rc != 0 ]]; then echo "echo \"cuda-toolchain.sh failed (exit $rc), see the messages above\" >&2; false"; fi' EXIT
fi

# The exports, with absolute paths. PATH: nvcc first; the nvidia-smi stub LAST,
# so that a real nvidia-smi (on a GPU machine) wins. Guarded so that repeated
# evals do not grow PATH. LD_LIBRARY_PATH is deliberately left alone: nothing
# here is loaded at build time except by nvcc, which finds its own libraries
# through nvcc.profile, and the stubs must never be loaded at run time.
emit_env() {
    cat <<EOF
export CUDA_ROOT='$root'
export CUDA_PATH='$root'
export CUDA_TOOLKIT_ROOT_DIR='$root'
export LIBRARY_PATH='$stubs'"\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
case ":\$PATH:" in *':$root/bin:'*) ;; *) export PATH='$root/bin'":\$PATH:"'$stub_bin' ;; esac
EOF
}

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH ($2)"; }
need python3 "to run pip"
need "${CC:-cc}" "a C compiler, to build the link stubs"
need nm "binutils, to check the link stubs"
python3 -m pip --version >/dev/null 2>&1 || die "python3 has no pip (install python3-pip)"
[[ "$(uname -sm)" == "Linux x86_64" ]] || die "only linux x86_64 is supported (the pinned wheels are x86_64), this is $(uname -sm)"

# Everything the installed toolchain depends on; a change means reinstall.
fingerprint() {
    {
        echo "layout $layout_version"
        cat "$reqs" "$here"/cuda/lib*.syms
        echo "cap ${CUDA_STUB_COMPUTE_CAP:-9.0}"
    } | sha256sum | cut -d' ' -f1
}
stamp="$cuda_dir/.installed"
want="$(fingerprint)"

install() {
    local t0=$SECONDS
    mkdir -p "$cuda_dir/wheels"
    rm -rf "$cuda_dir/site" "$root" "$stub_bin" "$stamp"

    # 1. Download (pip skips wheels already in the cache folder after checking hashes).
    log "downloading pinned wheels into $cuda_dir/wheels (~104 MB on a fresh cache)"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$reqs" -d "$cuda_dir/wheels" >&2 ||
        die "pip download failed (needs https://pypi.org; see the pip messages above)"

    # 2. Install into .cuda/site only: no index, exactly the pinned wheels.
    local wheels=()
    local name version
    while read -r name version; do
        local f=("$cuda_dir/wheels/${name//-/_}-$version-"*.whl)
        [[ -f "${f[0]}" ]] || die "no wheel for $name==$version in $cuda_dir/wheels after download"
        wheels+=("${f[0]}")
    done < <(sed -nE 's/^([A-Za-z0-9_.-]+)==([^ ]+).*/\1 \2/p' "$reqs")
    log "installing ${#wheels[@]} wheels into $cuda_dir/site"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-index \
        --no-compile --target "$cuda_dir/site" "${wheels[@]}" >&2 ||
        die "pip install --target $cuda_dir/site failed"
    [[ -x "$cuda_dir/site/nvidia/cu13/bin/nvcc" ]] || die "the wheels did not produce nvidia/cu13/bin/nvcc"

    # Layout: root is the wheels' CUDA root; add the paths other tools expect.
    ln -sfn site/nvidia/cu13 "$root"
    ln -sfn lib "$root/lib64"                      # cudarc build.rs: lib64, lib64/stubs
    mkdir -p "$root/targets/x86_64-linux"          # nvcc.profile: -I$(TOP)/targets/x86_64-linux/include
    ln -sfn ../../include "$root/targets/x86_64-linux/include"
    ln -sfn ../../lib "$root/targets/x86_64-linux/lib"
    [[ -f "$root/include/cuda.h" ]] || die "cuda.h missing from $root/include"
    [[ -x "$root/nvvm/bin/cicc" && -f "$root/nvvm/libdevice/libdevice.10.bc" ]] ||
        die "cicc or libdevice missing from $root/nvvm"

    # 3. Link stubs: each exported function returns an error code; they are
    # never loaded (the loader looks for the SONAME, e.g. libcuda.so.1, which
    # is not a file in stubs/), only linked against.
    mkdir -p "$stubs"
    local spec lib soname code syms
    for spec in "libcuda libcuda.so.1 34" "libcublas libcublas.so.13 1" \
        "libcublasLt libcublasLt.so.13 1" "libnvrtc libnvrtc.so.13 11"; do
        read -r lib soname code <<<"$spec"
        syms="$here/cuda/$lib.syms"
        [[ -f "$syms" ]] || die "$syms is missing"
        {
            echo "/* Link stub for $soname, generated by scripts/cuda-toolchain.sh from"
            echo "   scripts/cuda/$lib.syms. Never loaded at run time; every function returns $code"
            echo "   (CUDA_ERROR_STUB_LIBRARY / CUBLAS_STATUS_NOT_INITIALIZED / NVRTC_ERROR_INTERNAL_ERROR). */"
            grep -vE '^\s*(#|$)' "$syms" | sed "s/.*/int &(void) { return $code; }/"
        } >"$stubs/$lib.c"
        "${CC:-cc}" -shared -fPIC -O0 -o "$stubs/$lib.so" -Wl,-soname,"$soname" "$stubs/$lib.c" ||
            die "compiling the $lib stub failed"
        local n_want n_have
        n_want="$(grep -cvE '^\s*(#|$)' "$syms")"
        n_have="$(nm -D --defined-only "$stubs/$lib.so" | awk '$2 == "T"' | grep -cvE ' _(init|fini)$')"
        [[ "$n_want" == "$n_have" ]] || die "$lib stub exports $n_have functions, expected $n_want"
    done
    log "link stubs: $(cd "$stubs" && echo *.so)"

    # 4. nvidia-smi stub for dfdx's build.rs.
    mkdir -p "$stub_bin"
    cat >"$stub_bin/nvidia-smi" <<EOF
#!/bin/sh
# Stub generated by scripts/cuda-toolchain.sh: this machine has no GPU. It only
# answers the query dfdx's build.rs makes, with the compute capability the
# kernels are compiled for (9.0 = H100/H200). Set CUDA_STUB_COMPUTE_CAP when
# running the toolchain script to change it.
if [ "\$*" = "--query-gpu=compute_cap --format=csv" ]; then
    echo compute_cap
    echo ${CUDA_STUB_COMPUTE_CAP:-9.0}
    exit 0
fi
echo "nvidia-smi: this is a build-time stub from $stub_bin (no GPU here);" \\
    "it answers only --query-gpu=compute_cap --format=csv" >&2
exit 9
EOF
    chmod +x "$stub_bin/nvidia-smi"

    # 5. Check: nvcc runs, can target the stub's arch, and compiles a kernel.
    local cap="${CUDA_STUB_COMPUTE_CAP:-9.0}"
    cap="sm_${cap//./}"
    "$root/bin/nvcc" --list-gpu-code | grep -qx "$cap" ||
        die "nvcc cannot target $cap; it lists: $("$root/bin/nvcc" --list-gpu-code | tr '\n' ' ')"
    local probe="$cuda_dir/probe"
    mkdir -p "$probe"
    cat >"$probe/probe.cu" <<'EOF'
#include "cuda_fp16.h"
extern "C" __global__ void axpy(const size_t n, const float a, const float *x, float *y) {
    size_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = a * x[i] + y[i] + __half2float(__float2half(expf(0.0f))) - 1.0f; }
}
EOF
    "$root/bin/nvcc" --gpu-architecture="$cap" --ptx --output-directory "$probe" "$probe/probe.cu" >&2 ||
        die "nvcc failed to compile a probe kernel ($probe/probe.cu)"
    grep -q '.entry axpy' "$probe/probe.ptx" || die "nvcc produced no PTX entry for the probe kernel"
    rm -rf "$probe"

    echo "$want" >"$stamp"
    log "installed $("$root/bin/nvcc" --version | sed -n 's/.*\(release [0-9.]*, V[0-9.]*\).*/\1/p') into $cuda_dir ($(du -sh --dereference-args "$cuda_dir/site" | cut -f1) unpacked) in $((SECONDS - t0)) s"
}

if [[ $force == 1 ]]; then
    rm -rf "$cuda_dir/site" "$root" "$stub_bin" "$stamp"
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$root/bin/nvcc" && -x "$stub_bin/nvidia-smi" ]]; then
    log "up to date in $cuda_dir"
else
    install
fi

if [[ $print_env == 1 ]]; then
    emit_env
else
    echo "# CUDA 13.0 toolchain in $cuda_dir. To build with it, run this in your shell:"
    echo "#   eval \"\$($0 --print-env)\" && cargo build --release --features cuda"
    echo "# i.e.:"
    emit_env
fi
