"""Seeded train / dev splits, the way the seeds made them (``torch.utils.data.random_split`` with a seeded
generator: a random permutation, the first part for training, the rest for development)."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_float

SPLITS = ("train", "dev", "train_all", "test")


def split_indices(count: int, split: str, *, dev_fraction: float, seed: int) -> np.ndarray:
    """Indices into a training list of ``count`` samples (or into the test list for "test").

    "train" / "dev": ``torch.randperm(count, generator=manual_seed(seed))`` split after ``count - dev`` entries,
    ``dev = round(count * dev_fraction)``: identical to ``random_split(data, [count - dev, dev], generator)``.
    "train_all" and "test": every index in order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dev_fraction = check_float(dev_fraction, "dev_fraction")
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must lie in (0, 1), got {dev_fraction}")
    if split in ("train_all", "test"):
        return np.arange(count)
    dev_count = round(count * dev_fraction)
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).numpy()
    return permutation[: count - dev_count] if split == "train" else permutation[count - dev_count :]
