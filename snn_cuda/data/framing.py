"""Events to frames ``[T, 2, H, W]``, vectorised (one ``np.bincount``, no loop over events).

Slicing (every mode is "T bins over a window ``[start, end)``"):

- ``dt_ms`` (with ``frames=T``): frame k holds ``start + k dt <= t < start + (k+1) dt`` (``end_us`` is then not
  used); without ``frames``, T is the smallest count reaching past the last event (or ``end_us`` when given).
- ``frames=T`` alone: T equal bins over the sample ``[start, end)``;
- ``frames=T, span_ms=S``: T equal bins over the first S ms, ``[start, start + S)``.

The bin of an event is ``floor((t - start) * T / (end - start))`` in exact integer arithmetic, so an event on an
edge goes into the later bin, and events with ``t < start`` or ``t >= end`` (past the last bin) are dropped.
``start`` defaults to the first event and ``end`` to the last event + 1 us, so every event of the sample lands in
a bin. Channel 0 is OFF (p = 0), channel 1 is ON (p = 1).

Accumulation: ``or`` (1 where any event), ``sum`` (event counts), ``sum_max`` (counts divided by the maximum of
their frame ``[2, H, W]``; empty frames stay zero). Downsampling by an integer factor sums ``factor x factor``
blocks before accumulation (so ``or`` marks a block with any event).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .._checks import check_float, check_keys, is_integer
from .events import EVENT_DTYPE, check_events

MODES = ("or", "sum", "sum_max")


def _microseconds(value_ms: float, name: str) -> int:
    value_us = round(check_float(value_ms, name) * 1000)
    if value_us <= 0 or abs(value_us - value_ms * 1000) > 1e-6:
        raise ValueError(f"{name} must be a positive whole number of microseconds, got {value_ms} ms")
    return value_us


def events_to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    frames: int | None = None,
    dt_ms: float | None = None,
    span_ms: float | None = None,
    mode: str = "or",
    downsample: int = 1,
    start_us: int | None = None,
    end_us: int | None = None,
    dtype: np.dtype = np.float32,
) -> np.ndarray:
    """Frames ``[T, 2, H // downsample, W // downsample]`` from ``events: [N]`` on a ``sensor_size = (H, W)``
    sensor; slicing and accumulation as in the module docstring. ``start_us`` / ``end_us`` set the sample window
    (a Gesture label window, or 0 for an N-MNIST recording)."""
    check_events(events, "events", sensor_size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    height, width = sensor_size
    if not is_integer(downsample) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    if height % downsample or width % downsample:
        raise ValueError(
            f"downsample must be a positive integer dividing sensor_size {sensor_size}, got {downsample!r}"
        )
    downsample = int(downsample)
    if frames is not None:
        if not is_integer(frames) or frames < 1:
            raise ValueError(f"frames must be a positive integer, got {frames!r}")
        frames = int(frames)
    if dt_ms is not None and span_ms is not None:
        raise ValueError("give at most one of dt_ms and span_ms")
    if frames is None and dt_ms is None:
        raise ValueError("give frames (T equal bins, optionally over span_ms) or dt_ms (fixed frame width)")
    t = events["t"]

    def bound(given: int | None, name: str, from_events) -> int:
        if given is not None:
            return int(given)
        if not len(t):
            raise ValueError(f"events is empty: give {name} (the sample window) to frame it")
        return int(from_events())

    start = bound(start_us, "start_us", t.min)
    if dt_ms is not None:
        dt_us = _microseconds(dt_ms, "dt_ms")
        if frames is None:
            last = bound(end_us, "end_us", lambda: t.max() + 1)
            if last <= start:
                raise ValueError(f"the sample window [{start}, {last}) us is empty")
            frames = -(-(last - start) // dt_us)
        end = start + frames * dt_us
    elif span_ms is not None:
        end = start + _microseconds(span_ms, "span_ms")
    else:
        end = bound(end_us, "end_us", lambda: t.max() + 1)
    if end <= start:
        raise ValueError(f"the sample window [{start}, {end}) us is empty")

    out_height, out_width = height // downsample, width // downsample
    inside = (t >= start) & (t < end)
    bins = (t[inside] - start) * frames // (end - start)
    flat = ((bins * 2 + events["p"][inside]) * out_height + events["y"][inside] // downsample) * out_width + events[
        "x"
    ][inside] // downsample
    shape = (frames, 2, out_height, out_width)
    counts = np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)
    if mode == "or":
        return (counts > 0).astype(dtype)
    if mode == "sum":
        return counts.astype(dtype)
    frame_max = counts.max(axis=(1, 2, 3), keepdims=True)
    return (counts / np.maximum(frame_max, 1)).astype(dtype)


@dataclass(frozen=True)
class Framing:
    """Framing options kept together (for datasets and config files); calling it runs
    :func:`events_to_frames`. Example: snn-iir N-MNIST ``Framing(frames=30, dt_ms=10, mode="or")``; He et al.
    Gesture ``Framing(frames=60, dt_ms=25, mode="sum", downsample=4)``."""

    frames: int | None = None
    dt_ms: float | None = None
    span_ms: float | None = None
    mode: str = "or"
    downsample: int = 1

    def __post_init__(self) -> None:
        # validate once at construction, so a bad config fails before any data is read (the sensor is not known
        # yet: datasets check it against theirs)
        self.check_sensor((self.downsample, self.downsample))

    @classmethod
    def from_config(cls, options: dict) -> Framing:
        """A framing from a config's mapping, whose keys are checked by name (not as Python keyword arguments)."""
        if not isinstance(options, dict):
            raise ValueError(f"framing must be a mapping such as {{frames: 30, mode: or}}, got {options!r}")
        check_keys(options, [field.name for field in dataclasses.fields(cls)], "framing")
        return cls(**options)

    def check_sensor(self, sensor_size: tuple[int, int]) -> Framing:
        """Raises ValueError if this framing cannot frame a ``sensor_size = (H, W)`` sensor (a ``downsample`` that
        does not divide it); returns ``self``. Datasets call it before reading any data."""
        probe = np.zeros(0, dtype=EVENT_DTYPE)
        events_to_frames(probe, sensor_size, **self._options(), start_us=0, end_us=1)
        return self

    def _options(self) -> dict:
        return dict(frames=self.frames, dt_ms=self.dt_ms, span_ms=self.span_ms, mode=self.mode,
                    downsample=self.downsample)  # fmt: skip

    def __call__(
        self, events: np.ndarray, sensor_size: tuple[int, int], *, start_us: int | None = None,
        end_us: int | None = None,
    ) -> np.ndarray:  # fmt: skip
        """``frames: [T, 2, H // downsample, W // downsample]`` float32."""
        return events_to_frames(events, sensor_size, **self._options(), start_us=start_us, end_us=end_us)
