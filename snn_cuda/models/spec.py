"""Layer specifications in the seeds' notation, e.g. He et al.'s SCNN ``"64C3p1-128C3p1-AP2-128C3p1-AP2-FC256-FC11"``.

Tokens, joined by ``-``:

- ``{C}C{k}[s{stride}][p{padding}]``: a k x k convolution to C channels (stride 1, padding 0 unless given);
- ``AP{k}[p{padding}]`` / ``MP{k}[p{padding}]``: k x k average / max pooling with stride k;
- ``FC{n}``: a fully connected layer to n features (the input is flattened first when it has several dimensions);
- ``D{p}``: dropout with probability p.

The last token must be ``FC{classes}``: the output layer. Each model family turns the same tokens into its own
layers (:mod:`.spiking`, :mod:`.recurrent`, :mod:`.iir`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Conv:
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    def module(self, in_channels: int) -> nn.Conv2d:
        return nn.Conv2d(in_channels, self.channels, self.kernel, stride=self.stride, padding=self.padding)


@dataclass(frozen=True)
class Pool:
    kind: str  # "avg" or "max"
    kernel: int
    padding: int = 0

    def module(self) -> nn.Module:
        pool = nn.AvgPool2d if self.kind == "avg" else nn.MaxPool2d
        return pool(self.kernel, stride=self.kernel, padding=self.padding)


@dataclass(frozen=True)
class Dense:
    features: int


@dataclass(frozen=True)
class Dropout:
    p: float


Layer = Conv | Pool | Dense | Dropout

_PATTERNS = (
    (re.compile(r"(\d+)C(\d+)(?:s(\d+))?(?:p(\d+))?"),
     lambda m: Conv(int(m[1]), int(m[2]), int(m[3] or 1), int(m[4] or 0))),
    (re.compile(r"(AP|MP)(\d+)(?:p(\d+))?"),
     lambda m: Pool("avg" if m[1] == "AP" else "max", int(m[2]), int(m[3] or 0))),
    (re.compile(r"FC(\d+)"), lambda m: Dense(int(m[1]))),
    (re.compile(r"D(\d*\.?\d+)"), lambda m: Dropout(float(m[1]))),
)  # fmt: skip


def parse_spec(spec: str) -> list[Layer]:
    """``"32C3p1-MP2-FC10"`` -> ``[Conv(32, 3, 1, 1), Pool("max", 2), Dense(10)]``; errors name the token."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec must be a non-empty string like '64C3p1-AP2-FC11', got {spec!r}")
    layers: list[Layer] = []
    for token in spec.strip().split("-"):
        for pattern, make in _PATTERNS:
            match = pattern.fullmatch(token)
            if match:
                layers.append(make(match))
                break
        else:
            raise ValueError(
                f"spec {spec!r}: cannot read token {token!r} (expected e.g. 64C3p1, AP2, MP2p1, FC256, D0.3)"
            )
    for layer in layers:
        if isinstance(layer, Dropout) and not 0.0 <= layer.p < 1.0:
            raise ValueError(f"spec {spec!r}: dropout probability must lie in [0, 1), got {layer.p}")
        sizes = {Conv: ("channels", "kernel", "stride"), Pool: ("kernel",), Dense: ("features",)}.get(type(layer), ())
        if any(getattr(layer, size) < 1 for size in sizes):
            raise ValueError(f"spec {spec!r}: sizes must be positive in {layer}")
    if not isinstance(layers[-1], Dense):
        raise ValueError(f"spec {spec!r} must end with the output layer FC<classes>")
    return layers


def frame_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-frame output shape of ``module`` for per-frame input ``shape`` (one zero frame through it). A spec
    whose kernels, strides or poolings shrink the frame to nothing is a ValueError naming the layer."""
    try:
        with torch.no_grad():
            out = tuple(module(torch.zeros(1, *shape)).shape[1:])
    except RuntimeError as exc:  # torch's own: "Output size is too small", "pad should be at most half ..."
        reason = str(exc).strip().splitlines()[0]
        raise ValueError(f"{module} cannot take frames of shape {list(shape)}: {reason}") from None
    if 0 in out:
        raise ValueError(f"{module} turns frames of shape {list(shape)} into {list(out)}: nothing is left")
    return out


def frame_module(layer: Conv | Pool | Dense, shape: tuple[int, ...]) -> nn.Module:
    """The per-frame module of a weighted or pooling token for per-frame input ``shape``: a Conv2d, a pooling
    layer, or a Linear (after a Flatten when ``shape`` has several dimensions)."""
    if isinstance(layer, Dense):
        features = math.prod(shape)
        linear = nn.Linear(features, layer.features)
        return linear if len(shape) == 1 else nn.Sequential(nn.Flatten(), linear)
    if len(shape) != 3:
        raise ValueError(f"{layer} needs frames of shape [C, H, W], got per-frame shape {list(shape)}")
    return layer.module(shape[0]) if isinstance(layer, Conv) else layer.module()
