"""Timing, bandwidth and result-writing helpers shared by the benchmarks."""

from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import snn_cuda

RESULTS = Path(__file__).resolve().parent / "results"


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
        "load_average_1_5_15_min": " ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
