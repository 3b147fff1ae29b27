"""Framing against a slow, obviously correct loop over events (bin edges from exact fractions), for every
slicing, accumulation and downsampling option; the documented edge rules by hand; argument errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from snn_cuda import data

SENSOR = (8, 12)  # (H, W): small, not square, divisible by 1, 2 and 4


def reference_frames(events, sensor, *, frames, dt_ms, span_ms, mode, downsample, start_us, end_us):
    """The module docstring, read literally: a window [start, end) cut into T bins by exact fraction edges;
    each event in its bin; then or / sum / sum divided by the frame maximum."""
    t = [int(value) for value in events["t"]]
    start = min(t) if start_us is None else start_us
    if dt_ms is not None:
        dt_us = round(dt_ms * 1000)
        if frames is None:
            last = max(t) + 1 if end_us is None else end_us
            frames = 1
            while start + frames * dt_us < last:
                frames += 1
        edges = [start + k * dt_us for k in range(frames + 1)]
    else:
        end = start + round(span_ms * 1000) if span_ms is not None else (max(t) + 1 if end_us is None else end_us)
        edges = [start + Fraction(k * (end - start), frames) for k in range(frames + 1)]
    height, width = sensor[0] // downsample, sensor[1] // downsample
    counts = np.zeros((frames, 2, height, width))
    for x, y, time, p in zip(events["x"], events["y"], t, events["p"], strict=True):
        for k in range(frames):
            if edges[k] <= time < edges[k + 1]:
                counts[k, p, y // downsample, x // downsample] += 1
    if mode == "or":
        return (counts > 0).astype(np.float32)
    if mode == "sum":
        return counts.astype(np.float32)
    for k in range(frames):
        if counts[k].max() > 0:
            counts[k] /= counts[k].max()
    return counts.astype(np.float32)


SLICINGS = {
    "dt-with-T": dict(frames=7, dt_ms=0.25, span_ms=None),
    "dt-cover-all": dict(frames=None, dt_ms=0.3, span_ms=None),
    "T-bins": dict(frames=6, dt_ms=None, span_ms=None),
    "span": dict(frames=5, dt_ms=None, span_ms=1.2),
}


@pytest.mark.parametrize("window", ["default", "explicit"])
@pytest.mark.parametrize("downsample", [1, 2, 4])
@pytest.mark.parametrize("mode", data.framing.MODES)
@pytest.mark.parametrize("slicing", SLICINGS, ids=list(SLICINGS))
def test_framing_equals_the_loop_reference(rng, slicing, mode, downsample, window):
    count = 400
    # timestamps from a coarse grid, so many events sit exactly on bin edges
    t = np.sort(rng.choice(np.arange(0, 2400, 50), size=count)) + 1000
    events = data.make_events(rng.integers(0, SENSOR[1], count), rng.integers(0, SENSOR[0], count), t,
                              rng.integers(0, 2, count))  # fmt: skip
    start_us, end_us = (1200, 2900) if window == "explicit" else (None, None)
    options = dict(SLICINGS[slicing], mode=mode, downsample=downsample, start_us=start_us, end_us=end_us)
    expected = reference_frames(events, SENSOR, **options)
    actual = data.events_to_frames(events, SENSOR, **options)
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0)
    assert (
        data.Framing(**SLICINGS[slicing], mode=mode, downsample=downsample)(
            events, SENSOR, start_us=start_us, end_us=end_us
        ).tolist()
        == actual.tolist()
    )


def test_edge_rules_by_hand():
    """dt 1 ms from 0, T = 3: t = 0 and 999 in bin 0, 1000 (on the edge) in bin 1, 2999 in bin 2, 3000 dropped;
    an event before the start is dropped too."""
    events = data.make_events([0, 1, 2, 3, 4, 5], [0] * 6, [0, 999, 1000, 2999, 3000, 5], [1, 1, 1, 0, 1, 1])
    frames = data.events_to_frames(events[:5], (1, 6), frames=3, dt_ms=1, mode="sum", start_us=0)
    assert frames[:, 1, 0].tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    assert frames[:, 0, 0].tolist() == [[0] * 6, [0] * 6, [0, 0, 0, 1, 0, 0]]
    late_start = data.events_to_frames(events, (1, 6), frames=1, dt_ms=1, mode="sum", start_us=1)
    assert late_start[0, 1, 0].tolist() == [0, 1, 1, 0, 0, 1]  # t = 999, 1000, 5 lie in [1, 1001); t = 0 does not
    # T equal bins over the sample: the last event is inside (end defaults to last + 1)
    assert data.events_to_frames(events[:5], (1, 6), frames=2, mode="sum").sum() == 5


def test_downsampling_sums_blocks_and_or_marks_blocks():
    events = data.make_events([0, 1, 1, 3], [0, 0, 1, 3], [0, 0, 0, 0], [1, 1, 1, 1])
    summed = data.events_to_frames(events, (4, 4), frames=1, mode="sum", downsample=2)
    assert summed[0, 1].tolist() == [[3, 0], [0, 1]]
    binary = data.events_to_frames(events, (4, 4), frames=1, mode="or", downsample=2)
    assert binary[0, 1].tolist() == [[1, 0], [0, 1]]


def test_sum_max_normalises_each_frame_and_keeps_empty_frames_zero():
    events = data.make_events([0, 0, 1, 2], [0, 0, 0, 0], [0, 0, 0, 2000], [1, 1, 0, 1])
    frames = data.events_to_frames(events, (1, 3), frames=3, dt_ms=1, mode="sum_max", start_us=0)
    assert frames[0].tolist() == [[[0, 0.5, 0]], [[1, 0, 0]]]
    assert frames[1].sum() == 0
    assert frames[2].tolist() == [[[0, 0, 0]], [[0, 0, 1]]]


def test_empty_samples():
    empty = np.zeros(0, dtype=data.EVENT_DTYPE)
    assert data.events_to_frames(empty, (2, 2), frames=4, dt_ms=10, start_us=0).shape == (4, 2, 2, 2)
    assert data.events_to_frames(empty, (2, 2), frames=4, start_us=0, end_us=10).sum() == 0
    with pytest.raises(ValueError, match="events is empty: give start_us"):
        data.events_to_frames(empty, (2, 2), frames=4)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(frames=3, mode="max"), "mode must be one of"),
        (dict(frames=3, downsample=3), "downsample must be a positive integer dividing"),
        (dict(frames=0), "frames must be a positive integer"),
        (dict(frames=3, dt_ms=1, span_ms=2), "at most one of dt_ms and span_ms"),
        (dict(), "give frames"),
        (dict(dt_ms=0.0001), "dt_ms must be a positive whole number of microseconds"),
        (dict(frames=2, start_us=50, end_us=50), r"window \[50, 50\) us is empty"),
        (dict(frames=True), "frames must be a positive integer, got True"),
        (dict(frames=2, dt_ms=float("nan")), "dt_ms must be finite"),
        (dict(frames=2, span_ms=float("inf")), "span_ms must be finite"),
        # dt_ms alone sizes T to reach the last event: none at or after start_us is an empty window, as with frames.
        (dict(dt_ms=5, start_us=30), r"window \[30, 21\) us is empty"),
    ],
)
def test_framing_argument_errors(options, message):
    events = data.make_events([0, 1], [0, 1], [10, 20], [0, 1])
    with pytest.raises(ValueError, match=message):
        data.events_to_frames(events, (4, 4), **options)


def test_numpy_integers_are_integers():
    events = data.make_events([0, 1, 2, 3], [0, 1, 2, 3], [10, 20, 30, 40], [0, 1, 0, 1])
    expected = data.events_to_frames(events, (4, 4), frames=2, downsample=2)
    assert np.array_equal(data.events_to_frames(events, (4, 4), frames=np.int64(2), downsample=np.int32(2)), expected)


def test_events_off_the_sensor_or_of_another_dtype_are_refused():
    with pytest.raises(ValueError, match="outside the 4x4 sensor"):
        data.events_to_frames(data.make_events([4], [0], [0], [1]), (4, 4), frames=1)
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        data.events_to_frames(np.zeros((3, 4)), (4, 4), frames=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        data.Framing(frames=3, mode="average")


def test_framing_from_a_config_names_unknown_keys():
    assert data.Framing.from_config({"frames": 20, "mode": "sum"}) == data.Framing(frames=20, mode="sum")
    with pytest.raises(ValueError, match=r"framing has unknown keys \['frame'\]; accepted: \['frames', 'dt_ms'"):
        data.Framing.from_config({"frame": 20})  # was: Framing.__init__() got an unexpected keyword argument
    with pytest.raises(ValueError, match="framing must be a mapping"):
        data.Framing.from_config("frames: 20")
    with pytest.raises(ValueError, match=r"unknown keys \[1, 'frame'\]"):  # a YAML key need not be a string
        data.Framing.from_config({1: 2, "frame": 20})
