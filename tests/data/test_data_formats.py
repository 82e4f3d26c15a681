"""Event-file formats: fixtures written byte by byte in each real on-disk layout (by
tests/_writers.py), read back."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from _helpers import SPIKINGJELLY_STUBS
from _writers import (
    aedat4_event_packet,
    aedat31_packet,
    gesture_aedat31,
    polarity_word,
    random_events,
    write_aedat2,
    write_aedat4,
    write_aedat31,
    write_atis_bin,
    write_gesture_labels,
    write_gesture_npy,
)
from spikequant.data.events import CorruptEventFile, EventsOutsideSensor, check_in_sensor
from spikequant.data.formats import quick_check, read_events, read_gesture_labels

# ---------------------------------------------------------------- ATIS .bin


def test_atis_bin_reads_back_with_overflow(tmp_path):
    x, y, t, p = random_events(50, 34, 34, t_max=20_000)
    t[30:] += 2**13  # the part after the overflow marker
    path = tmp_path / "00001.bin"
    write_atis_bin(path, x, y, t, p, overflow_before=30)
    events = read_events(path, "atis_bin")
    assert len(events) == 50
    np.testing.assert_array_equal(events["x"], x)
    np.testing.assert_array_equal(events["y"], y)
    np.testing.assert_array_equal(events["t"], t)
    np.testing.assert_array_equal(events["p"], p)


def test_atis_bin_agrees_with_tonic(tmp_path):
    from tonic.io import read_mnist_file

    x, y, t, p = random_events(200, 34, 34, seed=3)
    path = tmp_path / "a.bin"
    write_atis_bin(path, x, y, t, p, overflow_before=120)
    t[120:] += 0  # the writer lowered them; both readers must add 2**13 back
    theirs = read_mnist_file(str(path), dtype=np.dtype([(k, int) for k in "xytp"]))
    ours = read_events(path, "atis_bin")
    for field in "xytp":
        np.testing.assert_array_equal(ours[field], theirs[field])


def test_atis_bin_truncated_names_the_file(tmp_path):
    path = tmp_path / "cut.bin"
    write_atis_bin(path, *random_events(10, 34, 34))
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(CorruptEventFile, match="cut.bin"):
        read_events(path, "atis_bin")
    with pytest.raises(CorruptEventFile, match="5-byte"):
        quick_check(path, "atis_bin")


def test_empty_bin_decodes_to_no_events_and_fails_the_check(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert len(read_events(path, "atis_bin")) == 0
    with pytest.raises(CorruptEventFile, match="empty.bin: the file is empty"):
        quick_check(path, "atis_bin")


# ---------------------------------------------------------------- DVS128 Gesture (.npy)


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_gesture_npy_reads_back_in_microseconds(tmp_path, dtype):
    x, y, t, p = random_events(40, 128, 128)
    t_ms = t // 1000
    path = tmp_path / "user01_fluorescent" / "3.npy"
    write_gesture_npy(path, x, y, p, t_ms, dtype)
    events = read_events(path, "gesture_npy")
    np.testing.assert_array_equal(events["t"], t_ms * 1000)
    np.testing.assert_array_equal(events["x"], x)
    np.testing.assert_array_equal(events["p"], p)


def test_gesture_npy_truncated(tmp_path):
    path = tmp_path / "4.npy"
    write_gesture_npy(path, *random_events(40, 128, 128)[:2], np.ones(40), np.arange(40))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CorruptEventFile, match="4.npy"):
        quick_check(path, "gesture_npy")
    with pytest.raises(CorruptEventFile, match="4.npy"):
        read_events(path, "gesture_npy")


# ---------------------------------------------------------------- CIFAR10-DVS original (.aedat 2.0)


def test_aedat2_maps_dvs128_addresses(tmp_path):
    x_raw, y_raw, t, raw_pol = random_events(30, 128, 128)
    path = tmp_path / "cifar10_cat_0.aedat"
    write_aedat2(path, x_raw, y_raw, raw_pol, t, external={5})
    events = read_events(path, "aedat2")
    keep = np.arange(30) != 5  # the external event is dropped
    assert len(events) == 29
    np.testing.assert_array_equal(events["x"], 127 - y_raw[keep])
    np.testing.assert_array_equal(events["y"], 127 - x_raw[keep])
    np.testing.assert_array_equal(events["p"], 1 - raw_pol[keep])
    np.testing.assert_array_equal(events["t"], t[keep])


def test_aedat2_agrees_with_tonic_raw_reader(tmp_path):
    from tonic.io import get_aer_events_from_file, read_aedat_header_from_file

    x_raw, y_raw, t, raw_pol = random_events(25, 128, 128, seed=5)
    path = tmp_path / "a.aedat"
    write_aedat2(path, x_raw, y_raw, raw_pol, t)
    version, start, _ = read_aedat_header_from_file(str(path))
    raw = get_aer_events_from_file(str(path), version, start)
    assert version == 2.0
    np.testing.assert_array_equal(raw["timeStamp"], t)
    np.testing.assert_array_equal((raw["address"] >> 1) & 0x7F, x_raw)


def test_aedat2_truncated(tmp_path):
    path = tmp_path / "cut.aedat"
    write_aedat2(path, *random_events(10, 128, 128))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CorruptEventFile, match="cut.aedat"):
        read_events(path, "aedat2")
    with pytest.raises(CorruptEventFile):
        quick_check(path, "aedat2")


# ---------------------------------------------------------------- DVS128 Gesture original (3.1)


def test_aedat31_reads_polarity_packets_only(tmp_path):
    x, y, t, p = random_events(60, 128, 128)
    path = tmp_path / "user02_led.aedat"
    gesture_aedat31(path, x, y, t, p)
    events = read_events(path, "aedat31")
    assert len(events) == 60
    for field, want in zip("xytp", (x, y, t, p)):
        np.testing.assert_array_equal(events[field], want)


def test_aedat31_timestamp_overflow(tmp_path):
    path = tmp_path / "user03_led.aedat"
    write_aedat31(path, [aedat31_packet(1, [polarity_word(2, 3, 1)], [7], overflow=1)])
    assert read_events(path, "aedat31")["t"][0] == 7 + 2**31


# A child process runs SpikingJelly's own readers on our fixtures (SPIKINGJELLY_STUBS: why).
SPIKINGJELLY_CHILD = SPIKINGJELLY_STUBS + """
import numpy as np
import spikingjelly.datasets.utils as sj
aedat, events, out = sys.argv[1:4]
loaded = sj.load_aedat_v3(aedat)
ev = dict(np.load(events))
frames = {f"{mode}{T}": sj.integrate_events_by_fixed_frames_number(ev, mode, T, 30, 34)
          for mode in ("number", "time") for T in (1, 4, 10)}
