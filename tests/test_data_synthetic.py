"""The emulator by hand, and the synthetic sets: same bytes for a seed, statistics inside the documented ranges,
every class present, split by subject, generation skipped when complete, temporal order needed for gestures,
and the render command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from snn_cuda import data
from snn_cuda.data import paths, render, synthetic

TINY_GESTURE = dict(users=3, test_users=1, lightings=("led",), gesture_ms=400.0, progress=False)
TINY_NMNIST = dict(samples=60, progress=False)


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


# ------------------------------------------------------------------------------------------------ emulator


def test_emulator_interpolates_crossings_and_moves_the_reference():
    """One pixel whose log intensity rises by 1.0 within one 1 ms step, thresholds 0.25: four ON events where the
    linear ramp crosses +0.25, +0.5, +0.75, +1.0; then a fall by 0.6 with OFF threshold 0.3: two OFF events."""
    emulator = data.EventCameraEmulator(np.zeros((1, 1, 1)), 0, threshold_on=0.25, threshold_off=0.3, refractory_us=0)
    emulator.step(np.full((1, 1, 1), 1.0, dtype=np.float32), 1000)
    emulator.step(np.full((1, 1, 1), 1.0, dtype=np.float32), 2000)  # no change: no event
    emulator.step(np.full((1, 1, 1), 0.4, dtype=np.float32), 3000)
    (events,) = emulator.events()
    assert events["t"].tolist() == [250, 500, 750, 1000, 2500, 3000]
    assert events["p"].tolist() == [1, 1, 1, 1, 0, 0]
    np.testing.assert_allclose(emulator.reference, 0.4, atol=1e-6)


def test_emulator_refractory_period_defers_events():
    emulator = data.EventCameraEmulator(np.zeros((2, 1, 2)), 0, threshold_on=0.25, threshold_off=0.25,
                                        refractory_us=1000)  # fmt: skip
    frame = np.zeros((2, 1, 2), dtype=np.float32)
    frame[1, 0, 1] = 1.0  # one pixel of scene 1 changes; scene 0 stays dark
    for t_us in range(1000, 6000, 1000):
        emulator.step(frame, t_us)
    quiet, active = emulator.events()
    assert len(quiet) == 0
    assert active["t"].tolist() == [250, 1000 + 1, 2000 + 1, 3000 + 1]  # one per refractory period, deferred
    assert set(active["x"].tolist()) == {1} and set(active["p"].tolist()) == {1}


def test_noise_events_are_poisson_in_the_window(rng):
    events = data.noise_events(rng, 2.0, (32, 32), 1_000_000, 3_000_000)
    expected = 2.0 * 32 * 32 * 2.0
    assert abs(len(events) - expected) < 5 * np.sqrt(expected)
    assert events["t"].min() >= 1_000_000 and events["t"].max() < 3_000_000
    assert np.all(np.diff(events["t"]) >= 0)
    assert 0.45 < events["p"].mean() < 0.55


# --------------------------------------------------------------------------------------------- N-MNIST set


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory) -> Path:
    return data.synthetic_nmnist(tmp_path_factory.mktemp("nmnist") / "set", **TINY_NMNIST)


def test_synthetic_nmnist_is_deterministic(nmnist_root, tmp_path):
    again = data.synthetic_nmnist(tmp_path / "again", **TINY_NMNIST)
    assert folder_bytes(again) == folder_bytes(nmnist_root)
    other_seed = data.synthetic_nmnist(tmp_path / "other", seed=1, **TINY_NMNIST)
    assert folder_bytes(other_seed) != folder_bytes(nmnist_root)


def test_synthetic_nmnist_statistics_and_classes(nmnist_root):
    train, test = data.list_nmnist(nmnist_root, "Train"), data.list_nmnist(nmnist_root, "Test")
    assert (len(train), len(test)) == (50, 10)
    assert {label for _, label in train} == set(range(10))
    samples = [data.read_nmnist(path) for path, _ in train + test]
    counts = np.array([len(events) for events in samples])
    on_fraction = sum(int(e["p"].sum()) for e in samples) / counts.sum()
    last = max(int(e["t"].max()) for e in samples)
    print(f"events per sample {counts.mean():.0f} ({counts.min()} .. {counts.max()}), last t {last}")
    print(f"ON fraction {on_fraction:.3f}")
    assert 2500 <= counts.min() and counts.max() <= 7000
    assert 290_000 <= last < 315_001
    assert 0.45 <= on_fraction <= 0.55
    frames, label = data.NMNIST(nmnist_root, "test")[0]
    assert frames.shape == (30, 2, 34, 34) and frames.sum() > 0 and 0 <= label <= 9


def test_generation_is_skipped_when_complete_and_refuses_other_options(nmnist_root, tmp_path, monkeypatch):
    before = {path: path.stat().st_mtime_ns for path in nmnist_root.rglob("*.bin")}
    assert data.synthetic_nmnist(nmnist_root, **TINY_NMNIST) == nmnist_root
    assert {path: path.stat().st_mtime_ns for path in nmnist_root.rglob("*.bin")} == before
    with pytest.raises(ValueError, match="other options"):
        data.synthetic_nmnist(nmnist_root, samples=30, progress=False)
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    default_folder = data.synthetic_nmnist(samples=12, progress=False)
    assert default_folder.parent == tmp_path and default_folder.name.startswith("synthetic_nmnist-")
    assert (default_folder / synthetic.MARKER).is_file()


def test_interrupted_folder_is_generated_again_and_foreign_folders_are_refused(tmp_path):
    root = data.synthetic_nmnist(tmp_path / "set", samples=12, progress=False)
    assert not (root / synthetic.IN_PROGRESS).exists()
    (root / synthetic.MARKER).unlink()
    (root / synthetic.IN_PROGRESS).touch()  # as a generation killed halfway left it up to snn_cuda 0.1
    stray = root / "Train" / "stray.bin"
    stray.write_bytes(b"half")
    assert data.synthetic_nmnist(root, samples=12, progress=False) == root
    assert not stray.exists() and (root / synthetic.MARKER).is_file()
    foreign = tmp_path / "my_files"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty and holds no synthetic set"):
        data.synthetic_nmnist(foreign, samples=12, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_folders_of_killed_builds_are_removed_by_a_later_run(tmp_path):
    """A build killed without cleaning up (SIGKILL, the out-of-memory killer) leaves its private folder; a later run
    using the same target removes it once its process is gone and it has not changed for an hour, also when the
    restart right after the kill finished the target (the folder was young then)."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)  # fmt: skip
    dead = int(finished.stdout)  # a process that ran and ended
    target = tmp_path / "set"
    old = time.time() - 2 * paths.ABANDONED_AFTER_S
    folders = {
        "abandoned": tmp_path / f".set.{dead}-0123abcd.partial",
        "recent": tmp_path / f".set.{dead}-89abcdef.partial",  # perhaps a live build on another machine
        "running": tmp_path / f".set.{os.getpid()}-01234567.partial",  # a process that runs
        "other target": tmp_path / f".settings.{dead}-0123abcd.partial",
    }
    for name, folder in folders.items():
        (folder / "sub").mkdir(parents=True)
        if name != "recent":
            os.utime(folder, (old, old))

    def write_one(folder):
        (folder / "data.bin").write_bytes(b"data")
        return {"files": 1}

    synthetic._cached_generation("demo", target, {"n": 1}, write_one, force=False)
    kept = ["recent", "running", "other target"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name] + [folders[n].name for n in kept])
    os.utime(folders["recent"], (old, old))  # an hour later: the set is there, nothing is built
    synthetic._cached_generation("demo", target, {"n": 1}, write_one, force=False)
    kept.remove("recent")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name] + [folders[n].name for n in kept])


