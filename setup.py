"""Builds snn_cuda._C, the compiled kernels, from csrc/.

- The CPU kernels are always built.
- The CUDA kernels are built when torch has CUDA and nvcc is found (force with SNN_CUDA_BUILD_CUDA=1, turn off
  with SNN_CUDA_BUILD_CUDA=0). TORCH_CUDA_ARCH_LIST chooses the architectures as usual.
- When nvcc exists but torch is CPU-only (the build machines), the CUDA sources are still compiled to object
  files for sm_80 and sm_90, and the CUDA half of the torch glue is syntax-checked, so CUDA code never rots
  unseen (skip with SNN_CUDA_CUDA_CHECK=0). A failure there fails the build.

- The CPU ops run on torch's threads where the C++ compiler takes OpenMP (GCC; Clang with libomp), else on one
  thread, with a warning (Apple's Clang). SNN_CUDA_OPENMP=1 makes OpenMP required, =0 leaves it out; on macOS
  it is left out unless =1 (see _openmp_flags).
- GCC or Clang only (Linux on x86-64 or aarch64, macOS): the kernels use their attributes and builtins; on
  Windows, build in WSL2.

Build with `pip install --no-build-isolation -e .` (torch must already be installed: the extension is compiled
against it).
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
CUDA_CHECK_ARCHS = ("80", "90")


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _find_nvcc() -> str | None:
    home = cpp_extension.CUDA_HOME or os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    candidate = os.path.join(home, "bin", "nvcc")
    return candidate if os.path.exists(candidate) else shutil.which("nvcc")


def _want_cuda() -> bool:
    flag = os.environ.get("SNN_CUDA_BUILD_CUDA")
    if flag is not None:
        return flag == "1"
    import torch

    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


# The torch ops and the torch-free CPU kernels (csrc/cpu/instances/: units of similar compile time, which the build
# compiles in parallel; cpu/lif_cpu.h says how they are split).
CPU_SOURCES = [s for s in _sources("csrc/torch/*.cpp") if not s.endswith("_cuda_ops.cpp")]
CPU_SOURCES += _sources("csrc/cpu/instances/*.cpp")
CUDA_GLUE_SOURCES = _sources("csrc/torch/*_cuda_ops.cpp")
CUDA_KERNEL_SOURCES = _sources("csrc/cuda/*.cu")


def _openmp_flags() -> list[str]:
    """["-fopenmp"] where the C++ compiler compiles and links an OpenMP program with it, else [] (with a warning).

    The CPU ops spread neurons over threads with at::parallel_for, which torch's OpenMP builds (its Linux and
    macOS wheels) define inline in the caller: compiled with OpenMP it runs on threads, without it the same code
    runs on one thread. GCC takes -fopenmp, Clang does with libomp installed, Apple's Clang refuses it; a probe
    tells them apart, where the flag alone would fail the whole build on a Mac. On macOS OpenMP is off unless asked
    for: torch's wheel brings its own libomp, and a second one loaded beside it aborts the process (OMP: Error #15).
    """
    choice = os.environ.get("SNN_CUDA_OPENMP")
    if choice not in (None, "", "0", "1"):
        raise SystemExit(
            f"snn_cuda: SNN_CUDA_OPENMP must be 0 or 1 (or unset: use OpenMP if the compiler has it), got {choice!r}"
        )
    if choice == "0" or (sys.platform == "darwin" and choice != "1"):
        return []
    # One path, as torch's build takes CXX (a wrapper such as ccache goes in front of it there, not in CXX).
    compiler = cpp_extension.get_cxx_compiler()
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "probe.cpp")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        command = [compiler, "-fopenmp", source, "-o", os.path.join(folder, "probe")]
        try:
            probe = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:  # no such compiler: the build itself will say so
            probe = subprocess.CompletedProcess(command, 1, "", str(error))
    if probe.returncode == 0:
        return ["-fopenmp"]
    # The first line names the cause: "'omp.h' file not found", "unsupported option '-fopenmp'", "cannot find -lomp"
    reason = (probe.stderr.strip().splitlines() or ["no message"])[0].strip()
    if choice == "1":
        raise SystemExit(f"snn_cuda: SNN_CUDA_OPENMP=1 but {compiler} cannot build with -fopenmp: {reason}")
    # pip shows this only with -v; python -m snn_cuda.info says it too.
    print(
        f"snn_cuda: WARNING: {compiler} cannot build with -fopenmp ({reason}); the CPU kernels will run on one "
        "thread. Install OpenMP for this compiler (libomp) for threads, or set SNN_CUDA_OPENMP=0 to silence this."
    )
    return []


if os.name == "nt":
    raise SystemExit(
        "snn_cuda: the kernels build with GCC or Clang (Linux, macOS); MSVC is not supported. On Windows, use WSL2."
    )

OPENMP_FLAGS = _openmp_flags()
# C++20: the torch 2.13 headers use C++20 features (they warn under C++17).
# -fno-trapping-math lets GCC if-convert the spike selects, so the neuron loops vectorise (results unchanged).
# -ffp-contract=off: no fused multiply-adds, so the CPU kernels compiled per instruction set (csrc/cpu/isa.h)
# agree bit for bit.
# -g0 overrides the -g of Python's own compile flags: debug information for the kernels' many template
# instantiations doubled the build time and the library's size.
CXX_FLAGS = ["-O3", "-g0", "-std=c++20", *OPENMP_FLAGS, "-fno-trapping-math", "-ffp-contract=off"]
# --fmad=false: likewise on the GPU, so the CUDA kernels round as the CPU kernels and the torch reference do (a
# contracted multiply-add moves h by an ulp, which can flip a spike at the threshold); the kernels are
# memory-bound, so the separate multiply and add cost nothing measurable.
NVCC_FLAGS = ["-O3", "-std=c++17", "--fmad=false"]


def _extension():
    if _want_cuda():
        return cpp_extension.CUDAExtension(
            "snn_cuda._C",
            CPU_SOURCES + CUDA_GLUE_SOURCES + CUDA_KERNEL_SOURCES,
            extra_compile_args={"cxx": CXX_FLAGS + ["-DSNN_CUDA_WITH_CUDA"], "nvcc": NVCC_FLAGS},
            extra_link_args=OPENMP_FLAGS,
        )
    return cpp_extension.CppExtension(
        "snn_cuda._C", CPU_SOURCES, extra_compile_args={"cxx": CXX_FLAGS}, extra_link_args=OPENMP_FLAGS
    )


class BuildExt(cpp_extension.BuildExtension):
    def run(self):
        super().run()
        if not _want_cuda() and os.environ.get("SNN_CUDA_CUDA_CHECK", "1") == "1":
            self._cuda_compile_check()

    def _cuda_compile_check(self):
        nvcc = _find_nvcc()
        if nvcc is None:
            print("snn_cuda: no nvcc found, CUDA compile check skipped")
            return
        out_dir = os.path.join(self.build_temp, "cuda_check")
        os.makedirs(out_dir, exist_ok=True)
        gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in CUDA_CHECK_ARCHS]
        # With the flags torch adds to every extension's nvcc call (no implicit half conversions, among others).
        torch_flags = getattr(cpp_extension, "COMMON_NVCC_FLAGS", [])
        for src in CUDA_KERNEL_SOURCES:
            obj = os.path.join(out_dir, os.path.basename(src) + ".o")
            print(f"snn_cuda: CUDA compile check {src} -> sm_{', sm_'.join(CUDA_CHECK_ARCHS)}")
            subprocess.run([nvcc, *torch_flags, *NVCC_FLAGS, *gencode, "-c", src, "-o", obj], check=True, cwd=ROOT)
        cuda_include = os.path.join(os.path.dirname(os.path.dirname(nvcc)), "include")
        # A CPU-only torch wheel ships the c10/cuda headers but not this generated one; an empty stand-in is
        # enough for a syntax check.
        shim = os.path.join(out_dir, "shim")
        os.makedirs(os.path.join(shim, "c10", "cuda", "impl"), exist_ok=True)
        with open(os.path.join(shim, "c10", "cuda", "impl", "cuda_cmake_macros.h"), "w") as f:
            f.write("#pragma once\n")
        includes = [f"-I{shim}"] + [f"-I{p}" for p in cpp_extension.include_paths()]
        includes += [f"-I{sysconfig.get_paths()['include']}", f"-I{cuda_include}"]
        for src in CUDA_GLUE_SOURCES:
            print(f"snn_cuda: CUDA glue syntax check {src}")
            subprocess.run(["c++", "-std=c++20", "-fsyntax-only", *includes, src], check=True, cwd=ROOT)


setup(ext_modules=[_extension()], cmdclass={"build_ext": BuildExt})
