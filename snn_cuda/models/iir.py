"""Fang et al.'s snn-iir networks: every weighted layer filters its input with trainable second-order IIR synapses
(one per input element and position), then applies Linear or Conv2d and the snn-iir neuron (models.md section 3).
Pooling tokens act on the filtered signal: they join the next weighted layer's per-frame transform."""

from __future__ import annotations

from torch import nn

from .._checks import check_bool
from ..layers import IIRLayer, snn_iir_neuron
from ..synapse import IIRSynapse, dual_exp, first_order, normalised_dual_exp
from .base import SequenceModel
from .spec import Dropout, Pool, frame_module, frame_shape, parse_spec

FILTERS = ("dual_exp", "first_order")


def iir_net(
    input_shape: tuple[int, ...],
    spec: str,
    *,
    tau_m: float = 4.0,
    tau_s: float = 1.0,
    synapse: str = "dual_exp",
    initial_state: str = "zero",
    output_filter: bool = False,
    readout: str = "count",
    backend: str = "auto",
) -> SequenceModel:
    """snn-iir network from a layer spec (:mod:`.spec`): the MNIST MLP is ``"FC500-D0.3-FC500-D0.3-FC10"``.

    Args:
        tau_m, tau_s: membrane and synaptic time constants (steps) of the neurons and the initial synapses.
        synapse: initial synapse filter, "dual_exp" (tau_m, tau_s) or "first_order" (tau_m, snn-iir's low pass).
        initial_state: "zero" or "preserved" (filter and neuron states carried across batches, detached).
        output_filter: filter the output spikes with the fixed normalised dual-exp filter (the associative
            memory's output, compared with equally filtered targets).
        readout: "count" (spike counts as logits) for classifiers, "none" for the associative memory.

    Input ``x: [T, B, *input_shape]``, output ``[T, B, classes]`` (spikes, or filtered spikes).
    """
    if synapse not in FILTERS:
        raise ValueError(f"synapse must be one of {FILTERS}, got {synapse!r}")
    output_filter = check_bool(output_filter, "output_filter")
    config = dict(
        arch="iir", input_shape=list(input_shape), spec=spec, tau_m=tau_m, tau_s=tau_s, synapse=synapse,
        initial_state=initial_state, output_filter=output_filter, readout=readout, backend=backend,
    )  # fmt: skip
    coefficients = dual_exp(tau_m, tau_s) if synapse == "dual_exp" else first_order(tau_m)
    shape, layers, pools = tuple(input_shape), [], []
    for layer in parse_spec(spec):
        if isinstance(layer, Dropout):
            if pools:  # the pooling runs inside the next layer, after its filter: the dropout cannot follow it
                raise ValueError(f"spec {spec!r}: in an iir net a dropout cannot follow a pooling (which runs after "
                                 "the next layer's filter); put it before the pooling")  # fmt: skip
            layers.append(nn.Dropout(layer.p))
        elif isinstance(layer, Pool):
            if len(shape) != 3:  # as frame_module says for the other families
                raise ValueError(f"{layer} needs frames of shape [C, H, W], got per-frame shape {list(shape)}")
            pools.append(layer.module())
        else:
            filtered_shape = shape
            for pool in pools:
                shape = frame_shape(pool, shape)
            transform = nn.Sequential(*pools, frame_module(layer, shape))
            shape = frame_shape(transform[-1], shape)
            layers.append(IIRLayer(
                IIRSynapse(filtered_shape, coefficients, initial_state=initial_state, backend=backend),
                transform,
                snn_iir_neuron(tau_m, initial_state=initial_state, backend=backend),
            ))  # fmt: skip
            pools = []
    if output_filter:
        layers.append(IIRSynapse(shape, normalised_dual_exp(tau_m, tau_s), learnable=False,
                                 initial_state=initial_state, backend=backend))  # fmt: skip
    return SequenceModel(layers, input_shape, readout, config)
