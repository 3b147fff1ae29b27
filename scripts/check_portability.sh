#!/usr/bin/env bash
# Builds the torch-free kernel core and its C++ tests (csrc/cpu, csrc/tests) for the platforms the build machines
# are not, and runs them where it can, so x86-only or GCC-only code cannot slip in unseen:
#
#   scripts/check_portability.sh [WORKDIR]       (default /tmp/snn_cuda_portability)
#
#   clang-x86_64         the system's clang++ (Debian: apt install clang), through CMake; ctest runs the kernels
#                        as Clang compiles them, the AVX2 and AVX-512 builds included where the processor has them
#   gcc-aarch64-linux    GCC cross-compiling for ARM servers, such as the Grace CPUs of GH200 nodes (Debian: apt
#                        install g++-aarch64-linux-gnu); the tests run under qemu-aarch64 (apt install qemu-user
#                        libc6-arm64-cross)
#   clang-aarch64-linux  the same with the Clang inside zig (PyPI's ziglang, into WORKDIR/venv)
#   clang-aarch64-macos  zig's Clang for Apple silicon: compiled and linked, not run
#
# Each platform is reported as passed, compiled (the tests could not run), skipped (its tools are missing) or
# FAILED; the exit status is non-zero if any build or test failed. The Python extension itself (csrc/torch) is built by setup.py, with torch's headers, on the
# machine it runs on; these checks cover the kernels it wraps. Each platform compiles the 20 kernel units and 4
# tests; on the 2-core build machine the whole run took 20 minutes (2026-12-05), 2 to 6 a platform, the tests
# under qemu about 2 of them.
set -uo pipefail
work=${1:-/tmp/snn_cuda_portability}
ZIG_VERSION=${ZIG_VERSION:-0.17.1}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
# As CMakeLists.txt compiles the kernel core (C++17, which it keeps to; setup.py adds torch's C++20 for its glue).
FLAGS=(-std=c++17 -O3 -Wall -Wextra -Werror -fno-trapping-math -ffp-contract=off -I"$root/csrc")
failed=()

report() {  # report PLATFORM STATUS
  printf '%-20s %s\n' "$1" "$2" | tee -a "$work/summary.txt"
  case $2 in passed* | skipped* | compiled*) ;; *) failed+=("$1") ;; esac
}