def test_generation_is_renamed_into_place_whole(tmp_path):
    def fails_halfway(folder):
        (folder / "half.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthetic._cached_generation("demo", tmp_path / "set", {"n": 1}, fails_halfway, force=False)
    assert list(tmp_path.iterdir()) == []  # no set, and no private folder left behind

    def write_one(folder):
        (folder / "data.bin").write_bytes(b"mine")
        return {"files": 1}

    def other_run_finishes_first(folder):
        synthetic._cached_generation("demo", tmp_path / "set", {"n": 1}, write_one, force=False)
        (folder / "data.bin").write_bytes(b"late")
        return {"files": 1}

    old_umask = os.umask(0o022)
    try:
        root = synthetic._cached_generation("demo", tmp_path / "set", {"n": 1}, other_run_finishes_first, force=False)
    finally:
        os.umask(old_umask)
    assert root == tmp_path / "set" and list(tmp_path.iterdir()) == [root]
    assert (root / "data.bin").read_bytes() == b"mine" and (root / synthetic.MARKER).is_file()
    assert root.stat().st_mode & 0o777 == 0o755  # the umask's permissions: data sets are often shared


# --------------------------------------------------------------------------------------------- Gesture set


@pytest.fixture(scope="module")
def gesture_root(tmp_path_factory) -> Path:
    return data.synthetic_gesture(tmp_path_factory.mktemp("gesture") / "set", **TINY_GESTURE)


def test_synthetic_gesture_is_deterministic(gesture_root, tmp_path):
    again = data.synthetic_gesture(tmp_path / "again", **TINY_GESTURE)
    assert folder_bytes(again) == folder_bytes(gesture_root)


def test_synthetic_gesture_layout_classes_and_subject_split(gesture_root):
    train = data.read_trial_list(gesture_root / "trials_to_train.txt")
    test = data.read_trial_list(gesture_root / "trials_to_test.txt")
    assert train == ["user01_led.aedat", "user02_led.aedat"] and test == ["user03_led.aedat"]
    rows_out_of_time_order = 0
    for trial in train + test:
        labels = data.read_labels(gesture_root / trial.replace(".aedat", "_labels.csv"))
        assert sorted(labels["label"].tolist()) == sorted([*range(11), 7])  # all classes, arm roll twice
        rows_out_of_time_order += int(np.any(np.diff(labels["start"]) < 0))
        durations = labels["end"] - labels["start"]
        assert durations.min() >= 0.8 * 400_000 - 10_000 and durations.max() <= 1.2 * 400_000 + 10_000
    assert rows_out_of_time_order == 3


def test_synthetic_gesture_statistics(gesture_root):
    dataset = data.DVSGesture(gesture_root, "train_all", progress=False)
    test = data.DVSGesture(gesture_root, "test", progress=False)
    assert (len(dataset), len(test), dataset.skipped) == (24, 12, [])
    samples = [sample.events() for sample in dataset.samples + test.samples]
    seconds = np.array([(s.end_us - s.start_us) / 1e6 for s in dataset.samples + test.samples])
    rates = np.array([len(events) for events in samples]) / seconds
    on_fraction = sum(int(e["p"].sum()) for e in samples) / sum(len(e) for e in samples)
    print(f"events per second {rates.mean():.0f} ({rates.min():.0f} .. {rates.max():.0f}), ON {on_fraction:.3f}")
    assert 2000 <= rates.min() and rates.max() <= 40_000
    assert 0.45 <= on_fraction <= 0.55
    frames, label = dataset[0]
    assert frames.shape == (30, 2, 128, 128) and frames.sum() > 0 and label == dataset.labels[0]


def test_synthetic_gesture_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="test_users"):
        data.synthetic_gesture(tmp_path, users=2, test_users=2)
    with pytest.raises(ValueError, match="lightings"):
        data.synthetic_gesture(tmp_path, lightings=("candle",))
    with pytest.raises(ValueError, match="classes"):
        data.synthetic_gesture(tmp_path, classes=(11,))
    with pytest.raises(ValueError, match="step_ms must be at least"):
        data.synthetic_gesture(tmp_path, step_ms=0)
    with pytest.raises(ValueError, match="gesture_ms must be positive"):
        data.synthetic_gesture(tmp_path, gesture_ms=0)
    # one trial file per user and lighting: a repeated lighting would list one trial twice (train / dev overlap)
    with pytest.raises(ValueError, match="lightings must not repeat a name"):
        data.synthetic_gesture(tmp_path, lightings=("led", "led"))
    for option, value, error, message in [
        ("seed", -1, ValueError, "seed must be at least 0"), ("users", 2.0, TypeError, "users must be an integer"),
        ("repetitions", 1.5, TypeError, "repetitions must be an integer"),
        ("batch_size", 0, ValueError, "batch_size must be at least 1"),
    ]:  # fmt: skip
        with pytest.raises(error, match=message):
            data.synthetic_gesture(tmp_path, **{option: value})
    assert not any(tmp_path.iterdir())  # refused before writing anything
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        data.synthetic_gesture(tmp_path / "file")


