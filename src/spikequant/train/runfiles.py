"""The files a run writes beside its checkpoints: metrics.json and log.csv, both atomically."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

LOG_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_accuracy",
    "best_test_accuracy",
    "temperature",
    "lr",
    "epoch_seconds",
)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
