#!/usr/bin/env bash
# Builds the CUDA addon for linux-x64 with the CUDA toolkit from PyPI's wheels (no download
# outside the registries) and puts it in npm/linux-x64-gnu-cuda/ for the opt-in package
# eurobert-ner-linux-x64-gnu-cuda.
#
#   scripts/build-cuda.sh            # toolkit venv in ~/.cache/eurobert-ner/cuda-toolkit
#   CUDA_VENV=/path scripts/build-cuda.sh
#
# Candle's kernels are compiled to PTX for compute capability 8.0 (CUDA_COMPUTE_CAP, default
# 80): PTX is forward-compatible, so the driver JIT-compiles it once for 8.6 (A10, RTX 30),
# 8.9 (L4, RTX 40) and 9.0 (H100) too, and bf16 kernels need 8.0 at least. cudarc opens
# libcuda, cuBLAS and cuRAND at run time, so the binary loads on any linux-x64 machine and
# finds no GPU where there is none (the loader then falls back to the CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CUDA_VENV:-$HOME/.cache/eurobert-ner/cuda-toolkit}
PYTHON=${PYTHON:-python3}
# One CUDA release throughout (13.4): nvcc, its nvvm and crt, and the runtime headers must
# match, or CCCL and ptxas refuse; cudarc 0.19 knows CUDA up to 13.4.
PACKAGES="nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-crt==13.4.92 nvidia-cuda-runtime==13.4.92 nvidia-cuda-cccl==13.3.5.0.6 nvidia-cublas==13.4.1.3 nvidia-curand"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q $PACKAGES
SITE=$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
CUDA_ROOT="$SITE/nvidia/cu13"
[ -x "$CUDA_ROOT/bin/nvcc" ] || { echo "no nvcc in $CUDA_ROOT/bin"; exit 1; }

export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" PATH="$CUDA_ROOT/bin:$PATH"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
export LIBRARY_PATH="$CUDA_ROOT/lib:${LIBRARY_PATH:-}"
# A target folder of its own, so the CPU build is left alone.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}

start=$(date +%s)
out=$(mktemp -d)
npx napi build --platform --profile dist -p eurobert-node --features cuda --target x86_64-unknown-linux-gnu --output-dir "$out"
mkdir -p npm/linux-x64-gnu-cuda
cp "$out"/eurobert-ner.linux-x64-gnu.node npm/linux-x64-gnu-cuda/eurobert-ner.linux-x64-gnu-cuda.node
echo "built npm/linux-x64-gnu-cuda/eurobert-ner.linux-x64-gnu-cuda.node ($(du -h npm/linux-x64-gnu-cuda/eurobert-ner.linux-x64-gnu-cuda.node | cut -f1)) in $(( $(date +%s) - start )) s"
