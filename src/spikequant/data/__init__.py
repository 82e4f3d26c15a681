"""Datasets: the offline `ndigits` and the four neuromorphic benchmarks (N-MNIST, DVS128
Gesture, CIFAR10-DVS, N-Caltech101), read from tonic's on-disk layouts, turned into frames
[T, 2, H, W] of event counts and cached on disk.

    from spikequant.data import get_dataset
    train = get_dataset("nmnist", "train", data_dir="~/data", time_steps=10)
    frames, label = train[0]          # float32 [10, 2, 34, 34], int

Each dataset is one descriptor (a DatasetInfo subclass, data/builtin/), registered by name with
register_dataset; docs/tutorials/add-a-dataset.md shows how to add one.
"""

from .augment import FrameAugment
from .builtin.ndigits import NDigitsDataset
from .datasets import EventFrameDataset, PartialDatasetWarning, get_dataset
from .events import EVENT_DTYPE, CorruptEventFile, EventsOutsideSensor
from .formats import read_events
from .frames import denoise_events, events_to_frames, resize_events
from .registry import (
    DATASETS,
    DatasetInfo,
    dataset_info,
    default_data_dir,
    register_dataset,
    unregister_dataset,
)
from .status import DatasetStatus, dataset_status

__all__ = [
    "DATASETS",
    "EVENT_DTYPE",
    "CorruptEventFile",
    "DatasetInfo",
    "DatasetStatus",
    "EventFrameDataset",
    "EventsOutsideSensor",
    "FrameAugment",
    "NDigitsDataset",
    "PartialDatasetWarning",
    "dataset_info",
    "dataset_status",
    "default_data_dir",
    "denoise_events",
    "events_to_frames",
    "get_dataset",
    "read_events",
    "register_dataset",
    "resize_events",
    "unregister_dataset",
]
