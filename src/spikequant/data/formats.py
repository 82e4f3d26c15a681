"""Readers for the on-disk event formats of the four benchmarks.

- ATIS .bin (N-MNIST, N-Caltech101): 5 bytes an event: x, y, then polarity in bit 7 and a
  23-bit microsecond timestamp over three bytes, big-endian; y == 240 marks a timestamp
  overflow (+2**13 us for every later event).
- tonic's DVS128 Gesture .npy: an [N, 4] array of columns x, y, p, t with t in milliseconds.
- AEDAT 2.0 .aedat (CIFAR10-DVS original release, jAER DVS128): '#' header lines, then
  big-endian (uint32 address, uint32 timestamp) pairs.
- AEDAT 3.1 .aedat (DVS128 Gesture original release): '#' header lines up to #!END-HEADER,
  then packets of a 28-byte header and eventCapacity * eventSize bytes of events.
- AEDAT 4.0 .aedat4 (tonic's CIFAR10-DVS): see aedat4.py.

Every reader returns an EVENT_DTYPE array and raises CorruptEventFile naming the file when
the bytes do not decode (tests/data/test_data_fuzz.py holds them to that on arbitrary bytes).
`quick_check(path)` does the same structural test from the file size and headers alone (and
for ATIS files whether any event is not an overflow marker), so a truncated or blank file is
found before training starts.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .aedat4 import quick_check_aedat4, read_aedat4
from .events import CorruptEventFile, make_events
from .fingerprint import stat_signature

ATIS_OVERFLOW_Y = 240
ATIS_OVERFLOW_STEP_US = 2**13
AEDAT3_PACKET_HEADER = struct.Struct("<hhiiiiii")  # type, source, size, tsoffset, overflow, ...
AEDAT3_POLARITY_TYPE = 1
GESTURE_CLASSES = 11


def read_atis_bin(path: str | os.PathLike) -> np.ndarray:
    """N-MNIST / N-Caltech101 .bin file -> events (t in us)."""
    raw = _read_bytes(path)
    if raw.size % 5:
        raise CorruptEventFile(path, f"{raw.size} bytes is not a whole number of 5-byte events")
    raw = raw.reshape(-1, 5).astype(np.int64)
    x, y, packed = raw[:, 0], raw[:, 1], raw[:, 2]
    t = ((packed & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    overflow = y == ATIS_OVERFLOW_Y
    if overflow.any():
        t = t + np.cumsum(overflow) * ATIS_OVERFLOW_STEP_US
    keep = ~overflow
    return make_events(x[keep], y[keep], t[keep], packed[keep] >> 7)


def read_gesture_npy(path: str | os.PathLike) -> np.ndarray:
    """tonic's DVS128 Gesture .npy ([N, 4]: x, y, p, t in ms) -> events (t in us)."""
    _quick_check_npy(path, os.path.getsize(path))
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as err:
        raise CorruptEventFile(path, f"numpy cannot load it ({err})") from None
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise CorruptEventFile(path, "it holds NaN or infinite values")
    if len(values) and (values[:, :2].min() < 0 or values[:, :2].max() >= 2**15):
        raise CorruptEventFile(path, "an x or y address is negative or above 32767")
    t_us = np.rint(values[:, 3] * 1000.0)
    if len(t_us) and np.abs(t_us).max() >= 2**62:
        raise CorruptEventFile(path, "a timestamp is out of range")
    return make_events(values[:, 0], values[:, 1], t_us.astype(np.int64), values[:, 2] != 0)


