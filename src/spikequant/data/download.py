"""Fetching a dataset, only when the user asks (--download): each descriptor's `download`,
which for the benchmarks goes through tonic's dataset classes."""

from __future__ import annotations

from pathlib import Path

from .descriptor import DatasetInfo


def download_with_tonic(info: DatasetInfo, data_dir: Path, split: str) -> None:
    """Fetch `split` of `info` into data_dir (tonic's save_to), the way its descriptor says."""
    info.download(data_dir, split)


def fetch_with_tonic(class_name: str, data_dir: Path, **options) -> None:
    """Let tonic's dataset class `class_name` download and extract into data_dir."""
    import tonic.datasets

    cls = getattr(tonic.datasets, class_name)
    data_dir.mkdir(parents=True, exist_ok=True)
    cls(save_to=str(data_dir), **options)
