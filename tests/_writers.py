"""Writers of the small data files the tests make, each in a dataset's real on-disk format or
a test's own: one place, so that test files do not import each other."""

from __future__ import annotations

import numpy as np

from spikequant.data.events import make_events


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