def read_aedat2_dvs128(path: str | os.PathLike) -> np.ndarray:
    """CIFAR10-DVS original .aedat (AEDAT 2.0 from a DVS128) -> events.

    The sensor was mounted so that the raw (x, y) are transposed and mirrored against the image;
    x = 127 - y_raw, y = 127 - x_raw gives upright frames (the orientation SpikingJelly uses).
    Raw bit 0 is 1 for OFF."""
    data = Path(path).read_bytes()
    start, version = _skip_hash_header(data)
    if version is not None and version.startswith("4"):
        return read_aedat4(path)  # AEDAT4 content under the .aedat name
    if version is not None and not version.startswith("2"):
        raise CorruptEventFile(path, f"AEDAT {version} is not the AEDAT 2.0 layout expected")
    body = len(data) - start
    if body % 8:
        raise CorruptEventFile(path, f"{body} data bytes is not a whole number of 8-byte events")
    words = np.frombuffer(data, dtype=">u4", offset=start).reshape(-1, 2)
    addr, t = words[:, 0].astype(np.int64), words[:, 1].astype(np.int64)
    dvs = (addr & 0x8000) == 0  # bit 15 marks external (non-pixel) events
    addr, t = addr[dvs], t[dvs]
    x_raw, y_raw = (addr >> 1) & 0x7F, (addr >> 8) & 0x7F
    return make_events(127 - y_raw, 127 - x_raw, t, 1 - (addr & 1))


def read_aedat31(path: str | os.PathLike) -> np.ndarray:
    """DVS128 Gesture original .aedat (AEDAT 3.1) -> polarity events (other packets skipped)."""
    signature = stat_signature(path)
    if signature is None:  # changed a moment ago: never from the memory of an older read
        return _decode_aedat31(str(path))
    return _read_aedat31_cached(str(path), tuple(signature)).copy()


@functools.lru_cache(maxsize=2)
def _read_aedat31_cached(path: str, _signature: tuple) -> np.ndarray:
    # One file holds all gestures of a trial; several samples in a row read the same file.
    return _decode_aedat31(path)


def _decode_aedat31(path: str) -> np.ndarray:
    data = Path(path).read_bytes()
    columns = []
    for offset, overflow, count in _aedat31_packets(io.BytesIO(data), len(data), path):
        block = np.frombuffer(data, dtype="<u4", count=2 * count, offset=offset).reshape(-1, 2)
        columns.append((block[:, 0], block[:, 1].astype(np.int64) | (overflow << 31)))
    if not columns:
        return make_events([], [], [], [])
    word = np.concatenate([c[0] for c in columns]).astype(np.int64)
    t = np.concatenate([c[1] for c in columns])
    valid = (word & 1) == 1
    word, t = word[valid], t[valid]
    return make_events((word >> 17) & 0x7FFF, (word >> 2) & 0x7FFF, t, (word >> 1) & 1)


def _aedat31_packets(f: BinaryIO, end: int, path: str):
    """Walk the packet headers of an AEDAT 3.1 stream of `end` bytes, seeking over the data;
    yield (data offset, ts overflow, event count) of each polarity packet."""
    start, version = _skip_hash_header(f.read(1 << 16))
    if version is not None and not version.startswith("3"):
        raise CorruptEventFile(path, f"AEDAT {version} is not the AEDAT 3.1 layout expected")
    pos, hsize = start, AEDAT3_PACKET_HEADER.size
    while pos < end:
        f.seek(pos)
        head = f.read(hsize)
        if len(head) < hsize:
            raise CorruptEventFile(path, f"packet header cut short at byte {pos}")
        etype, _src, size, _tsoff, overflow, capacity, number, _valid = AEDAT3_PACKET_HEADER.unpack(
            head
        )
        length = capacity * size
        if size <= 0 or capacity < 0 or not 0 <= number <= capacity or pos + hsize + length > end:
            raise CorruptEventFile(path, f"packet at byte {pos} runs past the end of the file")
        if etype == AEDAT3_POLARITY_TYPE and number:
            if size != 8:
                raise CorruptEventFile(path, f"polarity events of {size} bytes, expected 8")
            yield pos + hsize, overflow, number
        pos += hsize + length


