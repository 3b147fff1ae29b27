#!/usr/bin/env bash
# On a GPU machine (no internet needed; torch with CUDA, nvcc, pytest and cmake must be there): builds the CUDA
# kernels in place, runs the whole test suite (CUDA tests included) and the C++ CUDA-vs-CPU tests, then the GPU
# benchmarks. Logs and results go into OUTDIR; the exit status is non-zero if any step failed.
#
#   scripts/run_on_gpu.sh OUTDIR            (TORCH_CUDA_ARCH_LIST defaults to the local GPU's architecture)
set -uo pipefail
out=${1:?usage: scripts/run_on_gpu.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
failed=()

step() {  # step NAME COMMAND...: runs COMMAND, logs to OUTDIR/NAME.log, remembers a failure
  local name=$1
  shift
  echo "=== $name: $*"
  if ! "$@" >"$out/$name.log" 2>&1; then failed+=("$name"); fi
  tail -n 25 "$out/$name.log"
}

arch=$($PY -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}.{p[1]}')")
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch} MAX_JOBS=${MAX_JOBS:-8}
{ nvidia-smi; nvcc --version; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } \
  >"$out/device.txt" 2>&1
step build env SNN_CUDA_BUILD_CUDA=1 $PY setup.py build_ext --inplace
step info $PY -m snn_cuda.info
step pytest $PY -m pytest -q -ra tests
cuda_arch=${arch/./}
step ctest bash -c "cmake -S . -B build/gpu -DCMAKE_CUDA_ARCHITECTURES=$cuda_arch >/dev/null && \
  cmake --build build/gpu -j8 >/dev/null && ctest --test-dir build/gpu --output-on-failure"
for dtype in float32 float16 bfloat16; do
  step "bench_$dtype" $PY benchmarks/timestep_scaling.py --device cuda --dtype "$dtype" --neurons 65536 \
    --T 8 16 32 64 128 256 --repeats 20 --reference-max-T 64 --out "$out"
done
# Peers: install benchmarks/requirements-peers.txt (--no-deps, e.g. from carried wheels) beforehand; a missing
# peer is skipped with a note and the snn_cuda rows still run.
step bench_peers $PY benchmarks/peers.py --device cuda --out "$out"
step bench_peers_e2e $PY benchmarks/peers_end_to_end.py --device cuda --quiet --out "$out"

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED steps: ${failed[*]} (logs in $out)"
  exit 1
fi
echo "all steps passed; logs and results in $out"
