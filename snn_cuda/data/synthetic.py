"""The embedded synthetic data sets: event-camera emulations written in the real file formats.

- :func:`synthetic_nmnist`: scikit-learn's 1,797 bundled 8x8 digits, upsampled to 28x28 in a 34x34 canvas and
  moved along N-MNIST's three saccades ((+3.5, +7), (+3.5, -7), (-7, 0) pixels, 105 ms each), written as
  ``Train|Test/<digit>/<index>.bin``. Default: all 1,797 digits, 1/6 of them (seeded) in Test.
- :func:`synthetic_gesture`: 11 classes of moving bright blobs ("hands") over a dim static torso and head on a
  128x128 sensor, written as AEDAT 3.1 trials ``userNN_<lighting>.aedat`` with label CSVs and trial lists; users
  ``1 .. users - test_users`` train, the rest test (split by subject, like the real set). Every trial holds each
  class ``repetitions`` times, arm roll (class 8 of the CSV) twice as often, in a random order, while the CSV
  rows are in class order (so rows are not in time order, as in the real set). Default: 12 users (9 train,
  3 test) x 3 lightings = 36 trials x 12 gestures = 432 samples of 1.2 to 1.8 s.

Statistics of the defaults (seed 0; generation on 2 CPU cores): synthetic N-MNIST 1,797 samples in 12 to 15 s,
4,230 events per sample on average (3,092 to 5,619), 315 ms, ON fraction 0.51. Synthetic DVS Gesture 432 samples
in 16 to 18 s (93 MB with the event cache), 16,500 events per sample on average (4,500 to 52,600; 3,400 to 32,000
events per second of gesture), mean 1.51 s, ON fraction 0.51. The tests hold every generated set to these
documented ranges: N-MNIST 2,500 to 7,000 events per sample, Gesture 2,000 to 40,000 events per second, ON
fraction 0.45 to 0.55.

Each sample draws its own random amplitude, phase, speed and offset; each trial a lighting (brightness, noise
rate, threshold), jittered per sample; each user a body position and size. Randomness comes from
``numpy.random.default_rng([seed, ...])`` keyed by user, trial and row, so a sample does not depend on the batch
it was simulated in, and the same options give the same bytes.

Both functions generate into a cache folder (``root``, or ``$SNN_CUDA_DATA`` / ``~/.cache/snn_cuda`` plus a name
keyed by the options) and return it. A set is generated under a private name beside ``root`` and renamed into
place whole, with ``COMPLETE.json`` (options and statistics) in it: a folder holding it with the same options is
returned without generating again, and an interrupted generation leaves no such folder. A non-empty folder that
is not a synthetic set is refused, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .._checks import check_float, check_int, is_integer
from . import gesture, nmnist
from .aedat import LABEL_DTYPE, polarity_packets, write_aedat, write_labels, write_trial_list
from .emulator import EventCameraEmulator, contrast_thresholds, log_intensity, noise_events
from .events import EVENT_DTYPE
from .paths import build_folder, data_root, remove_abandoned_folders

GENERATOR_VERSION = 1  # part of the cache key: bump when generation changes
MARKER = "COMPLETE.json"
IN_PROGRESS = "GENERATING"  # left by an interrupted generation of snn_cuda <= 0.1 (it generated in place)

SACCADES = ((3.5, 7.0), (3.5, -7.0), (-7.0, 0.0))  # (dx, dy) pixels, one per 105 ms
SACCADE_US = 105_000
DIGIT_SIZE = 28
NMNIST_STEP_US = 1000

# lighting name -> (brightness, noise events per pixel per second, mean contrast threshold)
LIGHTINGS = {
    "fluorescent": (1.0, 0.05, 0.20),
    "led": (0.8, 0.10, 0.22),
    "natural": (1.3, 0.20, 0.18),
    "lab": (1.1, 0.08, 0.20),
}
ARM_ROLL = 7
HAND_INTENSITY = 0.4  # peak of a hand blob, over a room at 0.06 and a torso at 0.18 (times the brightness)
GESTURE_DARK_LEVEL = 0.15
GESTURE_GAP_US = 200_000  # between two gestures of a trial (no events: the subject rests)
TRIAL_LEAD_US = 100_000


def _cached_generation(
    name: str, root: str | os.PathLike | None, options: dict, generate: Callable[[Path], dict], force: bool
) -> Path:
    """Returns the set's folder, running ``generate`` (into a private folder renamed into place after it) unless
    the folder holds a marker with the same options; the marker records the options and the statistics
    ``generate`` returns."""
    options = dict(options, generator_version=GENERATOR_VERSION)
    if root is not None and Path(root).exists() and not Path(root).is_dir():
        raise ValueError(f"root {root} is a file; give an empty or new folder")
    if root is None:
        key = hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
        root = data_root() / f"{name}-{key}"
    folder = Path(root)
    remove_abandoned_folders(folder)
    marker = folder / MARKER
    if marker.is_file() and not (folder / IN_PROGRESS).exists() and not force:
        recorded = json.loads(marker.read_text())["options"]
        if recorded != json.loads(json.dumps(options)):
            raise ValueError(f"{folder} holds a {name} set made with other options {recorded}; pass force=True")
        return folder
    if folder.is_dir() and any(folder.iterdir()):
        # only ever delete what a generation made: a finished set (force) or one an earlier version left
        # interrupted (it generated in place, marked by IN_PROGRESS)
        if not (marker.is_file() or (folder / IN_PROGRESS).is_file()):
            raise ValueError(f"root {folder} is not empty and holds no synthetic set; give an empty or new folder")
        shutil.rmtree(folder)
    def build(partial: Path) -> None:
        statistics = generate(partial)
        (partial / MARKER).write_text(json.dumps({"options": options, "statistics": statistics}, indent=1))

    # Two runs generating the same set at once: the later one keeps the set in place, drops its identical copy.
    build_folder(folder, build, lambda found: (found / MARKER).is_file())
    return folder


def dataset_statistics(events_per_sample: list[np.ndarray], windows_us: list[int]) -> dict:
    """Mean / min / max events per sample, mean duration (ms) and ON fraction of a generated set."""
    counts = np.array([len(events) for events in events_per_sample])
    on = sum(int(events["p"].sum()) for events in events_per_sample)
    return dict(
        samples=len(counts), events_mean=float(counts.mean()), events_min=int(counts.min()),
        events_max=int(counts.max()), duration_ms_mean=float(np.mean(windows_us)) / 1000,
        on_fraction=on / max(1, int(counts.sum())),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- N-MNIST


def saccade_offset(t_us: int) -> tuple[float, float]:
    """The image displacement ``(dx, dy)`` in pixels at ``t_us``: linear along each saccade, 0 at the ends."""
    position = np.zeros(2)
    for index, move in enumerate(SACCADES):
        fraction = np.clip(t_us / SACCADE_US - index, 0.0, 1.0)
        position += fraction * np.asarray(move)
    return float(position[0]), float(position[1])


def digit_canvas(images: np.ndarray) -> np.ndarray:
    """``images: [N, 8, 8]`` (0..16) -> ``[N, 34, 34]`` intensity in [0, 1], bilinear 28x28 in the centre."""
    digits = torch.from_numpy(images.astype(np.float32) / 16.0)[:, None]
    digits = torch.nn.functional.interpolate(digits, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear")
    border = (nmnist.SENSOR_SIZE[0] - DIGIT_SIZE) // 2
    return torch.nn.functional.pad(digits, (border, border, border, border)).clamp(0.0, 1.0)[:, 0].numpy()


def shift_matrix(size: int, shift: float) -> np.ndarray:
    """``[size, size]`` matrix M with ``(M @ v)[i] = v(i - shift)``, bilinear, zero outside."""
    source = np.arange(size) - shift
    low = np.floor(source).astype(np.int64)
    matrix = np.zeros((size, size), dtype=np.float32)
    for neighbour, weight in ((low, 1 - (source - low)), (low + 1, source - low)):
        inside = (neighbour >= 0) & (neighbour < size)
        matrix[np.flatnonzero(inside), neighbour[inside]] += weight[inside]
    return matrix


def shifted(canvas: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``canvas: [N, H, W]`` moved by ``(dx, dy)`` pixels (bilinear, zeros outside): two small matrix products."""
    height, width = canvas.shape[-2:]
    return shift_matrix(height, dy) @ canvas @ shift_matrix(width, dx).T


