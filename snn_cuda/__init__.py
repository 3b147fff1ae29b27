"""snn_cuda: fused CPU and CUDA kernels for spiking neural networks in PyTorch.

``snn_cuda.lif`` runs the LIF neuron recurrence and ``snn_cuda.iir_filter`` the IIR synapse filter over all time
steps in one kernel (forward and backward); ``snn_cuda.reference`` holds the pure-torch specification.
Importing never fails because the compiled extension is missing: the ops then fall back to the reference (see
``python -m snn_cuda.info``).
"""

from . import memory, reference, surrogate, synapse
from .layers import IIRConv2d, IIRLayer, IIRLinear, IIRPooling, OverTime, snn_iir_neuron
from .memory import (
    cpu_cache_info,
    cpu_streaming_threshold,
    empty_cpu_cache,
    set_cpu_cache_limit,
    set_cpu_streaming_threshold,
)
from .neuron import LIF
from .ops import iir_filter, lif
from .synapse import IIRSynapse, dual_exp, first_order, normalised_dual_exp

__version__ = "0.1.0"

__all__ = [
    "LIF",
    "IIRConv2d",
    "IIRLayer",
    "IIRLinear",
    "IIRPooling",
    "IIRSynapse",
    "OverTime",
    "cpu_cache_info",
    "cpu_streaming_threshold",
    "dual_exp",
    "empty_cpu_cache",
    "first_order",
    "iir_filter",
    "lif",
    "memory",
    "normalised_dual_exp",
    "reference",
    "set_cpu_cache_limit",
    "set_cpu_streaming_threshold",
    "snn_iir_neuron",
    "surrogate",
    "synapse",
    "__version__",
]
