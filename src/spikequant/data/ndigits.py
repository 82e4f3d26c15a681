"""ndigits: scikit-learn's 1,797 handwritten digits seen by a simulated event camera.

Each 8x8 digit is upsampled to 24x24 and placed on N-MNIST's 34x34 sensor, which then moves along
N-MNIST's three saccades (a triangle: (0,0) -> (3.5,7) -> (7,0) -> (0,0) pixels, 105 ms each).
A pixel emits an ON (OFF) event whenever its log intensity has risen (fallen) by its contrast
threshold since its last event; thresholds vary from pixel to pixel, a pixel is silent for a
refractory period after each event, crossing times are interpolated inside each simulation
step, and a few background-noise events are added. The result is deterministic given the seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._atomic import atomic_write
from .events import make_events
from .splits import stratified_split

GENERATOR_VERSION = 1
SENSOR = 34
DIGIT_PIXELS = 24
DIGIT_OFFSET = 1
MARGIN = 9  # canvas padding >= the largest saccade displacement + 1
SACCADE_US = 105_000
SACCADE_CORNERS = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])
DURATION_US = 3 * SACCADE_US
STEP_US = 3_000
CONTRAST = 0.5  # mean log-intensity change per event
CONTRAST_SIGMA = 0.05  # pixel-to-pixel threshold spread
MIN_CONTRAST = 0.1
LOG_EPS = 0.1  # dark level: log(I + eps) keeps black pixels finite
REFRACTORY_US = 300
NOISE_EVENTS_MEAN = 30
TEST_FRACTION = 0.2
CHUNK = 64  # recordings simulated together; small chunks stay in the CPU cache


def saccade_offset(t_us: float) -> tuple[float, float]:
    """(dx, dy) displacement of the scene at time t along the three saccades."""
    k = min(int(t_us // SACCADE_US), 2)
    f = min((t_us - k * SACCADE_US) / SACCADE_US, 1.0)
    a, b = SACCADE_CORNERS[k], SACCADE_CORNERS[k + 1]
    dx, dy = a + (b - a) * f
    return float(dx), float(dy)


def digit_canvases(images: np.ndarray) -> np.ndarray:
    """[N, 8, 8] digits (0..16) -> [N, S + 2M, S + 2M] intensities in [0, 1] with the digit
    upsampled (bilinear) at its place on the padded sensor."""
    import torch

    small = torch.from_numpy(images.astype(np.float32) / 16.0)[:, None]
    big = torch.nn.functional.interpolate(
        small, size=(DIGIT_PIXELS, DIGIT_PIXELS), mode="bilinear", align_corners=False
    )[:, 0].clamp_(0.0, 1.0)
    side = SENSOR + 2 * MARGIN
    canvas = np.zeros((len(images), side, side), dtype=np.float32)
    lo = MARGIN + DIGIT_OFFSET
    canvas[:, lo : lo + DIGIT_PIXELS, lo : lo + DIGIT_PIXELS] = big.numpy()
    return canvas


def sensor_view(canvas: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """What the sensor sees with the scene displaced by (dx, dy): bilinear sampling."""
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = np.float32(dx - ix), np.float32(dy - iy)

    def shifted(sx: int, sy: int) -> np.ndarray:
        return canvas[:, MARGIN - sy : MARGIN - sy + SENSOR, MARGIN - sx : MARGIN - sx + SENSOR]

    top = shifted(ix, iy) * (1 - fx) + shifted(ix + 1, iy) * fx
    bottom = shifted(ix, iy + 1) * (1 - fx) + shifted(ix + 1, iy + 1) * fx
    return top * (1 - fy) + bottom * fy


def _step_events(level_prev, level, ref, thr_on, thr_off, last, t0):
    """Events of one simulation step; updates `ref` and `last` in place.
    Returns (recording, y, x, t, p) columns."""
    d = level - ref
    fire = (d >= thr_on) | (-d >= thr_off)
    if not fire.any():
        return None
    b, y, x = np.nonzero(fire)
    dd = d[b, y, x]
    on = dd > 0
    thr = np.where(on, thr_on[b, y, x], thr_off[b, y, x])
    count = np.floor(np.abs(dd) / thr).astype(np.int64)
    sign = np.where(on, 1.0, -1.0).astype(np.float32)
    start, delta = level_prev[b, y, x], level[b, y, x] - level_prev[b, y, x]
    safe = np.where(np.abs(delta) > 1e-9, delta, 1.0)
    base = ref[b, y, x]
    t_prev = last[b, y, x]
    columns = []
    for j in range(1, int(count.max()) + 1):
        has = count >= j
        crossing = (base + sign * j * thr - start) / safe
        t = t0 + np.clip(crossing, 0.0, 1.0) * STEP_US
        t = np.maximum(t, t_prev + REFRACTORY_US)
        t_prev = np.where(has, t, t_prev)
        columns.append((b[has], y[has], x[has], t[has], on[has]))
    ref[b, y, x] = base + sign * count * thr
    last[b, y, x] = t_prev
    return tuple(np.concatenate(c) for c in zip(*columns))


def simulate(canvas: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Event camera over a chunk of canvases -> (recording index, events) sorted by both."""
    n = len(canvas)
    shape = (n, SENSOR, SENSOR)
    thr_on = np.maximum(rng.normal(CONTRAST, CONTRAST_SIGMA, shape), MIN_CONTRAST)
    thr_off = np.maximum(rng.normal(CONTRAST, CONTRAST_SIGMA, shape), MIN_CONTRAST)
    thr_on, thr_off = thr_on.astype(np.float32), thr_off.astype(np.float32)
    level_prev = np.log(LOG_EPS + sensor_view(canvas, 0.0, 0.0))
    ref = level_prev.copy()
    last = np.full(shape, -1e12)
    parts = []
    for t0 in range(0, DURATION_US, STEP_US):
        level = np.log(LOG_EPS + sensor_view(canvas, *saccade_offset(t0 + STEP_US)))
        step = _step_events(level_prev, level, ref, thr_on, thr_off, last, t0)
        if step is not None:
            parts.append(step)
        level_prev = level
    parts.append(_noise_events(n, rng))
    rec, y, x, t, p = (np.concatenate(c) for c in zip(*parts))
    t = np.minimum(t, DURATION_US - 1).astype(np.int64)
    order = np.lexsort((t, rec))
    return rec[order], make_events(x[order], y[order], t[order], p[order])


