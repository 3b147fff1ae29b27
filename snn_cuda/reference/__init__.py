"""Pure-torch implementations of the recurrences: the specification, the test oracle and the fallback."""

from .iir import iir_filter
from .lif import lif

__all__ = ["iir_filter", "lif"]
