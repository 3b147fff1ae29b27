"""``snn_cuda.lif``: the fused LIF neuron op and its fake (meta) implementations; its autograd formula is in C++
(csrc/torch/autograd.cpp)."""

from __future__ import annotations

import torch

from .. import _ext
from .._checks import compute_dtype
from ..reference import lif as reference
from ..reference.lif import check_lif_args, lif_outputs
from . import _backend


def lif(
    x: torch.Tensor,
    *,
    alpha: float | torch.Tensor = 0.5,
    theta: float | torch.Tensor = 1.0,
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
    backend: str = "auto",
):
    """Runs the LIF neuron recurrence (models.md section 1) over all time steps.

    Args:
        x: input current ``[T, *S]``, time-major.
        alpha: membrane decay, a float in [0, 1] or a tensor broadcasting against ``S`` (learnable; a tensor's
            values are not range-checked, which would wait for the device).
        theta: firing threshold, a float or a tensor broadcasting against ``S`` (learnable).
        reset: "hard" (to ``v_reset``), "soft" (subtract ``theta``) or "none".
        v_reset: the hard-reset potential.
        gamma: decay of the reset trace ``r``; None turns the trace off (``r == 0``).
        rho: increment of the reset trace per spike.
        detach_reset: treat the spike as a constant where it enters the ``v`` and ``r`` updates.
        surrogate: "rectangular", "gaussian", "sigmoid", "atan", "fast_sigmoid" or "triangle".
        surrogate_param: the surrogate's parameter; None takes the default of ``snn_cuda.surrogate.DEFAULT_PARAM``.
        v0: initial membrane potential ``S`` (default zeros); r0: initial reset trace ``S`` (needs ``gamma``).
        return_state: also return the final state ``(v_last, r_last)``, each ``S``.
        return_membrane: also return the membrane sequence ``v [T, *S]``: ``v[t]`` after step t's reset (equal
            to the charge ``h[t]`` with ``reset="none"``, as for a non-spiking readout), differentiable like the
            spikes; ``v[-1]`` is ``v_last``.
        backend: "auto" (the compiled kernel for x's device when loaded, else the reference with a warning),
            "cpp", "cuda" or "torch" (the reference).

    Returns:
        spikes ``[T, *S]`` in x's dtype (exactly 0 or 1); with ``return_membrane`` and / or ``return_state`` a tuple:
        ``(spikes, v)``, ``(spikes, (v_last, r_last))`` or ``(spikes, v, (v_last, r_last))``.
    """
    c = check_lif_args(
        x, alpha=alpha, theta=theta, reset=reset, v_reset=v_reset, gamma=gamma, rho=rho,
        detach_reset=detach_reset, surrogate=surrogate, surrogate_param=surrogate_param, v0=v0, r0=r0,
        return_state=return_state, return_membrane=return_membrane,
    )  # fmt: skip
    if _backend.select("lif", backend, x, (c.alpha, c.theta, c.v0, c.r0)) == "torch":
        return reference(
            x, alpha=c.alpha, theta=c.theta, reset=c.reset, v_reset=c.v_reset, gamma=c.gamma, rho=c.rho,
            detach_reset=c.detach_reset, surrogate=c.surrogate, surrogate_param=c.surrogate_param, v0=c.v0,
            r0=c.r0, return_state=return_state, return_membrane=return_membrane,
        )  # fmt: skip
    acc = compute_dtype(x.dtype)
    layout = _backend.MemoryOrder(x, (c.alpha, c.theta))
    alpha_t = layout.parameter(_backend.as_parameter(c.alpha, layout.parameter_shape, acc, x.device))
    theta_t = layout.parameter(_backend.as_parameter(c.theta, layout.parameter_shape, acc, x.device))
    # What the backward reads: on the CPU it recomputes h from x (a fresh [T, N] tensor costs more in page faults
    # and memory traffic than running the recurrence again in cache); the CUDA kernel reads h saved here. The
    # graph test is the one records_graph (csrc/torch/autograd.cpp) makes again below the dispatcher: store_h must
    # be an argument, since the fake kernel sizes h by it.
    store_h = (
        x.device.type != "cpu"
        and torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in (x, alpha_t, theta_t, c.v0, c.r0))
    )
    spikes, v_last, r_last, _, v_seq = torch.ops.snn_cuda.lif_fwd(
        layout.sequence(x), alpha_t, theta_t, layout.state(c.v0), layout.state(c.r0), c.reset, c.v_reset, c.gamma,
        c.rho, c.detach_reset, c.surrogate, c.surrogate_param, store_h, return_membrane,
    )  # fmt: skip
    return lif_outputs(
        layout.sequence_back(spikes),
        layout.sequence_back(v_seq) if return_membrane else None,
        (layout.state_back(v_last), layout.state_back(r_last)) if return_state else None,
    )


def _register() -> None:
    @torch.library.register_fake("snn_cuda::lif_fwd")
    def _(x, alpha, theta, v0, r0, reset, v_reset, gamma, rho, detach_reset, surrogate, surrogate_param, store_h,
          store_v_seq=False):  # fmt: skip
        # new_empty, not empty_like: the kernels write contiguous outputs whatever the input's strides.
        state = x.new_empty(x.shape[1:])
        h = x.new_empty(x.shape) if store_h else x.new_empty((0,))
        v_seq = x.new_empty(x.shape) if store_v_seq else x.new_empty((0,))
        return x.new_empty(x.shape), state, torch.empty_like(state), h, v_seq

    @torch.library.register_fake("snn_cuda::lif_bwd")
    def _(grad_spikes, grad_v_last, grad_r_last, h, x, alpha, theta, v0, r0, reset, v_reset, gamma, rho,
          detach_reset, surrogate, surrogate_param, param_grads, grad_v_seq=None):  # fmt: skip
        state = grad_spikes.new_empty(grad_spikes.shape[1:])
        grad_alpha = alpha.new_empty(alpha.shape if param_grads else (0,))
        grad_x = grad_spikes.new_empty(grad_spikes.shape)  # contiguous, as the kernels write it
        return grad_x, state, torch.empty_like(state), grad_alpha, torch.empty_like(grad_alpha)


if _ext.loaded():
    _register()
