"""A learnable N-MNIST-format folder of 1,400 train / 349 test recordings, made offline.

scikit-learn's handwritten digits are upscaled to MNIST's 28x28, placed on N-MNIST's 34x34
sensor (each recording shifted by up to one pixel, as N-MNIST's digits are not all centred
alike) and seen by the event-camera simulator of the offline `ndigits` dataset
(spikequant.data.ndigits: N-MNIST's three saccades, per-pixel contrast thresholds,
refractory period, background noise), with its own seed. The recordings are written as ATIS
.bin files where tonic's N-MNIST download puts them, so `--dataset nmnist --data-dir OUT`
trains the study's N-MNIST network on them:

    python benchmarks/make_nmnist_digits.py --out data/nmnist-digits
    spikequant train --dataset nmnist --data-dir data/nmnist-digits --epochs 3

Train and test hold different digit images (a stratified, seeded split of the 1,797); the 48
left over are not written. It differs from `ndigits` in the digit size (28 against 24 pixels),
the placement jitter, the simulator's seed, the split and its sizes (1,400 / 349 against
1,438 / 359), and in going through the ATIS file reader and the N-MNIST network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_epoch import write_atis_bin  # noqa: E402

TRAIN, TEST = 1400, 349
DIGIT_PIXELS = 28
JITTER = 1  # pixels the digit's placement varies by, each way
SIMULATION_SEED = 7  # ndigits uses 0
CHUNK = 64


def distorted(big: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Each [28, 28] digit under its own random affine map (rotation up to 25 degrees, scale
    0.75-1.05, shear up to 0.3, all times `strength`), as handwriting varies more than
    scikit-learn's 8x8 digits show."""
    n = len(big)
    angle = np.deg2rad(25.0 * strength) * rng.uniform(-1, 1, n)
    scale = 1.0 + strength * rng.uniform(-0.25, 0.05, n)
    shear = 0.3 * strength * rng.uniform(-1, 1, n)
    cos, sin = np.cos(angle), np.sin(angle)
    # affine_grid maps output to input coordinates: the inverse of the wanted map
    forward = np.stack([np.stack([cos * scale, -sin * scale + shear * cos * scale], -1),
                        np.stack([sin * scale, cos * scale + shear * sin * scale], -1)], 1)
    theta = np.concatenate([np.linalg.inv(forward), np.zeros((n, 2, 1))], axis=2)
    grid = torch.nn.functional.affine_grid(torch.from_numpy(theta).float(),
                                           [n, 1, DIGIT_PIXELS, DIGIT_PIXELS],
                                           align_corners=False)
    return torch.nn.functional.grid_sample(big[:, None], grid, align_corners=False)[:, 0]


def canvases(images: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """[N, 8, 8] digits (0..16) -> the simulator's padded canvases, digit at 28x28."""
    from spikequant.data import ndigits

    small = torch.from_numpy(images.astype(np.float32) / 16.0)[:, None]
    big = torch.nn.functional.interpolate(
        small, size=(DIGIT_PIXELS, DIGIT_PIXELS), mode="bilinear", align_corners=False
    )[:, 0]
    if strength > 0:
        big = distorted(big, strength, rng)
    big = big.clamp_(0.0, 1.0).numpy()
    side = ndigits.SENSOR + 2 * ndigits.MARGIN
    canvas = np.zeros((len(images), side, side), dtype=np.float32)
    shifts = rng.integers(-JITTER, JITTER + 1, size=(len(images), 2))
    for i, (dy, dx) in enumerate(shifts):
        top, left = ndigits.MARGIN + dy, ndigits.MARGIN + dx
        canvas[i, top : top + DIGIT_PIXELS, left : left + DIGIT_PIXELS] = big[i]
    return canvas


def with_noise(events: np.ndarray, mean: float, rng: np.random.Generator) -> np.ndarray:
    """`events` and about `mean` more background events (uniform over the sensor and the
    recording), in time order."""
    from spikequant.data import ndigits
    from spikequant.data.events import make_events

    count = int(rng.poisson(mean)) if mean > 0 else 0
    if count == 0:
        return events
    noise = make_events(rng.integers(0, ndigits.SENSOR, count),
                        rng.integers(0, ndigits.SENSOR, count),
                        rng.integers(0, ndigits.DURATION_US, count),
                        rng.integers(0, 2, count))
    merged = np.concatenate([events, noise.astype(events.dtype)])
    return merged[np.argsort(merged["t"], kind="stable")]


def apportion(sizes: np.ndarray, total: int) -> np.ndarray:
    """Whole shares of `total` in proportion to `sizes` (largest remainder), summing to it."""
    exact = sizes * total / sizes.sum()
    shares = np.floor(exact).astype(np.int64)
    shares[np.argsort(shares - exact)[: total - shares.sum()]] += 1
    return shares


def split_indices(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified: each class gives its share of TRAIN and of TEST, the rest is left out."""
    classes, sizes = np.unique(labels, return_counts=True)
    n_train, n_test = apportion(sizes, TRAIN), apportion(sizes, TEST)
    train, test = [], []
    for c, a, b in zip(classes, n_train, n_test):
        members = rng.permutation(np.flatnonzero(labels == c))
        train.append(members[:a])
        test.append(members[a : a + b])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def make_folder(out: Path, seed: int = SIMULATION_SEED, distort: float = 0.0,
                noise: float = 0.0) -> dict[str, int]:
    """Write OUT/NMNIST/{Train,Test}/<digit>/NNNNN.bin; returns the recordings per split."""
    from sklearn.datasets import load_digits

    from spikequant.data import ndigits

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = split_indices(labels, rng)
    counts = {}
    for split, idx in (("Train", train_idx), ("Test", test_idx)):
        canvas = canvases(digits.images[idx], rng, distort)
        for start in range(0, len(idx), CHUNK):
            rec, events = ndigits.simulate(canvas[start : start + CHUNK], rng)
            bounds = np.searchsorted(rec, np.arange(len(canvas[start : start + CHUNK]) + 1))
            for j in range(len(bounds) - 1):
                ev = with_noise(events[bounds[j] : bounds[j + 1]], noise, rng)
                i = idx[start + j]
                write_atis_bin(out / "NMNIST" / split / str(labels[i]) / f"{i:05d}.bin",
                               ev["x"].astype(np.int64), ev["y"].astype(np.int64),
                               ev["t"].astype(np.int64), ev["p"].astype(np.int64))
        counts[split] = len(idx)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a learnable 1,400 / 349-recording "
                                "N-MNIST-format folder (scikit-learn digits through the "
                                "ndigits event-camera simulator) for --dataset nmnist.")
    p.add_argument("--out", required=True, help="data directory (NMNIST/ is written in it)")
    p.add_argument("--seed", type=int, default=SIMULATION_SEED,
                   help="seed of the split, the placement and the simulator")
    p.add_argument("--distort", type=float, default=0.0,
                   help="strength of each digit's random affine distortion (0: none, 1: "
                        "rotation up to 25 degrees, scale 0.75-1.05, shear up to 0.3)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="mean number of extra background events a recording")
    args = p.parse_args(argv)
    root = Path(args.out)
    if (root / "NMNIST").exists():
        print(f"{root / 'NMNIST'} exists already; remove it or choose another --out",
              file=sys.stderr)
        return 2
    counts = make_folder(root, args.seed, args.distort, args.noise)
    print(f"wrote {counts['Train']} train and {counts['Test']} test recordings "
          f"to {root / 'NMNIST'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
