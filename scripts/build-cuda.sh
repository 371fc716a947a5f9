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

# napi-rs's CLI comes from the package's dev dependencies (a clean clone has none yet).
[ -x node_modules/.bin/napi ] || npm ci --no-audit --no-fund

VENV=${CUDA_VENV:-$HOME/.cache/eurobert-ner/cuda-toolkit}
PYTHON=${PYTHON:-python3}
# One CUDA release throughout (13.4): nvcc, its nvvm and crt, and the runtime headers must
# match, or CCCL and ptxas refuse; cudarc 0.19 knows CUDA up to 13.4.
PACKAGES="nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-crt==13.4.92 nvidia-cuda-runtime==13.4.92 nvidia-cuda-nvrtc==13.4.92 nvidia-cuda-cccl==13.3.5.0.6 nvidia-cublas==13.4.1.3 nvidia-curand==10.4.5.25"

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

# Candle links cudarc dynamically: the linker wants libcudart.so & co. (the wheels carry only
# libcudart.so.13 & co.) and libcuda.so, the driver's, which no wheel has. As the toolkit's
# lib/stubs does, link against a stub with the driver's soname and entry points; at run time
# the real libcuda.so.1 of the NVIDIA driver is loaded, and without it the addon does not load.
# Every stub entry point answers CUDA_ERROR_NO_DEVICE (100), so with the wheels' libraries on
# LD_LIBRARY_PATH the stub also stands for a machine without a GPU (__test__/device.spec.ts).
LINKDIR="$VENV/link"
mkdir -p "$LINKDIR"
for lib in cudart cublas cublasLt curand nvrtc; do
  f=$(ls "$CUDA_ROOT"/lib/lib$lib.so.* | sort | head -1)
  ln -sf "$f" "$LINKDIR/lib$lib.so"
done
CUDARC=$(cargo metadata --format-version 1 --features eurobert-node/cuda 2>/dev/null |
  node -e 'const m = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(require("path").dirname(m.packages.find((p) => p.name === "cudarc").manifest_path))')
grep -oE 'fn cu[A-Z][A-Za-z0-9_]*\(' "$CUDARC/src/driver/sys/mod.rs" | sort -u | sed -E 's/fn (.*)\(/int \1(void) { return 100; }/' > "$LINKDIR/cuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINKDIR/libcuda.so" "$LINKDIR/cuda_stub.c"
ln -sf libcuda.so "$LINKDIR/libcuda.so.1"
export RUSTFLAGS="${RUSTFLAGS:-} -L $LINKDIR"

start=$(date +%s)
out=$(mktemp -d)
npx napi build --platform --profile dist -p eurobert-node --features cuda --target x86_64-unknown-linux-gnu --output-dir "$out"
mkdir -p npm/linux-x64-gnu-cuda
cp "$out"/eurobert-ner.linux-x64-gnu.node npm/linux-x64-gnu-cuda/eurobert-ner.linux-x64-gnu-cuda.node
echo "built npm/linux-x64-gnu-cuda/eurobert-ner.linux-x64-gnu-cuda.node ($(du -h npm/linux-x64-gnu-cuda/eurobert-ner.linux-x64-gnu-cuda.node | cut -f1)) in $(( $(date +%s) - start )) s"
