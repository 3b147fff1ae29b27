"""AEDAT 3.1 polarity events (DVS128 Gesture recordings), the Gesture label CSVs and trial lists.

File: ASCII header lines starting with ``#`` (CRLF or LF line ends), the first ``#!AER-DAT3.1``, the last
``#!END-HEADER``; then packets until EOF. A packet is a 28-byte little-endian header ``<hhiiiiii`` = eventType,
eventSource, eventSize, eventTSOffset, eventTSOverflow, eventCapacity, eventNumber, eventValid, then
``eventCapacity * eventSize`` bytes of which the first ``eventNumber`` events are used. Only polarity packets
(eventType 1, eventSize 8) are decoded; every other packet is skipped. A polarity event is ``uint32 data``,
``int32 timestamp``: valid = bit 0, polarity = bit 1, y = ``(data >> 2) & 0x7FFF``, x = ``(data >> 17) & 0x7FFF``,
full timestamp = ``timestamp | (eventTSOverflow << 31)``. Events with the valid bit clear are dropped.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .events import EVENT_DTYPE, check_events, make_events

VERSION_LINE = b"#!AER-DAT3.1"
END_LINE = b"#!END-HEADER"
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_TYPE = 1
POLARITY_SIZE = 8
POLARITY_EVENT = np.dtype([("data", "<u4"), ("timestamp", "<i4")])
TIMESTAMP_BITS = 31
COORDINATE_MASK = 0x7FFF
LABELS_HEADER = ("class", "startTime_usec", "endTime_usec")
LABEL_DTYPE = np.dtype([("label", np.int64), ("start", np.int64), ("end", np.int64)])


def _header_end(raw: bytes, path: str | os.PathLike) -> int:
    """Byte offset of the first packet: just after the ``#!END-HEADER`` line."""
    first_line = raw[: raw.find(b"\n")].rstrip(b"\r") if b"\n" in raw else raw[:64]
    if not first_line.startswith(b"#!AER-DAT"):
        raise ValueError(f"{path}: not an AEDAT file (first line {first_line[:40]!r}, expected {VERSION_LINE!r})")
    if first_line != VERSION_LINE:
        version = first_line[len(b"#!AER-DAT") :].decode("ascii", "replace")
        raise ValueError(f"{path}: AEDAT version {version} is not supported (expected {VERSION_LINE.decode()})")
    position = 0
    while True:
        line_end = raw.find(b"\n", position)
        if line_end < 0:
            raise ValueError(f"{path}: AEDAT header has no {END_LINE.decode()} line (truncated or corrupt)")
        line = raw[position:line_end].rstrip(b"\r")
        if not line.startswith(b"#"):
            raise ValueError(f"{path}: AEDAT header line at byte {position} does not start with '#': {line[:40]!r}")
        position = line_end + 1
        if line == END_LINE:
            return position


