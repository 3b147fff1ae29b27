"""The public fused ops (custom-op wrappers with fake and autograd registrations)."""

from .lif import lif

__all__ = ["lif"]
