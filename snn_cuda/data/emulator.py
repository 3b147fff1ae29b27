"""A small event-camera emulator (the ESIM / v2e principle), vectorised over a batch of scenes.

Each pixel compares its log intensity ``L`` with a reference level ``R`` (the log intensity at its last event).
Whenever ``L - R`` reaches ``k`` times its ON threshold (or ``-L + R`` its OFF threshold) the pixel emits ``k`` ON
(OFF) events, at the times linear interpolation of ``L`` between two rendered frames crosses each level, and
``R`` moves by the emitted steps. Thresholds differ per pixel (mismatch). A refractory period caps a pixel at one
event per ``refractory_us``: within a step of length dt it emits at most ``max(1, dt // refractory_us)`` events
and the rest of the change waits for the next step (as in v2e, where the reference is not updated during the
refractory period). Sensor noise is Poisson: :func:`noise_events`, independent of the scene.
"""

from __future__ import annotations

import numpy as np

from .events import EVENT_DTYPE, make_events


def log_intensity(intensity: np.ndarray, dark_level: float = 0.05) -> np.ndarray:
    """``log(dark_level + intensity)``: the photoreceptor's response; ``dark_level`` bounds the contrast of dark
    pixels (like the dark current of a real pixel), so near-black regions do not fire endlessly."""
    return np.log(dark_level + intensity, dtype=np.float32)


def contrast_thresholds(
    rng: np.random.Generator, shape: tuple[int, ...], mean: float = 0.2, mismatch: float = 0.03
) -> np.ndarray:
    """Per-pixel thresholds ``N(mean, mismatch)``, kept above ``mean / 4``."""
    return np.maximum(rng.normal(mean, mismatch, size=shape), mean / 4).astype(np.float32)


def noise_events(
    rng: np.random.Generator, rate_hz: float, sensor_size: tuple[int, int], start_us: int, end_us: int
) -> np.ndarray:
    """Poisson noise: ``rate_hz`` events per pixel per second, uniform over the sensor and ``[start_us, end_us)``,
    half ON. Returns ``events: [N]`` sorted by time."""
    height, width = sensor_size
    count = rng.poisson(rate_hz * height * width * (end_us - start_us) * 1e-6)
    t = np.sort(rng.integers(start_us, end_us, size=count))
    return make_events(rng.integers(0, width, count), rng.integers(0, height, count), t, rng.integers(0, 2, count))


class EventCameraEmulator:
    """Emits events for a batch of ``B`` scenes rendered as log-intensity frames ``[B, H, W]``.

    Args:
        first_frame: ``[B, H, W]`` log intensity at ``t_us`` (the initial reference levels: no events).
        threshold_on, threshold_off: ``[B, H, W]`` (or broadcastable) contrast thresholds, > 0.
        refractory_us: minimum time between two events of a pixel.
    """

    def __init__(
        self, first_frame: np.ndarray, t_us: int, *, threshold_on: np.ndarray | float,
        threshold_off: np.ndarray | float, refractory_us: int = 1000,
    ) -> None:  # fmt: skip
        if first_frame.ndim != 3:
            raise ValueError(f"first_frame must have shape [B, H, W], got {first_frame.shape}")
        self.reference = first_frame.astype(np.float32, copy=True)
        self.previous = self.reference.copy()
        self.t_us = int(t_us)
        self.threshold_on = np.broadcast_to(np.asarray(threshold_on, dtype=np.float32), first_frame.shape)
        self.threshold_off = np.broadcast_to(np.asarray(threshold_off, dtype=np.float32), first_frame.shape)
        if self.threshold_on.min() <= 0 or self.threshold_off.min() <= 0:
            raise ValueError("threshold_on and threshold_off must be positive")
        self.refractory_us = int(refractory_us)
        self._chunks: list[tuple[np.ndarray, ...]] = []

    def step(self, frame: np.ndarray, t_us: int) -> None:
        """Advances to ``frame: [B, H, W]`` (log intensity) at ``t_us`` > the previous time, emitting events."""
        step_us = int(t_us) - self.t_us
        if step_us <= 0:
            raise ValueError(f"t_us must increase, got {t_us} after {self.t_us}")
        max_events = max(1, step_us // self.refractory_us) if self.refractory_us > 0 else np.iinfo(np.int32).max
        change = frame - self.reference
        is_on = change > 0
        threshold = np.where(is_on, self.threshold_on, self.threshold_off)
        counts = np.minimum(np.floor(np.abs(change) / threshold), max_events).astype(np.int64)
        pixels = np.flatnonzero(counts)
        if len(pixels):
            pixel_counts = counts.ravel()[pixels]
            repeated = np.repeat(pixels, pixel_counts)
            # k = 1..count: the k-th level crossed, reference + k * threshold in the direction of the change
            crossing = np.arange(len(repeated)) - np.repeat(np.cumsum(pixel_counts) - pixel_counts, pixel_counts) + 1
            sign = np.where(is_on.ravel()[repeated], 1.0, -1.0)
            level = self.reference.ravel()[repeated] + sign * crossing * threshold.ravel()[repeated]
            start, end = self.previous.ravel()[repeated], frame.ravel()[repeated]
            with np.errstate(divide="ignore", invalid="ignore"):
                fraction = np.clip((level - start) / (end - start), 0.0, 1.0)
            # a level already passed before this step (deferred by the refractory cap) fires at the step start
            fraction = np.nan_to_num(fraction, nan=0.0)
            times = self.t_us + np.maximum(1, np.round(fraction * step_us)).astype(np.int64)
            batch, y, x = np.unravel_index(repeated, frame.shape)
            self._chunks.append((batch, x, y, times, is_on.ravel()[repeated]))
            self.reference.ravel()[pixels] += (
                np.where(is_on.ravel()[pixels], 1.0, -1.0) * pixel_counts * (threshold.ravel()[pixels])
            )
        self.previous = frame.astype(np.float32, copy=True)
        self.t_us = int(t_us)

    def events(self) -> list[np.ndarray]:
        """The events emitted so far, per scene: ``B`` arrays ``events: [N_b]`` sorted by time."""
        batch_size = self.reference.shape[0]
        if not self._chunks:
            return [np.empty(0, dtype=EVENT_DTYPE) for _ in range(batch_size)]
        batch, x, y, t, p = (np.concatenate(field) for field in zip(*self._chunks, strict=True))
        order = np.lexsort((t, batch))
        events = make_events(x[order], y[order], t[order], p[order])
        return np.split(events, np.searchsorted(batch[order], np.arange(1, batch_size)))
