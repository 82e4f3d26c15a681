"""A dataset as one descriptor, and the registry of descriptors by name.

A descriptor is an instance of a DatasetInfo subclass: its facts (classes, sensor, frames, default
time steps, split, how to get it, default augmentation) are fields, its behaviour (which files
under its folder are samples and their labels, how a file decodes to events, how it is
downloaded) are methods. `register_dataset` makes it known by name; everything else in
spikequant (get_dataset, `spikequant datasets`, the network registry, training) reads datasets
only through `dataset_info`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..registry import Registry
from .formats import read_events
from .sources import STRATIFIED_TEST_FRACTION, Candidate

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .augment import FrameAugment
    from .datasets import FrameSpec
    from .status import DatasetStatus


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset. `sensor_size` is (W, H, P) as tonic writes it; `frame_shape` (C, H, W) is what
    the network sees (the sensor, or `resize` when set).

    Subclasses implement `find`; `read` decodes the formats of spikequant.data.formats unless
    overridden, `download` goes through tonic's class `tonic_class` when one is named.

    Args:
        name: the name it is registered and looked up under (lower-case letters, digits and
            underscores; lookups ignore case, '-' and '_').
        title: the dataset's full name in words, for `spikequant datasets` and messages.
        classes: the class names; a recording's label is an index into them.
        sensor_size: (W, H, P) as tonic writes it; every event address must lie on it.
        default_time_steps: the frames a sample when get_dataset is given no time_steps.
        folder: the dataset's folder under the data directory (tonic's save_to); `find` is
            given data directory / folder.
        how_to_get: how to get the files, in words; shown when they are missing.
        split: the split, in words, for `spikequant datasets`.
        official_split: `find` is asked for "train" and "test" (the release's own split);
            otherwise (False, the default) for "all", and spikequant splits them seeded and
            stratified per class (test_fraction of each class to test, unless get_dataset is
            given another).
        test_fraction: the share of each class that goes to test without an official split
            (default 0.1).
        expected_files: the recordings a full copy has, per split `find` is asked for, e.g.
            {"train": 60000, "test": 10000}; fewer found is reported as a partial copy.
            Empty (the default): none expected.
        resize: the (H, W) frames are resized to by default; None (the default): the sensor's.
        variable_size: recordings have their own extent (N-Caltech101): each is shifted to
            the origin and its own extent resized to the frame size. False (the default): the
            sensor's extent is resized.
        default_augment: what augment=True means, as FrameAugment's keyword arguments, e.g.
            {"crop_pad": 2}; empty (the default): no augmentation.
        tonic_class: the name of the tonic.datasets class that downloads it; None (the
            default): `download` raises FileNotFoundError with `how_to_get`.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    sensor_size: tuple[int, int, int]
    default_time_steps: int
    folder: str  # under the data directory (tonic's save_to)
    how_to_get: str
    split: str  # the split, in words, for `spikequant datasets`
    official_split: bool = False
    test_fraction: float = STRATIFIED_TEST_FRACTION  # without an official split
    expected_files: dict[str, int] = field(default_factory=dict)  # per find() split
    resize: tuple[int, int] | None = None  # (H, W) frames are resized to, by default
    variable_size: bool = False  # recordings have their own extent (N-Caltech101)
    default_augment: Mapping[str, Any] = field(default_factory=dict)  # what augment=True means
    tonic_class: str | None = None  # tonic.datasets class that downloads it

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        height, width = self.resize or (self.sensor_size[1], self.sensor_size[0])
        return (self.sensor_size[2], height, width)

    def time_steps(self, given: int | None = None) -> int:
        """The frames a sample: `given`, else the dataset's default."""
        return int(given) if given else self.default_time_steps

    @property
    def file_splits(self) -> tuple[str, ...]:
        """The splits `find` is asked for."""
        return ("train", "test") if self.official_split else ("all",)

    def find(self, root: Path, split: str) -> tuple[list[Candidate], list[Path]]:
        """(recordings of `split` as (path, label, format, start, end), folders searched) under
        root = data directory / folder, in a stable order."""
        raise NotImplementedError(f"dataset {self.name!r} does not say where its files are")

    def read(self, path: str, fmt: str) -> np.ndarray:
        """The events (spikequant.data.events.EVENT_DTYPE) of the file `path` in format `fmt`."""
        return read_events(path, fmt)

    def download(self, data_dir: Path, split: str) -> None:
        """Fetch `split` into data_dir; a dataset without a tonic class explains how to get it."""
        from .download import fetch_with_tonic

        if self.tonic_class is None:
            raise FileNotFoundError(f"{self.title} cannot be downloaded: {self.how_to_get}")
        train = {"train": split == "train"} if self.official_split else {}
        fetch_with_tonic(self.tonic_class, data_dir, **train)

    def open(
        self, root: Path, split: str, spec: FrameSpec, augment: FrameAugment | None,
        options: Mapping[str, Any], *, download: bool, skip_bad: bool, cache: bool,
        progress: bool,
    ) -> Dataset:
        """The torch Dataset of `split` (what get_dataset returns): the files `find` lists,
        decoded with `read`, turned into frames through the on-disk cache."""
        from .datasets import open_recordings

        return open_recordings(
            self, root, split, spec, augment, options,
            download=download, skip_bad=skip_bad, cache=cache, progress=progress,
        )

    def status(self, data_dir: Path, check: bool) -> DatasetStatus:
        """Whether the dataset is under data_dir (`spikequant datasets`)."""
        from .status import files_status

        return files_status(self, data_dir, check)


Descriptor = TypeVar("Descriptor", bound=DatasetInfo)
# by name, in registration order
DATASETS: Registry[DatasetInfo] = Registry(
    "dataset",
    "register one: spikequant.data.register_dataset(DatasetInfo subclass instance), imported "
    "with --plugin MODULE or installed as a spikequant.plugins entry point",
)


def register_dataset(info: Descriptor) -> Descriptor:
    """Make `info` known by its name (lookups ignore case, '-' and '_')."""
    if not isinstance(info, DatasetInfo):
        raise TypeError(f"register_dataset takes a DatasetInfo, not {type(info).__name__}")
    return DATASETS.register(info.name, info, builtin=type(info).__module__.startswith(
        "spikequant."))


def unregister_dataset(name: str) -> DatasetInfo:
    """Forget the dataset `name` (a test's own dataset, after the test); returns it."""
    info = dataset_info(name)
    DATASETS.unregister(info.name)
    return info


def dataset_info(name: str) -> DatasetInfo:
    """The descriptor of `name` (any spelling: case, '-' and '_' are ignored); an
    UnknownComponent (a ValueError) naming the valid names otherwise."""
    return DATASETS.get(name)
