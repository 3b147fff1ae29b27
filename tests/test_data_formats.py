"""Readers against the format descriptions (hand-built bytes), writer -> reader round trips, and clear errors
for truncated, corrupt or unsupported files: N-MNIST .bin, AEDAT 3.1, Gesture label CSVs and trial lists, IDX."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from snn_cuda import data
from snn_cuda.data.aedat import POLARITY_SIZE, POLARITY_TYPE

HEADER_CRLF = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"
HEADER_LF = HEADER_CRLF.replace(b"\r\n", b"\n")


def random_events(rng: np.random.Generator, count: int, sensor: tuple[int, int], t_max: int) -> np.ndarray:
    t = np.sort(rng.integers(0, t_max, size=count))
    return data.make_events(
        rng.integers(0, sensor[1], count), rng.integers(0, sensor[0], count), t, rng.integers(0, 2, count)
    )


def assert_events_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == data.EVENT_DTYPE
    assert len(actual) == len(expected), f"{len(actual)} events read, {len(expected)} written"
    for field in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(actual[field], expected[field], err_msg=f"field {field}")


# ------------------------------------------------------------------------------------------------ N-MNIST


def test_nmnist_hand_built_bytes_with_an_overflow_row(tmp_path):
    rows = [
        [5, 7, 0x80 | 0x01, 0x23, 0x45],  # ON, t = 0x012345 = 74565
        [33, 0, 0x00, 0x00, 0x0A],  # OFF, t = 10
        [0, 240, 0x00, 0x00, 0x00],  # overflow marker: +8192 for later rows, not an event
        [1, 2, 0x80 | 0x7F, 0xFF, 0xFF],  # ON, t = 2^23 - 1 + 8192
    ]
    path = tmp_path / "hand.bin"
    path.write_bytes(bytes(np.array(rows, dtype=np.uint8)))
    events = data.read_nmnist(path)
    assert events["x"].tolist() == [5, 33, 1]
    assert events["y"].tolist() == [7, 0, 2]
    assert events["p"].tolist() == [1, 0, 1]
    assert events["t"].tolist() == [74565, 10, (1 << 23) - 1 + 8192]


@pytest.mark.parametrize("overflow_markers", [False, True])
def test_nmnist_round_trip(tmp_path, rng, overflow_markers):
    events = random_events(rng, 3000, data.nmnist.SENSOR_SIZE, 40_000 if overflow_markers else 400_000)
    path = tmp_path / "sample.bin"
    data.write_nmnist(path, events, overflow_markers=overflow_markers)
    marker_rows = (path.stat().st_size // 5) - len(events)
    assert marker_rows == (events["t"][-1] // 8192 if overflow_markers else 0)
    assert_events_equal(data.read_nmnist(path), events)


def test_nmnist_writer_refuses_timestamps_beyond_the_field(tmp_path):
    events = data.make_events([0], [0], [1 << 23], [1])
    with pytest.raises(ValueError, match="overflow_markers"):
        data.write_nmnist(tmp_path / "late.bin", events)
    data.write_nmnist(tmp_path / "late.bin", events, overflow_markers=True)
    assert data.read_nmnist(tmp_path / "late.bin")["t"].tolist() == [1 << 23]


def test_nmnist_truncated_and_corrupt_files_name_the_file(tmp_path):
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(bytes([1, 2, 3, 4, 5, 6, 7]))
    with pytest.raises(ValueError, match=r"truncated\.bin.*multiple of 5"):
        data.read_nmnist(truncated)
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(bytes([200, 3, 0, 0, 1]))  # x = 200 on a 34x34 sensor
    with pytest.raises(ValueError, match=r"corrupt\.bin.*outside the 34x34"):
        data.read_nmnist(corrupt)


def test_nmnist_folder_listing(tmp_path, rng):
    for digit in (3, 0):
        (tmp_path / "Train" / str(digit)).mkdir(parents=True)
        for name in ("b", "a"):
            data.write_nmnist(tmp_path / "Train" / str(digit) / f"{name}.bin", random_events(rng, 5, (34, 34), 99))
    listed = data.list_nmnist(tmp_path, "Train")
    assert [(path.parent.name, path.name, label) for path, label in listed] == [
        ("0", "a.bin", 0), ("0", "b.bin", 0), ("3", "a.bin", 3), ("3", "b.bin", 3)
    ]  # fmt: skip
    with pytest.raises(FileNotFoundError, match="Test"):
        data.list_nmnist(tmp_path, "Test")


# ------------------------------------------------------------------------------------------------- AEDAT


def polarity_word(x: int, y: int, p: int, valid: int = 1) -> int:
    return (x << 17) | (y << 2) | (p << 1) | valid


@pytest.mark.parametrize("header", [HEADER_CRLF, HEADER_LF], ids=["crlf", "lf"])
def test_aedat_hand_built_bytes(tmp_path, header):
    """Packets built by hand from the spec: a polarity packet with an invalid event, a special-event packet,
    and a polarity packet with a timestamp overflow and spare capacity filled with valid-looking garbage."""
    first = struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 2, 2, 2)
    first += struct.pack("<Ii", polarity_word(100, 20, 1), 1000) + struct.pack("<Ii", polarity_word(9, 9, 0, 0), 1001)
    special = struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 3, 1, 1) + struct.pack("<Ii", polarity_word(1, 1, 1), 5) * 3
    last = struct.pack("<hhiiiiii", 1, 1, 8, 4, 1, 3, 1, 1) + struct.pack("<Ii", polarity_word(127, 0, 0), 5)
    last += struct.pack("<Ii", polarity_word(3, 3, 1), 7) * 2  # spare capacity: beyond eventNumber, not decoded
    path = tmp_path / "hand.aedat"
    path.write_bytes(header + first + special + last)
    events = data.read_aedat(path)
    assert events["x"].tolist() == [100, 127]
    assert events["y"].tolist() == [20, 0]
    assert events["p"].tolist() == [1, 0]
    assert events["t"].tolist() == [1000, 5 + (1 << 31)]


@pytest.mark.parametrize("line_ending", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_aedat_round_trip_multi_packet_overflow_spare_and_foreign_packets(tmp_path, rng, line_ending):
    events = random_events(rng, 2000, (128, 128), 1 << 33)  # spans four timestamp-overflow periods
    valid = rng.random(len(events)) < 0.9
    packets = data.polarity_packets(events, events_per_packet=97, spare_capacity=5, valid=valid)
    assert len(packets) > 2000 // 97
    foreign = data.aedat_packet(0, 8, bytes(range(16)), number=2, capacity=4)  # special events: skipped
    foreign_odd_size = data.aedat_packet(2, 12, bytes(12), number=1)  # frame-like packet of another size
    foreign_packets = (foreign, foreign_odd_size)
    mixed = [item for i, packet in enumerate(packets) for item in (packet, foreign_packets[i % 2])]
    path = tmp_path / "trial.aedat"
    data.write_aedat(path, packets=mixed, line_ending=line_ending)
    assert path.read_bytes().startswith(f"#!AER-DAT3.1{line_ending}".encode())
    assert_events_equal(data.read_aedat(path), events[valid])


def test_aedat_default_writer_round_trip(tmp_path, rng):
    events = random_events(rng, 10_000, (128, 128), 5_000_000)
    data.write_aedat(tmp_path / "plain.aedat", events)
    assert_events_equal(data.read_aedat(tmp_path / "plain.aedat"), events)


def test_aedat_without_events_reads_empty(tmp_path):
    (tmp_path / "empty.aedat").write_bytes(HEADER_CRLF)
    assert len(data.read_aedat(tmp_path / "empty.aedat")) == 0


def good_file(tmp_path) -> bytes:
    events = data.make_events([1, 2, 3], [4, 5, 6], [10, 20, 30], [0, 1, 0])
    data.write_aedat(tmp_path / "good.aedat", events)
    return (tmp_path / "good.aedat").read_bytes()


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda raw: raw.replace(b"#!AER-DAT3.1", b"#!AER-DAT2.0"), r"version 2\.0 is not supported"),
        (lambda raw: b"hello" + raw, "not an AEDAT file"),
        (lambda raw: raw[: raw.index(b"#!END-HEADER")], "no #!END-HEADER"),
        (lambda raw: raw[:-5], "truncated packet at byte"),
        (lambda raw: raw[: raw.index(b"#!END-HEADER") + 14 + 10], "truncated packet header"),
        (lambda raw: raw + struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 1, 2, 2), "corrupt packet header"),
        (lambda raw: raw + struct.pack("<hhiiiiii", 1, 1, 4, 4, 0, 1, 1, 1) + bytes(4), "eventSize 4"),
        (lambda raw: raw + struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 1, 1, 1) + struct.pack("<Ii", 3, -5), "negative"),
    ],
    ids=["version", "not-aedat", "no-end", "short-payload", "short-header", "number>capacity", "size", "timestamp"],
)
def test_aedat_bad_files_raise_naming_the_file(tmp_path, corrupt, message):
    path = tmp_path / "bad.aedat"
    path.write_bytes(corrupt(good_file(tmp_path)))
    with pytest.raises(ValueError, match=message) as error:
        data.read_aedat(path)
    assert str(path) in str(error.value)


def test_polarity_constants_match_the_spec():
    assert (POLARITY_TYPE, POLARITY_SIZE) == (1, 8)


# ------------------------------------------------------------------------------------- labels, trial lists


def test_labels_hand_written_out_of_order_rows(tmp_path):
    path = tmp_path / "user01_led_labels.csv"
    path.write_bytes(b"class,startTime_usec,endTime_usec\r\n3,500,900\r\n1,100,400\r\n8,950,990\r\n\r\n")
    labels = data.read_labels(path)
    assert labels["label"].tolist() == [2, 0, 7]
    assert labels["start"].tolist() == [500, 100, 950]
    assert labels["end"].tolist() == [900, 400, 990]
    data.write_labels(tmp_path / "copy.csv", labels)
    np.testing.assert_array_equal(data.read_labels(tmp_path / "copy.csv"), labels)
    # saved again by a spreadsheet editor: a UTF-8 byte-order mark in front
    (tmp_path / "edited.csv").write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    np.testing.assert_array_equal(data.read_labels(tmp_path / "edited.csv"), labels)


@pytest.mark.parametrize(
    "text, message",
    [
        ("label,start,end\n1,0,5\n", "first line"),
        ("class,startTime_usec,endTime_usec\n1,0\n", ":2: expected three integers"),
        ("class,startTime_usec,endTime_usec\n1,0,5\n0,5,9\n", ":3: need class >= 1"),
        ("class,startTime_usec,endTime_usec\n2,9,9\n", ":2: need class >= 1 and endTime > startTime"),
        (b"\x89PNG\r\n\x1a\n", "not a text file"),
        ("class,startTime_usec,endTime_usec\n1,0,99999999999999999999\n", ":2: a value does not fit a 64-bit"),
    ],
)
def test_bad_label_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad_labels.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message) as error:
        data.read_labels(path)
    assert str(path) in str(error.value)


def test_aedat_writer_refuses_coordinates_beyond_15_bits(tmp_path):
    events = data.make_events(np.array([5, 1]), np.array([32768, 7]), np.array([0, 1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="15 bits"):
        data.write_aedat(tmp_path / "wide.aedat", events)  # the field would wrap 32768 to 0
    assert not (tmp_path / "wide.aedat").exists()


def test_trial_list_round_trip_and_empty_list(tmp_path):
    data.write_trial_list(tmp_path / "trials_to_train.txt", ["user01_led.aedat", "user02_lab.aedat"])
    (tmp_path / "with_blanks.txt").write_text("user01_led.aedat\r\n\r\nuser02_lab.aedat\r\n")
    expected = ["user01_led.aedat", "user02_lab.aedat"]
    assert data.read_trial_list(tmp_path / "trials_to_train.txt") == expected
    assert data.read_trial_list(tmp_path / "with_blanks.txt") == expected
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.txt.*empty"):
        data.read_trial_list(tmp_path / "empty.txt")
    (tmp_path / "twice.txt").write_text("user01_led.aedat\nuser02_lab.aedat\nuser01_led.aedat\n")
    with pytest.raises(ValueError, match=r"twice\.txt: trials listed more than once: \['user01_led.aedat'\]"):
        data.read_trial_list(tmp_path / "twice.txt")


# --------------------------------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_hand_built_images_and_labels(tmp_path, rng, compressed):
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    for name, array, code in (("t10k-images-idx3-ubyte", images, 0x08), ("t10k-labels-idx1-ubyte", labels, 0x08)):
        raw = idx_bytes(array, code)
        (tmp_path / (name + ".gz" if compressed else name)).write_bytes(gzip.compress(raw) if compressed else raw)
    np.testing.assert_array_equal(data.read_idx(next(tmp_path.glob("t10k-images*"))), images)
    loaded_images, loaded_labels = data.load_mnist(tmp_path, "test")
    np.testing.assert_allclose(loaded_images, images / 255.0, rtol=1e-6)
    assert loaded_labels.tolist() == [7, 0, 9]


def test_idx_bad_magic_and_wrong_size_name_the_file(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + bytes(8))
    with pytest.raises(ValueError, match="bad: not an IDX file"):
        data.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((4, 2), dtype=np.uint8), 0x08)[:-1])
    with pytest.raises(ValueError, match="short: 19 bytes"):
        data.read_idx(tmp_path / "short")
    (tmp_path / "header_only").write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(ValueError, match="header_only: 6 bytes, shorter than its header of 3 sizes"):
        data.read_idx(tmp_path / "header_only")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((4, 2), dtype=np.uint8), 0x08))[:-6])
    with pytest.raises(ValueError, match=r"cut\.gz: not a complete gzip file"):
        data.read_idx(tmp_path / "cut.gz")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(tmp_path, "train")
