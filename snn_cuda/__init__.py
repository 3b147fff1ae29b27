"""snn_cuda: fused CPU and CUDA kernels for spiking neural networks in PyTorch.

``snn_cuda.lif`` runs the LIF neuron recurrence and ``snn_cuda.iir_filter`` the IIR synapse filter over all time
steps in one kernel (forward and backward); ``snn_cuda.reference`` holds the pure-torch specification.
Importing never fails because the compiled extension is missing: the ops then fall back to the reference (see
``python -m snn_cuda.info``).
"""

from . import reference, surrogate
from .neuron import LIF
from .ops import iir_filter, lif

__version__ = "0.1.0"

__all__ = ["LIF", "iir_filter", "lif", "reference", "surrogate", "__version__"]
