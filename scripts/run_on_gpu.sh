#!/usr/bin/env bash
# On a GPU machine (no internet needed; torch with CUDA, nvcc, CMake and pytest must be there): builds the CUDA
# kernels in place, runs the CUDA tests and the GPU benchmarks. Logs, results and per-stage times go into OUTDIR;
# the exit status is non-zero if any stage failed.
#
#   scripts/run_on_gpu.sh OUTDIR [STAGE ...]
#
# Stages, in the order given (default: build test ctest bench layers):
#   build   the extension with its CUDA kernels, in place (TORCH_CUDA_ARCH_LIST defaults to the local GPU's), then
#           the checks of `loaded`
#   loaded  that the extension in place loads and registers every CUDA kernel: after `build`, or instead of it for
#           a library built on another machine and carried here (see below)
#   test    the pytest cases marked cuda (every op against the reference on the GPU, opcheck, compile); the rest of
#           the suite runs on every CPU CI and is not repeated here
#   ctest   the C++ CUDA-vs-CPU kernel tests (test_lif_gpu, test_iir_gpu), built alone with CMake
#   sanitize  the same two tests under compute-sanitizer's memcheck (out-of-bounds and misaligned accesses; it works
#           on the Firecracker GPU machines, not under gVisor)
#   bench   benchmarks/timestep_scaling.py on CUDA, the fused ops against the reference at [T, 64, 65536] in float32,
#           float16 and bfloat16 (the issues' GPU targets)
#   layers  the same script's layers (Linear + LIF, snn-iir layer, nn.RNN, nn.LSTM) on CUDA in float32, into
#           OUTDIR/layers
#   peers   benchmarks/peers.py and peers_end_to_end.py on CUDA; a missing peer is skipped with a note
#   suite   the whole pytest suite (CPU tests too), for a machine with time to spare
#
# With the device tool (15 minutes of device time per task, 10 per command, a warm machine kept for 30 s after a
# call): run `build test ctest` in one command and `sanitize bench` in the next, at once, so the builds are still
# there, then `layers` and `peers` if time is left. Both the extension and the GPU tests' CMake build compile the
# CPU kernels, about 9 CPU-minutes on the 2-core build machine in units of at most 80 s (csrc/cpu/instances; each
# .cu file takes 12 s), so `build` runs the two side by side; no GPU run has timed the stages yet (stages.txt
# records them).
# `build` can be done before the lease, at no device time: on the build machine, with BASE_PYTHON set to a Python
# 3.12 (the GPU machines'; there /root/.pyenv/versions/3.12.1/bin/python3.12),
#   scripts/check_cuda_build.sh /tmp/snn_cuda_cuda_build_py312
# builds the extension against their torch 2.11.0+cu130 (9 minutes on 2 cores, download included). Copy its
# tree/snn_cuda/_C.cpython-312-x86_64-linux-gnu.so (14 MB, built from the commit to test) into snn_cuda/, name it in
# the device tool's carry, and run `loaded test ctest` (ctest then builds the GPU tests alone). If `loaded` fails
# (a torch there that the library does not fit), run `build` after all.
# OUTDIR holds more than the 8 files that come back, so pack it, and bound the script below the command's limit
# so the packing still runs if a stage hangs (each stage also stops after STAGE_TIMEOUT seconds, default 420):
#   timeout 540 scripts/run_on_gpu.sh /tmp/gpu build test ctest; rc=$?; tar -czf $OUT/gpu.tgz -C /tmp gpu; exit $rc
# The GPU image has pytest, ninja, CMake, matplotlib and PyYAML but none of the peer libraries: for `peers`, make
# their wheels here first (`make peer-wheels`, into .whl/, which git ignores: name .whl in the device tool's carry);
# the stage installs them into /tmp/snn_cuda_peers.
set -uo pipefail
out=${1:?usage: scripts/run_on_gpu.sh OUTDIR [build|loaded|test|ctest|sanitize|bench|layers|peers|suite ...]}
shift
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build test ctest bench layers)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
failed=()

