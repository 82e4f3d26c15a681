"""CIFAR10-DVS: CIFAR-10 images moved in front of a DVS128.

Layouts: tonic's copy, CIFAR10DVS/<class>/*.aedat4, or the original per-class zips extracted,
CIFAR10DVS/<class>/*.aedat (AEDAT 2.0). No official split: seeded stratified 90/10 per class.
"""

from __future__ import annotations

from pathlib import Path

from ..descriptor import DatasetInfo, register_dataset
from ..sources import Candidate, class_of, sorted_files

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class Cifar10Dvs(DatasetInfo):
    def find(self, root: Path, split: str) -> tuple[list[Candidate], list[Path]]:
        for suffix, fmt in ((".aedat4", "aedat4"), (".aedat", "aedat2")):
            recs = []
            for path in sorted_files(root, suffix):
                label = class_of(path, root, CIFAR10_CLASSES)
                if label is not None:
                    recs.append((path, label, fmt, None, None))
            if recs:
                return recs, [root]
        return [], [root]


CIFAR10DVS = register_dataset(
    Cifar10Dvs(
        name="cifar10dvs",
        title="CIFAR10-DVS (CIFAR-10 images moved in front of a DVS128)",
        classes=CIFAR10_CLASSES,
        sensor_size=(128, 128, 2),
        default_time_steps=20,
        folder="CIFAR10DVS",
        how_to_get="Pass --download (tonic's copy: one folder of .aedat4 files a class), or "
        "extract the original per-class zips from "
        "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671 so that "
        "D/CIFAR10DVS/<class>/*.aedat exists.",
        split="seeded stratified 90/10 per class",
        expected_files={"all": 10000},
        default_augment={"crop_pad": 8, "flip": True, "roll": 0},
        tonic_class="CIFAR10DVS",
    )
)
