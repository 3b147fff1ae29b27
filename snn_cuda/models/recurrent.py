"""The non-spiking baselines of He et al.: vanilla RNN and LSTM, fully connected or convolutional.

Hidden ``FC`` tokens of a spec become recurrent layers (consecutive ones of one size share one ``torch.nn.RNN`` /
``torch.nn.LSTM`` with ``num_layers``, so they run on cuDNN / oneDNN), ``C`` tokens convolutional recurrent layers,
pooling tokens pool each frame, and the last ``FC`` is a Linear readout applied at every step. He et al.'s public
baselines swap the time and batch axes; here everything is time-major ``[T, B, ...]`` throughout.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import OverTime
from .base import SequenceModel
from .spec import Conv, Dense, Dropout, frame_module, frame_shape, parse_spec

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM}


class StackedRecurrent(nn.Module):
    """``torch.nn.RNN`` / ``torch.nn.LSTM`` over ``[T, B, F]`` returning only the output sequence ``[T, B, H]``."""

    def __init__(self, cell: str, in_features: int, hidden: int, num_layers: int) -> None:
        super().__init__()
        self.cell, self.in_features = cell, in_features
        self.recurrent = CELLS[cell](in_features, hidden, num_layers=num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.recurrent(x)[0]


class ConvRecurrent(nn.Module):
    """Convolutional RNN (``h = tanh(Wx * x + Wh * h)``) or LSTM (Shi et al. 2015, no peepholes) layer.

    ``x: [T, B, C_in, H, W]`` -> ``[T, B, C_out, H', W']``. The input convolution (the token's kernel, stride and
    padding) runs on all steps at once; the hidden-to-hidden convolution keeps the size (odd kernel, same padding).
    """

    def __init__(self, cell: str, in_channels: int, conv: Conv) -> None:
        super().__init__()
        if conv.kernel % 2 == 0:
            raise ValueError(f"convolutional recurrent layers need an odd kernel, got {conv}")
        self.cell = cell
        gates = 4 if cell == "lstm" else 1
        self.input_conv = Conv(gates * conv.channels, conv.kernel, conv.stride, conv.padding).module(in_channels)
        self.hidden_conv = nn.Conv2d(conv.channels, gates * conv.channels, conv.kernel, padding=conv.kernel // 2,
                                     bias=False)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = OverTime(self.input_conv)(x)
        hidden_shape = (drive.shape[1], self.hidden_conv.in_channels, *drive.shape[3:])
        h = c = drive.new_zeros(hidden_shape)
        outputs = []
        for step in drive:
            z = step + self.hidden_conv(h)
            if self.cell == "lstm":
                i, f, g, o = z.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                h = torch.tanh(z)
            outputs.append(h)
        return torch.stack(outputs)


def recurrent_net(
    input_shape: tuple[int, ...], spec: str, *, cell: str = "lstm", readout: str = "last"
) -> SequenceModel:
    """He et al.'s RNN / LSTM baselines from a layer spec: ``"FC512-FC512-FC10"`` is their 2-layer network with
    hidden size 512 and a Linear readout; conv tokens give convolutional variants for the SCNN comparison.
    ``readout``: "last" (the mainstream loss) or "rate" (their rate-coded loss, mean over all steps).

    Input ``x: [T, B, *input_shape]``, output ``[T, B, classes]`` (the readout at every step).
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {tuple(CELLS)}, got {cell!r}")
    config = dict(arch="rnn", input_shape=list(input_shape), spec=spec, cell=cell, readout=readout)
    tokens = parse_spec(spec)
    shape, layers = tuple(input_shape), []
    for index, layer in enumerate(tokens):
        if isinstance(layer, Dropout):
            layers.append(nn.Dropout(layer.p))
        elif isinstance(layer, Conv):
            if len(shape) != 3:
                raise ValueError(f"{layer} needs frames of shape [C, H, W], got per-frame shape {list(shape)}")
            layers.append(ConvRecurrent(cell, shape[0], layer))
            shape = (layer.channels, *frame_shape(layers[-1].input_conv, shape)[1:])
        elif isinstance(layer, Dense) and index < len(tokens) - 1:
            if len(shape) > 1:
                layers.append(OverTime(nn.Flatten()))
                shape = (int(torch.Size(shape).numel()),)
            previous = layers[-1] if layers else None
            if isinstance(previous, StackedRecurrent) and previous.recurrent.hidden_size == layer.features:
                # one more layer of the same size: one multi-layer cuDNN / oneDNN call instead of two
                depth = previous.recurrent.num_layers + 1
                layers[-1] = StackedRecurrent(cell, previous.in_features, layer.features, depth)
            else:
                layers.append(StackedRecurrent(cell, shape[0], layer.features, 1))
            shape = (layer.features,)
        else:
            frame = frame_module(layer, shape)
            shape = frame_shape(frame, shape)
            layers.append(OverTime(frame))
    return SequenceModel(layers, input_shape, readout, config)