def read_aedat(path: str | os.PathLike) -> np.ndarray:
    """Reads the polarity events of an AEDAT 3.1 file. Returns ``events: [N]`` of :data:`EVENT_DTYPE` in file
    order (valid events only). Raises ValueError naming the file for a wrong version, a header without end, or a
    truncated or inconsistent packet."""
    raw = Path(path).read_bytes()
    position = _header_end(raw, path)
    packets: list[np.ndarray] = []
    overflows: list[int] = []
    while position < len(raw):
        if position + PACKET_HEADER.size > len(raw):
            raise ValueError(f"{path}: truncated packet header at byte {position} ({len(raw) - position} bytes left)")
        event_type, _, event_size, _, ts_overflow, capacity, number, _ = PACKET_HEADER.unpack_from(raw, position)
        payload_start = position + PACKET_HEADER.size
        if event_size <= 0 or capacity < 0 or not 0 <= number <= capacity or ts_overflow < 0:
            raise ValueError(
                f"{path}: corrupt packet header at byte {position} (eventSize {event_size}, eventCapacity "
                f"{capacity}, eventNumber {number}, eventTSOverflow {ts_overflow})"
            )
        position = payload_start + capacity * event_size
        if position > len(raw):
            raise ValueError(
                f"{path}: truncated packet at byte {payload_start - PACKET_HEADER.size}: needs "
                f"{capacity * event_size} payload bytes, {len(raw) - payload_start} left"
            )
        if event_type != POLARITY_TYPE:
            continue
        if event_size != POLARITY_SIZE:
            raise ValueError(f"{path}: polarity packet at byte {payload_start} has eventSize {event_size}, not 8")
        packets.append(np.frombuffer(raw, dtype=POLARITY_EVENT, count=number, offset=payload_start))
        overflows.append(ts_overflow)
    if not packets:
        return np.empty(0, dtype=EVENT_DTYPE)
    polarity = np.concatenate(packets)
    overflow = np.repeat(np.asarray(overflows, dtype=np.int64), [len(packet) for packet in packets])
    is_valid = (polarity["data"] & 1) == 1
    polarity, overflow = polarity[is_valid], overflow[is_valid]
    data = polarity["data"].astype(np.int64)
    if np.any(polarity["timestamp"] < 0):
        raise ValueError(f"{path}: negative 32-bit timestamps in polarity events (corrupt)")
    return make_events(
        (data >> 17) & COORDINATE_MASK,
        (data >> 2) & COORDINATE_MASK,
        polarity["timestamp"].astype(np.int64) | (overflow << TIMESTAMP_BITS),
        (data >> 1) & 1,
    )


def aedat_packet(
    event_type: int, event_size: int, payload: bytes, *, number: int, capacity: int | None = None,
    ts_overflow: int = 0, source: int = 1,
) -> bytes:  # fmt: skip
    """One packet: header plus ``payload`` (``number * event_size`` bytes), padded with 0xFF filler bytes up to
    ``capacity`` events (spare capacity, which readers must skip)."""
    capacity = number if capacity is None else capacity
    if capacity < number or len(payload) != number * event_size:
        raise ValueError(
            f"payload of {len(payload)} bytes does not hold number={number} events of {event_size} bytes, "
            f"or capacity={capacity} < number"
        )
    filler = b"\xff" * ((capacity - number) * event_size)
    # eventTSOffset 4: where the timestamp sits inside an event (true for polarity and special events)
    header = PACKET_HEADER.pack(event_type, source, event_size, 4, ts_overflow, capacity, number, number)
    return header + payload + filler


def polarity_packets(
    events: np.ndarray, *, events_per_packet: int = 4096, spare_capacity: int = 0, valid: np.ndarray | None = None
) -> list[bytes]:
    """Encodes ``events: [N]`` as polarity packets of at most ``events_per_packet`` events, starting a new packet
    wherever ``t >> 31`` (the timestamp overflow) changes, each with ``spare_capacity`` unused slots.
    ``valid: [N]`` bool marks events written with the valid bit clear when False (readers drop them)."""
    check_events(events)
    if len(events) and max(events["x"].max(), events["y"].max()) > COORDINATE_MASK:
        raise ValueError(f"events have x up to {events['x'].max()} and y up to {events['y'].max()}: AEDAT 3.1 "
                         f"stores coordinates in 15 bits (at most {COORDINATE_MASK})")  # fmt: skip
    if events_per_packet < 1:
        raise ValueError(f"events_per_packet must be >= 1, got {events_per_packet}")
    t = events["t"]
    if len(t) and t.min() < 0:
        raise ValueError("events must have non-negative timestamps to be written as AEDAT")
    valid_bit = np.ones(len(events), dtype=np.uint32) if valid is None else np.asarray(valid, dtype=np.uint32)
    if valid_bit.shape != events.shape:
        raise ValueError(f"valid must have shape {events.shape}, got {valid_bit.shape}")
    encoded = np.empty(len(events), dtype=POLARITY_EVENT)
    encoded["data"] = (
        (events["x"].astype(np.uint32) << 17) | (events["y"].astype(np.uint32) << 2)
        | (events["p"].astype(np.uint32) << 1) | valid_bit
    )  # fmt: skip
    encoded["timestamp"] = t & ((1 << TIMESTAMP_BITS) - 1)
    overflow = t >> TIMESTAMP_BITS
    overflow_starts = np.flatnonzero(np.diff(overflow)) + 1
    packets = []
    for run in np.split(np.arange(len(events)), overflow_starts):
        for start in range(0, len(run), events_per_packet):
            chunk = run[start : start + events_per_packet]
            packets.append(
                aedat_packet(
                    POLARITY_TYPE,
                    POLARITY_SIZE,
                    encoded[chunk].tobytes(),
                    number=len(chunk),
                    capacity=len(chunk) + spare_capacity,
                    ts_overflow=int(overflow[chunk[0]]),
                )  # fmt: skip
            )
    return packets


