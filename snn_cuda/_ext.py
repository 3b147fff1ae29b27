"""Loads the compiled kernels (snn_cuda._C) without ever raising; remembers why loading failed.

The extension registers the ``torch.ops.snn_cuda`` ops when imported. Everything else in the package works
without it: the ops fall back to the pure-torch reference, with one warning.
"""

from __future__ import annotations

import importlib
import os

import torch

FORCE_REFERENCE_ENV = "SNN_CUDA_FORCE_REFERENCE"
# What this package expects of the compiled library (csrc/torch/registration.cpp has its own copy): a library
# built from older sources, e.g. after a `git pull` without rebuilding, is refused instead of half working.
INTERFACE_VERSION = 2

_loaded = False
_error: str | None = None
_module = None


def check_interface(module) -> None:
    """Raises ImportError, with the command that rebuilds it, when ``module`` was built for another version of
    this package (libraries older than the check have no INTERFACE_VERSION: version 1)."""
    built = getattr(module, "INTERFACE_VERSION", 1)
    if built != INTERFACE_VERSION:
        raise ImportError(
            f"snn_cuda._C was built from other sources (interface {built}, this package needs "
            f"{INTERFACE_VERSION}); rebuild it: pip install --no-build-isolation -e ."
        )


try:
    _module = importlib.import_module("snn_cuda._C")
    check_interface(_module)
    _loaded = True
except Exception as exc:  # noqa: BLE001 - any failure means "not available", and we report why
    _module, _error = None, f"{type(exc).__name__}: {exc}"


def loaded() -> bool:
    """True when the compiled library is importable (its CPU kernels are then registered)."""
    return _loaded


def extension_module():
    """The compiled module (it holds the CPU output cache's controls: snn_cuda.memory), or None."""
    return _module


def load_error() -> str | None:
    """Why the compiled library could not be loaded, or None."""
    return _error


def _kernel_table() -> dict[str, frozenset[str]]:
    """op name -> device types with a compiled implementation, read once from the dispatcher at import (so
    that backend selection is a plain dict lookup, which torch.compile traces without a graph break)."""
    if not _loaded:
        return {}
    table = {}
    for name in torch._C._dispatch_get_all_op_names():
        if name.startswith("snn_cuda::"):
            op = name.split("::", 1)[1]
            table[op] = frozenset(
                device
                for device, key in (("cpu", "CPU"), ("cuda", "CUDA"))
                if torch._C._dispatch_has_kernel_for_dispatch_key(name, key)
            )
    return table


_KERNELS = _kernel_table()


def has_kernel(op: str, device_type: str) -> bool:
    """True when ``torch.ops.snn_cuda.<op>`` has an implementation for ``device_type`` ("cpu" or "cuda")."""
    return device_type in _KERNELS.get(op, ())


def reference_forced() -> bool:
    """``SNN_CUDA_FORCE_REFERENCE`` set to 1, true, yes or on (any case); 0, false, no, off or unset leave it off,
    and another value is an error naming it (rather than a guess either way)."""
    value = os.environ.get(FORCE_REFERENCE_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{FORCE_REFERENCE_ENV}={os.environ[FORCE_REFERENCE_ENV]!r}: expected 1 / true / yes / on or "
                     "0 / false / no / off")
