"""Whether each dataset is on this machine: what `spikequant datasets` prints."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .descriptor import DatasetInfo
from .formats import quick_check
from .registry import dataset_info, resolve_data_dir
from .sources import count_recordings

LAYOUT_NAMES = {
    "atis_bin": "ATIS .bin",
    "gesture_npy": "tonic .npy",
    "aedat31": "original AEDAT 3.1 + labels CSV",
    "aedat4": "tonic .aedat4",
    "aedat2": "original AEDAT 2.0",
}


@dataclass
class DatasetStatus:
    info: DatasetInfo
    found: bool
    where: str
    counts: dict[str, int] = field(default_factory=dict)
    layout: str | None = None
    note: str = ""
    checked: bool = False  # whether every file's structure was checked
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        """Every expected recording is there and, when checked, no file is bad."""
        enough = self.total >= sum(self.info.expected_files.values())
        return self.found and enough and not self.bad_files


def dataset_status(
    name: str, data_dir: str | os.PathLike | None = None, check: bool = True
) -> DatasetStatus:
    """Look for `name` under data_dir (default: default_data_dir()). check: also test every
    file found the way training does before it starts (sizes and headers, and that an ATIS
    file holds an event), listing the bad ones; without it the files are only counted."""
    info = dataset_info(name)
    return info.status(resolve_data_dir(data_dir), check)


def files_status(info: DatasetInfo, root: Path, check: bool) -> DatasetStatus:
    """The status of a dataset read from files: its recordings under root counted (and, with
    `check`, every file checked)."""
    try:
        counts, layout, folder, files = count_recordings(info, root)
    except (OSError, ValueError) as err:
        return DatasetStatus(info, False, str(root / info.folder), note=str(err))
    found = sum(counts.values()) > 0
    return DatasetStatus(
        info,
        found,
        str(folder),
        counts if found else {},
        LAYOUT_NAMES.get(layout, layout),
        "" if found else info.how_to_get,
        checked=check and found,
        bad_files=_bad_files(files) if check else [],
    )


def _bad_files(files) -> list[tuple[str, str]]:
    bad = []
    for path, fmt in files:
        try:
            quick_check(path, fmt)
        except DataError as err:
            bad.append((str(path), getattr(err, "reason", None) or str(err)))
        except OSError as err:
            bad.append((str(path), f"cannot be read ({err.strerror or err})"))
    return bad
