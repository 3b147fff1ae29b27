"""Timing, bandwidth and result-writing helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import snn_cuda
from snn_cuda.experiment import device_argument  # noqa: F401  (the benchmarks' --device, as the drivers')

RESULTS = Path(__file__).resolve().parent / "results"


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type for sizes, counts and repeats: an integer of at least 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type for warm-up counts: an integer of at least 0."""
    return _int_at_least(text, 0)


def number_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type for a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            raise argparse.ArgumentTypeError(f"must lie in {'(' if low_open else '['}{low}, {high}], got {text}")
        return value

    return parse


def output_folder(text: str) -> Path:
    """An argparse type for ``--out``: the folder, created now, so an unwritable one fails before the timing."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot create folder {text}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {text} is not writable")
    return path


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device: torch.device, *, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` in milliseconds, the device synchronised around each call."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def forward_backward_ms(
    forward: Callable[[], torch.Tensor], backward: Callable[[torch.Tensor], object], device: torch.device, *,
    repeats: int, warmup: int = 1,
) -> dict[str, float]:  # fmt: skip
    """Medians in milliseconds of ``repeats`` training steps: ``{"fwd", "bwd", "fwd_bwd"}``.

    Each step runs ``out = forward()`` then ``backward(out)`` and times both halves, so one step gives all three
    numbers (half the work of timing a forward-only and a forward+backward call separately, which matters when
    one step takes seconds); the device is synchronised after each half.
    """
    for _ in range(warmup):
        backward(forward())
    synchronize(device)
    times: dict[str, list[float]] = {"fwd": [], "bwd": [], "fwd_bwd": []}
    for _ in range(repeats):
        start = time.perf_counter()
        out = forward()
        synchronize(device)
        middle = time.perf_counter()
        backward(out)
        synchronize(device)
        end = time.perf_counter()
        del out
        for phase, seconds in (("fwd", middle - start), ("bwd", end - middle), ("fwd_bwd", end - start)):
            times[phase].append(seconds * 1e3)
    return {phase: statistics.median(values) for phase, values in times.items()}


def peak_memory_mb(step: Callable[[], object], device: torch.device) -> float:
    """The largest growth of allocated memory during ``step()`` over its start, in MB (1e6 bytes).

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: torch has no peak counter for its CPU allocator (and
    tracemalloc does not see it), so ``step`` runs once under ``torch.profiler`` with ``profile_memory``, which
    records every allocation and free of that allocator; the peak is the largest running sum of those records.
    Frees of memory allocated before the step are not recorded, so tensors that live across steps (inputs,
    weights) are not counted, and nothing the step frees of them lowers the peak either.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 1e6
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    # The chrome trace is the public form of the allocation records (FunctionEvent folds them into ops).
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        profiler.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    records = sorted(
        (event["ts"], event["args"]["Bytes"]) for event in events
        if event.get("name") == "[memory]" and event["args"].get("Device Type") == 0
    )  # fmt: skip
    allocated = peak = 0
    for _, nbytes in records:
        allocated += nbytes
        peak = max(peak, allocated)
    return peak / 1e6


def lif_tensor_passes(device_type: str) -> tuple[int, int]:
    """How many times snn_cuda.lif reads or writes a tensor of x's size in the forward and in the backward: the
    bytes it must move, in units of x.nbytes. CUDA: the forward reads x and writes spikes and h, the backward reads
    grad_spikes and h and writes grad_x. CPU: the forward writes no h; the backward reads x instead and recomputes
    h in cache (see snn_cuda/ops/lif.py)."""
    return (2 if device_type == "cpu" else 3), 3


def figure_title(text: str, width: int = 150) -> str:
    """A plot's title broken into lines that fit the figure (the device and load line is long)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def copy_bandwidth_gbps(device: torch.device, *, megabytes: int = 512, repeats: int = 5) -> float:
    """Bandwidth of a large tensor copy (bytes read + bytes written per second), measured in this process.

    The destination is allocated once, so page faults on fresh memory are not counted: this is the bound a
    kernel that reads and writes each tensor once can reach.
    """
    n = megabytes * 2**20 // 4
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, repeats=repeats)
    return 2 * n * 4 / (ms * 1e-3) / 1e9


MALLOC_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def environment(device: torch.device) -> dict[str, str]:
    """Device, versions, allocator settings and the machine's load (timings on a loaded machine are slower and
    noisier) to store beside every result."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    return {
        "device": f"{device.type}: {name}",
        "threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "snn_cuda": snn_cuda.__version__,
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
        # glibc's malloc tunables: whether big freed tensors go back to the system (and page-fault when allocated
        # again) or stay in the heap; see the README's performance section.
        "malloc": " ".join(f"{name}={os.environ[name]}" for name in MALLOC_TUNABLES if name in os.environ)
        or "glibc defaults",
        # snn_cuda's own CPU output handling (snn_cuda.memory): the cache of freed outputs and streaming stores.
        "cpu_output_cache_MiB": str(snn_cuda.cpu_cache_info()["limit_bytes"] // 2**20),
        "cpu_streaming_from_MiB": _streaming_from_mib(),
        "load_average_1_5_15_min": " ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


def _streaming_from_mib() -> str:
    threshold = snn_cuda.cpu_streaming_threshold()
    return "never" if threshold is None else f"{threshold / 2**20:g}"


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
