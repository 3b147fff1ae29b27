#!/usr/bin/env bash
# Builds the extension with its CUDA kernels, for real, on a machine without a GPU: against the CUDA build of the
# torch that the GPU machines run, in a venv of its own and a copy of the tree (the in-place CPU build is left
# alone), then checks that the library loads and registers every op for CUDA and runs the CPU op tests under that
# torch. This catches what the compile check of CPU-only builds cannot: the CUDA glue compiled and linked against
# real CUDA headers and libraries, and torch-version differences.
#
#   scripts/check_cuda_build.sh [WORKDIR]       (default /tmp/snn_cuda_cuda_build; needs nvcc matching CUDA_TORCH)
#
# It downloads torch with its CUDA libraries (several GB, from the package index) once into WORKDIR/venv, a venv of
# BASE_PYTHON (default python3). The GPU machines run Python 3.12: with BASE_PYTHON pointing to a 3.12 (and a
# WORKDIR of its own) the check runs under their Python too.
set -euo pipefail
work=${1:-/tmp/snn_cuda_cuda_build}
CUDA_TORCH=${CUDA_TORCH:-torch==2.11.0}
ARCH=${TORCH_CUDA_ARCH_LIST:-9.0}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work"
if [ ! -x "$work/venv/bin/python" ]; then
  "${BASE_PYTHON:-python3}" -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet "$CUDA_TORCH" numpy "setuptools>=69,<82" wheel ninja pybind11 pytest tqdm \
    pyyaml matplotlib scikit-learn
fi
PY=$work/venv/bin/python
rm -rf "$work/tree" && mkdir -p "$work/tree"
(cd "$root" && git ls-files -co --exclude-standard | while read -r f; do [ ! -e "$f" ] || echo "$f"; done) |
  tar -C "$root" -cf - -T - | tar -C "$work/tree" -xf -
cd "$work/tree"
# torch takes CUDA_HOME from the nvcc on PATH, which can be a wrapper outside the toolkit (as on the build machines).
if [ -z "${CUDA_HOME:-}" ] && [ -f /usr/local/cuda/include/cuda_runtime.h ]; then export CUDA_HOME=/usr/local/cuda; fi
SNN_CUDA_BUILD_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" setup.py build_ext --inplace \
  >build.log 2>&1 || { tail -n 40 build.log; echo "CUDA build failed (log: $work/tree/build.log)"; exit 1; }
"$PY" -m snn_cuda.info
"$PY" - <<'EOF'
import snn_cuda

missing = [op for op in ("lif_fwd", "lif_bwd", "iir_fwd", "iir_bwd") if not snn_cuda._ext.has_kernel(op, "cuda")]
if missing:
    raise SystemExit(f"built with CUDA but no CUDA kernel registered for {missing}")
EOF
"$PY" -m pytest -q -p no:cacheprovider tests/test_lif.py tests/test_iir.py
echo "CUDA build checked against $("$PY" -c 'import torch; print(torch.__version__)') in $work"
