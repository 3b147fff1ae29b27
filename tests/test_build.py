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


def test_the_library_runs_on_torchs_threads_where_the_compiler_has_openmp(tmp_path):
    """The library built here has OpenMP if this machine's C++ compiler (setup.py's default, CXX or c++) takes
    -fopenmp; the CI machines' GCC does, so a setup.py that dropped the flag fails here."""
    module = snn_cuda._ext.extension_module()
    if module is None:
        pytest.skip(f"the compiled library is not loaded: {snn_cuda._ext.load_error()}")
    source = tmp_path / "probe.cpp"
    source.write_text("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
    compiler = os.environ.get("CXX", "c++").split()
    probe = subprocess.run([*compiler, "-fopenmp", str(source), "-o", str(tmp_path / "probe")], capture_output=True)
    assert module.OPENMP == (1 if probe.returncode == 0 else 0)
    assert cpu_threads(module).startswith("torch's intra-op threads" if module.OPENMP else "one")


def test_info_says_how_many_threads_the_cpu_kernels_use():
    with_openmp = cpu_threads(types.SimpleNamespace(OPENMP=1))
    assert f"torch's intra-op threads ({torch.get_num_threads()} now" in with_openmp
    assert cpu_threads(types.SimpleNamespace(OPENMP=0)).startswith("one: built without OpenMP")
    assert cpu_threads(types.SimpleNamespace()).startswith("unknown")  # a library from before the constant
