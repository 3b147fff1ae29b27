"""The arithmetic the references do for each storage dtype."""

from __future__ import annotations

import torch


def compute_dtype(storage: torch.dtype) -> torch.dtype:
    """16-bit storage is computed in float32, with the state kept in float32 between steps, as the kernels do
    (README, dtypes); wider storage in itself."""
    return torch.float32 if storage in (torch.float16, torch.bfloat16) else storage
