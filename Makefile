# The two quick-start commands (README):  make run   and   make test
# Both create .venv with the pinned torch wheel and the dependencies, and build the kernels in place.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# Pinned: a range would let pip fetch a multi-GB CUDA build of torch. Override for other platforms.
TORCH ?= torch==2.13.0
# Where pip's index serves the CUDA build for a plain `torch==X` (PyPI on Linux does), point this at a CPU wheel
# index, e.g. make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
CMAKE_BUILD ?= build/cmake

.PHONY: setup run test ctest lint bench peers peer-wheels bench-peers bench-peers-e2e clean

$(VENV)/.installed: setup.py pyproject.toml $(wildcard csrc/*/*.h csrc/*/*.cpp csrc/*/*.cu)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(PY) -m pip install --quiet "setuptools>=69" wheel ninja pybind11
	$(PY) -m pip install --quiet --no-build-isolation -e ".[test]"
	$(PY) -m snn_cuda.info
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) experiments/gesture.py

test: setup
	$(PY) -m pytest -q

ctest:
	cmake -S . -B $(CMAKE_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(CMAKE_BUILD) -j2
	ctest --test-dir $(CMAKE_BUILD) --output-on-failure

lint: setup
	$(VENV)/bin/ruff check snn_cuda tests benchmarks experiments

bench: setup
	$(PY) benchmarks/timestep_scaling.py
	$(PY) benchmarks/complexity.py

# Peer libraries for benchmarks/peers.py, without their dependencies (see benchmarks/requirements-peers.txt);
# the last line fails if torch was replaced anyway.
peers: setup
	$(PY) -m pip install --quiet --no-deps -r benchmarks/requirements-peers.txt
	$(PY) -c "import sys, torch; v = torch.__version__.split('+')[0]; sys.exit(0 if '$(TORCH)'.endswith(v) else \
	  f'torch is {torch.__version__}, expected $(TORCH)')"

# The peer libraries as wheels in .whl/, for a GPU machine without internet (scripts/run_on_gpu.sh's peers stage
# installs them from there): all pure Python, norse built from its source distribution; h5py is left out (the GPU
# image has it, and a wheel built here would be for this machine's Python).
peer-wheels: setup
	grep -v '^h5py' benchmarks/requirements-peers.txt | $(PY) -m pip wheel --quiet --no-deps -w .whl -r /dev/stdin

# The documented CPU comparison with the peers: default sizes, PyTorch's CPU allocator on huge pages (as in the
# README's measurements). Writes benchmarks/results/peers_cpu.{csv,md,png}.
bench-peers: peers
	THP_MEM_ALLOC_ENABLE=1 $(PY) benchmarks/peers.py

# One epoch of He et al.'s gesture SCNN per library, reduced to minutes on 2 cores: 20 frames of 75 ms (as in
# gesture_quick.yaml), 32x32 as He et al., the first 64 training samples. Writes peers_end_to_end_cpu.{csv,md}.
bench-peers-e2e: peers
	THP_MEM_ALLOC_ENABLE=1 $(PY) benchmarks/peers_end_to_end.py --frames 20 --dt-ms 75 --max-samples 64 --quiet

clean:
	rm -rf build $(VENV) snn_cuda/*.so *.egg-info
