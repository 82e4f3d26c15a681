"""Events -> frames, and the event-level transforms applied before it (resize, denoise).

Frames follow SpikingJelly's integrate-to-frame convention: T frames, each the count of events
per (polarity, y, x) in its slice, polarity 0 (OFF) as channel 0 and 1 (ON) as channel 1.
Slices split the recording either into T runs of equal event count (`split_by="number"`: with
k = N // T, slice j holds events [j*k, (j+1)*k) and the last slice also the remainder) or into T
equal time windows (`split_by="time"`: width (t_last - t_first) // T, the last slice taking the
rest). Recordings with fewer than T events put them all in the last frame, as SpikingJelly does.
"""

from __future__ import annotations

import numpy as np

SPLIT_MODES = ("number", "time")
NEIGHBOURS = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy)


def frame_bounds(t: np.ndarray, time_steps: int, split_by: str = "number") -> np.ndarray:
    """T + 1 indices into time-ordered events: frame j holds events [b[j], b[j+1])."""
    if split_by not in SPLIT_MODES:
        raise ValueError(f"split_by must be one of {SPLIT_MODES}, not {split_by!r}")
    if time_steps < 1:
        raise ValueError(f"time_steps must be >= 1, got {time_steps}")
    n = len(t)
    bounds = np.full(time_steps + 1, n, dtype=np.int64)
    if n == 0:
        return bounds
    if split_by == "number":
        per_frame = n // time_steps
        bounds[:-1] = np.arange(time_steps) * per_frame  # all zero: everything in the last
        return bounds
    first, last = int(t[0]), int(t[-1])
    width = max((last - first) // time_steps, 1)
    edges = first + width * np.arange(1, time_steps, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1] = np.searchsorted(t, edges, side="left")
    return bounds


def frame_index(t: np.ndarray, time_steps: int, split_by: str = "number") -> np.ndarray:
    """The frame (0..T-1) of each event, for events in time order."""
    bounds = frame_bounds(t, time_steps, split_by)
    return np.repeat(np.arange(time_steps, dtype=np.int64), np.diff(bounds))


def events_to_frames(
    events: np.ndarray,
    height: int,
    width: int,
    time_steps: int,
    split_by: str = "number",
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Structured events (x, y, t, p) -> [T, 2, height, width] event counts.

    Events are assumed on the sensor (see events.check_in_sensor); they are put in time order
    first if they are not already.

    Args:
        events: structured event array with fields x, y, t (microseconds) and p (0 OFF, 1 ON),
            as spikequant.data.EVENT_DTYPE; every x below `width`, every y below `height`.
        height: frame height in pixels.
        width: frame width in pixels.
        time_steps: T, the number of frames (>= 1).
        split_by: how the recording is cut into the T slices: "number" (equal event counts)
            or "time" (equal time windows), as the module docstring describes.
        dtype: the returned array's dtype (float32 by default); the counts are exact integers.

    Returns:
        [time_steps, 2, height, width] counts: frame, polarity (channel 0 OFF, 1 ON), y, x.

    Raises:
        ValueError: `split_by` is not "number" or "time", or `time_steps` is below 1.
    """
    t = events["t"]
    if len(t) > 1 and np.any(t[1:] < t[:-1]):
        events = events[np.argsort(t, kind="stable")]
        t = events["t"]
    bounds = frame_bounds(t, time_steps, split_by)
    cells = 2 * height * width
    # int32 indices halve the memory traffic; frames this large never reach 2**31 cells.
    index_type = np.int32 if time_steps * cells < 2**31 else np.int64
    flat = events["p"].astype(index_type) * (height * width)
    flat += events["y"].astype(index_type) * width
    flat += events["x"]
    for j in range(1, time_steps):  # frames are contiguous runs of events
        flat[bounds[j] : bounds[j + 1]] += j * cells
    counts = np.bincount(flat, minlength=time_steps * cells)
    return counts.reshape(time_steps, 2, height, width).astype(dtype, copy=False)


def resize_events(
    events: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int]
) -> np.ndarray:
    """Scale addresses from an in_h x in_w extent to out_h x out_w (nearest lower pixel), so
    frame counts are kept: every event lands in exactly one output pixel.

    Args:
        events: structured event array with fields x, y, t, p (spikequant.data.EVENT_DTYPE).
        in_hw: (height, width) in pixels of the extent the addresses are in.
        out_hw: (height, width) in pixels to scale them to: x becomes x * out_w // in_w and y
            becomes y * out_h // in_h; t and p are kept.

    Returns:
        A scaled copy of `events`, or `events` itself when `in_hw` equals `out_hw`.
    """
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    if (in_h, in_w) == (out_h, out_w):
        return events
    out = events.copy()
    out["x"] = events["x"].astype(np.int64) * out_w // max(in_w, 1)
    out["y"] = events["y"].astype(np.int64) * out_h // max(in_h, 1)
    return out


def denoise_events(events: np.ndarray, width: int, height: int, filter_us: int) -> np.ndarray:
    """Drop isolated events: keep an event only if one of its 8 neighbouring pixels had an
    event at most `filter_us` microseconds before it (tonic's Denoise rule).

    Args:
        events: structured event array with fields x, y, t (microseconds), p
            (spikequant.data.EVENT_DTYPE), in any order, addresses on the sensor.
        width: sensor width in pixels; neighbours with x outside [0, width) do not count.
        height: sensor height in pixels; neighbours with y outside [0, height) do not count.
        filter_us: the window in microseconds; a neighbour's event at the same time or up to
            `filter_us` earlier keeps the event.

    Returns:
        The kept events, in their input order (`events` itself when it is empty).
    """
    n = len(events)
    if n == 0:
        return events
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"].astype(np.int64)
    t = t - t.min()
    span = int(t.max()) + 1
    pixel = y * width + x
    order = np.lexsort((t, pixel))
    keys = pixel[order] * span + t[order]  # sorted: pixel, then time
    sorted_pixel, sorted_t = pixel[order], t[order]
    keep = np.zeros(n, dtype=bool)
    for dx, dy in NEIGHBOURS:
        nx, ny = x + dx, y + dy
        inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        neighbour = ny * width + nx
        # Latest event of the neighbour pixel at or before t.
        j = np.searchsorted(keys, neighbour * span + t, side="right") - 1
        jc = np.clip(j, 0, n - 1)
        found = inside & (j >= 0) & (sorted_pixel[jc] == neighbour)
        keep |= found & (t - sorted_t[jc] <= filter_us)
    return events[keep]