def test_synthetic_options_as_numpy_or_integral_floats_are_the_same_set(tmp_path, monkeypatch):
    """numpy integers are taken (as elsewhere in the library), and a number's type does not make another set:
    the options are the cache key, written as JSON."""
    monkeypatch.setenv("SNN_CUDA_DATA", str(tmp_path))
    options = dict(users=2, test_users=1, lightings=("led",), classes=(0, 1), step_ms=20, progress=False)
    first = data.synthetic_gesture(seed=np.int64(3), gesture_ms=300, **options)
    assert data.synthetic_gesture(seed=3, gesture_ms=300.0, **options) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        data.synthetic_nmnist(tmp_path / "n", samples=np.int64(12), batch_size=0)


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, 1.5, -0.2])
def test_synthetic_nmnist_needs_both_splits(tmp_path, test_fraction):
    with pytest.raises(ValueError, match="test_fraction must leave samples in both Train and Test"):
        data.synthetic_nmnist(tmp_path, samples=10, test_fraction=test_fraction)
    assert not any(tmp_path.iterdir())


def transition_features(frames: np.ndarray) -> np.ndarray:
    """``frames: [N, T, 2, h, w]`` -> how activity moves between consecutive frames: sum over t of the outer
    product of frame t and frame t+1 (each normalised to sum 1). Depends on the order of the frames."""
    occupancy = frames.reshape(*frames.shape[:2], -1)
    occupancy = occupancy / np.maximum(occupancy.sum(-1, keepdims=True), 1)
    return np.einsum("nti,ntj->nij", occupancy[:, :-1], occupancy[:, 1:]).reshape(len(frames), -1)


