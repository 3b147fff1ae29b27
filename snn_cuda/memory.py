"""The CPU output cache: where the compiled CPU ops take their large output tensors from.

Every op returns fresh ``[T, ...]`` tensors (spikes, filter outputs, input gradients). On the CPU, a fresh large
tensor page-faults in from the operating system (glibc hands freed blocks above its mmap threshold back), which
costs about as much as the fused kernel that fills it. A training loop allocates the same sizes at every step, so
the ops keep the blocks of their freed outputs (of 1 MiB and more) and hand one out again when an output of
exactly the same byte size is asked for, as PyTorch's caching allocator does on the GPU. The cache holds at most
its limit, 1 GiB unless ``SNN_CUDA_CPU_CACHE_MB`` (read at import) or :func:`set_cpu_cache_limit` says otherwise,
and drops the oldest blocks beyond it; a limit of 0 turns it off. Memory in the cache shows as the process's own
(resident) memory, not as allocated to tensors: the PyTorch profiler counts a block only while a tensor uses it.
The reference backend and the CUDA ops do not use it (CUDA has PyTorch's caching allocator).
"""

from __future__ import annotations

import os

from . import _ext

CACHE_LIMIT_ENV = "SNN_CUDA_CPU_CACHE_MB"

_C = _ext.extension_module()  # holds the cache's controls; None without the compiled extension

_STAT_KEYS = ("cached_bytes", "cached_blocks", "in_use_bytes", "limit_bytes", "hits", "misses")


def cpu_cache_info() -> dict[str, int]:
    """The cache's counters: ``cached_bytes`` / ``cached_blocks`` (freed outputs waiting for reuse),
    ``in_use_bytes`` (its blocks held by live tensors), ``limit_bytes``, and ``hits`` / ``misses`` (outputs served
    from a waiting block / from new memory) since the process started. All zero without the compiled extension."""
    if _C is None:
        return dict.fromkeys(_STAT_KEYS, 0)
    return _C.cpu_cache_stats()


def set_cpu_cache_limit(nbytes: int) -> None:
    """Sets how many bytes of freed outputs the cache may hold (0 turns it off); waiting blocks beyond a lowered
    limit are freed at once."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"nbytes must be an int >= 0 (bytes; 0 turns the cache off), got {nbytes!r}")
    if _C is not None:
        _C.cpu_cache_set_limit(nbytes)


def empty_cpu_cache() -> None:
    """Frees every waiting block (tensors in use keep theirs)."""
    if _C is not None:
        _C.cpu_cache_empty()


def _limit_from_environment() -> int | None:
    value = os.environ.get(CACHE_LIMIT_ENV)
    if value is None or value.strip() == "":
        return None
    try:
        megabytes = int(value)
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise ValueError(
            f"{CACHE_LIMIT_ENV} must be a whole number of megabytes >= 0 (0 turns the CPU output "
            f"cache off), got {value!r}"
        )
    return megabytes * 2**20


_env_limit = _limit_from_environment()
if _env_limit is not None:
    set_cpu_cache_limit(_env_limit)
