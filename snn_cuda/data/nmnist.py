"""N-MNIST (Orchard et al. 2015): the ``.bin`` event format, the ``Train|Test/<digit>/*.bin`` folder layout and
the :class:`NMNIST` dataset of frames.

``.bin``: no header, 5 bytes per event: byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity (1 = ON), timestamp
(us) = ``((b2 & 0x7F) << 16) | (b3 << 8) | b4``. A row with ``y == 240`` is not an event but an overflow marker
that adds 8192 us to every later timestamp.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .events import check_events, make_events
from .framing import Framing
from .splits import SPLITS, split_indices

SENSOR_SIZE = (34, 34)  # (H, W)
BYTES_PER_EVENT = 5
OVERFLOW_Y = 240
OVERFLOW_PERIOD_US = 8192
TIMESTAMP_LIMIT_US = 1 << 23  # the 23-bit timestamp field
FOLDERS = {"train": "Train", "test": "Test"}


def read_nmnist(path: str | os.PathLike) -> np.ndarray:
    """Reads one N-MNIST ``.bin`` file. Returns ``events: [N]`` of :data:`EVENT_DTYPE` in file order.

    Raises ValueError naming the file when its length is not a multiple of 5 bytes (truncated) or an event lies
    outside the 34x34 sensor (not an N-MNIST file, or corrupt).
    """
    raw = Path(path).read_bytes()
    if len(raw) % BYTES_PER_EVENT:
        raise ValueError(
            f"{path}: {len(raw)} bytes is not a multiple of {BYTES_PER_EVENT} (truncated or not an N-MNIST file)"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, BYTES_PER_EVENT).astype(np.int64)
    is_overflow = rows[:, 1] == OVERFLOW_Y
    # cumsum counts a marker from its own row on; markers are dropped, so only later events see the increment
    timestamps = ((rows[:, 2] & 0x7F) << 16) | (rows[:, 3] << 8) | rows[:, 4]
    timestamps = timestamps + OVERFLOW_PERIOD_US * np.cumsum(is_overflow)
    rows, timestamps = rows[~is_overflow], timestamps[~is_overflow]
    events = make_events(rows[:, 0], rows[:, 1], timestamps, rows[:, 2] >> 7)
    try:
        return check_events(events, "events", SENSOR_SIZE)
    except ValueError as error:
        raise ValueError(f"{path}: {error} (corrupt or not an N-MNIST file)") from None


def write_nmnist(path: str | os.PathLike, events: np.ndarray, *, overflow_markers: bool = False) -> None:
    """Writes ``events: [N]`` (timestamps non-decreasing) as an N-MNIST ``.bin`` file.

    With ``overflow_markers`` every 8192 us period gets an overflow row and events store ``t mod 8192``;
    without, timestamps must fit the 23-bit field (< 8,388,608 us). Real N-MNIST files have no markers.
    """
    check_events(events, "events", SENSOR_SIZE)
    t = events["t"]
    if len(t) and (t.min() < 0 or np.any(np.diff(t) < 0)):
        raise ValueError("events must have non-negative, non-decreasing timestamps to be written as N-MNIST")
    if overflow_markers:
        periods = t // OVERFLOW_PERIOD_US
        stored = t % OVERFLOW_PERIOD_US
        # marker rows go right before the first event of each new period (one marker per period crossed)
        markers_before = np.diff(periods, prepend=0)
    else:
        if len(t) and t.max() >= TIMESTAMP_LIMIT_US:
            raise ValueError(
                f"events has timestamps up to {t.max()} us, beyond the 23-bit field; use overflow_markers=True"
            )
        stored = t
        markers_before = np.zeros(len(t), dtype=np.int64)
    event_rows = np.empty((len(t), BYTES_PER_EVENT), dtype=np.uint8)
    event_rows[:, 0] = events["x"]
    event_rows[:, 1] = events["y"]
    event_rows[:, 2] = (events["p"].astype(np.int64) << 7) | (stored >> 16)
    event_rows[:, 3] = (stored >> 8) & 0xFF
    event_rows[:, 4] = stored & 0xFF
    marker_row = np.array([0, OVERFLOW_Y, 0, 0, 0], dtype=np.uint8)
    row_count = len(t) + int(markers_before.sum())
    rows = np.empty((row_count, BYTES_PER_EVENT), dtype=np.uint8)
    event_positions = np.arange(len(t)) + np.cumsum(markers_before)
    is_event_row = np.zeros(row_count, dtype=bool)
    is_event_row[event_positions] = True
    rows[is_event_row] = event_rows
    rows[~is_event_row] = marker_row
    Path(path).write_bytes(rows.tobytes())


def list_nmnist(root: str | os.PathLike, folder: str) -> list[tuple[Path, int]]:
    """The ``(file, digit)`` pairs of ``root/<folder>/<digit>/*.bin``, sorted by digit then file name."""
    base = Path(root) / folder
    if not base.is_dir():
        raise FileNotFoundError(f"N-MNIST folder {base} does not exist (expected {folder}/<digit>/*.bin)")
    samples = [
        (file, int(digit_dir.name))
        for digit_dir in sorted(base.iterdir(), key=lambda d: d.name)
        if digit_dir.is_dir() and digit_dir.name.isdigit()
        for file in sorted(digit_dir.glob("*.bin"))
    ]
    if not samples:
        raise FileNotFoundError(f"no N-MNIST samples under {base} (expected {folder}/<digit>/*.bin)")
    return samples


class NMNIST(torch.utils.data.Dataset):
    """N-MNIST samples as frames: items ``(frames: [T, 2, H, W] float32, label: int)``.

    Args:
        root: folder holding ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin`` (real N-MNIST or
            :func:`snn_cuda.data.synthetic_nmnist`).
        split: "train" and "dev" split the training folder 5:1 with ``seed`` (50,000 / 10,000 on the real set,
            as snn-iir's ``random_split(..., generator=manual_seed(42))``); "train_all" is the whole training
            folder; "test" the test folder.
        framing: how events become frames; the sample starts at t = 0 (the recording start). The default is
            snn-iir's: ``or`` into 10 ms frames over the first 300 ms (T = 30).
        transform: optional callable applied to the frames tensor.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        framing: Framing | None = None,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 42,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        framing = framing if framing is not None else Framing(frames=30, dt_ms=10.0, mode="or")
        self.framing = framing.check_sensor(SENSOR_SIZE)  # before the folders are listed
        samples = list_nmnist(root, FOLDERS["test" if split == "test" else "train"])
        self.samples = [samples[i] for i in split_indices(len(samples), split, dev_fraction=1 / 6, seed=seed)]
        self.transform = transform

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        events = read_nmnist(path)
        try:
            frames = torch.from_numpy(self.framing(events, SENSOR_SIZE, start_us=0))
        except ValueError as exc:  # e.g. a recording without events, framed into T bins over its own length
            raise ValueError(f"{path}: {exc}") from None
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, label
