"""Writers of the small data files the tests make, each in a dataset's real on-disk format or
a test's own: one place, so that test files do not import each other."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from spikequant.data.events import make_events
from spikequant.data.registry import CIFAR10_CLASSES


def bar_events(direction: str, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """A 2-pixel bar swept across the sensor: ON events on its leading edge, OFF on its
    trailing edge, 1 ms a pixel step, jittered times and a random extent across the motion."""
    along, across = np.meshgrid(np.arange(size - 2), np.arange(rng.integers(2, 6), size - 2))
    along, across = along.ravel(), across.ravel()
    t = along * 1000 + rng.integers(0, 900, along.size)
    lead = along + 2 if direction in ("right", "down") else size - 3 - along
    trail = lead - 2 if direction in ("right", "down") else lead + 2
    pos = np.concatenate([lead, trail]).clip(0, size - 1)
    other = np.concatenate([across, across])
    x, y = (pos, other) if direction in ("left", "right") else (other, pos)
    order = np.argsort(np.concatenate([t, t + 500]), kind="stable")
    polarity = np.r_[np.ones(along.size), np.zeros(along.size)]
    times = np.concatenate([t, t + 500])
    return make_events(x[order], y[order], times[order], polarity[order])


# ---------------------------------------------------------------- writers (byte by byte)


def write_atis_bin(path: Path, x, y, t, p, overflow_before: int | None = None) -> None:
    """N-MNIST/N-Caltech101 40-bit events; an overflow marker (y=240) before event
    `overflow_before` (timestamps from there on are written 2**13 us lower)."""
    out = bytearray()
    for i, (xi, yi, ti, pi) in enumerate(zip(x, y, t, p)):
        if overflow_before is not None and i == overflow_before:
            out += bytes([0, 240, 0, 0, 0])
        if overflow_before is not None and i >= overflow_before:
            ti -= 2**13
        out += bytes([xi, yi, (pi << 7) | ((ti >> 16) & 0x7F), (ti >> 8) & 0xFF, ti & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


def write_gesture_npy(path: Path, x, y, p, t_ms, dtype=np.float64) -> None:
    """tonic's preprocessed DVS128 Gesture sample: [N, 4] columns x, y, p, t (ms)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.stack([x, y, p, t_ms], axis=1).astype(dtype))


def write_aedat2(path: Path, x_raw, y_raw, raw_pol, t, external=()) -> None:
    """AEDAT 2.0 from a DVS128 (jAER): big-endian (address, timestamp) pairs."""
    header = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n# Data format is int32 address, int32 timestamp (8 bytes total)\r\n"  # noqa: E501
    body = bytearray()
    for i, (xr, yr, pr, ti) in enumerate(zip(x_raw, y_raw, raw_pol, t)):
        address = (yr << 8) | (xr << 1) | pr | (0x8000 if i in external else 0)
        body += struct.pack(">II", address, ti)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + bytes(body))


def aedat31_packet(event_type: int, words, timestamps, overflow: int = 0) -> bytes:
    n = len(words)
    head = struct.pack("<hhiiiiii", event_type, 1, 8, 4, overflow, n, n, n)
    return head + b"".join(struct.pack("<Ii", w, ts) for w, ts in zip(words, timestamps))


def polarity_word(x: int, y: int, p: int, valid: int = 1) -> int:
    return (x << 17) | (y << 2) | (p << 1) | valid


def write_aedat31(path: Path, packets: list[bytes]) -> None:
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b"".join(packets))


def write_gesture_labels(path: Path, rows) -> None:
    text = "class,startTime_usec,endTime_usec\n"
    text += "".join(f"{c},{s},{e}\n" for c, s, e in rows)
    path.write_text(text)


AEDAT4_DESCRIPTION = (
    '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
    '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
    '<attr key="compression" type="string">NONE</attr>'
    '<attr key="originalModuleName" type="string">capture</attr>'
    '<attr key="originalOutputName" type="string">events</attr>'
    '<attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>'
    '<attr key="typeIdentifier" type="string">EVTS</attr>'
    '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
    '<attr key="sizeX" type="int">128</attr><attr key="sizeY" type="int">128</attr>'
    '<attr key="source" type="string">DVXplorer</attr></node></node></node></dv>'
)


