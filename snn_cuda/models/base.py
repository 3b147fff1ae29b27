"""What every model of :mod:`snn_cuda.models` is: a time-major sequence model with a readout over time."""

from __future__ import annotations

import torch
from torch import nn

# How per-step outputs [T, B, C] become one score per class [B, C]: He et al.'s rate (mean over T, the SNN loss
# and the RNNs' "rate-coded" loss), the RNNs' "mainstream" last step, snn-iir's spike count (sum over T, used as
# logits), or none (the associative memory compares whole output sequences).
READOUTS = ("rate", "last", "count", "none")


def apply_readout(outputs: torch.Tensor, readout: str) -> torch.Tensor:
    """``outputs: [T, B, C]`` -> scores ``[B, C]`` (``[T, B, C]`` unchanged for "none")."""
    if readout == "rate":
        return outputs.mean(0)
    if readout == "last":
        return outputs[-1]
    if readout == "count":
        return outputs.sum(0)
    if readout == "none":
        return outputs
    raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")


class SequenceModel(nn.Module):
    """Layers applied to a whole sequence at once: input ``[T, B, *input_shape]`` -> per-step outputs ``[T, B, C]``.

    ``readout`` names how the training loop reduces the outputs over time (:func:`apply_readout`); ``config`` is
    the dict the model was built from (so checkpoints can rebuild it).
    """

    def __init__(self, layers: list[nn.Module], input_shape: tuple[int, ...], readout: str, config: dict) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.layers = nn.Sequential(*layers)
        self.input_shape = tuple(input_shape)
        self.readout = readout
        self.config = dict(config)

    def reset_state(self) -> None:
        """Clears the state that layers with preserved initial states carry across calls."""
        for module in self.layers.modules():
            if module is not self and hasattr(module, "reset_state"):
                module.reset_state()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 + len(self.input_shape) or tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(
                f"x must have shape [T, B, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}"
            )
        return self.layers(x)
