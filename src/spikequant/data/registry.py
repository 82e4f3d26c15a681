"""What each dataset is: classes, sensor, frame shape, default time steps, where it lives."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

NMNIST_CLASSES = tuple(str(d) for d in range(10))
GESTURE_CLASSES = (
    "hand clapping",
    "right hand wave",
    "left hand wave",
    "right arm clockwise",
    "right arm counter-clockwise",
    "left arm clockwise",
    "left arm counter-clockwise",
    "arm roll",
    "air drums",
    "air guitar",
    "other gestures",
)
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
# The 101 folder names of N-Caltech101 in the sorted order its folders list in (labels follow it).
# N-Caltech101 has Faces_easy but not Caltech101's duplicate "Faces" class.
NCALTECH101_CLASSES = tuple(
    sorted(
        """BACKGROUND_Google Faces_easy Leopards Motorbikes accordion airplanes anchor ant barrel
        bass beaver binocular bonsai brain brontosaurus buddha butterfly camera cannon car_side
        ceiling_fan cellphone chair chandelier cougar_body cougar_face crab crayfish crocodile
        crocodile_head cup dalmatian dollar_bill dolphin dragonfly electric_guitar elephant emu
        euphonium ewer ferry flamingo flamingo_head garfield gerenuk gramophone grand_piano
        hawksbill headphone hedgehog helicopter ibis inline_skate joshua_tree kangaroo ketch lamp
        laptop llama lobster lotus mandolin mayfly menorah metronome minaret nautilus octopus okapi
        pagoda panda pigeon pizza platypus pyramid revolver rhino rooster saxophone schooner
        scissors scorpion sea_horse snoopy soccer_ball stapler starfish stegosaurus stop_sign
        strawberry sunflower tick trilobite umbrella watch water_lilly wheelchair wild_cat
        windsor_chair wrench yin_yang""".split()
    )
)


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one dataset. `sensor_size` is (W, H, P) as tonic writes it; `frame_shape` is
    (C, H, W), what the network sees after optional resizing."""

    name: str
    title: str
    classes: tuple[str, ...]
    sensor_size: tuple[int, int, int]
    frame_shape: tuple[int, int, int]
    default_time_steps: int
    tonic_folder: str
    how_to_get: str
    split: str
    expected_files: dict[str, int] = field(default_factory=dict)
    resize: tuple[int, int] | None = None  # (H, W) frames are resized to, by default
    variable_size: bool = False  # recordings have their own extent (N-Caltech101)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: dict[str, DatasetInfo] = {
    "ndigits": DatasetInfo(
        name="ndigits",
        title="N-Digits (offline): scikit-learn's 1,797 handwritten digits seen by a simulated "
        "event camera along N-MNIST's saccades",
        classes=NMNIST_CLASSES,
        sensor_size=(34, 34, 2),
        frame_shape=(2, 34, 34),
        default_time_steps=8,
        tonic_folder="NDIGITS",
        how_to_get="Nothing to get: generated on first use in a few seconds (no download).",
        split="seeded stratified 80/20 train/test",
        expected_files={"all": 1797},
    ),
    "nmnist": DatasetInfo(
        name="nmnist",
        title="N-MNIST (ATIS sensor, three saccades over MNIST digits)",
        classes=NMNIST_CLASSES,
        sensor_size=(34, 34, 2),
        frame_shape=(2, 34, 34),
        default_time_steps=10,
        tonic_folder="NMNIST",
        how_to_get="Pass --download (fetched through tonic), or get Train.zip and Test.zip from "
        "https://www.garrickorchard.com/datasets/n-mnist and extract them so that "
        "D/NMNIST/Train/<digit>/*.bin and D/NMNIST/Test/<digit>/*.bin exist.",
        split="official train/test",
        expected_files={"train": 60000, "test": 10000},
    ),
    "dvsgesture": DatasetInfo(
        name="dvsgesture",
        title="IBM DVS128 Gesture (11 gestures, 29 subjects, 3 lighting conditions)",
        classes=GESTURE_CLASSES,
        sensor_size=(128, 128, 2),
        frame_shape=(2, 128, 128),
        default_time_steps=20,
        tonic_folder="DVSGesture",
        how_to_get="Pass --download (tonic's preprocessed copy, into "
        "D/DVSGesture/ibmGestureTrain and ibmGestureTest), or extract the original "
        "DvsGesture.tar.gz from https://research.ibm.com/interactive/dvsgesture/ into "
        "D/DVSGesture/ (its *.aedat files with their *_labels.csv and trials_to_train.txt).",
        split="official train/test (subjects 1-23 / 24-29)",
        expected_files={"train": 1077, "test": 264},
    ),
    "cifar10dvs": DatasetInfo(
        name="cifar10dvs",
        title="CIFAR10-DVS (CIFAR-10 images moved in front of a DVS128)",
        classes=CIFAR10_CLASSES,
        sensor_size=(128, 128, 2),
        frame_shape=(2, 128, 128),
        default_time_steps=20,
        tonic_folder="CIFAR10DVS",
        how_to_get="Pass --download (tonic's copy: one folder of .aedat4 files a class), or "
        "extract the original per-class zips from "
        "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671 so that "
        "D/CIFAR10DVS/<class>/*.aedat exists.",
        split="seeded stratified 90/10 per class",
        expected_files={"all": 10000},
    ),
    "ncaltech101": DatasetInfo(
        name="ncaltech101",
        title="N-Caltech101 (ATIS sensor, saccades over Caltech101 images; sizes vary)",
        classes=NCALTECH101_CLASSES,
        sensor_size=(304, 240, 2),
        frame_shape=(2, 48, 48),
        default_time_steps=10,
        tonic_folder="NCALTECH101",
        how_to_get="Pass --download (fetched through tonic), or get Caltech101.zip from "
        "https://www.garrickorchard.com/datasets/n-caltech101 and extract it so that "
        "D/NCALTECH101/Caltech101/<class>/*.bin exists.",
        split="seeded stratified 90/10 per class",
        expected_files={"all": 8709},
        resize=(48, 48),
        variable_size=True,
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The DatasetInfo of `name` (case-insensitive); ValueError naming the valid names."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


def default_data_dir() -> Path:
    """$SPIKEQUANT_DATA if set, else ~/.cache/spikequant/data (honouring $XDG_CACHE_HOME)."""
    env = os.environ.get("SPIKEQUANT_DATA")
    if env:
        return Path(env).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache_home).expanduser() / "spikequant" / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()
