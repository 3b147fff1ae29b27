"""Models of the two seed studies, built from config dicts (YAML-friendly) with :func:`build_model`.

Every model is a :class:`SequenceModel`: time-major input ``[T, B, *input_shape]``, per-step outputs
``[T, B, classes]``, and a ``readout`` naming how the training loop reduces them over time. ``arch`` picks the
family, ``spec`` the layers (notation in :mod:`snn_cuda.models.spec`):

- "snn": He et al.'s LIF networks (:func:`spiking_net`);
- "rnn": vanilla RNN / LSTM baselines, fully connected or convolutional (:func:`recurrent_net`);
- "iir": snn-iir networks with trainable IIR synapses (:func:`iir_net`).

:data:`PRESETS` holds the seeds' architectures (models.md section 4) by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from .._checks import check_keys, check_shape
from .base import READOUTS, SequenceModel, apply_readout
from .iir import iir_net
from .recurrent import ConvRecurrent, StackedRecurrent, recurrent_net
from .spec import parse_spec
from .spiking import he_lif, spiking_net

ARCHS = {"snn": spiking_net, "rnn": recurrent_net, "iir": iir_net}

HE_SCNN = "64C3p1-128C3p1-AP2-128C3p1-AP2-FC256-FC11"
# The SCNN as He et al. trained it (scnn_gesture.py, run "dvsGesture_stbp_cnn_10_dropout"): half the spikes dropped
# after the first convolution, after both poolings and after FC256. Their convolutional RNN / LSTM have none.
HE_SCNN_DROPOUT = "64C3p1-D0.5-128C3p1-AP2-D0.5-128C3p1-AP2-D0.5-FC256-D0.5-FC11"
NMNIST, GESTURE, MNIST = [2, 34, 34], [2, 32, 32], [784]

PRESETS: dict[str, dict] = {
    "he_fc_snn_nmnist": dict(arch="snn", input_shape=NMNIST, spec="FC512-FC10", surrogate_width=0.5),
    "he_fc_snn_gesture": dict(arch="snn", input_shape=GESTURE, spec="FC512-FC11", surrogate_width=0.5),
    "he_scnn_gesture": dict(arch="snn", input_shape=GESTURE, spec=HE_SCNN_DROPOUT, surrogate_width=1.0),
    "he_rnn_nmnist": dict(arch="rnn", input_shape=NMNIST, spec="FC512-FC512-FC10", cell="rnn"),
    "he_lstm_nmnist": dict(arch="rnn", input_shape=NMNIST, spec="FC512-FC512-FC10", cell="lstm"),
    "he_rnn_gesture": dict(arch="rnn", input_shape=GESTURE, spec="FC512-FC512-FC11", cell="rnn"),
    "he_lstm_gesture": dict(arch="rnn", input_shape=GESTURE, spec="FC512-FC512-FC11", cell="lstm"),
    "he_conv_rnn_gesture": dict(arch="rnn", input_shape=GESTURE, spec=HE_SCNN, cell="rnn"),
    "he_conv_lstm_gesture": dict(arch="rnn", input_shape=GESTURE, spec=HE_SCNN, cell="lstm"),
    "iir_mlp_mnist": dict(arch="iir", input_shape=MNIST, spec="FC500-D0.3-FC500-D0.3-FC10", tau_m=4.0, tau_s=1.0),
    "iir_cnn_mnist": dict(arch="iir", input_shape=[1, 28, 28], tau_m=4.0, tau_s=1.0,
                          spec="32C3p1-32C3p1-64C3p1-MP2-64C3p1-MP2-FC512-D0.3-FC10"),
    "iir_cnn_nmnist": dict(arch="iir", input_shape=[2, 34, 34], tau_m=4.0, tau_s=1.0,
                           spec="32C3-32C3-64C3-MP2p1-64C3-MP2-FC256-D0.3-FC10"),
    "iir_cnn_gesture": dict(arch="iir", input_shape=[2, 128, 128], tau_m=4.0, tau_s=1.0,
                            spec="64C7s3p1-32C3s3-32C3p1-FC256-D0.3-FC11"),
    "iir_associative_memory": dict(arch="iir", input_shape=[300], spec="FC500-FC200-FC500-FC300", tau_m=8.0,
                                   tau_s=2.0, output_filter=True, readout="none"),
}  # fmt: skip


def build_model(config: str | Mapping, **overrides) -> SequenceModel:
    """Builds a model from a preset name or a config dict ``{"arch": ..., "input_shape": ..., "spec": ..., ...}``;
    ``overrides`` replace config entries (e.g. ``backend="torch"``, ``readout="rate"``). A ``backend`` given to a
    family without spiking ops (the RNNs) is ignored, so one backend option serves every model of an experiment.
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown model preset {config!r}; presets: {sorted(PRESETS)}")
        config = PRESETS[config]
    options = {**config, **overrides}
    arch = options.pop("arch", None)
    if arch not in ARCHS:
        raise ValueError(f"config 'arch' must be one of {sorted(ARCHS)}, got {arch!r}")
    builder = ARCHS[arch]
    accepted = inspect.signature(builder).parameters
    if "backend" not in accepted:
        options.pop("backend", None)
    check_keys(options, sorted(accepted), f"config for arch {arch!r}")
    if "input_shape" not in options:
        raise ValueError(f"config for arch {arch!r} needs input_shape, the shape of one frame (such as [784] or "
                         "[2, 128, 128])")  # fmt: skip
    options["input_shape"] = check_shape(options["input_shape"], "input_shape", example="[784] or [2, 128, 128]")
    if not options["input_shape"]:
        raise ValueError("input_shape must have at least one dimension, such as [784] or [2, 128, 128], got []")
    return builder(**options)


def count_parameters(model, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (all, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "ARCHS", "ConvRecurrent", "PRESETS", "READOUTS", "SequenceModel", "StackedRecurrent", "apply_readout",
    "build_model", "count_parameters", "he_lif", "iir_net", "parse_spec", "recurrent_net", "spiking_net",
]  # fmt: skip
