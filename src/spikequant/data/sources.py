"""Where each benchmark's recordings are on disk, their labels, and the train/test split.

The folder layouts are those tonic's downloads produce under save_to (= --data-dir), plus the
original releases where they differ:

    NMNIST/Train/<digit>/*.bin, NMNIST/Test/<digit>/*.bin                  (ATIS .bin)
    DVSGesture/ibmGestureTrain/userNN_<light>/<label>.npy, ibmGestureTest   (tonic .npy)
    DVSGesture/**/userNN_<light>.aedat + userNN_<light>_labels.csv          (original, AEDAT 3.1)
    CIFAR10DVS/<class>/*.aedat4   (tonic)   or   CIFAR10DVS/<class>/*.aedat (original, AEDAT 2)
    NCALTECH101/Caltech101/<class>/*.bin                                    (ATIS .bin)

A partial copy is used as it is; its file count is reported (split_info["files_found"]).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats import read_gesture_labels
from .registry import CIFAR10_CLASSES, NCALTECH101_CLASSES, DatasetInfo
from .splits import stratified_split

STRATIFIED_TEST_FRACTION = 0.1
GESTURE_TRAIN_USERS = range(1, 24)  # official split: subjects 1-23 train, 24-29 test


@dataclass(frozen=True)
class Recording:
    """One sample: a file (or a [start, end) time segment of one) with its label."""

    path: str
    label: int
    fmt: str
    relpath: str
    size: int
    mtime_ns: int
    start: int | None = None
    end: int | None = None
    digest: str | None = None  # of the file's content, set when the dataset is indexed

    def cache_key_parts(self) -> tuple:
        if self.digest is None:
            raise ValueError(f"{self.path}: no content digest to key its frames by")
        return (self.digest, self.start, self.end)


# (path, label, format, segment start, segment end): a recording before its file is stat'ed.
Candidate = tuple[Path, int, str, "int | None", "int | None"]


def _recording(candidate: Candidate, root: Path) -> Recording:
    path, label, fmt, start, end = candidate
    stat = path.stat()
    return Recording(
        str(path),
        int(label),
        fmt,
        path.relative_to(root).as_posix(),
        stat.st_size,
        stat.st_mtime_ns,
        start,
        end,
    )


def _sorted_files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__MACOSX")))
        found += [Path(dirpath, f) for f in sorted(filenames) if f.endswith(suffix)]
    return found


def find_nmnist(root: Path, split: str) -> tuple[list[Candidate], list[Path]]:
    folder = root / ("Train" if split == "train" else "Test")
    recs = [
        (p, int(p.parent.name), "atis_bin", None, None)
        for p in _sorted_files(folder, ".bin")
        if p.parent.name.isdigit() and int(p.parent.name) < 10
    ]
    return recs, [folder]


def _gesture_user(name: str) -> int | None:
    match = re.match(r"user(\d+)", name)
    return int(match.group(1)) if match else None


def find_dvsgesture(root: Path, split: str) -> tuple[list[Candidate], list[Path]]:
    folder = root / ("ibmGestureTrain" if split == "train" else "ibmGestureTest")
    recs = [
        (p, int(p.stem), "gesture_npy", None, None)
        for p in _sorted_files(folder, ".npy")
        if p.stem.isdigit() and int(p.stem) < 11 and _gesture_user(p.parent.name) is not None
    ]
    if recs:
        return recs, [folder]
    return _find_gesture_aedat(root, split), [folder, root / "**" / "user*.aedat"]


def _find_gesture_aedat(root: Path, split: str) -> list[Candidate]:
    recs = []
    for path in _sorted_files(root, ".aedat"):
        labels = path.with_name(path.stem + "_labels.csv")
        user = _gesture_user(path.stem)
        if user is None or not labels.exists():
            continue
        if _gesture_split(path, user) != split:
            continue
        for label, start, end in read_gesture_labels(labels):
            recs.append((path, label, "aedat31", start, end))
    return recs


def _gesture_split(path: Path, user: int) -> str:
    """The release's trials_to_train.txt / trials_to_test.txt when present, else the user."""
    for split in ("train", "test"):
        listing = path.parent / f"trials_to_{split}.txt"
        if listing.exists() and path.name in listing.read_text().split():
            return split
    return "train" if user in GESTURE_TRAIN_USERS else "test"


