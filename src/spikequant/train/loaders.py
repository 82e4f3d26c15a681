"""The data loaders of a run: training, validation (carved from the training data), test, and
the fixed calibration slice of the training data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from .config import TrainConfig
from .distributed import DistContext
from .splits import calibration_slice, carve_validation
from .state import EpochShuffleSampler, ShardSampler


def time_major_batch(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate (frames [T, ...], label) samples straight into the networks' [T, B, ...] layout:
    one copy a batch instead of stacking [B, T, ...] and transposing it again."""
    frames = torch.stack([frames for frames, _ in samples], dim=1)
    return frames, torch.tensor([int(label) for _, label in samples], dtype=torch.long)


@dataclass
class Loaders:
    train: DataLoader  # batches [T, B, ...] (time_major_batch); the others [B, T, ...]
    val: DataLoader | None
    test: DataLoader
    calibration: DataLoader | None  # the same samples on every rank
    split_info: dict[str, Any]


def make_loaders(cfg: TrainConfig, ctx: DistContext) -> Loaders:
    from ..data import get_dataset
    from ..data.datasets import skipped_summary

    common = dict(
        data_dir=cfg.data_dir,
        time_steps=cfg.time_steps,
        download=cfg.download,
        skip_bad=cfg.skip_bad,
        split_by=cfg.split_by,
        progress=cfg.progress and ctx.is_main,
    )
    train_full = get_dataset(cfg.dataset, "train", augment=cfg.augment, **common)
    # validation and calibration see the training recordings as they are, not augmented
    plain = get_dataset(cfg.dataset, "train", **common) if cfg.augment else train_full
    test_set = get_dataset(cfg.dataset, "test", **common)
    train_idx, val_idx = carve_validation(train_full.targets, cfg.val_fraction, cfg.val_seed)
    train_set = Subset(train_full, train_idx) if val_idx else train_full
    calib_idx = calibration_slice(train_idx, cfg.calibration_samples, cfg.val_seed)

    pin = cfg.device.startswith("cuda")
    options = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers, pin_memory=pin)
    train_loader = DataLoader(
        train_set,
        sampler=EpochShuffleSampler(len(train_set), cfg.seed, ctx.rank, ctx.world_size),
        drop_last=False,
        collate_fn=time_major_batch,
        **options,
    )
    # Each DataLoader pass draws a seed from its generator; the evaluation loaders have their
    # own, so how often a run is evaluated never changes the training's random numbers
    # (dropout, augmentation) and so its trained weights.
    def evaluation_loader(dataset, sampler=None) -> DataLoader:
        generator = torch.Generator().manual_seed(cfg.val_seed)
        return DataLoader(dataset, sampler=sampler, generator=generator, **options)

    val_loader = None
    if val_idx:
        val_set = Subset(plain, val_idx)
        val_loader = evaluation_loader(val_set, ShardSampler(len(val_set), ctx.rank,
                                                             ctx.world_size))
    calibration = evaluation_loader(Subset(plain, calib_idx)) if calib_idx else None
    test_loader = evaluation_loader(
        test_set, ShardSampler(len(test_set), ctx.rank, ctx.world_size))
    split_info = dict(getattr(train_full, "split_info", {}) or {})
    split_info.update(
        train_size=len(train_set),
        test_size=len(test_set),
        validation={
            "carved_from": "train",
            "kind": "stratified",
            "fraction": cfg.val_fraction,
            "seed": cfg.val_seed,
            "size": len(val_idx),
        },
        calibration_size=len(calib_idx),
        **skipped_summary(train=train_full, test=test_set),
    )
    return Loaders(train_loader, val_loader, test_loader, calibration, split_info)
