"""The IIR filter recurrence of models.md section 2, step by step in plain torch: the specification.

Autograd through this function gives the reference gradients the fused kernels are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import ParamLike, check_bool, check_param, check_sequence, check_state
from .._state import outside_inference
from ._precision import compute_dtype


@dataclass(frozen=True)
class IirConfig:
    """Validated IIR filter arguments (see :func:`snn_cuda.iir_filter` for their meaning)."""

    a1: ParamLike
    a2: ParamLike
    b: ParamLike
    p1: torch.Tensor | None
    p2: torch.Tensor | None

    @property
    def first_order(self) -> bool:
        """a2 given as the number 0: no p[t-2] term (the fused kernels' first-order fast path)."""
        return not isinstance(self.a2, torch.Tensor) and self.a2 == 0.0


def check_iir_args(
    x: torch.Tensor,
    a1: ParamLike,
    a2: ParamLike,
    b: ParamLike,
    p1: torch.Tensor | None,
    p2: torch.Tensor | None,
    return_state: bool = False,
) -> IirConfig:
    check_sequence(x)
    check_bool(return_state, "return_state")
    return IirConfig(
        a1=check_param(a1, "a1", x),
        a2=check_param(a2, "a2", x),
        b=check_param(b, "b", x),
        p1=check_state(p1, "p1", x),
        p2=check_state(p2, "p2", x),
    )


def iir_filter(
    x: torch.Tensor,
    a1: ParamLike,
    a2: ParamLike,
    b: ParamLike,
    *,
    p1: torch.Tensor | None = None,
    p2: torch.Tensor | None = None,
    return_state: bool = False,
):
    """Reference IIR filter: x ``[T, *S]`` -> p ``[T, *S]`` (and ``(p_last, p_before_last)`` with ``return_state``).

    ``p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]`` with ``p[-1] = p1``, ``p[-2] = p2`` (zeros when None).
    """
    c = check_iir_args(x, a1, a2, b, p1, p2, return_state)
    # As the kernels compute (_precision.py): 16-bit storage in float32.
    storage = x.dtype
    compute = compute_dtype(storage)
    # Tensors made under inference mode (fixed coefficients, input, states) are taken as copies, which autograd can
    # save, as the kernels do.
    a1_, a2_, b_ = (outside_inference(v).to(compute) if isinstance(v, torch.Tensor) else v for v in (c.a1, c.a2, c.b))
    x_, p1, p2 = outside_inference(x), outside_inference(c.p1), outside_inference(c.p2)
    p_prev = p1.to(compute) if p1 is not None else x.new_zeros(x.shape[1:], dtype=compute)
    p_prev2 = p2.to(compute) if p2 is not None else x.new_zeros(x.shape[1:], dtype=compute)
    outputs = []
    for x_t in x_.to(compute).unbind(0):  # not x[t], whose backward is quadratic in T (see reference/lif.py)
        p = a1_ * p_prev + a2_ * p_prev2 + b_ * x_t
        outputs.append(p)
        p_prev2, p_prev = p_prev, p
    out = torch.stack(outputs).to(storage)
    p_last, p_before_last = p_prev.to(storage), p_prev2.to(storage)
    if p_before_last is c.p1:  # T = 1: p_before_last is p1; a copy, as the kernels return, not the caller's tensor
        p_before_last = p_before_last.clone()
    return (out, (p_last, p_before_last)) if return_state else out
