"""DVS128 Gesture: the per-sample event cache and the :class:`DVSGesture` dataset of frames.

A trial ``userNN_<lighting>.aedat`` with ``userNN_<lighting>_labels.csv`` gives one sample per label row: the
events with ``start <= t < end``. Trial files are large, so each is parsed once and its samples are cached as
compressed ``.npz`` files, in a folder keyed by the trial's size, modification time and label file, so a
changed source is parsed again. A trial's folder is written under a private name and renamed into place whole.
Label windows holding no event (outside the recording) are skipped, counted in ``DVSGesture.skipped`` and
reported in one warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .aedat import read_aedat, read_labels, read_trial_list
from .events import check_events
from .framing import Framing
from .paths import build_folder, data_root, remove_abandoned_folders
from .splits import SPLITS, split_indices

SENSOR_SIZE = (128, 128)  # (H, W)
CLASSES = (
    "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise", "right_arm_counter_clockwise",
    "left_arm_clockwise", "left_arm_counter_clockwise", "arm_roll", "air_drums", "air_guitar", "other_gestures",
)  # fmt: skip
TRIAL_LISTS = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}
CACHE_FORMAT = 1  # bump when the cached layout changes, so old caches are rebuilt
INDEX_FILE = "index.json"
SOURCE_FILE = "source.txt"  # the absolute path the cache was made from


@dataclass(frozen=True)
class GestureSample:
    """One cached sample: its events file, 0-based label and label window ``[start_us, end_us)``."""

    path: Path
    label: int
    start_us: int
    end_us: int
    trial: str
    row: int

    def events(self) -> np.ndarray:
        """``events: [N]`` of the sample (absolute timestamps, inside the window)."""
        with np.load(self.path) as archive:
            return archive["events"]


def labels_path(aedat_path: Path) -> Path:
    """``userNN_x.aedat`` -> ``userNN_x_labels.csv``, the real set's naming."""
    return aedat_path.with_name(aedat_path.stem + "_labels.csv")


def default_cache_dir(root: Path) -> Path:
    """``root/snn_cuda_cache``, unless that cannot be written (a read-only data set, as shared clusters mount
    them): then a folder named after root's absolute path under :func:`snn_cuda.data.data_root`."""
    beside = root / "snn_cuda_cache"
    if os.access(beside if beside.is_dir() else root, os.W_OK):
        return beside
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    return data_root() / f"dvs_gesture_cache-{root.name}-{key}"


def _source_key(aedat_path: Path, label_file: Path) -> str:
    stat = aedat_path.stat()
    digest = hashlib.sha1(f"{CACHE_FORMAT}:{stat.st_size}:{stat.st_mtime_ns}:".encode())
    digest.update(label_file.read_bytes())
    return digest.hexdigest()[:16]


def cache_trial(aedat_path: str | os.PathLike, cache_dir: str | os.PathLike) -> tuple[list[GestureSample], list[str]]:
    """Parses one trial (unless its cache is current) into ``cache_dir/<trial>-<key>/sample_RRR.npz``.
    Returns its samples in label-file order and the reasons for skipped rows (label windows without events)."""
    aedat_path = Path(aedat_path)
    label_file = labels_path(aedat_path)
    if not aedat_path.is_file() or not label_file.is_file():
        raise FileNotFoundError(f"trial {aedat_path} needs both the .aedat file and {label_file.name}")
    folder = Path(cache_dir) / f"{aedat_path.stem}-{_source_key(aedat_path, label_file)}"
    index_path = folder / INDEX_FILE
    remove_abandoned_folders(folder)
    if not index_path.is_file():
        _parse_trial(aedat_path, label_file, folder)
    samples, skipped = [], []
    for entry in json.loads(index_path.read_text()):
        if entry["file"] is None:
            skipped.append(f"{aedat_path.name} row {entry['row'] + 1}: {entry['skipped']}")
        else:
            samples.append(GestureSample(
                folder / entry["file"], entry["label"], entry["start_us"], entry["end_us"], aedat_path.name,
                entry["row"],
            ))  # fmt: skip
    return samples, skipped


def _parse_trial(aedat_path: Path, label_file: Path, folder: Path) -> None:
    """Writes the sample files of one trial and its index (one entry per label row) into ``folder`` through
    :func:`build_folder` (another process caching the same trial at once never sees or removes half of it), then
    removes the caches of older versions of this same source file."""
    if folder.is_dir() and not _has_index(folder):
        # snn_cuda <= 0.1 parsed in place, and this parse was cut short. A folder renamed into place holds its
        # index from the start, so this is never another process's work.
        shutil.rmtree(folder, ignore_errors=True)
    build_folder(folder, lambda partial: _write_trial(aedat_path, label_file, partial), _has_index)
    _remove_older_versions(aedat_path, folder)