def aedat4_ioheader(compression: int = 0, description: str = AEDAT4_DESCRIPTION) -> bytes:
    """IOHeader flatbuffer: root offset, "IOHE", vtable, table {compression, data position,
    description}, then the description string."""
    vtable = struct.pack("<HHHHH", 10, 24, 4, 12, 20) + b"\0\0"  # at 8, table at 20
    table = struct.pack("<iiiqI", 20 - 8, compression, 0, -1, 4)  # string 4 bytes after field
    text = description.encode()
    string = struct.pack("<I", len(text)) + text + b"\0"
    return struct.pack("<I", 20) + b"IOHE" + vtable + table + string


def aedat4_event_packet(t, x, y, on) -> bytes:
    """Size-prefixed EventPacket flatbuffer with a vector of 16-byte Event structs."""
    vtable = struct.pack("<HHH", 6, 8, 4) + b"\0\0"  # at 12, table at 20
    table = struct.pack("<iI", 20 - 12, 28 - 24)  # vector at 28, elements from 32
    events = b"".join(struct.pack("<qhhB3x", ti, xi, yi, oi) for ti, xi, yi, oi in zip(t, x, y, on))
    body = struct.pack("<I", 16) + b"EVTS" + vtable + table + struct.pack("<I", len(t)) + events
    return struct.pack("<I", len(body)) + body


def write_aedat4(path: Path, packets, compression: int = 0, stream_id: int = 0) -> None:
    header = aedat4_ioheader(compression)
    out = b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(header)) + header
    for packet in packets:
        out += struct.pack("<II", stream_id, len(packet)) + packet
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)


def random_events(n: int, width: int, height: int, seed: int = 0, t_max: int = 300_000):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, t_max, n))
    return rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)


def gesture_aedat31(path: Path, x, y, t, p) -> None:
    """Two polarity packets around a special-event packet, plus one invalid event."""
    words = [polarity_word(a, b, c) for a, b, c in zip(x, y, p)]
    half = len(words) // 2
    special = aedat31_packet(0, [0x5], [int(t[half])])
    invalid = aedat31_packet(1, [polarity_word(1, 1, 1, valid=0)], [int(t[-1])])
    write_aedat31(
        path,
        [
            aedat31_packet(1, words[:half], t[:half]),
            special,
            aedat31_packet(1, words[half:], t[half:]),
            invalid,
        ],
    )


# ---------------------------------------------------------------- whole fake datasets


def make_nmnist(root: Path, per_class: int = 2) -> dict[str, int]:
    """root/NMNIST/{Train,Test}/<digit>/*.bin; returns events per file."""
    counts = {}
    for folder in ("Train", "Test"):
        for digit in range(10):
            for k in range(per_class):
                n = 30 + 7 * digit + k
                path = root / "NMNIST" / folder / str(digit) / f"{k:05d}.bin"
                write_atis_bin(path, *_xytp(random_events(n, 34, 34, seed=digit * 10 + k)))
                counts[str(path)] = n
    return counts


def _xytp(events):
    x, y, t, p = events
    return x, y, t, p


def make_ncaltech(root: Path, classes=("accordion", "Faces_easy", "yin_yang"), per_class=10):
    sizes = {}
    for c in classes:
        for k in range(per_class):
            w, h = 100 + 13 * k, 60 + 11 * k
            x, y, t, p = random_events(80 + k, w, h, seed=k)
            x, y = x + 20, y + 5  # recordings do not start at the sensor's corner
            path = root / "NCALTECH101" / "Caltech101" / c / f"image_{k + 1:04d}.bin"
            write_atis_bin(path, x, y, t, p)
            sizes[str(path)] = len(t)
    return sizes


def make_cifar_aedat4(root: Path, per_class: int = 10) -> None:
    for c in CIFAR10_CLASSES:
        for k in range(per_class):
            x, y, t, p = random_events(50 + k, 128, 128, seed=k)
            write_aedat4(
                root / "CIFAR10DVS" / c / f"cifar10_{c}_{k}.aedat4",
                [aedat4_event_packet(t, x, y, p)],
            )


def make_gesture_npy(root: Path) -> None:
    for folder, users in (("ibmGestureTrain", (1, 2)), ("ibmGestureTest", (24,))):
        for user in users:
            for label in range(11):
                x, y, t, p = random_events(60, 128, 128, seed=label + user)
                write_gesture_npy(
                    root / "DVSGesture" / folder / f"user{user:02d}_led" / f"{label}.npy",
                    x,
                    y,
                    p,
                    t / 1000.0,
                )