def _class_of(path: Path, root: Path, classes: tuple[str, ...]) -> int | None:
    """Index of the nearest folder above `path` (below root) named like a class."""
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    for parent in path.relative_to(root).parents:
        if parent.name.lower() in lookup:
            return lookup[parent.name.lower()]
    return None


def find_cifar10dvs(root: Path) -> tuple[list[Candidate], list[Path]]:
    for suffix, fmt in ((".aedat4", "aedat4"), (".aedat", "aedat2")):
        recs = []
        for path in _sorted_files(root, suffix):
            label = _class_of(path, root, CIFAR10_CLASSES)
            if label is not None:
                recs.append((path, label, fmt, None, None))
        if recs:
            return recs, [root]
    return [], [root]


def find_ncaltech101(root: Path) -> tuple[list[Candidate], list[Path]]:
    folder = root / "Caltech101" if (root / "Caltech101").is_dir() else root
    known = {name: i for i, name in enumerate(NCALTECH101_CLASSES)}
    recs = []
    for path in _sorted_files(folder, ".bin"):
        if path.name.startswith("annotation") or path.parent.parent != folder:
            continue
        if path.parent.name not in known:
            raise ValueError(
                f"{path.parent}: {path.parent.name!r} is not an N-Caltech101 class; remove "
                "that folder from the dataset"
            )
        recs.append((path, known[path.parent.name], "atis_bin", None, None))
    return recs, [folder]


def stratified_candidates(
    every: list[Candidate], root: Path, split: str, seed: int, test_fraction: float
) -> tuple[list[Candidate], dict]:
    """Seeded stratified split per class, for a dataset without an official one."""
    labels = np.array([c[1] for c in every], dtype=np.int64)
    is_test = stratified_split(labels, test_fraction, seed)
    test_list = "\n".join(c[0].relative_to(root).as_posix() for c, t in zip(every, is_test) if t)
    info = {
        "kind": "stratified",
        "test_fraction": test_fraction,
        "seed": seed,
        "num_train": int((~is_test).sum()),
        "num_test": int(is_test.sum()),
        "test_files_sha1": hashlib.sha1(test_list.encode()).hexdigest(),
    }
    chosen = [c for c, t in zip(every, is_test) if t == (split == "test")]
    return chosen, info


def find_recordings(
    info: DatasetInfo,
    data_dir: Path,
    split: str,
    seed: int = 0,
    test_fraction: float = STRATIFIED_TEST_FRACTION,
) -> tuple[list[Recording], dict, list[Path]]:
    """(recordings of `split`, split_info, folders searched) for a benchmark."""
    root = data_dir / info.tonic_folder
    if info.name in ("nmnist", "dvsgesture"):
        finder = find_nmnist if info.name == "nmnist" else find_dvsgesture
        chosen, searched = finder(root, split)
        other, _ = finder(root, "test" if split == "train" else "train")
        sizes = {split: len(chosen), ("test" if split == "train" else "train"): len(other)}
        split_info = {"kind": "official", "num_train": sizes["train"], "num_test": sizes["test"]}
        found = len(chosen) + len(other)
    else:
        finder = find_cifar10dvs if info.name == "cifar10dvs" else find_ncaltech101
        every, searched = finder(root)
        chosen, split_info = stratified_candidates(every, root, split, seed, test_fraction)
        found = len(every)
    split_info.update(
        dataset=info.name,
        root=str(root),
        files_found=found,
        files_expected=sum(info.expected_files.values()),
        layout=chosen[0][2] if chosen else None,
    )
    return [_recording(c, root) for c in chosen], split_info, searched


def count_recordings(
    info: DatasetInfo, data_dir: Path
) -> tuple[dict[str, int], str | None, Path, list[tuple[Path, str]]]:
    """({"train": n, "test": n} or {"all": n}, layout, dataset folder, [(file, format)] of the
    distinct files) without stat'ing files."""
    root = data_dir / info.tonic_folder
    if info.name in ("nmnist", "dvsgesture"):
        finder = find_nmnist if info.name == "nmnist" else find_dvsgesture
        found = {split: finder(root, split)[0] for split in ("train", "test")}
    else:
        finder = find_cifar10dvs if info.name == "cifar10dvs" else find_ncaltech101
        found = {"all": finder(root)[0]}
    layout = next((c[0][2] for c in found.values() if c), None)
    files = {c[0]: c[2] for candidates in found.values() for c in candidates}
    return {k: len(v) for k, v in found.items()}, layout, root, list(files.items())
