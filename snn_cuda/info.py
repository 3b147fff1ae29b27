"""``python -m snn_cuda.info``: versions, which kernels are loaded, and why not."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from . import __version__, _ext, memory

OPS = ("lif_fwd", "lif_bwd", "iir_fwd", "iir_bwd")
# The CPU kernels' builds, narrowest first, and the processor flags each needs (csrc/cpu/isa.h,
# best_supported_isa). ATEN_CPU_CAPABILITY picks one, as for PyTorch itself; the kernels run a build the processor
# lacks as the widest one it has, while torch still reports the capability asked for.
ISAS = ("baseline", "avx2", "avx512")
ISA_FLAGS = {"avx2": {"f16c", "avx2"}, "avx512": {"f16c", "avx512f", "avx512vl", "avx512bw", "avx512dq"}}
IIR_WIDEST_ISA = "avx2"  # csrc/cpu/iir_cpu.h, kIirWidestIsa


def cpu_flags() -> set[str]:
    """The processor's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())


def kernel_isa(capability: str, flags: set[str], machine: str) -> str | None:
    """The build the CPU kernels run (a name of ``ISAS``) when torch's capability is ``capability`` ("AVX2", ...)
    on a processor with ``flags`` and architecture ``machine``; None when the flags are unknown."""
    if machine.lower() not in ("x86_64", "amd64", "i386", "i686"):
        return "baseline"
    if not flags:
        return None
    asked = capability.lower() if capability.lower() in ISAS else "baseline"
    runs = [isa for isa in ISAS[1:] if ISA_FLAGS[isa] <= flags]
    widest = runs[-1] if runs else "baseline"
    return min(asked, widest, key=ISAS.index)


def cpu_threads(module) -> str:
    """How many threads the CPU kernels use, by whether the compiled ``module`` was built with OpenMP (setup.py)."""
    openmp = getattr(module, "OPENMP", None)
    if openmp is None:
        return "unknown (a library built before snn_cuda recorded it; rebuild to know)"
    if openmp:
        return f"torch's intra-op threads ({torch.get_num_threads()} now; torch.set_num_threads sets them)"
    return "one: built without OpenMP (the C++ compiler had none, or SNN_CUDA_OPENMP=0, or macOS; see setup.py)"


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
        capability = torch.backends.cpu.get_cpu_capability()
        isa = kernel_isa(capability, cpu_flags(), platform.machine())
        if isa is None:
            runs = f"torch's capability {capability}, capped at what this processor runs (its flags are unknown)"
        else:
            runs = f"LIF {isa}, IIR {min(isa, IIR_WIDEST_ISA, key=ISAS.index)} (torch's capability: {capability})"
        lines.append(f"CPU kernels: {runs}; ATEN_CPU_CAPABILITY picks the build")
        lines.append(f"CPU kernel threads: {cpu_threads(_ext.extension_module())}")
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
