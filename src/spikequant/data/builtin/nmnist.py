"""N-MNIST: MNIST digits seen by an ATIS sensor moved along three saccades.

Layout (tonic's download and the original release): NMNIST/Train/<digit>/*.bin and
NMNIST/Test/<digit>/*.bin, ATIS .bin files; the release's train/test split.
"""

from __future__ import annotations

from pathlib import Path

from ..descriptor import DatasetInfo, register_dataset
from ..sources import Candidate, sorted_files

DIGIT_CLASSES = tuple(str(d) for d in range(10))


class NMnist(DatasetInfo):
    def find(self, root: Path, split: str) -> tuple[list[Candidate], list[Path]]:
        folder = root / ("Train" if split == "train" else "Test")
        recs = [
            (p, int(p.parent.name), "atis_bin", None, None)
            for p in sorted_files(folder, ".bin")
            if p.parent.name.isdigit() and int(p.parent.name) < 10
        ]
        return recs, [folder]


NMNIST = register_dataset(
    NMnist(
        name="nmnist",
        title="N-MNIST (ATIS sensor, three saccades over MNIST digits)",
        classes=DIGIT_CLASSES,
        sensor_size=(34, 34, 2),
        default_time_steps=10,
        folder="NMNIST",
        how_to_get="Pass --download (fetched through tonic), or get Train.zip and Test.zip from "
        "https://www.garrickorchard.com/datasets/n-mnist and extract them so that "
        "D/NMNIST/Train/<digit>/*.bin and D/NMNIST/Test/<digit>/*.bin exist.",
        split="official train/test",
        official_split=True,
        expected_files={"train": 60000, "test": 10000},
        # No flip: a mirrored digit is another symbol.
        default_augment={"crop_pad": 2},
        tonic_class="NMNIST",
    )
)
