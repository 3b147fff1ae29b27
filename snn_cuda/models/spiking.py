"""He et al.'s spiking networks: every weighted layer is Linear or Conv2d -> LIF, and a pooling layer is a LIF
layer on the pooled spikes (models.md section 3). The neuron is He et al.'s LIF (models.md section 1, row 1):
decay 0.3, threshold 0.3, hard reset to 0 (the reset is not detached, as in their code), rectangular surrogate."""

from __future__ import annotations

from torch import nn

from ..layers import OverTime
from ..neuron import LIF
from .base import SequenceModel
from .spec import Dropout, frame_module, frame_shape, parse_spec


def he_lif(*, alpha: float, theta: float, surrogate_width: float, backend: str) -> LIF:
    """He et al.'s LIF neuron: ``u = alpha u (1 - o) + I``, ``o = [u > theta]``, rectangular surrogate."""
    return LIF(
        alpha=alpha, theta=theta, reset="hard", v_reset=0.0, surrogate="rectangular", surrogate_param=surrogate_width,
        backend=backend,
    )  # fmt: skip


def spiking_net(
    input_shape: tuple[int, ...],
    spec: str,
    *,
    alpha: float = 0.3,
    theta: float = 0.3,
    surrogate_width: float = 0.5,
    readout: str = "rate",
    backend: str = "auto",
) -> SequenceModel:
    """He et al. SNN from a layer spec (:mod:`.spec`): FC-SNN ``"FC512-FC11"``, SCNN
    ``"64C3p1-128C3p1-AP2-128C3p1-AP2-FC256-FC11"``. ``surrogate_width``: 0.5 for their MLPs, 1.0 for their CNNs.

    Input ``x: [T, B, *input_shape]``, output spikes ``[T, B, classes]``.
    """
    config = dict(arch="snn", input_shape=list(input_shape), spec=spec, alpha=alpha, theta=theta,
                  surrogate_width=surrogate_width, readout=readout, backend=backend)  # fmt: skip
    shape, layers = tuple(input_shape), []
    for layer in parse_spec(spec):
        if isinstance(layer, Dropout):
            layers.append(nn.Dropout(layer.p))
            continue
        frame = frame_module(layer, shape)
        shape = frame_shape(frame, shape)
        neuron = he_lif(alpha=alpha, theta=theta, surrogate_width=surrogate_width, backend=backend)
        layers += [OverTime(frame), neuron]
    return SequenceModel(layers, input_shape, readout, config)