step() {  # step NAME COMMAND...: runs COMMAND, logs to OUTDIR/NAME.log and its time to OUTDIR/stages.txt;
  # exit status 77 means skipped (not failed), 124 that it ran past STAGE_TIMEOUT
  local name=$1 start=$SECONDS status=passed rc=0
  shift
  echo "=== $name: $*"
  timeout --kill-after=10 "${STAGE_TIMEOUT:-420}" "$@" >"$out/$name.log" 2>&1 || rc=$?
  if [ $rc -eq 77 ]; then
    status=skipped
  elif [ $rc -ne 0 ]; then
    failed+=("$name")
    status=FAILED
    [ $rc -eq 124 ] && status=TIMEOUT
  fi
  printf '%-22s %-7s %5d s\n' "$name" "$status" $((SECONDS - start)) | tee -a "$out/stages.txt"
  tail -n 15 "$out/$name.log"
}

# pytest-xdist spreads the tests over the cores when it is installed.
parallel=()
$PY -c "import xdist" 2>/dev/null && parallel=(-n 8)

# The local GPU's architecture, unless TORCH_CUDA_ARCH_LIST names one (e.g. "9.0", to try the build stages on a
# machine without a GPU).
arch=${TORCH_CUDA_ARCH_LIST:-$($PY -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}.{p[1]}')")} ||
  { echo "no CUDA device visible to torch and no TORCH_CUDA_ARCH_LIST"; exit 1; }
export TORCH_CUDA_ARCH_LIST=$arch MAX_JOBS=${MAX_JOBS:-$(nproc)}
# torch takes CUDA_HOME from the nvcc on PATH, which can be a wrapper outside the toolkit (as on the build machines).
if [ -z "${CUDA_HOME:-}" ] && [ -f /usr/local/cuda/include/cuda_runtime.h ]; then export CUDA_HOME=/usr/local/cuda; fi
{ nvidia-smi; nvcc --version; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; \
  git log -1 --format='commit %H %s' 2>/dev/null; } >"$out/device.txt" 2>&1
cuda_arch=${arch/./}
gpu_tests_build() {  # gpu_tests_build JOBS: the command that builds the C++ GPU tests (ctest, sanitize)
  echo "cmake -S . -B build/gpu -DCMAKE_CUDA_ARCHITECTURES=${cuda_arch%%[^0-9]*} >/dev/null && \
    cmake --build build/gpu -j $1 --target test_lif_gpu test_iir_gpu >/dev/null"
}
build_gpu_tests=$(gpu_tests_build "$MAX_JOBS")
# Both builds compile the CPU kernels, so when ctest or sanitize will run, the build stage starts the GPU tests'
# CMake build in the background on half the cores and the extension's on the other half: they overlap.
gpu_tests_pid=""
wants_gpu_tests=false
for stage in "${stages[@]}"; do [[ $stage == ctest || $stage == sanitize ]] && wants_gpu_tests=true; done
wait_for_gpu_tests_build() {
  [ -n "$gpu_tests_pid" ] || return 0
  # A build that failed or ran past STAGE_TIMEOUT: the stage's own build goes on from the objects it finished.
  wait "$gpu_tests_pid" || echo "the background build of the GPU tests did not finish (gpu_tests_build.log): building on"
  gpu_tests_pid=""
}
for stage in "${stages[@]}"; do
  case $stage in
    build|loaded)
      if [ "$stage" = build ]; then
        jobs=$MAX_JOBS
        if $wants_gpu_tests; then
          jobs=$(((MAX_JOBS + 1) / 2))
          other=$((MAX_JOBS - jobs > 0 ? MAX_JOBS - jobs : 1))
          timeout --kill-after=10 "${STAGE_TIMEOUT:-420}" bash -c "$(gpu_tests_build $other)" \
            >"$out/gpu_tests_build.log" 2>&1 &
          gpu_tests_pid=$!
        fi
        step build env SNN_CUDA_BUILD_CUDA=1 MAX_JOBS=$jobs $PY setup.py build_ext --inplace
      fi
      step info $PY -m snn_cuda.info
      # A library that built but does not load (or lacks its CUDA kernels) would make every CUDA test skip and
      # the test stage pass: fail here, naming why.
      step cuda_kernels $PY -c "import sys, torch, snn_cuda; from snn_cuda import _ext; \
missing = [f'{op}_{d}' for op in ('lif', 'iir') for d in ('fwd', 'bwd') if not _ext.has_kernel(f'{op}_{d}', 'cuda')]; \
print('CUDA kernels missing:', missing, '| extension:', _ext.load_error() or 'loaded', '| cuda:', \
torch.cuda.is_available()) if missing else print('all CUDA kernels registered'); sys.exit(1 if missing else 0)" ;;
    test)
      # SNN_CUDA_REQUIRE_CUDA: the suite errors instead of skipping its CUDA cases when the kernels are absent
      step pytest_cuda env SNN_CUDA_REQUIRE_CUDA=1 $PY -m pytest -q -ra -m cuda "${parallel[@]}" tests ;;
    ctest)
      wait_for_gpu_tests_build
      step ctest bash -c "$build_gpu_tests && ctest --test-dir build/gpu --output-on-failure -R _gpu" ;;
    sanitize)
      wait_for_gpu_tests_build
      # Under gVisor compute-sanitizer refuses the device ("Device not supported", error 999): a skip, not a failure.
      step sanitize bash -c "$build_gpu_tests && for test in test_lif_gpu test_iir_gpu; do \
        compute-sanitizer --tool memcheck --error-exitcode 1 build/gpu/\$test 2>&1 | tee /tmp/sanitize_\$test.log; \
        status=\${PIPESTATUS[0]}; if grep -q 'Device not supported\\|error 999' /tmp/sanitize_\$test.log; then \
        echo 'compute-sanitizer cannot run on this machine: skipped'; exit 77; fi; [ \$status -eq 0 ] || exit 1; done" ;;
    bench)
      for dtype in float32 float16 bfloat16; do
        step "bench_$dtype" $PY benchmarks/timestep_scaling.py --ops lif iir --device cuda --dtype "$dtype" \
          --neurons 65536 --T 8 16 32 64 128 256 --repeats 20 --reference-max-T 64 --out "$out"
      done ;;
    layers)
      step bench_layers $PY benchmarks/timestep_scaling.py --ops snn_layer iir_layer rnn lstm --device cuda \
        --dtype float32 --T 8 32 64 --repeats 20 --out "$out/layers" ;;
    peers)
      if compgen -G ".whl/*.whl" >/dev/null; then
        step install_peers $PY -m pip install --no-index --no-deps --no-compile --target /tmp/snn_cuda_peers .whl/*.whl
        export PYTHONPATH=/tmp/snn_cuda_peers:$PYTHONPATH
      fi
      step bench_peers $PY benchmarks/peers.py --device cuda --out "$out"
      # anchors.md's float16 target (SpikingJelly's Triton kernel at [32, 64, 65536]): peers_gpu_float16.*
      step bench_peers_fp16 $PY benchmarks/peers.py --device cuda --dtype float16 --settings neuron --T 8 32 \
        --out "$out"
      step bench_peers_e2e $PY benchmarks/peers_end_to_end.py --device cuda --quiet --out "$out" ;;
    suite)
      step pytest_all $PY -m pytest -q -ra "${parallel[@]}" tests ;;
    *)
      echo "unknown stage '$stage' (build, loaded, test, ctest, sanitize, bench, layers, peers, suite)"
      failed+=("$stage") ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]} (logs in $out)"
  exit 1
fi
echo "all stages passed; logs and results in $out"
