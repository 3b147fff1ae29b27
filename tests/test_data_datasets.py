"""Datasets: seeded splits (identical to the seeds' random_split), items and labels, the Gesture sample cache
(one sample per label row, skipped empty windows, no re-parsing, changed sources detected), MNIST encodings."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from snn_cuda import data
from snn_cuda.data import paths


def test_split_indices_equal_torch_random_split_with_seed_42():
    train, dev = torch.utils.data.random_split(range(60), [50, 10], generator=torch.Generator().manual_seed(42))
    assert data.split_indices(60, "train", dev_fraction=1 / 6, seed=42).tolist() == list(train.indices)
    assert data.split_indices(60, "dev", dev_fraction=1 / 6, seed=42).tolist() == list(dev.indices)
    assert len(data.split_indices(60_000, "dev", dev_fraction=1 / 6, seed=42)) == 10_000  # snn-iir's 50k / 10k
    assert data.split_indices(5, "test", dev_fraction=1 / 6, seed=42).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="split must be one of"):
        data.split_indices(5, "validation", dev_fraction=1 / 6, seed=42)


def make_nmnist_folder(root, rng, per_digit: int) -> None:
    for folder in ("Train", "Test"):
        for digit in range(3):
            (root / folder / str(digit)).mkdir(parents=True)
            for index in range(per_digit):
                count = 50
                t = np.sort(rng.integers(0, 310_000, count))
                events = data.make_events(rng.integers(0, 34, count), rng.integers(0, 34, count), t,
                                          rng.integers(0, 2, count))  # fmt: skip
                data.write_nmnist(root / folder / str(digit) / f"{index}.bin", events)


def test_nmnist_dataset_splits_items_and_transform(tmp_path, rng):
    make_nmnist_folder(tmp_path, rng, per_digit=4)
    train, dev = data.NMNIST(tmp_path, "train"), data.NMNIST(tmp_path, "dev")
    assert (len(train), len(dev), len(data.NMNIST(tmp_path, "test"))) == (10, 2, 12)
    train_files = {path for path, _ in train.samples}
    assert not train_files & {path for path, _ in dev.samples}
    assert train_files | {path for path, _ in dev.samples} == {
        path for path, _ in data.NMNIST(tmp_path, "train_all").samples
    }
    frames, label = train[0]
    path, expected_label = train.samples[0]
    assert frames.shape == (30, 2, 34, 34) and frames.dtype == torch.float32
    assert label == expected_label == int(path.parent.name)
    expected = data.events_to_frames(data.read_nmnist(path), (34, 34), frames=30, dt_ms=10, start_us=0)
    assert torch.equal(frames, torch.from_numpy(expected))
    flipped = data.NMNIST(tmp_path, "train", transform=lambda x: x.flip(-1))
    assert torch.equal(flipped[0][0], frames.flip(-1))
    with pytest.raises(ValueError, match="split must be one of"):
        data.NMNIST(tmp_path, "valid")


def test_nmnist_framing_errors_name_the_file_or_come_first(tmp_path, rng):
    make_nmnist_folder(tmp_path, rng, per_digit=1)
    empty = tmp_path / "Test" / "0" / "empty.bin"
    data.write_nmnist(empty, data.make_events(*(np.zeros(0, dtype=int),) * 4))  # a recording without events
    test = data.NMNIST(tmp_path, "test", data.Framing(frames=8))  # T bins over each recording's own length
    with pytest.raises(ValueError, match=f"{empty}: events is empty"):
        test[[path for path, _ in test.samples].index(empty)]
    # a framing that cannot frame the 34x34 sensor is refused before any folder is read
    with pytest.raises(ValueError, match="downsample must be a positive integer dividing sensor_size"):
        data.NMNIST(tmp_path / "missing", "test", data.Framing(frames=8, downsample=4))


def write_trial(root, name, events, rows) -> None:
    data.write_aedat(root / f"{name}.aedat", events)
    labels = np.array(rows, dtype=data.LABEL_DTYPE)
    data.write_labels(root / f"{name}_labels.csv", labels)


@pytest.fixture
def gesture_root(tmp_path, rng):
    """Two train trials and one test trial; rows out of time order; one label window past the recording."""
    root = tmp_path / "DvsGesture"
    root.mkdir()
    for name in ("user01_led", "user02_lab", "user03_led"):
        t = np.sort(rng.integers(0, 3_000_000, 4000))
        events = data.make_events(rng.integers(0, 128, 4000), rng.integers(0, 128, 4000), t, rng.integers(0, 2, 4000))
        rows = [(4, 1_500_000, 2_500_000), (0, 100_000, 1_000_000), (10, 1_000_000, 1_500_000)]
        if name == "user02_lab":
            rows.append((7, 5_000_000, 6_000_000))  # outside the recording: skipped and counted
        write_trial(root, name, events, rows)
    data.write_trial_list(root / "trials_to_train.txt", ["user01_led.aedat", "user02_lab.aedat"])
    data.write_trial_list(root / "trials_to_test.txt", ["user03_led.aedat"])
    return root


def test_gesture_samples_are_label_windows_with_skips_counted(gesture_root):
    with pytest.warns(UserWarning, match="skipped 1 label windows without events"):
        dataset = data.DVSGesture(gesture_root, "train_all", progress=False)
    assert len(dataset.skipped) == 1 and "user02_lab.aedat row 4" in dataset.skipped[0]
    assert dataset.labels == [4, 0, 10, 4, 0, 10]
    recording = data.read_aedat(gesture_root / "user01_led.aedat")
    for sample in dataset.samples[:3]:
        inside = recording[(recording["t"] >= sample.start_us) & (recording["t"] < sample.end_us)]
        np.testing.assert_array_equal(sample.events(), inside)
    frames, label = dataset[1]
    assert frames.shape == (30, 2, 128, 128) and label == 0
    expected = data.events_to_frames(dataset.samples[1].events(), (128, 128), frames=30, start_us=100_000,
                                     end_us=1_000_000)  # fmt: skip
    assert torch.equal(frames, torch.from_numpy(expected))
    assert len(data.DVSGesture(gesture_root, "test", progress=False)) == 3


def test_gesture_train_dev_split_is_seeded_and_disjoint(gesture_root):
    with pytest.warns(UserWarning):
        train = data.DVSGesture(gesture_root, "train", dev_fraction=1 / 3, progress=False)
    with pytest.warns(UserWarning):
        dev = data.DVSGesture(gesture_root, "dev", dev_fraction=1 / 3, progress=False)
    assert (len(train), len(dev)) == (4, 2)
    assert not {s.path for s in train.samples} & {s.path for s in dev.samples}


def test_gesture_cache_is_reused_and_rebuilt_when_the_source_changes(gesture_root, rng, monkeypatch):
    with pytest.warns(UserWarning):
        first = data.DVSGesture(gesture_root, "train_all", progress=False)
    cache = gesture_root / "snn_cuda_cache"
    assert not list(cache.rglob("*.tmp"))

    def no_parsing(path):
        raise AssertionError(f"{path} was parsed again although its cache is current")

    monkeypatch.setattr(data.gesture, "read_aedat", no_parsing)
    with pytest.warns(UserWarning):
        again = data.DVSGesture(gesture_root, "train_all", progress=False)
    assert [s.path for s in again.samples] == [s.path for s in first.samples]
    monkeypatch.undo()

    old_folders = sorted(p.name for p in cache.iterdir() if p.name.startswith("user01_led-"))
    events = data.make_events(rng.integers(0, 128, 10), rng.integers(0, 128, 10), np.arange(10) * 10 + 100_000,
                              rng.integers(0, 2, 10))  # fmt: skip
    data.write_aedat(gesture_root / "user01_led.aedat", events)
    with pytest.warns(UserWarning):
        changed = data.DVSGesture(gesture_root, "train_all", progress=False)
    new_folders = sorted(p.name for p in cache.iterdir() if p.name.startswith("user01_led-"))
    assert len(old_folders) == len(new_folders) == 1 and old_folders != new_folders
    user01 = [s for s in changed.samples if s.trial == "user01_led.aedat"]
    assert [len(s.events()) for s in user01] == [10]  # only the 100 ms .. 1 s window holds the new events


def test_gesture_caches_of_two_sources_sharing_a_cache_dir_both_stay(gesture_root, tmp_path, rng, monkeypatch):
    other = tmp_path / "other_set"  # the same trial names, other recordings (another seed of the synthetic set)
    other.mkdir()
    for name in ("user01_led", "user02_lab"):
        events = data.make_events(rng.integers(0, 128, 50), rng.integers(0, 128, 50), np.arange(50) * 1000 + 100_000,
                                  rng.integers(0, 2, 50))  # fmt: skip
        write_trial(other, name, events, [(3, 100_000, 150_000)])
    data.write_trial_list(other / "trials_to_train.txt", ["user01_led.aedat", "user02_lab.aedat"])
    cache = tmp_path / "shared_cache"
    with pytest.warns(UserWarning):
        first = data.DVSGesture(gesture_root, "train_all", cache_dir=cache, progress=False)
    second = data.DVSGesture(other, "train_all", cache_dir=cache, progress=False)
    assert [len(s.events()) for s in second.samples] == [50, 50]
    assert all(sample.path.is_file() for sample in first.samples + second.samples)
    monkeypatch.setattr(data.gesture, "read_aedat", lambda path: pytest.fail(f"{path} was parsed again"))
    with pytest.warns(UserWarning):
        data.DVSGesture(gesture_root, "train_all", cache_dir=cache, progress=False)
    data.DVSGesture(other, "train_all", cache_dir=cache, progress=False)


def test_gesture_framing_that_cannot_frame_the_sensor_fails_before_parsing(gesture_root, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="downsample must be a positive integer dividing sensor_size"):
        data.DVSGesture(gesture_root, "train", data.Framing(frames=8, downsample=3), cache_dir=cache)
    assert not cache.exists()  # no trial was parsed


def test_gesture_refuses_a_trial_in_both_lists(gesture_root, tmp_path):
    # a trial in both lists would be trained on and tested on
    data.write_trial_list(gesture_root / "trials_to_test.txt", ["user03_led.aedat", "./user02_lab.aedat"])
    for split in ("train", "test"):
        with pytest.raises(ValueError, match=r"trials in both trials_to_train.txt and .*\['user02_lab.aedat'\]"):
            data.DVSGesture(gesture_root, split, cache_dir=tmp_path / "cache", progress=False)
    # the other list's own problems are the other split's to report: an empty test list still trains
    (gesture_root / "trials_to_test.txt").write_text("\n")
    assert len(data.DVSGesture(gesture_root, "train", cache_dir=tmp_path / "cache", progress=False)) > 0


def test_gesture_trial_cache_lookup_removes_a_killed_parse_folder(gesture_root, tmp_path):
    """A parse killed outright leaves its private folder beside the trial's cache; a later run, which finds the
    cache complete and parses nothing, removes it once its process is gone and it is an hour old."""
    cache = tmp_path / "cache"
    data.DVSGesture(gesture_root, "test", cache_dir=cache, progress=False)
    (trial,) = [folder.name for folder in cache.iterdir()]
    abandoned = cache / f".{trial}.{2**22 + 12345}-0123abcd.partial"  # beyond any pid this kernel hands out
    (abandoned / "half").mkdir(parents=True)
    data.DVSGesture(gesture_root, "test", cache_dir=cache, progress=False)
    assert abandoned.is_dir()  # under an hour old: perhaps a live parse on another machine
    old = time.time() - 2 * paths.ABANDONED_AFTER_S
    os.utime(abandoned, (old, old))
    data.DVSGesture(gesture_root, "test", cache_dir=cache, progress=False)
    assert [folder.name for folder in cache.iterdir()] == [trial]


def test_gesture_cache_is_written_whole_or_not_at_all(gesture_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real_save = np.savez_compressed

    def interrupted(path, **arrays):
        real_save(path, **arrays)
        raise KeyboardInterrupt  # Ctrl-C after the first sample file of the first trial

    monkeypatch.setattr(data.gesture.np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.DVSGesture(gesture_root, "test", cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []  # neither a trial folder nor a private one is left
    monkeypatch.undo()

    # Another run caching the same trial finishes first (simulated inside this run's parse): this run keeps
    # that cache, drops its own identical one, and every sample it returns exists.
    real_read_labels, raced = data.gesture.read_labels, []

    def other_run_finishes_first(label_file):
        if not raced:
            raced.append(label_file)
            data.gesture.cache_trial(gesture_root / "user03_led.aedat", cache)
        return real_read_labels(label_file)

    monkeypatch.setattr(data.gesture, "read_labels", other_run_finishes_first)
    dataset = data.DVSGesture(gesture_root, "test", cache_dir=cache, progress=False)
    assert raced and [p.name for p in cache.iterdir()] == [dataset.samples[0].path.parent.name]
    assert len(dataset) == 3 and all(sample.path.is_file() for sample in dataset.samples)
    monkeypatch.undo()

    # A trial folder without an index, as a parse cut short by snn_cuda <= 0.1 (which wrote in place) left it,
    # is parsed again and replaced. The folder gets the umask's permissions (caches are often shared).
    folder = dataset.samples[0].path.parent
    (folder / data.gesture.INDEX_FILE).unlink()
    old_umask = os.umask(0o022)
    try:
        again = data.DVSGesture(gesture_root, "test", cache_dir=cache, progress=False)
    finally:
        os.umask(old_umask)
    assert [s.path for s in again.samples] == [s.path for s in dataset.samples]
    assert (folder / data.gesture.INDEX_FILE).is_file() and folder.stat().st_mode & 0o777 == 0o755


def test_gesture_cache_of_a_read_only_root_goes_to_the_data_folder(gesture_root, tmp_path, monkeypatch):
    # A read-only root, as seen by os.access (these tests may run as root, who may write anywhere).
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK and real_access(path, mode))
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "user_data"))
    dataset = data.DVSGesture(gesture_root, "test", progress=False)
    assert not (gesture_root / "snn_cuda_cache").exists()
    [cache] = (tmp_path / "user_data").iterdir()
    assert cache.name.startswith("dvs_gesture_cache-DvsGesture-")
    assert all(sample.path.is_relative_to(cache) for sample in dataset.samples) and len(dataset) == 3
    frames, _ = dataset[0]
    assert frames.sum() > 0
    # A cache folder already beside a writable root is used as before.
    monkeypatch.undo()
    assert data.gesture.default_cache_dir(gesture_root) == gesture_root / "snn_cuda_cache"


def test_gesture_label_beyond_the_classes_names_the_file(tmp_path, rng):
    write_trial(tmp_path, "user01_led", data.make_events([1], [1], [5], [1]), [(11, 0, 10)])
    data.write_trial_list(tmp_path / "trials_to_train.txt", ["user01_led.aedat"])
    with pytest.raises(ValueError, match=r"user01_led_labels\.csv: row 1 has class 12"):
        data.DVSGesture(tmp_path, "train_all", progress=False)
    data.write_trial_list(tmp_path / "trials_to_test.txt", ["user09_led.aedat"])
    with pytest.raises(FileNotFoundError, match="user09_led"):
        data.DVSGesture(tmp_path, "test", progress=False)
    (tmp_path / "trials_to_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no trials_to_test.txt .expected the DvsGesture folder"):
        data.DVSGesture(tmp_path, "test", progress=False)
    with pytest.raises(FileNotFoundError, match="no trials_to_train.txt"):
        data.DVSGesture(tmp_path / "user01_led.aedat", "train", progress=False)  # a file given as the root


def test_mnist_default_digits_encodings_and_splits(gen):
    train, dev, test = (data.MNIST(split=split) for split in ("train", "dev", "test"))
    assert len(train) + len(dev) == len(data.MNIST(split="train_all")) == 1498
    assert (len(train), len(dev), len(test)) == (1248, 250, 299)  # 5:1 of the first 1,498 digits
    x, label = train[0]
    assert x.shape == (25, 1, 28, 28) and 0 <= label <= 9
    assert torch.equal(x[0], x[-1]) and 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
    small, _ = data.MNIST(split="test", size=8, steps=3)[0]
    assert small.shape == (3, 1, 8, 8)
    seeded = data.MNIST(split="test", encoding="poisson", steps=5, poisson_seed=3)
    spikes, _ = seeded[7]
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(spikes, seeded[7][0])
    assert torch.equal(seeded[-1][0], seeded[len(seeded) - 1][0])  # one draw per item, whichever way indexed
    with pytest.raises(IndexError):
        seeded[len(seeded)]
    with pytest.raises(ValueError, match="encoding must be one of"):
        data.MNIST(encoding="rate")


def test_poisson_rate_matches_intensity(gen):
    image = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    spikes = data.poisson_encode(image, 20_000, gen)
    rates = spikes.mean(0)
    print("rates", rates.tolist())
    torch.testing.assert_close(rates, image, atol=0.015, rtol=0)  # 5 sigma of a 20,000-step mean
    assert rates[0] == 0 and rates[-1] == 1
    assert torch.equal(data.copy_along_time(image, 3), image.expand(3, 5))
    with pytest.raises(ValueError, match=r"intensities must lie in \[0, 1\]"):
        data.poisson_encode(image * 2, 4)


def test_setting_types_are_named():
    with pytest.raises(TypeError, match="dev_fraction must be a number, got str"):
        data.split_indices(10, "train", dev_fraction="0.1", seed=0)
    with pytest.raises(TypeError, match="steps must be an integer"):
        data.MNIST(split="test", steps="6")
    with pytest.raises(ValueError, match="size must be at least 1"):
        data.MNIST(split="test", size=0)
    with pytest.raises(ValueError, match="downsample must be a positive integer, got 0"):
        data.Framing(frames=4, downsample=0)
