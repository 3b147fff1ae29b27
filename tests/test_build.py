"""The build's choices (setup.py): OpenMP where the C++ compiler has it, a warning and one thread where not."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import snn_cuda
from snn_cuda.info import cpu_threads

ROOT = Path(__file__).resolve().parents[1]

# A C++ compiler as Apple's Clang answers -fopenmp (and only that: any other call would mean setup.py compiled).
_NO_OPENMP_COMPILER = """#!/bin/sh
echo "clang: error: unsupported option '-fopenmp'" >&2
exit 1
"""


def _setup_py(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`python setup.py --name` (reads setup.py's module level, compiles nothing) with CXX set to a compiler that
    refuses -fopenmp."""
    compiler = tmp_path / "c++"
    compiler.write_text(_NO_OPENMP_COMPILER)
    compiler.chmod(0o755)
    environment = {k: v for k, v in os.environ.items() if k != "SNN_CUDA_OPENMP"}
    environment.update(CXX=str(compiler), SNN_CUDA_BUILD_CUDA="0", **env)
    return subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.skipif(sys.platform == "darwin", reason="setup.py leaves OpenMP out on macOS without probing")
def test_setup_builds_on_one_thread_with_a_warning_where_the_compiler_has_no_openmp(tmp_path):
    done = _setup_py(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "snn_cuda: WARNING:" in done.stdout and "unsupported option '-fopenmp'" in done.stdout, done.stdout
    assert "run on one thread" in done.stdout


def test_setup_fails_naming_the_compiler_when_openmp_is_required_and_missing(tmp_path):
    done = _setup_py(tmp_path, SNN_CUDA_OPENMP="1")
    assert done.returncode != 0
    assert "SNN_CUDA_OPENMP=1" in done.stderr and str(tmp_path / "c++") in done.stderr, done.stderr


def test_setup_leaves_openmp_out_silently_when_told(tmp_path):
    done = _setup_py(tmp_path, SNN_CUDA_OPENMP="0")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stdout


def test_setup_refuses_an_openmp_setting_it_does_not_know(tmp_path):
    done = _setup_py(tmp_path, SNN_CUDA_OPENMP="off")
    assert done.returncode != 0
    assert "SNN_CUDA_OPENMP must be 0 or 1" in done.stderr and "'off'" in done.stderr, done.stderr


@pytest.mark.skipif(sys.platform == "darwin", reason="setup.py leaves OpenMP out on macOS unless asked")
def test_the_library_has_openmp_where_the_compiler_has_it(tmp_path):
    """The library built here has OpenMP if this machine's C++ compiler (setup.py's default: CXX, else c++) takes
    -fopenmp; the CI machines' GCC does, so a setup.py that dropped the flag fails here. Assumes the library was
    built in this environment (as `make test` does), with SNN_CUDA_OPENMP unset."""
    if os.environ.get("SNN_CUDA_OPENMP") == "0":
        pytest.skip("SNN_CUDA_OPENMP=0: the library was built without OpenMP on purpose")
    module = snn_cuda._ext.extension_module()
    if module is None:
        pytest.skip(f"the compiled library is not loaded: {snn_cuda._ext.load_error()}")
    assert hasattr(module, "OPENMP"), "snn_cuda._C predates the OPENMP constant: rebuild (make setup)"
    source = tmp_path / "probe.cpp"
    source.write_text("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
    command = [os.environ.get("CXX", "c++"), "-fopenmp", str(source), "-o", str(tmp_path / "probe")]
    try:
        compiler_has_openmp = subprocess.run(command, capture_output=True).returncode == 0
    except OSError:  # no such compiler
        compiler_has_openmp = False
    assert module.OPENMP == int(compiler_has_openmp)
    assert cpu_threads(module).startswith("torch's intra-op threads" if module.OPENMP else "one")


def test_info_says_how_many_threads_the_cpu_kernels_use():
    with_openmp = cpu_threads(types.SimpleNamespace(OPENMP=1))
    assert f"torch's intra-op threads ({torch.get_num_threads()} now" in with_openmp
    assert cpu_threads(types.SimpleNamespace(OPENMP=0)).startswith("one: built without OpenMP")
    assert cpu_threads(types.SimpleNamespace()).startswith("unknown")  # a library from before the constant


_THREADS_SCRIPT = """
import os, sys, torch, snn_cuda
torch.set_num_threads(4)
before = len(os.listdir("/proc/self/task"))
x = torch.rand(4, 262144)  # 4096 groups of 64 neurons: every one of 4 threads gets some
snn_cuda.lif(x, backend="cpp")
print(before, len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc/self/task (Linux)")
def test_the_cpu_kernels_run_on_as_many_threads_as_torch_is_set_to():
    """torch.set_num_threads(4) in a fresh process, then one op: the OpenMP runtime the kernels run on starts 3
    workers beside the calling thread. A Clang build links LLVM's libomp, which torch does not set: it ran 2 (the
    cores here) until the kernels passed torch's count on (cpu_launch.h)."""
    module = snn_cuda._ext.extension_module()
    if module is None or not getattr(module, "OPENMP", 0):
        pytest.skip("the compiled library is not loaded, or was built without OpenMP (one thread by design)")
    done = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert after - before >= 3, f"{after - before} threads started for torch.set_num_threads(4)"