np.savez(out, **{"aedat_" + k: v for k, v in loaded.items()}, **frames)
"""


def test_aedat31_and_frames_agree_with_spikingjelly(tmp_path):
    import importlib.util
    import subprocess

    from spikequant.data.events import make_events
    from spikequant.data.frames import events_to_frames

    if importlib.util.find_spec("spikingjelly") is None:
        pytest.skip("spikingjelly is not installed")
    x, y, t, p = random_events(400, 128, 128, seed=9)
    aedat = tmp_path / "user04_led.aedat"
    words = [polarity_word(*e) for e in zip(x, y, p)]
    write_aedat31(
        aedat,
        [
            aedat31_packet(1, words[:150], t[:150]),
            aedat31_packet(0, [5], [0]),
            aedat31_packet(1, words[150:], t[150:]),
        ],
    )
    fx, fy, ft, fp = random_events(1234, 34, 30, seed=2)
    np.savez(tmp_path / "events.npz", x=fx, y=fy, t=ft, p=fp)
    out = tmp_path / "theirs.npz"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SPIKINGJELLY_CHILD,
            str(aedat),
            str(tmp_path / "events.npz"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = np.load(out)
    ours = read_events(aedat, "aedat31")
    for field in "xytp":
        np.testing.assert_array_equal(ours[field], theirs["aedat_" + field])
    events = make_events(fx, fy, ft, fp)
    for mode in ("number", "time"):
        for steps in (1, 4, 10):
            np.testing.assert_array_equal(
                events_to_frames(events, 30, 34, steps, mode), theirs[f"{mode}{steps}"]
            )


def test_aedat31_truncated_packet(tmp_path):
    path = tmp_path / "user05_led.aedat"
    gesture_aedat31(path, *random_events(20, 128, 128)[:3], np.ones(20, int))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CorruptEventFile, match="user05_led.aedat"):
        read_events(path, "aedat31")
    with pytest.raises(CorruptEventFile):
        quick_check(path, "aedat31")


def test_gesture_labels_csv(tmp_path):
    path = tmp_path / "user01_led_labels.csv"
    write_gesture_labels(path, [(1, 100, 200), (11, 300, 450)])
    assert read_gesture_labels(path) == [(0, 100, 200), (10, 300, 450)]


# ---------------------------------------------------------------- CIFAR10-DVS tonic (.aedat4)


def test_aedat4_reads_back(tmp_path):
    x, y, t, p = random_events(30, 128, 128)
    path = tmp_path / "cat_0.aedat4"
    write_aedat4(
        path,
        [
            aedat4_event_packet(t[:10], x[:10], y[:10], p[:10]),
            aedat4_event_packet(t[10:], x[10:], y[10:], p[10:]),
        ],
    )
    quick_check(path, "aedat4")
    events = read_events(path, "aedat4")
    for field, want in zip("xytp", (x, y, t, p)):
        np.testing.assert_array_equal(events[field], want)


def test_aedat4_agrees_with_the_aedat_package(tmp_path):
    aedat = pytest.importorskip("aedat")
    x, y, t, p = random_events(30, 128, 128, seed=4)
    path = tmp_path / "dog_1.aedat4"
    write_aedat4(path, [aedat4_event_packet(t, x, y, p)])
    theirs = np.concatenate([pk["events"] for pk in aedat.Decoder(str(path))])
    np.testing.assert_array_equal(read_events(path, "aedat4")["t"], theirs["t"])
    np.testing.assert_array_equal(read_events(path, "aedat4")["x"], theirs["x"])


def test_aedat4_truncated(tmp_path):
    x, y, t, p = random_events(30, 128, 128)
    path = tmp_path / "cut.aedat4"
    write_aedat4(path, [aedat4_event_packet(t, x, y, p)])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CorruptEventFile, match="cut.aedat4"):
        quick_check(path, "aedat4")
    with pytest.raises(CorruptEventFile, match="cut short"):
        read_events(path, "aedat4")


def test_aedat4_not_aedat4(tmp_path):
    path = tmp_path / "junk.aedat4"
    path.write_bytes(b"hello world, not an event file")
    with pytest.raises(CorruptEventFile, match="magic"):
        read_events(path, "aedat4")


def test_aedat4_compressed_without_codec_says_what_to_install(tmp_path, monkeypatch):
    x, y, t, p = random_events(5, 128, 128)
    path = tmp_path / "lz.aedat4"
    write_aedat4(path, [b"\x04\x22\x4d\x18not really lz4"], compression=1)
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    with pytest.raises(RuntimeError, match="pip install lz4"):  # and a SpikequantError
        read_events(path, "aedat4")


# ---------------------------------------------------------------- sensor checks


def test_events_outside_the_sensor_are_rejected_clearly():
    from spikequant.data.events import make_events

    events = make_events([1, 40], [2, 3], [0, 1], [0, 1])
    with pytest.raises(EventsOutsideSensor, match=r"x in \[1, 40\], sensor width 34"):
        check_in_sensor(events, 34, 34, "rec.bin")
    bad_polarity = make_events([1], [2], [0], [3])
    with pytest.raises(EventsOutsideSensor, match="polarity"):
        check_in_sensor(bad_polarity, 34, 34)
    check_in_sensor(make_events([], [], [], []), 34, 34)


def test_aedat4_content_under_an_aedat_name(tmp_path):
    x, y, t, p = random_events(12, 128, 128)
    path = tmp_path / "cifar10_cat_1.aedat"
    write_aedat4(path, [aedat4_event_packet(t, x, y, p)])
    quick_check(path, "aedat2")
    np.testing.assert_array_equal(read_events(path, "aedat2")["x"], x)
