"""A dataset's recordings on disk: what its descriptor's `find` lists, stat'ed, split into
train/test (the release's own split, or a seeded stratified one), and counted.

A partial copy is used as it is; its file count is reported (split_info["files_found"]).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .splits import stratified_split

if TYPE_CHECKING:
    from .descriptor import DatasetInfo

STRATIFIED_TEST_FRACTION = 0.1


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


def sorted_files(folder: Path, suffix: str) -> list[Path]:
    """Files under `folder` ending in `suffix`, walked in sorted order (hidden and __MACOSX
    folders left out)."""
    if not folder.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__MACOSX")))
        found += [Path(dirpath, f) for f in sorted(filenames) if f.endswith(suffix)]
    return found


def class_of(path: Path, root: Path, classes: tuple[str, ...]) -> int | None:
    """Index of the nearest folder above `path` (below root) named like a class."""
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    for parent in path.relative_to(root).parents:
        if parent.name.lower() in lookup:
            return lookup[parent.name.lower()]
    return None


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
    """(recordings of `split`, split_info, folders searched) of a dataset read from files."""
    root = data_dir / info.folder
    if info.official_split:
        other = "test" if split == "train" else "train"
        chosen, searched = info.find(root, split)
        rest, _ = info.find(root, other)
        sizes = {split: len(chosen), other: len(rest)}
        split_info = {"kind": "official", "num_train": sizes["train"], "num_test": sizes["test"]}
        found = len(chosen) + len(rest)
    else:
        every, searched = info.find(root, "all")
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
    root = data_dir / info.folder
    found = {split: info.find(root, split)[0] for split in info.file_splits}
    layout = next((c[0][2] for c in found.values() if c), None)
    files = {c[0]: c[2] for candidates in found.values() for c in candidates}
    return {k: len(v) for k, v in found.items()}, layout, root, list(files.items())