def read_gesture_labels(csv_path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """A DVS128 Gesture *_labels.csv -> [(label 0..10, start us, end us)]."""
    try:
        text = Path(csv_path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorruptEventFile(csv_path, f"not a text file ({err})") from None
    rows = []
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        try:
            label, start, end = (int(v) for v in line.split(",")[:3])
        except ValueError:
            raise CorruptEventFile(csv_path, f"bad label row {line!r}") from None
        if not 1 <= label <= GESTURE_CLASSES or not 0 <= start < end:
            raise CorruptEventFile(
                csv_path, f"label row {line!r}: class 1..{GESTURE_CLASSES}, 0 <= start < end"
            )
        rows.append((label - 1, start, end))
    return rows


def _skip_hash_header(data: bytes) -> tuple[int, str | None]:
    """Offset of the first byte after the '#' header lines, and the AEDAT version it names."""
    pos, version = 0, None
    while data.startswith(b"#", pos):
        newline = data.find(b"\n", pos)
        if newline < 0:
            newline = len(data) - 1
        line = data[pos : newline + 1]
        if line.startswith(b"#!AER-DAT"):
            version = line[9:].decode("ascii", "replace").strip()
        pos = newline + 1
        if line.startswith(b"#!END-HEADER"):
            break
    return pos, version


def _read_bytes(path: str | os.PathLike) -> np.ndarray:
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8)


READERS = {
    "atis_bin": read_atis_bin,
    "gesture_npy": read_gesture_npy,
    "aedat2": read_aedat2_dvs128,
    "aedat31": read_aedat31,
    "aedat4": read_aedat4,
}


def read_events(path: str | os.PathLike, fmt: str) -> np.ndarray:
    """Decode `path` with the reader of format `fmt` (a READERS key)."""
    return READERS[fmt](path)


def quick_check(path: str | os.PathLike, fmt: str) -> None:
    """Raise CorruptEventFile if the file is structurally broken (from size and headers)."""
    size = os.path.getsize(path)
    if fmt == "atis_bin":
        _quick_check_atis(path, size)
    elif fmt == "gesture_npy":
        _quick_check_npy(path, size)
    elif fmt == "aedat2":
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        start, version = _skip_hash_header(head)
        if version is not None and version.startswith("4"):
            quick_check_aedat4(path)
        elif (size - start) % 8:
            raise CorruptEventFile(path, f"{size - start} data bytes is not whole 8-byte events")
    elif fmt == "aedat31":
        with open(path, "rb") as f:
            for _ in _aedat31_packets(f, size, str(path)):
                pass
    elif fmt == "aedat4":
        quick_check_aedat4(path)


def _quick_check_atis(path: str | os.PathLike, size: int) -> None:
    """Whole 5-byte events, and at least one that is not a timestamp-overflow marker: an
    empty or all-overflow file decodes to no events and would train as an all-zero sample."""
    if size % 5:
        raise CorruptEventFile(path, f"{size} bytes is not a whole number of 5-byte events")
    if size == 0:
        raise CorruptEventFile(path, "the file is empty (0 bytes), it holds no events")
    with open(path, "rb") as f:
        while chunk := f.read(5 * 4096):  # whole events a chunk; the first one nearly always
            if (np.frombuffer(chunk, dtype=np.uint8)[1::5] != ATIS_OVERFLOW_Y).any():
                return
    raise CorruptEventFile(
        path, f"all {size // 5} events are timestamp-overflow markers (y = 240), no real event"
    )


def _quick_check_npy(path: str | os.PathLike, size: int) -> None:
    """An [N, 4] array of plain numbers whose header agrees with the file's size."""
    with open(path, "rb") as f:
        try:
            major, _ = np.lib.format.read_magic(f)
            if major not in (1, 2):
                raise ValueError(f".npy format version {major} is not one numpy writes for numbers")
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, _fortran, dtype = read_header(f)
        except OSError:
            raise
        except Exception as err:  # numpy parses the header with ast/tokenize: their errors too
            raise CorruptEventFile(path, f"not a readable .npy file ({err})") from None
        header_end = f.tell()
    if len(shape) != 2 or shape[1] != 4:
        raise CorruptEventFile(path, f"expected an [N, 4] x, y, p, t array, got {list(shape)}")
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise CorruptEventFile(path, f"it holds {dtype} values, not plain numbers")
    expected = header_end + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size != expected:
        raise CorruptEventFile(path, f"{size} bytes where the .npy header implies {expected}")
