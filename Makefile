# The two quick-start commands (README):  make run   and   make test
# Both create .venv with the pinned torch wheel and the dependencies, and build the kernels in place.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# Pinned: a range would let pip fetch a multi-GB CUDA build of torch. Override for other platforms.
TORCH ?= torch==2.13.0
CMAKE_BUILD ?= build/cmake

.PHONY: setup run test ctest lint bench clean

$(VENV)/.installed: setup.py pyproject.toml $(wildcard csrc/*/*.h csrc/*/*.cpp csrc/*/*.cu)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
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

clean:
	rm -rf build $(VENV) snn_cuda/*.so *.egg-info