def emulate_nmnist(
    images: np.ndarray, seeds: list[list[int]], *, threshold: float = 0.3, mismatch: float = 0.03,
    noise_hz: float = 0.2, dark_level: float = 0.27,
) -> list[np.ndarray]:  # fmt: skip
    """Events of a batch of digits ``images: [B, 8, 8]`` moved along the saccades, one ``[N]`` array each;
    ``seeds[b]`` seeds sample b's threshold mismatch and noise."""
    canvas = digit_canvas(images)
    rngs = [np.random.default_rng(seed) for seed in seeds]
    shape = nmnist.SENSOR_SIZE
    emulator = EventCameraEmulator(
        log_intensity(canvas, dark_level), 0,
        threshold_on=np.stack([contrast_thresholds(rng, shape, threshold, mismatch) for rng in rngs]),
        threshold_off=np.stack([contrast_thresholds(rng, shape, threshold, mismatch) for rng in rngs]),
    )  # fmt: skip
    duration_us = SACCADE_US * len(SACCADES)
    for t_us in range(NMNIST_STEP_US, duration_us + 1, NMNIST_STEP_US):
        emulator.step(log_intensity(shifted(canvas, *saccade_offset(t_us)), dark_level), t_us)
    samples = []
    for events, rng in zip(emulator.events(), rngs, strict=True):
        merged = np.concatenate([events, noise_events(rng, noise_hz, shape, 0, duration_us)])
        samples.append(merged[np.argsort(merged["t"], kind="stable")])
    return samples


