"""Surrogate derivatives of the spike (Heaviside) function, models.md section 1.

Each surrogate replaces ``ds/dh`` by ``g(u)``, ``u = h - theta``, and takes one parameter. The compiled kernels
implement the same table in ``csrc/core/lif_step.h``; this module is the torch version used by the reference.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_float, dual_level_open

# name -> default parameter (models.md: rectangular w 0.5 as in He et al.'s MLP, gaussian sigma 0.4 as in
# snn-iir, sigmoid alpha 4 and atan alpha 2 as in SpikingJelly, fast_sigmoid slope 25 as in SuperSpike/snnTorch).
DEFAULT_PARAM: dict[str, float] = {
    "rectangular": 0.5,
    "gaussian": 0.4,
    "sigmoid": 4.0,
    "atan": 2.0,
    "fast_sigmoid": 25.0,
    "triangle": 1.0,
}

NAMES = tuple(DEFAULT_PARAM)


def resolve(name: str, param: float | None) -> float:
    """Checks a surrogate name and parameter; returns the parameter (the default when None)."""
    if name not in DEFAULT_PARAM:
        raise ValueError(f"surrogate must be one of {', '.join(repr(n) for n in NAMES)}, got {name!r}")
    if param is None:
        return DEFAULT_PARAM[name]
    param = check_float(param, "surrogate_param")  # a finite number (taking a symbolic one under torch.compile)
    if not param > 0:
        raise ValueError(f"surrogate_param must be a positive finite number for surrogate {name!r}, got {param}")
    return param


def grad(name: str, u: torch.Tensor, p: float) -> torch.Tensor:
    """g(u) for surrogate ``name`` with parameter ``p``."""
    if name == "rectangular":
        return (u.abs() < p / 2).to(u.dtype) / p
    if name == "gaussian":
        return torch.exp(-(u * u) / (2 * p * p)) / (p * math.sqrt(2 * math.pi))
    if name == "sigmoid":
        sig = torch.sigmoid(p * u)
        return p * sig * (1 - sig)
    if name == "atan":
        return (p / 2) / (1 + (math.pi / 2 * p * u) ** 2)
    if name == "fast_sigmoid":
        return 1 / (1 + p * u.abs()) ** 2
    if name == "triangle":
        return torch.clamp(1 - u.abs() / p, min=0) / p
    raise ValueError(f"unknown surrogate {name!r}")


class SpikeFunction(torch.autograd.Function):
    """s = (u > 0) in the forward pass, ds/du = g(u) in the backward pass, and the same derivative in forward
    mode (``jvp``: ds = g(u) du), so forward- and reverse-mode Jacobians agree. Written with ``setup_context`` and a
    generated vmap rule, so ``torch.func`` (grad, jvp, vmap, jacrev, jacfwd) takes the reference too."""

    generate_vmap_rule = True

    @staticmethod
    def forward(u: torch.Tensor, name: str, p: float) -> torch.Tensor:
        return (u > 0).to(u.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        u, name, p = inputs
        ctx.save_for_backward(u)
        ctx.save_for_forward(u)
        ctx.name, ctx.p = name, p

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad_s * grad(ctx.name, u, ctx.p), None, None

    @staticmethod
    def jvp(ctx, u_tangent: torch.Tensor, name_tangent, p_tangent) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return u_tangent * grad(ctx.name, u, ctx.p)


@torch.compiler.disable
def _spike_outside_compile(u: torch.Tensor, name: str, p: float) -> torch.Tensor:
    return SpikeFunction.apply(u, name, p)


def spike(u: torch.Tensor, name: str, p: float) -> torch.Tensor:
    # torch.compile drops a custom Function's forward derivative (PyTorch 2.13: the tangent comes back None), so
    # under an open forward-mode dual_level the spike runs outside the compiled graph (a graph break)
    if torch.compiler.is_compiling() and dual_level_open():
        return _spike_outside_compile(u, name, p)
    return SpikeFunction.apply(u, name, p)
