"""The snn-iir layer of models.md section 3 and its pieces.

An snn-iir layer filters its *input* with one IIR synapse per input element and position, applies a Linear or
Conv2d frame by frame, and feeds the snn-iir neuron (a configuration of :func:`snn_cuda.lif`). The pieces are
public so that models can be composed from them. A pooling stage of the seeds' CNNs filters its input and pools
the filtered signal, without a neuron (:class:`IIRPooling`); the next layer filters the pooled signal again.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_choice, check_shape, is_integer
from .neuron import LIF
from .synapse import INITIAL_STATES, Coefficients, IIRSynapse, _positive, dual_exp


def snn_iir_neuron(tau_m: float, *, initial_state: str = "zero", backend: str = "auto") -> LIF:
    """The snn-iir neuron (models.md section 1, row 2): ``v = I - r``, spike if ``v > 1``,
    ``r = e^(-1/tau_m) r + s``, gaussian surrogate sigma 0.4, reset not detached. One scalar configuration for
    the layer; ``initial_state`` "preserved" carries ``(v, r)`` across calls, detached."""
    check_choice(initial_state, "initial_state", INITIAL_STATES)
    gamma = math.exp(-1 / _positive(tau_m, "tau_m"))
    return LIF(
        alpha=0.0, theta=1.0, reset="none", gamma=gamma, rho=1.0, detach_reset=False,
        surrogate="gaussian", surrogate_param=0.4, stateful=initial_state == "preserved", backend=backend,
    )  # fmt: skip


class OverTime(nn.Module):
    """Applies a per-frame module to a sequence: ``[T, B, *F]`` -> module on ``[T*B, *F]`` -> ``[T, B, *F']``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"OverTime expects input of shape [T, B, ...], got shape {tuple(x.shape)}")
        T, B = x.shape[:2]
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])


def _check_sizes(**sizes: object) -> None:
    for name, value in sizes.items():
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


class IIRLayer(nn.Module):
    """snn-iir layer: ``synapse`` on the input ``[T, B, *F]`` -> ``transform`` frame by frame -> ``neuron``.

    Returns the spikes ``[T, B, *F']``. ``reset_state()`` clears the carried state of the synapse and neuron.
    """

    def __init__(self, synapse: IIRSynapse, transform: nn.Module, neuron: nn.Module) -> None:
        super().__init__()
        self.synapse = synapse
        self.transform = OverTime(transform)
        self.neuron = neuron

    def reset_state(self) -> None:
        self.synapse.reset_state()
        self.neuron.reset_state()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.transform(self.synapse(x)))


class IIRPooling(nn.Module):
    """snn-iir pooling stage: ``synapse`` on the input ``[T, B, C, H, W]`` -> ``pool`` frame by frame, no neuron.

    snn-iir's CNNs pool the *filtered* signal (filter -> pool), and the layer after it filters the pooled signal
    with synapses of its own (filter -> conv -> neuron). ``reset_state()`` clears the synapse's carried state.
    """

    def __init__(self, synapse: IIRSynapse, pool: nn.Module) -> None:
        super().__init__()
        self.synapse = synapse
        self.pool = OverTime(pool)

    def reset_state(self) -> None:
        self.synapse.reset_state()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.synapse(x))


class IIRLinear(IIRLayer):
    """snn-iir fully connected layer: ``[T, B, in_features]`` -> spikes ``[T, B, out_features]``.

    Args:
        tau_m: membrane time constant (the neuron's reset-trace decay e^(-1/tau_m), and the synapse's slow pole).
        tau_s: synaptic time constant. The synapses start as :func:`snn_cuda.synapse.dual_exp` (tau_m, tau_s)
            unless ``coefficients`` are given (for example :func:`snn_cuda.synapse.first_order`).
        initial_state: "zero" or "preserved" (synapse and neuron state carried across calls, detached).
        backend: passed to the filter and neuron ops.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        tau_m: float,
        tau_s: float,
        coefficients: Coefficients | None = None,
        initial_state: str = "zero",
        backend: str = "auto",
    ) -> None:
        coefficients = dual_exp(tau_m, tau_s) if coefficients is None else coefficients
        _check_sizes(in_features=in_features, out_features=out_features)
        super().__init__(
            IIRSynapse((in_features,), coefficients, initial_state=initial_state, backend=backend),
            nn.Linear(in_features, out_features),
            snn_iir_neuron(tau_m, initial_state=initial_state, backend=backend),
        )  # fmt: skip


class IIRConv2d(IIRLayer):
    """snn-iir convolution layer: ``[T, B, in_channels, H, W]`` -> spikes ``[T, B, out_channels, H', W']``.

    One synapse per input channel and position, so the input size ``(H, W)`` is fixed at construction. The other
    arguments are those of :class:`IIRLinear` and ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        input_size: tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        tau_m: float,
        tau_s: float,
        coefficients: Coefficients | None = None,
        initial_state: str = "zero",
        backend: str = "auto",
    ) -> None:
        coefficients = dual_exp(tau_m, tau_s) if coefficients is None else coefficients
        _check_sizes(in_channels=in_channels, out_channels=out_channels)
        input_size = check_shape(input_size, "input_size", example="(28, 28), the input frames' (H, W)", dims=2)
        super().__init__(
            IIRSynapse((in_channels, *input_size), coefficients, initial_state=initial_state, backend=backend),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
            snn_iir_neuron(tau_m, initial_state=initial_state, backend=backend),
        )  # fmt: skip
