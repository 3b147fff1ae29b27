"""The public fused ops (custom-op wrappers with fake and autograd registrations)."""

from .iir import iir_filter
from .lif import lif

__all__ = ["iir_filter", "lif"]
