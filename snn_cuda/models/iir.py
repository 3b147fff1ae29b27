"""Fang et al.'s snn-iir networks: every weighted layer filters its input with trainable second-order IIR synapses
(one per input element and position), then applies Linear or Conv2d and the snn-iir neuron (models.md section 3).
A pooling token pools the filtered signal: it is a stage of its own, filter -> pool (no neuron), and the layer
after it filters the pooled signal again, as snn-iir's CNNs do (snn_conv_1_mnist.py: axon4 -> pool4 -> axon5 ->
conv5)."""

from __future__ import annotations

from torch import nn

from .._checks import check_bool
from ..layers import IIRLayer, IIRPooling, snn_iir_neuron
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
        synapse: initial synapse filter, "dual_exp" (tau_m, tau_s; a1, a2 and b trained) or "first_order"
            (tau_m, snn-iir's low pass: its pole a1 trained, the input gain b fixed at 1 as in the seed).
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
    trained = True if synapse == "dual_exp" else ("a1",)  # snn-iir's first_order_low_pass_cell trains alpha_1 only
    shape, layers = tuple(input_shape), []
    for layer in parse_spec(spec):
        if isinstance(layer, Dropout):
            layers.append(nn.Dropout(layer.p))
            continue
        input_filter = IIRSynapse(shape, coefficients, learnable=trained, initial_state=initial_state,
                                  backend=backend)
        transform = frame_module(layer, shape)
        shape = frame_shape(transform, shape)
        if isinstance(layer, Pool):
            layers.append(IIRPooling(input_filter, transform))
        else:
            neuron = snn_iir_neuron(tau_m, initial_state=initial_state, backend=backend)
            layers.append(IIRLayer(input_filter, transform, neuron))
    if output_filter:
        layers.append(IIRSynapse(shape, normalised_dual_exp(tau_m, tau_s), learnable=False,
                                 initial_state=initial_state, backend=backend))  # fmt: skip
    return SequenceModel(layers, input_shape, readout, config)
