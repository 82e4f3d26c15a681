"""The files a run writes beside its checkpoints: metrics.json and log.csv, both atomically."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text

LOG_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",  # training-mode (soft) weights, over the epoch's batches
    "hard_train_accuracy",  # eval-mode (hard) weights, on the calibration slice of training data
    "val_accuracy",
    "test_accuracy",
    "soft_hard_gap",  # share of quantized weights whose soft value is > 1% of scale from hard
    "temperature",
    "lr",
    "epoch_seconds",
)


def write_metrics(out_dir: str | os.PathLike, metrics: dict[str, Any]) -> Path:
    path = Path(out_dir) / "metrics.json"
    atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def read_metrics(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(out_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def write_log(out_dir: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(out_dir) / "log.csv"
    atomic_write_text(path, buf.getvalue())
    return path
