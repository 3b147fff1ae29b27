"""Pure-torch implementations of the recurrences: the specification, the test oracle and the fallback."""

from .lif import lif

__all__ = ["lif"]
