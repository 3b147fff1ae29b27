"""``snn_cuda.LIF``: the LIF neuron layer for time-major input ``[T, B, ...]``."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_bool, check_choice, check_fits_dtype, check_float, check_shape
from ._state import apply_to_state, carried_state, refuse_recomputation
from .ops import lif
from .ops._backend import BACKENDS
from .reference.lif import check_lif_options


def _parameter_or_buffer(module: nn.Module, name: str, value: float, shape, learnable: bool) -> None:
    check_fits_dtype(value, name, torch.get_default_dtype())
    tensor = torch.full(tuple(shape), float(value)) if shape is not None else torch.tensor(float(value))
    if learnable:
        module.register_parameter(name, nn.Parameter(tensor))
    else:
        module.register_buffer(name, tensor)


class LIF(nn.Module):
    """A layer of LIF neurons running :func:`snn_cuda.lif` over all time steps at once.

    Args:
        shape: shape of per-neuron parameters, broadcast against the input's feature shape (for example
            ``(F,)`` for ``[T, B, F]`` or ``(C, 1, 1)`` for per-channel parameters of ``[T, B, C, H, W]``);
            None for one scalar alpha and theta for the whole layer.
        alpha, theta: initial decay and threshold. ``learn_alpha`` / ``learn_theta`` make them parameters
            (trained as they are; alpha is not clamped), otherwise they are buffers.
        stateful: carry the final state (detached: truncated BPTT) into the next call; ``reset_state()`` clears
            it. Otherwise every call starts from zero.
        return_membrane: return ``(spikes, v)``, the membrane sequence too (see :func:`snn_cuda.lif`), for
            instance for a readout layer of non-spiking neurons (``reset="none"`` and a threshold never reached).
        The other options are those of :func:`snn_cuda.lif`.

    Input ``[T, B, *F]``, output spikes of the same shape (and the membrane sequence, with ``return_membrane``).
    """

    # The default for modules pickled whole (torch.save(module)) before the option existed: unpickling restores
    # their attributes without __init__, so they would lack it.
    return_membrane = False

    def __init__(
        self,
        shape: tuple[int, ...] | None = None,
        *,
        alpha: float = 0.5,
        theta: float = 1.0,
        learn_alpha: bool = False,
        learn_theta: bool = False,
        reset: str = "hard",
        v_reset: float = 0.0,
        gamma: float | None = None,
        rho: float = 1.0,
        detach_reset: bool = False,
        surrogate: str = "atan",
        surrogate_param: float | None = None,
        stateful: bool = False,
        return_membrane: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        # Everything but the input is checked here, so a bad option fails where the module is built.
        if shape is not None:
            shape = check_shape(shape, "shape")
        check_float(alpha, "alpha", low=0.0, high=1.0)
        check_float(theta, "theta")
        check_lif_options(
            reset=reset, v_reset=v_reset, gamma=gamma, rho=rho, surrogate=surrogate, surrogate_param=surrogate_param
        )
        check_bool(detach_reset, "detach_reset")
        check_choice(backend, "backend", BACKENDS)
        _parameter_or_buffer(self, "alpha", alpha, shape, check_bool(learn_alpha, "learn_alpha"))
        _parameter_or_buffer(self, "theta", theta, shape, check_bool(learn_theta, "learn_theta"))
        self.options = dict(
            reset=reset, v_reset=v_reset, gamma=gamma, rho=rho, detach_reset=detach_reset, surrogate=surrogate,
            surrogate_param=surrogate_param, backend=backend,
        )  # fmt: skip
        self.stateful = check_bool(stateful, "stateful")
        self.return_membrane = check_bool(return_membrane, "return_membrane")
        self.v: torch.Tensor | None = None
        self.r: torch.Tensor | None = None

    def reset_state(self) -> None:
        """Forget the carried state: the next call starts from v = r = 0."""
        self.v = self.r = None

    def _apply(self, fn, recurse=True):
        # .to(device), .double(), ... move and cast the carried state too
        super()._apply(fn, recurse)
        self.v, self.r = apply_to_state(self.v, fn), apply_to_state(self.r, fn)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if x.dim() < 2:
            raise ValueError(f"LIF expects input of shape [T, B, ...], got shape {tuple(x.shape)}")
        v0 = r0 = None
        if self.stateful:
            refuse_recomputation("LIF(stateful=True)")
            if self.v is not None:
                if self.v.shape != x.shape[1:]:
                    raise ValueError(
                        f"LIF carries state of shape {tuple(self.v.shape)} but the input has trailing shape "
                        f"{tuple(x.shape[1:])}; call reset_state() when the batch changes"
                    )
                v0 = carried_state(self.v, x.dtype)
                r0 = carried_state(self.r, x.dtype) if self.options["gamma"] is not None else None
        spikes, *membrane, (v_last, r_last) = lif(
            x, alpha=self.alpha, theta=self.theta, v0=v0, r0=r0, return_state=True,
            return_membrane=self.return_membrane, **self.options,
        )  # fmt: skip
        if self.stateful:
            self.v, self.r = v_last.detach(), r_last.detach()
        return (spikes, *membrane) if self.return_membrane else spikes

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        membrane = ", return_membrane=True" if self.return_membrane else ""
        return f"alpha_shape={tuple(self.alpha.shape)}, stateful={self.stateful}{membrane}, {opts}"
