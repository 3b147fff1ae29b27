"""``snn_cuda.iir_filter``: the fused IIR filter op and its fake (meta) implementations; its autograd formula is in
C++ (csrc/torch/autograd.cpp)."""

from __future__ import annotations

import torch

from .. import _ext
from .._checks import ParamLike, compute_dtype
from ..reference import iir_filter as reference
from ..reference.iir import check_iir_args
from . import _backend


def iir_compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The IIR kernels' compute dtype, also that of the coefficients they take: float64 for float32 and float64
    (rounding of the filter state accumulates over long T; see IirCompute in csrc/core/iir_params.h), float32 for
    half and bfloat16."""
    return torch.float64 if dtype.itemsize >= 4 else torch.float32


def iir_filter(
    x: torch.Tensor,
    a1: ParamLike,
    a2: ParamLike,
    b: ParamLike,
    *,
    p1: torch.Tensor | None = None,
    p2: torch.Tensor | None = None,
    return_state: bool = False,
    backend: str = "auto",
):
    """Runs the IIR filter ``p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]`` (models.md section 2) over all time steps.

    Args:
        x: input ``[T, *S]``, time-major.
        a1, a2, b: coefficients, each a float or a tensor broadcasting against ``S`` (per feature ``[F]``, per
            channel ``[C, 1, 1]``, per element); tensors are learnable and their gradients are reduced over the
            broadcast dimensions. ``a2`` given as the number 0 is first order (a faster kernel with no p[t-2]).
            :mod:`snn_cuda.synapse` builds them from time constants.
        p1: the state ``p[-1]``, shape ``S`` (default zeros); p2: ``p[-2]``, shape ``S`` (default zeros).
        return_state: also return the final state ``(p_last, p_before_last) = (p[T-1], p[T-2])``, each ``S``, to
            pass as ``(p1, p2)`` to the call on the next chunk of the sequence (``p_before_last`` is ``p1`` when
            T = 1).
        backend: "auto" (the compiled kernel for x's device when loaded, else the reference with a warning),
            "cpp", "cuda" or "torch" (the reference).

    Returns:
        p ``[T, *S]`` in x's dtype, or ``(p, (p_last, p_before_last))``.
    """
    c = check_iir_args(x, a1, a2, b, p1, p2, return_state)
    if _backend.select("iir", backend, x, (c.a1, c.a2, c.b, c.p1, c.p2)) == "torch":
        return reference(x, c.a1, c.a2, c.b, p1=c.p1, p2=c.p2, return_state=return_state)
    layout = _backend.MemoryOrder(x, (c.a1, c.a2, c.b))  # first order's a2 is a number: no say in the shape
    shape = layout.parameter_shape

    def coefficient(value):
        # A number is taken at the value the reference takes (in compute_dtype(x.dtype): rounded to float32 for
        # float32 x), then widened to the kernels' compute dtype. A tensor keeps its own precision up to that
        # dtype: a float64 tensor gives float32 x's filter its float64 value, which the reference rounds.
        if not isinstance(value, torch.Tensor):
            value = _backend.as_parameter(value, shape, compute_dtype(x.dtype), x.device)
        return layout.parameter(_backend.as_parameter(value, shape, iir_compute_dtype(x.dtype), x.device))

    a1_t, b_t = coefficient(c.a1), coefficient(c.b)
    a2_t = None if c.first_order else coefficient(c.a2)
    p, p_last, p_before_last = torch.ops.snn_cuda.iir_fwd(
        layout.sequence(x), a1_t, a2_t, b_t, layout.state(c.p1), layout.state(c.p2)
    )
    p = layout.sequence_back(p)
    return (p, (layout.state_back(p_last), layout.state_back(p_before_last))) if return_state else p


def _register() -> None:
    @torch.library.register_fake("snn_cuda::iir_fwd")
    def _(x, a1, a2, b, p1, p2):
        # new_empty, not empty_like: the kernels write contiguous outputs whatever the input's strides.
        state = x.new_empty(x.shape[1:])
        return x.new_empty(x.shape), state, torch.empty_like(state)

    @torch.library.register_fake("snn_cuda::iir_bwd")
    def _(grad_p, grad_p_last, grad_p_before_last, p, x, a1, a2, b, p1, p2, grad_x, grad_a, grad_b):
        state_shape = grad_p.shape[1:]

        def coefficient_grad(wanted):
            return a1.new_empty(a1.shape if wanted else (0,))

        return (
            grad_p.new_empty(grad_p.shape if grad_x else (0,)),
            coefficient_grad(grad_a),
            coefficient_grad(grad_a and a2 is not None),
            coefficient_grad(grad_b),
            grad_p.new_empty(state_shape),
            grad_p.new_empty(state_shape),
        )


if _ext.loaded():
    _register()
