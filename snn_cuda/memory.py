"""How the compiled CPU ops handle their large outputs: the output cache, and streaming stores.

Every op returns fresh ``[T, ...]`` tensors (spikes, filter outputs, input gradients). On the CPU, a fresh large
tensor page-faults in from the operating system (glibc hands freed blocks above its mmap threshold back), which
costs about as much as the fused kernel that fills it. A training loop allocates the same sizes at every step, so
the ops keep the blocks of their freed outputs (of 1 MiB and more) and hand one out again when an output of
exactly the same byte size is asked for, as PyTorch's caching allocator does on the GPU. The cache holds at most
its limit, 1 GiB unless ``SNN_CUDA_CPU_CACHE_MB`` (read at import) or :func:`set_cpu_cache_limit` says otherwise,
and drops the oldest blocks beyond it; a limit of 0 turns it off. Memory in the cache shows as the process's own
(resident) memory, not as allocated to tensors: the PyTorch profiler counts a block only while a tensor uses it.
The reference backend and the CUDA ops do not use it (CUDA has PyTorch's caching allocator).

The CPU kernels write float32 and float64 outputs of at least :func:`cpu_streaming_threshold` bytes (32 MiB unless
``SNN_CUDA_CPU_STREAM_MB`` or :func:`set_cpu_streaming_threshold` says otherwise) with streaming stores, which skip
the read of each line a plain store does first and leave the cache to the inputs. That pays when the output is too
large to be in cache when it is next read, and costs when it is small enough to be (csrc/cpu/common.h has the
measurements; the 16-bit kernels are bound by compute, not by memory, and never stream). Results are
bitwise the same either way.
"""

from __future__ import annotations

import os

from . import _ext

CACHE_LIMIT_ENV = "SNN_CUDA_CPU_CACHE_MB"
STREAM_THRESHOLD_ENV = "SNN_CUDA_CPU_STREAM_MB"
_NEVER = 2**63 - 1  # the C++ side's "never stream"

_C = _ext.extension_module()  # holds the controls of both; None without the compiled extension

_STAT_KEYS = ("cached_bytes", "cached_blocks", "in_use_bytes", "limit_bytes", "hits", "misses")


def cpu_cache_info() -> dict[str, int]:
    """The cache's counters: ``cached_bytes`` / ``cached_blocks`` (freed outputs waiting for reuse),
    ``in_use_bytes`` (its blocks held by live tensors), ``limit_bytes``, and ``hits`` / ``misses`` (outputs served
    from a waiting block / from new memory) since the process started. All zero without the compiled extension."""
    if _C is None:
        return dict.fromkeys(_STAT_KEYS, 0)
    return _C.cpu_cache_stats()


def _check_nbytes(nbytes: object, meaning: str) -> int:
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"nbytes must be an int >= 0 (bytes; {meaning}), got {nbytes!r}")
    return nbytes


def set_cpu_cache_limit(nbytes: int) -> None:
    """Sets how many bytes of freed outputs the cache may hold (0 turns it off); waiting blocks beyond a lowered
    limit are freed at once."""
    _check_nbytes(nbytes, "0 turns the cache off")
    if _C is not None:
        _C.cpu_cache_set_limit(min(nbytes, _NEVER))  # beyond size_t: no limit but memory itself


def empty_cpu_cache() -> None:
    """Frees every waiting block (tensors in use keep theirs)."""
    if _C is not None:
        _C.cpu_cache_empty()


def cpu_streaming_threshold() -> int | None:
    """The size in bytes from which the CPU kernels write an output with streaming stores; None: never. None
    without the compiled extension."""
    if _C is None:
        return None
    nbytes = _C.cpu_stream_threshold()
    return None if nbytes == _NEVER else nbytes


def set_cpu_streaming_threshold(nbytes: int | None) -> None:
    """Sets the size in bytes from which the CPU kernels stream their outputs (0: always; None: never)."""
    if nbytes is not None:
        _check_nbytes(nbytes, "0 streams every output; None: never")
    if _C is not None:
        _C.cpu_stream_set_threshold(_NEVER if nbytes is None else min(nbytes, _NEVER))


def _megabytes_from_environment(name: str, meaning: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        megabytes = int(value)
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise ValueError(f"{name} must be a whole number of megabytes >= 0 ({meaning}), got {value!r}")
    return megabytes * 2**20


_env_limit = _megabytes_from_environment(CACHE_LIMIT_ENV, "0 turns the CPU output cache off")
if _env_limit is not None:
    set_cpu_cache_limit(_env_limit)
_env_threshold = _megabytes_from_environment(STREAM_THRESHOLD_ENV, "0 streams every output")
if _env_threshold is not None:
    set_cpu_streaming_threshold(_env_threshold)
