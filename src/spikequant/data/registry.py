"""The datasets by name: every registered descriptor (spikequant's own, from data/builtin/, and
any registered later with register_dataset), and where their files live on this machine."""

from __future__ import annotations

import os
from pathlib import Path

from .. import environment
from .builtin.cifar10dvs import CIFAR10_CLASSES
from .builtin.dvsgesture import GESTURE_CLASSES
from .builtin.ncaltech101 import NCALTECH101_CLASSES
from .builtin.nmnist import DIGIT_CLASSES as NMNIST_CLASSES
from .descriptor import DATASETS, DatasetInfo, dataset_info, register_dataset, unregister_dataset


def default_data_dir() -> Path:
    """$SPIKEQUANT_DATA if set, else ~/.cache/spikequant/data (honouring $XDG_CACHE_HOME):
    spikequant.environment.default_data_dir."""
    return environment.default_data_dir()


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "GESTURE_CLASSES",
    "NCALTECH101_CLASSES",
    "NMNIST_CLASSES",
    "DatasetInfo",
    "dataset_info",
    "default_data_dir",
    "register_dataset",
    "resolve_data_dir",
    "unregister_dataset",
]
