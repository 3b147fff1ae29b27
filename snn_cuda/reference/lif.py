"""The LIF neuron recurrence of models.md section 1, step by step in plain torch: the specification.

Autograd through this function gives the reference gradients the fused kernels are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import surrogate as surrogates
from .._checks import (
    ParamLike,
    check_bool,
    check_choice,
    check_fits,
    check_float,
    check_param,
    check_sequence,
    check_state,
)
from .._state import outside_inference
from ._precision import compute_dtype

RESET_MODES = ("hard", "soft", "none")


@dataclass(frozen=True)
class LifConfig:
    """Validated LIF arguments (see :func:`snn_cuda.lif` for their meaning)."""

    alpha: ParamLike
    theta: ParamLike
    reset: str
    v_reset: float
    gamma: float | None
    rho: float
    detach_reset: bool
    surrogate: str
    surrogate_param: float
    v0: torch.Tensor | None
    r0: torch.Tensor | None


def check_lif_options(
    *, reset: str, v_reset: float, gamma: float | None, rho: float, surrogate: str, surrogate_param: float | None
) -> dict:
    """The neuron's options that do not depend on the input, validated (the surrogate parameter resolved)."""
    return dict(
        reset=check_choice(reset, "reset", RESET_MODES),
        v_reset=check_float(v_reset, "v_reset"),
        gamma=None if gamma is None else check_float(gamma, "gamma"),
        rho=check_float(rho, "rho"),
        surrogate=check_choice(surrogate, "surrogate", surrogates.NAMES),
        surrogate_param=surrogates.resolve(surrogate, surrogate_param),
    )


def check_lif_args(
    x: torch.Tensor,
    *,
    alpha: ParamLike,
    theta: ParamLike,
    reset: str,
    v_reset: float,
    gamma: float | None,
    rho: float,
    detach_reset: bool,
    surrogate: str,
    surrogate_param: float | None,
    v0: torch.Tensor | None,
    r0: torch.Tensor | None,
    return_state: bool = False,
    return_membrane: bool = False,
) -> LifConfig:
    check_sequence(x)
    check_bool(return_state, "return_state")
    check_bool(return_membrane, "return_membrane")
    if gamma is None and r0 is not None:
        raise ValueError("r0 is given but gamma is None: the reset trace is off, so there is no r state")
    options = check_lif_options(
        reset=reset, v_reset=v_reset, gamma=gamma, rho=rho, surrogate=surrogate, surrogate_param=surrogate_param
    )
    for name in ("v_reset", "gamma", "rho"):
        if options[name] is not None:
            check_fits(options[name], name, x)
    check_fits(options["surrogate_param"], "surrogate_param", x, positive=True)
    return LifConfig(
        alpha=check_param(alpha, "alpha", x, low=0.0, high=1.0),
        theta=check_param(theta, "theta", x),
        detach_reset=check_bool(detach_reset, "detach_reset"),
        v0=check_state(v0, "v0", x),
        r0=check_state(r0, "r0", x),
        **options,
    )


def lif(
    x: torch.Tensor,
    *,
    alpha: ParamLike = 0.5,
    theta: ParamLike = 1.0,
    reset: str = "hard",
    v_reset: float = 0.0,
    gamma: float | None = None,
    rho: float = 1.0,
    detach_reset: bool = False,
    surrogate: str = "atan",
    surrogate_param: float | None = None,
    v0: torch.Tensor | None = None,
    r0: torch.Tensor | None = None,
    return_state: bool = False,
    return_membrane: bool = False,
):
    """Reference LIF: x ``[T, *S]`` -> spikes ``[T, *S]``, then the membrane sequence ``v [T, *S]`` with
    ``return_membrane``, then ``(v_last, r_last)`` with ``return_state`` (see :func:`snn_cuda.lif`)."""
    c = check_lif_args(
        x, alpha=alpha, theta=theta, reset=reset, v_reset=v_reset, gamma=gamma, rho=rho,
        detach_reset=detach_reset, surrogate=surrogate, surrogate_param=surrogate_param, v0=v0, r0=r0,
        return_state=return_state, return_membrane=return_membrane,
    )  # fmt: skip
    # 16-bit storage is computed in float32, the state kept in float32 between steps, and the spike decided (and
    # its surrogate taken) on h rounded to the storage dtype, as the kernels store h for their backward (README).
    storage = x.dtype
    compute = compute_dtype(storage)
    # Tensors made under inference mode (a fixed parameter, an initial state) are taken as copies, which autograd
    # can save, as the kernels do.
    alpha_, theta_ = (outside_inference(p).to(compute) if isinstance(p, torch.Tensor) else p
                      for p in (c.alpha, c.theta))
    v0, r0 = outside_inference(c.v0), outside_inference(c.r0)
    v = v0.to(compute) if v0 is not None else x.new_zeros(x.shape[1:], dtype=compute)
    r = r0.to(compute) if r0 is not None else x.new_zeros(x.shape[1:], dtype=compute)
    spikes, membrane = [], []
    # x.unbind(0), not x[t]: autograd turns each x[t] into a zero-filled [T, *S] gradient, which makes the
    # backward quadratic in T; unbind's backward is one stack.
    for x_t in x.to(compute).unbind(0):
        h = alpha_ * v + x_t - r
        # The rounding's value, with the gradient of h itself (h + (rounded - h) is exactly the rounded h).
        h_fire = h if compute == storage else h + (h.to(storage).to(compute) - h).detach()
        s = surrogates.spike(h_fire - theta_, c.surrogate, c.surrogate_param)
        s_reset = s.detach() if c.detach_reset else s
        if c.reset == "hard":
            v = (1 - s_reset) * h + s_reset * c.v_reset
        elif c.reset == "soft":
            v = h - theta_ * s_reset
        else:
            v = h
        if c.gamma is not None:
            r = c.gamma * r + c.rho * s_reset
        spikes.append(s)
        if return_membrane:
            membrane.append(v)
    return lif_outputs(
        torch.stack(spikes).to(storage),
        torch.stack(membrane).to(storage) if return_membrane else None,
        (v.to(storage), r.to(storage)) if return_state else None,
    )


def lif_outputs(spikes: torch.Tensor, membrane: torch.Tensor | None, state: tuple | None):
    """What ``lif`` returns: the spikes alone, or a tuple of the spikes and those of the membrane sequence and the
    final state that were asked for, in that order."""
    extra = [out for out in (membrane, state) if out is not None]
    return (spikes, *extra) if extra else spikes
