"""The one event representation every reader returns and every framing function takes."""

from __future__ import annotations

import numpy as np

# x, y: pixel column and row; t: timestamp in microseconds; p: polarity (1 = ON, brightness went up).
EVENT_DTYPE = np.dtype([("x", np.uint16), ("y", np.uint16), ("t", np.int64), ("p", np.uint8)])


def make_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Packs equal-length field arrays into one structured array ``events: [N]`` of :data:`EVENT_DTYPE`."""
    fields = {"x": np.asarray(x), "y": np.asarray(y), "t": np.asarray(t), "p": np.asarray(p)}
    lengths = {name: value.shape for name, value in fields.items()}
    if any(value.ndim != 1 for value in fields.values()) or len(set(lengths.values())) != 1:
        raise ValueError(f"x, y, t, p must be 1-D arrays of one length, got shapes {lengths}")
    events = np.empty(len(fields["x"]), dtype=EVENT_DTYPE)
    for name, value in fields.items():
        events[name] = value
    return events


def check_events(events: object, name: str = "events", sensor_size: tuple[int, int] | None = None) -> np.ndarray:
    """``events`` must be a 1-D array of :data:`EVENT_DTYPE` with p in {0, 1} and, when ``sensor_size = (H, W)``
    is given, every event on the sensor. Returns it unchanged."""
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        got = f"{events.dtype} array of shape {events.shape}" if isinstance(events, np.ndarray) else type(events)
        raise TypeError(f"{name} must be a 1-D numpy array of snn_cuda.data.EVENT_DTYPE, got {got}")
    if len(events) and events["p"].max() > 1:
        raise ValueError(f"{name} has polarity values other than 0 and 1 (max {events['p'].max()})")
    if sensor_size is not None and len(events):
        height, width = sensor_size
        if events["x"].max() >= width or events["y"].max() >= height:
            raise ValueError(
                f"{name} has x up to {events['x'].max()} and y up to {events['y'].max()}, "
                f"outside the {height}x{width} sensor (H x W)"
            )
    return events