# build_core OUTDIR COMPILER [ARGS ...]: the kernel units (in parallel, one per core) and the C++ tests, compiled
# with COMPILER ARGS and the flags above; logs in OUTDIR.
build_core() {
  local out=$1 unit
  shift
  local objects=()
  rm -rf "$out" && mkdir -p "$out"
  for source in "$root"/csrc/cpu/instances/*.cpp; do
    unit=$(basename "$source" .cpp)
    objects+=("$out/$unit.o")
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 1; done
    "$@" "${FLAGS[@]}" -c "$source" -o "$out/$unit.o" >"$out/$unit.log" 2>&1 &
  done
  wait
  for object in "${objects[@]}"; do  # a failed compile leaves no object
    [ -f "$object" ] || { echo "failed: $(basename "$object" .o) (log: ${object%.o}.log)"; return 1; }
  done
  for source in "$root"/csrc/tests/test_*_cpu.cpp; do
    unit=$(basename "$source" .cpp)
    "$@" "${FLAGS[@]}" "$source" "${objects[@]}" -o "$out/$unit" -lpthread >"$out/$unit.log" 2>&1 ||
      { echo "failed: $unit (log: $out/$unit.log)"; return 1; }
  done
}

# run_emulated PLATFORM OUTDIR DETAIL: runs the tests built into OUTDIR under qemu-aarch64 and reports PLATFORM.
run_emulated() {
  local status="passed ($3, run under $(qemu-aarch64 --version | head -n 1))"
  for test in "$2"/test_*_cpu; do
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$test" >"$test.run" 2>&1 ||
      { status="FAILED: $(basename "$test") (log: $test.run)"; break; }
  done
  report "$1" "$status"
}

: >"$work/summary.txt"

# Clang on this machine, through the project's own CMake build.
if command -v clang++ >/dev/null; then
  rm -rf "$work/clang-x86_64"
  if CXX=clang++ cmake -S "$root" -B "$work/clang-x86_64" -DSNN_CUDA_WITH_CUDA=OFF \
    -DCMAKE_CXX_FLAGS="-Werror" >"$work/clang-x86_64.log" 2>&1 &&
    cmake --build "$work/clang-x86_64" -j"$(nproc)" >>"$work/clang-x86_64.log" 2>&1 &&
    ctest --test-dir "$work/clang-x86_64" --output-on-failure >>"$work/clang-x86_64.log" 2>&1; then
    report clang-x86_64 "passed ($(clang++ --version | head -n 1))"
  else
    report clang-x86_64 "FAILED (log: $work/clang-x86_64.log)"
  fi
else
  report clang-x86_64 "skipped: no clang++"
fi

# GCC for aarch64 Linux (Debian: apt install g++-aarch64-linux-gnu), the compiler a GH200 node builds with.
emulator=0
command -v qemu-aarch64 >/dev/null && [ -d /usr/aarch64-linux-gnu ] && emulator=1
if command -v aarch64-linux-gnu-g++ >/dev/null; then
  gcc_version=$(aarch64-linux-gnu-g++ --version | head -n 1)
  if ! build_core "$work/gcc-aarch64-linux" aarch64-linux-gnu-g++; then
    report gcc-aarch64-linux "FAILED to compile (logs: $work/gcc-aarch64-linux)"
  elif [ $emulator -eq 1 ]; then
    run_emulated gcc-aarch64-linux "$work/gcc-aarch64-linux" "$gcc_version"
  else
    report gcc-aarch64-linux "compiled ($gcc_version); tests skipped: no qemu-aarch64 or /usr/aarch64-linux-gnu"
  fi
else
  report gcc-aarch64-linux "skipped: no aarch64-linux-gnu-g++"
fi

# zig's Clang cross-compiles to aarch64 Linux and macOS: PyPI's ziglang, in a venv of its own, at ZIG_VERSION.
zig=("$work/venv/bin/python" -m ziglang c++)
if [ "$("${zig[@]:0:3}" version 2>/dev/null)" != "$ZIG_VERSION" ]; then
  rm -rf "$work/venv"
  python3 -m venv "$work/venv" >"$work/venv.log" 2>&1 &&
    "$work/venv/bin/pip" install --quiet "ziglang==$ZIG_VERSION" >>"$work/venv.log" 2>&1 || rm -rf "$work/venv"
fi
if [ ! -x "$work/venv/bin/python" ]; then
  for platform in clang-aarch64-linux clang-aarch64-macos; do
    report $platform "skipped: could not install ziglang==$ZIG_VERSION (log: $work/venv.log)"
  done
else
  if ! build_core "$work/clang-aarch64-linux" "${zig[@]}" -target aarch64-linux-gnu; then
    report clang-aarch64-linux "FAILED to compile (logs: $work/clang-aarch64-linux)"
  elif [ $emulator -eq 1 ]; then
    run_emulated clang-aarch64-linux "$work/clang-aarch64-linux" "zig $ZIG_VERSION"
  else
    report clang-aarch64-linux "compiled (zig $ZIG_VERSION); tests skipped: no qemu-aarch64 or /usr/aarch64-linux-gnu"
  fi
  if build_core "$work/clang-aarch64-macos" "${zig[@]}" -target aarch64-macos; then
    report clang-aarch64-macos "compiled and linked (zig $ZIG_VERSION); not run: no macOS here"
  else
    report clang-aarch64-macos "FAILED to compile (logs: $work/clang-aarch64-macos)"
  fi
fi

[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
