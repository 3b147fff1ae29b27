"""Where snn_cuda keeps what it makes from data: generated synthetic sets and parsed-event caches."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "SNN_CUDA_DATA"


def data_root() -> Path:
    """Where generated data sets and caches live by default: ``$SNN_CUDA_DATA``, else ``~/.cache/snn_cuda``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "snn_cuda")