def _noise_events(n: int, rng: np.random.Generator):
    counts = rng.poisson(NOISE_EVENTS_MEAN, n)
    total = int(counts.sum())
    rec = np.repeat(np.arange(n), counts)
    return (
        rec,
        rng.integers(0, SENSOR, total),
        rng.integers(0, SENSOR, total),
        rng.uniform(0, DURATION_US, total),
        rng.integers(0, 2, total).astype(bool),
    )


def generate(seed: int = 0, progress: bool = True) -> dict[str, np.ndarray]:
    """All 1,797 recordings: events (concatenated), offsets [N+1], labels, is_test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    canvas = digit_canvases(digits.images)
    rng = np.random.default_rng(seed)
    chunks, counts = [], np.zeros(len(labels), dtype=np.int64)
    starts = range(0, len(labels), CHUNK)
    for start in tqdm(starts, desc="ndigits: simulating events", disable=not progress):
        chunk = canvas[start : start + CHUNK]
        rec, events = simulate(chunk, rng)
        counts[start : start + len(chunk)] = np.bincount(rec, minlength=len(chunk))
        chunks.append(events)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return {
        "events": np.concatenate(chunks),
        "offsets": offsets,
        "labels": labels,
        "is_test": stratified_split(labels, TEST_FRACTION, seed),
    }


def events_path(root: Path, seed: int) -> Path:
    return root / f"ndigits-v{GENERATOR_VERSION}-seed{seed}.npz"


def load_or_generate(root: Path, seed: int = 0, progress: bool = True) -> dict[str, np.ndarray]:
    """The recordings of `seed`, generated into root on first use and read back after."""
    path = events_path(root, seed)
    if path.exists():
        try:
            return _read_npz(path)
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged file is simply generated again
    data = generate(seed, progress)
    ev = data["events"]
    atomic_save_npz(
        path,
        x=ev["x"].astype(np.uint8),
        y=ev["y"].astype(np.uint8),
        t=ev["t"].astype(np.uint32),
        p=ev["p"].astype(np.uint8),
        offsets=data["offsets"],
        labels=data["labels"],
        is_test=data["is_test"],
        meta=np.array(json.dumps({"version": GENERATOR_VERSION, "seed": seed})),
    )
    return data


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        events = make_events(z["x"], z["y"], z["t"], z["p"])
        return {
            "events": events,
            "offsets": z["offsets"],
            "labels": z["labels"],
            "is_test": z["is_test"],
        }


def recordings(data: dict[str, np.ndarray], indices: np.ndarray) -> Iterator[np.ndarray]:
    offsets = data["offsets"]
    for i in indices:
        yield data["events"][offsets[i] : offsets[i + 1]]


def atomic_save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def config_digest(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