def write_aedat(
    path: str | os.PathLike, events: np.ndarray | None = None, *, packets: Sequence[bytes] | None = None,
    line_ending: str = "\r\n", source: str = "DVS128",
) -> None:  # fmt: skip
    """Writes an AEDAT 3.1 file from ``events: [N]`` (encoded with :func:`polarity_packets`) or from ready
    ``packets`` (to build files with other packet types, spare capacity or invalid events)."""
    if (events is None) == (packets is None):
        raise ValueError("give exactly one of events and packets")
    if line_ending not in ("\r\n", "\n"):
        raise ValueError(f"line_ending must be '\\r\\n' or '\\n', got {line_ending!r}")
    if packets is None:
        packets = polarity_packets(events)
    header_lines = [VERSION_LINE.decode(), "#Format: RAW", f"#Source 1: {source}", END_LINE.decode()]
    header = "".join(line + line_ending for line in header_lines).encode("ascii")
    Path(path).write_bytes(header + b"".join(packets))


def _read_text(path: str | os.PathLike) -> str:
    """A text file of the set: ASCII, or UTF-8 with a byte-order mark as spreadsheet editors save it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Reads a Gesture ``<trial>_labels.csv`` (header ``class,startTime_usec,endTime_usec``, 1-based classes).
    Returns ``labels: [R]`` of :data:`LABEL_DTYPE` in file order with 0-based ``label``. Raises ValueError naming
    the file and line for a wrong header, a malformed row, a class below 1 or a window with end <= start."""
    lines = [line.strip() for line in _read_text(path).splitlines()]
    lines = [(number, line) for number, line in enumerate(lines, start=1) if line]
    if not lines or tuple(field.strip() for field in lines[0][1].split(",")) != LABELS_HEADER:
        raise ValueError(f"{path}: the first line must be {','.join(LABELS_HEADER)}")
    rows = []
    for number, line in lines[1:]:
        try:
            label, start, end = (int(field) for field in line.split(","))
        except ValueError:
            raise ValueError(f"{path}:{number}: expected three integers, got {line!r}") from None
        if label < 1 or end <= start:
            raise ValueError(f"{path}:{number}: need class >= 1 and endTime > startTime, got {line!r}")
        if max(abs(label), abs(start), abs(end)) >= 2**63:
            raise ValueError(f"{path}:{number}: a value does not fit a 64-bit integer, got {line!r}")
        rows.append((label - 1, start, end))
    return np.array(rows, dtype=LABEL_DTYPE)


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Writes ``labels: [R]`` of :data:`LABEL_DTYPE` (0-based) as a Gesture label CSV (1-based, CRLF)."""
    rows = [",".join(LABELS_HEADER)] + [f"{row['label'] + 1},{row['start']},{row['end']}" for row in labels]
    Path(path).write_bytes(("\r\n".join(rows) + "\r\n").encode("ascii"))


def read_trial_list(path: str | os.PathLike) -> list[str]:
    """Reads ``trials_to_train.txt`` / ``trials_to_test.txt``: one trial file name a line (blank lines ignored).
    A name listed twice is refused: its samples would be read twice (and could land in the dev and training sets
    at once)."""
    names = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: the trial list is empty")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: trials listed more than once: {repeated}")
    return names


def write_trial_list(path: str | os.PathLike, names: Iterable[str]) -> None:
    """Writes a trial list, one file name a line."""
    Path(path).write_text("".join(f"{name}\n" for name in names), encoding="ascii")