def pooled_features(frames: np.ndarray) -> np.ndarray:
    """The sum over time (normalised): the same for any order of the frames."""
    pooled = frames.sum(1).reshape(len(frames), -1)
    return pooled / np.maximum(pooled.sum(-1, keepdims=True), 1)


def test_gesture_labels_need_temporal_order(tmp_path):
    """Right/left arm circles, clockwise and counter-clockwise, differ only in the order of their frames. A
    logistic regression on frame-to-frame transitions learns them; on the same test samples with their frames
    shuffled it falls to about chance between the two directions, and an order-free model (time-pooled frames)
    never gets there."""
    root = data.synthetic_gesture(tmp_path / "rotations", users=5, test_users=1, lightings=("led",),
                                  classes=(3, 4, 5, 6), repetitions=8, gesture_ms=1000.0, progress=False)  # fmt: skip
    framing = data.Framing(frames=10, mode="sum", downsample=32)  # [10, 2, 4, 4]

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        dataset = data.DVSGesture(root, split, framing, progress=False)
        return torch.stack([dataset[i][0] for i in range(len(dataset))]).numpy(), np.array(dataset.labels)

    (train_x, train_y), (test_x, test_y) = load("train_all"), load("test")
    assert (len(train_y), len(test_y)) == (128, 32)
    shuffle = np.random.default_rng(0)
    shuffled_x = np.stack([sample[shuffle.permutation(len(sample))] for sample in test_x])
    ordered_model = LogisticRegression(C=10, max_iter=1000).fit(transition_features(train_x), train_y)
    ordered = ordered_model.score(transition_features(test_x), test_y)
    shuffled = ordered_model.score(transition_features(shuffled_x), test_y)
    pooled_model = LogisticRegression(C=10, max_iter=1000).fit(pooled_features(train_x), train_y)
    pooled = pooled_model.score(pooled_features(test_x), test_y)
    print(f"test accuracy: ordered {ordered:.3f}, frames shuffled {shuffled:.3f}, order-free model {pooled:.3f}")
    assert ordered >= 0.85
    assert shuffled <= ordered - 0.3
    assert pooled <= ordered - 0.3


# ------------------------------------------------------------------------------------------------- render


@pytest.mark.parametrize("dataset", ["nmnist", "gesture"])
def test_render_writes_a_strip_and_a_gallery(dataset, nmnist_root, gesture_root, tmp_path, capsys):
    root = nmnist_root if dataset == "nmnist" else gesture_root
    for extra, name in (([], "strip.png"), (["--gallery"], "gallery.png")):
        out = tmp_path / name
        render.main(["--dataset", dataset, "--root", str(root), "--index", "1", "--frames", "4", "--out", str(out),
                     *extra])  # fmt: skip
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 2000
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        render.main(["--dataset", dataset, "--root", str(root), "--index", "999", "--out", str(tmp_path / "x.png")])
