"""Fetching a benchmark through tonic's dataset classes, only when the user asks (--download)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from .registry import DatasetInfo

TONIC_CLASSES = {
    "nmnist": "NMNIST",
    "dvsgesture": "DVSGesture",
    "cifar10dvs": "CIFAR10DVS",
    "ncaltech101": "NCALTECH101",
}


def download_with_tonic(info: DatasetInfo, data_dir: Path, split: str) -> None:
    """Let tonic download and extract `info` into data_dir (its save_to)."""
    import tonic.datasets

    cls = getattr(tonic.datasets, TONIC_CLASSES[info.name])
    data_dir.mkdir(parents=True, exist_ok=True)
    if info.name in ("nmnist", "dvsgesture"):
        cls(save_to=str(data_dir), train=(split == "train"))
    else:
        cls(save_to=str(data_dir))
    if info.name == "ncaltech101":
        _extract_inner_caltech_zip(data_dir / info.tonic_folder)


def _extract_inner_caltech_zip(root: Path) -> None:
    """tonic's N-Caltech101 archive holds Caltech101.zip, which tonic leaves packed."""
    inner = root / "Caltech101.zip"
    if inner.exists() and not (root / "Caltech101").is_dir():
        with zipfile.ZipFile(inner) as archive:
            archive.extractall(root)
