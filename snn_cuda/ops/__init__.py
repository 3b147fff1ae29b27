"""The public fused ops: custom-op wrappers and their fake registrations (the autograd formulas are in C++,
csrc/torch/autograd.cpp)."""

from .iir import iir_filter
from .lif import lif

__all__ = ["iir_filter", "lif"]