def _write_trial(aedat_path: Path, label_file: Path, folder: Path) -> None:
    events = check_events(read_aedat(aedat_path), f"{aedat_path} events", SENSOR_SIZE)
    labels = read_labels(label_file)
    recording = f"[{events['t'].min()}, {events['t'].max()}]" if len(events) else "empty"
    index = []
    for row, (label, start, end) in enumerate(labels.tolist()):
        if label >= len(CLASSES):
            raise ValueError(f"{label_file}: row {row + 1} has class {label + 1}, beyond the {len(CLASSES)} classes")
        sample = events[(events["t"] >= start) & (events["t"] < end)]
        entry = dict(row=row, label=label, start_us=start, end_us=end, events=len(sample), file=None)
        if len(sample):
            entry["file"] = f"sample_{row:03d}.npz"
            np.savez_compressed(folder / entry["file"], events=sample)
        else:
            entry["skipped"] = f"no events in [{start}, {end}) us; the recording spans {recording} us"
        index.append(entry)
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=1))
    (folder / SOURCE_FILE).write_text(str(aedat_path.resolve()))


def _has_index(folder: Path) -> bool:
    return (folder / INDEX_FILE).is_file()


def _remove_older_versions(aedat_path: Path, folder: Path) -> None:
    """Removes sibling caches made from the same source path under another key (the file or its labels changed).
    Caches of other sources with the same trial name (another data set sharing ``cache_dir``) are kept."""
    source = str(aedat_path.resolve())
    for other in folder.parent.glob(f"{aedat_path.stem}-*"):
        # a trial name never contains "-", so the part before the last "-" is the trial
        if other == folder or other.name.rsplit("-", 1)[0] != aedat_path.stem:
            continue
        try:
            same_source = (other / SOURCE_FILE).read_text() == source
        except OSError:  # no source recorded: made by an earlier snn_cuda, or not ours
            same_source = False
        if same_source:
            shutil.rmtree(other, ignore_errors=True)


def _other_list(path: Path) -> list[str]:
    """The names of the split's other trial list, for the overlap check only: its own problems (empty, absent, a
    name repeated) are the other split's to report."""
    try:
        return read_trial_list(path)
    except (OSError, ValueError):
        return []


def _names(trials: list[str]) -> set[str]:
    return {os.path.normpath(name) for name in trials}  # ./user01_led.aedat is user01_led.aedat


class DVSGesture(torch.utils.data.Dataset):
    """DVS128 Gesture samples as frames: items ``(frames: [T, 2, H, W] float32, label: int)``.

    Args:
        root: folder with the trial files, label CSVs and ``trials_to_train.txt`` / ``trials_to_test.txt`` (the
            real set, or :func:`snn_cuda.data.synthetic_gesture`).
        split: "train" / "dev" split the training samples with ``seed`` (``dev_fraction`` defaults to snn-iir's
            128 of 1056); "train_all" is every training sample; "test" the test trials.
        framing: how a sample's window ``[start, end)`` becomes frames. Default: snn-iir's 30 equal bins, ``or``,
            at 128x128.
        cache_dir: where parsed samples are cached (default ``root/snn_cuda_cache``, or under ``$SNN_CUDA_DATA`` /
            ``~/.cache/snn_cuda`` when ``root`` is read-only: :func:`default_cache_dir`).
        transform: optional callable applied to the frames tensor.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        framing: Framing | None = None,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache_dir: str | os.PathLike | None = None,
        dev_fraction: float = 128 / 1056,
        seed: int = 42,
        progress: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(root)
        trial_list = root / TRIAL_LISTS["test" if split == "test" else "train"]
        if not trial_list.is_file():
            raise FileNotFoundError(
                f"DVS Gesture root {root}: no {trial_list.name} (expected the DvsGesture folder of the real set, "
                "with the trial lists, userNN_<lighting>.aedat and userNN_<lighting>_labels.csv, or the folder "
                "synthetic_gesture() returns)"
            )
        # a framing that cannot frame this sensor fails before the trials are parsed (minutes on the real set)
        self.framing = (framing if framing is not None else Framing(frames=30, mode="or")).check_sensor(SENSOR_SIZE)
        cache_dir = default_cache_dir(root) if cache_dir is None else Path(cache_dir)
        trials = read_trial_list(trial_list)
        other = _other_list(root / TRIAL_LISTS["train" if split == "test" else "test"])
        shared = sorted(_names(trials) & _names(other))
        if shared:
            raise ValueError(f"DVS Gesture root {root}: trials in both {TRIAL_LISTS['train']} and "
                             f"{TRIAL_LISTS['test']}: {shared}")  # fmt: skip
        samples: list[GestureSample] = []
        self.skipped: list[str] = []
        for trial in tqdm(trials, desc=f"DVS Gesture {split}: caching trials", disable=not progress, leave=False):
            trial_samples, trial_skipped = cache_trial(root / trial, cache_dir)
            samples += trial_samples
            self.skipped += trial_skipped
        if self.skipped:
            warnings.warn(
                f"DVS Gesture {split}: skipped {len(self.skipped)} label windows without events, e.g. "
                f"{self.skipped[0]}",
                stacklevel=2,
            )
        self.samples = [samples[i] for i in split_indices(len(samples), split, dev_fraction=dev_fraction, seed=seed)]
        self.transform = transform

    @property
    def labels(self) -> list[int]:
        return [sample.label for sample in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        frames = self.framing(sample.events(), SENSOR_SIZE, start_us=sample.start_us, end_us=sample.end_us)
        frames = torch.from_numpy(frames)
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, sample.label
