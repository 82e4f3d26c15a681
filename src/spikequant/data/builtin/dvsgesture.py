"""IBM DVS128 Gesture: 11 gestures by 29 subjects under 3 lighting conditions.

Layouts: tonic's preprocessed copy, DVSGesture/ibmGestureTrain/userNN_<light>/<label>.npy (and
ibmGestureTest), or the original release, DVSGesture/**/userNN_<light>.aedat (AEDAT 3.1) with
userNN_<light>_labels.csv giving each gesture's time segment. The release's split: subjects
1-23 train, 24-29 test (its trials_to_train.txt / trials_to_test.txt when present).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..descriptor import DatasetInfo, register_dataset
from ..formats import read_gesture_labels
from ..sources import Candidate, sorted_files

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
GESTURE_TRAIN_USERS = range(1, 24)


class DvsGesture(DatasetInfo):
    def find(self, root: Path, split: str) -> tuple[list[Candidate], list[Path]]:
        folder = root / ("ibmGestureTrain" if split == "train" else "ibmGestureTest")
        recs = [
            (p, int(p.stem), "gesture_npy", None, None)
            for p in sorted_files(folder, ".npy")
            if p.stem.isdigit() and int(p.stem) < 11 and _user(p.parent.name) is not None
        ]
        if recs:
            return recs, [folder]
        return _find_aedat(root, split), [folder, root / "**" / "user*.aedat"]


def _user(name: str) -> int | None:
    match = re.match(r"user(\d+)", name)
    return int(match.group(1)) if match else None


def _find_aedat(root: Path, split: str) -> list[Candidate]:
    recs = []
    for path in sorted_files(root, ".aedat"):
        labels = path.with_name(path.stem + "_labels.csv")
        user = _user(path.stem)
        if user is None or not labels.exists():
            continue
        if _split_of(path, user) != split:
            continue
        for label, start, end in read_gesture_labels(labels):
            recs.append((path, label, "aedat31", start, end))
    return recs


def _split_of(path: Path, user: int) -> str:
    """The release's trials_to_train.txt / trials_to_test.txt when present, else the user."""
    for split in ("train", "test"):
        listing = path.parent / f"trials_to_{split}.txt"
        if listing.exists() and path.name in listing.read_text().split():
            return split
    return "train" if user in GESTURE_TRAIN_USERS else "test"


DVSGESTURE = register_dataset(
    DvsGesture(
        name="dvsgesture",
        title="IBM DVS128 Gesture (11 gestures, 29 subjects, 3 lighting conditions)",
        classes=GESTURE_CLASSES,
        sensor_size=(128, 128, 2),
        default_time_steps=20,
        folder="DVSGesture",
        how_to_get="Pass --download (tonic's preprocessed copy, into "
        "D/DVSGesture/ibmGestureTrain and ibmGestureTest), or extract the original "
        "DvsGesture.tar.gz from https://research.ibm.com/interactive/dvsgesture/ into "
        "D/DVSGesture/ (its *.aedat files with their *_labels.csv and trials_to_train.txt).",
        split="official train/test (subjects 1-23 / 24-29)",
        official_split=True,
        expected_files={"train": 1077, "test": 264},
        # No flip: "left hand wave" mirrored is "right hand wave".
        default_augment={"crop_pad": 8},
        tonic_class="DVSGesture",
    )
)
