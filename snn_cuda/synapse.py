"""IIR synapse filters (models.md section 2): coefficient constructors and the ``IIRSynapse`` module.

The constructors give snn-iir's initial coefficients ``(a1, a2, b)`` of ``p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]``
as floats; the module holds them per element as parameters that are then trained freely.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ._checks import check_bool, check_choice, check_fits_dtype, check_float, check_shape
from ._state import apply_to_state, carried_state, refuse_recomputation
from .ops import iir_filter
from .ops._backend import BACKENDS

Coefficients = tuple[float, float, float]
INITIAL_STATES = ("zero", "preserved")


def _positive(value: float, name: str) -> float:
    value = check_float(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _check_time_constants(tau_m: float, tau_s: float) -> tuple[float, float]:
    tau_m, tau_s = _positive(tau_m, "tau_m"), _positive(tau_s, "tau_s")
    if tau_m <= tau_s:
        raise ValueError(f"tau_m must exceed tau_s (the synaptic current decays faster), got {tau_m} <= {tau_s}")
    return tau_m, tau_s


def dual_exp(tau_m: float, tau_s: float) -> Coefficients:
    """Dual-exponential synapse: impulse response ``h[n] = a^(n+1) - c^(n+1)``, ``a = e^(-1/tau_m)``,
    ``c = e^(-1/tau_s)``; returns ``(a1, a2, b) = (a + c, -a c, a - c)``. Needs ``tau_m > tau_s > 0``."""
    tau_m, tau_s = _check_time_constants(tau_m, tau_s)
    a, c = math.exp(-1 / tau_m), math.exp(-1 / tau_s)
    return a + c, -a * c, a - c


def first_order(tau: float) -> Coefficients:
    """First-order low pass ``p[t] = e^(-1/tau) p[t-1] + x[t]`` (input gain 1, as in the seed): ``(a1, 0, 1)``.
    a2 is the number 0, so :func:`snn_cuda.iir_filter` takes its first-order fast path."""
    return math.exp(-1 / _positive(tau, "tau")), 0.0, 1.0


def dual_exp_peak_scale(tau_m: float, tau_s: float) -> float:
    """``v0 = eta^(eta / (eta - 1)) / (eta - 1)``, ``eta = tau_m / tau_s``: the gain that brings the dual-exp
    response's peak to about 1 (2.116535 for eta = 4)."""
    tau_m, tau_s = _check_time_constants(tau_m, tau_s)
    eta = tau_m / tau_s
    return eta ** (eta / (eta - 1)) / (eta - 1)


def normalised_dual_exp(tau_m: float, tau_s: float) -> Coefficients:
    """The dual-exp filter times :func:`dual_exp_peak_scale` (snn-iir's associative-memory output filter)."""
    a1, a2, b = dual_exp(tau_m, tau_s)
    return a1, a2, b * dual_exp_peak_scale(tau_m, tau_s)


def _learnable_names(learnable: object, first_order: bool) -> set[str]:
    names = ("a1", "b") if first_order else ("a1", "a2", "b")
    if isinstance(learnable, Iterable) and not isinstance(learnable, (str, bytes, Mapping)):
        learnable = list(learnable)  # a generator is read once
        unknown = [name for name in learnable if name not in names]
        if unknown:
            raise ValueError(f"learnable names coefficients of this {'first' if first_order else 'second'}-order "
                             f"filter, some of {names}; got {list(learnable)!r}")  # fmt: skip
        return set(learnable)
    return set(names) if check_bool(learnable, "learnable") else set()


class IIRSynapse(nn.Module):
    """A per-element IIR filter running :func:`snn_cuda.iir_filter` over all time steps at once.

    Args:
        shape: shape of the coefficients, broadcast against the input's trailing shape ``S`` (for example
            ``(F,)`` for ``[T, B, F]``, or ``(C, H, W)`` for one filter per input element and position of
            ``[T, B, C, H, W]``, as snn-iir does).
        coefficients: initial ``(a1, a2, b)``, for example from :func:`dual_exp`. When ``a2`` is 0 the filter is
            first order and ``a2`` stays 0 (it is not a parameter).
        learnable: True: every coefficient is a parameter (trained freely); False: none is (buffers); or the
            names of those to train, such as ``("a1",)``: snn-iir's first-order synapse trains its pole and keeps
            the input gain b at 1.
        initial_state: "zero" (every call starts from p = 0) or "preserved" (the final state of a call, detached,
            starts the next one: truncated BPTT); ``reset_state()`` forgets it.
        backend: as in :func:`snn_cuda.iir_filter`.

    Input ``[T, *S]``, output ``[T, *S]`` in the input's dtype.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        coefficients: Coefficients,
        *,
        learnable: bool | Iterable[str] = True,
        initial_state: str = "zero",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        shape = check_shape(shape, "shape")
        if not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3:
            raise ValueError(
                f"coefficients must be (a1, a2, b), three numbers (see dual_exp, first_order), got {coefficients!r}"
            )
        a1, a2, b = (check_float(v, name) for v, name in zip(coefficients, ("a1", "a2", "b"), strict=True))
        check_choice(backend, "backend", BACKENDS)
        self.first_order = a2 == 0.0
        trained = _learnable_names(learnable, self.first_order)
        for name, value in (("a1", a1), ("a2", a2), ("b", b)):
            if name == "a2" and self.first_order:
                continue
            tensor = torch.full(tuple(shape), check_fits_dtype(value, name, torch.get_default_dtype()))
            if name in trained:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.initial_state = check_choice(initial_state, "initial_state", INITIAL_STATES)
        self.backend = backend
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset_state(self) -> None:
        """Forget the carried state: the next call starts from p = 0."""
        self.state = None

    def _apply(self, fn, recurse=True):
        # .to(device), .double(), ... move and cast the carried state too
        super()._apply(fn, recurse)
        self.state = apply_to_state(self.state, fn)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = p2 = None
        if self.initial_state == "preserved":
            refuse_recomputation('IIRSynapse(initial_state="preserved")')
            if self.state is not None:
                if self.state[0].shape != x.shape[1:]:
                    raise ValueError(
                        f"IIRSynapse carries state of shape {tuple(self.state[0].shape)} but the input has "
                        f"trailing shape {tuple(x.shape[1:])}; call reset_state() when the batch changes"
                    )
                p1, p2 = (carried_state(s, x.dtype) for s in self.state)
        a2 = 0.0 if self.first_order else self.a2
        p, state = iir_filter(x, self.a1, a2, self.b, p1=p1, p2=p2, return_state=True, backend=self.backend)
        if self.initial_state == "preserved":
            self.state = (state[0].detach(), state[1].detach())
        return p

    def extra_repr(self) -> str:
        order = "first" if self.first_order else "second"
        return f"shape={tuple(self.a1.shape)}, {order} order, initial_state={self.initial_state!r}"
