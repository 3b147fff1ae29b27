"""Loads the compiled kernels (snn_cuda._C) without ever raising; remembers why loading failed.

The extension registers the ``torch.ops.snn_cuda`` ops when imported. Everything else in the package works
without it: the ops fall back to the pure-torch reference, with one warning.
"""

from __future__ import annotations

import importlib
import os

import torch

FORCE_REFERENCE_ENV = "SNN_CUDA_FORCE_REFERENCE"

_loaded = False
_error: str | None = None

try:
    importlib.import_module("snn_cuda._C")
    _loaded = True
except Exception as exc:  # noqa: BLE001 - any failure means "not available", and we report why
    _error = f"{type(exc).__name__}: {exc}"


def loaded() -> bool:
    """True when the compiled library is importable (its CPU kernels are then registered)."""
    return _loaded


def load_error() -> str | None:
    """Why the compiled library could not be loaded, or None."""
    return _error


def has_kernel(op: str, device_type: str) -> bool:
    """True when ``torch.ops.snn_cuda.<op>`` has an implementation for ``device_type`` ("cpu" or "cuda")."""
    if not _loaded:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if key is None:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"snn_cuda::{op}", key)


def reference_forced() -> bool:
    return os.environ.get(FORCE_REFERENCE_ENV, "0") not in ("", "0")
