"""Every event-file reader on arbitrary bytes: it returns events or raises the reader's own
error (spikequant.errors.DataError, which CorruptEventFile is), never another exception.

The inputs are random byte strings and mutations (bytes overwritten, cut, inserted) of valid
files of each format, written by the fixture writers of _writers.py; the mutations
get past the magic lines and headers that random bytes almost never match."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _writers import (
    aedat4_event_packet,
    aedat31_packet,
    gesture_aedat31,
    random_events,
    write_aedat2,
    write_aedat4,
    write_aedat31,
    write_atis_bin,
    write_gesture_labels,
    write_gesture_npy,
)
from spikequant import environment
from spikequant.data.formats import quick_check, read_events, read_gesture_labels

# 200 examples a reader keeps the default suite fast; SPIKEQUANT_FUZZ_EXAMPLES=3000 digs deeper.
FUZZ = settings(
    max_examples=environment.value("SPIKEQUANT_FUZZ_EXAMPLES") or 200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_names = itertools.count()


def _reader_error():
    # What the old code's readers raised is CorruptEventFile; it now derives from DataError.
    from spikequant.data.events import CorruptEventFile

    try:
        from spikequant.errors import DataError
    except ImportError:
        return (CorruptEventFile,)
    return (DataError,)


def _valid_files(tmp: Path) -> dict[str, list[bytes]]:
    """A few valid files of each format, as bytes."""
    files: dict[str, list[bytes]] = {}

    def keep(fmt, path):
        files.setdefault(fmt, []).append(path.read_bytes())

    for seed in range(3):
        x, y, t, p = random_events(12 + 5 * seed, 34, 34, seed=seed)
        write_atis_bin(tmp / "a.bin", x, y, t, p, overflow_before=4)
        keep("atis_bin", tmp / "a.bin")
        x, y, t, p = random_events(10, 128, 128, seed=seed)
        write_gesture_npy(tmp / "g.npy", x, y, p, t / 1000.0, (np.float64, np.int32)[seed % 2])
        keep("gesture_npy", tmp / "g.npy")
        write_aedat2(tmp / "c.aedat", x, y, p, t, external={1})
        keep("aedat2", tmp / "c.aedat")
        gesture_aedat31(tmp / "u.aedat", x, y, t, p)
        keep("aedat31", tmp / "u.aedat")
        write_aedat4(
            tmp / "e.aedat4",
            [aedat4_event_packet(t[:4], x[:4], y[:4], p[:4]), aedat4_event_packet(t, x, y, p)],
        )
        keep("aedat4", tmp / "e.aedat4")
    write_aedat31(tmp / "o.aedat", [aedat31_packet(1, [5, 9], [1, 2], overflow=3)])
    keep("aedat31", tmp / "o.aedat")
    write_gesture_labels(tmp / "l.csv", [(1, 10, 200), (11, 300, 450)])
    keep("labels_csv", tmp / "l.csv")
    return files


with tempfile.TemporaryDirectory() as _tmp:
    VALID = _valid_files(Path(_tmp))


@st.composite
def file_bytes(draw, fmt: str) -> bytes:
    """Random bytes, or a valid file of `fmt` with some bytes changed, cut or inserted."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(VALID[fmt])))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(("set", "u32", "cut", "insert", "truncate")))
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[where] = draw(st.integers(0, 255))
        elif kind == "u32":  # lengths, counts and offsets: the values that break bounds
            value = draw(st.sampled_from((0, 1, 7, 8, 2**31 - 1, 2**31, 2**32 - 1)))
            data[where : where + 4] = value.to_bytes(4, "little")
        elif kind == "cut":
            del data[where : where + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[where:]
    return bytes(data)


def _decode(fmt: str, data: bytes, suffix: str):
    # a new name each time: nothing may come from the memory of an earlier read
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{next(_names)}{suffix}"
        path.write_bytes(data)
        for attempt in (lambda: quick_check(path, fmt), lambda: read_events(path, fmt)):
            try:
                result = attempt()
            except _reader_error():
                continue
            if result is not None:
                _check_events(result)


def _check_events(events: np.ndarray) -> None:
    from spikequant.data.events import EVENT_DTYPE

    assert isinstance(events, np.ndarray) and events.dtype == EVENT_DTYPE
    assert events.ndim == 1


SUFFIXES = {
    "atis_bin": ".bin",
    "gesture_npy": ".npy",
    "aedat2": ".aedat",
    "aedat31": ".aedat",
    "aedat4": ".aedat4",
}


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
def test_reader_gives_events_or_its_own_error(fmt):
    @FUZZ
    @given(data=file_bytes(fmt))
    def check(data):
        _decode(fmt, data, SUFFIXES[fmt])

    check()


@FUZZ
@given(data=file_bytes("labels_csv"))
def test_gesture_labels_csv_gives_rows_or_its_own_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user01_led_labels.csv"
        path.write_bytes(data)
        try:
            rows = read_gesture_labels(path)
        except _reader_error():
            return
        assert all(len(row) == 3 and all(isinstance(v, int) for v in row) for row in rows)


def test_fuzz_inputs_reach_past_the_headers():
    """The mutated inputs decode often enough to exercise the readers' bodies, not only the
    header checks: most single-byte changes of a valid file still give events."""
    decoded = 0
    rng = np.random.default_rng(0)
    for fmt, files in VALID.items():
        if fmt == "labels_csv":
            continue
        for data in files:
            changed = bytearray(data)
            changed[-1 - int(rng.integers(0, 8))] ^= 0x10
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"x{SUFFIXES[fmt]}"
                path.write_bytes(bytes(changed))
                try:
                    read_events(path, fmt)
                    decoded += 1
                except _reader_error():
                    pass
    assert decoded >= 10, decoded


# ---------------------------------------------------------------- cases found by reading


def _aedat4_file(path: Path, description: str, packet_length: int | None = None) -> Path:
    import struct

    from _writers import aedat4_ioheader

    header = aedat4_ioheader(0, description)
    out = b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(header)) + header
    if packet_length is not None:
        out += struct.pack("<II", 0, packet_length) + b"\0" * 16
    path.write_bytes(out)
    return path


def test_aedat4_stream_id_that_is_not_a_number(tmp_path):
    from _writers import AEDAT4_DESCRIPTION
    from spikequant.data.events import CorruptEventFile

    named = AEDAT4_DESCRIPTION.replace('node name="0"', 'node name="x"')
    path = _aedat4_file(tmp_path / "named.aedat4", named)
    with pytest.raises(CorruptEventFile, match="named.aedat4"):
        read_events(path, "aedat4")


def test_aedat4_huge_claimed_length_allocates_nothing(tmp_path):
    """A packet header claiming 4 GiB in a 100-byte file is refused before 4 GiB are
    allocated for it."""
    import tracemalloc

    from _writers import AEDAT4_DESCRIPTION
    from spikequant.data.events import CorruptEventFile

    path = _aedat4_file(tmp_path / "huge.aedat4", AEDAT4_DESCRIPTION, packet_length=2**32 - 1)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptEventFile, match="cut short"):
            read_events(path, "aedat4")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated"