def synthetic_nmnist(
    root: str | os.PathLike | None = None, *, seed: int = 0, samples: int | None = None,
    test_fraction: float = 1 / 6, batch_size: int = 256, progress: bool = True, force: bool = False,
) -> Path:  # fmt: skip
    """Generates (once) the synthetic N-MNIST set and returns its folder, to pass to :class:`NMNIST`.

    ``samples``: how many of the 1,797 digits to use (the first ones; default all); ``test_fraction`` of them,
    chosen with ``seed``, go to ``Test``. ``batch_size`` only sets memory use, not the output.
    """
    from sklearn.datasets import load_digits

    # checked before any work, and as plain Python numbers: the options are the cache key, written as JSON
    seed = check_int(seed, "seed", low=0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    digits = load_digits()
    count = len(digits.images) if samples is None else check_int(samples, "samples")
    if not 1 <= count <= len(digits.images):
        raise ValueError(f"samples must lie in [1, {len(digits.images)}], got {samples}")
    test_fraction = check_float(test_fraction, "test_fraction")
    if not 0 < round(count * test_fraction) < count:
        raise ValueError(
            f"test_fraction must leave samples in both Train and Test: of {count} samples it puts "
            f"{round(count * test_fraction)} in Test (test_fraction = {test_fraction})"
        )
    options = dict(seed=seed, samples=count, test_fraction=test_fraction)

    def generate(folder: Path) -> dict:
        test = np.zeros(count, dtype=bool)
        test[np.random.default_rng([seed, 0]).permutation(count)[: round(count * test_fraction)]] = True
        all_events = []
        for first in tqdm(range(0, count, batch_size), desc="synthetic N-MNIST", disable=not progress):
            indices = range(first, min(count, first + batch_size))
            batch = emulate_nmnist(digits.images[list(indices)], [[seed, 1, index] for index in indices])
            for index, events in zip(indices, batch, strict=True):
                sample_folder = folder / ("Test" if test[index] else "Train") / str(digits.target[index])
                sample_folder.mkdir(parents=True, exist_ok=True)
                nmnist.write_nmnist(sample_folder / f"{index:05d}.bin", events)
                all_events.append(events)
        return dataset_statistics(all_events, [SACCADE_US * len(SACCADES)] * count)

    return _cached_generation("synthetic_nmnist", root, options, generate, force)


# ------------------------------------------------------------------------------------------ DVS Gesture


def _circle(center: np.ndarray, radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Points ``[B, 2]`` on circles; the angle grows clockwise as seen in the image (y points down)."""
    return center + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def hand_positions(labels: np.ndarray, params: dict[str, np.ndarray], t: float) -> np.ndarray:
    """Positions ``[B, 2 hands, 2 (x, y)]`` in pixels at ``t`` seconds for gestures ``labels: [B]``.

    Hand 0 is the subject's right hand, seen on the left of the image (the camera faces the subject); a hand a
    gesture does not use rests at the hip and makes no events. ``params`` holds ``[B]`` arrays: ``cx, cy, size``
    (body centre and scale), ``amplitude, phase, rate`` (cycles per second) and ``walk`` ``[B, 2, 2, 3, 2]``
    (random sinusoid frequencies and phases for "other gestures").
    """
    size, amplitude = params["size"], params["amplitude"]
    center = np.stack([params["cx"], params["cy"]], axis=-1)
    phase = params["phase"] + 2 * np.pi * params["rate"] * t
    side = np.array([-1.0, 1.0])  # right hand on the image left
    scale = size[:, None, None]
    hands = center[:, None, :] + scale * np.array([[-22.0, 35.0], [22.0, 35.0]])  # at rest
    hand = {label: labels == label for label in range(len(gesture.CLASSES))}

    def put(mask: np.ndarray, which: int, points: np.ndarray) -> None:
        hands[mask, which] = points[mask]

    for which in (0, 1):
        claps = center + scale[:, 0] * np.stack(
            [side[which] * (4 + 22 * amplitude * (1 + np.cos(phase)) / 2), np.full_like(phase, 5.0)], axis=-1
        )
        put(hand[0], which, claps)
    for which, label in ((0, 1), (1, 2)):
        wave = center + scale[:, 0] * np.stack(
            [side[which] * 30 + 12 * amplitude * np.sin(phase), -30 + 3 * amplitude * np.cos(2 * phase)], axis=-1
        )
        put(hand[label], which, wave)
    for which, clockwise, counter in ((0, 3, 4), (1, 5, 6)):
        pivot = center + scale[:, 0] * np.array([side[which] * 32.0, -5.0])
        radius = 18 * amplitude * size
        put(hand[clockwise], which, _circle(pivot, radius, phase))
        put(hand[counter], which, _circle(pivot, radius, -phase))
    for which in (0, 1):
        roll_center = center + scale[:, 0] * np.array([side[which] * 6.0, 5.0])
        put(hand[7], which, _circle(roll_center, 7 * amplitude * size, 1.5 * phase + np.pi * which))
        strike = 1 - np.abs(np.sin(phase + which * np.pi / 2))  # alternating, sharp hits at the bottom
        drums = center + scale[:, 0] * np.stack(
            [np.full_like(phase, side[which] * 18), 8 + 12 * amplitude * strike], axis=-1
        )
        put(hand[8], which, drums)
    strum = center + scale[:, 0] * np.stack([np.full_like(phase, -6.0), 12 + 8 * amplitude * np.sin(2 * phase)], -1)
    fret = center + scale[:, 0] * np.stack([28 + 4 * np.sin(0.5 * phase), np.full_like(phase, -2.0)], axis=-1)
    put(hand[9], 0, strum)
    put(hand[9], 1, fret)
    # other gestures: each hand follows three random sinusoids per axis around its side of the chest
    frequency, offset = params["walk"][..., 0], params["walk"][..., 1]
    wander = (12 * np.sin(2 * np.pi * frequency * t + offset)).sum(axis=-1) / np.sqrt(3)  # [B, hand, axis]
    other = center[:, None, :] + scale * (np.array([[-20.0, 0.0], [20.0, 0.0]]) + amplitude[:, None, None] * wander)
    hands[hand[10]] = other[hand[10]]
    return hands


def scene_intensity(hands: np.ndarray, background: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """``[B, 128, 128]`` intensity: the static ``background`` plus a Gaussian blob per hand (separable)."""
    coordinates = np.arange(gesture.SENSOR_SIZE[0], dtype=np.float32)
    hands = hands.astype(np.float32)
    sigma = (5.0 * params["size"]).astype(np.float32)[:, None, None]
    along_x = np.exp(-((coordinates - hands[:, :, 0:1]) ** 2) / (2 * sigma**2))  # [B, hand, W]
    along_y = np.exp(-((coordinates - hands[:, :, 1:2]) ** 2) / (2 * sigma**2))  # [B, hand, H]
    blobs = np.einsum("bky,bkx->byx", along_y, along_x).astype(np.float32)
    peak = (HAND_INTENSITY * params["brightness"]).astype(np.float32)[:, None, None]
    return background + peak * np.minimum(blobs, 1.0)


def body_background(params: dict[str, np.ndarray]) -> np.ndarray:
    """``[B, 128, 128]``: a dim room, a dimly lit torso (ellipse) and head (disc), scaled by the brightness."""
    y, x = np.mgrid[: gesture.SENSOR_SIZE[0], : gesture.SENSOR_SIZE[1]].astype(np.float32)
    cx, cy, size = (params[key][:, None, None] for key in ("cx", "cy", "size"))
    torso = ((x - cx) / (24 * size)) ** 2 + ((y - cy - 20 * size) / (40 * size)) ** 2 <= 1
    head = (x - cx) ** 2 + (y - cy + 42 * size) ** 2 <= (12 * size) ** 2
    return ((0.06 + 0.12 * (torso | head)) * params["brightness"][:, None, None]).astype(np.float32)


def emulate_gestures(
    labels: np.ndarray, params: dict[str, np.ndarray], durations_us: np.ndarray, seeds: list[list[int]],
    *, step_us: int = 10_000, mismatch: float = 0.03,
) -> list[np.ndarray]:  # fmt: skip
    """Events ``[N_b]`` (times from 0 to ``durations_us[b]``) of a batch of gestures ``labels: [B]``; ``params``
    as in :func:`hand_positions` plus ``brightness, threshold, noise_hz`` per sample."""
    rngs = [np.random.default_rng(seed) for seed in seeds]
    shape = gesture.SENSOR_SIZE
    background = body_background(params)

    def frame(t_us: int) -> np.ndarray:
        intensity = scene_intensity(hand_positions(labels, params, t_us * 1e-6), background, params)
        return log_intensity(intensity, GESTURE_DARK_LEVEL)

    def thresholds() -> np.ndarray:
        pairs = zip(rngs, params["threshold"], strict=True)
        return np.stack([contrast_thresholds(rng, shape, mean, mismatch) for rng, mean in pairs])

    emulator = EventCameraEmulator(frame(0), 0, threshold_on=thresholds(), threshold_off=thresholds())
    for t_us in range(step_us, int(durations_us.max()) + 1, step_us):
        emulator.step(frame(t_us), t_us)
    samples = []
    per_sample = zip(emulator.events(), rngs, durations_us, params["noise_hz"], strict=True)
    for events, rng, duration, noise_hz in per_sample:
        merged = np.concatenate([events[events["t"] < duration], noise_events(rng, noise_hz, shape, 0, duration)])
        samples.append(merged[np.argsort(merged["t"], kind="stable")])
    return samples


def _gesture_plan(
    seed: int, users: int, lightings: tuple[str, ...], classes: tuple[int, ...], repetitions: int,
    gesture_ms: float, step_us: int,
) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """Trials (name, lighting) and samples (trial index, row, label, duration, parameters), all drawn here."""
    trials, samples = [], []
    for user in range(1, users + 1):
        body = np.random.default_rng([seed, 2, user])
        cx, cy, size = 64 + body.normal(0, 4), 62 + body.normal(0, 3), body.uniform(0.85, 1.1)
        for lighting in lightings:
            brightness, noise_hz, threshold = LIGHTINGS[lighting]
            trial_index = len(trials)
            trials.append(dict(name=f"user{user:02d}_{lighting}", user=user))
            row_labels = [label for label in classes for _ in range(repetitions * (2 if label == ARM_ROLL else 1))]
            order = np.random.default_rng([seed, 3, trial_index]).permutation(len(row_labels))
            for row, label in enumerate(row_labels):
                rng = np.random.default_rng([seed, 4, trial_index, row])
                steps = max(1, round(gesture_ms * 1000 * rng.uniform(0.8, 1.2) / step_us))
                samples.append(dict(
                    trial=trial_index, row=row, label=label, order=int(np.flatnonzero(order == row)[0]),
                    duration_us=steps * step_us, seed=[seed, 5, trial_index, row],
                    cx=cx + rng.normal(0, 2), cy=cy + rng.normal(0, 2), size=size, amplitude=rng.uniform(0.75, 1.25),
                    phase=rng.uniform(0, 2 * np.pi), rate=rng.uniform(0.9, 1.4), walk=rng.uniform(
                        [0.3, 0.0], [1.5, 2 * np.pi], size=(2, 2, 3, 2)),
                    brightness=brightness * rng.uniform(0.9, 1.1), threshold=threshold * rng.uniform(0.9, 1.1),
                    noise_hz=noise_hz * rng.uniform(0.5, 1.5),
                ))  # fmt: skip
    return trials, samples


def synthetic_gesture(
    root: str | os.PathLike | None = None, *, seed: int = 0, users: int = 12, test_users: int = 3,
    lightings: tuple[str, ...] = ("fluorescent", "led", "natural"), classes: tuple[int, ...] = tuple(range(11)),
    repetitions: int = 1, gesture_ms: float = 1500.0, step_ms: float = 10.0, batch_size: int = 48,
    progress: bool = True, force: bool = False,
) -> Path:  # fmt: skip
    """Generates (once) the synthetic DVS Gesture set and returns its folder, to pass to :class:`DVSGesture`.

    Sizes: ``users`` subjects (the last ``test_users`` for testing) x ``lightings`` trials; each trial holds every
    class of ``classes`` ``repetitions`` times (arm roll twice as often) as gestures of ``gesture_ms`` +-20%.
    ``step_ms`` is the emulator's frame interval; ``batch_size`` only sets memory use, not the output.
    """
    # checked before any work, and as plain Python numbers: the options are the cache key, written as JSON (so
    # gesture_ms 1500 and 1500.0 are one set)
    seed = check_int(seed, "seed", low=0)
    users = check_int(users, "users", low=2)
    test_users = check_int(test_users, "test_users", low=1)
    repetitions = check_int(repetitions, "repetitions", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if not test_users < users:
        raise ValueError(f"test_users must lie in [1, users - 1] = [1, {users - 1}], got {test_users}")
    unknown = [name for name in lightings if name not in LIGHTINGS]
    if unknown or not lightings or isinstance(lightings, str):
        raise ValueError(f"lightings must be names from {sorted(LIGHTINGS)}, got {lightings}")
    if len(set(lightings)) != len(lightings):
        # one trial file per user and lighting: a repeated name would write a trial twice and list it twice
        raise ValueError(f"lightings must not repeat a name, got {lightings}")
    if not classes or not all(is_integer(label) and 0 <= label < len(gesture.CLASSES) for label in classes):
        raise ValueError(f"classes must be 0-based classes 0..10, got {classes}")
    classes = tuple(int(label) for label in classes)
    gesture_ms = check_float(gesture_ms, "gesture_ms")
    if gesture_ms <= 0:
        raise ValueError(f"gesture_ms must be positive, got {gesture_ms}")
    step_us = round(check_float(step_ms, "step_ms") * 1000)
    if step_us < 1:
        raise ValueError(f"step_ms must be at least 0.001 (one microsecond), got {step_ms}")
    options = dict(
        seed=seed, users=users, test_users=test_users, lightings=list(lightings), classes=list(classes),
        repetitions=repetitions, gesture_ms=gesture_ms, step_us=step_us,
    )  # fmt: skip

    def generate(folder: Path) -> dict:
        trials, samples = _gesture_plan(
            seed, users, tuple(lightings), tuple(classes), repetitions, gesture_ms, step_us
        )
        events_of = []
        for first in tqdm(range(0, len(samples), batch_size), desc="synthetic DVS Gesture", disable=not progress):
            batch = samples[first : first + batch_size]
            params = {key: np.array([sample[key] for sample in batch]) for key in batch[0] if key not in ("seed",)}
            events_of += emulate_gestures(
                params["label"], params, params["duration_us"], [sample["seed"] for sample in batch], step_us=step_us
            )
        for trial_index, trial in enumerate(trials):
            trial_samples = sorted(
                (s for s in zip(samples, events_of, strict=True) if s[0]["trial"] == trial_index),
                key=lambda pair: pair[0]["order"],
            )
            labels = np.zeros(len(trial_samples), dtype=LABEL_DTYPE)
            pieces, cursor = [], TRIAL_LEAD_US
            for sample, events in trial_samples:
                labels[sample["row"]] = (sample["label"], cursor, cursor + sample["duration_us"])
                shifted_events = events.copy()
                shifted_events["t"] += cursor
                pieces.append(shifted_events)
                cursor += sample["duration_us"] + GESTURE_GAP_US
            trial_events = np.concatenate(pieces) if pieces else np.empty(0, dtype=EVENT_DTYPE)
            packets = polarity_packets(trial_events, events_per_packet=2048)
            write_aedat(folder / f"{trial['name']}.aedat", packets=packets)
            write_labels(folder / f"{trial['name']}_labels.csv", labels)
        first_test_user = users - test_users + 1
        for split, is_split_user in (
            ("train", lambda u: u < first_test_user),
            ("test", lambda u: u >= first_test_user),
        ):
            names = [f"{trial['name']}.aedat" for trial in trials if is_split_user(trial["user"])]
            write_trial_list(folder / gesture.TRIAL_LISTS[split], names)
        return dataset_statistics(events_of, [sample["duration_us"] for sample in samples])

    return _cached_generation("synthetic_gesture", root, options, generate, force)
