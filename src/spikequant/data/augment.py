"""Frame augmentations used on event datasets (CIFAR10-DVS in particular): random crop with
zero padding, horizontal flip and roll. One draw per sample, the same for all of its T frames.
Random numbers come from torch's generator, which DataLoader seeds per worker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FrameAugment:
    """Random augmentation of one sample's frames [..., H, W], applied when called on them:
    crop, then flip, then roll, each drawn once for all of the sample's frames.

    Args:
        crop_pad: shift by up to +-crop_pad pixels, zero fill (= pad then random crop); the
            vertical and horizontal shifts are drawn separately. 0 (the default): no crop.
        flip: mirror left-right (the W axis) with probability 1/2. False (the default): never.
        roll: circular shift by up to +-roll pixels along H and along W, each drawn separately
            (pixels pushed off one edge come back on the other). 0 (the default): no roll.
    """

    crop_pad: int = 0
    flip: bool = False
    roll: int = 0

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if self.crop_pad:
            frames = random_crop(frames, self.crop_pad)
        if self.flip and bool(torch.randint(0, 2, ()).item()):
            frames = frames.flip(-1)
        if self.roll:
            dy, dx = (int(v) for v in torch.randint(-self.roll, self.roll + 1, (2,)))
            frames = frames.roll(shifts=(dy, dx), dims=(-2, -1))
        return frames

    def as_dict(self) -> dict:
        return {"crop_pad": self.crop_pad, "flip": self.flip, "roll": self.roll}


def random_crop(frames: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad H and W by `pad` zeros on each side, then crop the original size at a random place."""
    h, w = frames.shape[-2:]
    top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    padded = torch.nn.functional.pad(frames, (pad, pad, pad, pad))
    return padded[..., top : top + h, left : left + w]


def make_augment(dataset: str, augment: bool | str | Mapping | None) -> FrameAugment | None:
    """FrameAugment from `augment`: True (the dataset's default, its descriptor's
    default_augment), False/None (none), a mapping {"crop_pad": 4, "flip": True, "roll": 5} or
    the same as text "crop_pad=4,flip,roll=5"."""
    if augment is None or augment is False:
        return None
    if augment is True:
        from .registry import dataset_info

        return FrameAugment(**dataset_info(dataset).default_augment)
    if isinstance(augment, str):
        augment = _parse_text(augment)
    if not isinstance(augment, Mapping):
        raise ValueError(f"augment must be a bool, a mapping or text, not {augment!r}")
    unknown = set(augment) - {"crop_pad", "flip", "roll"}
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; use crop_pad, flip, roll")
    return FrameAugment(
        crop_pad=int(augment.get("crop_pad", 0)),
        flip=bool(augment.get("flip", False)),
        roll=int(augment.get("roll", 0)),
    )


def _parse_text(text: str) -> dict:
    spec: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, _, value = item.partition("=")
        key = {"crop": "crop_pad"}.get(key.strip(), key.strip())
        spec[key] = (
            True
            if not value
            else (value.strip().lower() in ("1", "true", "yes") if key == "flip" else int(value))
        )
    return spec
