"""Reporting an epoch as it ends: one progress line, and TensorBoard scalars if asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..quant.registry import is_float_quantizer
from .config import TrainConfig


def open_tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from err
    return SummaryWriter(str(out / "tensorboard"))


def log_epoch(row: dict[str, Any], cfg: TrainConfig, tb) -> None:
    if cfg.progress:
        parts = [
            f"epoch {row['epoch']}/{cfg.epochs}",
            f"loss {row['train_loss']:.4f}",
            f"train {row['train_accuracy']:.4f}",
        ]
        if row.get("hard_train_accuracy") is not None and not is_float_quantizer(cfg.quantizer):
            parts.append(f"train(hard) {row['hard_train_accuracy']:.4f}")
        if row.get("val_accuracy") is not None:
            parts.append(f"val {row['val_accuracy']:.4f}")
        parts.append(f"test {row['test_accuracy']:.4f}")
        if row.get("temperature") is not None:
            parts.append(f"T {row['temperature']:g}")
        if row.get("soft_hard_gap") is not None:
            parts.append(f"not hard {100 * row['soft_hard_gap']:.1f}%")
        parts.append(f"{row['epoch_seconds']:.1f}s")
        tqdm.write("  ".join(parts))
    if tb is not None:
        for key in ("train_loss", "train_accuracy", "hard_train_accuracy", "val_accuracy",
                    "test_accuracy", "soft_hard_gap", "temperature", "lr"):
            if row.get(key) is not None:
                tb.add_scalar(key, row[key], row["epoch"])
        tb.flush()

