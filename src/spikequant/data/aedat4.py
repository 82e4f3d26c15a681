"""AEDAT 4.0 reader (tonic's CIFAR10-DVS files), in numpy, with no compiled dependency.

Layout: the magic line "#!AER-DAT4.0\\r\\n"; a uint32 length and an IOHeader flatbuffer
(compression, file data position, an XML description naming each stream and its type
identifier); then packets of (uint32 stream id, uint32 length, bytes), each a size-prefixed
flatbuffer, LZ4- or Zstd-compressed when the header says so. An event packet ("EVTS") is a
table whose field 0 is a vector of 16-byte structs {int64 t, int16 x, int16 y, bool on}.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET

import numpy as np

from .events import CorruptEventFile, MissingDecoder, make_events

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSION_NAMES = {0: None, 1: "lz4", 2: "lz4", 3: "zstd", 4: "zstd"}
EVENT_STRUCT = np.dtype(
    {
        "names": ["t", "x", "y", "on"],
        "formats": ["<i8", "<i2", "<i2", "u1"],
        "offsets": [0, 8, 10, 12],
        "itemsize": 16,
    }
)


class _Table:
    """Field access into one flatbuffer table, with bounds checks."""

    def __init__(self, buf: bytes, pos: int, path: str):
        self.buf, self.pos, self.path = buf, pos, path
        vtable = pos - self._unpack("<i", pos)
        self.vt_size = self._unpack("<H", vtable)
        self.vtable = vtable

    def _unpack(self, fmt: str, pos: int):
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise CorruptEventFile(self.path, "a flatbuffer offset points outside its packet")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def field_pos(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vt_size:
            return None
        offset = self._unpack("<H", self.vtable + slot)
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default):
        pos = self.field_pos(index)
        return default if pos is None else self._unpack(fmt, pos)

    def vector(self, index: int) -> tuple[int, int] | None:
        """(start, length) of the vector or string in field `index`."""
        pos = self.field_pos(index)
        if pos is None:
            return None
        start = pos + self._unpack("<I", pos)
        return start + 4, self._unpack("<I", start)


def _root(buf: bytes, path: str, size_prefixed: bool) -> _Table:
    base = 4 if size_prefixed else 0
    if len(buf) < base + 8:
        raise CorruptEventFile(path, "a flatbuffer is shorter than its header")
    return _Table(buf, base + struct.unpack_from("<I", buf, base)[0], path)


def _read_header(f, path: str) -> tuple[int, int, int, int]:
    """(compression, file data position, event stream id, offset of the first packet)."""
    if f.read(len(MAGIC)) != MAGIC:
        raise CorruptEventFile(path, "no #!AER-DAT4.0 magic line: not an AEDAT4 file")
    raw_len = f.read(4)
    if len(raw_len) < 4:
        raise CorruptEventFile(path, "the file ends inside its header")
    length = struct.unpack("<I", raw_len)[0]
    if f.tell() + length > os.fstat(f.fileno()).st_size:  # before allocating what it claims
        raise CorruptEventFile(path, "the file ends inside its header")
    buf = f.read(length)
    table = _root(buf, path, size_prefixed=False)
    compression = table.scalar(0, "<i", 0)
    data_end = table.scalar(1, "<q", -1)
    described = table.vector(2)
    if described is None:
        raise CorruptEventFile(path, "the header has no stream description")
    start, n = described
    stream = _event_stream_id(buf[start : start + n].decode("utf-8", "replace"), path)
    return compression, data_end, stream, len(MAGIC) + 4 + length


def _event_stream_id(description: str, path: str) -> int:
    """The lowest stream id whose typeIdentifier is EVTS (as tonic picks it)."""
    try:
        root = ET.fromstring(description)
    except ET.ParseError as err:
        raise CorruptEventFile(path, f"the header's XML description is broken ({err})") from None
    ids = []
    for node in root.iter("node"):
        if node.get("name") != "outInfo":
            continue
        for stream in node.findall("node"):
            for attr in stream.findall("attr"):
                if attr.get("key") == "typeIdentifier" and (attr.text or "").strip() == "EVTS":
                    name = stream.get("name", "")
                    if not (name.isascii() and name.isdigit()):
                        raise CorruptEventFile(path, f"event stream id {name!r} is not a number")
                    ids.append(int(name))
    if not ids:
        raise CorruptEventFile(path, "the file describes no event (EVTS) stream")
    return min(ids)


def _packets(f, path: str, data_end: int):
    """Yield (stream id, raw bytes) of each packet up to the end of the data."""
    size = os.fstat(f.fileno()).st_size
    while data_end < 0 or f.tell() < data_end:
        head = f.read(8)
        if not head:
            return
        if len(head) < 8:
            raise CorruptEventFile(path, f"a packet header is cut short at byte {f.tell()}")
        stream, length = struct.unpack("<II", head)
        if f.tell() + length > size:  # before allocating what it claims
            raise CorruptEventFile(path, f"a packet of {length} bytes is cut short")
        yield stream, f.read(length)


def _decompress(body: bytes, compression: int, path: str) -> bytes:
    name = COMPRESSION_NAMES.get(compression, "unknown")
    if name is None:
        return body
    try:
        if name == "lz4":
            import lz4.frame

            return lz4.frame.decompress(body)
        if name == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    except ImportError:
        module = "lz4" if name == "lz4" else "zstandard"
        raise MissingDecoder(
            f"{path} is {name}-compressed; install the `{module}` package to read it "
            f"(pip install {module})"
        ) from None
    except Exception as err:  # the codecs raise their own error types
        raise CorruptEventFile(path, f"a packet does not decompress ({err})") from None
    raise CorruptEventFile(path, f"unknown compression code {compression}")


def _packet_events(buf: bytes, path: str) -> np.ndarray:
    if buf[8:12] != b"EVTS":
        raise CorruptEventFile(path, "an event-stream packet is not an EVTS flatbuffer")
    elements = _root(buf, path, size_prefixed=True).vector(0)
    if elements is None:
        return np.empty(0, dtype=EVENT_STRUCT)
    start, count = elements
    if start + count * EVENT_STRUCT.itemsize > len(buf):
        raise CorruptEventFile(path, f"an event packet claims {count} events past its end")
    return np.frombuffer(buf, dtype=EVENT_STRUCT, count=count, offset=start)


def read_aedat4(path: str | os.PathLike) -> np.ndarray:
    """Polarity events of the first event stream of an AEDAT4 file."""
    path = str(path)
    chunks = []
    with open(path, "rb") as f:
        compression, data_end, stream, _ = _read_header(f, path)
        for stream_id, body in _packets(f, path, data_end):
            if stream_id == stream:
                chunks.append(_packet_events(_decompress(body, compression, path), path))
    raw = np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_STRUCT)
    return make_events(raw["x"], raw["y"], raw["t"], raw["on"] != 0)


def quick_check_aedat4(path: str | os.PathLike) -> None:
    """Walk the packet headers without decoding; CorruptEventFile if the file is cut short."""
    path = str(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        _, data_end, _, _ = _read_header(f, path)
        end = size if data_end < 0 else min(data_end, size)
        while f.tell() < end:
            head = f.read(8)
            if len(head) < 8:
                raise CorruptEventFile(path, f"a packet header is cut short at byte {f.tell()}")
            length = struct.unpack("<II", head)[1]
            if f.tell() + length > size:
                raise CorruptEventFile(path, f"a packet of {length} bytes is cut short")
            f.seek(length, os.SEEK_CUR)
