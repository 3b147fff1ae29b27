"""``python -m snn_cuda.info``: versions, which kernels are loaded, and why not."""

from __future__ import annotations

import platform

import torch

from . import __version__, _ext, memory

OPS = ("lif_fwd", "lif_bwd", "iir_fwd", "iir_bwd")


def report() -> str:
    lines = [
        f"snn_cuda {__version__}",
        f"python {platform.python_version()}, torch {torch.__version__}, torch CUDA {torch.version.cuda}",
        f"CUDA device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
        f"compiled extension: {'loaded' if _ext.loaded() else 'NOT loaded: ' + str(_ext.load_error())}",
    ]
    for op in OPS:
        kernels = [d for d in ("cpu", "cuda") if _ext.has_kernel(op, d)]
        lines.append(f"  snn_cuda::{op}: {', '.join(kernels) if kernels else 'no kernels (reference fallback)'}")
    if _ext.loaded():
        lines.append(
            f"CPU kernels built for baseline, AVX2 and AVX-512; this process runs "
            f"{torch.backends.cpu.get_cpu_capability()}, the IIR kernels at most AVX2 "
            "(set ATEN_CPU_CAPABILITY to change)"
        )
        limit = memory.cpu_cache_info()["limit_bytes"]
        cache = f"up to {limit / 2**20:.0f} MiB of freed outputs kept for reuse" if limit else "off"
        lines.append(f"CPU output cache: {cache} ({memory.CACHE_LIMIT_ENV}; snn_cuda.memory)")
        threshold = memory.cpu_streaming_threshold()
        streamed = "never" if threshold is None else f"from {threshold / 2**20:g} MiB"
        lines.append(f"CPU streaming stores for outputs: {streamed} ({memory.STREAM_THRESHOLD_ENV}; snn_cuda.memory)")
    if _ext.reference_forced():
        lines.append(f"{_ext.FORCE_REFERENCE_ENV} is set: backend='auto' uses the pure-torch reference")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(prog="python -m snn_cuda.info", description=__doc__).parse_args()
    print(report())
