"""Events -> frames against counts worked out by hand, and the event-level transforms."""

from __future__ import annotations

import numpy as np
import pytest

from spikequant.data.events import make_events
from spikequant.data.frames import (
    denoise_events,
    events_to_frames,
    frame_index,
    resize_events,
)


def events_from(rows):
    """rows of (x, y, t, p)."""
    x, y, t, p = zip(*rows) if rows else ((), (), (), ())
    return make_events(x, y, t, p)


# Seven events on a 3x2 (W x H) sensor.
SEVEN = events_from(
    [
        (0, 0, 0, 1),
        (1, 0, 10, 1),
        (0, 0, 20, 0),
        (2, 1, 30, 1),
        (2, 1, 40, 1),
        (1, 1, 50, 0),
        (0, 1, 100, 1),
    ]
)


def test_split_by_number_by_hand():
    # N=7, T=3: 7 // 3 = 2 a frame, the remainder in the last: [0,1] [2,3] [4,5,6]
    frames = events_to_frames(SEVEN, height=2, width=3, time_steps=3, split_by="number")
    want = np.zeros((3, 2, 2, 3), dtype=np.float32)
    want[0, 1, 0, 0] = 1  # (0,0) ON
    want[0, 1, 0, 1] = 1  # (1,0) ON
    want[1, 0, 0, 0] = 1  # (0,0) OFF
    want[1, 1, 1, 2] = 1  # (2,1) ON
    want[2, 1, 1, 2] = 1  # (2,1) ON
    want[2, 0, 1, 1] = 1  # (1,1) OFF
    want[2, 1, 1, 0] = 1  # (0,1) ON
    assert frames.dtype == np.float32
    np.testing.assert_array_equal(frames, want)


def test_split_by_time_by_hand():
    # span 100 us, T=4: windows of 25 us: [0,25) [25,50) [50,75) [75,...]
    index = frame_index(SEVEN["t"], 4, "time")
    np.testing.assert_array_equal(index, [0, 0, 0, 1, 1, 2, 3])
    frames = events_to_frames(SEVEN, 2, 3, 4, "time")
    assert frames[0].sum() == 3 and frames[1].sum() == 2
    assert frames[1, 1, 1, 2] == 2  # both (2,1) ON events land in one pixel of frame 1
    assert frames[3, 1, 1, 0] == 1


def test_time_split_with_empty_windows_does_not_crash():
    events = events_from([(0, 0, 0, 1), (1, 1, 1000, 0)])
    frames = events_to_frames(events, 2, 2, 10, "time")
    assert frames[0].sum() == 1 and frames[9].sum() == 1 and frames[1:9].sum() == 0


def test_fewer_events_than_frames_go_to_the_last_frame():
    events = events_from([(0, 0, 5, 1), (1, 0, 6, 1)])
    frames = events_to_frames(events, 1, 2, 5, "number")
    assert frames[:4].sum() == 0 and frames[4].sum() == 2


def test_empty_recording_gives_empty_frames():
    for mode in ("number", "time"):
        frames = events_to_frames(events_from([]), 34, 34, 8, mode)
        assert frames.shape == (8, 2, 34, 34) and frames.sum() == 0


def test_unsorted_events_are_put_in_time_order():
    shuffled = SEVEN[np.random.default_rng(0).permutation(len(SEVEN))]
    np.testing.assert_array_equal(
        events_to_frames(shuffled, 2, 3, 3), events_to_frames(SEVEN, 2, 3, 3)
    )


def test_counts_are_kept_for_random_events():
    rng = np.random.default_rng(1)
    n = 5000
    events = make_events(
        rng.integers(0, 128, n),
        rng.integers(0, 128, n),
        np.sort(rng.integers(0, 10**6, n)),
        rng.integers(0, 2, n),
    )
    for mode in ("number", "time"):
        frames = events_to_frames(events, 128, 128, 20, mode)
        assert frames.sum() == n
        np.testing.assert_array_equal(
            frames.sum(axis=(0, 1)),
            np.bincount(events["y"] * 128 + events["x"], minlength=128 * 128).reshape(128, 128),
        )


def test_bad_arguments():
    with pytest.raises(ValueError, match="split_by"):
        frame_index(np.arange(3), 2, "events")
    with pytest.raises(ValueError, match="time_steps"):
        frame_index(np.arange(3), 0)


def test_resize_keeps_every_event():
    events = events_from([(0, 0, 0, 1), (239, 179, 1, 0), (120, 90, 2, 1)])
    small = resize_events(events, (180, 240), (48, 48))
    np.testing.assert_array_equal(small["x"], [0, 47, 24])
    np.testing.assert_array_equal(small["y"], [0, 47, 24])
    assert events_to_frames(small, 48, 48, 1).sum() == 3


def test_denoise_drops_isolated_events_only():
    events = events_from(
        [
            (10, 10, 0, 1),  # first of a pair: no neighbour before it -> dropped
            (11, 10, 500, 1),  # neighbour (10,10) fired 500 us before -> kept
            (30, 30, 600, 0),  # isolated -> dropped
            (11, 11, 5000, 1),  # neighbours fired long ago -> dropped with a 1 ms filter
            (12, 12, 5100, 0),  # (11,11) fired 100 us before -> kept
        ]
    )
    kept = denoise_events(events, 34, 34, filter_us=1000)
    np.testing.assert_array_equal(kept["t"], [500, 5100])
    assert len(denoise_events(events_from([]), 34, 34, 1000)) == 0
